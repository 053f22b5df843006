"""The engine in its own process, seen from the GUI: a command pipe out, events and shared memory in.

A Python GUI holds its GIL for milliseconds; a 64-sample block lasts 1.3 ms. So the audio
stream, MIDI and render run in a child process (``livewave.engine_host``) started with the
``spawn`` method (safe under Qt: no fork of a threaded parent); this module, its parent
side, imports no torch, no sounddevice and no rtmidi.

The commands and events are in ``engine_commands``, the shared-memory layout in
``engine_shared_state``.

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
def _child_main(conn, shm_name: str, settings: dict, log_path: str | None) -> None:
    """Entry point of the spawned child (kept here so the parent never imports engine_host)."""
    from .engine_host import main
    sys.exit(main(conn, shm_name, settings, log_path=log_path))


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

    def __init__(self, ready_timeout: float = 90.0, log_dir: str | os.PathLike | None = None):
        self.ready_timeout = ready_timeout
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
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_child_main, name="livewave-engine", daemon=True,
                                args=(child, self.shm.name, self.settings, str(self.log_path)))
        self.proc.start()
        child.close()          # NB: the parent's copy closed, so a dead child reads as EOF here
        self.conn = parent
        self._stopping = False
        self._died_reported = False
        t_end = time.monotonic() + self.ready_timeout
        while True:
            ev = self._recv(timeout=0.05)
            if ev is not None:
                if ev[0] == "ready":
                    self.info = ev[1]
                    self.model_info = ev[1].get("model", {})
                    return self.info
                if ev[0] == "fatal":
                    self._reap()
                    self._stopping = True       # nothing to watch: start() raised
                    self._drop_log()
                    raise EngineError(f"the engine did not start: {ev[1]}")
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

    def stop(self, timeout: float = 10.0) -> dict | None:
        """Ask the child to stop (notes released and rung out first); kill it if it does not
        exit in ``timeout``. Returns its final status (None if it did not send one)."""
        final = self._stop_child(timeout)
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
        if self.proc is None or self._stopping or self.proc.is_alive():
            return None
        msg = f"the engine process died ({_exit_reason(self.proc.exitcode)}){self._tail_text()}"
        if not self._died_reported:
            self._died_reported = True
            self._backlog.extend(self._drain())
            self._backlog.append(("died", msg))
        return msg

    def restart(self, **changes) -> dict:
        """Start the child again with the same settings (``changes`` override some) and the last
        model that loaded; if that model no longer starts, with the built-in instrument. Queues a
        ("restarted", message) event and returns the ready info."""
        if self.alive():
            self._stop_child(10.0)
            reason = "stopped for the restart"
        else:
            reason = _exit_reason(self.proc.exitcode) if self.proc is not None else "not started"
            self._reap(kill=True)
        self._drop_log()          # what a dead one said is in check()'s message
        settings = {**self.settings, **changes}
        if "model" not in changes and self.model_info.get("path"):
            settings["model"] = self.model_info["path"]
        try:
            info = self.start(settings)
            what = ""
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
        if ev and ev[0] == "loaded":
            self.model_info = ev[2]
        elif ev and ev[0] == "bindings":     # a restart keeps what was learned, and the inputs chosen
            self.settings["bindings"] = dict(ev[1])
        elif ev and ev[0] == "midi_ports":
            self.settings["midi"] = ev[2]
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
        tail = self.log_tail()
        return ("; its last output:\n  " + "\n  ".join(tail)) if tail else ""
