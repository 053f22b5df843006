"""Frame loudness: A-weighted RMS level in dBFS on a hop grid (the DDSP loudness feature).

Framing (shared with :mod:`livewave.pitch_tracker`): ``frames = len(audio) // hop`` and frame
``k`` is centred at sample ``k * hop``; the audio is zero-padded at both edges, so the first
and last frames see partly silence.

Scale: a full-scale-amplitude-``a`` sine at 1 kHz reads ``20 * log10(a / sqrt(2))`` dB (its
RMS level; a = 1 gives -3.01 dB); A-weighting makes low and very high tones read lower, as
the ear hears them. Values are floored at :data:`FLOOR_DB`.

Threading: pure functions, no shared state; vectorised numpy, work done in chunks of frames
so memory stays bounded for long audio. Not for the audio thread (it allocates).
"""
from __future__ import annotations

import numpy as np

FLOOR_DB = -100.0
WINDOW_SECONDS = 0.032
_CHUNK_FRAMES = 4096


def a_weighting_db(freqs_hz) -> np.ndarray:
    """IEC 61672 A-weighting in dB at ``freqs_hz`` (any shape), exactly 0 dB at 1 kHz.
    0 Hz gives -inf (no weight at all)."""
    f2 = np.square(np.asarray(freqs_hz, dtype=np.float64))

    def gain(f2):
        num = 12194.0 ** 2 * f2 * f2
        den = ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2)) * (f2 + 12194.0 ** 2))
        return num / den

    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(gain(f2)) - 20.0 * np.log10(gain(1000.0 ** 2))


def window_size(sample_rate: int) -> int:
    """The analysis window: about 32 ms, rounded to a power of two samples (512 at 16 kHz)."""
    return 1 << int(round(np.log2(WINDOW_SECONDS * sample_rate)))


def frame_matrix(audio: np.ndarray, hop: int, length: int, frames: int) -> np.ndarray:
    """``[frames, length]`` read-only view: row ``k`` holds ``length`` samples centred at
    ``k * hop`` (starting at ``k * hop - length // 2``), zeros beyond the audio's ends."""
    half = length // 2
    padded = np.zeros(frames * hop + length + 1, dtype=audio.dtype)
    n = min(len(audio), len(padded) - half)
    padded[half:half + n] = audio[:n]
    return np.lib.stride_tricks.sliding_window_view(padded, length)[:frames * hop:hop][:frames]


def frame_loudness(audio, sample_rate: int, hop: int) -> np.ndarray:
    """A-weighted RMS level in dBFS per frame: ``float32 [len(audio) // hop]``.

    A Hann window of :func:`window_size` samples centred on each frame; its power spectrum
    weighted by the A-curve (as power) and normalised by the window's energy, so the value is
    the weighted mean-square level of the windowed signal."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"frame_loudness wants mono audio [samples], got shape {x.shape}")
    if hop < 1 or sample_rate < 1:
        raise ValueError(f"frame_loudness: bad hop {hop} or sample rate {sample_rate}")
    frames = len(x) // hop
    n = window_size(sample_rate)
    win = np.hanning(n + 2)[1:-1]                       # periodic-ish, no zero end points
    weight = 10.0 ** (a_weighting_db(np.fft.rfftfreq(n, 1.0 / sample_rate)) / 10.0)
    weight[1:(n + 1) // 2] *= 2.0                        # one-sided spectrum: count both halves
    weight /= n * np.sum(win ** 2)                       # Parseval, per unit window energy
    out = np.empty(frames, dtype=np.float32)
    mat = frame_matrix(x, hop, n, frames)
    for a in range(0, frames, _CHUNK_FRAMES):
        spec = np.fft.rfft(mat[a:a + _CHUNK_FRAMES] * win, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2) @ weight
        out[a:a + _CHUNK_FRAMES] = 10.0 * np.log10(np.maximum(power, 10.0 ** (FLOOR_DB / 10.0)))
    return out
