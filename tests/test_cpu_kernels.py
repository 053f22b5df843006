"""Each shipped instrument sounds the same with its Numba kernels (the CPU path) as with torch
computing every step (``LIVEWAVE_CPU_KERNELS=0``, ``generator.cpu_kernels``): a chord struck,
one note released, and audio in, through the whole engine, with sample-exact events."""
from pathlib import Path

import numpy as np
import pytest

from livewave.checkpoint import load_generator
from livewave.config import EngineConfig
from livewave.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
SR = 48000


def play(model: str, kernels: bool, monkeypatch) -> tuple[np.ndarray, object]:
    monkeypatch.setenv("LIVEWAVE_CPU_KERNELS", "1" if kernels else "0")
    gen = load_generator(ROOT / "models" / f"{model}.safetensors")
    eng = Engine(EngineConfig(sample_rate=SR, max_block=256, input_channels=1), gen).prepare()
    t = np.arange(SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1.0, t * 8)).astype(np.float32)[:, None]
    for i, note in enumerate((60, 64, 67)):
        eng.push_event(100 + 40 * i, 0x90, note, 100)
    eng.push_event(SR // 2, 0x80, 64, 0)
    out = np.zeros((SR, 2), np.float32)
    for i in range(0, SR, 64):
        eng.render(out[i:i + 64], x[i:i + 64])
    assert eng.stats.generator_faults == 0
    return out, gen


@pytest.mark.parametrize("model", ["violin", "piano-midi2mel", "strings-midi2mel", "istft-fluidr3"])
def test_an_instrument_sounds_the_same_with_its_kernels_and_with_torch(model, monkeypatch):
    a, gen = play(model, True, monkeypatch)
    kernels = [k for k in (getattr(gen, "kernel", None), getattr(getattr(gen, "vocoder", None), "kernel", None)) if k]
    assert kernels, "the CPU path ran no kernel"
    b, gen = play(model, False, monkeypatch)
    assert getattr(gen, "kernel", None) is None and getattr(getattr(gen, "vocoder", None), "kernel", None) is None
    peak = float(np.abs(a).max())
    assert peak > 0.05
    err = float(np.abs(a - b).max())
    assert err <= 2e-5 * peak, f"kernels against torch: max difference {err:.3g} at a peak of {peak:.3g}"


@pytest.mark.parametrize("cfg", [dict(layers=3, hidden=32, log10=False), dict(layers=4, hidden=24, log10=True),
                                 dict(layers=2, hidden=16, log10=False)])
def test_the_midi_to_mel_kernel_computes_what_the_network_does(cfg):
    """Random weights, notes across the whole comb table and past both its ends (a bend), some
    frames with no note, gains from silent to loud."""
    import torch

    from livewave.midi_to_mel import MidiToMel, MidiToMelConfig
    from livewave.midi_to_mel_kernel import MelKernel
    from livewave.piano_roll import F_PITCH, N_FEATURES
    torch.manual_seed(2)
    model = MidiToMel(MidiToMelConfig(n_mels=20, n_fft=512, hop=128, **cfg)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    rng = np.random.default_rng(4)
    n, k = 40, 6
    feats = rng.uniform(0.0, 1.0, (n, N_FEATURES)).astype(np.float32)
    feats[:, F_PITCH] = rng.uniform(-2.4, 2.6, n)            # MIDI 6..126: both ends of the table
    rows = np.sort(rng.integers(0, k, n)).astype(np.int64)
    rows[rows == 3] = 2                                      # frame 3 has no note
    gains = rng.uniform(0.0, 2.0, n).astype(np.float32)
    kern = MelKernel(model, n, k)
    got = kern.frames(feats, rows, gains, n, k).copy()
    with torch.inference_mode():
        want = model(torch.from_numpy(feats), torch.from_numpy(rows), k, torch.from_numpy(gains)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)     # log-mel: absolute
    assert np.allclose(got[3], np.log10(model.config.floor) if cfg["log10"] else np.log(model.config.floor))
    with pytest.raises(ValueError, match="at most"):
        kern.frames(feats, rows, gains, n, k + 1)
