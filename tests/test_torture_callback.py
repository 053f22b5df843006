"""Torture: callback hygiene over 10,000 real callbacks (JACK dummy driver, 64-sample blocks).

On the render side (the Python audio callback, or rtmixer's render thread), live: no garbage
collection (``gc.callbacks`` says which thread collected), no lock taken, no sleep, no I/O, no
import (a profiler installed from inside the render thread looks at every call it makes for
1,000 callbacks; a render thread may sleep while it waits for ring space, the audio callback
may not). Meanwhile a thread of this process makes cyclic garbage all along, the way a GUI
does, and the control side collects it (``garbage_collector``), as ``livewave play`` and the
engine process do.

CI runs two live takes (the built-in instrument in the Python callback, the piano played from
MIDI with rtmixer) and allocation runs of the built-in instrument, the piano played from MIDI and
each vocoder family (with its CPU kernel); ``LIVEWAVE_TORTURE=full`` adds a DDSP model and the
vocoders through torch alone. Allocation growth is measured on ``Engine.render`` itself, offline (the callbacks add only
array views): ``tracemalloc`` live on the stream slows the render side several times over and
its snapshots catch blocks in flight.
"""
import gc
import os
import threading
import time
import tracemalloc

import numpy as np
import pytest
from jack_rig import require_jackd, served
from shipped import shipped

pytestmark = [pytest.mark.jack, pytest.mark.torture]
RATE, BLOCK, CALLBACKS = 48000, 64, 10_000

require_jackd()

# what the render side must never call: lock waits, sleeps, I/O, imports, logging
FORBIDDEN_CLASSES = ("lock", "RLock", "TextIOWrapper", "BufferedWriter", "BufferedReader", "BufferedRandom",
                     "FileIO", "socket", "SocketIO", "Connection", "SimpleQueue")
FORBIDDEN_FUNCTIONS = ("sleep", "open", "print", "__import__", "select", "poll", "read", "write", "fsync")
FORBIDDEN_PY = ("/threading.py", "/queue.py", "/logging/", "/importlib/", "/socket.py", "/selectors.py")


def forbidden(c_calls: set[str], py_files: set[str], allowed=()) -> list[str]:
    bad = []
    for q in c_calls:
        cls, _, name = q.rpartition(".")
        if q not in allowed and (cls in FORBIDDEN_CLASSES or (not cls and name in FORBIDDEN_FUNCTIONS)):
            bad.append(q)
    return sorted(bad) + sorted(f for f in py_files if any(m in f for m in FORBIDDEN_PY))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from served(tmp_path_factory, RATE, BLOCK)


class RenderSideProbe:
    """Hooks run by the render side itself: count callbacks, name the thread, profile a window."""

    def __init__(self, window: tuple[int, int]):
        self.calls = 0
        self.thread = None
        self.window = window
        self.c_calls: set[str] = set()
        self.py_files: set[str] = set()

    def _profile(self, frame, event, arg):
        if event == "c_call":
            self.c_calls.add(getattr(arg, "__qualname__", None) or getattr(arg, "__name__", repr(arg)))
        elif event == "call":
            self.py_files.add(frame.f_code.co_filename)

    def pre_render(self) -> None:
        self.calls += 1
        if self.calls == self.window[0]:              # NB: not the first: rtmixer's prefill runs in start()
            import sys
            self.thread = threading.get_ident()
            sys.setprofile(self._profile)

    def post_render(self, block) -> None:
        if self.calls == self.window[1]:
            import sys
            sys.setprofile(None)


def _load(model: str):
    from livewave.checkpoint import load_generator
    return None if model == "default" else load_generator(f"models/{model}.safetensors")


DDSP = [p.stem for p in shipped("ddsp")[:1]]
MIDI2MEL = [p.stem for p in shipped("midi2mel")[:1]]
VOCODERS = [p.stem for f in ("istft", "flow") for p in shipped(f)[:1]]
FULL = os.environ.get("LIVEWAVE_TORTURE") == "full"
# CI: the strictest placement with the built-in instrument, the app's with a torch model
# ("default", "callback", "take"): the same with a take recording (take_recorder: the render
# side only copies into its rings, the writer thread does the file I/O) and the reverb on
LIVE = [("default", "callback", ""), ("default", "callback", "take")] + [(m, "rtmixer", "") for m in MIDI2MEL]
if FULL:
    LIVE += [("default", "rtmixer", "")] + [(m, "callback", "") for m in DDSP]


@pytest.mark.parametrize("model, placement, take", LIVE)
def test_ten_thousand_callbacks_without_gc_on_the_render_side_locks_or_io(server, placement, model, take, tmp_path):
    from livewave.audio_io import AudioOutput
    from livewave.engine import Engine
    from livewave.garbage_collector import OffAudioThread
    from livewave.generator import preload_families

    preload_families()
    probe = RenderSideProbe(window=(4000, 5000))
    out = AudioOutput(Engine(generator=_load(model)), device="system", block=BLOCK, policy=placement, ahead=4).open()
    out.pre_render, out.post_render = probe.pre_render, probe.post_render
    collections: list[int] = []

    def on_gc(phase, info):
        if phase == "start":
            collections.append(threading.get_ident())

    stop = threading.Event()

    def gui_like():                                  # cyclic garbage all the time (~20,000 cycles/s)
        while not stop.is_set():
            for _ in range(20):
                a, b = [], {}
                a.append(b)
                b["a"] = a
            time.sleep(0.001)

    collector = OffAudioThread().start()
    gc.callbacks.append(on_gc)
    gui = threading.Thread(target=gui_like, daemon=True)
    recorder = None
    if take:
        from livewave.take_recorder import TakeRecorder
        recorder = TakeRecorder(tmp_path / "take.wav", RATE, tmp_path / "take.mid").start()
        out.engine.start_take(recorder)
        out.engine.set_reverb(send=0.4)
    try:
        out.start()
        gui.start()
        notes = 0
        t_end = time.monotonic() + 3 * CALLBACKS * BLOCK / RATE + 30
        while probe.calls < CALLBACKS and time.monotonic() < t_end:
            time.sleep(0.05)
            collector.tick()                          # the control side collects
            notes += 1
            out.engine.push_midi(0x90 if notes % 2 else 0x80, 48 + (notes // 2) % 24, 100)
    finally:
        stop.set()
        gui.join(5)
        gc.callbacks.remove(on_gc)
        collector.stop()
        out.stop()
        if recorder is not None:
            out.engine.stop_take()
            summary = recorder.finish()
            assert summary["seconds"] * RATE >= probe.calls * BLOCK and summary["events"] > 0, summary
            assert summary["dropped_samples"] == 0 and summary["error"] is None, summary
        import livewave.audio_io as aio
        aio.sounddevice()._terminate()
        aio._sd = None
    what = f"{model}, {placement}" + (", recording a take, the reverb on" if take else "")
    print(f"{what}: {probe.calls} callbacks, {out.stats.xruns} xruns; collections by the control "
          f"side: {collector.collections} (longest {collector.longest * 1e3:.2f} ms), by any thread: "
          f"{len(collections)}; the render side called {len(probe.c_calls)} C functions and "
          f"{len(probe.py_files)} Python files")
    assert probe.calls >= CALLBACKS, f"only {probe.calls} callbacks came"
    assert probe.thread is not None and probe.thread not in collections, "the collector ran on the render side"
    assert collector.collections > 0                  # the GUI thread's garbage was collected
    # a render thread waits for ring space by sleeping (not on a lock); the audio callback never
    bad = forbidden(probe.c_calls, probe.py_files, allowed=("sleep",) if placement != "callback" else ())
    assert not bad, f"the render side called {bad}"


# the vocoders with their CPU kernels, and in full also through torch's steps alone (":torch", as
# on a GPU): there a no-op Tensor.to(dtype) per frame held up to 10 KB (tensor_cast, stop 33)
@pytest.mark.parametrize("model", ["default"] + MIDI2MEL + VOCODERS
                         + (DDSP + [f"{v}:torch" for v in VOCODERS] if FULL else []))
def test_render_allocations_stay_flat_over_ten_thousand_blocks(model, monkeypatch):
    """What ``Engine.render`` (all the callback calls, the reverb on) allocates and keeps, traced from before
    a warm-up: objects a generator keeps and replaces as it plays (per-note state, torch's
    caches) must be traced from the start, or the turnover of an untraced set looks like
    growth until all of it is replaced (measured on the piano played from MIDI: ~15 KB over
    15,000 blocks, flat from there). Snapshots between blocks: nothing in flight."""
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    model, _, path = model.partition(":")
    if path == "torch":
        monkeypatch.setenv("LIVEWAVE_CPU_KERNELS", "0")
    eng = Engine(EngineConfig(sample_rate=RATE, max_block=4096, reverb_send=0.3), _load(model)).prepare()
    out = np.zeros((BLOCK, eng.config.channels), np.float32)
    ain = (0.1 * np.random.default_rng(0).standard_normal((BLOCK, 1))).astype(np.float32)
    flt = [tracemalloc.Filter(True, "*livewave/*"), tracemalloc.Filter(False, "*tracemalloc*")]

    def block(i: int) -> None:
        if i % 25 == 0:
            eng.push_event(eng.sample_time, 0x90 if i % 50 == 0 else 0x80, 48 + (i // 50) % 24, 100)
        eng.render(out, ain)

    tracemalloc.start(1)
    try:
        for i in range(2000):
            block(i)
        held = []
        for i in range(2000, 2000 + CALLBACKS + 1):
            if i % 2000 == 0:
                held.append(sum(st.size for st in tracemalloc.take_snapshot().filter_traces(flt).statistics("filename")))
            block(i)
    finally:
        tracemalloc.stop()
    print(f"{model}: bytes held by livewave's lines every 2,000 blocks: {held}")
    assert np.abs(out).max() > 0
    assert held[-1] - held[0] <= 1024 and max(held) - min(held) <= 4096, held
