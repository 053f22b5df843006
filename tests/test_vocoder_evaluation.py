"""Vocoder evaluation by copy synthesis against Griffin-Lim: the floor is computed on the same
mel definition, outputs are aligned fairly, and ``livewave eval`` writes the card."""
import json
import subprocess
import sys

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")

from livewave.mel_analysis import analyse, mel_filterbank  # noqa: E402
from livewave.vocoder_evaluation import align, griffin_lim  # noqa: E402


def test_our_mel_filterbank_is_librosas_slaney():
    ours = mel_filterbank(22050, 1024, 80, 0.0, None)
    theirs = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=None, htk=False, norm="slaney")
    assert np.allclose(ours, theirs, atol=1e-6 * theirs.max())


def test_alignment_finds_a_known_shift():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(5000).astype(np.float32)
    for lag in (-300, 0, 257):
        y = np.roll(ref, -lag)
        a, r, found = align(y, ref, 512)
        assert found == lag and a.size == r.size
        assert np.allclose(a[600:-600], r[600:-600])


def test_griffin_lim_from_our_mel_is_the_floor_it_should_be():
    """Griffin-Lim from the engine's mel of a harmonic tone: the pitch survives, and aligned it is
    much closer to the original than noise of the same level."""
    from livewave.spectral_loss import spectral_distance_np
    sr = 22050
    t = np.arange(sr) / sr
    x = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6)).astype(np.float32)
    cfg = {"n_fft": 1024, "hop": 256, "n_mels": 80, "fmin": 0.0, "fmax": None, "floor": 1e-5, "log10": False}
    y = griffin_lim(analyse(x, sr, **{k: cfg[k] for k in cfg}), sr, cfg)
    a, r, lag = align(y, x, 1024)
    assert abs(lag) <= 1024
    noise = np.random.default_rng(1).standard_normal(r.size).astype(np.float32) * r.std()
    assert spectral_distance_np(a, r, sr) < 0.5 * spectral_distance_np(noise, r, sr)
    spec = np.abs(np.fft.rfft(a[2048:-2048] * np.hanning(a.size - 4096)))
    # within the mel band it came from (about 67 Hz wide at 220 Hz): measured 211 Hz
    assert abs(np.argmax(spec) * sr / (a.size - 4096) - 220) < 15


def test_livewave_eval_of_a_vocoder_writes_its_card(tmp_path):
    from test_vocoder_training import TINY, tones

    from livewave.checkpoint import read_checkpoint
    from livewave.vocoder_training import VocoderTrainConfig, train_vocoder
    data = tones(tmp_path / "data", seconds=1.0)
    model = tmp_path / "voc.safetensors"
    train_vocoder(data, model, VocoderTrainConfig(steps=2, checkpoint_every=2, gan_start=100, **TINY), progress=False)
    r = subprocess.run([sys.executable, "-m", "livewave", "eval", str(model), "--data", str(data), "--write-card"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    q = read_checkpoint(model)[0]["card"]["quality"]
    for k in ("mrstft_model", "mrstft_griffin_lim", "logmel_l1_model", "logmel_l1_griffin_lim"):
        assert np.isfinite(q[k]) and q[k] > 0
    shown, _ = json.JSONDecoder().raw_decode(r.stdout[r.stdout.index("{"):])
    assert q["heldout_clips"] == 2 and shown["sample_rate"] == 16000
    assert model.with_suffix(".png").stat().st_size > 10_000
    md = model.with_suffix(".md").read_text()
    assert "Griffin-Lim" in md and str(q["mrstft_model"]) in md
    # the log-mel L1 by frequency range: four runs of bands whose time-weighted mean is the whole
    edges = q["logmel_l1_bands_hz"]
    assert len(edges) == 4 and edges[0][0] == 0 and edges[-1][1] == 8000
    assert all(lo < hi for lo, hi in edges) and all(a[1] > b[0] for a, b in zip(edges, edges[1:], strict=False))
    for who in ("model", "griffin_lim"):
        assert np.mean(q[f"logmel_l1_bands_{who}"]) == pytest.approx(q[f"logmel_l1_{who}"], abs=2e-3)
    assert f"{edges[0][0]}-{edges[0][1]} Hz" in md
    lv = q["logmel_by_level"]["model"]
    assert 0 < lv["valley_share"] < 1 and lv["valleys_abs"] > 0 and "in the valleys between them" in md
    assert len(q["held_note_cents_model"]) == len(q["held_note_hz"]) and "Held notes" in md


def test_the_error_is_split_between_the_partials_and_the_valleys():
    """Energy added between the partials shows as a positive signed error in the valleys only."""
    from livewave.vocoder_evaluation import level_split
    ref = np.full((10, 8), -10.0)
    ref[:, [1, 4]] = 0.0                                      # two partials per frame, valleys 10 nats down
    out = ref.copy()
    out[:, [0, 2, 3, 5, 6, 7]] += 3.0                         # the valleys filled by 3 nats
    out[:, 1] -= 0.5                                          # one partial a little weak
    s = level_split(out, ref)
    assert s["valley_share"] == pytest.approx(0.75)
    assert s["valleys_signed"] == pytest.approx(3.0) and s["valleys_abs"] == pytest.approx(3.0)
    assert s["partials_signed"] == pytest.approx(-0.25) and s["partials_abs"] == pytest.approx(0.25)


def test_held_note_pitch_reads_a_known_detune():
    """The held-note measure on a render that plays every tone 20 cents sharp (resampled), and on
    one that moves every partial to the nearest multiple of 86.1 Hz (what an absolute-phase iSTFT
    vocoder does on a steady mel): it reads +20 and the expected offsets."""
    from livewave.held_note import harmonic_tone, held_note_pitch, peak_cents
    sr = 22050
    ratio = 2 ** (20 / 1200)

    def sharp(x):
        n = np.arange(x.size)
        return np.interp(n * ratio, n, x, right=0.0)
    cents = held_note_pitch(sharp, sr, freqs=(110.0, 440.0, 1000.0))
    assert all(abs(c - 20.0) < 1.0 for c in cents), cents
    frame_rate = sr / 256
    for f in (300.0, 440.0):
        grid = round(f / frame_rate) * frame_rate
        y = harmonic_tone(grid, sr)                    # a tone the quantised render would give
        assert peak_cents(y, f, sr) == pytest.approx(1200 * np.log2(grid / f), abs=1.0)


def test_griffin_lim_lag_is_found_from_the_envelope():
    """A noise burst: Griffin-Lim's output of our causal frames comes about n_fft/2 - hop late."""
    sr = 22050
    x = np.zeros(sr, np.float32)
    x[10000:14000] = 0.3 * np.random.default_rng(0).standard_normal(4000)
    cfg = {"n_fft": 1024, "hop": 256, "n_mels": 80, "fmin": 0.0, "fmax": None, "floor": 1e-5, "log10": False}
    y = griffin_lim(analyse(x, sr, **cfg), sr, cfg)
    _, _, lag = align(y, x, 1024)
    assert abs(lag + 256) <= 32, lag


@pytest.mark.parametrize("source_n_fft", [0, 64])
def test_the_flow_figures_of_an_untrained_flow_are_the_identity_flows(source_n_fft):
    """An untrained flow is the identity (its couplings end in zeros): its held-out NLL is the
    samples' own standard normal density, and its output is z itself, so the RMS goes with sigma."""
    import torch

    from livewave.flow_vocoder import FlowConfig, FlowVocoder
    from livewave.vocoder_evaluation import flow_figures
    torch.manual_seed(0)
    m = FlowVocoder(FlowConfig(n_mels=8, hop=32, n_group=8, n_flows=4, wn_layers=2, wn_channels=8, sample_rate=8000,
                               source_n_fft=source_n_fft)).eval()
    x = (0.2 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    q = flow_figures(m, [x], 8000, dict(n_fft=128, hop=32, n_mels=8, fmin=0.0, fmax=None, floor=1e-5, log10=False),
                     10.0)
    assert q["nll_nats_per_sample"] == pytest.approx(q["nll_identity_flow"], abs=1e-3)
    r = q["sigma_rms_ratio"]
    assert r["0"] == 0.0 and r["0.6"] == pytest.approx(2 * r["0.3"], rel=1e-3)
