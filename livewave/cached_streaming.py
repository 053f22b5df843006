"""Streaming a non-causal reference generator (HiFi-GAN, MelGAN) one frame of work per frame, exactly.

``LookaheadStreamer`` (reference_vocoders) recomputes the generator over its whole receptive
field at every step: exact, but on a CPU the imported models run 1.3-19x slower than real time
that way. Here every layer keeps its own state instead, and each step runs each layer only on
the samples that became computable:

- a convolution with symmetric padding ``p`` keeps the last ``(k - 1) d`` input samples and
  emits its outputs in order, ``p`` samples behind its input. The start of the stream gets the
  offline padding: ``p`` zeros (HiFi-GAN), or the reflection of the first ``p + 1`` input
  samples (MelGAN's ``ReflectionPad1d``), which the layer waits for;
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

from .reference_vocoders import (
    HIFIGAN_SLOPE,
    HiFiGANGenerator,
    HiFiGANResBlock1,
    MelGANReferenceGenerator,
    MelGANReferenceResBlock,
)
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
    """A stride-1 ``nn.Conv1d`` with symmetric zero padding, or after a ``ReflectionPad1d(reflect)``
    (the conv's own padding then 0), streamed."""

    def __init__(self, conv: nn.Conv1d, reflect: int = 0):
        self.conv = conv
        if reflect and int(conv.padding[0]):
            raise ValueError("a reflection-padded conv has no padding of its own")
        self.reflect = int(reflect)
        self.pad = self.reflect or int(conv.padding[0])
        self.context = (conv.kernel_size[0] - 1) * conv.dilation[0]
        self.reset()

    def reset(self) -> None:
        self.cache: torch.Tensor | None = None
        self.pending: torch.Tensor | None = None     # the first samples, until the reflection has them

    def _start(self, x: torch.Tensor) -> torch.Tensor | None:
        """The stream's first input with the offline left padding in front, or None while a
        reflection still waits for its ``pad + 1`` samples."""
        if not self.reflect:
            return torch.cat((x.new_zeros(x.shape[0], x.shape[1], self.pad), x), dim=2)
        self.pending = x if self.pending is None else torch.cat((self.pending, x), dim=2)
        if self.pending.shape[2] <= self.pad:
            return None
        x, self.pending = self.pending, None
        return torch.cat((x[:, :, 1:self.pad + 1].flip(2), x), dim=2)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            xx = self._start(x)
            if xx is None:
                return _empty(x, self.conv.out_channels)
        else:
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


class _Chain:
    """An ``nn.Sequential`` of the reference MelGAN's layers, streamed stage by stage."""

    def __init__(self, layers):
        self.stages: list = []
        reflect = 0
        for m in layers:
            if isinstance(m, nn.ReflectionPad1d):
                reflect = int(m.padding[0])
                continue
            if isinstance(m, nn.Conv1d):
                self.stages.append(_Conv(m, reflect))
            elif reflect:
                raise ValueError(f"a ReflectionPad1d before a {type(m).__name__}: only before a Conv1d")
            elif isinstance(m, nn.ConvTranspose1d):
                self.stages.append(_ConvTranspose(m))
            elif isinstance(m, MelGANReferenceResBlock):
                self.stages.append(_MelGANResBlock(m))
            elif isinstance(m, nn.LeakyReLU):
                self.stages.append(_Pointwise(lambda x, slope=m.negative_slope: F.leaky_relu(x, slope)))
            elif isinstance(m, nn.Tanh):
                self.stages.append(_Pointwise(torch.tanh))
            else:
                raise ValueError(f"cannot stream a {type(m).__name__} layer")
            reflect = 0

    def reset(self) -> None:
        for s in self.stages:
            s.reset()

    def step(self, x: torch.Tensor) -> torch.Tensor:
        for s in self.stages:
            x = s.step(x)
        return x


class _Pointwise:
    def __init__(self, fn):
        self.fn = fn

    def reset(self) -> None:
        pass

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _MelGANResBlock:
    """The reference MelGAN's residual block: a 1x1 shortcut plus a dilated, reflection-padded path."""

    def __init__(self, block: MelGANReferenceResBlock):
        self.shortcut, self.path = _Chain([block.shortcut]), _Chain(block.block)
        self.reset()

    def reset(self) -> None:
        self.shortcut.reset()
        self.path.reset()
        self.fifos = [_Fifo(), _Fifo()]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.fifos[0].push(self.shortcut.step(x))
        self.fifos[1].push(self.path.step(x))
        return _aligned_sum(self.fifos)


class _CachedStreamer:
    """``push(mel [1, n_mels, n])`` -> the next whole hops of audio ``[1, 1, m * hop]``; the output
    lags the input by ``lag`` frames (measured at construction)."""

    def __init__(self, model: nn.Module):
        self.model, self.hop = model, model.hop
        self.reset()
        self.lag_samples, self.lag = self._measure_lag()

    def reset(self) -> None:
        self.out = _Fifo()

    def _run(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

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
        self.out.push(self._run(mel))
        return self.out.pop((self.out.available // self.hop) * self.hop)


class CachedHiFiGANStreamer(_CachedStreamer):
    def __init__(self, model: HiFiGANGenerator):
        self.n_kernels = model.n_kernels
        self.pre, self.post = _Conv(model.conv_pre), _Conv(model.conv_post)
        self.ups = [_ConvTranspose(u) for u in model.ups]
        self.blocks = [_ResBlock(b) for b in model.resblocks]
        super().__init__(model)

    def reset(self) -> None:
        for s in (self.pre, self.post, *self.ups, *self.blocks):
            s.reset()
        self.branches = [[_Fifo() for _ in range(self.n_kernels)] for _ in self.ups]
        super().reset()

    def _run(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.pre.step(mel)
        for i, up in enumerate(self.ups):
            x = up.step(F.leaky_relu(x, HIFIGAN_SLOPE))
            fifos = self.branches[i]
            for j in range(self.n_kernels):
                fifos[j].push(self.blocks[i * self.n_kernels + j].step(x))
            x = _aligned_sum(fifos) / self.n_kernels
        return torch.tanh(self.post.step(F.leaky_relu(x)))       # NB: the reference's default slope here


class CachedMelGANStreamer(_CachedStreamer):
    """The reference MelGAN (Kumar et al. 2019), reflection padding and all."""

    def __init__(self, model: MelGANReferenceGenerator):
        self.chain = _Chain(model.model)
        super().__init__(model)

    def reset(self) -> None:
        self.chain.reset()
        super().reset()

    def _run(self, mel: torch.Tensor) -> torch.Tensor:
        return self.chain.step(mel)
