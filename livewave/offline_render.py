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
                  tail_s: float | None = None, progress=None, max_hang_s: float = 30.0,
                  start_sample: int = 0) -> np.ndarray:
    """Render ``events`` [(seconds, status, d1, d2)] -> float32 ``[frames, channels]``.

    The length is the song plus ``tail_s`` (default: ``Engine.tail_s`` + 0.5 s: the release, and
    with the reverb on its decay to -60 dB and pre-delay); if notes are still
    sounding then (a pedal never lifted), it goes on in half-second steps until they end, at
    most ``max_hang_s``. The length depends only on the song, never on the block size.
    ``start_sample``: the engine's clock at the song's start (a take recorded live replays
    where it was played: ``MidiSong.take_start``); a fresh engine starts at 0."""
    sr = engine.config.sample_rate
    if start_sample:
        engine.sample_time = int(start_sample)
    if tail_s is None:
        tail_s = engine.tail_s + 0.5      # the release, and the reverb's room to -60 dB when it is on
    step = sr // 2
    total = int(np.ceil((duration_s + tail_s) * sr)) + engine.latency_samples
    limit = total + int(max_hang_s * sr)
    chunks = []
    times = [int(round(t * sr)) for t, *_ in events]
    i, pos, n_ev = 0, 0, len(events)
    target = total
    while pos < target:
        buf = np.zeros((target - pos, engine.config.channels), np.float32)
        for j in range(0, buf.shape[0], block):
            b = min(block, buf.shape[0] - j)
            end = pos + b
            while i < n_ev and times[i] < end:
                _, st, d1, d2 = events[i]
                engine.push_event(start_sample + times[i], st, d1, d2)
                i += 1
            engine.render(buf[j:j + b])
            pos = end
            if progress is not None:
                progress(pos, target)
        chunks.append(buf)
        if engine.voices.active_count > 0 and target < limit:
            target = min(limit, target + step)
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]


class ProgressBar:
    """A one-line progress bar on stderr: percent, x real time, ETA."""

    def __init__(self, sample_rate: int, label: str = "render", stream=sys.stderr):
        self.sr = sample_rate
        self.label = label
        self.stream = stream
        self.t0 = time.perf_counter()
        self._last = 0.0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._next_quarter = 0.25

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        frac = done / max(1, total)
        if not self.tty:                       # a log, not a terminal: a line per quarter
            if frac < self._next_quarter and done < total:
                return
            self._next_quarter = (int(frac * 4) + 1) / 4
        elif now - self._last < 0.1 and done < total:
            return
        self._last = now
        el = max(1e-9, now - self.t0)
        speed = done / self.sr / el
        eta = (total - done) / self.sr / max(speed, 1e-9)
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {frac * 100:5.1f}%  {speed:6.1f}x real time  ETA {eta:5.1f}s"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if done >= total and self.tty:
            self.stream.write("\n")
        self.stream.flush()


def render_audio(engine: Engine, audio_in: np.ndarray, block: int = 256, progress=None) -> np.ndarray:
    """Feed ``audio_in`` (float32 ``[frames, channels]`` at the engine's rate) through the live
    path as a duplex stream's input would arrive, a block at a time, and return the output
    aligned with it: the engine's declared latency is rendered past the end (on silence) and
    cut from the front. Block-size independent like ``render_events``."""
    sr_lat = engine.latency_samples
    n = audio_in.shape[0]
    total = n + sr_lat
    ch_in = max(1, engine.config.input_channels)
    src = np.zeros((total, ch_in), np.float32)
    k = min(ch_in, audio_in.shape[1])
    src[:n, :k] = audio_in[:, :k]
    out = np.zeros((total, engine.config.channels), np.float32)
    for j in range(0, total, block):
        b = min(block, total - j)
        engine.render(out[j:j + b], src[j:j + b])
        if progress is not None:
            progress(j + b, total)
    return out[sr_lat:]


def render_song(engine: Engine, song: MidiSong, block: int = 256, progress=None) -> np.ndarray:
    """A take recorded at this engine's rate replays on the clock it was played on."""
    start = song.take_start[0] if song.take_start and song.take_start[1] == engine.config.sample_rate else 0
    return render_events(engine, song.events, song.duration, block=block, progress=progress, start_sample=start)
