"""``livewave play --isolate``: the engine in a process of its own, watched and restarted by this one.

Plain ``livewave play`` renders in its own process. A model that hangs with the GIL free is
left behind there (``cli._take_over_from_hung``), but one that holds the GIL, crashes the
interpreter in native code (a C extension, a driver) or is killed (the OOM killer) ends the
set. With ``--isolate`` this process opens no device and imports no torch: it starts the
engine process the app uses (``engine_process.EngineProcess``, with a warm spare), prints
what it reports, and when it dies or freezes (no heartbeat for ``FREEZE_AFTER``) starts it
again: with the built-in instrument when its model may have killed it, with the same model
after a kill from outside. A take being recorded is closed where the dead process left it
(the WAV is readable up to its last write: ``take_recorder``) and a new one begins in the
next free name. An audio device that went away (unplugged, its server ended: ``device_watch``)
is waited for by the new engine process, which plays, with the same model, when it is back;
an engine that cannot start again for another reason is tried again every ``RETRY_S``.

The cost: the gap while a new engine opens the device (about a second, measured in
``tests/test_torture_faults.py``), and notes held then must be played again.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

RETRY_S = 2.0          # between attempts to start an engine that would not start
PORTS_EVERY_S = 1.0    # how often the MIDI inputs in use are asked for (for --stats-json)


def settings_from_args(args, block: int) -> dict:
    """``livewave play``'s options as engine-process settings (``engine_commands.DEFAULT_SETTINGS``)."""
    from .cli import REVERB_OPTIONS
    from .engine_commands import DEFAULT_SETTINGS, REVERB_KEYS
    s = {"model": args.model, "audio": args.audio, "rate": args.rate, "block": block, "placement": args.placement,
         "ahead": args.ahead, "input_channels": args.input_channels, "sample_format": args.sample_format,
         "midi": args.midi, "midi_api": args.midi_api, "polyphony": args.polyphony, "bend_range": args.bend_range,
         "channels": args.channels, "gain": args.gain, "device": args.device,
         "reverb": {key: getattr(args, opt) for (opt, _), key in zip(REVERB_OPTIONS, REVERB_KEYS, strict=True)
                    if getattr(args, opt) is not None}}
    for key in ("tuning", "transpose", "velocity_curve", "pan"):
        value = getattr(args, key)
        s[key] = DEFAULT_SETTINGS[key] if value is None else value
    return s


def status_line(st: dict, restarts: int, recording: bool, midi_in: int) -> str:
    """Plain ``play``'s status line from the engine's shared status, with its restarts."""
    from .cli import status_text
    return status_text(st.get("voices", 0), st.get("polyphony", 0), st.get("load", 0.0), st.get("load_peak", 0.0),
                       st.get("latency_ms", 0.0), st.get("xruns", 0), st.get("ring_underruns", 0),
                       st.get("generator_faults", 0), midi_in,
                       f" | engine restarts {restarts}" + (" | REC" if recording else ""))


class SupervisedPlay:
    """The loop of ``livewave play --isolate`` (one thread: this process's main thread)."""

    def __init__(self, args, settings: dict, programs: list[str]):
        from .engine_process import EngineProcess
        self.args = args
        self.settings = settings
        self.programs = programs
        self.ep = EngineProcess(ready_timeout=120.0, spare=True)
        self.tty = sys.stdout.isatty()
        self.take_path: str | None = args.record
        self.recording = False
        self.midi_ports: list[str] = []
        self.model = {}
        self.stop = {"now": False}

    def say(self, text: str, err: bool = False) -> None:
        print(("\r\033[K" if self.tty else "") + text, file=sys.stderr if err else sys.stdout, flush=True)

    # -- the engine's life --------------------------------------------------------------------
    def _began(self, info: dict) -> None:
        """What each new engine is told: the program list, the take."""
        self.model = info["model"]
        self.midi_ports = list(info.get("midi_ports", []))
        if self.programs:
            self.ep.send("programs", self.programs)
        if self.take_path:
            self.ep.send("record", self.take_path, not self.args.no_record_midi)

    def start(self) -> dict:
        info = self.ep.start(self.settings)
        m = info["model"]
        self.say(f"livewave: playing {m['name']} ({m['family']}, on {m['device']}) on {info['device_name']}, "
                 f"{info['rate']} Hz, block {info['block']} ({info['placement']}), in engine process {info['pid']} "
                 "(isolated: restarted if it dies or freezes); Ctrl-C to stop")
        if self.programs:
            from .checkpoint import BUILTIN
            self.say("livewave: program changes select " + ", ".join(
                f"{i + 1} {'the built-in instrument' if p == BUILTIN else Path(p).name}"
                for i, p in enumerate(self.programs)))
        self._began(info)
        return info

    def _restart(self, why: str) -> None:
        from .engine_commands import DeviceUnavailable, EngineError
        if self.recording:
            self.say(f"livewave: the take ends where the engine stopped; what it recorded is in {self.recording}")
            self.recording = False
        self.say(f"livewave: {why.split('; its last output')[0].splitlines()[0]}; starting it again")
        t0 = time.monotonic()
        while not self.stop["now"]:
            try:
                info = self.ep.restart()
            except DeviceUnavailable as exc:
                if self.ep.waiting:
                    self.say(f"livewave: {str(exc).splitlines()[0]}; it plays {self.ep.plays_when_back()} again when "
                             "the device is back")
                    return
                self.say(f"livewave: {str(exc).splitlines()[0]}; trying again in {RETRY_S:.0f} s", err=True)
                time.sleep(RETRY_S)
                continue
            except EngineError as exc:
                self.say(f"livewave: the engine did not start again ({str(exc).splitlines()[0]}); trying again in "
                         f"{RETRY_S:.0f} s", err=True)
                time.sleep(RETRY_S)
                continue
            self._back(info, f"{time.monotonic() - t0:.2f} s after this process saw the fault")
            return

    def _back(self, info: dict, when: str) -> None:
        m = info["model"]
        self.say(f"livewave: engine process {info['pid']} plays {m['name']} ({m['family']}) on "
                 f"{info['device_name']}, {when}")
        self._began(info)

    # -- events and status ------------------------------------------------------------------------
    def handle(self, ev: tuple) -> None:
        kind = ev[0]
        if kind in ("report", "error"):         # ("restarted", ...) says what _restart has said
            self.say(str(ev[1]))
        elif kind == "loaded":
            self.model = ev[2]
            self.say(f"playing {ev[2]['name']} ({ev[2]['family']})")
        elif kind == "load_failed":
            self.say(f"{ev[2]}; {self.model.get('name', 'the current model')} plays on")
        elif kind == "program":
            _, ch, n, path = ev
            if path is not None:
                self.say(f"program {n + 1} (channel {ch + 1}): loading {Path(path).name}")
        elif kind == "recording":
            self.recording = ev[1]
            self.say(f"livewave: recording to {ev[1]}" + (f" and {ev[2]}" if ev[2] else ""))
        elif kind == "recorded":
            from .cli import _take_line
            self.recording = False
            self.say(_take_line(ev[1]))
        elif kind == "midi_ports":
            self.midi_ports = list(ev[1])
        elif kind == "fault":
            self.say(f"livewave: fault injected: {ev[1]}")
        elif kind == "ready":                  # the audio device it waited for is back
            self._back(ev[1], "its audio device back")

    def write_stats(self, final: bool = False, st: dict | None = None) -> None:
        path = self.args.stats_json
        if not path:
            return
        st = self.ep.status() if st is None else st
        data = {"final": final, "isolated": True, "engine_pid": st.get("pid", 0), "restarts": self.ep.restarts,
                "spare_ready": self.ep.spare_ready(), "waiting_for_device": bool(self.ep.waiting),
                "xruns": st.get("xruns", 0), "ring_underruns": st.get("ring_underruns", 0),
                "callbacks": st.get("callbacks", 0), "load": st.get("load", 0.0) / 100.0,
                "load_peak": st.get("load_peak", 0.0) / 100.0, "latency_s": st.get("latency_ms", 0.0) / 1000.0,
                "generator_faults": st.get("generator_faults", 0), "midi_messages": st.get("midi_messages", 0),
                "malformed": st.get("midi_malformed", 0), "midi_late": st.get("midi_late", 0),
                "dropped_events": st.get("dropped_events", 0), "voices": st.get("voices", 0),
                "block": self.settings["block"], "rate": self.settings["rate"], "midi_ports": self.midi_ports,
                "model": self.model.get("name", ""), "family": self.model.get("family", "")}
        from .cli import write_json_atomic
        write_json_atomic(path, data)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        from . import fault_injection
        from .engine_commands import EngineError
        stop = self.stop
        starting = [True]

        def on_signal(signum, frame):
            stop["now"] = True
            if starting[0]:                    # Ctrl-C while the engine starts (up to a minute, cold):
                raise KeyboardInterrupt        # stop waiting for it

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        armed = fault_injection.armed()        # tests only (LIVEWAVE_FAULTS=1): SIGUSR1 sends it to the engine
        if armed:
            signal.signal(signal.SIGUSR1, lambda signum, frame: stop.__setitem__("fault", True))
        try:
            self.start()
        except EngineError as exc:
            self.ep.stop()
            print(f"livewave: error: {exc}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:
            self.ep.stop(timeout=2.0)          # NB: a child still opening its device does not read the pipe
            self.say("livewave: stopped before the engine played")
            return 0
        finally:
            starting[0] = False
        t_end = time.monotonic() + self.args.duration if self.args.duration else None
        last_line = last_stats = last_ports = 0.0
        try:
            while not stop["now"] and (t_end is None or time.monotonic() < t_end):
                time.sleep(0.05)
                if stop.pop("fault", False):
                    self.ep.send("fault", armed)
                why = self.ep.check()
                for ev in self.ep.poll_events():
                    if ev[0] != "died":
                        self.handle(ev)
                if why:
                    self._restart(why)
                    continue
                now = time.monotonic()
                if now - last_ports > PORTS_EVERY_S and not self.ep.waiting:
                    last_ports = now
                    self.ep.send("midi_ports")
                if now - last_stats > 0.25:
                    last_stats = now
                    self.write_stats()
                if now - last_line > (0.2 if self.tty else 5.0):
                    last_line = now
                    line = (f"waiting for the audio device ({self.ep.waiting.splitlines()[0]})" if self.ep.waiting
                            else status_line(self.ep.status(), self.ep.restarts, bool(self.recording),
                                             len(self.midi_ports)))
                    print(("\r\033[K" + line) if self.tty else line, end="" if self.tty else "\n", flush=True)
        finally:
            final = self.ep.stop()                 # every note released and rung out, a take finished
            for ev in self.ep.poll_events():
                self.handle(ev)
            st = final or {}
            self.say("livewave: stopped; all notes released. "
                     + status_line(st, self.ep.restarts, False, len(self.midi_ports)) if final is not None else
                     "livewave: stopped; the engine process did not stop by itself and was killed")
            self.write_stats(final=True, st=st)
        return 0


def run(args, block: int, programs: list[str]) -> int:
    """``livewave play --isolate``. A model or device the first engine cannot start with is an
    error (exit 2), as without ``--isolate``: the performer is there to fix it."""
    from .config import ConfigError
    from .engine_commands import EngineError, check_settings
    settings = settings_from_args(args, block)
    try:
        check_settings(settings)
    except EngineError as exc:
        raise ConfigError(str(exc)) from None
    return SupervisedPlay(args, settings, programs).run()
