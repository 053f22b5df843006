"""The iSTFT vocoder's streaming step (``ISTFTVocoder.step``) as a Numba kernel: the CPU path.

Why: on a CPU, torch made the vocoder the most expensive model livewave ships per frame. One
frame of the shipped ``istft-fluidr3`` (3.04 M parameters: a stem, six residual blocks, a head,
then an inverse FFT) took 2.8-3.4 ms on this 2-core VM, and a frame of ``piano-midi2mel`` 4.6 ms
in all (median, one thread, profiled 2026-12-02). About half of that was the matrix-vector
products (12 MB of weights read per frame); the rest was some 200 small torch calls
(concatenations for the convolution caches, views, GELU, LayerNorm, the FFT). At 64-sample
blocks the engine had to render 12 to 15 blocks ahead for it (``audio_io.lead_for``), 23-27 ms
of latency. This kernel does the same arithmetic one frame at a time in one ``nogil`` call that
allocates nothing: the products through ``numba_layers.linear``, each weight row read once
(its measured throughput here about twice torch's for these shapes: ``benchmarks/vocoder_step.py``).

Same numbers as ``ISTFTVocoder.step`` up to float32 rounding (tested against it, shipped and
random weights, with and without a source, after priming): causal dilated convolutions (their
input history carried per layer), LayerNorm (biased variance, eps 1e-5), exact GELU, the head's
``exp`` of the log-magnitudes clamped at 8, the source blend (``source_phase.blend``), the level
bound (``ISTFTVocoder.frame_gains``), the inverse real FFT (one complex FFT of the conjugated
Hermitian spectrum; the DC and Nyquist bins' imaginary parts ignored, as by
``torch.fft.irfft``), the synthesis window, overlap-add with the carried tail, and the
window-sum gain of a source phase. Frame by frame, so a stream's samples do not depend on how its
frames are grouped into calls. ``phase="integrated"`` is not computed here (the instrument keeps
torch for it; no shipped model uses it).

The weights are float32 copies taken when the instrument is prepared; the torch module stays
the model (training, offline rendering, the CUDA path). Threading: ``step`` runs on the render
side and touches only the arrays made in ``__init__`` and the caller's.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .istft_vocoder import LEVEL_HEADROOM, SOURCE_HEADROOM
from .mel_analysis import fft_butterflies, fft_tables
from .numba_layers import FAST, LN_EPS, causal_conv, exp_row, frozen, gelu_row, layer_norm_row, linear, stacked, taps_layout
from .source_phase import FLOOR

MAG_CLAMP = np.float32(8.0)       # ISTFTVocoder.spectrum: exp(h.clamp(max=8))


@njit(nogil=True, cache=True)
def _spectrum(h, k, mel, source, use_source, source_level, level_w, level_ref, log10, ibits, fbits, re, im, rev):
    """The head's output ``h`` (``[2k]``: log-magnitudes, then phases) -> the frame's spectrum,
    conjugated, in the bit-reversed order of an ``n``-point FFT in ``re``, ``im`` (so that one
    forward FFT gives ``n`` times the inverse, ``synthesise_frame``)."""
    n = re.shape[0]
    mag = h[:k]
    for j in range(k):
        v = mag[j]
        mag[j] = MAG_CLAMP if v > MAG_CLAMP else v     # NB: written so that NaN passes through
    exp_row(mag, ibits[:k], fbits[:k])
    gain = 1.0
    if level_ref:
        if use_source and source_level:      # never more energy than the source frame
            have = 0.0
            want = 0.0
            for j in range(k):
                have += float(mag[j]) * float(mag[j])
                want += float(source[j].real) ** 2 + float(source[j].imag) ** 2
            gain = min(math.exp(SOURCE_HEADROOM) * math.sqrt(want / max(have, 1e-20)), 1.0)
        else:                                # never more than the mel's band sums
            made = 0.0
            for j in range(k):
                made += float(mag[j]) * level_w[j]
            allowed = 0.0
            for m in range(mel.shape[0]):
                allowed += 10.0 ** float(mel[m]) if log10 else math.exp(float(mel[m]))
            gain = min(allowed * math.exp(LEVEL_HEADROOM) / max(made, 1e-20), 1.0)
    peak = 0.0
    if use_source:
        for j in range(k):
            peak = max(peak, abs(source[j]))
        if peak <= 0.0:
            peak = 1.0
    for j in range(k):
        own = float(h[k + j])
        c, s = math.cos(own), math.sin(own)
        if use_source:          # source_phase.blend: the source's phase where it is not silent
            c = source[j].real / peak + FLOOR * c
            s = source[j].imag / peak + FLOOR * s
            r = math.sqrt(c * c + s * s)
            if r > 0.0:
                c, s = c / r, s / r
            elif r == 0.0:      # the angle of 0 is 0 (NaN falls through)
                c, s = 1.0, 0.0
        a = float(mag[j]) * gain
        re[rev[j]] = a * c
        im[rev[j]] = -a * s
    # NB: the DC and Nyquist bins' imaginary parts only reach the imaginary part of the result,
    # which is dropped: ignored, as by torch.fft.irfft
    for j in range(k, n):          # the mirror image: X[n - j] = conj(X[j]), conjugated
        re[rev[j]] = re[rev[n - j]]
        im[rev[j]] = -im[rev[n - j]]


@njit(nogil=True, cache=True)
def synthesise_frame(re, im, tw, window, acc, hop, final_gain, use_gain, out):
    """``re``, ``im`` from ``_spectrum`` -> the frame's windowed inverse FFT, overlap-added with
    the tail ``acc`` (``n - hop`` samples); the ``hop`` final samples into ``out``."""
    fft_butterflies(re, im, tw)
    n = re.shape[0]
    scale = 1.0 / n
    tail = acc.shape[0]
    for j in range(hop):
        v = acc[j] + re[j] * scale * window[j]
        out[j] = v * final_gain[j] if use_gain else v
    for j in range(tail):
        v = re[hop + j] * scale * window[hop + j]
        acc[j] = v + acc[j + hop] if j + hop < tail else v


@njit(nogil=True, cache=True, fastmath=FAST)
def vocoder_step(mel, source, use_source, source_level, weights, dilations, stem_hist, hist, acc, rows,
                 taps, ibits, fbits, re, im, rev, tw, window, final_gain, use_gain, level_w, level_ref, log10, out):
    """``mel`` float32 ``[T, n_mels]`` (and ``source`` complex64 ``[T, k]`` where ``use_source``)
    -> ``out[:T * hop]``, the stream's next final samples; the histories and the tail carried.

    ``weights``: the tuple ``ISTFTKernel`` builds; ``hist`` float32 ``[blocks, max context + 1,
    channels]``; ``rows``: float32 ``[1, width]`` arrays for the stream, the convolution's output,
    the MLP's hidden layer and the head (whole arrays: a column slice would keep LLVM from
    vectorising ``linear``'s sums)."""
    stem_w, stem_b, conv_w, conv_b, ln_g, ln_b, up_w, up_b, down_w, down_b, head_w, head_b = weights
    n_mels = mel.shape[1]
    stem_k = stem_hist.shape[0]
    width = stem_b.shape[0]
    kernel = conv_w.shape[2] // width
    k = head_b.shape[0] // 2
    hop = final_gain.shape[0]
    x, conv, mid, h = rows
    for t in range(mel.shape[0]):
        stem_hist[stem_k - 1, :] = mel[t]
        causal_conv(stem_hist, stem_k - 1, 1, stem_k, n_mels, 1, stem_w, stem_b, taps, x, 0)
        for blk in range(conv_w.shape[0]):
            d = dilations[blk]
            ctx = (kernel - 1) * d
            bh = hist[blk]
            bh[ctx, :] = x[0]
            causal_conv(bh, ctx, d, kernel, width, 1, conv_w[blk], conv_b[blk], taps, conv, 0)
            layer_norm_row(conv[0], ln_g[blk], ln_b[blk])
            linear(up_w[blk], up_b[blk], conv, 0, 1, width, mid, 0)
            gelu_row(mid[0])
            linear(down_w[blk], down_b[blk], mid, 0, 1, 2 * width, conv, 0)
            for c in range(width):
                x[0, c] += conv[0, c]
        linear(head_w, head_b, x, 0, 1, width, h, 0)
        _spectrum(h[0], k, mel[t], source[t], use_source, source_level, level_w, level_ref, log10, ibits, fbits,
                  re, im, rev)
        synthesise_frame(re, im, tw, window, acc, hop, final_gain, use_gain, out[t * hop:(t + 1) * hop])


class ISTFTKernel:
    """An ``ISTFTVocoder``'s weights, frozen for the kernel, its stream state and scratch."""

    def __init__(self, model, max_frames: int):
        """``model``: an ``ISTFTVocoder`` (absolute or source phase) with its level reference as the
        instrument sets it; ``max_frames``: the most frames a ``step`` takes."""
        c = model.config
        if c.phase == "integrated":
            raise ValueError("the kernel does not compute an integrated phase")
        for b in model.blocks:
            if abs(b.norm.eps - LN_EPS) > 1e-12 or not b.norm.elementwise_affine:
                raise ValueError("the vocoder's LayerNorm is not the one this kernel computes")
        blocks = list(model.blocks)

        def stack(part):
            return stacked([part(b) for b in blocks])
        self.weights = (
            taps_layout(model.stem.weight), frozen(model.stem.bias),
            stack(lambda b: taps_layout(b.conv.weight)), stack(lambda b: frozen(b.conv.bias)),
            stack(lambda b: frozen(b.norm.weight)), stack(lambda b: frozen(b.norm.bias)),
            stack(lambda b: frozen(b.up.weight[:, :, 0])), stack(lambda b: frozen(b.up.bias)),
            stack(lambda b: frozen(b.down.weight[:, :, 0])), stack(lambda b: frozen(b.down.bias)),
            frozen(model.head.weight[:, :, 0]), frozen(model.head.bias))
        self.dilations = np.array([b.conv.dilation[0] for b in blocks], np.int64)
        k = c.n_fft // 2 + 1
        self.n_mels, self.hop = c.n_mels, c.hop
        self.stem_hist = np.zeros((model.stem.kernel_size[0], c.n_mels), np.float32)
        self.hist = np.zeros((len(blocks), (c.kernel - 1) * int(self.dilations.max()) + 1, c.channels), np.float32)
        self.acc = np.zeros(c.n_fft - c.hop, np.float64)
        self.rows = tuple(np.zeros((1, w), np.float32) for w in (c.channels, c.channels, 2 * c.channels, 2 * k))
        self.taps = np.zeros((1, max(c.kernel * c.channels, self.stem_hist.size)), np.float32)
        self.ibits = np.zeros(k, np.int32)
        self.fbits = self.ibits.view(np.float32)
        self.re, self.im = np.zeros(c.n_fft, np.float64), np.zeros(c.n_fft, np.float64)
        self.rev, self.tw = fft_tables(c.n_fft)
        self.window = model.ola.window.detach().cpu().numpy().astype(np.float64)
        self.use_gain = model.ola.gain is not None
        self.final_gain = (model.ola.gain.detach().cpu().numpy().astype(np.float64) if self.use_gain
                           else np.ones(c.hop, np.float64))
        self.level_ref = model.level_w is not None
        self.level_w = (model.level_w[:, 0].detach().cpu().numpy().astype(np.float64) if self.level_ref
                        else np.zeros(k, np.float64))
        self.log10 = bool(model.mel_log10)
        self.out = np.zeros(max(1, int(max_frames)) * c.hop, np.float32)
        self.no_source = np.zeros((max(1, int(max_frames)), k), np.complex64)
        self._primed: tuple[np.ndarray, np.ndarray] | None = None
        self._saved = (self.stem_hist.copy(), self.hist.copy(), self.acc.copy())

    def save(self) -> None:
        """Remember the stream's state (histories and tail), without allocating: ``restore``."""
        stem, hist, acc = self._saved
        np.copyto(stem, self.stem_hist)
        np.copyto(hist, self.hist)
        np.copyto(acc, self.acc)

    def restore(self) -> None:
        """Back to the state ``save`` remembered: the frames since are undone."""
        stem, hist, acc = self._saved
        np.copyto(self.stem_hist, stem)
        np.copyto(self.hist, hist)
        np.copyto(self.acc, acc)

    @property
    def max_frames(self) -> int:
        return self.no_source.shape[0]

    def step(self, mel: np.ndarray, source: np.ndarray | None = None, source_level: bool = False) -> np.ndarray:
        """``mel`` float32 ``[T, n_mels]`` (C order), ``source`` complex64 ``[T, n_fft // 2 + 1]``
        or None -> the next ``T * hop`` samples, float32, a view of a buffer the next call reuses.
        ``T`` at most ``max_frames``. As ``ISTFTVocoder.step(mel.T[None], source.T[None],
        source_level)``."""
        t = mel.shape[0]
        if t > self.no_source.shape[0]:
            raise ValueError(f"{t} frames in one step: at most {self.no_source.shape[0]}")
        use = source is not None
        vocoder_step(mel, source if use else self.no_source[:t], use, bool(source_level), self.weights,
                     self.dilations, self.stem_hist, self.hist, self.acc, self.rows, self.taps, self.ibits,
                     self.fbits, self.re, self.im, self.rev, self.tw, self.window, self.final_gain, self.use_gain,
                     self.level_w, self.level_ref, self.log10, self.out)
        return self.out[:t * self.hop]

    def reset(self) -> None:
        """Back to the start of a stream: the histories ``prime`` left (or zeros), no tail."""
        if self._primed is None:
            self.stem_hist[:] = 0.0
            self.hist[:] = 0.0
        else:
            self.stem_hist[:], self.hist[:] = self._primed
        self.acc[:] = 0.0

    def prime(self, frame: np.ndarray, frames: int = 64) -> None:
        """Every later stream starts from ``frames`` copies of the mel frame ``frame`` ``[n_mels]``
        after silence, as ``ISTFTVocoder.prime``."""
        self._primed = None
        self.reset()
        mel = np.ascontiguousarray(np.broadcast_to(np.asarray(frame, np.float32), (frames, self.n_mels)))
        for i in range(0, frames, self.max_frames):
            self.step(mel[i:i + self.max_frames])
        self._primed = (self.stem_hist.copy(), self.hist.copy())
        self.reset()
