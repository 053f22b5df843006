"""Monophonic pitch tracking: YIN (de Cheveigné & Kawahara 2002) on a hop grid.

Framing is that of :func:`livewave.loudness.frame_loudness`: ``frames = len(audio) // hop``,
frame ``k`` centred at sample ``k * hop``, zeros beyond the audio's ends.

Per frame (``W = tau_max + 1`` samples of integration window, ``tau_max = ceil(sr / fmin)``):
the difference function ``d(tau) = sum_j (x_j - x_{j+tau})^2`` comes from an FFT
cross-correlation plus running energies, is normalised by its cumulative mean (``d'``), the
first dip below ``threshold`` (followed down to its local minimum) gives the period, and a
parabola through ``d'`` around it refines the period to a fraction of a sample. Frames with
no dip below the threshold are unvoiced: ``f0 = 0``. Periodicity is ``1 - d'`` at the chosen
lag (at the global minimum for unvoiced frames), so it is at most ``1 - threshold`` there.

Threading: pure functions, no shared state; vectorised numpy in chunks of frames. Not for
the audio thread.
"""
from __future__ import annotations

import math

import numpy as np

from .loudness import frame_matrix

_CHUNK_FRAMES = 2048
_SILENCE_POWER = 1e-10          # mean square below -100 dBFS: no pitch to find
_MIN_FINE_PERIOD = 32           # oversample the lag grid so the shortest period spans this many
_MAX_OVERSAMPLE = 4             # steps (narrow dips are missed or biased on a coarse grid)


def yin(audio, sample_rate: int, hop: int, fmin: float = 40.0, fmax: float = 2000.0,
        threshold: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """``(f0_hz float32 [frames], periodicity float32 [frames])``; ``f0 = 0`` where unvoiced."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"yin wants mono audio [samples], got shape {x.shape}")
    if hop < 1:
        raise ValueError(f"yin: bad hop {hop}")
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"yin: need 0 < fmin < fmax < Nyquist, got fmin {fmin}, fmax {fmax} "
                         f"at {sample_rate} Hz")
    tau_min = max(2, int(math.floor(sample_rate / fmax)))
    tau_max = int(math.ceil(sample_rate / fmin))
    q = min(_MAX_OVERSAMPLE, max(1, -(-_MIN_FINE_PERIOD // tau_min)))
    w = tau_max + 1
    length = w + tau_max + 1                       # lags 0..tau_max+1 over a window of w
    nfft = 1 << (length - 1).bit_length()
    frames = len(x) // hop
    f0 = np.zeros(frames, dtype=np.float32)
    per = np.zeros(frames, dtype=np.float32)
    mat = frame_matrix(x, hop, length, frames)
    lags = np.arange(tau_max + 2)
    fine = np.arange(q * (tau_max + 1) + 1)        # lag = fine / q
    lo, frac = fine // q, (fine % q) / q
    hi = np.minimum(lo + 1, tau_max + 1)
    for a in range(0, frames, _CHUNK_FRAMES):
        fr = mat[a:a + _CHUNK_FRAMES]
        fr = fr - fr.mean(axis=1, keepdims=True)
        cross = np.conj(np.fft.rfft(fr[:, :w], nfft, axis=1)) * np.fft.rfft(fr, nfft, axis=1)
        # band-limited (spectrally interpolated) cross-correlation at lags fine / q
        r = np.fft.irfft(cross, q * nfft, axis=1)[:, :len(fine)] * q
        cs = np.concatenate([np.zeros((len(fr), 1)), np.cumsum(fr * fr, axis=1)], axis=1)
        energy = cs[:, lags + w] - cs[:, lags]      # sum of x^2 over the window shifted by tau
        e_tau = energy[:, lo] * (1.0 - frac) + energy[:, hi] * frac
        d = np.maximum(energy[:, :1] + e_tau - 2.0 * r, 0.0)
        d[:, 0] = 0.0
        cum = np.cumsum(d, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dn = np.where(cum > 0, d * fine / cum, 1.0)
        dn[:, 0] = 1.0
        f, p = _pick(dn, q * tau_min, q * tau_max, threshold)
        silent = energy[:, 0] < _SILENCE_POWER * w
        f0[a:a + len(fr)] = np.where(silent, 0.0, f * (sample_rate * q))
        per[a:a + len(fr)] = np.where(silent, 0.0, p)
    return _recentre(f0, hop, w, sample_rate), per


def _recentre(f0: np.ndarray, hop: int, w: int, sample_rate: int) -> np.ndarray:
    """The samples that frame k's estimate of period P rests on are centred ``(w - P) / 2``
    before ``k * hop`` (the difference function looks ahead by the lag). Move the estimates to
    where they belong: interpolate log f0 back onto the grid within each voiced run."""
    k = np.flatnonzero(f0 > 0)
    if k.size < 2:
        return f0
    run = np.cumsum(np.diff(k, prepend=-2) > 1) * 1e12      # runs far apart: no interpolation across
    pos = np.maximum.accumulate(k * hop - (w - sample_rate / f0[k].astype(np.float64)) / 2 + run)
    out = f0.copy()
    out[k] = np.exp(np.interp(k * hop + run, pos, np.log(f0[k].astype(np.float64))))
    return out


def _pick(dn: np.ndarray, tau_min: int, tau_max: int, threshold: float):
    """Period choice on ``dn [frames, > tau_max + 1]`` (lags in grid steps): the first dip under
    the threshold, followed down to its local minimum, refined by a parabola. Returns
    ``(1 / period, periodicity)`` per frame, ``1 / period`` in cycles per grid step, 0 where
    unvoiced."""
    n = len(dn)
    rows = np.arange(n)
    band = dn[:, tau_min:tau_max + 1]
    below = band < threshold
    voiced = below.any(axis=1)
    first = np.argmax(below, axis=1)
    # follow the dip down: the first lag at or after `first` whose successor is not lower
    rising = dn[:, tau_min + 1:tau_max + 2] >= band
    after = np.arange(band.shape[1])[None, :] >= first[:, None]
    down = rising & after
    bottom = np.where(down.any(axis=1), np.argmax(down, axis=1), band.shape[1] - 1)
    tau = tau_min + np.where(voiced, bottom, np.argmin(band, axis=1))
    y0, y1, y2 = dn[rows, tau - 1], dn[rows, tau], dn[rows, tau + 1]
    den = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(den > 0, 0.5 * (y0 - y2) / den, 0.0)
    shift = np.clip(shift, -1.0, 1.0)
    period = tau + shift
    depth = np.clip(y1 - 0.25 * (y0 - y2) * shift, 0.0, 1.0)
    return np.where(voiced, 1.0 / period, 0.0), 1.0 - depth


def fill_unvoiced(f0, voiced) -> np.ndarray:
    """``f0 [frames]`` made continuous: across each unvoiced gap the pitch is interpolated
    geometrically (linear in cents) between the voiced frames on either side; before the first
    and after the last voiced frame it is held. Raises ``ValueError`` with no voiced frame."""
    f = np.asarray(f0, dtype=np.float64)
    v = np.asarray(voiced, dtype=bool) & (f > 0)
    if f.shape != v.shape or f.ndim != 1:
        raise ValueError(f"fill_unvoiced: f0 {f.shape} and voiced {v.shape} must be equal [frames]")
    idx = np.flatnonzero(v)
    if idx.size == 0:
        raise ValueError("fill_unvoiced: no voiced frame to take a pitch from")
    out = np.exp(np.interp(np.arange(len(f)), idx, np.log(f[idx])))
    return out.astype(np.float32)
