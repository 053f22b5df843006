"""The DDSP decoder (Engel et al. 2020), made causal so it streams frame by frame.

A pure ``nn.Module``: per frame, from f0 and loudness it predicts the controls of the
harmonic-plus-noise synthesiser (``harmonic_noise.py`` plays them live, ``ddsp_synth.py``
is the differentiable twin used in training):

    f0 [B, F] Hz, loudness [B, F] dB (A-weighted, dBFS)
      -> per-input MLPs -> GRU (causal; state carried between calls) -> MLP
      -> amplitude [B, F, 1], harmonic distribution [B, F, H], noise band magnitudes [B, F, bands]

``forward`` runs a whole sequence (training); ``step`` runs one frame for a batch of voices
with an explicit hidden state ``[B, hidden]`` (inference; each voice keeps its own state).
The two give the same numbers (tested). No I/O, no device policy, no training code here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

LOUDNESS_FLOOR_DB = -100.0
LOG10 = math.log(10.0)


@dataclass(frozen=True)
class DecoderConfig:
    n_harmonics: int = 64
    n_bands: int = 32
    hidden: int = 128          # GRU width
    mlp: int = 96              # MLP width
    frame_seconds: float = 0.004
    sample_rate: int = 16000   # the training rate: the model knows nothing above its Nyquist

    def validate(self) -> DecoderConfig:
        if self.n_harmonics % 4 or not (4 <= self.n_harmonics <= 256):
            raise ValueError(f"n_harmonics={self.n_harmonics}: need a multiple of 4 in 4..256")
        if not (1 <= self.n_bands <= 256):
            raise ValueError(f"n_bands={self.n_bands}: need 1..256")
        if not (8 <= self.hidden <= 2048 and 8 <= self.mlp <= 2048):
            raise ValueError(f"hidden={self.hidden}, mlp={self.mlp}: need 8..2048")
        if not (0.001 <= self.frame_seconds <= 0.05):
            raise ValueError(f"frame_seconds={self.frame_seconds}: need 0.001..0.05")
        if not (8000 <= self.sample_rate <= 192000):
            raise ValueError(f"sample_rate={self.sample_rate}: need 8000..192000")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DecoderConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        cfg = cls(**known)
        for k in ("n_harmonics", "n_bands", "hidden", "mlp", "sample_rate"):
            if not isinstance(getattr(cfg, k), int) or isinstance(getattr(cfg, k), bool):
                raise ValueError(f"{k}={getattr(cfg, k)!r} must be an integer")
        return cfg.validate()


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0,
                threshold: float = 1e-7) -> torch.Tensor:
    """DDSP's positive output nonlinearity: ``max_value * sigmoid(x) ** log(exponent) + threshold``."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def scale_f0(f0_hz: torch.Tensor) -> torch.Tensor:
    """Hz -> MIDI note / 127 (0..1 over the MIDI range)."""
    return 12.0 * torch.log2(f0_hz.clamp_min(1.0) / 440.0) / 127.0 + 69.0 / 127.0


def scale_loudness(db: torch.Tensor) -> torch.Tensor:
    """dB (floor -100) -> 0..1."""
    return db.clamp(LOUDNESS_FLOOR_DB, 0.0) / -LOUDNESS_FLOOR_DB + 1.0


def _mlp(n_in: int, width: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(n_in if i == 0 else width, width), nn.LayerNorm(width), nn.LeakyReLU(0.2)]
    return nn.Sequential(*mods)


class DDSPDecoder(nn.Module):
    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config.validate()
        c = self.config
        self.f0_mlp = _mlp(1, c.mlp)
        self.ld_mlp = _mlp(1, c.mlp)
        self.gru = nn.GRU(2 * c.mlp, c.hidden, batch_first=True)
        self.out_mlp = _mlp(c.hidden + 2 * c.mlp, c.mlp)
        self.head = nn.Linear(c.mlp, 1 + c.n_harmonics + c.n_bands)

    def _inputs(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor) -> torch.Tensor:
        a = self.f0_mlp(scale_f0(f0_hz).unsqueeze(-1))
        b = self.ld_mlp(scale_loudness(loudness_db).unsqueeze(-1))
        return torch.cat([a, b], dim=-1)

    def _outputs(self, x: torch.Tensor, f0_hz: torch.Tensor, nyquist_hz: float):
        """-> harmonic amplitudes [.., H] (amplitude x distribution, zero at and above
        ``nyquist_hz``) and noise band magnitudes [.., bands]."""
        c = self.config
        y = self.head(x)
        amp = exp_sigmoid(y[..., :1])
        logits = y[..., 1:1 + c.n_harmonics]
        k = torch.arange(1, c.n_harmonics + 1, device=y.device, dtype=y.dtype)
        above = (f0_hz.unsqueeze(-1) * k) >= nyquist_hz
        logits = logits.masked_fill(above, -1e9)
        dist = torch.softmax(logits, dim=-1).masked_fill(above, 0.0)
        mags = exp_sigmoid(y[..., 1 + c.n_harmonics:] - 5.0)
        return amp * dist, mags

    def forward(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor, h0: torch.Tensor | None = None,
                nyquist_hz: float | None = None):
        """Sequence mode. ``f0_hz``, ``loudness_db``: ``[B, F]``. -> (harmonic amps ``[B, F, H]``,
        noise mags ``[B, F, bands]``, final hidden state ``[B, hidden]``)."""
        z = self._inputs(f0_hz, loudness_db)
        g, h = self.gru(z, None if h0 is None else h0.unsqueeze(0))
        x = self.out_mlp(torch.cat([g, z], dim=-1))
        nyq = self.config.sample_rate / 2 if nyquist_hz is None else nyquist_hz
        amps, mags = self._outputs(x, f0_hz, nyq)
        return amps, mags, h.squeeze(0)

    def step(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor, h: torch.Tensor, nyquist_hz: float):
        """One frame for ``B`` voices: ``f0_hz``, ``loudness_db`` ``[B]``, ``h`` ``[B, hidden]``.
        -> (amps ``[B, H]``, mags ``[B, bands]``, new hidden ``[B, hidden]``)."""
        z = self._inputs(f0_hz, loudness_db)
        h_new = _gru_cell(self.gru, z, h)
        x = self.out_mlp(torch.cat([h_new, z], dim=-1))
        amps, mags = self._outputs(x, f0_hz, nyquist_hz)
        return amps, mags, h_new


def _gru_cell(gru: nn.GRU, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of a single-layer ``nn.GRU`` with its own weights (PyTorch's gate order r, z, n)."""
    gi = torch.nn.functional.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)
    gh = torch.nn.functional.linear(h, gru.weight_hh_l0, gru.bias_hh_l0)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)
