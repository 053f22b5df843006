"""The DDSP family on CUDA: the captured graph plays what the CPU plays, allocates nothing
while playing, swaps in while another model plays, and trains. Runs where torch sees a GPU
(skipped elsewhere; CI has none, the lent GPU machines do). Needs no fluidsynth: the
training data are recordings of the default instrument through the user's audio path."""
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from audio_checks import cents, f0_spectral
from shipped import shipped

from livewave.checkpoint import load_generator, read_checkpoint
from livewave.config import EngineConfig
from livewave.engine import Engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")

ROOT = Path(__file__).resolve().parents[1]
SR = 48000
SHIPPED = shipped("ddsp")
# A melody with a bend, vibrato, a chord, and a voice reused from a fresh start.
PHRASE = [(100, 0x90, 62, 100), (4001, 0xE0, 0, 90), (7000, 0x90, 69, 60), (7001, 0xB0, 1, 100),
          (9000, 0x90, 74, 120), (12000, 0x80, 62, 0), (15000, 0x90, 62, 110), (19000, 0x80, 69, 0),
          (26000, 0x80, 74, 0), (30000, 0x80, 62, 0), (31000, 0x90, 66, 90), (40000, 0x80, 66, 0)]


def engine(path, device, block=4096, voices=16):
    return Engine(EngineConfig(sample_rate=SR, max_block=block, channels=1, polyphony=voices, device=device),
                  load_generator(path)).prepare()


def play(e, events, frames, block):
    for ev in events:
        e.push_event(*ev)
    out = np.zeros((frames, 1), np.float32)
    for i in range(0, frames, block):
        e.render(out[i:i + block])
    return out[:, 0]


@pytest.fixture(scope="module")
def violin():
    p = ROOT / "models" / "violin.safetensors"
    if not p.exists():
        pytest.skip("no shipped violin")
    return p


def test_cuda_graph_plays_what_the_cpu_plays(violin):
    cpu = play(engine(violin, "cpu"), PHRASE, 48000, 64)
    e = engine(violin, "cuda")
    gen = e.generator
    assert gen.device.startswith("cuda") and gen.graph is not None, "the step was not captured"
    gpu = play(e, PHRASE, 48000, 64)
    assert e.stats.generator_faults == 0
    assert np.abs(cpu).max() > 1e-3
    err = np.sqrt(np.mean((gpu - cpu) ** 2)) / np.sqrt(np.mean(cpu ** 2))
    assert err < 1e-3, f"CUDA and CPU renders differ by {err:.2e} (relative rms)"


def test_cuda_block_sizes_give_identical_samples(violin):
    ref = play(engine(violin, "cuda"), PHRASE, 30000, 64)
    for block in (17, 256, 4096):
        x = play(engine(violin, "cuda"), PHRASE, 30000, block)
        assert np.abs(x - ref).max() <= 1e-6, f"block {block}"


def test_cuda_allocates_nothing_while_playing_64_voices(violin):
    e = engine(violin, "cuda", block=64, voices=64)
    for k in range(64):
        e.push_event(0, 0x90 | (k // 48), 36 + (k * 7) % 48, 90)
    out = np.zeros((64, 1), np.float32)
    for _ in range(30):
        e.render(out)
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()["allocation.all.allocated"]
    for _ in range(300):
        e.render(out)
    torch.cuda.synchronize()
    assert e.voices.active_count == 64 and np.isfinite(out).all() and np.abs(out).max() > 0
    assert torch.cuda.memory_stats()["allocation.all.allocated"] == before, "the render side allocated GPU memory"


def test_a_cuda_model_loads_and_swaps_in_while_another_plays(violin):
    """Graph capture on a loader thread while the render thread replays another graph."""
    other = SHIPPED[0] if SHIPPED[0] != violin else SHIPPED[-1]
    e = engine(violin, "cuda", block=256)
    e.push_event(0, 0x90, 69, 100)
    out = np.zeros((256, 1), np.float32)
    loaded = {}

    def load():
        g = load_generator(other)
        g.prepare(SR, 256, e.config.polyphony, "cuda")
        loaded["gen"] = g

    t = threading.Thread(target=load)
    t.start()
    while t.is_alive():
        e.render(out)
    t.join()
    assert e.stats.generator_faults == 0
    e.swap_generator(loaded["gen"])
    x = np.zeros((SR // 2, 1), np.float32)
    for i in range(0, x.shape[0], 256):
        e.render(x[i:i + 256])
    assert e.generator is loaded["gen"] and e.stats.generator_faults == 0
    assert abs(cents(f0_spectral(x[SR // 4:, 0], SR), 440.0)) < 10.0


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Monophonic takes of the default instrument, recorded through the engine, as a user's
    folder of WAVs -> ``livewave data audio``'s dataset."""
    import soundfile as sf

    from livewave.audio_data import make_audio_dataset
    rec = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(5)
    for take in range(2):
        e = Engine(EngineConfig(sample_rate=SR, max_block=256, channels=1), None).prepare()
        t, events = 0, []
        for _ in range(24):
            n, v, d = int(rng.integers(55, 80)), int(rng.integers(40, 127)), int(rng.integers(6000, 20000))
            events += [(t, 0x90, n, v), (t + d, 0x80, n, 0)]
            t += d + int(rng.integers(500, 4000))
        sf.write(str(rec / f"take{take}.wav"), play(e, events, t + SR // 2, 256), SR)
    ds = tmp_path_factory.mktemp("dataset")
    make_audio_dataset(rec, ds, log=lambda *a: None)
    return ds


def test_training_on_cuda_is_deterministic_and_plays(recordings, tmp_path):
    from livewave.ddsp_training import TrainConfig, train_ddsp
    cfg = TrainConfig(steps=6, batch=4, crop_seconds=0.5, checkpoint_every=3, device="cuda")
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for p in (a, b):
        train_ddsp(recordings, p, cfg, progress=False, log=lambda *x: None)
    meta, wa = read_checkpoint(a)
    assert meta["card"]["training"]["device"].startswith("cuda")
    wb = read_checkpoint(b)[1]
    assert all(np.array_equal(wa[k], wb[k]) for k in wa), "two CUDA runs with one seed differ"
    x = play(engine(a, "cuda", block=256), [(0, 0x90, 67, 100)], SR // 2, 256)
    assert np.isfinite(x).all() and np.abs(x).max() > 1e-4
