"""``NullEngine``: the API of ``EngineProcess`` with no process and no audio, for the GUI's
tests and for a window opened where no audio device is (it renders nothing).

Commands are checked (``check_command``) and answered as the engine host answers them;
checkpoints are really read and built (not prepared); notes from ("midi", ...) are tracked;
MIDI learn runs the engine's own ``ControlBindings`` on the CCs that arrive as ("midi", ...).
One thread (the GUI's).
"""
from __future__ import annotations

import os
import time

import numpy as np

from .config import REVERB_DEFAULTS, clamp_transpose, clamp_tuning, clamp_velocity_curve, pan_value
from .engine_commands import CommandError, EngineError, check_command, check_settings, describe_generator
from .engine_shared_state import LAYOUT_VERSION, MAGIC, STATE_NAMES, STATE_RUNNING, STATE_STOPPED, STATUS_FIELDS
from .midi_learn import MASTER
from .model_loader import program_choice


class NullEngine:
    """``EngineProcess``'s API without a process or audio (GUI tests): commands are checked and
    answered, checkpoints really validated (read and built, not prepared), notes from ("midi",
    ...) tracked; it renders nothing."""

    def __init__(self):
        self.settings: dict = {}
        self.info: dict = {}
        self.model_info: dict = {}
        self.restarts = 0
        self.waiting = ""            # never: it has no device to wait for
        self.log_path = None
        self._events: list = []
        self._alive = False
        self._gen = None
        self._notes = np.zeros((16, 128), np.uint8)
        self._generation = 0
        self._midi = 0

    def start(self, settings: dict | None = None) -> dict:
        self.settings = check_settings(settings)
        self.programs = []            # as a new engine process: the GUI sends its list again
        gen = self._build(self.settings["model"]) if self.settings["model"] else None
        if gen is None:
            from .default_instrument import DefaultInstrument
            gen = DefaultInstrument()
        self._gen = gen
        self._new_controls()
        from .midi_learn import ControlBindings
        self._bind = ControlBindings()
        self._bind.set_all(self.settings["bindings"], (gen,))
        self.model_info = describe_generator(gen, self.settings["model"])
        self.info = {"device_name": "null (no audio)", "rate": self.settings["rate"], "block": self.settings["block"],
                     "placement": "none", "latency_ms": 0.0, "pid": os.getpid(), "midi_ports": [],
                     "model": self.model_info}
        self._alive = True
        return self.info

    def _new_controls(self) -> None:
        self._controls = self._gen.default_controls()
        self._shown = self._controls.copy()

    @staticmethod
    def _build(path: str):
        from .checkpoint import CheckpointError, load_generator
        try:
            return load_generator(path)
        except CheckpointError as exc:
            raise EngineError(f"the engine did not start: {exc}") from None

    def send(self, *cmd) -> bool:
        cmd = check_command(cmd)
        if not self._alive:
            return False
        self._handle(cmd)
        return True

    def send_raw(self, cmd) -> bool:
        if not self._alive:
            return False
        try:
            cmd = check_command(cmd)
        except CommandError as exc:
            self._events.append(("error", str(exc)))
            return True
        self._handle(cmd)
        return True

    def _handle(self, cmd: tuple) -> None:
        name, args = cmd[0], cmd[1:]
        ev = self._events
        if name == "load":
            path = args[0]
            try:
                from .checkpoint import load_generator
                gen = load_generator(path)
            except Exception as exc:       # as the engine host: every failure is an answer
                msg = str(exc) if path in str(exc) else f"{path}: {type(exc).__name__}: {exc}"
                ev.append(("load_failed", path, msg))
                return
            self._gen = gen
            self._new_controls()
            self._generation += 1
            self.model_info = describe_generator(gen, path)
            ev.append(("loaded", path, self.model_info))
        elif name == "control":
            controls = self._gen.info.controls
            key = args[0]
            idx = key if isinstance(key, int) else next((i for i, c in enumerate(controls) if c.name == key), None)
            if idx is None or not 0 <= idx < len(controls):
                names = ", ".join(c.name for c in controls)
                ev.append(("error", f"control: no control {key!r} on {self._gen.info.name} (controls: {names})"))
                return
            self._controls[idx] = self._shown[idx] = controls[idx].clamp(args[1])
            ev.append(("control", controls[idx].name, float(self._controls[idx])))
        elif name == "gain_db":
            ev.append(("gain_db", min(12.0, max(-90.0, args[0]))))
        elif name == "programs":
            self.programs = list(args[0])
        elif name == "tuning":
            self.settings["tuning"] = clamp_tuning(args[0])
            ev.append(("tuning", self.settings["tuning"]))
        elif name == "transpose":
            self.settings["transpose"] = clamp_transpose(args[0])
            ev.append(("transpose", self.settings["transpose"]))
        elif name == "velocity_curve":
            self.settings["velocity_curve"] = clamp_velocity_curve(args[0])
            ev.append(("velocity_curve", self.settings["velocity_curve"]))
        elif name == "pan":
            self.settings["pan"] = pan_value(args[0])
            ev.append(("pan", self.settings["pan"]))
        elif name == "reverb":                 # checked and clamped by check_command already
            r = self.settings["reverb"] = {**REVERB_DEFAULTS, **self.settings.get("reverb", {}), **args[0]}
            ev.append(("reverb", dict(r)))
        elif name in ("panic", "release_all"):
            self._notes[:] = 0
        elif name == "midi":
            status, d1, d2 = args
            ch, kind = status & 0x0F, status & 0xF0
            self._midi += 1
            if kind == 0xB0:
                self._cc(ch, d1, d2)
            if kind == 0xC0 and getattr(self, "programs", None):
                path, missing = program_choice(self.programs, ch, d1)
                ev.append(("program", ch, d1, path))
                if missing:
                    ev.append(("report", missing))
                else:
                    self._handle(("load", path))
            if kind == 0x90 and d2 > 0:
                self._notes[ch, d1] = d2
            elif kind in (0x80, 0x90):
                self._notes[ch, d1] = 0
        elif name == "midi_ports":
            if args:
                self.settings["midi"] = args[0]
            ev.append(("midi_ports", [], self.settings["midi"], []))
        elif name == "devices":
            ev.append(("devices", [], "null (no audio)"))
        elif name in ("learn", "bind", "unbind"):
            self._bindings_command(name, args)
        elif name in ("record", "record_stop"):
            ev.append(("error", f"{name}: no audio engine here (the null engine plays nothing), so nothing "
                                "to record"))
        elif name == "ping":
            ev.append(("pong", args[0]))
        elif name == "stop":
            self._notes[:] = 0
            ev.append(("stopped", self.status()))
            self._alive = False

    def _bindings_command(self, name: str, args: tuple) -> None:
        """As the engine host does, with the same ``ControlBindings`` (CCs come from "midi")."""
        b, gens = self._bind, (self._gen,)
        if args[0] and args[0] != MASTER and args[0] not in {c.name for c in self._gen.info.controls}:
            self._events.append(("error", f"{name}: no control {args[0]!r} on {self._gen.info.name}"))
            return
        try:
            if name == "learn":
                b.learn(args[0] or None)
                self._events.append(("learning", args[0]))
                return
            b.bind(args[0], args[1], args[2], gens) if name == "bind" else b.unbind(args[0], gens)
        except ValueError as exc:
            self._events.append(("error", f"{name}: {exc}"))
            return
        self.settings["bindings"] = {k: list(v) for k, v in b.bindings.items()}
        self._events.append(("bindings", dict(self.settings["bindings"])))

    def _cc(self, ch: int, cc: int, value: int) -> None:
        b = self._bind
        b.publish((self._gen,))
        serial = b.master_serial
        b.on_cc(self._gen, self._controls, ch, cc, value)
        if b.master_serial != serial:
            self._events.append(("gain_db", b.master_db))
        learned = b.poll_learned((self._gen,))
        if learned is not None:
            self.settings["bindings"] = {k: list(v) for k, v in b.bindings.items()}
            self._events += [("learned", *learned), ("bindings", dict(self.settings["bindings"]))]
            return
        for i in np.flatnonzero(self._controls != self._shown):
            self._shown[i] = self._controls[i]
            self._events.append(("control", self._gen.info.controls[i].name, float(self._controls[i])))

    def load(self, path) -> bool:
        return self.send("load", path)

    def poll_events(self) -> list:
        out, self._events = self._events, []
        return out

    def wait_event(self, kinds, timeout: float = 0.0, events: list | None = None):
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        for i, ev in enumerate(self._events):
            if ev[0] in kinds:
                del self._events[i]
                return ev
        return None

    def ping(self, timeout: float = 2.0) -> float | None:
        return 0.0 if self._alive else None

    def status(self) -> dict:
        vals = {name: (0 if kind == "i" else 0.0) for name, kind in STATUS_FIELDS}
        s = self.settings
        vals.update(magic=MAGIC, version=LAYOUT_VERSION, pid=os.getpid(),
                    state=STATE_RUNNING if self._alive else STATE_STOPPED, heartbeat=time.monotonic(),
                    sample_rate=s.get("rate", 0), block=s.get("block", 0), polyphony=s.get("polyphony", 0),
                    voices=int(np.count_nonzero(self._notes)), midi_messages=self._midi,
                    model_generation=self._generation)
        vals.update(torn=False, state_name=STATE_NAMES[vals["state"]], age_s=0.0, peak=0.0, rms=0.0, write_index=0,
                    alive=self._alive)
        return vals

    def scope(self, n: int) -> np.ndarray:
        return np.zeros(int(n), np.float32)

    def notes(self) -> list[tuple[int, int, int, bool]]:
        return [(int(c), int(k), int(self._notes[c, k]), True) for c, k in zip(*np.nonzero(self._notes), strict=True)]

    def alive(self) -> bool:
        return self._alive

    def check(self) -> str | None:
        return None

    def plays_when_back(self) -> str:
        return "the built-in instrument"     # never asked: it never waits

    def restart(self, **changes) -> dict:
        settings = {**self.settings, **changes}
        if "model" not in changes and self.model_info.get("path"):
            settings["model"] = self.model_info["path"]
        info = self.start(settings)
        self.restarts += 1
        self._events.append(("restarted", "engine restarted (null engine)"))
        return info

    def stop(self, timeout: float = 10.0) -> dict | None:
        if self._alive:
            self.send("stop")
        return self.status()

    def log_tail(self, lines: int = 15) -> list[str]:
        return []
