"""MIDI to mel: a small feed-forward network from the piano roll to a vocoder's log-mel frames.

Per mel frame, every sounding note (``piano_roll``: pitch, velocity, time since onset, held or
released and since when) goes through one shared MLP, which gives that note's spectrum as two
80-band curves in the log domain: a gain on a harmonic comb and a free (noise) part. The comb
is fixed, not learned: the linear mel of a flat harmonic series on the note's fundamental
(every partial below Nyquist, Hann window, the model's filterbank), tabulated every 1/8
semitone and interpolated, so a pitch bend moves the partials and the network only has to
learn the spectral envelope and its evolution. A note's linear mel is

    comb(pitch) * exp(g) + exp(n),      g, n = MLP(features)

times its gain against the training level; the frame's mel is the sum over its notes (one
frame holds the whole chord: polyphony is free), then ``log(floor + x)`` (``log10`` where the
vocoder's mel uses it). Each frame depends only on the roll at its end time, so the model is
causal with no state: streaming equals offline exactly.

Config: ``MidiToMelConfig`` (rate, hop, n_fft, n_mels, fmin, fmax, floor, log10: the vocoder's
mel; hidden width, layers; tail: how long a released note still sounds).
Threading: a torch module; the instrument calls it from the render side.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .piano_roll import F_PITCH, N_FEATURES

COMB_LOW, COMB_HIGH, COMB_STEPS = 12.0, 120.0, 8       # MIDI pitches, table steps per semitone
N_PITCH_EMBED = 8


@dataclass(frozen=True)
class MidiToMelConfig:
    sample_rate: int = 22050
    hop: int = 256
    n_fft: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    floor: float = 1e-5
    log10: bool = False
    hidden: int = 192
    layers: int = 3
    tail: float = 1.5

    def check(self) -> MidiToMelConfig:
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate={self.sample_rate}: need 8000..96000")
        if not 16 <= self.hop <= self.n_fft <= 8192 or self.n_fft & (self.n_fft - 1):
            raise ValueError(f"hop={self.hop}, n_fft={self.n_fft}: need 16 <= hop <= n_fft <= 8192, n_fft a power "
                             "of two")
        if not 8 <= self.n_mels <= 256:
            raise ValueError(f"n_mels={self.n_mels}: need 8..256")
        if not 0 < self.floor < 1:
            raise ValueError(f"floor={self.floor}: need 0..1")
        if not 8 <= self.hidden <= 2048 or not 1 <= self.layers <= 8:
            raise ValueError(f"hidden={self.hidden}, layers={self.layers}: need 8..2048 and 1..8")
        if not 0.05 <= self.tail <= 30:
            raise ValueError(f"tail={self.tail}: need 0.05..30 s")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MidiToMelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown midi2mel setting(s) {unknown}")
        try:
            return cls(**d).check()
        except TypeError as exc:
            raise ValueError(f"bad midi2mel config: {exc}") from None

    def mel_settings(self) -> dict:
        return {"n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels, "fmin": self.fmin,
                "fmax": self.fmax, "floor": self.floor, "log10": self.log10}


def comb_table(cfg: MidiToMelConfig) -> np.ndarray:
    """[pitches, n_mels]: the linear mel of a unit harmonic series (amplitude 1 per partial,
    every partial below Nyquist) on each grid pitch. Each partial's magnitude spectrum is the
    Hann window's main lobe and first side lobes (+-4 bins) around its frequency; partials add
    in power (random phases, on average)."""
    from .mel_analysis import mel_filterbank
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax).astype(np.float64)
    pitches = np.arange(COMB_LOW, COMB_HIGH + 1e-9, 1.0 / COMB_STEPS)
    n_bins, bin_hz = cfg.n_fft // 2 + 1, cfg.sample_rate / cfg.n_fft
    power = np.zeros((len(pitches), n_bins))
    for i, p in enumerate(pitches):
        f0 = 440.0 * 2.0 ** ((p - 69.0) / 12.0)
        centre = np.arange(1, int(0.5 * cfg.sample_rate / f0) + 1) * f0 / bin_hz
        centre = centre[centre < n_bins - 1]
        bins = np.floor(centre)[:, None] + np.arange(-4, 6)[None, :]
        d = bins - centre[:, None]
        ok = (bins >= 0) & (bins < n_bins)
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.where(np.abs(np.abs(d) - 1) < 1e-9, 0.5, np.sinc(d) / (1 - d * d))
        np.add.at(power[i], bins[ok].astype(np.int64), (cfg.n_fft / 4 * mag[ok]) ** 2)
    return (np.sqrt(power) @ fb.T).astype(np.float32)


class MidiToMel(nn.Module):
    def __init__(self, config: MidiToMelConfig | None = None):
        super().__init__()
        self.config = (config or MidiToMelConfig()).check()
        c = self.config
        self.register_buffer("comb", torch.from_numpy(comb_table(c)), persistent=False)
        layers, width = [], N_FEATURES + N_PITCH_EMBED
        for _ in range(c.layers - 1):
            layers += [nn.Linear(width, c.hidden), nn.GELU()]
            width = c.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * c.n_mels)
        with torch.no_grad():       # start quiet: both parts near -60 dB of a full-scale note
            self.head.weight.mul_(0.1)
            self.head.bias.fill_(math.log(1e-3))

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    @property
    def hop(self) -> int:
        return self.config.hop

    def note_mels(self, features: torch.Tensor) -> torch.Tensor:
        """features [P, N_FEATURES] -> each note's linear mel [P, n_mels]."""
        pitch = features[:, F_PITCH] * 24.0 + 64.0
        freqs = torch.arange(1, N_PITCH_EMBED // 2 + 1, device=features.device, dtype=features.dtype)
        ang = (pitch[:, None] / 12.0) * freqs[None, :] * math.pi / 4
        x = torch.cat((features, torch.sin(ang), torch.cos(ang)), dim=1)
        g, n = self.head(self.body(x)).clamp(-30.0, 12.0).chunk(2, dim=1)
        pos = ((pitch - COMB_LOW) * COMB_STEPS).clamp(0.0, self.comb.shape[0] - 1.001)
        i0 = pos.floor().long()
        # NB: pos >= 0, so frac() is pos - floor(pos); written as that subtraction (pos minus the
        # index cast back to float) this line kept ~1.5 B per call alive in torch 2.13, found by
        # tests/test_torture_callback.py
        w = pos.frac()[:, None]
        comb = self.comb[i0] * (1 - w) + self.comb[i0 + 1] * w
        return comb * torch.exp(g) + torch.exp(n)

    def forward(self, features: torch.Tensor, frame: torch.Tensor, frames: int,
                gain: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel ``[frames, n_mels]`` from the sounding notes: ``features [P, N_FEATURES]``,
        ``frame [P]`` (int64, which frame each note row belongs to), ``gain [P]`` (linear
        amplitude against the training level; None = 1)."""
        m = self.note_mels(features)
        if gain is not None:
            m = m * gain[:, None]
        lin = torch.zeros(frames, self.config.n_mels, device=features.device, dtype=m.dtype)
        lin = lin.index_add(0, frame, m)
        y = torch.log(lin + self.config.floor)
        return y / math.log(10.0) if self.config.log10 else y

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
