"""The flow vocoder's streaming step (``FlowVocoder.step``) as a Numba kernel: the CPU path.

Why: a flow renders ``hop / n_group`` groups a mel frame through every coupling's WaveNet, some
60 small torch calls per coupling. Streamed in torch on this 2-core VM, a 4.6 M-parameter flow
(groups of 32, 8 couplings of 6 x 96 WaveNets, a source excitation) cost a mean of 74-98% of a
device block at 48 kHz; a frame took 12.0 ms of CPU (median). That is per-op overhead and
allocation, not arithmetic: the arithmetic is about the parameters times the group rate (4.6 M
multiply-adds x 689 groups a second), which ``numba_layers.linear`` does at 11-20 G
multiply-adds a second here on the 8 to 16 groups of a block. This kernel does the whole step in
one ``nogil`` call that allocates nothing: 1.8 ms a frame, 23-27% of a block in the engine
(``benchmarks/RESULTS.md``, 2026-12-03).

Same numbers as ``FlowVocoder.step`` up to float32 rounding (tested against it, with and without
a source, at random splits; ``tests/test_flow_vocoder_kernel.py``):
- the mel held for its groups, through the causal conv (``cond``);
- with a source: the excitation (``source_excitation``: each bin's phase kept, its level
  compressed against its frame's peak, the exact inverse Hann synthesis with the carried
  overlap; one FFT a frame as in ``istft_vocoder_kernel``), squeezed to groups, through its
  causal conv (``source_in``);
- the inverse of the flow from the last step to the first: each coupling's WaveNet (its start,
  its gated dilated causal convolutions with their histories, its residual and skip sums, its
  end; the gate's tanh and sigmoid through ``numba_layers.exp_row``, float32) on the untouched
  half, ``b = (b' - t) exp(-log s)`` on the other, then the 1x1
  convolution's inverse (computed once, in float64, when the kernel is made; torch inverts it
  in float32 at every call); the early outputs join the channels in play as the flow goes back.

The noise ``z`` is the caller's (``FlowVocoderInstrument`` draws it frame by frame from its
seeded generator, as the torch path does), so the kernel and torch give the same stream.
Every call takes whole mel frames, and every layer's history is carried, so a stream's samples do
not depend on how its frames are grouped into calls.

A flow on the MDCT's coefficients (``squeeze="mdct"``, the shipped ``flow-fluidr3``) has its
own step (``MDCTFlowKernel``): the same couplings, then the Gaussian first step and the MDCT's
inverse; its excitation is the source itself, whitened in the MDCT's frames.

The weights are float32 copies taken when the instrument is prepared; the torch module stays
the model (training, offline rendering, the CUDA path). Threading: ``step`` runs on the render
side and touches only the arrays made in ``__init__`` and the caller's.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .flow_vocoder import LOG_S_CEIL, LOG_S_FLOOR
from .istft_vocoder_kernel import synthesise_frame
from .mel_analysis import fft_tables
from .numba_layers import FAST, causal_conv, exp_row, frozen, gelu_row, linear, stacked, taps_layout
from .source_excitation import MDCT_SILENT, POWER, SILENT, WHITEN_HALF_WIDTH
from .source_phase import FLOOR

F32_TINY = float(np.finfo(np.float32).tiny)   # whiten_frames' least floor (torch.finfo(float32).tiny)


@njit(nogil=True, cache=True)
def _excitation_frame(spec, use_source, flatten, re, im, rev):
    """One source frame's excitation spectrum, conjugated, in the bit-reversed order of an
    ``n``-point FFT in ``re``, ``im`` (so that one forward FFT gives ``n`` times the inverse:
    ``istft_vocoder_kernel.synthesise_frame``): ``flatten``, its levels flattened
    (``source_excitation.excitation_spectrum``, a flow on groups of samples); else the spectrum
    as it is (``source_excitation.SourceSignal``, the source itself back: a flow on the MDCT)."""
    n = re.shape[0]
    k = n // 2 + 1
    peak = 0.0
    if use_source and flatten:
        for j in range(k):
            peak = max(peak, abs(spec[j]))
    keep_all = use_source and peak >= SILENT
    for j in range(k):
        if use_source and not flatten:
            re[rev[j]] = spec[j].real
            im[rev[j]] = -spec[j].imag
            continue
        a = abs(spec[j]) if use_source else 0.0
        if keep_all and a >= FLOOR * peak and a > 0.0:
            s = (a / peak) ** POWER / a
            re[rev[j]] = spec[j].real * s
            im[rev[j]] = -spec[j].imag * s
        else:
            re[rev[j]] = 0.0
            im[rev[j]] = 0.0
    for j in range(k, n):            # the mirror image: X[n - j] = conj(X[j]), conjugated
        re[rev[j]] = re[rev[n - j]]
        im[rev[j]] = -im[rev[n - j]]


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_rows(x, hist, ctx, dilation, kernel, width, n, w, b, taps, y):
    """``numba_layers.causal_conv`` of the first ``n`` rows of ``x``: they go into ``hist`` after
    its ``ctx`` rows of history, and the output into ``y[:n]``."""
    for r in range(n):
        src = x[r]
        dst = hist[ctx + r]
        for c in range(width):
            dst[c] = src[c]
    causal_conv(hist, ctx, dilation, kernel, width, n, w, b, taps, y, 0)


@njit(nogil=True, cache=True, fastmath=FAST)
def _coupling_inverse(x, off, ch, g, cpl, dilations, cond, hist, h, zbuf, gate, rs, skip, st, tmp, taps, ex, ibits,
                      fbits, bound):
    """Undo one flow step on ``x[:g, off:off + ch]`` in place: the coupling (its WaveNet on the
    first half, conditioned on ``cond``; its log s ``bound tanh(raw / bound)`` where ``bound`` >
    0, as ``WaveNet.run``), then the 1x1 convolution."""
    (start_w, start_b, dil_w, dil_b, cond_w, cond_b, rs_w, rs_b, last_w, last_b, end_w, end_b, winv, winv_b) = cpl
    half = ch // 2
    width = start_b.shape[0]
    layers = dil_w.shape[0]
    kernel = dil_w.shape[2] // width
    linear(start_w, start_b, x, off, g, half, h, 0)
    linear(cond_w, cond_b, cond, 0, g, cond.shape[1], zbuf, 0)       # every layer's conditioning
    for r in range(g):
        sk = skip[r]
        for c in range(width):
            sk[c] = 0.0
    for i in range(layers):
        d = dilations[i]
        ctx = (kernel - 1) * d
        _conv_rows(h, hist[i], ctx, d, kernel, width, g, dil_w[i], dil_b[i], taps, rs)
        base = i * 2 * width
        for r in range(g):          # tanh(u) sigmoid(v) = (1 - 2 / (exp(2u) + 1)) / (1 + exp(-v))
            a = rs[r]
            zc = zbuf[r]
            for c in range(width):
                ex[c] = np.float32(2.0) * (a[c] + zc[base + c])
                ex[width + c] = -(a[width + c] + zc[base + width + c])
            exp_row(ex, ibits, fbits)
            gr = gate[r]
            for c in range(width):
                gr[c] = (np.float32(1.0) - np.float32(2.0) / (ex[c] + np.float32(1.0))) / (np.float32(1.0) + ex[width + c])
        if i < layers - 1:
            linear(rs_w[i], rs_b[i], gate, 0, g, width, rs, 0)
            for r in range(g):
                a = rs[r]
                hr = h[r]
                sk = skip[r]
                for c in range(width):
                    hr[c] += a[c]
                    sk[c] += a[width + c]
        else:
            linear(last_w, last_b, gate, 0, g, width, rs, 0)
            for r in range(g):
                a = rs[r]
                sk = skip[r]
                for c in range(width):
                    sk[c] += a[c]
    linear(end_w, end_b, skip, 0, g, width, st, 0)                  # log s, then t
    for r in range(g):
        xr = x[r]
        s = st[r]
        for j in range(ch - half):
            log_s = float(s[j])
            if bound > 0.0:
                log_s = bound * math.tanh(log_s / bound)
            xr[off + half + j] = (xr[off + half + j] - s[half + j]) * np.float32(math.exp(-log_s))
    linear(winv, winv_b, x, off, g, ch, tmp, 0)                     # the 1x1 convolution undone
    for r in range(g):
        xr = x[r]
        tr = tmp[r]
        for i in range(ch):
            xr[off + i] = tr[i]


@njit(nogil=True, cache=True, fastmath=FAST)
def flow_condition(mel, z, source, use_source, excite, per, glob, mel_hist, src_hist, cond, x, taps, re, im, rev, tw,
                   window, acc, final_gain, e):
    """The flow's streaming step, before its couplings: ``mel`` float32 ``[T, n_mels]``, ``z``
    float32 ``[T, n_group, per]`` (each frame's noise as ``FlowVocoder.step`` reads it, already
    scaled by sigma) and, where ``use_source``, ``source`` complex64 ``[T, k]`` -> the noise as rows
    of ``x`` and the couplings' conditioning in ``cond``; the histories and the excitation's overlap
    carried. ``glob``: (cond conv, source conv) weights. Then ``_coupling_inverse`` a call a flow
    step (``FlowKernel``) leaves the samples in ``x[:T * per]``, a group a row."""
    cond_w, cond_b, src_w, src_b = glob
    t_frames = mel.shape[0]
    n_mels = mel.shape[1]
    n_group = x.shape[1]
    g = t_frames * per
    hop = per * n_group
    for f in range(t_frames):                       # the mel held for its groups; the noise as rows
        for j in range(per):
            row = mel_hist[2 + f * per + j]
            for c in range(n_mels):
                row[c] = mel[f, c]
            xr = x[f * per + j]
            for c in range(n_group):
                xr[c] = z[f, c, j]
    causal_conv(mel_hist, 2, 1, 3, n_mels, g, cond_w, cond_b, taps, cond, 0)
    if excite:
        for f in range(t_frames):
            _excitation_frame(source[f], use_source, True, re, im, rev)
            synthesise_frame(re, im, tw, window, acc, hop, final_gain, True, e[f * hop:(f + 1) * hop])
        for r in range(g):
            row = src_hist[2 + r]
            for c in range(n_group):
                row[c] = e[r * n_group + c]
        causal_conv(src_hist, 2, 1, 3, n_group, g, src_w, src_b, taps, cond, n_mels)


def _coupling_weights(wn, conv) -> tuple:
    """One flow step's weights for ``_coupling_inverse``: its WaveNet's and its 1x1 convolution's
    inverse (computed once, in float64)."""
    width = wn.channels
    rs = list(wn.res_skip)              # all but the last give residual and skip; the last, skip only
    winv = np.linalg.inv(conv.weight.detach().cpu().double().numpy())
    return (frozen(wn.start.weight[:, :, 0]), frozen(wn.start.bias),
            stacked([taps_layout(c.weight) for c in wn.dilated]), stacked([frozen(c.bias) for c in wn.dilated]),
            frozen(wn.cond.weight[:, :, 0]), frozen(wn.cond.bias),
            stacked([frozen(c.weight[:, :, 0]) for c in rs[:-1]], (0, 2 * width, width)),
            stacked([frozen(c.bias) for c in rs[:-1]], (0, 2 * width)),
            frozen(rs[-1].weight[:, :, 0]), frozen(rs[-1].bias),
            frozen(wn.end.weight[:, :, 0]), frozen(wn.end.bias),
            np.ascontiguousarray(winv, np.float32), np.zeros(winv.shape[0], np.float32))


def _wavenet_state(c, rows: int, dilations: np.ndarray) -> tuple:
    """(every coupling's WaveNet histories, the scratch rows ``_coupling_inverse`` takes) for a
    flow of config ``c`` stepping up to ``rows`` rows a call."""
    width = c.wn_channels
    ctx = (c.wn_kernel - 1) * int(dilations.max())
    hist = np.zeros((c.n_flows, c.wn_layers, ctx + rows, width), np.float32)
    scratch = (np.zeros((rows, width), np.float32), np.zeros((rows, 2 * width * c.wn_layers), np.float32),
               np.zeros((rows, width), np.float32), np.zeros((rows, 2 * width), np.float32),
               np.zeros((rows, width), np.float32), np.zeros((rows, c.n_group), np.float32),
               np.zeros((rows, c.n_group), np.float32), np.zeros(2 * width, np.float32),
               np.zeros(2 * width, np.int32))
    return hist, scratch


def _check_wavenets(model) -> None:
    for wn in model.couplings:
        if wn.cond.kernel_size[0] != 1 or wn.start.kernel_size[0] != 1 or wn.end.kernel_size[0] != 1:
            raise ValueError("the flow's WaveNet is not the one this kernel computes")


@njit(nogil=True, cache=True)
def _smooth_rms(power, half, out):
    """``out[j]``: the square root of the mean of ``power`` over ``j - half .. j + half`` (the
    part inside the row: ``avg_pool1d`` with ``count_include_pad=False``)."""
    k = power.shape[0]
    for j in range(k):
        lo = max(0, j - half)
        hi = min(k, j + half + 1)
        acc = 0.0
        for i in range(lo, hi):
            acc += power[i]
        out[j] = math.sqrt(acc / (hi - lo))


@njit(nogil=True, cache=True)
def _whiten_row(c, power, env, out):
    """``source_excitation.whiten_frames`` of one MDCT frame ``c`` into ``out`` (``power``,
    ``env``: scratch rows)."""
    k = c.shape[0]
    peak = 0.0
    bad = False
    for j in range(k):
        a = abs(float(c[j]))
        bad |= a != a
        peak = max(peak, a)
        power[j] = c[j] * c[j]
    if bad or not peak >= MDCT_SILENT:        # (NaN: torch's amax is NaN, and NaN >= SILENT is False)
        for j in range(k):
            out[j] = 0.0
        return
    _smooth_rms(power, WHITEN_HALF_WIDTH, env)
    floor = max(FLOOR * peak, F32_TINY)
    for j in range(k):
        r = float(c[j]) / floor
        r2 = r * r
        out[j] = float(c[j]) / max(float(env[j]), floor) * (r2 / (1.0 + r2))


@njit(nogil=True, cache=True, fastmath=FAST)
def mdct_flow_condition(mel, z, source, use_source, excite, glob, mel_hist, src_hist, mrows, cond, x, taps, re, im,
                        rev, tw, window, final_gain, acc, e_last):
    """The MDCT flow's streaming step (``FlowVocoder.step`` with ``squeeze="mdct"``), its first
    part: ``mel`` float32 ``[T, n_mels]``, ``z`` float32 ``[T, hop, 1]`` (each frame's noise,
    scaled by sigma) and, where ``use_source``, ``source`` complex64 ``[T, k]`` -> the noise as
    rows of ``x``, the couplings' conditioning in ``cond`` and the whitened excitation's frames in
    ``mrows``; the convolutions' histories, the excitation's overlap and its last hop carried.
    ``glob``: the mel's and the source's causal convs, the MDCT's basis and its transpose;
    ``mrows``: this step's scratch (``MDCTFlowKernel.__init__``). Then the couplings
    (``_coupling_inverse``, a call a flow step) and ``mdct_flow_output``."""
    cond_w, cond_b, src_w, src_b, basis, basis_t, zero_hop, zero_2hop = glob
    eseg, ce, ew, sq, pin, ph, pt, pab, palone, m2, pw, lev, fr, prow, erow, exs = mrows
    t_frames = mel.shape[0]
    n_mels = mel.shape[1]
    hop = x.shape[1]
    for f in range(t_frames):                       # the mel frames, and the noise as rows
        row = mel_hist[2 + f]
        for c in range(n_mels):
            row[c] = mel[f, c]
        xr = x[f]
        for c in range(hop):
            xr[c] = z[f, c, 0]
    causal_conv(mel_hist, 2, 1, 3, n_mels, t_frames, cond_w, cond_b, taps, cond, 0)
    if excite:                                      # the source back, its MDCT frames, whitened
        for f in range(t_frames):
            _excitation_frame(source[f], use_source, False, re, im, rev)
            synthesise_frame(re, im, tw, window, acc, hop, final_gain, True, exs)
            seg = eseg[f]
            for j in range(hop):
                seg[j] = e_last[j]
                seg[hop + j] = exs[j]
                e_last[j] = exs[j]
        linear(basis, zero_hop, eseg, 0, t_frames, 2 * hop, ce, 0)
        for f in range(t_frames):
            _whiten_row(ce[f], prow, erow, ew[f])
            row = src_hist[2 + f]
            for c in range(hop):
                row[c] = ew[f, c]
        causal_conv(src_hist, 2, 1, 3, hop, t_frames, src_w, src_b, taps, cond, n_mels)
    else:
        for f in range(t_frames):
            for c in range(hop):
                ew[f, c] = 0.0


@njit(nogil=True, cache=True, fastmath=FAST)
def mdct_flow_output(mel, has_env, glob, prior, mean_bound, prior_hist, mrows, cond, x, taps, tail, out):
    """The MDCT flow's step, its last part, after the couplings have left the first step's
    coefficients in ``x``: the Gaussian (``GaussianPrior.run``: its network on the conditioning and
    the excitation's band levels, the mel's own level, ``x exp(log s) + mu``), then the MDCT's
    inverse overlap-added: ``out[:T * hop]``, the stream's next final samples (the network's
    histories and the synthesis' tail carried)."""
    cond_w, cond_b, src_w, src_b, basis, basis_t, zero_hop, zero_2hop = glob
    start_w, start_b, conv_w, conv_b, end_w, end_b, alone_w, alone_b, bands_w, envelope, zero_bands = prior
    eseg, ce, ew, sq, pin, ph, pt, pab, palone, m2, pw, lev, fr, prow, erow, exs = mrows
    t_frames = mel.shape[0]
    n_mels = mel.shape[1]
    hop = x.shape[1]
    n_cond = cond.shape[1]
    n_bands = bands_w.shape[0]
    width = start_b.shape[0]
    for f in range(t_frames):
        p = pin[f]
        for c in range(n_cond):
            p[c] = cond[f, c]
        for c in range(hop):
            sq[f, c] = ew[f, c] * ew[f, c]
    linear(bands_w, zero_bands, sq, 0, t_frames, hop, pin, n_cond)
    for f in range(t_frames):
        for m in range(n_bands):
            pin[f, n_cond + m] = np.float32(math.log(float(pin[f, n_cond + m]) + 1e-6))
    linear(start_w, start_b, pin, 0, t_frames, n_cond + n_bands, ph, 0)
    for i in range(conv_w.shape[0]):
        d = 1 << i
        ctx = 2 * d
        _conv_rows(ph, prior_hist[i], ctx, d, 3, width, t_frames, conv_w[i], conv_b[i], taps, pt)
        for f in range(t_frames):
            gelu_row(pt[f])
            a = ph[f]
            b = pt[f]
            for c in range(width):
                a[c] += b[c]
    linear(end_w, end_b, ph, 0, t_frames, width, pab, 0)
    if has_env:
        linear(alone_w, alone_b, ph, 0, t_frames, width, palone, 0)
        for f in range(t_frames):               # the mel's own level (GaussianPrior.level)
            for m in range(n_mels):
                v = math.exp(float(mel[f, m]))
                m2[f, m] = v * v
        linear(envelope, zero_hop, m2, 0, t_frames, n_mels, pw, 0)
    for f in range(t_frames):
        a = pab[f]
        e = ew[f]
        silent = True
        for c in range(hop):
            if e[c] != 0.0:
                silent = False
        if has_env:
            _smooth_rms(pw[f], WHITEN_HALF_WIDTH, lev)
        xr = x[f]
        for c in range(hop):
            if has_env:
                mu = float(e[c]) * float(lev[c]) * math.exp(mean_bound * math.tanh(float(a[c]) / mean_bound))
                b = float(palone[f, c]) if silent else float(a[hop + c])
            else:
                mu = float(e[c]) * math.exp(min(max(float(a[c]), -12.0), 6.0))
                b = float(a[hop + c])
            log_s = min(max(b - 4.0, LOG_S_FLOOR), LOG_S_CEIL)
            xr[c] = np.float32(float(xr[c]) * math.exp(log_s) + mu)
    # the MDCT's inverse, overlap-added: a frame's first hop final with the last frame's tail
    linear(basis_t, zero_2hop, x, 0, t_frames, hop, fr, 0)
    for f in range(t_frames):
        r = fr[f]
        for j in range(hop):
            out[f * hop + j] = tail[j] + r[j]
            tail[j] = r[hop + j]


class _Couplings:
    """What both kernels share: the couplings and 1x1 convolutions undone, a Numba call a flow
    step (``_coupling_inverse``), so that no kernel's types depend on how many steps a model has
    (a tuple of one tuple of weights per step would: each model's count compiled anew when it
    loads, beside the instrument playing; tests/test_preload.py). The early outputs, already in
    ``x``, join as it goes back."""

    def _set_couplings(self, model, rows: int) -> None:
        c = model.config
        _check_wavenets(model)
        self.dilations = np.array([d.dilation[0] for d in model.couplings[0].dilated], np.int64)
        self.couplings = tuple(_coupling_weights(wn, conv) for wn, conv in zip(model.couplings, model.convs,
                                                                               strict=True))
        self.sizes = tuple(int(ch) for ch in model.sizes)
        self.bound = float(model.couplings[0].bound or 0.0)
        self.wn_hist, self.rows = _wavenet_state(c, rows, self.dilations)
        self.fbits = self.rows[-1].view(np.float32)

    def _undo_couplings(self, g: int) -> None:
        h, zbuf, gate, rs, skip, st, tmp, ex, ibits = self.rows
        for k in range(len(self.couplings) - 1, -1, -1):
            ch = self.sizes[k]
            _coupling_inverse(self.x, self.n_group - ch, ch, g, self.couplings[k], self.dilations, self.cond,
                              self.wn_hist[k], h, zbuf, gate, rs, skip, st, tmp, self.taps, ex, ibits, self.fbits,
                              self.bound)


def _check_step(k, mel: np.ndarray, z: np.ndarray, source: np.ndarray | None) -> tuple[int, bool]:
    """A kernel's ``step`` arguments checked against the kernel ``k`` (its ``max_frames``,
    ``n_mels``, ``n_group``, ``per``, ``excite``, ``bins``): (frames, whether there is a source)."""
    t = mel.shape[0]
    if t > k.max_frames:
        raise ValueError(f"{t} frames in one step: at most {k.max_frames}")
    if mel.shape[1] != k.n_mels or z.shape != (t, k.n_group, k.per):
        raise ValueError(f"flow kernel: mel {mel.shape} and noise {z.shape}; need [T, {k.n_mels}] and "
                         f"[T, {k.n_group}, {k.per}]")
    use = source is not None
    if use and (not k.excite or source.shape != (t, k.bins)):
        raise ValueError(f"flow kernel: source spectra {source.shape} for a model taking {k.bins or 'no'} bins")
    return t, use


class MDCTFlowKernel(_Couplings):
    """A flow whose squeeze is the MDCT (``FlowVocoder``, ``squeeze="mdct"``), its whole streaming
    step in Numba, in three kernels: ``mdct_flow_condition`` (the mel's causal conv; the source
    back, its MDCT frames whitened, ``source_excitation``, and its causal conv), then
    ``_coupling_inverse`` a call a flow step (the couplings and 1x1 convolutions undone; one call a
    step, so that the kernels' types do not depend on how many steps a model has: compiled once,
    at start-up), then ``mdct_flow_output`` (the Gaussian first step, ``GaussianPrior``, and the
    MDCT's inverse overlap-added). Its weights frozen, every history carried. Why: with the
    couplings alone in Numba and torch for the rest (until 2026-12-05), a frame of the shipped
    ``flow-fluidr3`` took 4.3 ms on this CPU (median, one thread), 1.6 ms of it the couplings: the
    rest was some 200 small torch calls a frame (``benchmarks/RESULTS.md``)."""

    def __init__(self, model, max_frames: int):
        """``model``: a ``FlowVocoder`` on the MDCT; ``max_frames``: the most mel frames a ``step`` takes."""
        c = model.config
        if model.mdct is None:
            raise ValueError("a flow on groups of samples, not the MDCT: FlowKernel")
        pr = model.prior
        if (model.cond.kernel_size[0] != 3 or (model.excitation is not None and model.source_in.kernel_size[0] != 3)
                or pr.start.kernel_size[0] != 1 or pr.end.kernel_size[0] != 1
                or [(v.kernel_size[0], v.dilation[0]) for v in pr.convs] != [(3, 1 << i) for i in range(len(pr.convs))]
                or (pr.alone is not None and pr.alone.kernel_size[0] != 1)):
            raise ValueError("the flow's convolutions are not the ones this kernel computes")
        self.max_frames = rows = max(1, int(max_frames))
        self.n_mels, self.hop = c.n_mels, c.hop
        self.n_group, self.per = c.hop, 1        # (the noise a step takes: a frame's hop coefficients)
        self.excite = model.excitation is not None
        self.has_env = pr.envelope is not None
        self.mean_bound = float(pr.mean_bound)
        hop, width, n_mels = c.hop, c.prior_channels, c.n_mels
        n_cond = model.couplings[0].cond.in_channels
        n_bands = pr.bands.shape[0]
        basis = frozen(model.mdct.basis)
        no_src = (np.zeros((1, 3 * hop), np.float32), np.zeros(1, np.float32))
        src = (taps_layout(model.source_in.weight), frozen(model.source_in.bias)) if self.excite else no_src
        self.glob = (taps_layout(model.cond.weight), frozen(model.cond.bias), *src, basis,
                     np.ascontiguousarray(basis.T), np.zeros(hop, np.float32), np.zeros(2 * hop, np.float32))
        alone = (frozen(pr.alone.weight[:, :, 0]), frozen(pr.alone.bias)) if pr.alone is not None else \
            (np.zeros((1, width), np.float32), np.zeros(1, np.float32))
        env = frozen(pr.envelope) if self.has_env else np.zeros((1, n_mels), np.float32)
        self.prior = (frozen(pr.start.weight[:, :, 0]), frozen(pr.start.bias),
                      stacked([taps_layout(v.weight) for v in pr.convs], (0, width, 3 * width)),
                      stacked([frozen(v.bias) for v in pr.convs], (0, width)),
                      frozen(pr.end.weight[:, :, 0]), frozen(pr.end.bias), *alone, frozen(pr.bands), env,
                      np.zeros(n_bands, np.float32))
        if self.excite:
            ex = model.excitation
            n = ex.n_fft
            self.window = ex.window.detach().cpu().numpy().astype(np.float64)
            self.final_gain = ex.gain.detach().cpu().numpy().astype(np.float64)
            self.acc = np.zeros(n - hop, np.float64)
            self.bins = n // 2 + 1
        else:
            n = 2
            self.window, self.final_gain, self.acc = np.zeros(n), np.ones(1), np.zeros(1)
            self.bins = 0
        self.re, self.im = np.zeros(n, np.float64), np.zeros(n, np.float64)
        self.rev, self.tw = fft_tables(n)
        self.mel_hist = np.zeros((2 + rows, n_mels), np.float32)
        self.src_hist = np.zeros((2 + rows, hop), np.float32)
        self.prior_hist = np.zeros((len(pr.convs), 2 * (1 << max(0, len(pr.convs) - 1)) + rows, width), np.float32)
        self._set_couplings(model, rows)
        f32 = np.float32
        self.mrows = (np.zeros((rows, 2 * hop), f32), np.zeros((rows, hop), f32), np.zeros((rows, hop), f32),
                      np.zeros((rows, hop), f32), np.zeros((rows, n_cond + n_bands), f32), np.zeros((rows, width), f32),
                      np.zeros((rows, width), f32), np.zeros((rows, 2 * hop), f32), np.zeros((rows, hop), f32),
                      np.zeros((rows, n_mels), f32), np.zeros((rows, hop), f32), np.zeros(hop, f32),
                      np.zeros((rows, 2 * hop), f32), np.zeros(hop, f32), np.zeros(hop, f32), np.zeros(hop, np.float64))
        self.cond = np.zeros((rows, n_cond), np.float32)
        self.x = np.zeros((rows, hop), np.float32)
        self.taps = np.zeros((rows, max(3 * n_mels, 3 * hop, 3 * width, c.wn_kernel * c.wn_channels)), np.float32)
        self.e_last = np.zeros(hop, np.float32)
        self.tail = np.zeros(hop, np.float32)
        self.out = np.zeros(rows * hop, np.float32)
        self.no_source = np.zeros((rows, max(1, self.bins)), np.complex64)

    def step(self, mel: np.ndarray, z: np.ndarray, source: np.ndarray | None = None) -> np.ndarray:
        """``mel`` float32 ``[T, n_mels]`` (C order), ``z`` float32 ``[T, hop, 1]`` (each frame's noise,
        scaled by sigma), ``source`` complex64 ``[T, source bins]`` or None -> the next ``T * hop``
        samples, float32, a view of a buffer the next call reuses. As ``FlowVocoder.step(mel.T[None],
        z[:, :, 0].T[None], source.T[None])``."""
        t, use = _check_step(self, mel, z, source)
        mdct_flow_condition(mel, z, source if use else self.no_source[:t], use, self.excite, self.glob, self.mel_hist,
                            self.src_hist, self.mrows, self.cond, self.x, self.taps, self.re, self.im, self.rev,
                            self.tw, self.window, self.final_gain, self.acc, self.e_last)
        self._undo_couplings(t)
        mdct_flow_output(mel, self.has_env, self.glob, self.prior, self.mean_bound, self.prior_hist, self.mrows,
                         self.cond, self.x, self.taps, self.tail, self.out)
        return self.out[:t * self.hop]

    def reset(self) -> None:
        """Back to the start of a stream: silence behind every layer, no overlap."""
        for a in (self.mel_hist, self.src_hist, self.prior_hist, self.wn_hist, self.acc, self.e_last, self.tail):
            a[:] = 0.0


class FlowKernel(_Couplings):
    """A ``FlowVocoder``'s weights, frozen for the kernel, its stream state and scratch."""

    def __init__(self, model, max_frames: int):
        """``model``: a ``FlowVocoder``; ``max_frames``: the most mel frames a ``step`` takes."""
        c = model.config
        if model.mdct is not None:
            raise ValueError("a flow whose squeeze is the MDCT: MDCTFlowKernel")
        if model.cond.kernel_size[0] != 3 or (model.excitation is not None and model.source_in.kernel_size[0] != 3):
            raise ValueError("the flow's conditioning convolutions are not the ones this kernel computes")
        self.max_frames = max(1, int(max_frames))
        self.per, self.n_group, self.n_mels, self.hop = model.per_frame, c.n_group, c.n_mels, c.hop
        self.excite = model.excitation is not None
        rows = self.max_frames * self.per
        width = c.wn_channels
        self._set_couplings(model, rows)
        n_cond = c.n_mels + (c.source_channels if self.excite else 0)
        if self.excite:
            ex = model.excitation
            self.glob = (taps_layout(model.cond.weight), frozen(model.cond.bias),
                         taps_layout(model.source_in.weight), frozen(model.source_in.bias))
            n = ex.n_fft
            self.window = ex.window.detach().cpu().numpy().astype(np.float64)
            self.final_gain = ex.gain.detach().cpu().numpy().astype(np.float64)
            self.acc = np.zeros(n - c.hop, np.float64)
            self.bins = n // 2 + 1
        else:
            self.glob = (taps_layout(model.cond.weight), frozen(model.cond.bias),
                         np.zeros((1, 3 * c.n_group), np.float32), np.zeros(1, np.float32))
            n = 2
            self.window = np.zeros(n, np.float64)
            self.final_gain = np.ones(1, np.float64)
            self.acc = np.zeros(1, np.float64)
            self.bins = 0
        self.re, self.im = np.zeros(n, np.float64), np.zeros(n, np.float64)
        self.rev, self.tw = fft_tables(n)
        self.e = np.zeros(rows * c.n_group, np.float32)
        self.mel_hist = np.zeros((2 + rows, c.n_mels), np.float32)
        self.src_hist = np.zeros((2 + rows, c.n_group), np.float32)
        self.cond = np.zeros((rows, n_cond), np.float32)
        self.x = np.zeros((rows, c.n_group), np.float32)
        self.taps = np.zeros((rows, max(3 * c.n_mels, 3 * c.n_group, c.wn_kernel * width)), np.float32)
        self.no_source = np.zeros((self.max_frames, max(1, self.bins)), np.complex64)

    def step(self, mel: np.ndarray, z: np.ndarray, source: np.ndarray | None = None) -> np.ndarray:
        """``mel`` float32 ``[T, n_mels]`` (C order), ``z`` float32 ``[T, n_group, hop / n_group]``
        (each frame's noise, scaled by sigma), ``source`` complex64 ``[T, n_fft // 2 + 1]`` or None
        -> the next ``T * hop`` samples, float32, a view of a buffer the next call reuses. As
        ``FlowVocoder.step(mel.T[None], cat(z, dim=2)[None], source.T[None])``."""
        t, use = _check_step(self, mel, z, source)
        flow_condition(mel, z, source if use else self.no_source[:t], use, self.excite, self.per, self.glob,
                       self.mel_hist, self.src_hist, self.cond, self.x, self.taps, self.re, self.im, self.rev, self.tw,
                       self.window, self.acc, self.final_gain, self.e)
        self._undo_couplings(t * self.per)
        return self.x[:t * self.per].reshape(-1)

    def reset(self) -> None:
        """Back to the start of a stream: silence behind every layer, no overlap."""
        for a in (self.mel_hist, self.src_hist, self.wn_hist, self.acc):
            a[:] = 0.0
