"""Streaming resampling (soxr) and the fixed-delay FIFO that evens out bursty stages.

soxr's ``ResampleStream`` gives chunk-independent output (the same samples however the input
is split, measured) but in bursts: nothing for a while, then hundreds of samples. A chain
of such stages (resampler, a model that emits whole frames, another resampler) is paid out
through a ``DelayLine``: a ring primed with a fixed number of samples of silence, so a
pay-out of ``n`` samples never finds it short when the delay covers the chain's worst
shortfall (measured by the owner of the chain, see ``vocoder_instrument``). The output is
then the chain's stream delayed by exactly ``delay`` samples, at any block size; a
shortfall anyway is paid as silence and counted (``underflows``).

Quality: soxr's "LQ" (a windowed-sinc filter) by default. Its delay and bursts are a few
ms; "MQ" and "HQ" cost 15 to 40 ms more at 22.05 <-> 48 kHz (measured), too much for live play.
Threading: one object per stream, used from one thread (the render side); the ring is
preallocated, soxr's output arrays are allocated by the binding.
"""
from __future__ import annotations

import numpy as np


class Resampler:
    """Mono float32, ``in_rate`` -> ``out_rate``; the identity when they are equal."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "LQ"):
        self.in_rate, self.out_rate, self.quality = int(in_rate), int(out_rate), quality
        self.identity = self.in_rate == self.out_rate
        self.reset()

    def reset(self) -> None:
        if self.identity:
            self.stream = None
            return
        import soxr
        self.stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality)

    def process(self, x: np.ndarray) -> np.ndarray:
        return x if self.stream is None else self.stream.resample_chunk(x)


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
