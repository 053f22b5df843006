"""The engine process itself (the child of ``EngineProcess``): engine, audio, MIDI, command loop.

``main(conn, shm_name, settings)`` builds the engine as ``livewave play`` does, opens the
audio output and the MIDI inputs, starts them, says ("ready", info) and serves commands
from ``conn`` until ("stop",) or until the parent goes away (its end of the pipe closes).
The protocol and the shared-memory layout are described in ``livewave.engine_process``.

Threads of this process:
- the render side (the audio callback, or the render thread of the ``thread``/``rtmixer``
  placements): ``Engine.render``, the MIDI drain, and ``_Scope.post_render``, which copies
  each block into the shared ring and its peak/RMS into the meters (a nogil Numba kernel,
  no allocation; the write index is stored after the data);
- the command loop (the main thread): every command, every ``conn.send`` (NB: the only
  thread that sends, so events never interleave and the render side never blocks on the
  pipe), the status block in shared memory every ~10 ms, reports forwarded every ~50 ms;
- the loader: reads, validates, prepares and test-renders a checkpoint on a throwaway
  engine, then hands the prepared generator to the command loop, which swaps it in
  (``Engine.swap_generator`` crossfades). A load that fails is answered ("load_failed",
  path, message) and the current model plays on;
- the MIDI hot-plug poller (``MidiInputs``).
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from argparse import Namespace

import numpy as np
from numba import njit

from .engine_process import (
    EXIT_DEVICE_LOST,
    EXIT_RENDER_HUNG,
    RELEASED,
    STATE_RUNNING,
    STATE_STARTING,
    STATE_STOPPED,
    STATE_STOPPING,
    CommandError,
    SharedState,
    check_command,
    describe_generator,
)
from .garbage_collector import OffAudioThread
from .generator import missing_input_warning
from .load_screen import describe_flags
from .model_loader import ModelLoader, load_message, program_choice
from .model_watchdog import ModelWatchdog, prepared_fallback

STATUS_PERIOD = 0.010      # seconds between status updates in shared memory
DEVICE_POLL_S = 0.5        # how often a missing output device is looked for (``wait_for_device``)
REPORT_PERIOD = 0.050      # seconds between report forwards



@njit(nogil=True, cache=True)
def scope_write(block, ring, render_i, meters):
    """Copy channel 0 of ``block`` [frames, channels] into ``ring`` at ``render_i[0]`` (mod its
    power-of-two size), store the block's peak and RMS in ``meters`` (over its first two
    channels: a stereo engine's left and right), count it in ``render_i[1]``; return the new
    write index (the caller publishes it)."""
    n = block.shape[0]
    mask = ring.shape[0] - 1
    w = render_i[0]
    peak = 0.0
    acc = 0.0
    chans = min(2, block.shape[1])
    for i in range(n):
        ring[(w + i) & mask] = block[i, 0]
        for c in range(chans):
            x = block[i, c]
            a = abs(x)
            if a > peak:
                peak = a
            acc += x * x
    meters[0] = peak
    meters[1] = math.sqrt(acc / (n * chans)) if n > 0 and chans > 0 else 0.0
    render_i[1] += 1
    return w + n


class _Scope:
    """The render-side hook (``AudioOutput.post_render``)."""

    def __init__(self, shm: SharedState, channels: int, block: int):
        self.ring, self.render_i, self.meters = shm.ring, shm.render_i, shm.meters
        # compile both array layouts the render side can hand over before the stream starts
        scratch = np.zeros((block, channels + 1), np.float32)
        ri = np.zeros(2, np.int64)
        ring = np.zeros_like(self.ring)
        met = np.zeros(2, np.float64)
        scope_write(np.ascontiguousarray(scratch[:, :channels]), ring, ri, met)
        scope_write(scratch[:, :channels], ring, ri, met)

    def post_render(self, block: np.ndarray) -> None:
        w = scope_write(block, self.ring, self.render_i, self.meters)
        self.render_i[0] = w       # NB: published after the data


def _redirect_output(log_path: str | None) -> None:
    """stdout and stderr (Python's and C libraries') into the parent's log file."""
    if not log_path:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)


class StoppedWaiting(Exception):
    """Told to stop (or the parent went) while waiting for the audio device."""


class EngineHost:
    def __init__(self, conn, shm_name: str, settings: dict):
        self.conn = conn
        self.settings = settings
        self.shm = SharedState.attach(shm_name)
        self.engine = self.out = self.midi = None
        self.generation = 0
        self.stopping = False
        self.parent_gone = False
        self.collector = OffAudioThread()
        self.watchdog = None            # model_watchdog.ModelWatchdog, once the engine exists
        self.device_watch = None        # device_watch.DeviceWatch, once the stream runs
        self._rss, self._rss_at = 0.0, -1.0
        # checkpoints loaded off the render side and swapped in (model_loader)
        self.loader = ModelLoader(lambda: self.engine, lambda: self.settings["block"],
                                  lambda: self.collector.collect_now())
        self._notes = np.zeros((16, 128), np.uint8)
        self._shown: tuple = (None, np.zeros(0))   # (generator, control values the GUI was told)
        self._master_seen = 0                     # volume changes by a bound CC the GUI was told
        self.loop_errors: dict = {}               # (exception type, file:line) -> count (_guarded)
        self.programs: list[str] = []             # MIDI program n loads programs[n] (("programs", ...))
        self._reverb_shown: dict = {}             # the reverb as the GUI was last told
        self._pan_shown = 0.0                     # and the pan

    # -- start-up -----------------------------------------------------------------------------
    def open(self) -> None:
        from .audio_io import AudioOutput
        from .cli import REVERB_OPTIONS, _engine
        from .engine_commands import REVERB_KEYS
        from .midi_input import MidiInputs
        s = self.settings
        rate, block = s["rate"], s["block"]
        pid = os.getpid()
        self.shm.write_status({"pid": pid, "state": STATE_STARTING, "heartbeat": time.monotonic(),
                               "sample_rate": rate, "block": block})
        # NB: as in cmd_play: GIL holders (this loop, the loader, the MIDI poller) must yield far
        # more often than a block lasts, or a Python audio callback waits for them
        sys.setswitchinterval(min(0.00025, 0.25 * block / rate))
        if s["wait_for_device"]:      # NB: first: a restart after the device was lost waits for it here
            from .audio_io import AudioDeviceError, resolve_output_device
            try:
                resolve_output_device(s["audio"])
            except AudioDeviceError as exc:
                self._wait_for_device(exc)
        from .generator import preload_families
        unavailable = preload_families()     # NB: no first import of torch beside a running stream
        args = Namespace(model=s["model"], polyphony=s["polyphony"], bend_range=s["bend_range"],
                         channels=s["channels"], gain=s["gain"], device=s["device"], tuning=s["tuning"],
                         transpose=s["transpose"], velocity_curve=s["velocity_curve"], pan=s["pan"],
                         **{opt: s["reverb"].get(key) for (opt, _), key in zip(REVERB_OPTIONS, REVERB_KEYS, strict=True)})
        self.engine = eng = _engine(args, rate, block, screen=True)
        self._reverb_shown = eng.set_reverb()
        self._pan_shown = float(eng.pan[0])
        eng.reports.extend(f"a generator family is unavailable: {m}" for m in unavailable)
        if s["bindings"]:
            try:
                eng.set_bindings(s["bindings"])
            except ValueError as exc:
                eng.reports.append(f"MIDI bindings not restored: {exc}")
        self.model_path = s["model"]
        self.out = out = AudioOutput(eng, device=s["audio"], sample_rate=rate, block=block, policy=s["placement"],
                                     ahead=s["ahead"], input_channels=s["input_channels"],
                                     sample_format=s["sample_format"])
        out.open()
        if eng.warmup_faults:
            eng.reports.append(f"the model faulted while warming up: {eng.warmup_fault}")
        api = s["midi_api"]
        if api == "auto":
            api = "jack" if "JACK" in out.device_name else None
        if s["midi"] != "none":
            self.midi = MidiInputs(eng, s["midi"], api=api).start()
            self.midi.attach(out)
        out.post_render = _Scope(self.shm, out.channels, block).post_render
        self._set_lead(eng.generator)
        self.watchdog = ModelWatchdog(eng, prepared_fallback(eng))
        self.loader.start()
        # what start-up built is frozen, and the collector runs from the command loop only
        self.collector = OffAudioThread().start()
        out.start()
        from .device_watch import DeviceWatch
        self.device_watch = DeviceWatch(out)

    def _wait_for_device(self, why: Exception) -> None:
        """Say ("waiting", why), then look for the output device every ``DEVICE_POLL_S`` (PortAudio
        started again each time: it lists devices only when it starts) until it is there. A
        ("stop",) or the parent gone ends the wait (``StoppedWaiting``); other commands are
        answered (``_answer_waiting``)."""
        from . import audio_io
        self.send(("waiting", str(why)))
        ppid = os.getppid()
        next_scan = time.monotonic() + DEVICE_POLL_S
        while True:
            self.shm.write_status({"pid": os.getpid(), "state": STATE_STARTING, "heartbeat": time.monotonic(),
                                   "sample_rate": self.settings["rate"], "block": self.settings["block"]})
            try:
                if self.conn.poll(max(0.0, next_scan - time.monotonic())):
                    self._answer_waiting(self.conn.recv())
            except (EOFError, OSError):
                raise StoppedWaiting from None
            if os.getppid() != ppid:
                raise StoppedWaiting
            if time.monotonic() < next_scan:
                continue
            next_scan = time.monotonic() + DEVICE_POLL_S
            audio_io.rescan_devices()
            try:
                audio_io.resolve_output_device(self.settings["audio"])
                return
            except audio_io.AudioDeviceError:
                continue

    def _answer_waiting(self, cmd) -> None:
        """A command while the engine waits for its device: queries are answered (nothing
        connected, the devices there now), ("stop",) ends the wait, the rest is refused."""
        try:
            cmd = check_command(cmd)
        except CommandError as exc:
            self.send(("error", str(exc)))
            return
        name = cmd[0]
        if name == "stop":
            raise StoppedWaiting
        if name == "ping":
            self.send(("pong", cmd[1]))
        elif name == "midi_ports" and len(cmd) == 1:
            self.send(("midi_ports", [], self.settings["midi"], []))
        elif name == "devices":
            from .audio_io import list_output_devices
            self.send(("devices", [d for d in list_output_devices() if d["outputs"] > 0], ""))
        else:
            self.send(("error", f"{name}: nothing plays while the engine waits for its audio device"))

    def _set_lead(self, gen) -> None:
        if self.out is None:         # a host driven without audio (tests)
            return
        msg = self.out.set_lead_for(gen)
        if msg:
            self.engine.reports.append(msg)

    def ready_info(self) -> dict:
        out, eng = self.out, self.engine
        return {"device_name": out.device_name, "rate": out.sample_rate, "block": out.block,
                "placement": out.policy, "ahead": out.ahead, "lead": out.lead, "latency_ms": out.latency * 1000.0,
                "pid": os.getpid(), "polyphony": eng.config.polyphony,
                "midi_ports": sorted(self.midi.open_ports) if self.midi else [],
                "model": describe_generator(eng.generator, self.model_path)}

    # -- the command loop --------------------------------------------------------------------------
    def send(self, ev: tuple) -> None:
        if self.parent_gone:
            return
        try:
            self.conn.send(ev)
        except (OSError, EOFError):
            self.parent_gone = True

    def serve(self) -> int:
        conn = self.conn
        ppid = os.getppid()
        next_status = next_report = 0.0
        while not self.stopping:
            try:
                if conn.poll(STATUS_PERIOD / 2):
                    for _ in range(64):
                        self.handle(conn.recv())
                        if self.stopping or not conn.poll():
                            break
            except (EOFError, OSError):
                self.parent_gone = True     # the GUI is gone: the engine must not outlive it
                break
            for step in (self._finish_loads, self._watch_render, self._watch_device, self._watch_program,
                         self._watch_reverb, self._watch_pan, self.collector.tick):
                self._guarded(step)
            now = time.monotonic()
            if now >= next_status:
                next_status = now + STATUS_PERIOD
                self._guarded(self._write_running)
            if now >= next_report:
                next_report = now + REPORT_PERIOD
                self._guarded(self.forward_reports)
                self._guarded(self.watch_controls)
            if os.getppid() != ppid:
                self.parent_gone = True
                break
        return self.shutdown()

    def _write_running(self) -> None:
        self.write_status(STATE_RUNNING)

    def _guarded(self, step) -> None:
        """One step of the command loop. A bug in it must not end the engine (the render side
        plays on without this loop, but commands, status and the hang watchdog need it): the
        first failure of each kind goes to the log with its traceback and to the GUI as a
        report, repeats are counted. If the status write itself keeps failing, the heartbeat
        stops and the GUI restarts the engine (``engine_process.FREEZE_AFTER``)."""
        try:
            step()
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
            key = (type(exc).__name__, where)
            n = self.loop_errors.get(key, 0) + 1
            self.loop_errors[key] = n
            if n == 1:
                traceback.print_exc()
                self.send(("report", f"engine: {getattr(step, '__name__', 'a step')} failed ({type(exc).__name__}: "
                                     f"{exc} at {where}); the music plays on, the error is in the engine log"))

    def handle(self, cmd) -> None:
        try:
            cmd = check_command(cmd)
        except CommandError as exc:
            self.send(("error", str(exc)))
            return
        name, args = cmd[0], cmd[1:]
        try:
            getattr(self, f"_cmd_{name}")(*args)
        except (KeyError, IndexError, ValueError) as exc:
            self.send(("error", f"{name}: {exc.args[0] if exc.args else exc}"))
        except Exception as exc:     # a command must never take the engine down
            self.send(("error", f"{name}: {type(exc).__name__}: {exc}"))

    def _cmd_load(self, path: str) -> None:
        self.loader.request(path)

    def _cmd_control(self, key, value: float) -> None:
        eng = self.engine
        gen, _ = playing = eng.playing          # NB: one read; the render side may swap meanwhile
        controls = gen.info.controls
        if isinstance(key, int) and not 0 <= key < len(controls):
            raise IndexError(f"control index {key} out of range 0..{len(controls) - 1} "
                             f"({', '.join(c.name for c in controls)})")
        i = key if isinstance(key, int) else eng.control_index(key, gen)
        v = eng.set_control(i, value, playing)
        if self._shown[0] is gen:               # the GUI is told here; not again by watch_controls
            self._shown[1][i] = v
        self.send(("control", controls[i].name, v))

    def _cmd_gain_db(self, value: float) -> None:
        self.engine.set_master_gain_db(value)
        self.send(("gain_db", min(12.0, max(-90.0, value))))

    def _cmd_programs(self, paths: list[str]) -> None:
        self.programs = list(paths)

    def _watch_program(self) -> None:
        """A MIDI program change loads the model the GUI's list has at that number."""
        got = self.engine.poll_program()
        if got is None or not self.programs:
            return
        ch, n = got
        path, missing = program_choice(self.programs, ch, n)
        self.send(("program", ch, n, path))
        if missing:
            self.send(("report", missing))
        else:
            self._cmd_load(path)

    def _cmd_tuning(self, hz: float) -> None:
        self.send(("tuning", self.engine.set_tuning(hz)))

    def _cmd_reverb(self, settings: dict) -> None:
        self._reverb_shown = r = self.engine.set_reverb(**settings)
        self.send(("reverb", r))

    def _watch_reverb(self) -> None:
        """A MIDI CC 91 moved the send: the GUI is told."""
        if self.engine is None or not self.engine.prepared:
            return
        send = float(self.engine.reverb_send[0])
        if send != self._reverb_shown.get("send"):
            self._cmd_reverb({})

    def _cmd_pan(self, pan: float) -> None:
        self._pan_shown = p = self.engine.set_pan(pan)
        self.send(("pan", p))

    def _watch_pan(self) -> None:
        """A MIDI CC 10 moved the pan: the GUI is told."""
        if self.engine is None or not self.engine.prepared:
            return
        pan = float(self.engine.pan[0])
        if pan != self._pan_shown:
            self._cmd_pan(pan)

    def _cmd_velocity_curve(self, curve: float) -> None:
        self.send(("velocity_curve", self.engine.set_velocity_curve(curve)))

    def _cmd_transpose(self, semitones: int) -> None:
        self.send(("transpose", self.engine.set_transpose(semitones)))

    def _cmd_panic(self) -> None:
        self.engine.panic()

    def _cmd_release_all(self) -> None:
        self.engine.release_all()

    def _cmd_midi(self, status: int, d1: int, d2: int) -> None:
        self.engine.push_midi(status, d1, d2)

    def _cmd_midi_ports(self, selection: str | None = None) -> None:
        m = self.midi
        if selection is not None:
            if m is None:
                raise ValueError("MIDI input was off at start (midi='none'); choosing inputs needs a restart")
            m.select(selection)       # NB: applied by the hot-plug poller, which owns the ports
            self.settings["midi"] = selection
        self.send(("midi_ports", sorted(m.open_ports) if m else [], self.settings["midi"],
                   list(m.available) if m else []))

    def _cmd_devices(self) -> None:
        from .audio_io import list_output_devices
        devs = [d for d in list_output_devices() if d["outputs"] > 0]
        self.send(("devices", devs, self.out.device_name))

    def _cmd_learn(self, name: str) -> None:
        self.engine.learn_cc(name or None)
        self.send(("learning", name))

    def _cmd_bind(self, name: str, channel: int, cc: int) -> None:
        self.engine.bind_cc(name, channel, cc)
        self._send_bindings()

    def _cmd_unbind(self, name: str) -> None:
        self.engine.unbind_cc(name)
        self._send_bindings()

    def _send_bindings(self) -> None:
        self.send(("bindings", {k: list(v) for k, v in self.engine.bindings.bindings.items()}))

    def watch_controls(self) -> None:
        """Learning, and controls moved by bound MIDI CCs, told to the GUI (command loop)."""
        eng = self.engine
        learned = eng.poll_learned()
        if learned is not None:
            self.send(("learned", *learned))
            self._send_bindings()
        eng.refresh_bindings()
        if eng.bindings.master_serial != self._master_seen:
            self._master_seen = eng.bindings.master_serial
            self.send(("gain_db", eng.bindings.master_db))
        gen, values = eng.playing               # NB: not eng.generator and eng.cond.controls (Engine.playing)
        if self._shown[0] is not gen or self._shown[1].shape != values.shape:
            # a new model: the GUI shows its defaults (from "loaded"); a knob's position carried
            # over at the swap (``ControlBindings.carry_over``) differs from them and is told below
            self._shown = (gen, np.asarray(gen.default_controls(), values.dtype).copy())
        shown = self._shown[1]
        for i in np.flatnonzero(shown != values):
            shown[i] = values[i]
            self.send(("control", gen.info.controls[i].name, float(values[i])))

    def _cmd_ping(self, token) -> None:
        self.send(("pong", token))

    def _cmd_stop(self) -> None:
        self.stopping = True

    def _cmd_record(self, path: str, midi: bool = True) -> None:
        from .take_recorder import free_take_paths, start_take
        if self.engine.take is not None:
            raise ValueError(f"a take is being recorded already ({self.engine.take.audio_path})")
        wav, mid = free_take_paths(path, midi=midi)
        start_take(self.engine, wav, mid)
        self.send(("recording", str(wav), None if mid is None else str(mid)))

    def _cmd_record_stop(self) -> None:
        take = self.engine.stop_take()
        if take is None:
            raise ValueError("no take is being recorded")
        self.send(("recorded", take.finish()))

    # -- loading --------------------------------------------------------------------------------
    # -- a model that fails while it plays ----------------------------------------------------------
    def _watch_render(self) -> None:
        """A model that hangs ends this process (the GUI restarts it without the model); one
        that keeps faulting gives way to the built-in instrument (``model_watchdog``)."""
        verdict = self.watchdog.check()
        if verdict is None:
            return
        kind, what = verdict
        if kind == "hung":
            self._render_hung(what)
        eng = self.engine
        name = eng.generator.info.name
        old = eng.generator
        if not self.watchdog.unload():
            return                        # a swap is pending: next round
        self._set_lead(self.watchdog.fallback)
        self.loader.retire(old)
        self.model_path = None
        self.generation += 1
        self.send(("report", f"the model {name} kept failing ({what}); every block of it was muted, and it is "
                             "unloaded: the built-in instrument plays"))
        self.send(("loaded", "", describe_generator(self.watchdog.fallback, None)))

    def _render_hung(self, seconds: float) -> None:
        name = self.engine.generator.info.name
        msg = (f"the model {name} stopped answering (one block has taken {seconds:.1f} s); the engine process "
               "ends so that it can be restarted without it")
        print(f"livewave engine: {msg}", flush=True)
        self.send(("report", msg))
        try:
            self.write_status(STATE_STOPPED)
        except Exception:
            pass
        os._exit(EXIT_RENDER_HUNG)      # NB: a thread stuck in a model cannot be stopped any other way

    def _watch_device(self) -> None:
        """An audio device that stopped taking audio (``device_watch``) ends this process: the
        stream cannot be closed, nor PortAudio started again, in it. The take is finished first;
        the GUI starts the engine again, with the same model, once the device is back."""
        if self.device_watch is None:
            return
        quiet = self.device_watch.check()
        if quiet is None:
            return
        msg = (f"the audio device {self.out.device_name} has taken no audio for {quiet:.1f} s (unplugged, or its "
               "server ended): the engine process ends so that it can open it again when it is back")
        print(f"livewave engine: {msg}", flush=True)
        self.send(("report", msg))
        self.out.abandon()
        try:
            take = self.engine.stop_take(timeout_s=0.0)
            if take is not None:
                self.send(("recorded", take.finish()))
            self.write_status(STATE_STOPPED)
        except Exception:
            traceback.print_exc()
        os._exit(EXIT_DEVICE_LOST)      # NB: no PortAudio call: closing a stream whose device is gone hangs

    def _cmd_fault(self, kind: str) -> None:
        from .fault_injection import inject
        inject(self.engine, kind)
        self.send(("fault", kind))

    def _finish_loads(self) -> None:
        eng = self.engine
        for kind, path, what in self.loader.poll():
            if kind == "superseded":         # a later load was asked for: only its answer matters
                continue
            if kind == "load_failed":
                self.send(("load_failed", path, what))
                continue
            self._set_lead(what)
            self.model_path = path
            self.generation += 1
            self.send(("loaded", path, describe_generator(what, path)))
            for warn in (missing_input_warning(what.info, eng.config.input_channels), describe_flags(what)):
                if warn:
                    eng.reports.append(warn)

    # -- status and reports --------------------------------------------------------------------------
    def note_map(self) -> tuple[np.ndarray, int]:
        """[16, 128] from the engine's voice state, and the number of sounding voices counted in
        the same pass (so the status's voice count agrees with its note map). NB: read while the
        render side may change it; a torn view lasts one update and only touches the display."""
        nm = self._notes
        nm[:] = 0
        cond, voices = self.engine.cond, self.engine.voices
        n = 0
        for v in range(cond.active.shape[0]):
            if cond.active[v]:
                n += 1
                vel = max(1, min(127, int(round(cond.velocity[v] * 127.0))))
                nm[int(cond.channel[v]) & 15, int(voices.note_int[v]) & 127] = vel | (0 if cond.gate[v] else RELEASED)
        return nm, n

    def write_status(self, state: int) -> None:
        eng, out, midi = self.engine, self.out, self.midi
        a = out.stats
        notes, sounding = self.note_map()
        self.shm.write_status({
            "pid": os.getpid(), "state": state, "heartbeat": time.monotonic(),
            "sample_rate": out.sample_rate, "block": out.block, "polyphony": eng.config.polyphony,
            "voices": sounding, "load": a.load * 100.0, "load_peak": a.load_peak * 100.0,
            "latency_ms": out.latency * 1000.0, "xruns": a.xruns, "ring_underruns": a.ring_underruns,
            "generator_faults": eng.stats.generator_faults, "sample_time": eng.sample_time,
            "callbacks": a.callbacks, "midi_messages": midi.messages if midi else 0,
            "midi_malformed": midi.malformed if midi else 0, "midi_late": midi.late if midi else 0,
            "dropped_events": eng.events.dropped, "model_generation": self.generation,
            "load_p999": a.load_percentile(99.9), "rss_mb": self._rss_mb(),
            "cpu_p999": a.cpu_percentile(99.9), "cpu_peak": a.cpu_peak * 100.0, "heap_trims": self.loader.trims,
            "gc_longest_ms": self.collector.longest * 1e3,
        }, notes)

    def _rss_mb(self) -> float:
        """Resident memory from /proc (Linux; 0 elsewhere), read at most once a second."""
        now = time.monotonic()
        if now - self._rss_at >= 1.0:
            self._rss_at = now
            try:
                with open("/proc/self/statm") as f:
                    self._rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
            except (OSError, ValueError, IndexError):
                self._rss = 0.0
        return self._rss

    def forward_reports(self) -> None:
        eng = self.engine
        msgs = eng.take_reports()
        if self.midi is not None:
            while self.midi.reports:
                msgs.append(self.midi.reports.popleft())
        if eng.stats.last_fault:
            msgs.append(f"generator fault: {eng.stats.last_fault} (block muted, generator reset)")
            eng.stats.last_fault = ""
        take = eng.take
        failed = take.new_error() if take is not None else None
        if failed:
            msgs.append(f"recording failed: {failed}; the music plays on")
        for m in msgs:
            self.send(("report", m))

    # -- shutdown ------------------------------------------------------------------------------
    def shutdown(self) -> int:
        eng, out = self.engine, self.out
        self.write_status(STATE_STOPPING)
        eng.release_all()                     # every note released, then let the release ring out:
        ring = min(eng.release_s, 2.0) + 0.05  # its length, and up to a second more where the audio
        t_end = time.monotonic() + ring + 1.0  # side is late (a stalled machine renders less in it)
        time.sleep(ring)
        while self.note_map()[1] and time.monotonic() < t_end:
            time.sleep(0.01)
        eng.ring_out()                        # the reverb's room too, then a fade: no click
        take = eng.stop_take()                # a take running: it ends with the release's tail
        if take is not None:
            self.send(("recorded", take.finish()))
        out.stop()                            # audio first: under JACK, rtmidi calls must not
        if self.midi is not None:             # overlap a running Python audio callback
            self.midi.stop()
        self.loader.stop()
        self.collector.stop()
        self.write_status(STATE_STOPPED)
        self.forward_reports()
        self.send(("stopped", self.shm.status()))
        self.close()
        return 0

    def close(self) -> None:
        """Release PortAudio (its JACK client) while the server is up, and the shared memory."""
        try:
            from . import audio_io
            if audio_io._sd is not None:
                audio_io._sd._terminate()
        except Exception:
            pass
        self.shm.close()


def warm_up_process() -> None:
    """What every engine process does before it can play, done ahead by a spare
    (``engine_process._spare_main``): the imports, torch and the generator families, and
    Numba's kernels (an engine prepared and thrown away). PortAudio is not touched: a device
    list read now could be stale when the spare is used."""
    from . import audio_io, cli, midi_input  # noqa: F401
    from .config import EngineConfig
    from .engine import Engine
    from .generator import preload_families
    preload_families()
    Engine(EngineConfig()).prepare()


def main(conn, shm_name: str, settings: dict, log_path: str | None = None) -> int:
    _redirect_output(log_path)
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C in the GUI's terminal: the GUI decides
    host = None
    try:
        host = EngineHost(conn, shm_name, settings)
        host.open()
    except StoppedWaiting:
        host.send(("stopped", host.shm.status()))
        host.shm.close()
        return 0
    except BaseException as exc:
        traceback.print_exc()
        msg = load_message(exc)
        from .audio_io import AudioDeviceError
        try:
            conn.send(("fatal", msg, "device") if isinstance(exc, AudioDeviceError) else ("fatal", msg))
        except (OSError, EOFError):
            pass
        try:
            if host is not None and host.out is not None:
                host.out.stop()
            if host is not None and host.midi is not None:
                host.midi.stop()
        except Exception:
            traceback.print_exc()
        return 1
    host.send(("ready", host.ready_info()))
    return host.serve()
