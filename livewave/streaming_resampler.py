"""Streaming resampling, and the fixed-delay FIFO that evens out bursty stages.

``Resampler`` is a windowed-sinc polyphase resampler in Numba, for any pair of integer rates.
Output sample ``n`` lies at input position ``t_n = n * in_rate / out_rate`` and is the sum of the
``2 W`` input samples around it, each weighted by ``h(k - t_n)``: a sinc whose cutoff sits at
``CUTOFF`` of the lower rate, under a Kaiser window of half-width ``W`` (``HALF_WIDTH`` samples of
the lower rate), each phase's weights summed to 1. So the output is aligned with its input (an
impulse at input sample ``k`` peaks at output ``k * out_rate / in_rate``), and sample ``n`` is
given as soon as its last input sample has arrived: ``W`` input samples late, 1.09 ms at any
rate. It is the same samples however the input is split, and it gives them evenly: a call of
``m`` samples gives ``m * out_rate / in_rate`` of them, rounded one way or the other.

Why not soxr: its stream (``ResampleStream``, "LQ"), used here until 2026-12-03, gives the same
samples, but in bursts. At 48 kHz -> 22.05 kHz it gave nothing for about 928 input samples
(19 ms) and then 425-427 at once. A vocoder's chain (resampler, a model that emits whole
frames, another resampler) must be paid out through a ``DelayLine`` long enough for the
worst wait. For a 22.05 kHz vocoder at 48 kHz that delay was 32.8 ms; with this resampler it
is 13.8 ms (measured, ``vocoder_instrument.AudioVocoder.chain_delay``): the shipped iSTFT vocoder,
played from audio in, now sounds 25.4 ms behind its input, against 44.4 ms. Its response is like
soxr LQ's (``tests/test_streaming_resampler.py``): flat to 8 kHz at 22.05 kHz (within 0.01 dB;
soxr 0.16), -6 dB at 9.5 kHz, and every alias and image at least 100 dB down. It allocates
nothing per call (soxr's binding allocated its output).

``DelayLine``: a ring primed with a fixed number of samples of silence, so a pay-out of ``n``
samples never finds it short when the delay covers the chain's worst shortfall (measured by the
owner of the chain, see ``vocoder_instrument``). The output is then the chain's stream delayed
by exactly ``delay`` samples, at any block size; a shortfall anyway is paid as silence and
counted (``underflows``).

Threading: one object per stream, used from one thread (the render side).
"""
from __future__ import annotations

import math
from functools import cache

import numpy as np
from numba import njit

CUTOFF = 0.4314          # the sinc's cutoff (-6 dB), as a fraction of the lower rate: 9.51 kHz at 22.05
HALF_WIDTH = 24          # the window's half-width in samples of the lower rate (the latency: 1.09 ms)
BETA = 10.0              # Kaiser: about 100 dB down outside the transition band
MAX_TABLE = 1 << 22      # weights a table may hold (phases x taps), 16 MB


@cache
def _weights(in_rate: int, out_rate: int) -> tuple[np.ndarray, int, int, int]:
    """(weights ``[phases, 2 W]`` float64, phases L, input step M, W) for ``in_rate`` -> ``out_rate``:
    output ``n`` is at input position ``n M / L``, its phase ``n M mod L``."""
    g = math.gcd(in_rate, out_rate)
    phases, step = out_rate // g, in_rate // g
    down = out_rate < in_rate
    fc = CUTOFF * (out_rate / in_rate if down else 1.0)           # cycles per input sample
    w = int(math.ceil(HALF_WIDTH * (in_rate / out_rate if down else 1.0)))
    if phases * 2 * w > MAX_TABLE:
        raise ValueError(f"resampling {in_rate} Hz to {out_rate} Hz needs {phases} filter phases "
                         f"({phases * 2 * w} weights): choose rates with a larger common divisor")
    frac = np.arange(phases)[:, None] / phases
    tau = (np.arange(2 * w)[None, :] - w + 1) - frac                # tap k - t_n, in (-w, w]
    win = np.i0(BETA * np.sqrt(np.clip(1.0 - (tau / w) ** 2, 0.0, 1.0))) / np.i0(BETA)
    h = 2.0 * fc * np.sinc(2.0 * fc * tau) * win
    h /= h.sum(axis=1, keepdims=True)                               # each phase passes DC at 1
    return np.ascontiguousarray(h), phases, step, w


@njit(nogil=True, cache=True)
def _resample(x, buf, state, h, phases, step, w, out):
    """Append ``x`` to the history ``buf`` and write every output sample whose inputs have all
    arrived into ``out``; returns how many. ``state``: [samples held, absolute index of
    ``buf[0]``, next output index] (indices re-based every ``phases`` outputs)."""
    held, start, n = state[0], state[1], state[2]
    for j in range(x.shape[0]):
        buf[held + j] = x[j]
    held += x.shape[0]
    seen = start + held
    taps = h.shape[1]
    m = 0
    while True:
        q = n * step
        i = q // phases
        if i + w > seen - 1:
            break
        hp = h[q - i * phases]
        base = i - w + 1 - start
        acc = 0.0
        for j in range(max(0, -base), taps):        # before the stream: silence
            acc += hp[j] * buf[base + j]
        out[m] = acc
        m += 1
        n += 1
    drop = (n * step) // phases - w + 1 - start      # what the next output no longer needs
    if drop > 0:
        drop = min(drop, held)
        for j in range(held - drop):
            buf[j] = buf[j + drop]
        held -= drop
        start += drop
    k = n // phases                                  # n -> n - k L moves t_n by k M input samples
    state[0], state[1], state[2] = held, start - k * step, n - k * phases
    return m


class Resampler:
    """Mono float32, ``in_rate`` -> ``out_rate`` (module docstring); the identity when they are equal."""

    def __init__(self, in_rate: int, out_rate: int, max_chunk: int = 1 << 14):
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        if self.in_rate < 1 or self.out_rate < 1:
            raise ValueError(f"resampling {in_rate} Hz to {out_rate} Hz: rates must be positive")
        self.identity = self.in_rate == self.out_rate
        if self.identity:
            return
        self.h, self.phases, self.step, self.w = _weights(self.in_rate, self.out_rate)
        self.max_chunk = int(max_chunk)
        self.buf = np.zeros(2 * self.w + self.max_chunk + 1, np.float32)
        self.out = np.zeros(self.max_chunk * self.out_rate // self.in_rate + 2, np.float32)
        self.state = np.zeros(3, np.int64)

    @property
    def latency(self) -> int:
        """Input samples an output sample waits for after its own position."""
        return 0 if self.identity else self.w

    def reset(self) -> None:
        if not self.identity:
            self.state[:] = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """The output samples that ``x`` (the stream's next input) completes: a view of a buffer
        the next call reuses (``x`` itself for the identity)."""
        if self.identity:
            return x
        x = np.ascontiguousarray(x, np.float32)        # NB: a no-op for the render side's buffers
        if x.shape[0] <= self.max_chunk:
            return self.out[:_resample(x, self.buf, self.state, self.h, self.phases, self.step, self.w, self.out)]
        parts = [self.process(x[i:i + self.max_chunk]).copy() for i in range(0, x.shape[0], self.max_chunk)]
        return np.concatenate(parts)      # longer than any render call: offline use only


def warm_up() -> None:
    """Compile the resampler's kernel before any stream (``generator.preload_families``)."""
    Resampler(8000, 12000).process(np.zeros(64, np.float32))


class DelayLine:
    """A FIFO of float32 samples paid out ``delay`` samples behind what was pushed."""

    def __init__(self, delay: int, capacity: int = 1 << 17):
        if not 0 <= delay < capacity // 2:
            raise ValueError(f"delay line: delay {delay} must be in 0..{capacity // 2 - 1}")
        self.delay = int(delay)
        self.ring = np.zeros(1 << int(np.ceil(np.log2(capacity))), np.float32)
        self.reset()

    def reset(self) -> None:
        self.ring[:] = 0.0
        self.w = self.delay          # NB: the delay is silence already in the ring
        self.r = 0
        self.underflows = 0

    @property
    def available(self) -> int:
        return self.w - self.r

    def push(self, y: np.ndarray) -> None:
        n = y.shape[0]
        size = self.ring.shape[0]
        if self.w + n - self.r > size:
            raise OverflowError("delay line overflow: more pushed than paid out")
        i = self.w & (size - 1)
        k = min(n, size - i)
        self.ring[i:i + k] = y[:k]
        self.ring[:n - k] = y[k:]
        self.w += n

    def pull(self, out: np.ndarray, n: int) -> None:
        """The next ``n`` samples into ``out[:n]``; silence (counted) for what is not there."""
        have = self.w - self.r
        n_ok = n
        if have < n:
            self.underflows += 1
            n_ok = max(have, 0)
            out[n_ok:n] = 0.0
        size = self.ring.shape[0]
        i = self.r & (size - 1)
        k = min(n_ok, size - i)
        out[:k] = self.ring[i:i + k]
        out[k:n_ok] = self.ring[:n_ok - k]
        self.r += n
        if have < n:
            self.w = max(self.w, self.r)      # what came late is dropped: the delay stays fixed
