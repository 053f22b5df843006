"""The neural DDSP family: decoder, training (determinism, resume, DDP), checkpoints, and
playing a trained model through the engine (block-size independence, pitch, polyphony)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from audio_checks import cents, f0_spectral
from shipped import shipped

from livewave.checkpoint import CheckpointError, load_generator, read_checkpoint, save_checkpoint
from livewave.config import EngineConfig
from livewave.ddsp_model import DDSPDecoder, DecoderConfig
from livewave.ddsp_training import TrainConfig, train_ddsp
from livewave.engine import Engine
from livewave.soundfont_data import make_soundfont_dataset

ROOT = Path(__file__).resolve().parents[1]
SR = 48000
TINY = dict(batch=2, crop_seconds=0.3, hidden=16, mlp=16, n_harmonics=16, n_bands=8, checkpoint_every=2)
SHIPPED = shipped("ddsp")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("flute")
    make_soundfont_dataset(out, 73, 0.1, 16000, seed=3, log=lambda *a: None)
    return out


@pytest.fixture(scope="module")
def tiny_model(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    train_ddsp(data, path, TrainConfig(steps=3, **TINY), progress=False, log=lambda *a: None)
    return path


def weights(path):
    return read_checkpoint(path)[1]


def test_decoder_step_equals_sequence():
    torch.manual_seed(0)
    m = DDSPDecoder(DecoderConfig(hidden=32, mlp=24, n_harmonics=16, n_bands=8)).eval()
    f0 = 100 + 1400 * torch.rand(3, 40)
    ld = -80 * torch.rand(3, 40)
    with torch.inference_mode():
        a, g, h = m(f0, ld, nyquist_hz=8000)
        hh = torch.zeros(3, 32)
        steps = []
        for k in range(40):
            ak, gk, hh = m.step(f0[:, k], ld[:, k], hh, 8000)
            steps.append(torch.cat([ak, gk], -1))
    assert torch.allclose(torch.stack(steps, 1), torch.cat([a, g], -1), atol=1e-5)
    assert torch.allclose(hh, h, atol=1e-5)
    # Harmonics at or above Nyquist get nothing.
    assert float(a[f0.unsqueeze(-1).expand(-1, -1, 16) * torch.arange(1, 17) >= 8000].abs().max()) == 0.0


def test_training_is_deterministic_and_resumes_exactly(data, tmp_path):
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    quiet = dict(progress=False, log=lambda *x: None)
    train_ddsp(data, a, TrainConfig(steps=4, **TINY), **quiet)
    train_ddsp(data, b, TrainConfig(steps=4, **TINY), **quiet)
    train_ddsp(data, c, TrainConfig(steps=4, **TINY), stop_at=2, **quiet)   # "interrupted" at step 2
    assert read_checkpoint(c)[0]["card"]["training"]["steps"] == 2
    train_ddsp(data, c, TrainConfig(steps=4, **TINY), **quiet)         # resumed from c.train.pt
    wa, wb, wc = weights(a), weights(b), weights(c)
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k
        assert np.array_equal(wa[k], wc[k]), k
    other = tmp_path / "d.safetensors"
    train_ddsp(data, other, TrainConfig(steps=4, **{**TINY, "seed": 1}), **quiet)
    assert any(not np.array_equal(wa[k], weights(other)[k]) for k in wa)
    # A state file for other settings is refused, not silently mixed in.
    with pytest.raises(ValueError, match="different data or settings"):
        train_ddsp(data, c, TrainConfig(steps=6, **{**TINY, "batch": 3}), **quiet)


def test_fine_tuning_starts_from_a_trained_instrument(data, tiny_model, tmp_path):
    """``--init``: the decoder starts from the checkpoint's weights and sizes (whatever the
    options say), the calibration is fitted on the new data, the card names the base; another
    family or another rate is refused with the reason."""
    quiet = dict(progress=False, log=lambda *x: None)
    tuned = tmp_path / "tuned.safetensors"
    # the options' default sizes (hidden 128, 64 harmonics) are not the base's (16, 16)
    r = train_ddsp(data, tuned, TrainConfig(steps=2, batch=2, crop_seconds=0.3, learning_rate=1e-9,
                                            init=str(tiny_model)), **quiet)
    base, mine = load_generator(tiny_model), load_generator(tuned)
    assert r["steps"] == 2 and mine.dcfg == base.dcfg
    wb, wt = weights(tiny_model), weights(tuned)
    assert max(float(np.abs(wb[k] - wt[k]).max()) for k in wb) < 1e-6       # lr 1e-9: still the base's
    fresh = tmp_path / "fresh.safetensors"
    train_ddsp(data, fresh, TrainConfig(steps=2, **{**TINY, "learning_rate": 1e-9, "seed": 5}), **quiet)
    assert max(float(np.abs(wb[k] - weights(fresh)[k]).max()) for k in wb) > 0.01
    t = read_checkpoint(tuned)[0]["card"]["training"]
    assert t["fine_tuned_from"]["steps"] == 3 and t["init"] == str(tiny_model)
    from livewave.train_cli import write_card_markdown
    assert "fine-tuned (`--init`) from tiny" in write_card_markdown(tuned).read_text()
    with pytest.raises(ValueError, match="different data or settings"):        # another base: another run
        train_ddsp(data, tuned, TrainConfig(steps=3, batch=2, crop_seconds=0.3, init=str(fresh)), **quiet)
    vocoder = ROOT / "models" / "istft-fluidr3.safetensors"
    if vocoder.exists():
        with pytest.raises(ValueError, match="a istft model"):
            train_ddsp(data, tmp_path / "x.safetensors", TrainConfig(steps=1, init=str(vocoder)), **quiet)
    other_rate = tmp_path / "ds22"
    make_soundfont_dataset(other_rate, 73, 0.05, 22050, seed=4, log=lambda *a: None)
    r = subprocess.run([sys.executable, "-m", "livewave", "train", "ddsp", "--data", str(other_rate), "--out",
                        str(tmp_path / "x.safetensors"), "--init", str(tiny_model), "-q"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "trained at 16000 Hz" in r.stderr and "--rate 16000" in r.stderr, r.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_calibration_recovers_a_known_instrument():
    """Loudness made from a known law (velocity slope, per-key offsets, an attack swell,
    expression, a 40 dB release in 0.2 s) is recovered from the frames."""
    from livewave.ddsp_calibration import fit_calibration, validate_calibration, voice_loudness
    rng = np.random.default_rng(0)
    fs, hop, sr = 0.004, 64, 16000
    key_off = {k: (k - 60) * 0.5 + (3.0 if k >= 64 else 0.0) for k in range(55, 70)}
    swell = lambda k: -12.0 * np.exp(-k / 25.0)  # noqa: E731
    clips = []
    for _ in range(4):
        n = 7500
        ld = np.full(n, -100.0)
        expr = np.ones(n)
        notes, t = [], 0.1
        while t < n * fs - 1.5:
            dur = rng.uniform(0.2, 0.8)
            key, vel = int(rng.integers(55, 70)), int(rng.integers(20, 128))
            i0, i1 = int(round(t / fs)), int(round((t + dur) / fs))
            e = rng.uniform(0.5, 1.0)
            expr[i0:i1] = e
            k = np.arange(i1 - i0)
            ld[i0:i1] = -45 + 30 * vel / 127 + key_off[key] + swell(k) + 40 * np.log10(e)
            tail = np.arange(100)
            ld[i1:i1 + 100] = ld[i1 - 1] - 200.0 * tail * fs
            notes.append((t, t + dur, key, vel))
            t += dur + rng.choice([0.0, 0.6])
        clips.append({"loudness_db": ld.astype(np.float32), "voiced": ld > -90, "expression": expr.astype(np.float32),
                      "notes": np.array(notes)})
    cal = fit_calibration(clips, sr, hop)
    assert abs(cal["velocity_db"][1] - 30.0) < 0.5
    offs = np.array(cal["key_db"]) + cal["velocity_db"][0]
    truth = np.array([key_off[k] for k in range(55, 70)]) - 45
    assert cal["key_low"] == 55 and np.abs(offs - truth).max() < 0.5
    assert abs(cal["attack_db"][0] - swell(0)) < 0.7 and abs(cal["attack_db"][60] - swell(60)) < 0.7
    assert abs(cal["release_s"] - 0.2) < 0.02
    assert cal["rms_error_db"] < 0.5
    # The live kernel gives the same law (full gain and envelope, reference gain taken out).
    v = validate_calibration(cal)
    out = np.zeros(1)
    env = np.ones((1, 1), np.float32)
    ref_gain = 10 ** (cal["reference_gain_db"] / 20)
    voice_loudness(np.ones(1, np.bool_), 48000, 48000, 1, np.array([100 / 127]), np.array([66.0]),
                   np.array([ref_gain]), env, np.array([0]), v["a"], v["b"], v["key_low"], v["key_db"],
                   v["attack_db"], 0.004 * 48000, out)
    assert abs(out[0] - (-45 + 30 * 100 / 127 + key_off[66])) < 0.7


def test_train_on_your_own_recordings(data, tmp_path):
    """The user's path: a folder of recordings (here: WAVs at 16 kHz and a stereo 44.1 kHz
    copy) -> dataset (YIN, loudness) -> a few training steps -> a model that plays."""
    import shutil

    import soundfile as sf

    from livewave.audio_data import make_audio_dataset
    rec = tmp_path / "recordings"
    rec.mkdir()
    wavs = sorted(Path(data).glob("clip_*.wav"))
    shutil.copy(wavs[0], rec / "take1.wav")
    x, sr = sf.read(str(wavs[-1]), dtype="float32")
    import soxr
    y = soxr.resample(x, sr, 44100)
    sf.write(str(rec / "take2.wav"), np.stack([y, 0.5 * y], 1), 44100)
    make_audio_dataset(rec, tmp_path / "ds", log=lambda *a: None)
    out = tmp_path / "mine.safetensors"
    train_ddsp(tmp_path / "ds", out, TrainConfig(steps=2, **TINY), progress=False, log=lambda *a: None)
    meta = read_checkpoint(out)[0]
    assert meta["card"]["data"]["source"] == "audio"
    assert meta["config"]["calibration"]["source"] == "loudness percentiles"
    x, _ = render(load_generator(out), [(0, 0x90, 72, 100)], SR // 2, 256)
    assert np.isfinite(x).all() and np.abs(x).max() > 1e-4


def test_checkpoint_card_and_calibration(tiny_model):
    meta, _ = read_checkpoint(tiny_model)
    card, cfg = meta["card"], meta["config"]
    assert meta["family"] == "ddsp"
    assert card["data"]["program"] == 73 and card["training"]["steps"] == 3
    assert card["training"]["device"] in ("cpu", "cuda:0") and card["training"]["seconds"] > 0
    cal = cfg["calibration"]
    assert cal["velocity_db"][1] > 0, "harder notes were louder in the data"
    assert 0.05 <= cal["release_s"] <= 2.0 and len(cal["attack_db"]) > 10


def render(gen, events, frames, block):
    e = Engine(EngineConfig(sample_rate=SR, max_block=4096, channels=1), gen).prepare()
    for ev in events:
        e.push_event(*ev)
    out = np.zeros((frames, 1), np.float32)
    for i in range(0, frames, block):
        e.render(out[i:i + block])
    return out[:, 0], e


PHRASE = [(100, 0x90, 69, 100), (4001, 0xE0, 0, 90), (7000, 0x90, 76, 60), (7001, 0xB0, 1, 100),
          (12000, 0x80, 69, 0), (15000, 0x90, 69, 110), (19000, 0x80, 76, 0), (22000, 0x80, 69, 0)]


def test_block_sizes_give_identical_samples(tiny_model):
    ref, _ = render(load_generator(tiny_model), PHRASE, 30000, 64)
    assert np.abs(ref).max() > 1e-4
    for block in (1, 17, 256, 4096):
        x, _ = render(load_generator(tiny_model), PHRASE, 30000, block)
        assert np.abs(x - ref).max() <= 1e-6, f"block {block}"


def test_pitch_and_polyphony(tiny_model):
    gen = load_generator(tiny_model)
    x, e = render(gen, [(0, 0x90, 69, 110)], SR, 256)
    assert abs(cents(f0_spectral(x[SR // 4:], SR), 440.0)) < 5.0
    chord = [(0, 0x90, n, 110) for n in (60, 64, 67)]
    x, e = render(load_generator(tiny_model), chord, SR // 2, 256)
    assert e.voices.active_count == 3
    spec = np.abs(np.fft.rfft(x[SR // 8:] * np.hanning(x.size - SR // 8)))
    freqs = np.fft.rfftfreq(x.size - SR // 8, 1 / SR)
    for n in (60, 64, 67):
        f = 440 * 2 ** ((n - 69) / 12)
        near = (freqs > f * 0.99) & (freqs < f * 1.01)
        assert spec[near].max() > 20 * np.median(spec[(freqs > 100) & (freqs < 2000)]), n


def test_bad_ddsp_checkpoints_are_refused_with_the_reason(tiny_model, tmp_path):
    meta, tensors = read_checkpoint(tiny_model)
    k = sorted(tensors)[0]
    bad = dict(tensors)
    bad[k] = np.zeros((3, 3), np.float32)
    p = save_checkpoint(tmp_path / "shape.safetensors", "ddsp", meta["config"], meta["card"], bad)
    with pytest.raises(CheckpointError, match=f"shape.safetensors.*{k}"):
        load_generator(p)
    p = save_checkpoint(tmp_path / "cal.safetensors", "ddsp", {**meta["config"], "calibration": {"velocity_db": [1]}},
                        meta["card"], tensors)
    with pytest.raises(CheckpointError, match="calibration"):
        load_generator(p)
    p = save_checkpoint(tmp_path / "cfg.safetensors", "ddsp", {**meta["config"], "decoder": {"n_harmonics": 15}},
                        meta["card"], tensors)
    with pytest.raises(CheckpointError, match="n_harmonics"):
        load_generator(p)


def test_swap_to_a_ddsp_model_while_playing(tiny_model):
    e = Engine(EngineConfig(sample_rate=SR, max_block=4096, channels=1)).prepare()
    e.push_event(0, 0x90, 69, 100)
    out = np.zeros((SR // 4, 1), np.float32)
    e.render(out)
    gen = load_generator(tiny_model)
    gen.prepare(SR, 4096, e.config.polyphony)
    e.swap_generator(gen)
    e.render(out)
    assert e.generator is gen and e.stats.generator_faults == 0
    assert e.voices.active_count == 1 and np.abs(out).max() > 1e-4


@pytest.mark.slow
def test_ddp_two_processes(data, tmp_path):
    """PyTorch DDP through torchrun (gloo on CPU): two ranks, rank 0 writes the model."""
    out = tmp_path / "ddp.safetensors"
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "livewave", "train", "ddsp",
                        "--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2", "--crop-seconds", "0.3",
                        "--hidden", "16", "--device", "cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    card = read_checkpoint(out)[0]["card"]
    assert card["training"]["processes"] == 2 and card["training"]["steps"] == 2


@pytest.mark.skipif(not SHIPPED, reason="no shipped models")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_models_play_soft_soft_and_hard_bright(path):
    """Every shipped model loads, plays in tune, and a hard note is louder and brighter."""
    meta = read_checkpoint(path)[0]
    assert path.stat().st_size < 8 * 2 ** 20
    assert meta["card"]["quality"]["closer_than_default_pct"] >= 30.0
    lo, hi = meta["card"]["data"]["pitch_range"]
    note = (lo + hi) // 2
    level, centroid = [], []
    for vel in (30, 120):
        x, _ = render(load_generator(path), [(0, 0x90, note, vel)], SR, 256)
        x = x[SR // 4:]
        assert abs(cents(f0_spectral(x, SR), 440 * 2 ** ((note - 69) / 12))) < 10.0
        power = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
        freqs = np.fft.rfftfreq(x.size, 1 / SR)
        level.append(np.sqrt(np.mean(x ** 2)))
        centroid.append((power * freqs).sum() / power.sum())
    assert level[1] > 2.0 * level[0], level
    assert centroid[1] > centroid[0], centroid


def livewave(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "livewave", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"}, **kw)


def test_train_refuses_bad_data_folders_clearly(tmp_path):
    r = livewave("train", "ddsp", "--data", tmp_path, "--out", tmp_path / "m.safetensors", "--steps", "1")
    assert r.returncode == 2 and "no dataset.json" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "dataset.json").write_text("{not json")
    r = livewave("train", "ddsp", "--data", tmp_path, "--out", tmp_path / "m.safetensors", "--steps", "1")
    assert r.returncode == 2 and "dataset.json" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_a_run_killed_mid_training_leaves_a_playable_model_and_resumes(data, tmp_path):
    import signal
    import time
    out = tmp_path / "m.safetensors"
    state = tmp_path / "m.safetensors.train.pt"
    tiny = ["--batch", "2", "--crop-seconds", "0.3", "--hidden", "16", "--checkpoint-every", "2"]
    p = subprocess.Popen([sys.executable, "-m", "livewave", "train", "ddsp", "--data", str(data), "--out", str(out),
                          "--steps", "400", *tiny], cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end and not (state.exists() and out.exists()):
        time.sleep(0.05)
    time.sleep(1.5)                       # into later steps and their writes
    p.send_signal(signal.SIGKILL)         # killed wherever it is, mid-step or mid-write
    p.wait(30)
    card = read_checkpoint(out)[0]["card"]
    assert 2 <= card["training"]["steps"] < 400 and not card["training"]["complete"]
    x, _ = render(load_generator(out), [(0, 0x90, 72, 100)], 4800, 256)
    assert np.isfinite(x).all() and np.abs(x).max() > 0
    at = int(torch.load(state, weights_only=True)["step"])
    r = livewave("train", "ddsp", "--data", data, "--out", out, "--steps", at + 4, *tiny)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming {out} from step {at}" in r.stdout + r.stderr
    assert read_checkpoint(out)[0]["card"]["training"]["steps"] == at + 4
    assert not list(tmp_path.glob("*.tmp")), "temporary files of the killed run were not cleaned up"


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="no shipped models")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_models_beat_the_default_on_fresh_held_out_phrases(path, tmp_path):
    """Re-measured here, not read from the card: 30 s of phrases from a seed no model saw,
    rendered by fluidsynth, against the model and the level-matched default instrument."""
    from livewave.ddsp_evaluation import evaluate
    program = read_checkpoint(path)[0]["card"]["data"]["program"]
    make_soundfont_dataset(tmp_path, program, 0.5, 16000, seed=20261123, log=lambda *a: None)
    q = evaluate(path, tmp_path, log=lambda *a: None)
    assert q["closer_than_default_pct"] >= 30.0, q
    assert q["pitch_median_abs_cents"] < 5.0, q


@pytest.mark.parametrize("config", [dict(hidden=32, mlp=24, n_harmonics=16, n_bands=8), "shipped"])
def test_the_numba_step_computes_what_the_torch_step_does(config):
    """The CPU path's kernel against ``DDSPDecoder.step`` over 40 frames of 6 voices: random
    f0 (some with every harmonic above Nyquist), loudness beyond its clamp, voices starting
    fresh, going silent and coming back. Inactive voices keep their state and their rows."""
    from livewave.ddsp_decoder_kernel import DecoderKernel
    torch.manual_seed(1)
    if config == "shipped":
        m = load_generator(SHIPPED[0]).model
    else:
        m = DDSPDecoder(DecoderConfig(**config))
        with torch.no_grad():          # LayerNorm's affine parameters away from 1 and 0
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
    m = m.eval()
    c = m.config
    v, nyq = 6, 12000.0
    kern = DecoderKernel(m, v)
    rng = np.random.default_rng(5)
    h_t = torch.zeros(v, c.hidden)
    h_k = np.zeros((v, c.hidden), np.float32)
    amps = np.full((v, c.n_harmonics), 7.0, np.float32)
    mags = np.full((v, c.n_bands), 7.0, np.float32)
    for frame in range(40):
        f0 = rng.uniform(30.0, 3000.0, v).astype(np.float32)
        f0[frame % v] = 13000.0                       # every harmonic above Nyquist
        ld = rng.uniform(-130.0, 6.0, v).astype(np.float32)
        active = (rng.random(v) < 0.7).astype(np.float32)
        fresh = (rng.random(v) < 0.15).astype(np.float32)
        before_a, before_m = amps.copy(), mags.copy()
        kern.step(f0, ld, active, fresh, h_k, nyq, amps, mags)
        with torch.inference_mode():
            h0 = h_t * (1.0 - torch.from_numpy(fresh)).unsqueeze(1)
            a_t, m_t, h_new = m.step(torch.from_numpy(f0), torch.from_numpy(ld), h0, nyq)
            h_t = torch.where(torch.from_numpy(active).unsqueeze(1) > 0.5, h_new, h0)
        on = active > 0.5
        np.testing.assert_allclose(h_k, h_t.numpy(), rtol=1e-4, atol=2e-6)
        np.testing.assert_allclose(amps[on], a_t.numpy()[on], rtol=1e-4, atol=2e-7)
        np.testing.assert_allclose(mags[on], m_t.numpy()[on], rtol=1e-4, atol=2e-7)
        assert np.array_equal(amps[~on], before_a[~on]) and np.array_equal(mags[~on], before_m[~on])
        if on[frame % v]:
            assert not amps[frame % v].any()          # nothing at or above Nyquist


def test_the_cpu_path_runs_no_torch_on_the_render_side(tiny_model, monkeypatch):
    """A DDSP model on CPU renders through the kernel: with torch's step made to fail, it still
    plays (the step is never called), and the output is finite and not silent."""
    from livewave.ddsp_model import DDSPDecoder as Dec
    eng = Engine(EngineConfig(sample_rate=SR, max_block=256), load_generator(tiny_model)).prepare()

    def boom(*a, **k):
        raise AssertionError("torch's step ran on the render side")
    monkeypatch.setattr(Dec, "step", boom)
    eng.push_midi(0x90, 69, 100)
    out = np.zeros((SR // 2, 2), np.float32)
    for i in range(0, out.shape[0], 64):
        eng.render(out[i:i + 64])
    assert eng.stats.generator_faults == 0 and np.isfinite(out).all() and np.abs(out).max() > 1e-3
