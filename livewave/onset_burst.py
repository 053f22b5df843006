"""Onsets after silence: how loud a vocoder answers a sound that starts after a second of digital
silence, against the sound itself.

A vocoder's training audio rarely holds digital silence (phrases ring on between notes), so the
history a stream has after a long silence is one its network never met, and a loud onset there
can make it burst: the iSTFT vocoder shipped until stop 19 answered a 440 Hz sawtooth at 0.8 after silence with
32 times full scale in its first frames (2026-12-02; ``istft_vocoder``, Level). The signals here
are out of any instrument's training on purpose (a sawtooth, white noise, a bare sine): the
worst case, where a performer's own input meets the model.

``onset_figures(render, rate)`` plays each of ``onset_signals(rate)`` through ``render`` (audio at
``rate`` in, the vocoder's audio out, aligned or not: the figures are peaks and levels) and gives
for each its onset peak (the largest sample in the first 0.25 s after the onset) and its sustained
RMS (0.5 to 1.5 s after it), both over the input's own. 1 and 1: as loud as what came in.
Threading: plain functions.
"""
from __future__ import annotations

import numpy as np

SILENCE_SECONDS = 1.0
TONE_SECONDS = 2.0


def sawtooth(t: np.ndarray, f0: float, peak: float, rate: int) -> np.ndarray:
    """A band-limited sawtooth at ``f0`` (partials up to 0.48 of ``rate``) scaled to ``peak``, at times ``t``."""
    k = np.arange(1, int(0.48 * rate / f0) + 1)
    x = (np.sin(2 * np.pi * f0 * np.outer(t, k)) / k).sum(1)
    return peak * x / np.abs(x).max()


def onset_signals(rate: int) -> dict[str, np.ndarray]:
    """The test sounds at ``rate`` (float32, ``TONE_SECONDS`` each), by name."""
    t = np.arange(int(TONE_SECONDS * rate)) / rate
    noise = np.random.default_rng(0).standard_normal(t.size)
    return {name: x.astype(np.float32) for name, x in (
        ("sawtooth 440 Hz, 0.8 peak", sawtooth(t, 440.0, 0.8, rate)),
        ("sawtooth 880 Hz, 0.8 peak", sawtooth(t, 880.0, 0.8, rate)),
        ("white noise, 0.2 RMS", 0.2 * noise / noise.std()),
        ("sine 220 Hz, 0.3 peak", 0.3 * np.sin(2 * np.pi * 220.0 * t)))}


def onset_figures(render, rate: int) -> dict[str, tuple[float, float]]:
    """``{signal: (onset peak over the input's peak, sustained RMS over the input's)}``, each
    signal after ``SILENCE_SECONDS`` of silence through ``render`` (a function of audio)."""
    lead = int(SILENCE_SECONDS * rate)
    out = {}
    for name, x in onset_signals(rate).items():
        y = np.asarray(render(np.concatenate([np.zeros(lead, np.float32), x])), np.float64)
        if not np.isfinite(y).all():
            out[name] = (float("inf"), float("inf"))
            continue
        onset = np.abs(y[lead:lead + rate // 4]).max()
        steady = y[lead + rate // 2:lead + 3 * rate // 2]
        out[name] = (round(float(onset / np.abs(x).max()), 3),
                     round(float(np.sqrt((steady ** 2).mean()) / np.sqrt((x[rate // 2:3 * rate // 2] ** 2).mean())), 3))
    return out
