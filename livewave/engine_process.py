"""The engine in its own process, seen from the GUI: a command pipe out, events and shared memory in.

A Python GUI holds its GIL for milliseconds; a 64-sample block lasts 1.3 ms. So the audio
stream, MIDI and render run in a child process (``livewave.engine_host``) started with the
``spawn`` method (safe under Qt: no fork of a threaded parent); this module, its parent
side, imports no torch, no sounddevice and no rtmidi.

The commands and events are in ``engine_commands``, the shared-memory layout in
``engine_shared_state``.

When the child fails it is restarted (``restart``; the GUI does it on ``check``): after SIGKILL
from outside (the OOM killer, a user) with the model that played; after any death of its own (an
exception, a signal, its model hung: the child ends itself with ``EXIT_RENDER_HUNG``) or a
freeze of the whole child (no heartbeat for ``FREEZE_AFTER``: killed here), without it.
A restart waits for the device the engine played on (``wait_for_device``), whether it went away
first (``device_watch``: the child ends with ``EXIT_DEVICE_LOST``) or with a crash: ``restart`` raises
``DeviceUnavailable`` with ``waiting`` set instead of blocking, and the child says
("ready", info) when it plays: with the same model after a loss, without it after a crash (as
above; ``settings["model"]`` says which).
With ``spare=True`` a second child is kept started and warmed up ahead of need
(imports, torch, Numba's kernels), so a restart costs opening the device and the model, not
starting Python (measured: ``tests/test_torture_faults.py``).

Threading: one thread of the parent (the GUI's) uses an ``EngineProcess``; nothing here
starts threads. ``null_engine.NullEngine`` has the same API and plays nothing (GUI tests).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .engine_commands import (  # noqa: F401  (re-exported: the GUI imports one module)
    COMMANDS,
    DEFAULT_SETTINGS,
    CommandError,
    DeviceUnavailable,
    EngineError,
    check_command,
    check_settings,
    describe_generator,
)
from .engine_shared_state import (  # noqa: F401
    LAYOUT_VERSION,
    MAGIC,
    RELEASED,
    RING_SIZE,
    STATE_EMPTY,
    STATE_NAMES,
    STATE_RUNNING,
    STATE_STARTING,
    STATE_STOPPED,
    STATE_STOPPING,
    STATUS_FIELDS,
    SharedState,
)

# -- the parent side ---------------------------------------------------------------------------
EXIT_RENDER_HUNG = 86     # the child's exit code when its model hung (engine_host._render_hung)
EXIT_DEVICE_LOST = 87     # the child's exit code when its audio device stopped taking audio (device_watch)
FREEZE_AFTER = 1.0        # seconds without a heartbeat from a running child: it is frozen, and killed


def _child_main(conn, shm_name: str, settings: dict, log_path: str | None) -> None:
    """Entry point of the spawned child (kept here so the parent never imports engine_host)."""
    from .engine_host import main
    sys.exit(main(conn, shm_name, settings, log_path=log_path))


def _spare_main(conn) -> None:
    """A child started ahead of need: it warms up, then waits to be told which engine to become
    (``("become", shm_name, settings, log_path)``); a closed pipe or anything else ends it."""
    from .engine_host import main, warm_up_process
    warm_up_process()
    try:
        conn.send(("spare_ready",))
        msg = conn.recv()
    except (EOFError, OSError):
        sys.exit(0)
    if not (isinstance(msg, tuple) and len(msg) == 4 and msg[0] == "become"):
        sys.exit(0)
    sys.exit(main(conn, msg[1], msg[2], log_path=msg[3]))


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class EngineProcess:
    """Start, command, watch and restart the engine process (GUI side; one thread)."""

    def __init__(self, ready_timeout: float = 90.0, log_dir: str | os.PathLike | None = None, spare: bool = False):
        self.ready_timeout = ready_timeout
        self.keep_spare = bool(spare)
        self._spare = None            # (process, connection): a warmed-up child waiting to become the engine
        self._froze = 0.0             # the heartbeat's age when a frozen child was killed (0: it was not)
        self._ran = False             # the child now (or last) started became ready: its end says something
        self._suspect = False         # the last child that played may have died of its model
        self._reason = ""             # how it ended
        self.waiting = ""             # why, while the child waits for its audio device (``wait_for_device``)
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.gettempdir())
        self.settings: dict = {}
        self.info: dict = {}          # the child's ready info (device, rate, block, model, ...)
        self.model_info: dict = {}    # the model playing (from ready, then each 'loaded')
        self.restarts = 0
        self.proc = None
        self.conn = None
        self.shm: SharedState | None = None
        self.log_path: Path | None = None
        self._backlog: list = []
        self._stopping = False
        self._died_reported = False

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, settings: dict | None = None) -> dict:
        """Spawn the child and wait for it to play; returns its ready info. Raises EngineError
        with the child's own error (or its exit status and last log lines) if it does not come up."""
        if self.alive():
            raise EngineError("the engine process is already running")
        self.settings = check_settings(settings)
        if self.shm is None:
            self.shm = SharedState.create()
        else:
            self.shm.clear()
        fd, log = tempfile.mkstemp(prefix="livewave-engine-", suffix=".log", dir=self.log_dir)
        os.close(fd)
        self.log_path = Path(log)
        spare = self._take_spare()
        if spare is not None:
            self.proc, self.conn = spare
            self.conn.send(("become", self.shm.name, self.settings, str(self.log_path)))
        else:
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe(duplex=True)
            self.proc = ctx.Process(target=_child_main, name="livewave-engine", daemon=True,
                                    args=(child, self.shm.name, self.settings, str(self.log_path)))
            self.proc.start()
            child.close()          # NB: the parent's copy closed, so a dead child reads as EOF here
            self.conn = parent
        self._froze = 0.0
        self._ran = False
        self.waiting = ""
        self._stopping = False
        self._died_reported = False
        t_end = time.monotonic() + self.ready_timeout
        while True:
            ev = self._recv(timeout=0.05)
            if ev is not None:
                if ev[0] == "ready":
                    self._became_ready(ev[1])
                    return self.info
                if ev[0] == "fatal":
                    self._reap()
                    self._stopping = True       # nothing to watch: start() raised
                    self._drop_log()
                    error = DeviceUnavailable if ev[2:] == ("device",) else EngineError
                    raise error(f"the engine did not start: {ev[1]}")
                if ev[0] == "waiting" and self.settings["wait_for_device"]:
                    self.waiting = ev[1]        # the child lives on and says ("ready", info) when it plays
                    raise DeviceUnavailable(f"the audio device is not there ({ev[1]}); the engine waits for it")
                self._backlog.append(ev)
                continue
            if not self.proc.is_alive():
                self._reap()
                self._stopping = True
                msg = f"the engine process ended during start-up ({_exit_reason(self.proc.exitcode)}){self._tail_text()}"
                self._drop_log()
                raise EngineError(msg)
            if time.monotonic() > t_end:
                self._reap(kill=True)
                self._stopping = True
                msg = f"the engine process did not become ready in {self.ready_timeout:.0f} s{self._tail_text()}"
                self._drop_log()
                raise EngineError(msg)

    def plays_when_back(self) -> str:
        """What a child waiting for its device will play once it is there (for messages)."""
        model = self.settings.get("model")
        return f"its model {Path(model).name}" if model else "the built-in instrument"

    def _became_ready(self, info: dict) -> None:
        """The child plays (at start, or once the device it waited for is back)."""
        self._ran = True
        self.info = info
        self.model_info = info.get("model", {})
        if self.keep_spare:
            self._start_spare()

    def stop(self, timeout: float = 10.0) -> dict | None:
        """Ask the child to stop (notes released and rung out first); kill it if it does not
        exit in ``timeout``. Returns its final status (None if it did not send one)."""
        final = self._stop_child(timeout)
        self._end_spare()
        if self.shm is not None:
            self.shm.close()
            self.shm.unlink()
            self.shm = None
        if final is not None:
            self._drop_log()
        return final

    def _stop_child(self, timeout: float) -> dict | None:
        final = None
        self._stopping = True
        if self.proc is not None and self.proc.is_alive():
            self.send("stop")
            t_end = time.monotonic() + timeout
            while self.proc.is_alive() and time.monotonic() < t_end:
                ev = self._recv(timeout=0.05)     # NB: keep draining: a child blocked on a full pipe never exits
                if ev is not None:
                    self._backlog.append(ev)
            self._backlog.extend(self._drain())   # what it sent just before it exited
            final = next((ev[1] for ev in self._backlog if ev[0] == "stopped"), None)
            self._reap(kill=True)
        return final

    # -- the warm spare ---------------------------------------------------------------------------
    def _start_spare(self) -> None:
        if self._spare is not None and self._spare[0].is_alive():
            return
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_spare_main, name="livewave-engine-spare", daemon=True, args=(child,))
        proc.start()
        child.close()
        self._spare = [proc, parent, False]      # NB: ready once it says so

    def spare_ready(self) -> bool:
        """A spare is started and done warming up (a half-warm one would start no faster)."""
        sp = self._spare
        if sp is None or not sp[0].is_alive():
            return False
        if not sp[2]:
            try:
                sp[2] = sp[1].poll(0) and sp[1].recv() == ("spare_ready",)
            except (EOFError, OSError):
                return False
        return bool(sp[2])

    def _take_spare(self):
        if not self.spare_ready():
            return None
        (proc, conn, _), self._spare = self._spare, None
        return proc, conn

    def _end_spare(self) -> None:
        sp, self._spare = self._spare, None
        if sp is not None:
            proc, conn, _ = sp
            conn.close()              # a waiting spare reads EOF and exits
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)

    def _drop_log(self) -> None:
        if self.log_path is not None:
            try:
                self.log_path.unlink()
            except OSError:
                pass

    def _reap(self, kill: bool = False) -> None:
        p = self.proc
        if p is None:
            return
        if kill and p.is_alive():
            p.terminate()
            p.join(3.0)
            if p.is_alive():
                p.kill()
        p.join(5.0)
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def check(self) -> str | None:
        """None while the child runs (or after a deliberate stop); else, once per death, a message
        saying how it ended (also queued as a ("died", message) event)."""
        if self.proc is None or self._stopping:
            return None
        if self.proc.is_alive():
            if self.waiting:
                return None
            st = self.shm.status() if self.shm is not None else {}
            if st.get("state") != STATE_RUNNING or st.get("age_s", 0.0) <= FREEZE_AFTER:
                return None
            self._froze = float(st["age_s"])   # its loop has not run for that long: a model holds it
            self.proc.kill()
            self.proc.join(2.0)
        msg = f"the engine process {self._how_it_ended()}{self._tail_text()}"
        if not self._died_reported:
            self._died_reported = True
            self._backlog.extend(self._drain())
            self._backlog.append(("died", msg))
        return msg

    def _how_it_ended(self) -> str:
        code = self.proc.exitcode
        if self._froze:
            return f"stopped answering for {self._froze:.1f} s (a model held it) and was killed"
        if code == EXIT_RENDER_HUNG:
            return "ended itself because its model hung"
        if code == EXIT_DEVICE_LOST:
            return "ended itself because its audio device stopped taking audio"
        return f"died ({_exit_reason(code)})"

    def restart(self, **changes) -> dict:
        """Start the child again with the same settings (``changes`` override some) and the last
        model that loaded; if that model no longer starts, with the built-in instrument. Queues a
        ("restarted", message) event and returns the ready info."""
        if self.alive():
            self._stop_child(10.0)
            reason = "stopped for the restart"
        else:
            reason = self._how_it_ended() if self.proc is not None else "not started"
            self._reap(kill=True)
        if self._ran or self.proc is None:
            self._reason = reason
        reason = self._reason     # after starts that failed: how the last engine that played ended
        # with its model again only after a clean stop or SIGKILL (killed from outside: the OOM
        # killer, a user). A process that hung, froze, or died by itself (an exception, a signal)
        # may have died of its model: the built-in instrument plays instead, and the GUI says so.
        # A start that failed says nothing new about the model (a device still missing): the
        # verdict on the last engine that played stands.
        code = self.proc.exitcode if self.proc is not None else None
        if self._ran:
            self._suspect = self.proc is not None and bool(
                self._froze or code not in (0, -signal.SIGKILL, None, EXIT_DEVICE_LOST))
        model_failed = self._suspect
        self._drop_log()          # what a dead one said is in check()'s message
        settings = {**self.settings, **changes}
        # the device it played on is waited for if it is gone: after its loss, and as well after a
        # crash or a freeze it went away with (one rule for every restart). A device asked for now
        # (``audio`` among the changes) must be there, unless the caller says to wait for it (the
        # GUI going back to the device that played when another one did not start).
        if "wait_for_device" not in changes:
            settings["wait_for_device"] = "audio" not in changes
        if "model" not in changes and self.model_info.get("path"):
            settings["model"] = self.model_info["path"]
        dropped = ""
        if model_failed and "model" not in changes and settings.get("model"):
            dropped = (f"; without its model {settings['model']}, which it may have died of: the built-in "
                       "instrument plays")
            settings["model"] = None
        try:
            info = self.start(settings)
            what = dropped
        except DeviceUnavailable:
            raise                     # the built-in instrument would not find the device either
        except EngineError as exc:
            if not settings.get("model"):
                raise
            info = self.start({**settings, "model": None})
            what = f"; its model {settings['model']} did not load again ({exc}), the built-in instrument plays"
        self.restarts += 1
        self._backlog.append(("restarted", f"engine restarted (the previous one: {reason}){what}"))
        return info

    # -- commands and events --------------------------------------------------------------------
    def send(self, *cmd) -> bool:
        """Send one command, e.g. ``send("control", "brightness", 0.3)``. Malformed commands are
        refused here (CommandError). False when the engine is not running (``check`` says why)."""
        return self.send_raw(check_command(cmd))

    def send_raw(self, cmd) -> bool:
        """Send a command unchecked (tests of the child's own validation)."""
        if self.conn is None:
            return False
        try:
            self.conn.send(cmd)
            return True
        except (OSError, EOFError):      # BrokenPipeError is an OSError
            return False

    def load(self, path) -> bool:
        return self.send("load", path)

    def _recv(self, timeout: float = 0.0):
        c = self.conn
        if c is None:
            return None
        try:
            if not c.poll(timeout):
                return None
            ev = c.recv()
        except (EOFError, OSError):
            return None
        if ev and ev[0] == "ready" and self.waiting:       # the device it waited for is back
            self.waiting = ""
            self.restarts += 1
            self._became_ready(ev[1])
        elif ev and ev[0] == "loaded":
            self.model_info = ev[2]
        elif ev and ev[0] == "bindings":     # a restart keeps what was learned, and the inputs chosen
            self.settings["bindings"] = dict(ev[1])
        elif ev and ev[0] == "midi_ports":
            self.settings["midi"] = ev[2]
        elif ev and ev[0] in ("tuning", "transpose", "reverb", "velocity_curve", "pan"):   # pitch, room, touch, place
            self.settings[ev[0]] = ev[1]
        return ev

    def _drain(self) -> list:
        out = []
        while True:
            ev = self._recv()
            if ev is None:
                return out
            out.append(ev)

    def poll_events(self) -> list:
        """Every event that has arrived (non-blocking), oldest first."""
        out, self._backlog = self._backlog, []
        out.extend(self._drain())
        return out

    def wait_event(self, kinds, timeout: float = 5.0, events: list | None = None):
        """Block up to ``timeout`` for the first event whose kind is in ``kinds``; other events
        stay queued for ``poll_events`` (or are appended to ``events``). None on timeout."""
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        keep = self._backlog if events is None else events
        for i, ev in enumerate(self._backlog):
            if ev[0] in kinds:
                del self._backlog[i]
                return ev
        t_end = time.monotonic() + timeout
        while True:
            left = t_end - time.monotonic()
            if left <= 0:
                return None
            ev = self._recv(timeout=min(left, 0.05))
            if ev is None:
                if not self.alive() and self.conn is None:
                    return None
                continue
            if ev[0] in kinds:
                return ev
            keep.append(ev)

    def ping(self, timeout: float = 2.0) -> float | None:
        """Round trip through the child's command loop, seconds (None: no answer)."""
        token = time.monotonic_ns()
        t0 = time.perf_counter()
        if not self.send("ping", token):
            return None
        while True:
            ev = self.wait_event("pong", timeout - (time.perf_counter() - t0))
            if ev is None:
                return None
            if ev[1] == token:
                return time.perf_counter() - t0

    # -- shared memory ---------------------------------------------------------------------------
    def status(self) -> dict:
        if self.shm is None:
            return {}
        st = self.shm.status()
        st["alive"] = self.alive()
        return st

    def scope(self, n: int) -> np.ndarray:
        return self.shm.scope(n) if self.shm is not None else np.zeros(int(n), np.float32)

    def notes(self) -> list[tuple[int, int, int, bool]]:
        return self.shm.notes() if self.shm is not None else []

    def log_tail(self, lines: int = 15) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except (OSError, AttributeError):
            return []

    def _tail_text(self) -> str:
        """The child's last output: its last 15 lines, or from its last traceback on (whole,
        when it begins within the last 60 lines: the lines that say where it failed)."""
        tail = self.log_tail(60)
        tb = [i for i, line in enumerate(tail) if line.startswith("Traceback (most recent call last)")]
        tail = tail[tb[-1]:][:40] if tb and len(tail) - tb[-1] > 15 else tail[-15:]
        return ("; its last output:\n  " + "\n  ".join(tail)) if tail else ""
