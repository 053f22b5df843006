"""Log-mel analysis, offline or streamed block by block with the same numbers (Numba).

What a vocoder is conditioned on: frames of ``n_fft`` samples every ``hop`` samples, a Hann
window, the magnitude spectrum, a mel filterbank (Slaney's mel scale with area-normalised
triangles, as librosa's default and the MelGAN/HiFi-GAN reference code use), then
``log(max(floor, x))`` (natural log, HiFi-GAN) or ``log10`` (MelGAN).

Framing is causal: frame ``t`` covers samples ``[(t + 1) * hop - n_fft, (t + 1) * hop)``,
the stream's past padded with zeros, so frame ``t`` is ready as soon as sample
``(t + 1) * hop - 1`` has arrived and a live input can be analysed with ``hop`` samples of
granularity and ``n_fft`` of window. ``analyse(x)`` (offline) and ``MelStream.push(block)``
(streaming, any block sizes) give equal frames (tests/test_mel_analysis.py).

The FFT is an iterative radix-2 real FFT compiled with Numba (``nogil``, no allocation per
frame): ``push`` may run on the render side. ``n_fft`` must be a power of two.
Threading: one ``MelStream`` per thread.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


def hz_to_mel(f):
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3.0)
    log_step = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / log_step, lin)


def mel_to_hz(m):
    m = np.asarray(m, np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(log_step * (m - 15.0)), m * (200.0 / 3.0))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangles between mel-spaced edges, each scaled by
    2 / (its bandwidth in Hz) (Slaney's area normalisation)."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"mel filterbank: need 0 <= fmin < fmax <= {sample_rate / 2:g} Hz; got {fmin}, {fmax}")
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down))
    return (fb * (2.0 / (hi - lo))).astype(np.float32)


def fft_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit-reversal permutation and twiddles (cos, -sin) of an ``n``-point complex FFT."""
    if n < 2 or n & (n - 1):
        raise ValueError(f"the FFT size must be a power of two, got {n}")
    bits = n.bit_length() - 1
    rev = np.array([int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)], np.int64)
    k = np.arange(n // 2)
    tw = np.stack([np.cos(2 * np.pi * k / n), -np.sin(2 * np.pi * k / n)], axis=1)
    return rev, tw


@njit(nogil=True, cache=True)
def fft_magnitude(frame, window, rev, tw, re, im, mag):
    """|FFT(frame * window)| for bins 0..n/2 into ``mag`` (re, im: scratch of n)."""
    fft_windowed(frame, window, rev, tw, re, im)
    for k in range(frame.shape[0] // 2 + 1):
        mag[k] = math.sqrt(re[k] * re[k] + im[k] * im[k])


@njit(nogil=True, cache=True)
def fft_windowed(frame, window, rev, tw, re, im):
    """FFT(frame * window) into ``re``, ``im`` (n each). Radix-2, decimation in time, in place."""
    n = frame.shape[0]
    for i in range(n):
        j = rev[i]
        re[j] = frame[i] * window[i]
        im[j] = 0.0
    fft_butterflies(re, im, tw)


@njit(nogil=True, cache=True)
def fft_butterflies(re, im, tw):
    """The butterflies of a radix-2 FFT, decimation in time, in place on ``re``, ``im`` (n each,
    already in bit-reversed order; ``tw`` from ``fft_tables(n)``)."""
    n = re.shape[0]
    size = 2
    while size <= n:
        half = size // 2
        step = n // size
        for start in range(0, n, size):
            for k in range(half):
                wr = tw[k * step, 0]
                wi = tw[k * step, 1]
                a = start + k
                b = a + half
                tr = re[b] * wr - im[b] * wi
                ti = re[b] * wi + im[b] * wr
                re[b] = re[a] - tr
                im[b] = im[a] - ti
                re[a] += tr
                im[a] += ti
        size *= 2


@njit(nogil=True, cache=True)
def log_mel_frame(mag, fb, floor, log10, out):
    """``out[m] = log(max(floor, sum_k fb[m, k] * mag[k]))``."""
    for m in range(fb.shape[0]):
        acc = 0.0
        for k in range(fb.shape[1]):
            acc += fb[m, k] * mag[k]
        v = max(floor, acc)
        out[m] = math.log10(v) if log10 else math.log(v)


@njit(nogil=True, cache=True)
def push_samples(x, ring, pos, hop, frame, window, rev, tw, re, im, mag, fb, floor, log10, out, n_out):
    """Append ``x`` to the analysis ring (the last n_fft samples; ``pos[0]`` = samples seen)
    and write a log-mel frame into ``out[n_out + i]`` each time a hop completes. Returns the
    number of frames written."""
    n_fft = ring.shape[0]
    made = 0
    for i in range(x.shape[0]):
        ring[pos[0] % n_fft] = x[i]
        pos[0] += 1
        if pos[0] % hop == 0:
            start = pos[0]            # the frame is the n_fft samples ending at pos (zeros before 0)
            for j in range(n_fft):
                s = start - n_fft + j
                frame[j] = ring[s % n_fft] if s >= 0 else 0.0
            fft_magnitude(frame, window, rev, tw, re, im, mag)
            log_mel_frame(mag, fb, floor, log10, out[n_out + made])
            made += 1
    return made


class MelStream:
    """Streaming log-mel analysis of one signal. ``push(block)`` returns the frames that
    block completed, ``[frames, n_mels]`` (a view of a buffer reused by the next push:
    copy what you keep)."""

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
                 fmin: float = 0.0, fmax: float | None = None, floor: float = 1e-5, log10: bool = False,
                 max_block: int = 8192):
        if hop < 1 or hop > n_fft:
            raise ValueError(f"mel analysis: hop {hop} must be in 1..n_fft ({n_fft})")
        self.sample_rate, self.n_fft, self.hop, self.n_mels = int(sample_rate), int(n_fft), int(hop), int(n_mels)
        self.floor, self.log10 = float(floor), bool(log10)
        self.fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).astype(np.float64)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))    # periodic Hann
        self.rev, self.tw = fft_tables(n_fft)
        self.ring = np.zeros(n_fft, np.float64)
        self.pos = np.zeros(1, np.int64)
        self.frame = np.zeros(n_fft, np.float64)
        self.re = np.zeros(n_fft, np.float64)
        self.im = np.zeros(n_fft, np.float64)
        self.mag = np.zeros(n_fft // 2 + 1, np.float64)
        self.max_block = int(max_block)
        self.out = np.zeros((self.max_block // self.hop + 1, n_mels), np.float32)
        self.push(np.zeros(1, np.float32))      # compile now, not on the render side
        self.reset()

    def reset(self) -> None:
        self.ring[:] = 0.0
        self.pos[0] = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        """``block``: mono float32 (other types are converted: a copy, not for the render side)."""
        block = np.asarray(block, np.float32)
        if block.ndim != 1:
            raise ValueError(f"mel analysis: a block is mono [frames]; got shape {block.shape}")
        if block.shape[0] > self.max_block:
            raise ValueError(f"mel analysis: block of {block.shape[0]} samples > max_block {self.max_block}")
        n = push_samples(block, self.ring, self.pos, self.hop, self.frame, self.window, self.rev, self.tw,
                         self.re, self.im, self.mag, self.fb, self.floor, self.log10, self.out, 0)
        return self.out[:n]


def analyse(x: np.ndarray, sample_rate: int, **kw) -> np.ndarray:
    """Offline: ``[frames, n_mels]`` for a whole mono signal, frame t ending at sample (t+1)*hop."""
    x = np.asarray(x, np.float32)
    st = MelStream(sample_rate, max_block=max(1, x.shape[0]), **kw)
    return st.push(x).copy()
