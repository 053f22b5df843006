"""The MIDI-to-mel network (``midi_to_mel.MidiToMel.forward``) as a Numba kernel: the CPU path.

The network is small (72 k parameters in the shipped models), so on a CPU its cost per frame
was torch's, not the arithmetic's: about fifteen operator calls, 0.4-0.6 ms a frame on this
2-core VM (profiled 2026-12-02), a third of what a frame of ``piano-midi2mel`` cost once its
vocoder ran as a kernel (``istft_vocoder_kernel``). This kernel computes the same thing in one
``nogil`` call that allocates nothing: every note row through the MLP together (each weight
row read once, ``numba_layers.linear``), the comb interpolated at the note's pitch, the notes
summed into their frames, then the log.

Same numbers as ``MidiToMel.forward`` up to float32 rounding (tested against it): the pitch
embedding computed in float32 in torch's order, exact GELU, the head clamped to -30..12, the
comb table interpolated linearly between its 1/8-semitone steps, the gains, and
``log(floor + x)`` (``log10`` where the model's mel uses it). A model with a single layer (no
hidden layer) is not computed here; the instrument keeps torch for it.

Threading: ``frames`` runs on the render side and touches only the arrays made in ``__init__``
and the caller's.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .midi_to_mel import COMB_LOW, COMB_STEPS, N_PITCH_EMBED
from .numba_layers import FAST, exp_row, frozen, gelu_row, linear, stacked
from .piano_roll import F_PITCH, N_FEATURES

HEAD_LO, HEAD_HI = np.float32(-30.0), np.float32(12.0)     # MidiToMel.note_mels: clamp(-30, 12)
PI32 = np.float32(math.pi)


@njit(nogil=True, cache=True, fastmath=FAST)
def mel_frames(feats, rows, gains, n, k, w0, b0, ws, bs, head_w, head_b, comb, floor, log10, x, hidden, y, ibits,
               fbits, out):
    """The log-mel of ``k`` frames into ``out[:k]`` from ``n`` note rows: ``feats[:n]`` float32
    ``[., N_FEATURES]``, ``rows[:n]`` each row's frame, ``gains[:n]`` each row's gain. ``w0``,
    ``b0``: the first hidden layer's weights; ``ws``, ``bs``: the others', stacked (``[layers - 2,
    hidden, hidden]``: how many is in a shape, not in the kernel's types, so a model of any depth
    runs the kernel start-up compiled); ``x``, ``hidden`` (two arrays), ``y``: scratch rows."""
    half = N_PITCH_EMBED // 2
    for p in range(n):
        f = feats[p]
        xp = x[p]
        for j in range(N_FEATURES):
            xp[j] = f[j]
        pitch = f[F_PITCH] * np.float32(24.0) + np.float32(64.0)
        for j in range(half):     # torch's order: (pitch / 12) * j * pi / 4, in float32
            ang = (pitch / np.float32(12.0)) * np.float32(j + 1) * PI32 / np.float32(4.0)
            xp[N_FEATURES + j] = np.sin(ang)
            xp[N_FEATURES + half + j] = np.cos(ang)
    cur = hidden[0]
    linear(w0, b0, x, 0, n, x.shape[1], cur, 0)
    for p in range(n):
        gelu_row(cur[p])
    width = w0.shape[0]
    for layer in range(ws.shape[0]):
        dst = hidden[(layer + 1) % 2]
        linear(ws[layer], bs[layer], cur, 0, n, width, dst, 0)
        for p in range(n):
            gelu_row(dst[p])
        cur = dst
    linear(head_w, head_b, cur, 0, n, width, y, 0)
    n_mels = head_b.shape[0] // 2
    top = np.float32(comb.shape[0] - 1.001)
    for t in range(k):
        out[t, :] = 0.0
    for p in range(n):
        yp = y[p]
        for j in range(2 * n_mels):
            v = yp[j]
            v = HEAD_LO if v < HEAD_LO else v       # NB: written so that NaN passes through
            yp[j] = HEAD_HI if v > HEAD_HI else v
        exp_row(yp, ibits, fbits)
        pitch = feats[p, F_PITCH] * np.float32(24.0) + np.float32(64.0)
        pos = (pitch - np.float32(COMB_LOW)) * np.float32(COMB_STEPS)
        pos = np.float32(0.0) if pos < 0.0 else pos
        pos = top if pos > top else pos
        i0 = int(np.floor(pos))
        w = pos - np.float32(i0)
        c0 = comb[i0]
        c1 = comb[i0 + 1]
        g = gains[p]
        o = out[rows[p]]
        for j in range(n_mels):
            o[j] += ((c0[j] * (np.float32(1.0) - w) + c1[j] * w) * yp[j] + yp[n_mels + j]) * g
    for t in range(k):
        for j in range(out.shape[1]):
            v = math.log(float(out[t, j]) + floor)
            out[t, j] = v / math.log(10.0) if log10 else v


class MelKernel:
    """A ``MidiToMel``'s weights, frozen for the kernel, and its scratch."""

    def __init__(self, model, max_rows: int, max_frames: int):
        """``max_rows``: the most note rows a call takes (frames times voices); ``max_frames``:
        the most frames."""
        from torch import nn
        linears = [m for m in model.body if isinstance(m, nn.Linear)]
        if not linears or any(not isinstance(m, (nn.Linear, nn.GELU)) or
                              (isinstance(m, nn.GELU) and m.approximate != "none") for m in model.body):
            raise ValueError("the kernel computes an MLP of Linear and exact GELU layers, at least one hidden")
        c = model.config
        self.w0, self.b0 = frozen(linears[0].weight), frozen(linears[0].bias)
        self.ws = stacked([frozen(m.weight) for m in linears[1:]], (0, c.hidden, c.hidden))
        self.bs = stacked([frozen(m.bias) for m in linears[1:]], (0, c.hidden))
        self.head_w, self.head_b = frozen(model.head.weight), frozen(model.head.bias)
        self.comb = frozen(model.comb)
        self.floor, self.log10 = float(c.floor), bool(c.log10)
        rows = max(1, int(max_rows))
        self.x = np.zeros((rows, N_FEATURES + N_PITCH_EMBED), np.float32)
        self.hidden = tuple(np.zeros((rows, c.hidden), np.float32) for _ in range(2))
        self.y = np.zeros((rows, 2 * c.n_mels), np.float32)
        self.ibits = np.zeros(2 * c.n_mels, np.int32)
        self.fbits = self.ibits.view(np.float32)
        self.out = np.zeros((max(1, int(max_frames)), c.n_mels), np.float32)

    def frames(self, feats: np.ndarray, rows: np.ndarray, gains: np.ndarray, n: int, k: int) -> np.ndarray:
        """As ``MidiToMel.forward(feats[:n], rows[:n], k, gains[:n])``: log-mel ``[k, n_mels]``,
        float32, a view of a buffer the next call reuses. ``feats`` float32 ``[., N_FEATURES]``,
        ``rows`` int64, ``gains`` float32; at most ``max_rows`` rows and ``max_frames`` frames."""
        if n > self.x.shape[0] or k > self.out.shape[0]:
            raise ValueError(f"{n} note rows in {k} frames: at most {self.x.shape[0]} in {self.out.shape[0]}")
        mel_frames(feats, rows, gains, n, k, self.w0, self.b0, self.ws, self.bs, self.head_w, self.head_b, self.comb,
                   self.floor, self.log10, self.x, self.hidden, self.y, self.ibits, self.fbits, self.out)
        return self.out[:k]
