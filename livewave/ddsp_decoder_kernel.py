"""The DDSP decoder's per-frame step (``DDSPDecoder.step``) as a Numba kernel: the CPU path.

The decoder is small (the shipped ones: ~190 k parameters, ~190 k multiply-adds per voice and
frame), so on a CPU the step's cost was torch's, not the arithmetic's: a TorchScript trace of
it took 350-670 us a frame (median, 16 voices, this 2-core VM) in some forty operator calls,
and more after the render thread had slept between blocks (its code and data gone from the
caches). At 64-sample blocks that put one block in three at ~95% of the block's duration,
with spikes of 5x, and the violin under-ran the engine's ring 1-3 times a second
(``benchmarks/RESULTS.md``, "engine alone"). This kernel does the same arithmetic in one
``nogil`` call with no allocation, for the active voices only, all of them through each layer
together (each weight row read once a frame). Side by side (``benchmarks/decoder_step.py``):
4-7x faster than the trace at 1-3 voices, 1.4-2.7x at 16, about even at 64 (there torch's
matrix products outrun the kernel's dot products).

Same numbers as ``DDSPDecoder.step`` up to float32 rounding (tested): Linear, LayerNorm
(biased variance, eps 1e-5), LeakyReLU(0.2), PyTorch's GRU cell (gates r, z, n), the head, DDSP's
``exp_sigmoid`` and a softmax over the harmonics below ``nyquist`` (all zero when none is).

The weights are float32 copies taken when the instrument is prepared; the torch module stays
the model (training, the CUDA path, ``forward``). Threading: ``step`` runs on the render side
and touches only the arrays made in ``__init__`` and the caller's.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .numba_layers import FAST, LN_EPS, exp_row, frozen, layer_norm_row, linear

LEAK = 0.2
LOG_EXPONENT = math.log(10.0)    # exp_sigmoid's exponent: sigmoid(x) ** log(10)
FLOOR_DB = -100.0                # ddsp_model.LOUDNESS_FLOOR_DB


@njit(nogil=True, cache=True, fastmath=FAST)
def _norm_leaky(y, yc, n, width, g, b):
    """LayerNorm (affine) then LeakyReLU of ``y[:n, yc:yc + width]``, in place."""
    for v in range(n):
        row = y[v, yc:yc + width]
        layer_norm_row(row, g, b)
        for j in range(width):
            u = row[j]
            row[j] = u if u >= 0.0 else u * np.float32(LEAK)


@njit(nogil=True, cache=True, fastmath=FAST)
def _sigmoid_row(x, ibits, fbits):
    for j in range(x.shape[0]):
        x[j] = -x[j]
    exp_row(x, ibits, fbits)
    for j in range(x.shape[0]):
        x[j] = np.float32(1.0) / (np.float32(1.0) + x[j])


@njit(nogil=True, cache=True, fastmath=FAST)
def _tanh_row(x, ibits, fbits):
    """tanh x = 1 - 2 / (exp(2x) + 1) (absolute error ~1e-7 near 0)."""
    for j in range(x.shape[0]):
        x[j] = x[j] + x[j]
    exp_row(x, ibits, fbits)
    for j in range(x.shape[0]):
        x[j] = np.float32(1.0) - np.float32(2.0) / (x[j] + np.float32(1.0))


@njit(nogil=True, cache=True)
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(nogil=True, cache=True)
def _exp_sigmoid(x):
    return 2.0 * _sigmoid(x) ** LOG_EXPONENT + 1e-7


@njit(nogil=True, cache=True, fastmath=FAST)
def _mlp(x, xc, n, n_in, w0, b0, g0, c0, w1, b1, g1, c1, mid, y, yc):
    """Linear, LayerNorm, LeakyReLU, twice (``ddsp_model._mlp``), on rows ``:n``."""
    width = w1.shape[0]
    linear(w0, b0, x, xc, n, n_in, mid, 0)
    _norm_leaky(mid, 0, n, width, g0, c0)
    linear(w1, b1, mid, 0, n, width, y, yc)
    _norm_leaky(y, yc, n, width, g1, c1)


@njit(nogil=True, cache=True, fastmath=FAST)
def decoder_step(f0_hz, loudness_db, active, fresh, h, nyquist, amps, mags, weights, scratch, rows, ibits, fbits):
    """One frame for every voice ``v`` with ``active[v] > 0.5``: its hidden state ``h[v]`` is
    advanced (zeroed first where ``fresh[v] > 0.5``, active or not) and ``amps[v]``, ``mags[v]``
    are written. Other voices' rows are left as they were.

    ``weights``: the tuple ``DecoderKernel`` builds; ``scratch`` float32 ``[6, voices, width]``;
    ``rows`` int64 ``[voices]``; ``ibits``, ``fbits``: views of one buffer (``numba_layers.exp_row``). The
    active voices are packed into the first rows of the scratch and every layer runs on all of
    them at once."""
    (fw0, fb0, fg0, fc0, fw1, fb1, fg1, fc1,
     lw0, lb0, lg0, lc0, lw1, lb1, lg1, lc1,
     w_ih, b_ih, w_hh, b_hh,
     ow0, ob0, og0, oc0, ow1, ob1, og1, oc1,
     hw, hb) = weights
    n_mlp = fw1.shape[0]
    n_hid = w_hh.shape[1]
    n_h = amps.shape[1]
    n_bands = mags.shape[1]
    n = 0
    for v in range(h.shape[0]):
        if fresh[v] > 0.5:
            h[v, :] = 0.0
        if active[v] > 0.5:
            rows[n] = v
            n += 1
    if n == 0:
        return
    inp, mid, xz, gi, gh, x = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4], scratch[5]
    # inputs: f0 as MIDI note / 127 and loudness as 0..1 (ddsp_model.scale_f0, scale_loudness);
    # xz holds [h_new, z] as out_mlp takes it, z = [f0 branch, loudness branch]
    for r in range(n):
        v = rows[r]
        inp[r, 0] = 12.0 * math.log2(max(f0_hz[v], 1.0) / 440.0) / 127.0 + 69.0 / 127.0
        inp[r, 1] = min(max(loudness_db[v], FLOOR_DB), 0.0) / -FLOOR_DB + 1.0
        xz[r, :n_hid] = h[v]
    _mlp(inp, 0, n, 1, fw0, fb0, fg0, fc0, fw1, fb1, fg1, fc1, mid, xz, n_hid)
    _mlp(inp, 1, n, 1, lw0, lb0, lg0, lc0, lw1, lb1, lg1, lc1, mid, xz, n_hid + n_mlp)
    # the GRU cell (PyTorch's gate order r, z, n)
    linear(w_ih, b_ih, xz, n_hid, n, 2 * n_mlp, gi, 0)
    linear(w_hh, b_hh, xz, 0, n, n_hid, gh, 0)
    for r in range(n):
        g, q, hv = gi[r], gh[r], h[rows[r]]
        for j in range(2 * n_hid):
            g[j] += q[j]
        _sigmoid_row(g[:2 * n_hid], ibits, fbits)                  # r, z
        for j in range(n_hid):
            g[2 * n_hid + j] += g[j] * q[2 * n_hid + j]
        _tanh_row(g[2 * n_hid:3 * n_hid], ibits, fbits)            # n
        for j in range(n_hid):
            c = g[2 * n_hid + j]
            hn = c + g[n_hid + j] * (hv[j] - c)
            xz[r, j] = hn
            hv[j] = hn
    _mlp(xz, 0, n, n_hid + 2 * n_mlp, ow0, ob0, og0, oc0, ow1, ob1, og1, oc1, mid, x, 0)
    y = gi                                   # NB: the gates are consumed; the head writes here
    linear(hw, hb, x, 0, n, n_mlp, y, 0)
    # amplitude x a softmax over the harmonics below Nyquist; noise band magnitudes
    for r in range(n):
        v = rows[r]
        f0 = f0_hz[v]
        yr = y[r]
        amp = _exp_sigmoid(yr[0])
        top = -math.inf
        below = 0
        for k in range(n_h):
            if f0 * (k + 1) < nyquist:
                below = k + 1
                if yr[1 + k] > top:
                    top = yr[1 + k]
        e = mid[r, :below]                     # NB: mid is free once the head has run
        for k in range(below):
            e[k] = yr[1 + k] - top
        exp_row(e, ibits, fbits)
        total = 0.0
        for k in range(below):
            total += e[k]
        for k in range(below):
            amps[v, k] = amp * e[k] / total
        for k in range(below, n_h):
            amps[v, k] = 0.0
        for b in range(n_bands):
            mags[v, b] = _exp_sigmoid(yr[1 + n_h + b] - 5.0)


def _mlp_weights(seq) -> tuple:
    """(w0, b0, ln-gain0, ln-bias0, w1, b1, ln-gain1, ln-bias1) of ``ddsp_model._mlp``."""
    lin0, ln0, _, lin1, ln1, _ = seq
    for ln in (ln0, ln1):
        if abs(ln.eps - LN_EPS) > 1e-12 or not ln.elementwise_affine:
            raise ValueError("the decoder's LayerNorm is not the one this kernel computes")
    return tuple(frozen(p) for p in (lin0.weight, lin0.bias, ln0.weight, ln0.bias,
                                   lin1.weight, lin1.bias, ln1.weight, ln1.bias))


class DecoderKernel:
    """A decoder's weights, frozen for the kernel, and its scratch."""

    def __init__(self, model, voices: int):
        """``model``: a ``DDSPDecoder`` (any ``DecoderConfig``); ``voices``: the most a step takes."""
        g = model.gru
        if g.num_layers != 1 or g.bidirectional or not g.bias:
            raise ValueError("the kernel computes a single-layer, one-way GRU with biases")
        self.weights = (_mlp_weights(model.f0_mlp) + _mlp_weights(model.ld_mlp)
                        + tuple(frozen(p) for p in (g.weight_ih_l0, g.bias_ih_l0, g.weight_hh_l0, g.bias_hh_l0))
                        + _mlp_weights(model.out_mlp)
                        + (frozen(model.head.weight), frozen(model.head.bias)))
        c = model.config
        width = max(3 * c.hidden, c.hidden + 2 * c.mlp, 1 + c.n_harmonics + c.n_bands)
        self.scratch = np.zeros((6, voices, width), np.float32)
        self.rows = np.zeros(voices, np.int64)
        self.ibits = np.zeros(width, np.int32)
        self.fbits = self.ibits.view(np.float32)

    def step(self, f0_hz, loudness_db, active, fresh, h, nyquist: float, amps, mags) -> None:
        """See ``decoder_step``. Arrays: float32 ``[voices]`` and ``[voices, ...]``; ``amps`` and
        ``mags`` may be column slices of one staging array (the instrument's are)."""
        decoder_step(f0_hz, loudness_db, active, fresh, h, float(nyquist), amps, mags, self.weights, self.scratch,
                     self.rows, self.ibits, self.fbits)
