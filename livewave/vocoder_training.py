"""Training a vocoder: ``livewave train melgan|hifigan|istft|flow --data DIR --out models/NAME.safetensors``.

Data: every audio file under ``DIR`` (a ``livewave data`` dataset, or a folder of your own
recordings), mixed to mono and resampled to the model's rate. The log-mel frames are computed
once by the same Numba analysis the live engine runs (``mel_analysis.analyse``: causal frames,
frame t ending at sample (t+1) * hop), so what the model learns from is exactly what it will be
fed. Each step takes random crops ``[batch, frames]`` of (mel, audio); mel frame t conditions the
audio samples t * hop .. (t+1) * hop.

Loss, MelGAN: the multi-resolution STFT distance (``spectral_loss``) from the first step, so a
short run already sounds right; from ``gan_start`` on, a least-squares GAN with MelGAN's
multi-scale discriminator (``--discriminators msd``) or that plus HiFi-GAN's multi-period one
(``msd+mpd``), with feature matching (weight 10 as in MelGAN, halved per discriminator set).
Loss, hifigan (the reference V1/V2/V3 generator, not causal: the engine streams it with its
lookahead): as MelGAN's, on livewave's causal frames (config ``"frames": "causal"``).
Loss, istft: as MelGAN's, the output compared one hop behind the audio (``output_delay``).
``istft_phase``: "absolute" (the default), "integrated" or "source" (``istft_vocoder``); fine-tuning an
absolute model as integrated converts it first (``istft_vocoder.integrated_from_absolute``); an
absolute model and a source-phase one have the same weights. "source" trains teacher-forced: each
frame takes the phases of the crop's own audio (``source_phase.source_spectrum``, the causal
window ending where the frame's mel ends; the crop is read ``n_fft - hop`` samples early for it),
so the network learns the magnitudes that go with a source's phases.
``advance_weight`` (integrated only) adds the error of the phase advances between frames against
the audio's own (``ISTFTVocoder.advance_error``): the spectral losses alone hardly teach them
(a fine-tune of 3000 steps with them left held notes hundreds of cents off), since a
magnitude loss says little about where a partial should move.
``betas`` (Adam's, for G) and ``decay_steps`` (a cosine decay of the learning rate to a tenth,
then level; not tied to ``steps``, so a longer rerun resumes exactly) where the family's
defaults do not suit. ``ema`` exports an exponential moving average of the generator's weights (updated after every
step, kept in the training state) instead of the last step's.
``mel_weight`` adds the log-mel L1 (HiFi-GAN's reconstruction loss, the evaluation's measure).
``init`` fine-tunes: the run starts from a trained livewave vocoder's weights (``--init``; the
architecture, rate, bands and analysis come from that checkpoint, ``fine_tune_config``), with
fresh optimisers and its own step count. A trained vocoder starts from sound, where a fresh one
starts from noise: the shipped iSTFT vocoder took 16000 steps to train.
Loss, flow: the exact negative log-likelihood in nats per sample (``FlowVocoder``), z ~ N(0, 1).
``sample_weight`` (flow only) adds the multi-resolution STFT distance of a sample drawn at the
temperature the flow is played at (``flow_vocoder.SIGMA``) against the crop's audio, and
``mel_weight`` that sample's log-mel L1 (and ``low_weight`` its fine low band,
``spectral_loss.low_band_distance``: the mel term alone taught a frame-rate line, 86 Hz at
-16 dB under a 110 Hz tone): the likelihood alone teaches a flow slowly (a small one,
500 steps on the CPU, gave noise 40 dB off the mel's level), and its gradient says nothing of the
sample a performer hears. The sample is drawn through the inverse pass (``FlowVocoder.infer``),
the same affine couplings run backwards, so both terms train the same weights. The flow stays a
density (its likelihood is still trained and measured); the auxiliary term pulls the samples at
the playing temperature toward the data's magnitudes.
``flow_source_n_fft`` (flow only) drives the flow by its source's excitation (``source_excitation``),
teacher-forced like the istft's source phase: the crop is read ``n_fft - hop`` samples early, its
own spectra make the excitation, and the flow is scored on the audio it plays, that much behind
the crop (``teacher_forced``). With ``init`` a flow trained on the mel alone is converted first
(``flow_vocoder.with_source``: it renders as before until training teaches it to listen).

- Deterministic with a seed: weights from ``seed``; each step's crops from a generator seeded
  by (seed, step), so a resumed run continues exactly as an uninterrupted one would.
- Every ``checkpoint_every`` steps the training state (both networks, both optimisers, step)
  goes to ``OUT.train.pt`` (tensors only; read back with ``weights_only=True``) and a playable
  checkpoint to ``OUT``, both written atomically; the same command again resumes.
- ``max_minutes`` stops a run after that much training time (the state and a playable
  checkpoint written there); the same command again goes on, so a fixed time budget (a GPU lent
  for minutes) can be spent exactly.
- CPU or CUDA (``device='auto'`` takes CUDA when present); ``torchrun`` runs it data-parallel
  (``distributed``: each rank its own crops, seeded by (seed, step, rank); gradients averaged
  after every backward; rank 0 writes).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write, save_checkpoint

STATE_VERSION = 1
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


@dataclass(frozen=True)
class VocoderTrainConfig:
    family: str = "melgan"
    steps: int = 20000
    batch: int = 16
    crop_frames: int = 32
    learning_rate: float = 2e-4
    seed: int = 0
    checkpoint_every: int = 500
    gan_start: int = 2000
    discriminators: str = "msd"
    device: str = "auto"
    sample_rate: int = 22050
    n_mels: int = 80
    ngf: int = 32
    ratios: tuple[int, ...] = (8, 8, 2, 2)
    n_residual_layers: int = 3
    n_fft: int = 1024
    # the flow family (ratios unused: its hop is flow_hop)
    flow_hop: int = 256
    n_group: int = 8
    n_flows: int = 12
    wn_layers: int = 8
    wn_channels: int = 64
    n_early_size: int = 2        # channels that leave every 4 flows (WaveGlow: 2 of 8)
    sample_weight: float = 0.0   # flow: weight of a sample's STFT distance (module docstring); 0: likelihood only
    flow_source_n_fft: int = 0   # flow: > 0 drives it by its source's excitation (``source_excitation``)
    flow_squeeze: str = "groups"  # flow: or "mdct" (``flow_vocoder``: frames of flow_hop coefficients; n_group = flow_hop)
    # the istft family (ratios unused: its hop is istft_hop; synthesis window istft_n_fft)
    istft_hop: int = 256
    istft_n_fft: int = 512
    istft_channels: int = 256
    istft_blocks: int = 6
    istft_phase: str = "absolute"     # or "integrated", "source" (istft_vocoder's docstring)
    hifigan_version: str = "v3"  # the hifigan family: the reference V1, V2 or V3 generator
    hifigan_channels: int = 0    # its upsample_initial_channel; 0 = the version's
    betas: tuple[float, float] = (0.0, 0.0)   # Adam's for G; (0, 0): the family's (MelGAN's 0.5, 0.9; flow 0.9, 0.999)
    decay_steps: int = 0         # cosine decay of the learning rate to a tenth over this many steps (0: constant)
    ema: float = 0.0             # decay of an exponential moving average of G's weights, exported instead
                                 # of the raw weights (0: off); not part of the run's identity
    mel_weight: float = 0.0      # weight of the log-mel L1 (``spectral_loss.log_mel_distance``) in G's loss
    low_weight: float = 0.0      # flow: weight of its sample's fine low band (``spectral_loss.low_band_distance``)
    advance_weight: float = 0.0  # istft, integrated phase: weight of the phase-advance error (``advance_error``)
    init: str = ""               # a trained checkpoint of this family to start from (fine-tuning); "" = scratch
    max_minutes: float = 0.0     # stop (checkpoint written) after this much training time; a rerun goes on (0: none)
    onsets: float = 0.0          # share of crops made onsets after silence (``MelCrops.batch``); 0: none
    source_dropout: float = 0.0  # flow with a source: share of crops given a silent source, so it learns
                                 # to play from the mel alone too (``drop_sources``); 0: none
    prior_weight: float = 0.0    # flow, squeeze "mdct": weight of its Gaussian's own NLL beside the flow's
                                 # (``FlowVocoder.prior_negative_log_likelihood``); 0: none
    lowpass: float = 0.0         # share of crops low-passed at a random cutoff (``MelCrops.batch``); 0: none

    @property
    def hop(self) -> int:
        if self.family == "istft":
            return self.istft_hop
        if self.family == "hifigan":
            from .reference_vocoders import HIFIGAN_VERSIONS
            return math.prod(HIFIGAN_VERSIONS.get(self.hifigan_version, {}).get("upsample_rates", (8, 8, 2, 2)))
        return self.flow_hop if self.family == "flow" else math.prod(self.ratios)

    def validate(self) -> VocoderTrainConfig:
        if self.family not in ("melgan", "flow", "istft", "hifigan"):
            raise ValueError(f"family={self.family!r}: melgan, istft, hifigan or flow")
        if self.family == "hifigan" and self.hifigan_version not in ("v1", "v2", "v3"):
            raise ValueError(f"hifigan_version={self.hifigan_version!r}: v1, v2 or v3")
        if not (1 <= self.steps <= 10_000_000):
            raise ValueError(f"steps={self.steps}: need 1..10000000")
        if not (1 <= self.batch <= 4096):
            raise ValueError(f"batch={self.batch}: need 1..4096")
        if not (2 <= self.crop_frames <= 4096):
            raise ValueError(f"crop_frames={self.crop_frames}: need 2..4096")
        if not (0.0 < self.learning_rate < 1.0):
            raise ValueError(f"learning_rate={self.learning_rate}: need 0..1")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas={self.betas}: two numbers in 0..1")
        if not (0.0 <= self.onsets <= 1.0):
            raise ValueError(f"onsets={self.onsets}: a share of the crops, 0..1")
        if not (0.0 <= self.lowpass <= 1.0):
            raise ValueError(f"lowpass={self.lowpass}: a share of the crops, 0..1")
        if not (0.0 <= self.max_minutes <= 1e6):
            raise ValueError(f"max_minutes={self.max_minutes}: need 0 (no limit) or more")
        if self.advance_weight and (self.family, self.istft_phase) != ("istft", "integrated"):
            raise ValueError("advance_weight is for the istft family with an integrated phase")
        if self.sample_weight and self.family != "flow":
            raise ValueError("sample_weight is for the flow family")
        if self.flow_source_n_fft and self.family != "flow":
            raise ValueError("flow_source_n_fft is for the flow family")
        if not (0.0 <= self.source_dropout <= 1.0):
            raise ValueError(f"source_dropout={self.source_dropout}: a share of the crops, 0..1")
        if self.source_dropout and not (self.family == "flow" and self.flow_source_n_fft):
            raise ValueError("source_dropout is for a flow driven by a source (flow_source_n_fft)")
        if not (0.0 <= self.prior_weight < 1e3):
            raise ValueError(f"prior_weight={self.prior_weight}: need 0 <= weight < 1000")
        if self.prior_weight and not (self.family == "flow" and self.flow_squeeze == "mdct"):
            raise ValueError("prior_weight is for a flow whose squeeze is the MDCT (its Gaussian first step)")
        from .flow_vocoder import SQUEEZES
        if self.flow_squeeze not in SQUEEZES:
            raise ValueError(f"flow_squeeze={self.flow_squeeze!r}: one of {', '.join(SQUEEZES)}")
        if self.flow_squeeze == "mdct" and (self.family != "flow" or self.n_group != self.flow_hop):
            raise ValueError(f"flow_squeeze mdct is for the flow family with n_group = flow_hop ({self.flow_hop})")
        if self.family == "flow" and self.mel_weight and not self.sample_weight:
            raise ValueError("mel_weight for a flow weighs its sample's log-mel L1: set sample_weight too")
        if self.low_weight and not (self.family == "flow" and self.sample_weight):
            raise ValueError("low_weight weighs a flow's sample's low band: a flow, with sample_weight set")
        if not (0.0 <= self.low_weight <= 1e4):
            raise ValueError(f"low_weight={self.low_weight}: need 0..10000")
        if not (0.0 <= self.sample_weight <= 1e4):
            raise ValueError(f"sample_weight={self.sample_weight}: need 0..10000")
        if not (0.0 <= self.advance_weight <= 1e4):
            raise ValueError(f"advance_weight={self.advance_weight}: need 0..10000")
        if self.decay_steps < 0:
            raise ValueError(f"decay_steps={self.decay_steps}: need 0 or more")
        if self.istft_phase not in ("integrated", "absolute", "source"):
            raise ValueError(f"istft_phase={self.istft_phase!r}: absolute, integrated or source")
        if self.discriminators not in ("msd", "msd+mpd"):
            raise ValueError(f"discriminators={self.discriminators!r}: use msd or msd+mpd")
        if not (8000 <= self.sample_rate <= 96000):
            raise ValueError(f"sample_rate={self.sample_rate}: need 8000..96000")
        if self.hop > self.n_fft:
            raise ValueError(f"hop {self.hop} is larger than n_fft {self.n_fft}")
        return self


def load_audio_folder(folder, sample_rate: int) -> tuple[list[np.ndarray], list[str]]:
    """Every readable audio file under ``folder`` as mono float32 at ``sample_rate``; the second
    list names the files skipped and why (unreadable, empty, silent, non-finite)."""
    import soundfile as sf
    import soxr
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such data folder")
    clips, skipped = [], []
    for p in sorted(q for q in folder.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES):
        try:
            x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        except Exception as exc:
            skipped.append(f"{p.name}: unreadable ({exc})")
            continue
        x = x.mean(axis=1)
        if x.size == 0 or not np.isfinite(x).all():
            skipped.append(f"{p.name}: empty or not finite")
            continue
        if np.abs(x).max() < 1e-4:
            skipped.append(f"{p.name}: silent")
            continue
        if sr != sample_rate:
            x = soxr.resample(x, sr, sample_rate, quality="HQ").astype(np.float32)
        clips.append(np.clip(x, -1.0, 1.0))
    if not clips:
        why = "; ".join(skipped[:5]) or "no audio files"
        raise ValueError(f"{folder}: no usable audio ({why})")
    return clips, skipped


class MelCrops:
    """Clips with their mel frames; random aligned crops reproducible from (seed, step)."""

    def __init__(self, clips: list[np.ndarray], cfg: VocoderTrainConfig):
        from .mel_analysis import analyse
        self.hop = cfg.hop
        self.analysis = dict(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop=cfg.hop, n_mels=cfg.n_mels)
        self.frames = cfg.crop_frames
        self.items = []
        for x in clips:
            mel = analyse(x, cfg.sample_rate, n_fft=cfg.n_fft, hop=self.hop, n_mels=cfg.n_mels)
            if mel.shape[0] >= self.frames:
                self.items.append((mel, x))
        if not self.items:
            longest = max(c.shape[0] for c in clips)
            raise ValueError(f"no clip is as long as one crop ({self.frames * self.hop} samples; "
                             f"the longest has {longest})")
        lengths = np.array([m.shape[0] - self.frames + 1 for m, _ in self.items], np.float64)
        self.p = lengths / lengths.sum()
        self.seconds = sum(x.shape[0] for _, x in self.items) / cfg.sample_rate

    def batch(self, rng: np.random.Generator, n: int, lead: int = 0, onsets: float = 0.0,
              lowpass: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` crops: mel ``[n, n_mels, frames]`` and audio ``[n, lead + frames * hop]``, the
        audio starting ``lead`` samples before the crop's first hop (silence before a clip).
        ``onsets``: the share of crops made an onset after silence: digital silence up to a random
        frame (1 to ``frames - 8``), then the audio cut in at a random gain (-12 to +6 dB,
        clipped at full scale), its mel analysed again (exactly: silence before). Trained so, a
        vocoder meets the history a stream has after a long silence, which its data never has
        (FluidR3 phrases ring on between notes; the shipped model burst on such onsets).
        ``lowpass``: the share of crops low-passed (``low_passed``, before any onset) at a cutoff
        drawn log-uniformly in ``LOWPASS_HZ``, their mel analysed again over the clip's history
        before them. Why: notes of few partials, whose source is silent in most bands, are rare
        in FluidR3 and the synthetic sounds (3 % of the frames with a source have one silent
        above 2 kHz, 8 % with a quarter of the crops low-passed; measured on 128 crops), and a flow
        played held ones at 82 to 110 Hz on its frame rate's grid (models/README.md)."""
        f, h = self.frames, self.hop
        mels = np.zeros((n, self.items[0][0].shape[1], f), np.float32)
        audio = np.zeros((n, lead + f * h), np.float32)
        for b in range(n):
            mel, x = self.items[int(rng.choice(len(self.items), p=self.p))]
            t = int(rng.integers(0, mel.shape[0] - f + 1))
            mels[b] = mel[t:t + f].T
            a = t * h - lead
            audio[b, max(0, -a):] = x[max(0, a):(t + f) * h]
            if lowpass and rng.random() < lowpass:
                mels[b], audio[b] = self._low_passed(x, t, lead, rng)
            if onsets and rng.random() < onsets:
                from .mel_analysis import analyse
                cut = lead + int(rng.integers(1, max(2, f - 7))) * h
                audio[b, :cut] = 0.0
                audio[b] = np.clip(audio[b] * 10.0 ** (rng.uniform(-12.0, 6.0) / 20.0), -1.0, 1.0)
                mels[b] = analyse(audio[b, lead:], **self.analysis).T
        return mels, audio

    def _low_passed(self, x: np.ndarray, t: int, lead: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The crop at frame ``t`` of clip ``x``, low-passed with the ``n_fft`` samples before it
        its mel needs: (mel ``[n_mels, frames]``, audio ``[lead + frames * hop]``)."""
        from .mel_analysis import analyse
        f, h = self.frames, self.hop
        back = -(-(lead + self.analysis["n_fft"]) // h) * h       # whole hops, so the frames line up
        a = t * h - back
        seg = np.zeros(back + f * h, np.float32)
        seg[max(0, -a):] = x[max(0, a):(t + f) * h]
        lo, hi = LOWPASS_HZ
        seg = low_passed(seg, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), self.analysis["sample_rate"])
        mel = analyse(seg, **self.analysis)[back // h:back // h + f]
        return mel.T, seg[back - lead:]


LOWPASS_HZ = (150.0, 6000.0)     # ``MelCrops.batch``: the range of the low-pass cutoffs (log-uniform)
LOWPASS_ORDER = 8                # their Butterworth magnitude: 48 dB an octave


def low_passed(x: np.ndarray, cutoff: float, sample_rate: int, order: int = LOWPASS_ORDER) -> np.ndarray:
    """``x`` through a zero-phase low-pass, the magnitude of a Butterworth filter of ``order``
    (-3 dB at ``cutoff`` Hz, ``6 order`` dB an octave above), applied over the FFT of ``x`` padded
    to twice its length (no wrap-around of its tails onto ``x``)."""
    n = x.shape[-1]
    spec = np.fft.rfft(x, 2 * n)
    freq = np.fft.rfftfreq(2 * n, 1.0 / sample_rate)
    gain = 1.0 / np.sqrt(1.0 + (freq / cutoff) ** (2 * order))
    return np.fft.irfft(spec * gain, 2 * n)[..., :n].astype(x.dtype)


def _build(cfg: VocoderTrainConfig):
    """(model, its config, the generator class wrapping it for the engine)."""
    from .vocoder_instrument import FlowVocoderInstrument, HiFiGANVocoder, ISTFTVocoderInstrument, MelGANVocoder
    if cfg.family == "hifigan":
        from .reference_vocoders import HIFIGAN_VERSIONS, HiFiGANConfig, HiFiGANGenerator
        v = dict(HIFIGAN_VERSIONS[cfg.hifigan_version])
        if cfg.hifigan_channels:
            v["upsample_initial_channel"] = cfg.hifigan_channels
        hcfg = HiFiGANConfig(**v, num_mels=cfg.n_mels, sampling_rate=cfg.sample_rate, n_fft=cfg.n_fft,
                             win_size=cfg.n_fft, hop_size=cfg.hop, fmax=None).check()
        return HiFiGANGenerator(hcfg), hcfg, HiFiGANVocoder
    if cfg.family == "istft":
        from .istft_vocoder import ISTFTConfig, ISTFTVocoder
        icfg = ISTFTConfig(n_mels=cfg.n_mels, hop=cfg.istft_hop, n_fft=cfg.istft_n_fft, channels=cfg.istft_channels,
                           blocks=cfg.istft_blocks, sample_rate=cfg.sample_rate, phase=cfg.istft_phase)
        return ISTFTVocoder(icfg), icfg, ISTFTVocoderInstrument
    if cfg.family == "flow":
        from .flow_vocoder import FlowConfig, FlowVocoder
        fcfg = FlowConfig(n_mels=cfg.n_mels, hop=cfg.flow_hop, n_group=cfg.n_group, n_flows=cfg.n_flows,
                          wn_layers=cfg.wn_layers, wn_channels=cfg.wn_channels, n_early_size=cfg.n_early_size,
                          sample_rate=cfg.sample_rate, source_n_fft=cfg.flow_source_n_fft,
                          squeeze=cfg.flow_squeeze,   # the MDCT's Gaussian takes its level from the mel
                          mel_n_fft=cfg.n_fft if cfg.flow_squeeze == "mdct" and cfg.flow_source_n_fft else 0).check()
        return FlowVocoder(fcfg), fcfg, FlowVocoderInstrument
    from .melgan import MelGANConfig, MelGANGenerator
    mcfg = MelGANConfig(n_mels=cfg.n_mels, ngf=cfg.ngf, ratios=tuple(cfg.ratios),
                        n_residual_layers=cfg.n_residual_layers, sample_rate=cfg.sample_rate)
    return MelGANGenerator(mcfg), mcfg, MelGANVocoder


def train_vocoder(data, out, cfg: VocoderTrainConfig, name: str | None = None, progress: bool = True) -> dict:
    """Train (or resume) the vocoder ``cfg.family`` names and write ``out``; returns a summary."""
    import torch

    from .gan_discriminators import (
        MultiPeriodDiscriminator,
        MultiScaleDiscriminator,
    )
    from .spectral_loss import scaled_fft_sizes

    src = None
    if cfg.init:
        from .checkpoint import load_generator
        src = load_generator(cfg.init)
        cfg = fine_tune_config(cfg, cfg.init, src)
    else:
        cfg = cfg.validate()
    flow = cfg.family == "flow"
    out = Path(out)
    state_path = out.with_name(out.name + ".train.pt")
    from .distributed import average_gradients, finish, rank0_says, setup
    ranks = setup(cfg.device)
    dev = ranks.device
    clips, skipped = load_audio_folder(data, cfg.sample_rate)
    crops = MelCrops(clips, cfg)

    torch.manual_seed(cfg.seed)
    gen, mcfg, wrapper = _build(cfg)
    gen = gen.to(dev)
    discs = torch.nn.ModuleList([] if flow else [MultiScaleDiscriminator()])
    if cfg.discriminators == "msd+mpd" and not flow:
        discs.append(MultiPeriodDiscriminator())
    discs = discs.to(dev)
    betas = tuple(cfg.betas) if any(cfg.betas) else ((0.9, 0.999) if flow else (0.5, 0.9))
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.learning_rate, betas=betas)
    opt_d = torch.optim.Adam(discs.parameters(), lr=cfg.learning_rate, betas=(0.5, 0.9)) if not flow else None
    step, seconds, last_loss = 0, 0.0, float("nan")
    lineage = None
    if src is not None:
        src_card = src.info.card
        lineage = {"name": src.info.name, "steps": (src_card.get("training") or {}).get("steps"),
                   "data": (src_card.get("data") or {}).get("folder"),
                   "data_seconds": (src_card.get("data") or {}).get("seconds")}
        base = src.model
        if flow and cfg.flow_source_n_fft and not base.config.source_n_fft:
            from .flow_vocoder import with_source
            lineage["source"] = f"converted to take a source (source_n_fft {cfg.flow_source_n_fft})"
            base = with_source(base, cfg.flow_source_n_fft)   # renders the same; training learns to use it
        if cfg.family == "istft" and base.config.phase != cfg.istft_phase:
            lineage["phase"] = f"converted from {base.config.phase} to {cfg.istft_phase}"
            if cfg.istft_phase == "integrated":
                from .istft_vocoder import integrated_from_absolute
                base = integrated_from_absolute(base)    # renders the same; training learns the advances
        if not state_path.exists():
            gen.load_state_dict({k: v.to(dev) for k, v in base.state_dict().items()})
    if state_path.exists():
        st = torch.load(state_path, map_location=dev, weights_only=True)
        if int(st.get("version", -1)) != STATE_VERSION or st.get("config") != _config_key(cfg):
            raise ValueError(f"{state_path}: training state of another run or version; delete it to start over")
        gen.load_state_dict(st["generator"])
        discs.load_state_dict(st["discriminators"])
        opt_g.load_state_dict(st["opt_g"])
        if opt_d is not None:
            opt_d.load_state_dict(st["opt_d"])
        step, seconds = int(st["step"]), float(st["seconds"])
    # the weight average: resumed if the state has one, else started from the weights now
    ema = None
    if cfg.ema:
        saved = st.get("ema") if state_path.exists() else None
        ema = {k: (saved[k] if saved else v).detach().clone().float() for k, v in gen.state_dict().items()
               if v.dtype.is_floating_point}
    fft_sizes = scaled_fft_sizes(cfg.sample_rate)
    source_n_fft = cfg.istft_n_fft if (cfg.family, cfg.istft_phase) == ("istft", "source") else cfg.flow_source_n_fft
    lead = source_lead(source_n_fft, cfg.hop) + audio_lead(cfg)

    def save(step_now: int, loss: float) -> None:
        cpu_model, _, _ = _build(cfg)
        weights = {k: v.detach().cpu() for k, v in gen.state_dict().items()}
        if ema is not None:
            weights.update({k: v.detach().cpu() for k, v in ema.items()})
        cpu_model.load_state_dict(weights)
        kw = {"centred": False} if cfg.family == "hifigan" else {}      # trained on livewave's causal frames
        voc = wrapper(cpu_model, {"n_fft": cfg.n_fft, "hop": cfg.hop, "n_mels": cfg.n_mels}, name=name or out.stem,
                      **kw)
        config, tensors = voc.checkpoint_parts()
        card = {"instrument": name or out.stem, "family": cfg.family, "sample_rate": cfg.sample_rate,
                "parameters": cpu_model.parameter_count(),
                "data": {"folder": str(data), "files": len(clips), "skipped": skipped[:20],
                         "seconds": round(crops.seconds, 1)},
                "training": {**card_options(cfg),
                             "processes": ranks.world,
                             "steps": step_now, "target_steps": cfg.steps, "seconds": round(seconds, 3),
                             "device": str(dev), "final_loss": round(loss, 5) if math.isfinite(loss) else None}}
        if lineage:
            card["training"]["fine_tuned_from"] = lineage
        save_checkpoint(out, cfg.family, config, card, tensors)
        state = {"version": STATE_VERSION, "config": _config_key(cfg), "step": step_now, "seconds": seconds,
                 "generator": gen.state_dict(), "discriminators": discs.state_dict(), "ema": ema or {},
                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict() if opt_d is not None else {}}
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))

    gen.train()
    discs.train()
    t_run = time.perf_counter()
    start_step = step
    out_of_time = False
    while step < cfg.steps:
        if cfg.max_minutes and rank0_says(time.perf_counter() - t_run >= cfg.max_minutes * 60.0, ranks):
            out_of_time = True
            if ranks.main:
                save(step, last_loss)
            break
        t0 = time.perf_counter()
        if cfg.decay_steps:
            lr = cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / cfg.decay_steps))))
            for opt in (opt_g, opt_d):
                for g in (opt.param_groups if opt is not None else ()):
                    g["lr"] = lr
        rng = np.random.default_rng(ranks.seed(cfg.seed, step))
        mel_np, audio_np = crops.batch(rng, cfg.batch, lead, cfg.onsets, cfg.lowpass)
        mel = torch.from_numpy(mel_np).to(dev)
        real = torch.from_numpy(audio_np).to(dev)[:, None]
        real, source = teacher_forced(real, cfg, source_n_fft)
        if cfg.source_dropout:
            source = drop_sources(source, rng, cfg.source_dropout)
        if flow:
            opt_g.zero_grad(set_to_none=True)
            loss = gen.negative_log_likelihood(real[:, 0], mel, source=source)
            if cfg.prior_weight:
                loss = loss + cfg.prior_weight * gen.prior_negative_log_likelihood(real[:, 0], mel, source)
            if cfg.sample_weight:           # what the frames play (an MDCT flow's audio began a hop early)
                played = real[:, 0, :cfg.crop_frames * cfg.hop]
                loss = loss + _flow_sample_loss(gen, mel, played, cfg, fft_sizes, rng, source)
            adversarial = False
        else:
            loss = _gan_step(gen, discs, opt_d, opt_g, mel, real, step >= cfg.gan_start, fft_sizes,
                             (cfg.mel_weight, cfg.sample_rate, cfg.n_fft, cfg.n_mels), ranks, cfg.advance_weight,
                             source)
            adversarial = step >= cfg.gan_start
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at step {step}; the last checkpoint is kept")
        loss.backward()
        average_gradients(gen.parameters(), ranks)
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 10.0)
        opt_g.step()
        if ema is not None:
            with torch.no_grad():
                for k, v in gen.state_dict().items():
                    if k in ema:
                        ema[k].lerp_(v.float(), 1.0 - cfg.ema)
        step += 1
        seconds += time.perf_counter() - t0
        last_loss = float(loss.detach())
        if progress and ranks.main:
            done = step - start_step
            rate = done / max(1e-9, time.perf_counter() - t_run)
            eta = (cfg.steps - step) / max(rate, 1e-9)
            sys.stderr.write(f"\rtrain {cfg.family} step {step}/{cfg.steps} loss {last_loss:.4f} "
                             f"{'(GAN) ' if adversarial else ''}{rate:.2f} steps/s ETA {eta / 60:.1f} min ")
            sys.stderr.flush()
        if (step % cfg.checkpoint_every == 0 or step == cfg.steps) and ranks.main:
            save(step, last_loss)
    if progress and ranks.main:
        sys.stderr.write("\n")
    if not out.exists() and ranks.main:
        save(step, last_loss)
    finish(ranks)
    return {"out": str(out), "steps": step, "seconds": seconds, "device": str(dev), "loss": last_loss,
            "skipped": skipped, "out_of_time": out_of_time}


def source_lead(source_n_fft: int, hop: int) -> int:
    """How many samples before its crop a batch's audio is read for a model driven by a source
    of window ``source_n_fft`` (0 for none): the source spectrum of a crop's first frame ends
    where that frame ends (``source_phase.source_spectrum``)."""
    return source_n_fft - hop if source_n_fft else 0


def audio_lead(cfg: VocoderTrainConfig) -> int:
    """Samples more before the crop that a model's own audio starts: one hop for a flow whose
    squeeze is the MDCT (``FlowVocoder.audio_lead``: frame 0's window begins a hop early)."""
    return cfg.hop if (cfg.family, cfg.flow_squeeze) == ("flow", "mdct") else 0


def teacher_forced(real, cfg: VocoderTrainConfig, source_n_fft: int):
    """A batch's audio ``[B, 1, lead + frames * hop]`` (read ``lead = source_n_fft - hop`` samples
    early) -> (the audio the model is scored against ``[B, 1, frames * hop]``, the crops' own
    source spectra), or ``(real, None)`` for a model without a source. The istft compares its
    output one hop behind the crop (``_gan_step``), so it gets the crop itself; a flow is trained
    on the audio it plays, ``output_delay`` (= the lead) behind the crop's: the first ``frames *
    hop`` samples read."""
    more = audio_lead(cfg)          # an MDCT flow: the batch was read that much earlier still
    if not source_n_fft:
        return real, None
    from .source_phase import source_spectrum
    lead = source_lead(source_n_fft, cfg.hop)
    source = source_spectrum(real[:, 0, more:], source_n_fft, cfg.hop, lead)
    if cfg.family == "flow":
        return real[..., :more + cfg.crop_frames * cfg.hop], source
    return real[..., lead:], source


def drop_sources(source, rng: np.random.Generator, share: float):
    """The batch's source spectra with each crop's silenced at probability ``share`` (drawn from
    the step's ``rng``, so a resumed run draws the same): a flow driven by a source then also
    learns what to play from the mel alone (``FlowVocoder`` with no source), which otherwise it
    never meets in training."""
    import torch
    keep = torch.from_numpy(rng.random(source.shape[0]) >= share).to(source.device)
    return source * keep[:, None, None].to(source.real.dtype)


def _flow_sample_loss(gen, mel, real, cfg: VocoderTrainConfig, fft_sizes, rng: np.random.Generator, source=None):
    """The flow's auxiliary loss (module docstring): a sample at the playing temperature against
    the audio, its STFT distance times ``sample_weight`` plus its log-mel L1 times ``mel_weight``
    and its fine low band times ``low_weight``.
    Its noise comes from the step's ``rng`` (after the crops), so a resumed run draws what an
    uninterrupted one would."""
    import torch

    from .flow_vocoder import SIGMA
    from .spectral_loss import log_mel_distance, low_band_distance, multiscale_spectral_distance
    z = torch.from_numpy(rng.standard_normal(gen.noise_shape(mel), dtype=np.float32)).to(mel.device)
    fake = gen.infer(mel, z=SIGMA * z, source=source)
    loss = cfg.sample_weight * multiscale_spectral_distance(fake, real, fft_sizes=fft_sizes)
    if cfg.mel_weight:
        loss = loss + cfg.mel_weight * log_mel_distance(fake, real, cfg.sample_rate, cfg.n_fft, cfg.flow_hop,
                                                        cfg.n_mels)
    if cfg.low_weight:
        loss = loss + cfg.low_weight * low_band_distance(fake, real, cfg.sample_rate)
    return loss


def _gan_step(gen, discs, opt_d, opt_g, mel, real, adversarial: bool, fft_sizes, mel_loss=(0.0, 0, 0, 0),
              ranks=None, advance_weight: float = 0.0, source=None):
    """One MelGAN step up to the generator's loss (returned; the caller runs backward and steps):
    the discriminators' update first when ``adversarial``. ``source``: the crops' source spectra
    (an istft model with a source phase)."""
    from .gan_discriminators import discriminator_loss, feature_matching_loss, generator_adversarial_loss
    from .spectral_loss import multiscale_spectral_distance
    advance = None
    if advance_weight:
        mag, phase = gen.spectrum(mel)
        fake = gen.render_spectrum(mag, phase)
        advance = advance_weight * gen.advance_error(phase, real[:, 0])
    else:
        fake = gen(mel) if source is None else gen(mel, source=source)
    delay = int(getattr(gen, "output_delay", 0))     # a model trained to lag its input (istft)
    if delay:
        fake, real = fake[..., delay:], real[..., :-delay]
    if adversarial:
        opt_d.zero_grad(set_to_none=True)
        d_loss = sum(discriminator_loss(d(real)[0], d(fake.detach())[0]) for d in discs)
        d_loss.backward()
        if ranks is not None:
            from .distributed import average_gradients
            average_gradients(discs.parameters(), ranks)
        opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    loss = multiscale_spectral_distance(fake[:, 0], real[:, 0], fft_sizes=fft_sizes)
    weight, rate, n_fft, n_mels = mel_loss
    if weight:
        from .spectral_loss import log_mel_distance
        hop = getattr(gen, "hop", 256)
        loss = loss + weight * log_mel_distance(fake[:, 0], real[:, 0], rate, n_fft, hop, n_mels)
    if advance is not None:
        loss = loss + advance
    if adversarial:
        for d in discs:
            _, real_feats = d(real)
            fake_out, fake_feats = d(fake)
            loss = loss + generator_adversarial_loss(fake_out) \
                + 10.0 / len(discs) * feature_matching_loss([[f.detach() for f in r] for r in real_feats], fake_feats)
    return loss


def _architecture(family: str, m, init: str) -> dict:
    """The trainer's options that rebuild model config ``m`` of ``family``."""
    if family == "istft":       # the phase is the trainer's: an absolute model may be converted
        return dict(istft_hop=m.hop, istft_n_fft=m.n_fft, istft_channels=m.channels, istft_blocks=m.blocks)
    if family == "melgan":
        return dict(ngf=m.ngf, ratios=tuple(m.ratios), n_residual_layers=m.n_residual_layers)
    if family == "flow":
        return dict(flow_hop=m.hop, n_group=m.n_group, n_flows=m.n_flows, wn_layers=m.wn_layers,
                    wn_channels=m.wn_channels, n_early_size=m.n_early_size, flow_source_n_fft=m.source_n_fft,
                    flow_squeeze=m.squeeze)
    from .reference_vocoders import HIFIGAN_VERSIONS, HiFiGANConfig
    for version, v in HIFIGAN_VERSIONS.items():
        ref = HiFiGANConfig(**{**v, "upsample_initial_channel": m.upsample_initial_channel})
        if all(getattr(ref, k) == getattr(m, k) for k in ("resblock", "upsample_rates", "upsample_kernel_sizes",
                                                            "resblock_kernel_sizes", "resblock_dilation_sizes")):
            return dict(hifigan_version=version, hifigan_channels=m.upsample_initial_channel)
    raise ValueError(f"{init}: a HiFi-GAN generator that is none of the reference V1, V2 or V3 layouts")


def fine_tune_config(cfg: VocoderTrainConfig, init, base=None) -> VocoderTrainConfig:
    """``cfg`` made to fine-tune the trained checkpoint ``init``: its architecture, sample rate,
    mel bands and analysis replace ``cfg``'s (the loss, schedule and data options stay). Raises
    ValueError (``checkpoint.CheckpointError`` for an unreadable file) for a model of another
    family, an imported one (trained on centred mel frames, where livewave trains on its causal
    ones), or one whose options this trainer cannot rebuild. ``base``: the generator ``init``
    holds, where the caller has read it already."""
    from dataclasses import replace

    from .checkpoint import load_generator
    from .vocoder_instrument import check_mel_config
    voc = base if base is not None else load_generator(init)
    family = getattr(getattr(voc, "info", None), "family", "")
    if family != cfg.family:
        raise ValueError(f"{init}: a {family or 'built-in'} model; `livewave train {cfg.family} --init` starts "
                         f"from a {cfg.family} vocoder")
    if getattr(voc, "centred", False):
        raise ValueError(f"{init}: imported, trained on mel frames centred on their hop; livewave trains on its own "
                         f"causal frames, so tune it from scratch or play it as it is")
    m = voc.mcfg
    arch = _architecture(family, m, init)
    if family == "flow" and cfg.flow_source_n_fft and not m.source_n_fft:
        arch["flow_source_n_fft"] = cfg.flow_source_n_fft       # a conversion (train_vocoder)
    new = replace(cfg, **arch, sample_rate=m.sample_rate, n_mels=m.n_mels,
                  n_fft=int(voc.mel_cfg["n_fft"]), init=str(init)).validate()
    if family == "istft" and m.phase == "integrated" and new.istft_phase != "integrated":
        raise ValueError(f"{init}: its phase is integrated; it cannot be converted back (to phase {new.istft_phase!r})")
    if family == "istft" and (m.phase, new.istft_phase) == ("source", "integrated"):
        raise ValueError(f"{init}: its phase is source; convert from an absolute model to an integrated phase")
    built = _build(new)[1]
    a, b = built.to_dict(), m.to_dict()
    if family == "istft":
        a.pop("phase"), b.pop("phase")          # a change of phase is a conversion (train_vocoder)
    if family == "flow" and not m.source_n_fft:
        a.pop("source_n_fft"), b.pop("source_n_fft")        # so is taking a source
    if a != b:
        raise ValueError(f"{init}: model options this trainer cannot rebuild: "
                         f"{ {k: b.get(k) for k in b if a.get(k) != b.get(k)} }")
    want = check_mel_config({"n_fft": new.n_fft, "hop": new.hop, "n_mels": new.n_mels}, built)
    if dict(voc.mel_cfg) != want:
        diff = {k: v for k, v in voc.mel_cfg.items() if want.get(k) != v}
        raise ValueError(f"{init}: its mel analysis {diff} is not the one livewave trains on")
    return new


FAMILY_OPTIONS = {      # VocoderTrainConfig's options that only one family (or some) reads
    "melgan": ("ngf", "ratios", "n_residual_layers", "gan_start", "discriminators"),
    "hifigan": ("hifigan_version", "hifigan_channels", "gan_start", "discriminators"),
    "istft": ("istft_hop", "istft_n_fft", "istft_channels", "istft_blocks", "istft_phase", "advance_weight",
              "gan_start", "discriminators"),
    "flow": ("flow_hop", "n_group", "n_flows", "wn_layers", "wn_channels", "n_early_size", "sample_weight", "low_weight",
             "flow_source_n_fft", "flow_squeeze"),
}


def card_options(cfg: VocoderTrainConfig) -> dict:
    """The options a run of ``cfg.family`` was trained with, for its card: the shared ones and
    its family's, not the other families' (their defaults would read as if they mattered)."""
    others = set().union(*FAMILY_OPTIONS.values()) - set(FAMILY_OPTIONS[cfg.family])
    return {k: v for k, v in asdict(cfg).items() if k not in others and k not in ("device", "steps")}


def _config_key(cfg: VocoderTrainConfig) -> str:
    """What must not change between a run and its resumption (steps and device may)."""
    d = asdict(cfg)
    for k in ("steps", "device", "checkpoint_every", "ema", "max_minutes"):
        d.pop(k)
    if not cfg.init:                # NB: the key runs had before fine-tuning existed
        d.pop("init")
    if cfg.family != "istft":       # NB: the keys runs had before the istft family existed
        for k in ("istft_hop", "istft_n_fft", "istft_channels", "istft_blocks", "istft_phase"):
            d.pop(k)
    if not cfg.mel_weight:
        d.pop("mel_weight")
    if not cfg.low_weight:          # NB: the keys runs had before it existed
        d.pop("low_weight")
    if not cfg.advance_weight:
        d.pop("advance_weight")
    if not cfg.sample_weight:       # NB: the keys runs had before these existed
        d.pop("sample_weight")
    if not cfg.flow_source_n_fft:
        d.pop("flow_source_n_fft")
    if cfg.flow_squeeze == "groups":
        d.pop("flow_squeeze")
    if cfg.n_early_size == 2:
        d.pop("n_early_size")
    if not any(cfg.betas):
        d.pop("betas")
    if not cfg.decay_steps:
        d.pop("decay_steps")
    if not cfg.onsets:
        d.pop("onsets")
    if not cfg.source_dropout:
        d.pop("source_dropout")
    if not cfg.prior_weight:
        d.pop("prior_weight")
    if not cfg.lowpass:
        d.pop("lowpass")
    if cfg.family != "hifigan":
        d.pop("hifigan_version")
        d.pop("hifigan_channels")
    if cfg.family == "melgan":      # NB: the key MelGAN runs had before the flow family existed
        for k in ("family", "flow_hop", "n_group", "n_flows", "wn_layers", "wn_channels"):
            d.pop(k)
        d.pop("n_early_size", None)
    return repr(sorted(d.items()))
