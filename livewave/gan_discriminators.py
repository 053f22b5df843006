"""The discriminators of the GAN vocoders and their losses.

- ``MultiScaleDiscriminator`` (MelGAN, Kumar et al. 2019): the same conv stack on the audio at
  1x, 1/2 and 1/4 rate (average pooling between): a kernel-15 conv, four grouped strided
  convs (kernel 41, stride 4), a kernel-5 conv and a kernel-3 conv to one channel.
- ``MultiPeriodDiscriminator`` (HiFi-GAN, Kong et al. 2020): the audio folded into
  ``[frames / p, p]`` for p in 2, 3, 5, 7, 11, each seen by 2-D convs with kernel (5, 1) and
  stride (3, 1), so each looks at one sample in p (periodic structure).

Each discriminator returns ``(scores, features)``: per sub-discriminator its output map and
the list of its intermediate activations (for feature matching). Shapes: audio
``[batch, 1, samples]``.

Losses (``gan_losses``): least squares for the adversarial terms (HiFi-GAN; MelGAN's hinge
is ``hinge=True``), L1 feature matching between the real and generated activations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

SLOPE = 0.2


def _stack(layers, out, x):
    """LeakyReLU after each of ``layers``, then ``out``: (score, every activation)."""
    feats = []
    for layer in layers:
        x = F.leaky_relu(layer(x), SLOPE)
        feats.append(x)
    x = out(x)
    feats.append(x)
    return x, feats


class ScaleDiscriminator(nn.Module):
    def __init__(self, channels: int = 16, max_channels: int = 1024, groups_cap: int = 256):
        super().__init__()
        layers = [weight_norm(nn.Conv1d(1, channels, 15, padding=7))]
        ch = channels
        for _ in range(4):
            out = min(ch * 4, max_channels)
            layers.append(weight_norm(nn.Conv1d(ch, out, 41, stride=4, padding=20, groups=max(1, min(ch // 4, groups_cap)))))
            ch = out
        layers.append(weight_norm(nn.Conv1d(ch, ch, 5, padding=2)))
        self.layers = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv1d(ch, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _stack(self.layers, self.out, x)


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales: int = 3, channels: int = 16, max_channels: int = 1024):
        super().__init__()
        self.discs = nn.ModuleList(ScaleDiscriminator(channels, max_channels) for _ in range(scales))

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        scores, feats = [], []
        x = audio
        for i, d in enumerate(self.discs):
            if i:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            s, f = d(x)
            scores.append(s)
            feats.append(f)
        return scores, feats


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: tuple[int, ...] = (32, 128, 512, 1024)):
        super().__init__()
        self.period = period
        layers, c_in = [], 1
        for c in channels:
            layers.append(weight_norm(nn.Conv2d(c_in, c, (5, 1), stride=(3, 1), padding=(2, 0))))
            c_in = c
        layers.append(weight_norm(nn.Conv2d(c_in, c_in, (5, 1), padding=(2, 0))))
        self.layers = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv2d(c_in, 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x, feats = _stack(self.layers, self.out, x.reshape(b, c, -1, self.period))
        return x.flatten(1, -1), feats


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: tuple[int, ...] = (32, 128, 512, 1024)):
        super().__init__()
        self.discs = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        scores, feats = [], []
        for d in self.discs:
            s, f = d(audio)
            scores.append(s)
            feats.append(f)
        return scores, feats


# -- losses ----------------------------------------------------------------------------------------
def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor], hinge: bool = False) -> torch.Tensor:
    """Real scores pushed to 1 and generated ones to 0 (least squares), or past +-1 (hinge)."""
    loss = 0.0
    for r, f in zip(real, fake, strict=True):
        if hinge:
            loss = loss + F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
        else:
            loss = loss + ((1.0 - r) ** 2).mean() + (f ** 2).mean()
    return loss


def generator_adversarial_loss(fake: list[torch.Tensor], hinge: bool = False) -> torch.Tensor:
    loss = 0.0
    for f in fake:
        loss = loss + (-f.mean() if hinge else ((1.0 - f) ** 2).mean())
    return loss


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between the discriminators' activations on real and on generated audio (the
    real ones detached: this trains the generator only)."""
    loss, n = 0.0, 0
    for rs, fs in zip(real, fake, strict=True):
        for r, f in zip(rs, fs, strict=True):
            loss = loss + (r.detach() - f).abs().mean()
            n += 1
    return loss / max(n, 1)
