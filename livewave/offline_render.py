"""Offline render of a Standard MIDI File through the live path, driven by a virtual clock.

The song's events are pushed into the engine's event queue with their sample times, a
block at a time, and ``Engine.render`` is called exactly as the audio callback calls it.
So an offline render is a test of what a performer hears, and the same song rendered at
any block size gives the same samples.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .engine import Engine
from .smf import MidiSong


def render_events(engine: Engine, events, duration_s: float, block: int = 256,
                  tail_s: float | None = None, progress=None) -> np.ndarray:
    """Render ``events`` [(seconds, status, d1, d2)] -> float32 ``[frames, channels]``.
    Rendering continues after the last event until every voice has finished (at most
    ``tail_s``, default release time + 1 s)."""
    sr = engine.config.sample_rate
    if tail_s is None:
        tail_s = engine.config.envelope.release_s + 1.0
    total = int(np.ceil((duration_s + tail_s) * sr)) + 1
    out = np.zeros((total, engine.config.channels), np.float32)
    times = [int(round(t * sr)) for t, *_ in events]
    i, pos, n_ev = 0, 0, len(events)
    last_event = times[-1] if times else 0
    while pos < total:
        b = min(block, total - pos)
        end = pos + b
        while i < n_ev and times[i] < end:
            _, s, d1, d2 = events[i]
            engine.push_event(times[i], s, d1, d2)
            i += 1
        engine.render(out[pos:end])
        pos = end
        if progress is not None:
            progress(pos, total)
        if i >= n_ev and pos > last_event + engine.post.latency and engine.voices.active_count == 0 \
                and pos > int(duration_s * sr):
            out = out[:pos + engine.post.latency]
            break
    return out


class ProgressBar:
    """A one-line progress bar on stderr: percent, x real time, ETA."""

    def __init__(self, sample_rate: int, label: str = "render", stream=sys.stderr):
        self.sr = sample_rate
        self.label = label
        self.stream = stream
        self.t0 = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        el = max(1e-9, now - self.t0)
        frac = done / max(1, total)
        speed = done / self.sr / el
        eta = (total - done) / self.sr / max(speed, 1e-9)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}%  {speed:6.1f}x real time  ETA {eta:5.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def render_song(engine: Engine, song: MidiSong, block: int = 256, progress=None) -> np.ndarray:
    return render_events(engine, song.events, song.duration, block=block, progress=progress)
