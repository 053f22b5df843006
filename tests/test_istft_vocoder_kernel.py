"""The iSTFT vocoder's CPU kernel (``istft_vocoder_kernel``) computes what ``ISTFTVocoder.step``
does, and the instruments built on it run it instead of torch on the render side (start-up
compiling it: tests/test_preload.py)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from shipped import shipped

from livewave.checkpoint import load_generator
from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.generator import Conditioning
from livewave.istft_vocoder import ISTFTConfig, ISTFTVocoder
from livewave.istft_vocoder_kernel import ISTFTKernel
from livewave.mel_analysis import mel_filterbank

ROOT = Path(__file__).resolve().parents[1]
VOCODER = ROOT / "models" / "istft-fluidr3.safetensors"

CASES = {
    # source phase, natural-log mel, a level reference, every dilation
    "source": (dict(n_mels=16, hop=32, n_fft=64, channels=24, blocks=4, dilations=(1, 2, 4), phase="source",
                    sample_rate=16000), False),
    # absolute phase over four hops, a log10 mel
    "absolute": (dict(n_mels=12, hop=16, n_fft=64, channels=16, blocks=2, kernel=5, dilations=(3,),
                      phase="absolute", sample_rate=8000), True),
    # no level reference (a model as training builds it)
    "bare": (dict(n_mels=12, hop=32, n_fft=64, channels=16, blocks=3, phase="source", sample_rate=8000), None),
}


def random_model(name: str) -> ISTFTVocoder:
    cfg, log10 = CASES[name]
    torch.manual_seed(3)
    m = ISTFTVocoder(ISTFTConfig(**cfg))
    with torch.no_grad():           # LayerNorm's affine parameters away from 1 and 0, louder heads
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    if log10 is not None:
        c = m.config
        m.set_level_reference(mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, 0.0, c.sample_rate / 2), log10)
    return m.eval()


def streams(m: ISTFTVocoder, mel: np.ndarray, source: np.ndarray | None, level: bool, prime=None):
    """The same frames through torch's step (3 frames a call) and the kernel (1, then 2 a call)."""
    kern = ISTFTKernel(m, 4)
    if prime is not None:
        m.prime(torch.from_numpy(np.ascontiguousarray(prime[None, :, None])))
        kern.prime(prime)
    m.reset()
    kern.reset()
    a, b = [], []
    with torch.inference_mode():
        for i in range(0, mel.shape[0], 3):
            s = None if source is None else torch.from_numpy(source[i:i + 3].T[None].copy())
            a.append(m.step(torch.from_numpy(mel[i:i + 3].T[None].copy()), s, source_level=level)[0, 0].numpy())
    i = 0
    for n in (1, 2) * mel.shape[0]:
        if i >= mel.shape[0]:
            break
        b.append(kern.step(mel[i:i + n], None if source is None else source[i:i + n], level).copy())
        i += n
    return np.concatenate(a), np.concatenate(b)


def frames(m: ISTFTVocoder, t: int, seed: int = 7):
    """Mel frames quiet and loud (some past the head's clamp once through a loud model) and
    source spectra, some frames of them silent."""
    rng = np.random.default_rng(seed)
    c = m.config
    mel = (rng.standard_normal((t, c.n_mels)) - 3.0).astype(np.float32)
    mel[t // 3] += 6.0
    k = c.n_fft // 2 + 1
    src = (0.1 * (rng.standard_normal((t, k)) + 1j * rng.standard_normal((t, k)))).astype(np.complex64)
    src[t // 2] = 0.0
    src[t // 2 + 1, k // 3:] = 0.0
    return mel, src


def close(a: np.ndarray, b: np.ndarray) -> None:
    peak = float(np.abs(a).max())
    assert peak > 1e-4 and a.shape == b.shape
    err = float(np.abs(a - b).max())
    assert err <= 2e-5 * peak, f"max error {err:.3g} against a peak of {peak:.3g}"


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("with_source", ["none", "phases", "phases and level"])
def test_the_kernel_computes_what_the_torch_step_does(name, with_source):
    m = random_model(name)
    mel, src = frames(m, 30)
    source = None if with_source == "none" else src
    a, b = streams(m, mel, source, with_source == "phases and level")
    close(a, b)


def test_the_shipped_vocoder_through_the_kernel_after_priming():
    """``istft-fluidr3`` as the instruments prepare it (its level reference, primed with the
    mel floor), played from its source and from the mel alone."""
    m = load_generator(VOCODER).model.eval()
    mel, src = frames(m, 24, seed=11)
    silent = np.full(m.config.n_mels, np.log(1e-5), np.float32)
    for source, level in ((src, True), (src, False), (None, False)):
        close(*streams(m, mel, source, level, prime=silent))


def test_a_nan_frame_does_not_stick_after_a_reset():
    """NaN in a frame raises nothing; after ``reset`` the stream is as if it never came."""
    m = random_model("source")
    mel, src = frames(m, 8)
    bad = mel.copy()
    bad[2, 3] = np.nan

    def play(kern):
        return np.concatenate([kern.step(mel[i:i + 4], src[i:i + 4], True).copy() for i in range(0, 8, 4)])
    kern = ISTFTKernel(m, 4)
    assert not np.isfinite(kern.step(bad[:4], src[:4], True)).all()
    kern.reset()
    assert np.array_equal(play(kern), play(ISTFTKernel(m, 4)))


def test_too_many_frames_in_one_step_is_a_clear_error():
    m = random_model("bare")
    kern = ISTFTKernel(m, 2)
    with pytest.raises(ValueError, match="at most 2"):
        kern.step(np.zeros((3, m.config.n_mels), np.float32))
    with pytest.raises(ValueError, match="integrated"):
        ISTFTKernel(ISTFTVocoder(ISTFTConfig(phase="integrated", n_mels=8, hop=16, n_fft=32, channels=8,
                                             blocks=1)), 2)


def _no_torch_step(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("torch's vocoder step ran on the render side")
    monkeypatch.setattr(ISTFTVocoder, "step", boom)


def test_audio_in_on_cpu_runs_the_kernel_not_torch(monkeypatch):
    """The shipped vocoder played from audio in at 48 kHz: with torch's step made to fail it
    still renders (the kernel does the frames), loud and finite."""
    v = load_generator(VOCODER)
    v.prepare(48000, 256, 1, "cpu")
    assert v.kernel is not None
    _no_torch_step(monkeypatch)
    cond = Conditioning(1, 256, len(v.info.controls), 1)
    cond.controls[:] = v.default_controls()
    t = np.arange(48000) / 48000
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = np.zeros(x.size, np.float32)
    for i in range(0, x.size, 64):
        cond.frames, cond.audio_in_offset = 64, 0
        cond.audio_in[:64, 0] = x[i:i + 64]
        v.render(cond, out[i:i + 64])
    assert np.isfinite(out).all() and np.abs(out[24000:]).max() > 0.05


@pytest.mark.parametrize("model", [p.stem for p in shipped("midi2mel")])
def test_an_instrument_played_from_midi_runs_the_kernel_not_torch(model, monkeypatch):
    eng = Engine(EngineConfig(sample_rate=48000, max_block=256), load_generator(ROOT / "models" / f"{model}.safetensors"))
    eng.prepare()
    _no_torch_step(monkeypatch)
    eng.push_midi(0x90, 60, 100)
    eng.push_midi(0x90, 67, 100)
    out = np.zeros((24000, 2), np.float32)
    for i in range(0, out.shape[0], 64):
        eng.render(out[i:i + 64])
    assert eng.stats.generator_faults == 0 and np.isfinite(out).all() and np.abs(out).max() > 1e-2
