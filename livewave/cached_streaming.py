"""Streaming a non-causal HiFi-GAN generator one frame of work per frame, exactly.

``LookaheadStreamer`` (reference_vocoders) recomputes the generator over its whole receptive
field at every step: exact, but on a CPU the imported models run 1.3-19x slower than real time
that way. Here every layer keeps its own state instead, and each step runs each layer only on
the samples that became computable:

- a convolution with symmetric zero padding ``p`` keeps the last ``(k - 1) d`` input samples
  (``p`` zeros at the start: the offline padding) and emits its outputs in order, ``p`` samples
  behind its input;
- a transposed convolution overlap-adds each chunk's full output with the spill of the last
  one and emits the samples no later frame can reach, the first ``padding`` of the stream
  dropped as offline does;
- where two paths meet (a residual, the sum over the multi-receptive-field branches) each path's
  samples wait in a FIFO until the slower path has the same ones.

Every stage emits the offline output's samples in order, only later, so the streamed audio is
the offline audio to float rounding (tests/test_cached_streaming.py: 1e-5 at any chunking). The
generator's output is paid out in whole hops: it lags its input by ``lag`` frames, the right
context of its receptive field.
Threading: one stream per instance; ``push`` from one thread (the render side).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .reference_vocoders import HIFIGAN_SLOPE, HiFiGANGenerator, HiFiGANResBlock1
from .streaming_conv import valid_conv1d


def _empty(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x.new_zeros(x.shape[0], channels, 0)


class _Fifo:
    def __init__(self):
        self.buf: torch.Tensor | None = None

    def push(self, x: torch.Tensor) -> None:
        if self.buf is None or self.buf.shape[2] == 0:
            self.buf = x
        elif x.shape[2]:
            self.buf = torch.cat((self.buf, x), dim=2)

    @property
    def available(self) -> int:
        return 0 if self.buf is None else self.buf.shape[2]

    def pop(self, n: int) -> torch.Tensor:
        y, self.buf = self.buf[:, :, :n], self.buf[:, :, n:]
        return y


def _aligned_sum(fifos: list[_Fifo]) -> torch.Tensor:
    n = min(f.available for f in fifos)
    out = fifos[0].pop(n)
    for f in fifos[1:]:
        out = out + f.pop(n)
    return out


class _Conv:
    """A stride-1 ``nn.Conv1d`` with symmetric zero padding, streamed."""

    def __init__(self, conv: nn.Conv1d):
        self.conv = conv
        self.pad = int(conv.padding[0])
        self.context = (conv.kernel_size[0] - 1) * conv.dilation[0]
        self.cache: torch.Tensor | None = None

    def reset(self) -> None:
        self.cache = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            self.cache = x.new_zeros(x.shape[0], x.shape[1], self.pad)
        xx = torch.cat((self.cache, x), dim=2) if x.shape[2] else self.cache
        if xx.shape[2] <= self.context:
            self.cache = xx
            return _empty(x, self.conv.out_channels)
        self.cache = xx[:, :, xx.shape[2] - self.context:]
        return valid_conv1d(xx, self.conv.weight, self.conv.bias, self.conv.dilation[0])


class _ConvTranspose:
    """An ``nn.ConvTranspose1d`` (kernel ``K``, stride ``u``, padding ``P``, ``u <= K``), streamed."""

    def __init__(self, conv: nn.ConvTranspose1d):
        self.conv = conv
        self.k, self.u, self.p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        self.reset()

    def reset(self) -> None:
        self.tail: torch.Tensor | None = None
        self.skip = self.p           # the stream's first P samples: cropped, as offline

    def step(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        n = x.shape[2]
        if n == 0:
            return _empty(x, c.out_channels)
        full = F.conv_transpose1d(x, c.weight, None, stride=self.u)        # [(n - 1) u + K]
        if self.tail is not None:
            t = self.tail.shape[2]
            full = torch.cat((full[:, :, :t] + self.tail, full[:, :, t:]), dim=2)
        done = n * self.u                     # no later frame reaches these
        self.tail = full[:, :, done:]
        y = full[:, :, :done]
        if self.skip:
            cut = min(self.skip, y.shape[2])
            y, self.skip = y[:, :, cut:], self.skip - cut
        return y + c.bias[None, :, None] if c.bias is not None else y


class _ResBlock:
    """HiFi-GAN's ResBlock1 (two convs per dilation) or ResBlock2 (one), streamed."""

    def __init__(self, block: nn.Module):
        if isinstance(block, HiFiGANResBlock1):
            self.layers = [(_Conv(a), _Conv(b)) for a, b in zip(block.convs1, block.convs2, strict=True)]
        else:
            self.layers = [(_Conv(a),) for a in block.convs]
        self.fifos = [(_Fifo(), _Fifo()) for _ in self.layers]

    def reset(self) -> None:
        for convs in self.layers:
            for c in convs:
                c.reset()
        self.fifos = [(_Fifo(), _Fifo()) for _ in self.layers]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        for convs, (skip, res) in zip(self.layers, self.fifos, strict=True):
            h = x
            for c in convs:
                h = c.step(F.leaky_relu(h, HIFIGAN_SLOPE))
            skip.push(x)
            res.push(h)
            x = _aligned_sum([skip, res])
        return x


class CachedHiFiGANStreamer:
    """``push(mel [1, n_mels, n])`` -> the next whole hops of audio ``[1, 1, m * hop]``; the output
    lags the input by ``lag`` frames (measured at construction)."""

    def __init__(self, model: HiFiGANGenerator):
        self.model, self.hop = model, model.hop
        self.n_kernels = model.n_kernels
        self.pre, self.post = _Conv(model.conv_pre), _Conv(model.conv_post)
        self.ups = [_ConvTranspose(u) for u in model.ups]
        self.blocks = [_ResBlock(b) for b in model.resblocks]
        self.reset()
        self.lag_samples, self.lag = self._measure_lag()

    def reset(self) -> None:
        for s in (self.pre, self.post, *self.ups, *self.blocks):
            s.reset()
        self.branches = [[_Fifo() for _ in range(self.n_kernels)] for _ in self.ups]
        self.out = _Fifo()

    @torch.no_grad()
    def _measure_lag(self, frames: int = 64) -> tuple[int, int]:
        """(samples, whole frames) the output lags the input: the sum of the layers' right
        contexts along the slowest path, measured by streaming silence."""
        p = next(self.model.parameters())
        got = 0
        for _ in range(frames):
            got += self.push(torch.zeros(1, self.model.config.n_mels, 1, dtype=p.dtype, device=p.device)).shape[2]
        samples = frames * self.hop - got - self.out.available
        self.reset()
        return samples, frames - got // self.hop

    def push(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.pre.step(mel)
        for i, up in enumerate(self.ups):
            x = up.step(F.leaky_relu(x, HIFIGAN_SLOPE))
            fifos = self.branches[i]
            for j in range(self.n_kernels):
                fifos[j].push(self.blocks[i * self.n_kernels + j].step(x))
            x = _aligned_sum(fifos) / self.n_kernels
        y = torch.tanh(self.post.step(F.leaky_relu(x)))       # NB: the reference's default slope here
        self.out.push(y)
        return self.out.pop((self.out.available // self.hop) * self.hop)
