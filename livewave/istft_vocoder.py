"""A causal GAN vocoder with an inverse-STFT output: the HiFi-GAN family's iSTFT branch
(iSTFTNet, Kaneko et al. 2022, which replaces the last upsampling layers by an inverse STFT;
Vocos, Siuzdenko et al. 2023, which replaces all of them), made causal so that it streams.

mel ``[B, n_mels, T]`` -> a causal convolution stem -> residual blocks at the frame rate
(causal dilated conv, LayerNorm over channels, a pointwise MLP) -> per frame, ``n_fft // 2 + 1``
log-magnitudes and phases -> inverse real FFT, periodic Hann window -> overlap-add with
``hop``. Nothing runs at the audio rate but the FFT, so it is several times cheaper than a
MelGAN of the same quality class, and it learns magnitudes quickly (the mel is already a
smoothed magnitude spectrum): a short run on a CPU is usable.

Causality and latency: frame ``t`` (the causal mel frame ending at input sample
``(t + 1) * hop``) is synthesised into output samples ``[t * hop, t * hop + n_fft)``; after it,
the output up to ``(t + 1) * hop`` is final (the next frame starts there when ``n_fft = 2 hop``).
Training aligns the output one ``hop`` behind the input (``output_delay``): the window then
spans input samples ``[(t - 1) * hop, (t + 1) * hop)``, inside what frame ``t`` has heard.
So the model adds ``hop`` samples of delay to a causal MelGAN's (declared by its instrument).

Streaming: ``step(mel)`` carries the convolution caches (``streaming_conv``) and the
overlap-add tail (``n_fft - hop`` samples); concatenated steps equal ``forward`` on the whole
sequence at any split (tests/test_istft_vocoder.py).
Threading: a torch module; one stream per instance.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .streaming_conv import CausalConv1d, reset_stream


@dataclass(frozen=True)
class ISTFTConfig:
    n_mels: int = 80
    hop: int = 256
    n_fft: int = 512          # synthesis window: 2 or 4 hops (periodic Hann overlap-adds flat)
    channels: int = 256
    blocks: int = 6
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4)
    sample_rate: int = 22050

    def check(self) -> ISTFTConfig:
        if not 8 <= self.n_mels <= 256:
            raise ValueError(f"n_mels={self.n_mels}: need 8..256")
        if not 16 <= self.hop <= 4096 or self.n_fft not in (2 * self.hop, 4 * self.hop):
            raise ValueError(f"hop={self.hop}, n_fft={self.n_fft}: need 16 <= hop <= 4096 and n_fft 2 or 4 hops")
        if not 8 <= self.channels <= 2048 or not 1 <= self.blocks <= 32 or not 1 <= self.kernel <= 15:
            raise ValueError(f"channels={self.channels}, blocks={self.blocks}, kernel={self.kernel} out of range")
        if not self.dilations or not all(isinstance(d, int) and 1 <= d <= 64 for d in self.dilations):
            raise ValueError(f"dilations={self.dilations}: need integers 1..64")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate={self.sample_rate}: need 8000..96000")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ISTFTConfig:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown istft setting(s) {unknown}")
        d = dict(d)
        if "dilations" in d:
            d["dilations"] = tuple(d["dilations"])
        try:
            return cls(**d).check()
        except TypeError as exc:
            raise ValueError(f"bad istft config: {exc}") from None


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel, dilation=dilation)
        self.norm = nn.LayerNorm(channels)
        self.up = nn.Conv1d(channels, 2 * channels, 1)
        self.down = nn.Conv1d(2 * channels, channels, 1)

    def run(self, x: torch.Tensor, stream: bool) -> torch.Tensor:
        h = (self.conv.step(x) if stream else self.conv(x)).transpose(1, 2)       # [B, T, C]
        # NB: the pointwise layers as matrix products in [B, T, C]: torch's CPU conv costs ~100 us
        # per call for a frame or two (profiled); same weights, same sums
        h = F.linear(self.norm(h), self.up.weight[:, :, 0], self.up.bias)
        h = F.linear(F.gelu(h), self.down.weight[:, :, 0], self.down.bias)
        return x + h.transpose(1, 2)


class ISTFTVocoder(nn.Module):
    def __init__(self, config: ISTFTConfig | None = None):
        super().__init__()
        self.config = c = (config or ISTFTConfig()).check()
        self.stem = CausalConv1d(c.n_mels, c.channels, 7)
        self.blocks = nn.ModuleList(_Block(c.channels, c.kernel, c.dilations[i % len(c.dilations)])
                                    for i in range(c.blocks))
        self.head = nn.Conv1d(c.channels, c.n_fft + 2, 1)
        n = torch.arange(c.n_fft, dtype=torch.float32)
        # periodic Hann overlap-adds to n_fft / (2 hop); scaled so the sum is 1
        self.register_buffer("window", (0.5 - 0.5 * torch.cos(2 * math.pi * n / c.n_fft)) * (2 * c.hop / c.n_fft),
                             persistent=False)
        self._tail: torch.Tensor | None = None

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    @property
    def output_delay(self) -> int:
        """Samples the output lags the audio its mel came from (training aligns it so)."""
        return self.config.hop

    def frames(self, mel: torch.Tensor, stream: bool) -> torch.Tensor:
        """mel ``[B, n_mels, T]`` -> windowed frames ``[B, n_fft, T]``."""
        x = self.stem.step(mel) if stream else self.stem(mel)
        for b in self.blocks:
            x = b.run(x, stream)
        h = F.linear(x.transpose(1, 2), self.head.weight[:, :, 0], self.head.bias).transpose(1, 2)
        k = self.config.n_fft // 2 + 1
        mag = torch.exp(h[:, :k].clamp(max=8.0))
        phase = h[:, k:]
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        return torch.fft.irfft(spec, n=self.config.n_fft, dim=1) * self.window[None, :, None]

    def _overlap_add(self, fr: torch.Tensor) -> torch.Tensor:
        """``[B, n_fft, T]`` -> ``[B, (T - 1) * hop + n_fft]``."""
        c = self.config
        t = fr.shape[2]
        out = F.fold(fr, output_size=(1, (t - 1) * c.hop + c.n_fft), kernel_size=(1, c.n_fft), stride=(1, c.hop))
        return out[:, 0, 0]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Offline: ``[B, n_mels, T]`` -> ``[B, 1, T * hop]``."""
        y = self._overlap_add(self.frames(mel, stream=False))
        return y[:, None, :mel.shape[2] * self.config.hop]

    def step(self, mel: torch.Tensor) -> torch.Tensor:
        """Streaming: the next ``T`` frames -> the next ``T * hop`` final samples ``[B, 1, T * hop]``."""
        c = self.config
        if mel.shape[2] == 0:
            return mel.new_zeros(mel.shape[0], 1, 0)
        y = self._overlap_add(self.frames(mel, stream=True))
        keep = c.n_fft - c.hop
        if self._tail is not None and self._tail.shape[0] == y.shape[0]:
            y = torch.cat((y[:, :keep] + self._tail, y[:, keep:]), dim=1)
        n = mel.shape[2] * c.hop
        self._tail = y[:, n:].clone()
        return y[:, None, :n]

    def reset(self) -> None:
        reset_stream(self)
        self._tail = None

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
