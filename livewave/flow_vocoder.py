"""A WaveGlow-style flow vocoder (Prenger et al. 2019), causal in time, so it streams.

Audio ``[batch, samples]`` is squeezed into groups of ``n_group`` samples
(``[batch, n_group, samples / n_group]``) and passed through ``n_flows`` steps, each an
invertible 1x1 convolution over the group channels followed by an affine coupling layer:
the first half of the channels, with the mel conditioning, drives a WaveNet-like network
(gated dilated convolutions) that outputs ``log s`` and ``t`` for the second half,
``b' = b * exp(log s) + t``. Every ``n_early_every`` steps ``n_early_size`` channels leave
early (they are part of ``z`` from there on). Training maximises the exact likelihood
(``negative_log_likelihood``); sampling inverts the flow from ``z ~ N(0, sigma^2)``, with the
temperature ``sigma`` below 1 (0.6 by default, as the paper) trading variety for cleanliness
(see shared/background on typicality).

Causal: the WaveNet convolutions look only at past groups (``streaming_conv``) and the mel
frames are held for their ``hop / n_group`` groups (upsampling by repetition, then a causal
conv), so ``infer`` can run block by block (``step``) and give what it gives offline for the
same ``z``. The 1x1 convolutions and the couplings are otherwise pointwise in time.

Driven by a source (``source_n_fft`` > 0; ``source_excitation``): the couplings are conditioned on
the mel and on an excitation made from the source's spectrum (its phases, its levels flattened),
squeezed like the audio and passed through a causal conv of 3 groups (``source_channels`` out):
the flow learns the filter from the mel and finds the pitch and phases in the excitation. Such a
model sounds ``source_n_fft - hop`` samples behind its source (``output_delay``) and is trained so;
with no source it gets a silent excitation (the mel alone).

Squeeze ``"mdct"`` (``squeeze``; ``n_group = hop``): instead of groups of samples, each hop's
coefficients of the MDCT (``mdct``: a lapped orthogonal transform, so the likelihood of the
coefficients is the likelihood of the samples), so the flow's channels are frequencies and its
time steps are the mel's frames: the couplings run at the frame rate, 256 times less often than
WaveGlow's at hop 256 and groups of 8, cheap enough to train on a CPU. Its first step is a
Gaussian given the conditioning (``GaussianPrior``: each coefficient's mean is the excitation's
own coefficient times a learnt gain, its standard deviation learnt too, from the mel and the
excitation's band levels; with ``mel_n_fft``, as the trainer sets it, the mean's level is the mel's
own, ``mdct_envelope``, and the network's gain only a bounded correction), the couplings then
shape what that leaves. Sampling draws ``z`` at
``sigma`` through them backwards and the MDCT's inverse overlap-adds the frames, final one hop
behind (``output_delay`` is one hop more). Its audio begins a hop before the frames' own
(``audio_lead``: frame 0's window). With a source, the excitation is the source's own MDCT
frames whitened there (``source_excitation.SourceSignal``, ``whiten_frames``: each coefficient
over a smooth envelope), so each coefficient's mean has the sign and the fine structure of the
coefficient it is to make and the learnt gain need only be a smooth envelope. Its standard
deviations are bounded (``LOG_S_FLOOR``, ``LOG_S_CEIL``) and so are its couplings' log-scales
(``COUPLING_BOUND``): unbounded, a run's loss jumped to 2.5e32 in one step. Flows of groups of 8
and 32 trained on this 2-core CPU stayed noise with the mel's envelope after 105 minutes; on
the MDCT's coefficients, see ``models/README.md``.

Shapes: mel ``[batch, n_mels, frames]``; audio ``[batch, frames * hop]``; source spectra
``[batch, source_n_fft // 2 + 1, frames]`` complex (``source_phase.source_spectrum``).
Threading: one stream per object.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .overlap_add import check_window
from .source_excitation import WHITEN_HALF_WIDTH, Excitation, SourceSignal, whiten_frames
from .streaming_conv import CausalConv1d, reset_stream
from .tensor_cast import as_dtype

SIGMA = 0.6         # the sampling temperature the WaveGlow paper uses
SQUEEZES = ("groups", "mdct")
PRIOR_LAYERS = 4     # squeeze "mdct": causal convolutions in its conditional Gaussian's network
LOG_S_FLOOR = -9.0   # ... and the least log standard deviation it gives (digital silence has none): 1.2e-4, 99 dB
                     # under a full-scale sine's largest coefficient (about 11); -12 let a run's density spike
LOG_S_CEIL = 3.0     # ... and the most (a full-scale sine's largest coefficient is about 11)
COUPLING_BOUND = 2.0  # squeeze "mdct": each coupling's log s is BOUND tanh(raw / BOUND) (unbounded, a run diverged)
MEAN_BOUND = 0.5     # ... and, with the mel's envelope, its Gaussian's mean within exp(+-0.5) of that by default
                     # (FlowConfig.mean_bound; GaussianPrior): the training data asks 0.58 to 1.26 (measured)


@dataclass(frozen=True)
class FlowConfig:
    n_mels: int = 80
    hop: int = 256
    n_group: int = 8
    n_flows: int = 12
    n_early_every: int = 4
    n_early_size: int = 2
    wn_layers: int = 8
    wn_channels: int = 64
    wn_kernel: int = 3
    sample_rate: int = 22050
    source_n_fft: int = 0        # > 0: driven by a source's excitation of this window (module docstring)
    source_channels: int = 32
    squeeze: str = "groups"      # or "mdct": frames of hop coefficients (n_group = hop; module docstring)
    prior_channels: int = 256    # squeeze "mdct": the width of its conditional Gaussian's network
    mel_n_fft: int = 0           # squeeze "mdct" with a source: > 0, its Gaussian's mean takes its level from the
                                 # mel (``GaussianPrior``), whose analysis window this is (fmin 0, fmax Nyquist,
                                 # natural log: the trainer's); 0, its gain is the network's alone
    mean_bound: float = MEAN_BOUND  # with mel_n_fft: the mean within exp(+-this) of the mel's level (a config
                                 # saved without it, from before, had 3.0)

    def check(self) -> FlowConfig:
        if self.squeeze not in SQUEEZES:
            raise ValueError(f"flow vocoder config: squeeze {self.squeeze!r}: one of {', '.join(SQUEEZES)}")
        if self.squeeze == "mdct" and self.n_group != self.hop:
            raise ValueError(f"flow vocoder config: squeeze 'mdct' needs n_group = hop ({self.hop}), got {self.n_group}")
        if not (isinstance(self.mean_bound, (int, float)) and not isinstance(self.mean_bound, bool)
                and 0.0 < self.mean_bound <= 6.0):
            raise ValueError(f"flow vocoder config: mean_bound must be a number in (0, 6], got {self.mean_bound!r}")
        for k, v in asdict(self).items():
            if k in ("squeeze", "mean_bound"):
                continue
            least = 0 if k in ("source_n_fft", "mel_n_fft") else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                what = ("a positive integer" if least else "a whole number >= 0 (0: no source)" if k == "source_n_fft"
                        else "a whole number >= 0 (0: none)")
                raise ValueError(f"flow vocoder config: {k} must be {what}, got {v!r}")
        if self.mel_n_fft and (self.squeeze != "mdct" or not self.source_n_fft):
            raise ValueError("flow vocoder config: mel_n_fft (the Gaussian's level from the mel) needs squeeze 'mdct' "
                             "and a source")
        if self.n_group % 2 or self.hop % self.n_group:
            raise ValueError(f"flow vocoder config: n_group ({self.n_group}) must be even and divide hop ({self.hop})")
        if self.source_n_fft:
            check_window(self.source_n_fft, self.hop, "flow vocoder config: source_n_fft")
        remaining = self.n_group - self.n_early_size * ((self.n_flows - 1) // self.n_early_every)
        if remaining < 2 or remaining % 2:
            raise ValueError(f"flow vocoder config: {remaining} channels would be left after the early outputs; "
                             "need an even number >= 2")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FlowConfig:
        known = {k: d[k] for k in asdict(cls()) if k in d}
        if known.get("mel_n_fft") and "mean_bound" not in known:
            known["mean_bound"] = 3.0          # NB: the bound flows trained before it was a field had
        return cls(**known).check()


class Invertible1x1(nn.Module):
    """``W x`` over the channels, W initialised as a random rotation (det +1)."""

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        if torch.det(w) < 0:
            w[:, 0] = -w[:, 0]
        self.weight = nn.Parameter(w)
        self._inv, self._inv_key = None, None      # inverse_weight's, and the weight it was of

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.shape[2] * torch.linalg.slogdet(self.weight)[1]
        return torch.matmul(self.weight, x), logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.inverse_weight(), z)

    def inverse_weight(self) -> torch.Tensor:
        """``W^-1``: where gradients flow to ``W``, computed afresh; otherwise kept until ``W``
        changes (its version, storage, device or dtype), for a stream inverts every frame: on
        this CPU the six inverses of the MDCT flow (256 x 256 and down) were most of a frame's
        cost, 60 to 70 % of real time streamed (benchmarks/RESULTS.md)."""
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return torch.linalg.inv(w)
        key = (w._version, w.data_ptr(), w.device, w.dtype)
        if self._inv_key != key:
            with torch.inference_mode(False), torch.no_grad():     # a plain tensor, usable in any mode
                self._inv = torch.linalg.inv(w.detach())
            self._inv_key = key
        return self._inv


class WaveNet(nn.Module):
    """Causal gated WaveNet: ``[batch, n_in, groups]`` and conditioning -> (log s, t)."""

    def __init__(self, n_in: int, n_cond: int, layers: int, channels: int, kernel: int, bound: float = 0.0):
        super().__init__()
        self.bound = bound       # > 0: log s = bound tanh(raw / bound); 0: unbounded (WaveGlow's, the Numba kernel's)
        self.start = CausalConv1d(n_in, channels, 1)
        self.dilated = nn.ModuleList(CausalConv1d(channels, 2 * channels, kernel, dilation=2 ** i)
                                     for i in range(layers))
        self.cond = CausalConv1d(n_cond, 2 * channels * layers, 1)
        self.res_skip = nn.ModuleList(CausalConv1d(channels, 2 * channels if i < layers - 1 else channels, 1)
                                      for i in range(layers))
        self.end = CausalConv1d(channels, 2 * n_in, 1)
        nn.init.zeros_(self.end.weight)          # starts as the identity flow (WaveGlow's trick)
        nn.init.zeros_(self.end.bias)
        self.channels = channels

    def run(self, a: torch.Tensor, cond: torch.Tensor, stream: bool) -> tuple[torch.Tensor, torch.Tensor]:
        go = (lambda m, v: m.step(v)) if stream else (lambda m, v: m(v))
        h = go(self.start, a)
        c_all = go(self.cond, cond)
        skip = 0.0
        c2 = 2 * self.channels
        for i, (dil, rs) in enumerate(zip(self.dilated, self.res_skip, strict=True)):
            z = go(dil, h) + c_all[:, i * c2:(i + 1) * c2]
            g = torch.tanh(z[:, :self.channels]) * torch.sigmoid(z[:, self.channels:])
            out = go(rs, g)
            if i < len(self.dilated) - 1:
                h = h + out[:, :self.channels]
                skip = skip + out[:, self.channels:]
            else:
                skip = skip + out
        st = go(self.end, skip)
        n = st.shape[1] // 2
        log_s = st[:, :n]
        if self.bound:
            log_s = self.bound * torch.tanh(log_s / self.bound)
        return log_s, st[:, n:]


class GaussianPrior(nn.Module):
    """Squeeze "mdct": the flow's first step, a conditional affine layer (a Gaussian given the
    mel and the source): each frame's coefficients ``c`` become ``(c - mu) / s``, with ``mu = e *
    g * exp(a)`` (``e`` the excitation's own coefficients, whitened: 0 without a source) and ``log
    s = b``, ``a`` and ``b`` from a causal network over the conditioning and the excitation's level
    in each of ``n_mels`` bands of the coefficients. Its log-determinant is ``-sum b``. It starts
    at ``a = 0``, ``s = exp(-4)``.

    ``g``, the level the whitened excitation is given back: with ``envelope`` (``mdct_envelope``:
    ``mel_n_fft`` set), the mel's own, each coefficient's smooth RMS as the mel frame holds it,
    and ``a`` a bounded correction (``mean_bound``: the mean within ``exp(+-mean_bound)`` of
    that); without, 1 and ``a`` free. Why: a flow whose
    gain was the network's alone learnt it on FluidR3's notes (held out, the mean within 21 % of
    the coefficients) but gave steady tones 1/40 of theirs and a standard deviation over their
    level, so what its couplings made of a steady mel, the same every frame, sounded on the
    frame rate's grid (models/README.md). With the envelope, too, the log s of a frame whose
    excitation is silent (no source, or a crop the trainer's ``source_dropout`` silenced) comes
    from a head of its own (``alone``): from one head, a run gave a low tone of few partials,
    whose excitation is silent in most bands, the wide deviation the mel alone needs. The bound
    is 0.5 (``MEAN_BOUND``), as the data asks: the least-squares gain of the coefficients on the
    whitened source at the mel's level, per band of the training crops, is 0.89 to 1.26 in frames
    with a source above 2 kHz, and 0.82 to 1.12 under 1.4 kHz in frames whose source is silent
    above 2 kHz (0.58 to 1.13 with a quarter of the crops low-passed); with a bound of 3, a run
    gave those frames a gain of 0.065 to 0.11 under 1.4 kHz, on its training crops as on held
    tones of few partials, and a deviation near their level, so its couplings made those
    tones, on the frame rate's grid (models/README.md)."""

    def __init__(self, n_cond: int, n_coef: int, bands: torch.Tensor, channels: int,
                 envelope: torch.Tensor | None = None, log10: bool = False, mean_bound: float = MEAN_BOUND):
        super().__init__()
        self.mean_bound = float(mean_bound)
        self.register_buffer("bands", bands, persistent=False)        # [n_bands, n_coef], rows sum to 1
        self.register_buffer("envelope", envelope, persistent=False)  # [n_coef, n_mels] or None
        self.log10 = bool(log10)
        self.start = CausalConv1d(n_cond + bands.shape[0], channels, 1)
        self.convs = nn.ModuleList(CausalConv1d(channels, channels, 3, dilation=2 ** i) for i in range(PRIOR_LAYERS))
        self.end = CausalConv1d(channels, 2 * n_coef, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)
        self.alone = None          # with the mel's envelope: log s of frames whose excitation is silent, apart
        if envelope is not None:
            self.alone = CausalConv1d(channels, n_coef, 1)
            nn.init.zeros_(self.alone.weight)
            nn.init.zeros_(self.alone.bias)
        self.n_coef = n_coef

    def level(self, mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, T]`` log-mel frames -> ``[B, n_coef, T]``: each coefficient's smooth RMS
        as the mel holds it (``mdct_envelope``), over the ``2 WHITEN_HALF_WIDTH + 1`` coefficients
        ``whiten_frames`` divides by."""
        mag = torch.pow(10.0, mel) if self.log10 else torch.exp(mel)
        power = torch.matmul(as_dtype(self.envelope, mel.dtype), mag * mag)      # [B, n_coef, T]
        b, k, t = power.shape
        w = WHITEN_HALF_WIDTH
        smooth = F.avg_pool1d(power.transpose(1, 2).reshape(b * t, 1, k), 2 * w + 1, 1, w, count_include_pad=False)
        return smooth.reshape(b, t, k).transpose(1, 2).sqrt()

    def run(self, cond: torch.Tensor, e: torch.Tensor | None, stream: bool,
            mel: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mu, log s), each ``[B, n_coef, T]``; ``mel`` (the frames of ``cond``) where there
        is an ``envelope``."""
        go = (lambda m, v: m.step(v)) if stream else (lambda m, v: m(v))
        level = e if e is not None else cond.new_zeros(cond.shape[0], self.n_coef, cond.shape[2])
        bands = torch.log(torch.matmul(as_dtype(self.bands, cond.dtype), level * level) + 1e-6)
        h = go(self.start, torch.cat((cond, bands), dim=1))
        for conv in self.convs:
            h = h + F.gelu(go(conv, h))
        ab = go(self.end, h)
        a, b = ab[:, :self.n_coef], ab[:, self.n_coef:]
        if self.envelope is None:
            mu = level * torch.exp(a.clamp(-12.0, 6.0))
        else:
            mu = level * self.level(mel) * torch.exp(self.mean_bound * torch.tanh(a / self.mean_bound))
            b_alone = go(self.alone, h)       # (streamed in step with the rest, used or not)
            b = torch.where(level.abs().amax(dim=1, keepdim=True) > 0, b, b_alone)
        return mu, (b - 4.0).clamp(LOG_S_FLOOR, LOG_S_CEIL)


def mdct_envelope(config: FlowConfig) -> torch.Tensor:
    """``[hop, n_mels]``: from the mel's magnitudes squared to each MDCT coefficient's expected
    power (``GaussianPrior.level``, before its smoothing). A mel band holds ``sum_j F[m, j] |X_j|``
    (``mel_analysis``: the magnitudes of a Hann FFT of ``mel_n_fft`` points ``N``), so its mean
    magnitude per FFT bin is that over ``sum_j F[m, j]``; for Gaussian noise of variance ``v``
    ``E|X| = sqrt(pi / 4 * v * 3 N / 8)`` and the orthogonal MDCT's ``E c^2 = v``, so a
    coefficient's power is ``32 / (3 pi N)`` times the band's mean magnitude squared (a tone's
    comes out otherwise; the correction ``a`` learns it). Coefficient ``k`` (at ``(k + 1/2) rate /
    (2 hop)`` Hz) takes the bands whose triangles cover it, weighted by their heights there."""
    from .mel_analysis import hz_to_mel, mel_filterbank, mel_to_hz
    n, sr, hop, n_mels = config.mel_n_fft, config.sample_rate, config.hop, config.n_mels
    fb = mel_filterbank(sr, n, n_mels).astype(np.float64)
    per_bin = 1.0 / fb.sum(axis=1).clip(1e-12)                              # band sum -> mean magnitude per bin
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    f = (np.arange(hop) + 0.5) * sr / (2.0 * hop)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    height = np.maximum(0.0, np.minimum((f[None] - lo) / (mid - lo), (hi - f[None]) / (hi - mid)))   # [n_mels, hop]
    weight = height / height.sum(axis=0, keepdims=True).clip(1e-12)
    w = weight.T * (per_bin ** 2)[None] * (32.0 / (3.0 * math.pi * n))
    return torch.tensor(w, dtype=torch.float32)


def mdct_bands(config: FlowConfig) -> torch.Tensor:
    """``[n_mels, hop]``: the mel triangles over the MDCT's ``hop`` bins (bin ``k`` at ``(k + 1/2)
    rate / (2 hop)`` Hz), each row summing to 1 (a band's mean power)."""
    from .mel_analysis import mel_filterbank
    fb = torch.tensor(mel_filterbank(config.sample_rate, 2 * config.hop, config.n_mels, 0.0, None),
                      dtype=torch.float32)[:, :config.hop]
    return fb / fb.sum(1, keepdim=True).clamp_min(1e-9)


class FlowVocoder(nn.Module):
    def __init__(self, config: FlowConfig | None = None):
        super().__init__()
        self.config = cfg = (config or FlowConfig()).check()
        self.per_frame = cfg.hop // cfg.n_group          # groups per mel frame
        self.cond = CausalConv1d(cfg.n_mels, cfg.n_mels, 3)
        n_cond = cfg.n_mels
        self.excitation = None
        if cfg.source_n_fft:        # (the MDCT's flattens the source in its own frames: _condition)
            self.excitation = (SourceSignal if cfg.squeeze == "mdct" else Excitation)(cfg.source_n_fft, cfg.hop)
            self.source_in = CausalConv1d(cfg.n_group, cfg.source_channels, 3)
            n_cond += cfg.source_channels
        self.mdct = self.e_mdct = self.prior = None
        if cfg.squeeze == "mdct":
            from .mdct import MDCT
            self.mdct = MDCT(cfg.hop)                    # the audio's (and the synthesis stream's)
            self.e_mdct = MDCT(cfg.hop)                  # the excitation's analysis stream
            self.prior = GaussianPrior(n_cond, cfg.hop, mdct_bands(cfg), cfg.prior_channels,
                                       mdct_envelope(cfg) if cfg.mel_n_fft else None, mean_bound=cfg.mean_bound)
        self.convs = nn.ModuleList()
        self.couplings = nn.ModuleList()
        self.sizes = []                                  # channels in play at each flow step
        ch = cfg.n_group
        for k in range(cfg.n_flows):
            if k % cfg.n_early_every == 0 and k > 0:
                ch -= cfg.n_early_size
            self.sizes.append(ch)
            self.convs.append(Invertible1x1(ch))
            self.couplings.append(WaveNet(ch // 2, n_cond, cfg.wn_layers, cfg.wn_channels, cfg.wn_kernel,
                                          COUPLING_BOUND if cfg.squeeze == "mdct" else 0.0))

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def takes_source(self) -> bool:
        return self.excitation is not None

    @property
    def output_delay(self) -> int:
        """Samples the output lags the audio its mel (and source) came from (trained so): the
        excitation's delay, and with the MDCT one hop more (a frame's inverse is final one hop
        behind its end)."""
        return (self.excitation.delay if self.excitation is not None else 0) + self.audio_lead

    @property
    def audio_lead(self) -> int:
        """Samples before a crop's frames that ``forward`` takes with its audio: one hop with the
        MDCT (frame 0's window begins there), else none."""
        return self.config.hop if self.mdct is not None else 0

    def _condition(self, mel: torch.Tensor, stream: bool,
                   source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (the couplings' conditioning, and with the MDCT squeeze and a source the excitation's
        whitened frames for its Gaussian, else None)."""
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"flow vocoder: mel must be [batch, {self.config.n_mels} bands, frames]; got "
                             f"{tuple(mel.shape)}")
        held = torch.repeat_interleave(mel, self.per_frame, dim=2)     # each frame held for its groups
        c = self.cond.step(held) if stream else self.cond(held)
        if self.excitation is None:
            if source is not None:
                raise ValueError("flow vocoder: this model takes no source (source_n_fft 0)")
            return c, None
        b, frames = mel.shape[0], mel.shape[2]
        if source is None:                      # the mel alone: a silent excitation
            source = torch.zeros(b, self.config.source_n_fft // 2 + 1, frames, dtype=torch.complex64,
                                 device=mel.device)
        if source.shape[0] != b or source.shape[2] != frames:
            raise ValueError(f"flow vocoder: source spectra {tuple(source.shape)} for mel {tuple(mel.shape)}")
        e = self.excitation.step(source) if stream else self.excitation(source)
        e = as_dtype(e, c.dtype)
        if self.mdct is not None:              # the source's frames on the audio's frame grid, whitened
            e = self.e_mdct.analyse_step(e) if stream else self.e_mdct.analyse(F.pad(e, (self.config.hop, 0)))
            e = whiten_frames(e)
        else:
            e = e.reshape(b, -1, self.config.n_group).transpose(1, 2)
        s = self.source_in.step(e) if stream else self.source_in(e)
        return torch.cat((c, s), dim=1), (e if self.mdct is not None else None)

    # -- training: audio -> z ----------------------------------------------------------------
    def forward(self, audio: torch.Tensor, mel: torch.Tensor,
                source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (z ``[batch, n_group, groups]`` in the order ``infer`` reads it, log-determinant
        ``[batch]`` of the whole flow). ``audio`` is what the model plays for these frames: for a
        model with a source, ``output_delay`` samples behind the audio the mel came from."""
        cfg = self.config
        b = audio.shape[0]
        early, logdet = [], audio.new_zeros(b)
        if self.mdct is not None:           # audio_lead samples first: [b, (frames + 1) hop]
            x = self.mdct.analyse(audio)                                # [b, hop, frames]
        else:
            x = audio.reshape(b, -1, cfg.n_group).transpose(1, 2)          # [b, n_group, groups]
        cond, e = self._condition(mel, False, source)
        cond = cond[:, :, :x.shape[2]]
        if self.prior is not None:
            mu, log_s = self.prior.run(cond, e, False, mel[:, :, :x.shape[2]])
            x = (x - mu) * torch.exp(-log_s)
            logdet = logdet - log_s.sum(dim=(1, 2))
        for k, (conv, wn) in enumerate(zip(self.convs, self.couplings, strict=True)):
            if k % cfg.n_early_every == 0 and k > 0:
                early.append(x[:, :cfg.n_early_size])
                x = x[:, cfg.n_early_size:]
            x, ld = conv(x)
            logdet = logdet + ld
            half = x.shape[1] // 2
            log_s, t = wn.run(x[:, :half], cond, False)
            x = torch.cat((x[:, :half], x[:, half:] * torch.exp(log_s) + t), dim=1)
            logdet = logdet + log_s.sum(dim=(1, 2))
        return torch.cat(early + [x], dim=1), logdet

    def negative_log_likelihood(self, audio: torch.Tensor, mel: torch.Tensor, sigma: float = 1.0,
                                source: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(audio | mel[, source]) in nats per sample, under z ~ N(0, sigma^2) (the training loss)."""
        z, logdet = self(audio, mel, source)
        n = z[0].numel()
        gauss = 0.5 * (z ** 2).sum(dim=(1, 2)) / sigma ** 2 + n * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
        return ((gauss - logdet) / n).mean()

    def prior_negative_log_likelihood(self, audio: torch.Tensor, mel: torch.Tensor,
                                      source: torch.Tensor | None = None) -> torch.Tensor:
        """Squeeze "mdct": -log p(audio | mel, source) in nats per sample under the Gaussian
        alone (``GaussianPrior``, no couplings after it), the trainer's ``prior_weight`` term.
        Scored on its own as a density, the Gaussian must put the coefficients' mean where they
        are; scored only through the whole flow, a run left the mean of steady tones near 0
        and their standard deviation over their level, the couplings explaining each frame from
        its own coefficients instead, which at sampling time repeats the same frame every hop."""
        if self.prior is None:
            raise ValueError("flow vocoder: only a flow whose squeeze is the MDCT has a Gaussian first step")
        c = self.mdct.analyse(audio)
        cond, e = self._condition(mel, False, source)
        mu, log_s = self.prior.run(cond[:, :, :c.shape[2]], e, False, mel[:, :, :c.shape[2]])
        nll = 0.5 * ((c - mu) * torch.exp(-log_s)) ** 2 + log_s + 0.5 * math.log(2 * math.pi)
        return nll.mean()

    # -- sampling: z -> audio ---------------------------------------------------------------------
    def run_inverse(self, z: torch.Tensor, mel: torch.Tensor, stream: bool,
                    source: torch.Tensor | None = None) -> torch.Tensor:
        """z -> audio."""
        cfg = self.config
        cond, e = self._condition(mel, stream, source)
        cond = cond[:, :, :z.shape[2]]
        n_final = self.sizes[-1]
        x = z[:, cfg.n_group - n_final:]
        early_at = cfg.n_group - n_final
        for k in range(cfg.n_flows - 1, -1, -1):
            half = x.shape[1] // 2
            log_s, t = self.couplings[k].run(x[:, :half], cond, stream)
            x = torch.cat((x[:, :half], (x[:, half:] - t) * torch.exp(-log_s)), dim=1)
            x = self.convs[k].inverse(x)
            if k % cfg.n_early_every == 0 and k > 0:
                early_at -= cfg.n_early_size
                x = torch.cat((z[:, early_at:early_at + cfg.n_early_size], x), dim=1)
        if self.mdct is not None:
            mu, log_s = self.prior.run(cond, e, stream, mel[:, :, :z.shape[2]])
            x = x * torch.exp(log_s) + mu
            return self.mdct.synthesise_step(x) if stream else self.mdct.synthesise(x)[:, :-cfg.hop]
        return x.transpose(1, 2).reshape(z.shape[0], -1)

    def noise_shape(self, mel: torch.Tensor) -> tuple[int, int, int]:
        """The shape of ``z`` for ``mel``: ``[batch, n_group, frames * hop / n_group]``."""
        return mel.shape[0], self.config.n_group, mel.shape[2] * self.per_frame

    def noise(self, mel: torch.Tensor, sigma: float = SIGMA, generator: torch.Generator | None = None) -> torch.Tensor:
        return sigma * torch.randn(*self.noise_shape(mel), generator=generator, device=mel.device, dtype=mel.dtype)

    def infer(self, mel: torch.Tensor, sigma: float = SIGMA, z: torch.Tensor | None = None,
              source: torch.Tensor | None = None) -> torch.Tensor:
        """Offline: mel ``[batch, n_mels, frames]`` -> audio ``[batch, frames * hop]``."""
        return self.run_inverse(self.noise(mel, sigma) if z is None else z, mel, False, source)

    def step(self, mel: torch.Tensor, z: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """The next frames of a stream, with their noise ``z`` (``[batch, n_group, frames * hop
        / n_group]``, e.g. ``noise(mel, sigma)``) and, for a model with a source, their source
        spectra."""
        return self.run_inverse(z, mel, True, source)

    def reset(self) -> None:
        reset_stream(self)
        if self.excitation is not None:
            self.excitation.reset()
        if self.mdct is not None:
            self.mdct.reset()
            self.e_mdct.reset()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def with_source(base: FlowVocoder, source_n_fft: int, source_channels: int = 32) -> FlowVocoder:
    """``base`` (a flow trained on the mel alone) converted to take a source: the same weights,
    and the couplings' conditioning widened by the excitation's channels with zero weights, so it
    renders exactly as ``base`` whatever the source until training teaches it to listen."""
    from dataclasses import replace
    if base.config.source_n_fft:
        raise ValueError("this flow takes a source already")
    if base.config.squeeze == "mdct":
        raise ValueError("a flow whose squeeze is the MDCT is trained with its source from the start (its Gaussian's "
                         "network hears the excitation's levels beside the mel)")
    model = FlowVocoder(replace(base.config, source_n_fft=source_n_fft, source_channels=source_channels))
    state = model.state_dict()
    for k, v in base.state_dict().items():
        if state[k].shape != v.shape:             # a coupling's conditioning: [out, n_mels + source, 1]
            w = torch.zeros_like(state[k])
            w[:, :v.shape[1]] = v
            v = w
        state[k] = v
    model.load_state_dict(state)
    return model
