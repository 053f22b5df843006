"""Post chain (Numba): master gain, DC blocker, true-peak-safe look-ahead limiter.

Order per sample: smoothed master gain -> DC blocker (first-order high-pass, 10 Hz) ->
limiter. Mono or stereo (``channels``): each channel has its own DC blocker and look-ahead,
and the limiter is linked, one gain for both from the louder channel's peak, so a peak on one
side does not pull the image to the other; a stereo pair of equal channels comes out exactly
as the mono chain would give it. The limiter estimates the true (inter-sample) peak with an 8-tap windowed-sinc
4x interpolator, takes the gain each sample needs to stay under the ceiling, holds its
minimum over a short window and smooths it with a moving average of the same length, so
the gain is already down when the peak reaches the output (look-ahead = window + 2
samples, declared as latency). Release is exponential. A final clamp at the ceiling makes
"never above the ceiling" hold for every sample whatever the generator does.

``guard`` checks a generator's raw output: non-finite or absurdly large samples mean the
generator is broken for that block; the engine mutes the block and resets it.

Threading: render side; kernels are ``nogil`` and write into arrays they are given.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# state slots: the gain, channel 0's DC blocker, the limiter's gain and position; then each
# further channel's DC blocker (its x and y at S_DC_MORE + 2 (c - 1))
S_GAIN, S_DC_X, S_DC_Y, S_LIM_G, S_POS, S_DC_MORE = 0, 1, 2, 3, 4, 5


def interpolator_taps() -> np.ndarray:
    """[3, 8] taps giving the signal at 1/4, 2/4, 3/4 between x[3] and x[4] of 8 samples."""
    taps = np.zeros((3, 8))
    for p, frac in enumerate((0.25, 0.5, 0.75)):
        m = np.arange(8) - 3 - frac
        w = 0.5 + 0.5 * np.cos(np.pi * m / 4.5)
        h = np.sinc(m) * w
        taps[p] = h / h.sum()
    return taps


class PostChain:
    def __init__(self, sample_rate: int, ceiling_dbfs: float = -1.0, gain_db: float = 0.0,
                 dc_cutoff_hz: float = 10.0, release_s: float = 0.12, window_s: float = 0.0006, channels: int = 1):
        if channels not in (1, 2):
            raise ValueError(f"post chain: {channels} channels; it is mono (1) or stereo (2)")
        self.sample_rate = sample_rate
        self.channels = channels
        self.ceiling = float(10.0 ** (ceiling_dbfs / 20.0))
        self.window = max(4, int(round(window_s * sample_rate)))
        self.latency = self.window + 2
        self.dc_r = math.exp(-2.0 * math.pi * dc_cutoff_hz / sample_rate)
        self.release = 1.0 - math.exp(-1.0 / (release_s * sample_rate))
        self.gain_coef = 1.0 - math.exp(-1.0 / (0.01 * sample_rate))
        self.taps = interpolator_taps()
        self.hist = np.zeros((channels, 8))           # last 8 input samples (ring by pos)
        self.req = np.ones(self.window)               # required gains (min-hold window)
        self.held = np.ones(self.window)              # min-held gains (moving-average window)
        self.delay = np.zeros((channels, self.latency + 8))   # delayed signal ring
        self.state = np.zeros(S_DC_MORE + 2 * (channels - 1))
        self.gain_db = float(gain_db)                 # as set: what a preset saves
        self.target_gain = float(10.0 ** (gain_db / 20.0))
        self.reset()

    def set_gain_db(self, gain_db: float) -> None:
        self.gain_db = float(gain_db)
        self.target_gain = float(10.0 ** (gain_db / 20.0))   # NB: one float store, read per block

    def reset(self) -> None:
        self.hist[:] = 0.0
        self.req[:] = 1.0
        self.held[:] = 1.0
        self.delay[:] = 0.0
        self.state[:] = 0.0
        self.state[S_GAIN] = self.target_gain
        self.state[S_LIM_G] = 1.0

    def fade_before(self, mix: np.ndarray, pos: int, length: int) -> None:
        """``fade_before`` on this chain's look-ahead ring (render side): ``mix`` is the block
        about to be processed, ``[channels, frames]``; the ramp is cut to what has not played."""
        fade_before(mix, pos, self.delay, int(self.state[S_POS]), min(length, pos + self.latency))

    @property
    def limiter_gain(self) -> float:
        return float(self.state[S_LIM_G])

    def process(self, buf: np.ndarray, n: int) -> None:
        """``buf``: float32 ``[channels, >= n]`` (a mono chain also takes ``[>= n]``), in place."""
        if buf.ndim == 1:
            buf = buf.reshape(1, buf.shape[0])
        if buf.shape[0] != self.channels:
            raise ValueError(f"post chain: a block of {buf.shape[0]} channels for a chain of {self.channels}")
        post_process(buf, n, self.state, self.target_gain, self.gain_coef, self.dc_r, self.ceiling,
                     self.release, self.taps, self.hist, self.req, self.held, self.delay, self.latency)


@njit(nogil=True, cache=True)
def post_process(buf, n, state, target_gain, gain_coef, dc_r, ceiling, release, taps, hist, req,
                 held, delay, latency):
    """``buf[:, :n]`` in place: ``[channels, frames]``, one channel or two (a linked limiter)."""
    g = state[S_GAIN]
    lg = state[S_LIM_G]
    pos = int(state[S_POS])
    w = req.shape[0]
    nd = delay.shape[1]
    nch = buf.shape[0]
    for i in range(n):
        g += (target_gain - g) * gain_coef
        peak = 0.0
        for c in range(nch):
            sx = S_DC_X if c == 0 else S_DC_MORE + 2 * (c - 1)
            x = buf[c, i] * g
            y = x - state[sx] + dc_r * state[sx + 1]
            state[sx] = x
            if abs(y) < 1e-30:
                y = 0.0
            state[sx + 1] = y
            # true-peak estimate of the interval between the 5th and 4th newest samples
            h = hist[c]
            h[pos % 8] = y
            p0 = max(abs(h[(pos - 4) % 8]), abs(h[(pos - 3) % 8]))
            for p in range(3):
                acc = 0.0
                for k in range(8):
                    acc += taps[p, k] * h[(pos - 7 + k) % 8]
                if abs(acc) > p0:
                    p0 = abs(acc)
            if p0 > peak:
                peak = p0
            delay[c, pos % nd] = y
        need = ceiling / peak if peak > ceiling else 1.0
        req[pos % w] = need
        m = 1.0
        for k in range(w):
            if req[k] < m:
                m = req[k]
        held[pos % w] = m
        s = 0.0
        for k in range(w):
            s += held[k]
        ga = s / w
        lg = lg + (1.0 - lg) * release
        if ga < lg:
            lg = ga
        for c in range(nch):
            out = delay[c, (pos - latency) % nd] * lg
            if out > ceiling:
                out = ceiling
            elif out < -ceiling:
                out = -ceiling
            buf[c, i] = out
        pos += 1
    state[S_GAIN] = g
    state[S_LIM_G] = lg
    state[S_POS] = pos % (8 * w * nd)


@njit(nogil=True, cache=True)
def guard(buf, n, limit):
    """True if ``buf[:n]`` is finite and within +-limit."""
    for i in range(n):
        x = buf[i]
        if not (x <= limit and x >= -limit):   # NaN fails both comparisons
            return False
    return True


@njit(nogil=True, cache=True)
def to_int16(src, dst, n):
    """``dst[:n] = src[:n]`` for an int16 device (``[frames, channels]``): scaled by 32767,
    rounded, clipped to +-1 first (no wrap-around), NaN as 0 (the engine's guard already
    silenced it; this is the last line)."""
    for i in range(n):
        for c in range(src.shape[1]):
            x = src[i, c]
            if not (x == x):
                x = 0.0
            elif x > 1.0:
                x = 1.0
            elif x < -1.0:
                x = -1.0
            dst[i, c] = np.int16(np.round(x * 32767.0))


@njit(nogil=True, cache=True)
def peak_abs(buf, n):
    p = 0.0
    for i in range(n):
        a = abs(buf[i])
        if a > p:
            p = a
    return p


@njit(nogil=True, cache=True)
def fade_before(mix, pos, delay, ring_pos, length):
    """A fault at ``mix[:, pos]`` (a block muted from there): the ``length`` samples before it
    go down a linear ramp to the silence, so the cut is a fade, not a step. They are the
    block's own samples before ``pos`` and, for the rest, the newest of the look-ahead ring
    (``delay``, written up to ``ring_pos``), which has not played yet: ``length`` is at most
    ``pos`` plus the chain's latency."""
    nd = delay.shape[1]
    for d in range(1, length + 1):          # d samples before the fault
        g = d / (length + 1.0)
        if d <= pos:
            for c in range(mix.shape[0]):
                mix[c, pos - d] *= g
        else:
            k = (ring_pos - (d - pos)) % nd
            for c in range(delay.shape[0]):
                delay[c, k] *= g


@njit(nogil=True, cache=True)
def fade_out(buf, n, left, length):
    """``buf[:n]`` down a linear ramp: ``left`` samples of ``length`` remain (the gain goes
    ``left / length``, then one step less per sample), silence after them. -> what remains."""
    for i in range(n):
        if left > 0:
            buf[i] *= left / length
            left -= 1
        else:
            buf[i] = 0.0
    return left


@njit(nogil=True, cache=True)
def crossfade(new, old, n, k0, length):
    """``new[:n] = new * g + old * (1 - g)`` with a raised-cosine ``g`` rising from 0 to 1 over
    ``length`` samples; ``k0`` is the position of ``new[0]`` in the fade (absolute, so the
    result does not depend on how blocks split it)."""
    for i in range(n):
        k = k0 + i
        if k >= length:
            return
        g = 0.5 - 0.5 * math.cos(math.pi * (k + 0.5) / length)
        new[i] = new[i] * g + old[i] * (1.0 - g)
