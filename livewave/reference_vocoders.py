"""The reference vocoder architectures, for checkpoints trained with the reference code:
HiFi-GAN's generator (Kong et al. 2020, V1/V2/V3) and MelGAN's (Kumar et al. 2019), and the
streaming of such non-causal models with the smallest lookahead that reproduces their offline
output exactly.

The modules repeat the reference layer for layer: the same convolutions, paddings (zero padding
in HiFi-GAN, reflection padding in MelGAN), activations (leaky ReLU 0.1 in HiFi-GAN and a final
default-slope leaky ReLU; 0.2 in MelGAN) and the same parameter names, so a reference state
dict loads by name. Weight normalisation is folded into plain weights when a file is imported
(``fold_weight_norm``): ``w = g * v / ||v||``, the norm over every dimension but the first, as
``torch.nn.utils.weight_norm`` (dim 0) computes it.

Streaming (``LookaheadStreamer``): output block t (``hop`` samples) of such a model depends on
mel frames t - L .. t + R. ``receptive_field`` measures L and R for an architecture (the output
that a change of one frame reaches, with random weights in float64). The streamer keeps the last
frames and, once frame t + R has arrived, runs the model on frames max(0, t - L) .. t + R and
keeps block t: what the offline pass gives for that block, since neither edge of the window is
within reach of it (the left edge is the true start of the stream or further back than L). It
costs a recomputation of L + R frames of context per call; the lookahead is R frames. The
engine streams these models with ``cached_streaming`` (one frame of work per frame); this
streamer stays as the measured reference for the minimum lookahead (tests/test_vocoder_import.py).
Shapes: mel ``[batch, n_mels, frames]``; audio ``[batch, 1, frames * hop]``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

HIFIGAN_SLOPE = 0.1
MELGAN_SLOPE = 0.2


# -- HiFi-GAN ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HiFiGANConfig:
    """The reference config JSON's generator and mel keys (V1, V2 and V3 ship such files)."""
    resblock: str = "1"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    num_mels: int = 80
    sampling_rate: int = 22050
    n_fft: int = 1024
    hop_size: int = 256
    win_size: int = 1024
    fmin: float = 0.0
    fmax: float | None = 8000.0

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def n_mels(self) -> int:
        return self.num_mels

    @property
    def sample_rate(self) -> int:
        return self.sampling_rate

    def check(self) -> HiFiGANConfig:
        if self.resblock not in ("1", "2"):
            raise ValueError(f"HiFi-GAN config: resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes) or not self.upsample_rates:
            raise ValueError("HiFi-GAN config: upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("HiFi-GAN config: resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        need = 3 if self.resblock == "1" else 2
        if any(len(d) != need for d in self.resblock_dilation_sizes):
            raise ValueError(f"HiFi-GAN config: resblock {self.resblock} takes {need} dilations per kernel")
        if self.hop != self.hop_size:
            raise ValueError(f"HiFi-GAN config: the upsample rates make a hop of {self.hop}, hop_size says "
                             f"{self.hop_size}")
        if self.win_size != self.n_fft:
            raise ValueError(f"HiFi-GAN config: win_size {self.win_size} differs from n_fft {self.n_fft}; livewave's "
                             "mel analysis windows the whole FFT")
        if self.num_mels != 80:
            raise ValueError(f"HiFi-GAN config: num_mels {self.num_mels}; the reference generator takes 80 bands")
        if self.upsample_initial_channel < 2 ** len(self.upsample_rates):
            raise ValueError("HiFi-GAN config: upsample_initial_channel too small for the number of upsamplings")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HiFiGANConfig:
        kw = {}
        for k in asdict(cls()):
            if k in d:
                v = d[k]
                if k == "resblock":
                    v = str(v)
                elif k == "resblock_dilation_sizes":
                    v = tuple(tuple(int(x) for x in row) for row in v)
                elif k in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
                    v = tuple(int(x) for x in v)
                kw[k] = v
        return cls(**kw).check()


def _pad(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class HiFiGANResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_pad(kernel, d))
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=_pad(kernel))
                                    for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, HIFIGAN_SLOPE)), HIFIGAN_SLOPE))
        return x


class HiFiGANResBlock2(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_pad(kernel, d))
                                   for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, HIFIGAN_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    def __init__(self, config: HiFiGANConfig | None = None):
        super().__init__()
        self.config = cfg = (config or HiFiGANConfig()).check()
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(80, ch0, 7, 1, padding=3)
        self.ups = nn.ModuleList(nn.ConvTranspose1d(ch0 // 2 ** i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
                                 for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes,
                                                                strict=True)))
        block = HiFiGANResBlock1 if cfg.resblock == "1" else HiFiGANResBlock2
        self.resblocks = nn.ModuleList(block(ch0 // 2 ** (i + 1), k, tuple(d))
                                       for i in range(len(self.ups))
                                       for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes,
                                                       strict=True))
        self.conv_post = nn.Conv1d(ch0 // 2 ** len(self.ups), 1, 7, 1, padding=3)
        self.n_kernels = len(cfg.resblock_kernel_sizes)

    @property
    def hop(self) -> int:
        return self.config.hop

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, HIFIGAN_SLOPE))
            xs = self.resblocks[i * self.n_kernels](x)
            for j in range(1, self.n_kernels):
                xs = xs + self.resblocks[i * self.n_kernels + j](x)
            x = xs / self.n_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))      # NB: the reference's default slope here

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


# -- MelGAN (the reference repository's generator) ---------------------------------------------
@dataclass(frozen=True)
class MelGANReferenceConfig:
    """The reference training script's hyper-parameters (``args.yml``) and its mel front-end."""
    n_mel_channels: int = 80
    ngf: int = 32
    n_residual_layers: int = 3
    sampling_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    fmin: float = 0.0
    fmax: float | None = None
    ratios: tuple[int, ...] = field(default=(8, 8, 2, 2))

    @property
    def hop(self) -> int:
        return math.prod(self.ratios)

    @property
    def n_mels(self) -> int:
        return self.n_mel_channels

    @property
    def sample_rate(self) -> int:
        return self.sampling_rate

    def check(self) -> MelGANReferenceConfig:
        for k in ("n_mel_channels", "ngf", "sampling_rate", "n_fft", "hop_length"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"MelGAN reference config: {k} must be a positive integer, got {v!r}")
        if self.n_residual_layers < 0:
            raise ValueError("MelGAN reference config: n_residual_layers must be >= 0")
        if self.hop != self.hop_length:
            raise ValueError(f"MelGAN reference config: the generator's hop is {self.hop}, hop_length says "
                             f"{self.hop_length}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MelGANReferenceConfig:
        kw = {k: d[k] for k in asdict(cls()) if k in d}
        if "ratios" in kw:
            kw["ratios"] = tuple(int(r) for r in kw["ratios"])
        return cls(**kw).check()


class MelGANReferenceResBlock(nn.Module):
    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(nn.LeakyReLU(MELGAN_SLOPE), nn.ReflectionPad1d(dilation),
                                   nn.Conv1d(dim, dim, 3, dilation=dilation), nn.LeakyReLU(MELGAN_SLOPE),
                                   nn.Conv1d(dim, dim, 1))
        self.shortcut = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class MelGANReferenceGenerator(nn.Module):
    def __init__(self, config: MelGANReferenceConfig | None = None):
        super().__init__()
        self.config = cfg = (config or MelGANReferenceConfig()).check()
        mult = 2 ** len(cfg.ratios)
        layers: list[nn.Module] = [nn.ReflectionPad1d(3), nn.Conv1d(cfg.n_mel_channels, mult * cfg.ngf, 7)]
        for r in cfg.ratios:
            layers += [nn.LeakyReLU(MELGAN_SLOPE),
                       nn.ConvTranspose1d(mult * cfg.ngf, mult * cfg.ngf // 2, r * 2, stride=r, padding=r // 2 + r % 2,
                                          output_padding=r % 2)]
            layers += [MelGANReferenceResBlock(mult * cfg.ngf // 2, 3 ** j) for j in range(cfg.n_residual_layers)]
            mult //= 2
        layers += [nn.LeakyReLU(MELGAN_SLOPE), nn.ReflectionPad1d(3), nn.Conv1d(cfg.ngf, 1, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @property
    def hop(self) -> int:
        return self.config.hop

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model(mel)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


# -- weights ------------------------------------------------------------------------------------
def fold_weight_norm(state: dict) -> dict:
    """A state dict with weight-normalised layers (``X.weight_g``/``X.weight_v``, or the newer
    ``X.parametrizations.weight.original0``/``original1``) as plain ``X.weight``."""
    out = {}
    pairs = {}
    for k, v in state.items():
        for g_suffix, v_suffix in (("weight_g", "weight_v"),
                                   ("parametrizations.weight.original0", "parametrizations.weight.original1")):
            hit = next((sfx for sfx in (g_suffix, v_suffix) if k == sfx or k.endswith("." + sfx)), None)
            if hit is not None:
                pairs.setdefault(k[:-len(hit)], {})["g" if hit == g_suffix else "v"] = v
                break
        else:
            out[k] = v
    for base, p in pairs.items():
        if "g" not in p or "v" not in p:
            raise ValueError(f"weight norm of {base + 'weight'!r} is incomplete (needs both its g and v)")
        g, v = p["g"].double(), p["v"].double()
        norm = v.reshape(v.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))
        if g.numel() != v.shape[0]:
            raise ValueError(f"weight norm of {base + 'weight'!r}: g has {g.numel()} values for {v.shape[0]} rows")
        out[base + "weight"] = (g.reshape(norm.shape) * v / norm).to(p["v"].dtype)
    return out


# -- streaming with lookahead -------------------------------------------------------------------------
def receptive_field(model_class, config, frames: int = 48) -> tuple[int, int]:
    """(L, R): output block t depends on mel frames t - L .. t + R. Measured on a freshly
    initialised copy in float64 by changing one frame and looking at which output blocks move."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)                 # NB: torch's default init keeps tanh out of saturation
        model = model_class(config).double().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        n_mels, hop = config.n_mels, config.hop
        mel = torch.randn(1, n_mels, frames, generator=gen, dtype=torch.float64)
        base = model(mel)[0, 0]
        k = frames // 2
        mel2 = mel.clone()
        mel2[:, :, k] += 1.0
        moved = torch.nonzero((model(mel2)[0, 0] - base).abs() > 1e-12 * base.abs().max()).flatten()
    if moved.numel() == 0:
        return 0, 0
    first, last = int(moved.min()) // hop, int(moved.max()) // hop
    if first == 0 or last >= frames - 1:
        return receptive_field(model_class, config, frames * 2)
    # block `first` needs frame k (k - first ahead of it), block `last` needs it (last - k behind)
    return last - k, k - first


class LookaheadStreamer:
    """Streams a non-causal vocoder: ``push(mel)`` takes the next frames and returns the audio of
    every block that can now be computed exactly (see the module docstring)."""

    def __init__(self, model: nn.Module, left: int, right: int, n_mels: int, hop: int):
        self.model, self.left, self.right, self.hop = model, int(left) + 1, int(right), int(hop)   # NB: 1 spare
        self.buf = torch.zeros(1, n_mels, 0)
        self.start = 0       # stream index of buf's first frame
        self.done = 0        # blocks emitted so far

    def reset(self) -> None:
        self.buf = self.buf[:, :, :0]
        self.start = 0
        self.done = 0

    def push(self, mel: torch.Tensor) -> torch.Tensor:
        self.buf = mel if self.buf.shape[2] == 0 else torch.cat((self.buf, mel), dim=2)
        received = self.start + self.buf.shape[2]
        ready = received - self.right                     # blocks 0 .. ready-1 are computable
        if ready <= self.done:
            return mel.new_zeros(1, 1, 0)
        lo = max(0, self.done - self.left)                # window start (stream index)
        window = self.buf[:, :, lo - self.start:]
        y = self.model(window)[:, :, (self.done - lo) * self.hop:(ready - lo) * self.hop]
        self.done = ready
        drop = max(0, self.done - self.left - self.start)  # frames never needed again
        if drop:
            self.buf = self.buf[:, :, drop:]
            self.start += drop
        return y


# The generator settings of the reference V1, V2 and V3 configs (the rest as HiFiGANConfig's).
HIFIGAN_VERSIONS = {
    "v1": {},
    "v2": {"upsample_initial_channel": 128},
    "v3": {"resblock": "2", "upsample_rates": (8, 8, 4), "upsample_kernel_sizes": (16, 16, 8),
           "upsample_initial_channel": 256, "resblock_kernel_sizes": (3, 5, 7),
           "resblock_dilation_sizes": ((1, 2), (2, 6), (3, 12))},
}
