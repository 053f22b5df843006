"""Loading a model while another plays, and the swap: what the engine process and ``livewave play``
share (a GUI's click, a MIDI program change).

- ``request(path)`` (control side) queues a checkpoint (``checkpoint.BUILTIN``: the built-in
  instrument) for the loader thread. That thread runs niced and yields the GIL often
  (``gil_yielding``), so the render side wins the CPU and the GIL over it. It reads the file
  (``load_generator``: refused with the reason if it is not a model), then screens it
  (``load_screen``): prepared, played and measured on a throwaway engine with the running
  engine's settings, so its kernels are compiled and torch is warm before it nears the render
  side.
- ``poll()`` (the control loop, often) hands a loaded model to ``Engine.swap_generator`` (it
  crossfades in at the next block; while an earlier swap is pending it waits for the next poll)
  and returns what happened: ``("loaded", path, generator)``, ``("load_failed", path,
  message)``, or ``("superseded", path, None)``. The current model plays on through any failure.
- The latest request wins: one that a later request overtakes is not loaded, or not swapped in
  if its load had begun (``superseded``). Why: a keyboard's program knob scrolled through ten
  programs sends ten program changes; each was loaded, screened and crossfaded in turn, so the
  instrument went on changing for seconds after the knob stopped (a vocoder screens in about a
  second here).
- The model swapped out is kept ``RETIRE_AFTER`` seconds (the render side lets go of it when its
  crossfade ends), then its last reference is dropped here, its cycles collected (``collect``,
  off the audio thread), and the loader thread gives the freed memory back (``heap_trim``).
  ``retire`` does the same for a model the watchdog unloaded.

Threading: ``request``, ``poll``, ``retire`` and ``stop`` from one control thread; the loader
thread touches only its two queues and ``trims``.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time

from . import heap_trim

LOADER_NICE = 10           # the loader thread's nice value
LOADER_GIL_BUSY = 0.0005   # the loader holds the GIL at most about this long at a time...
LOADER_GIL_PAUSE = 0.001   # ...then lets it go for this long (see gil_yielding)
RETIRE_AFTER = 2.0         # seconds a swapped-out generator is kept alive
TRIM = ("trim",)           # on the loader's queue: give freed memory back to the system (heap_trim)


class gil_yielding:
    """Within this context the calling thread gives the GIL away for ``pause`` seconds after
    every ``busy`` seconds of Python running (checked at each Python and C function call and
    return, through a profile hook of this thread only).

    Why: the render side takes the GIL again after every call that released it (a TorchScript
    step, a Numba kernel). Beside a thread running Python or torch ops, each of those takes
    waits up to the switch interval, and a DDSP frame makes dozens: a model load beside a
    playing DDSP model made its frames 20x slower (measured: a late block every decoder frame
    for the whole load on a 2-core VM). With this hook the loader holds the GIL at most about a
    third of the time; one C call that holds it longer (a torch trace step) still does."""

    def __init__(self, busy: float, pause: float):
        self.busy, self.pause = busy, pause
        self._since = 0.0

    def _hook(self, frame, event, arg) -> None:
        now = time.perf_counter()
        if now - self._since > self.busy:
            time.sleep(self.pause)
            self._since = time.perf_counter()

    def __enter__(self):
        self._since = time.perf_counter()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(None)


def load_message(exc: BaseException, path: str | None = None) -> str:
    """One line for a failure: the message of the errors livewave raises on purpose, the type
    too for anything else; the path where the message does not name it."""
    from .audio_io import AudioDeviceError
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .midi_input import MidiPortError
    known = (AudioDeviceError, CheckpointError, ConfigError, MidiPortError)
    msg = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
    if path and path not in msg:
        msg = f"{path}: {msg}"
    return msg


def program_choice(programs: list[str], channel: int, program: int, listed: str = "in the list"):
    """(the model path a MIDI program change selects from ``programs``, or None; and None, or
    the line that says no model has that number). ``program`` and ``channel`` as sent (0-based)."""
    if program < len(programs):
        return programs[program], None
    return None, (f"program {program + 1} (channel {channel + 1}): no model at that number "
                  f"({len(programs)} {listed})")


class ModelLoader:
    """(module docstring) ``engine`` and ``block``: callables giving the running engine and the
    block size it plays at (read when a load runs: the engine may be replaced); ``collect``:
    collects garbage off the audio thread (``OffAudioThread.collect_now``)."""

    def __init__(self, engine, block, collect=None):
        self._engine, self._block, self._collect = engine, block, collect
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.waiting = None              # a prepared generator waiting for a pending swap to finish
        self.retired: list = []          # (generator, time) swapped out, released off the render side
        self.trims = 0                   # heap trims run after retired generators were freed (heap_trim)
        self.thread: threading.Thread | None = None
        self.latest = 0                  # the number of the latest request (the control side counts)

    def start(self) -> ModelLoader:
        self.thread = threading.Thread(target=self.run, name="livewave-loader", daemon=True)
        self.thread.start()
        return self

    def request(self, path: str) -> None:
        self.latest += 1                 # NB: one int written on the control side; the loader only reads it
        self.requests.put((self.latest, path))

    def stop(self) -> None:
        self.requests.put(None)

    def retire(self, generator) -> None:
        self.retired.append((generator, time.monotonic()))

    def run(self) -> None:
        from .checkpoint import load_generator
        from .load_screen import screen
        try:
            # NB: a load is background work: on a machine with few cores the render thread must
            # win the CPU over it. Only niced, not idled: the loader sometimes holds the GIL the
            # render side waits for, so it must still get the CPU promptly (priority inversion).
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)
        except (OSError, AttributeError):
            pass
        while True:
            item = self.requests.get()
            if item is None:
                return
            if item is TRIM:
                self.trims += heap_trim.trim()
                continue
            n, path = item
            if n < self.latest:          # a later request came: this one is not loaded
                self.results.put((n, path, None, None))
                continue
            try:
                with gil_yielding(LOADER_GIL_BUSY, LOADER_GIL_PAUSE):
                    gen = load_generator(path)
                    screen(gen, self._engine().config, block=self._block())
                self.results.put((n, path, gen, None))
            except Exception as exc:     # every failure is an answer; the current model plays on
                self.results.put((n, path, None, load_message(exc, path)))

    def poll(self) -> list[tuple]:
        now = time.monotonic()
        eng = self._engine()
        # NB: the render side drops its reference to a swapped-out generator when the crossfade
        # ends; holding one here moves its deallocation (torch tensors, CUDA graphs) to this thread
        kept = [(g, t) for g, t in self.retired if now - t < RETIRE_AFTER]
        if len(kept) < len(self.retired):
            self.retired = kept           # the last references: freed here (and their cycles, now),
            if self._collect is not None:
                self._collect()           # then the freed pages given back off this thread
            self.requests.put(TRIM)
        done = []
        while True:
            if self.waiting is None:
                try:
                    self.waiting = self.results.get_nowait()
                except queue.Empty:
                    return done
            n, path, gen, err = self.waiting
            if n < self.latest:          # overtaken by a later request: never swapped in
                self.waiting = None
                if gen is not None:
                    self.retired.append((gen, now))     # (freed off the render side, as a retired one)
                done.append(("superseded", path, None))
                continue
            if err is not None:
                self.waiting = None
                done.append(("load_failed", path, err))
                continue
            old = eng.generator
            try:
                eng.swap_generator(gen)
            except RuntimeError:
                return done     # the previous swap is not picked up yet: next round
            self.waiting = None
            self.retired.append((old, now))
            done.append(("loaded", path, gen))
