"""The MelGAN generator (Kumar et al. 2019), causal, so it streams: mel frames in, audio out.

Shapes: mel ``[batch, n_mels, frames]`` -> audio ``[batch, 1, frames * hop]``, hop = the
product of ``ratios``.

The architecture is the reference one, with every convolution made causal (left padding
only, ``streaming_conv``): a kernel-7 conv to ``ngf * 2**len(ratios)`` channels; per ratio
``r``: LeakyReLU(0.2), a transposed conv (kernel ``2r``, stride ``r``) halving the channels,
and a stack of residual units (LeakyReLU, kernel-3 conv with dilation ``3**j``, LeakyReLU,
1x1 conv; plus a 1x1 shortcut); then LeakyReLU, a kernel-7 conv to one channel, tanh. With the
reference hyper-parameters (80 mels, ngf 32, ratios 8 8 2 2, 3 residual units) that is
4.26 M parameters.

``forward`` renders a whole sequence offline; ``step`` renders the next block of frames of a
stream, with the state every layer carries; ``reset`` starts a new stream. Streamed output
equals the offline output to float rounding at any split of the frames, and a causal model
needs no lookahead (tests/test_melgan.py). Threading: one stream per object.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .streaming_conv import CausalConv1d, CausalConvTranspose1d, reset_stream

SLOPE = 0.2


@dataclass(frozen=True)
class MelGANConfig:
    n_mels: int = 80
    ngf: int = 32
    ratios: tuple[int, ...] = (8, 8, 2, 2)
    n_residual_layers: int = 3
    sample_rate: int = 22050
    extra: dict = field(default_factory=dict)

    @property
    def hop(self) -> int:
        h = 1
        for r in self.ratios:
            h *= r
        return h

    def check(self) -> MelGANConfig:
        for name, v, lo in (("n_mels", self.n_mels, 1), ("ngf", self.ngf, 1),
                            ("n_residual_layers", self.n_residual_layers, 0), ("sample_rate", self.sample_rate, 8000)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"MelGAN config: {name} must be an integer >= {lo}, got {v!r}")
        if not self.ratios or any(not isinstance(r, int) or r < 1 for r in self.ratios):
            raise ValueError(f"MelGAN config: ratios must be positive integers, got {self.ratios!r}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratios"] = list(self.ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MelGANConfig:
        known = {k: d[k] for k in ("n_mels", "ngf", "ratios", "n_residual_layers", "sample_rate") if k in d}
        if "ratios" in known:
            known["ratios"] = tuple(known["ratios"])
        return cls(**known).check()


def _run(layer: nn.Module, x: torch.Tensor, stream: bool) -> torch.Tensor:
    return layer.step(x) if stream else layer(x)


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, 3, dilation=dilation)
        self.proj = CausalConv1d(channels, channels, 1)
        self.shortcut = CausalConv1d(channels, channels, 1)

    def run(self, x: torch.Tensor, stream: bool) -> torch.Tensor:
        h = _run(self.conv, F.leaky_relu(x, SLOPE), stream)
        h = _run(self.proj, F.leaky_relu(h, SLOPE), stream)
        return _run(self.shortcut, x, stream) + h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, False)


class UpsampleStage(nn.Module):
    def __init__(self, channels: int, ratio: int, n_residual_layers: int):
        super().__init__()
        self.up = CausalConvTranspose1d(channels, channels // 2, 2 * ratio, ratio)
        self.units = nn.ModuleList(ResidualUnit(channels // 2, 3 ** j) for j in range(n_residual_layers))

    def run(self, x: torch.Tensor, stream: bool) -> torch.Tensor:
        x = _run(self.up, F.leaky_relu(x, SLOPE), stream)
        for u in self.units:
            x = u.run(x, stream)
        return x


class MelGANGenerator(nn.Module):
    def __init__(self, config: MelGANConfig | None = None):
        super().__init__()
        self.config = cfg = (config or MelGANConfig()).check()
        ch = cfg.ngf * 2 ** len(cfg.ratios)
        self.pre = CausalConv1d(cfg.n_mels, ch, 7)
        stages = []
        for r in cfg.ratios:
            stages.append(UpsampleStage(ch, r, cfg.n_residual_layers))
            ch //= 2
        self.stages = nn.ModuleList(stages)
        self.post = CausalConv1d(ch, 1, 7)

    @property
    def hop(self) -> int:
        return self.config.hop

    def run(self, mel: torch.Tensor, stream: bool) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"MelGAN: mel must be [batch, {self.config.n_mels} bands, frames]; got "
                             f"{tuple(mel.shape)}")
        x = _run(self.pre, mel, stream)
        for s in self.stages:
            x = s.run(x, stream)
        return torch.tanh(_run(self.post, F.leaky_relu(x, SLOPE), stream))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Offline: ``[batch, n_mels, frames]`` -> ``[batch, 1, frames * hop]``."""
        return self.run(mel, False)

    def step(self, mel: torch.Tensor) -> torch.Tensor:
        """The next ``frames`` of a stream -> their ``frames * hop`` samples."""
        return self.run(mel, True)

    def reset(self) -> None:
        reset_stream(self)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
