"""The MDCT (modified discrete cosine transform, Princen and Bradley 1986): a lapped orthogonal
transform, the squeeze of the flow vocoder's ``squeeze="mdct"`` (``flow_vocoder``).

Frame ``t`` of a signal ``x`` holds ``hop`` coefficients of the ``2 hop`` samples
``x[(t - 1) hop : (t + 1) hop]`` under the sine window ``sin(pi (n + 1/2) / (2 hop))``,
scaled by ``sqrt(2 / hop)``. The window meets the Princen-Bradley condition, so overlap-adding
the frames' inverses cancels each frame's time-domain aliasing with its neighbours' and gives
``x`` back: over a whole stream (silence before and after) the transform is orthogonal, so a
density on the coefficients is the same density on the samples (its Jacobian determinant is 1).
Unlike WaveGlow's squeeze (a reshape into groups of samples), a frame's coefficients are
frequencies: the flow's channels line up with the mel's bands.

Frame ``t``'s inverse is final for the samples ``[(t - 1) hop, t hop)`` once frame ``t`` is
known: a stream of frames gives its samples one hop behind the frames' ends (``Synthesis``).
Shapes: signals ``[B, samples]``; frames ``[B, hop, frames]``. Threading: one stream per object.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .tensor_cast import as_dtype


def mdct_basis(hop: int) -> torch.Tensor:
    """``[hop, 2 hop]``: row ``k`` is coefficient ``k``'s windowed cosine."""
    n = torch.arange(2 * hop, dtype=torch.float64)
    k = torch.arange(hop, dtype=torch.float64)
    window = torch.sin(math.pi * (n + 0.5) / (2 * hop))
    cos = torch.cos(math.pi / hop * (n[None, :] + 0.5 + hop / 2.0) * (k[:, None] + 0.5))
    return (math.sqrt(2.0 / hop) * window[None, :] * cos).float()


class MDCT(nn.Module):
    """Analysis and synthesis, offline and streaming."""

    def __init__(self, hop: int):
        super().__init__()
        if hop < 2:
            raise ValueError(f"MDCT: a hop of {hop}")
        self.hop = int(hop)
        self.register_buffer("basis", mdct_basis(self.hop), persistent=False)
        self._last: torch.Tensor | None = None      # analysis stream: the previous hop of samples
        self._tail: torch.Tensor | None = None      # synthesis stream: the last frame's second half

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Offline: ``[B, (T + 1) hop]`` (one hop before frame 0's own) -> ``[B, hop, T]``."""
        t = x.shape[-1] // self.hop - 1
        if t < 1:
            raise ValueError(f"MDCT: {x.shape[-1]} samples hold no whole frame of {2 * self.hop}")
        seg = x[..., :(t + 1) * self.hop].unfold(-1, 2 * self.hop, self.hop)      # [B, T, 2 hop]
        # (matmul and as_dtype: einsum and Tensor.to kept small objects, streamed)
        return torch.matmul(as_dtype(self.basis, x.dtype), seg.transpose(1, 2))

    def synthesise(self, c: torch.Tensor) -> torch.Tensor:
        """Offline: ``[B, hop, T]`` -> the overlap-added inverse ``[B, (T + 1) hop]``: the first
        ``T hop`` samples final (frame 0 starts one hop before them; silence before it), the
        last hop waiting for frame ``T``."""
        fr = torch.matmul(as_dtype(self.basis, c.dtype).T, c)                             # [B, 2 hop, T]
        t = c.shape[2]
        out = F.fold(fr, output_size=(1, (t + 1) * self.hop), kernel_size=(1, 2 * self.hop), stride=(1, self.hop))
        return out.reshape(c.shape[0], -1)

    def analyse_step(self, x: torch.Tensor) -> torch.Tensor:
        """Streaming: the next ``T hop`` samples ``[B, T hop]`` -> their ``T`` frames (silence
        before the first call)."""
        if self._last is None or self._last.shape[0] != x.shape[0]:
            self._last = x.new_zeros(x.shape[0], self.hop)
        both = torch.cat((self._last, x), dim=-1)
        self._last = x[..., -self.hop:].detach().clone()
        return self.analyse(both)

    def synthesise_step(self, c: torch.Tensor) -> torch.Tensor:
        """Streaming: the next ``T`` frames -> ``T hop`` final samples (``[B, T hop]``), the
        samples from one hop before frame 0's end on."""
        out = self.synthesise(c)
        if self._tail is not None and self._tail.shape[0] == c.shape[0]:
            out[:, :self.hop] += self._tail
        self._tail = out[:, -self.hop:].detach().clone()
        return out[:, :-self.hop]

    def reset(self) -> None:
        self._last = self._tail = None
