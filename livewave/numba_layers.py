"""Dense network layers as Numba kernels, shared by the CPU paths of the models (the DDSP
decoder, ``ddsp_decoder_kernel``; the iSTFT vocoder, ``istft_vocoder_kernel``; the flow vocoder,
``flow_vocoder_kernel``; the MIDI-to-mel network, ``midi_to_mel_kernel``): a linear layer on rows
of a 2-D array, a causal dilated convolution over rows with its history, LayerNorm of a row, a
vectorised float32 ``exp`` and the exact GELU. Each is ``nogil`` and allocates nothing; ``frozen``
takes a torch tensor's float32 copy for them.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# reassociation lets LLVM vectorise the dot products; no 'nnan'/'ninf': NaN must stay NaN
FAST = {"reassoc", "contract"}

# exp in float32 by Cody-Waite reduction: x = k ln2 + r, |r| <= ln2 / 2
LOG2E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693359375)            # few mantissa bits: k * LN2_HI is exact
LN2_LO = np.float32(-2.12194440e-4)         # ln 2 - LN2_HI
EXP_HI, EXP_LO = np.float32(88.0), np.float32(-87.0)     # 2**k stays a normal float32
# exp(r) to degree 7 (Taylor); the first term left out is r**8 / 8! < 6e-9 for |r| <= ln2 / 2
T2, T3, T4, T5, T6, T7 = (np.float32(1.0 / math.factorial(i)) for i in range(2, 8))
SQRT_HALF = 1.0 / math.sqrt(2.0)
LN_EPS = 1e-5                               # torch's LayerNorm default, the only one computed here


def frozen(t) -> np.ndarray:
    """A torch tensor's values as a C-ordered float32 numpy copy (a kernel's weights)."""
    return np.ascontiguousarray(t.detach().cpu().numpy(), np.float32)


@njit(nogil=True, cache=True, fastmath=FAST)
def linear(w, b, x, xc, n, n_in, y, yc):
    """y[v, yc + j] = b[j] + w[j, :n_in] . x[v, xc:xc + n_in] for the first ``n`` rows: each
    weight row is read once for all of them (from L1), and used for four rows at a time from
    registers (measured: 1.5x over one row at a time at 16 voices).

    NB: the dot products run on 1-D row views indexed from 0. A 2-D column slice has a stride
    Numba cannot see, and an index like ``xc + i`` may be negative as far as it knows; either
    keeps LLVM from vectorising the sums (measured: 3-4x slower)."""
    for j in range(w.shape[0]):
        wj = w[j]
        bj = b[j]
        v = 0
        while v + 4 <= n:
            x0 = x[v, xc:xc + n_in]
            x1 = x[v + 1, xc:xc + n_in]
            x2 = x[v + 2, xc:xc + n_in]
            x3 = x[v + 3, xc:xc + n_in]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for i in range(n_in):
                wi = wj[i]
                a0 += wi * x0[i]
                a1 += wi * x1[i]
                a2 += wi * x2[i]
                a3 += wi * x3[i]
            y[v, yc + j] = bj + a0
            y[v + 1, yc + j] = bj + a1
            y[v + 2, yc + j] = bj + a2
            y[v + 3, yc + j] = bj + a3
            v += 4
        while v < n:
            xr = x[v, xc:xc + n_in]
            acc = np.float32(0.0)
            for i in range(n_in):
                acc += wj[i] * xr[i]
            y[v, yc + j] = bj + acc
            v += 1


@njit(nogil=True, cache=True, fastmath=FAST)
def exp_row(x, ibits, fbits):
    """``x[:] = exp(x[:])`` in float32 (relative error ~1e-7; NaN stays NaN), in loops LLVM
    vectorises: ``math.exp`` is a scalar libm call, and the decoder makes ~450 a voice a frame,
    half its time at 64 voices before this. ``ibits``/``fbits``: int32 and float32 views of one
    scratch buffer, through which 2**k is built from its exponent bits."""
    m = x.shape[0]
    for j in range(m):
        v = x[j]
        v = EXP_HI if v > EXP_HI else v        # NB: written so that NaN passes through
        v = EXP_LO if v < EXP_LO else v
        k = np.floor(v * LOG2E + np.float32(0.5))
        r = (v - k * LN2_HI) - k * LN2_LO
        x[j] = np.float32(1.0) + r * (np.float32(1.0) + r * (T2 + r * (T3 + r * (T4 + r * (T5 + r * (T6 + r * T7))))))
        ibits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for j in range(m):
        x[j] *= fbits[j]


@njit(nogil=True, cache=True)
def gelu_row(x):
    """The exact GELU, ``x Phi(x)`` (torch's default), of the row ``x`` in place; ``erf`` in
    float64."""
    for j in range(x.shape[0]):
        v = float(x[j])
        x[j] = 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))


@njit(nogil=True, cache=True, fastmath=FAST)
def layer_norm_row(x, g, b):
    """LayerNorm (affine, biased variance, eps ``LN_EPS``) of the row ``x``, in place."""
    width = x.shape[0]
    mean = np.float32(0.0)
    for j in range(width):
        mean += x[j]
    mean /= width
    var = np.float32(0.0)
    for j in range(width):
        d = x[j] - mean
        var += d * d
    inv = np.float32(1.0) / np.sqrt(var / width + np.float32(LN_EPS))
    for j in range(width):
        x[j] = (x[j] - mean) * inv * g[j] + b[j]


@njit(nogil=True, cache=True, fastmath=FAST)
def causal_conv(hist, ctx, dilation, kernel, width, n, w, b, taps, y, yc):
    """``n`` output rows of a causal dilated convolution into ``y[:n, yc:]``: ``hist[ctx:ctx + n]``
    are the new input rows, ``hist[:ctx]`` the ``ctx`` before them (oldest first). Gathers the taps
    (``w``: the torch weight ``[out, in, k]`` laid out as ``[out, k * in]``), then keeps the last
    ``ctx`` input rows as the history."""
    for r in range(n):
        t = taps[r]
        for i in range(kernel):
            src = hist[ctx + r - (kernel - 1 - i) * dilation]
            for c in range(width):
                t[i * width + c] = src[c]
    linear(w, b, taps, 0, n, kernel * width, y, yc)
    for r in range(ctx):            # NB: forwards is safe, the source row is always later
        src = hist[n + r]
        dst = hist[r]
        for c in range(width):
            dst[c] = src[c]


def stacked(arrays, empty: tuple = (0,)) -> np.ndarray:
    """Arrays of one shape (a kernel's per-layer weights) as one C-ordered float32 array
    ``[len(arrays), ...]``; of shape ``empty`` when there are none."""
    return np.ascontiguousarray(np.stack(arrays), np.float32) if len(arrays) else np.zeros(empty, np.float32)


def taps_layout(w) -> np.ndarray:
    """A conv weight ``[out, in, k]`` as ``[out, k * in]``: column ``i * in + c`` is tap ``i`` of
    input ``c`` (``causal_conv``'s gather)."""
    w = w.detach().cpu().numpy()
    return np.ascontiguousarray(w.transpose(0, 2, 1).reshape(w.shape[0], -1), np.float32)
