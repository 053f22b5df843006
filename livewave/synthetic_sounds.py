"""Synthetic sounds for training vocoders: the waveforms a performer may feed one (a synthesiser,
a bright buzz, noise, a bare sine) that FluidR3's instruments never make, with onsets after
digital silence.

Why: a vocoder trained on FluidR3 alone met a sawtooth after silence with a burst of 32 times
full scale (``istft_vocoder``, Level; ``onset_burst``): its data held neither such spectra nor
digital silence. Mixed into the training data (``livewave data synth``, then a folder holding
both), copy synthesis of these is learnt like any other audio.

Each clip (``seconds`` long, at ``sample_rate``) starts with 0.2 to 1 s of silence, then sounds
one after another, each 0.25 to 1.6 s, a third of them after a gap of silence (0.05 to 0.8 s):
- a band-limited tone (sawtooth, square, triangle, sine, or harmonics with a random spectral
  tilt and random phases), its pitch 50 to 1200 Hz (log-uniform) with a slight vibrato;
- or noise, white or darkened;
each with an attack of 1, 32, 256 or 2000 samples, a release of 10 to 300 ms, and a peak of -30 to
-1 dBFS. Reproducible from ``seed``. Threading: plain functions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

KINDS = ("saw", "square", "triangle", "sine", "tilt", "noise")
KIND_SHARES = (0.2, 0.15, 0.1, 0.15, 0.2, 0.2)


def _tone(rng: np.random.Generator, kind: str, f0: float, n: int, sample_rate: int) -> np.ndarray:
    t = np.arange(n) / sample_rate
    vibrato = 1 + rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sample_rate
    k = np.arange(1, max(1, int(0.48 * sample_rate / (f0 * 1.02))) + 1)
    if kind == "saw":
        amps = 1.0 / k
    elif kind == "square":
        amps = np.where(k % 2 == 1, 1.0 / k, 0.0)
    elif kind == "triangle":
        amps = np.where(k % 2 == 1, 1.0 / k ** 2, 0.0)
    elif kind == "sine":
        amps = (k == 1).astype(float)
    else:
        amps = k ** -rng.uniform(0.3, 2.5)
    x = np.zeros(n)
    for kk, a in zip(k, amps, strict=True):
        if a:
            x += a * np.sin(kk * phase + (0.0 if kind != "tilt" else rng.uniform(0, 6.28)))
    return x


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    w = rng.standard_normal(n)
    if rng.random() < 0.5:                       # darker: the running sum, its slow drift removed
        w = np.cumsum(w)
        w -= np.convolve(w, np.ones(64) / 64, "same")
    return w


def synthetic_clip(rng: np.random.Generator, seconds: float = 3.0, sample_rate: int = 22050) -> np.ndarray:
    """One clip (float64 in -1..1; see the module's docstring)."""
    sr = sample_rate
    n = int(seconds * sr)
    x = np.zeros(n)
    pos = int(rng.uniform(0.2, 1.0) * sr)
    while pos < n - sr // 4:
        dur = int(rng.uniform(0.25, 1.6) * sr)
        kind = str(rng.choice(KINDS, p=KIND_SHARES))
        if kind == "noise":
            seg = _noise(rng, dur)
        else:
            seg = _tone(rng, kind, float(np.exp(rng.uniform(np.log(50), np.log(1200)))), dur, sr)
        env = np.ones(dur)
        attack = min(dur // 2, int(rng.choice([1, 32, 256, 2000])))
        env[:attack] = np.linspace(0, 1, attack)
        release = min(dur - attack, int(rng.uniform(0.01, 0.3) * sr))
        env[dur - release:] *= np.linspace(1, 0, release)
        seg = seg * env / (np.abs(seg).max() + 1e-9) * 10 ** (rng.uniform(-30, -1) / 20)
        end = min(n, pos + dur)
        x[pos:end] += seg[:end - pos]
        pos = end + int(rng.choice([0, 0, rng.uniform(0.05, 0.8)]) * sr)
    return np.clip(x, -1, 1)


def make_synthetic_dataset(out, minutes: float, sample_rate: int = 22050, seed: int = 11,
                           seconds: float = 3.0, log=print) -> Path:
    """``out/synth_NNN.wav`` (float32 mono): ``minutes`` of clips of ``seconds``. A vocoder's
    training folder takes it beside others (``livewave train istft --data`` searches recursively)."""
    import soundfile as sf
    if not 0 < minutes <= 600:
        raise ValueError(f"minutes={minutes}: need more than 0, at most 600")
    if not 8000 <= sample_rate <= 192000:
        raise ValueError(f"sample_rate={sample_rate}: need 8000..192000")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clips = max(1, round(minutes * 60 / seconds))
    for c in range(clips):
        x = synthetic_clip(rng, seconds, sample_rate)
        sf.write(str(out / f"synth_{c:03d}.wav"), x.astype(np.float32), sample_rate, subtype="FLOAT")
    log(f"livewave: wrote {clips} synthetic clips ({clips * seconds:.0f} s at {sample_rate} Hz) to {out}")
    return out
