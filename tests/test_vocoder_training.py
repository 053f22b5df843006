"""``livewave train melgan``: a few steps on tiny data learn, resume exactly, and make a
checkpoint the engine plays; bad data folders are refused with the reason."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livewave.vocoder_training import VocoderTrainConfig, train_vocoder

TINY = dict(batch=4, crop_frames=16, sample_rate=16000, n_mels=32, ngf=4, ratios=(4, 4, 4), n_fft=256,
            learning_rate=3e-3, device="cpu")


def tones(folder: Path, seconds: float = 1.5) -> Path:
    """Two harmonic tones (stereo 44.1 kHz and mono 16 kHz), plus files that must be skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, f0, sr, ch in (("a.wav", 220.0, 44100, 2), ("b.flac", 330.0, 16000, 1)):
        t = np.arange(int(seconds * sr)) / sr
        x = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6)) * np.minimum(1, t * 20)
        sf.write(folder / name, np.repeat(x[:, None], ch, 1).astype(np.float32), sr)
    sf.write(folder / "silent.wav", np.zeros(16000, np.float32), 16000)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    return folder


def test_a_few_steps_learn_and_the_checkpoint_plays(tmp_path):
    from livewave.checkpoint import load_generator
    from livewave.mel_analysis import analyse
    from livewave.spectral_loss import spectral_distance_np
    data = tones(tmp_path / "data")
    out = tmp_path / "v.safetensors"

    def distance(path):
        gen = load_generator(path)
        x, _ = sf.read(data / "b.flac", dtype="float32")
        mel = analyse(x, 16000, n_fft=256, hop=64, n_mels=32)
        with torch.no_grad():
            y = gen.model(torch.from_numpy(mel.T[None].copy()))[0, 0].numpy()
        return spectral_distance_np(y, x[:y.shape[0]], 16000)

    r0 = train_vocoder(data, out, VocoderTrainConfig(steps=1, checkpoint_every=30, gan_start=1000, **TINY),
                      progress=False)
    before = distance(out)
    r = train_vocoder(data, out, VocoderTrainConfig(steps=60, checkpoint_every=30, gan_start=1000, **TINY),
                     progress=False)
    assert r["steps"] == 60 and r0["steps"] == 1
    assert sorted(s.split(":")[0] for s in r["skipped"]) == ["broken.wav", "silent.wav"]
    after = distance(out)
    print(f"copy-synthesis spectral distance: {before:.3f} after 1 step, {after:.3f} after 60")
    assert after < 0.9 * before          # measured: 4.79 -> 3.95 (18% closer) in 60 steps
    gen = load_generator(out)
    assert gen.info.family == "melgan" and gen.info.card["training"]["steps"] == 60
    t = gen.info.card["training"]
    assert t["ngf"] == 4 and t["gan_start"] == 1000                     # its family's options, not the others'
    assert not {"n_flows", "sample_weight", "istft_hop", "hifigan_version"} & set(t)


TINY_FLOW = dict(family="flow", batch=4, crop_frames=16, sample_rate=16000, n_mels=32, flow_hop=64, n_group=8,
                 n_flows=4, wn_layers=2, wn_channels=16, n_fft=256, learning_rate=1e-3, device="cpu")


def test_a_few_flow_steps_raise_the_likelihood_of_held_out_audio(tmp_path):
    from livewave.checkpoint import load_generator
    from livewave.mel_analysis import analyse
    data = tones(tmp_path / "data")
    out = tmp_path / "f.safetensors"
    x, _ = sf.read(data / "b.flac", dtype="float32")
    x = x[:64 * 200] * 0.9                                   # a held-out take: other level, other length
    mel = torch.from_numpy(analyse(x, 16000, n_fft=256, hop=64, n_mels=32).T[None].copy())

    def nll(path):
        with torch.no_grad():
            return float(load_generator(path).model.negative_log_likelihood(torch.from_numpy(x)[None], mel))

    train_vocoder(data, out, VocoderTrainConfig(steps=1, checkpoint_every=40, **TINY_FLOW), progress=False)
    before = nll(out)
    r = train_vocoder(data, out, VocoderTrainConfig(steps=40, checkpoint_every=40, **TINY_FLOW), progress=False)
    after = nll(out)
    print(f"flow NLL of a held-out take: {before:.3f} nats/sample after 1 step, {after:.3f} after 40")
    assert r["steps"] == 40 and after < before - 0.3
    flow = load_generator(out)
    assert flow.info.family == "flow"
    t = flow.info.card["training"]
    assert t["n_flows"] == 4 and t["flow_source_n_fft"] == 0 and "learning_rate" in t
    assert not {"ngf", "gan_start", "discriminators", "istft_phase", "hifigan_channels"} & set(t)


def test_a_flow_trained_on_its_samples_as_well_plays_closer_to_the_audio_and_stays_a_density(tmp_path):
    """``sample_weight``: the same steps with a sample's STFT distance beside the likelihood bring
    the sample a performer hears (at the playing temperature) nearer the audio than the
    likelihood alone, and the likelihood of held-out audio still rises."""
    from livewave.checkpoint import load_generator
    from livewave.flow_vocoder import SIGMA
    from livewave.mel_analysis import analyse
    from livewave.spectral_loss import spectral_distance_np
    data = tones(tmp_path / "data")
    x, _ = sf.read(data / "b.flac", dtype="float32")
    x = x[:64 * 200] * 0.9
    mel = torch.from_numpy(analyse(x, 16000, n_fft=256, hop=64, n_mels=32).T[None].copy())

    def measure(path):
        m = load_generator(path).model
        with torch.no_grad():
            y = m.infer(mel, SIGMA, z=m.noise(mel, SIGMA, generator=torch.Generator().manual_seed(5)))[0].numpy()
            return spectral_distance_np(y, x, 16000), float(m.negative_log_likelihood(torch.from_numpy(x)[None], mel))

    runs = {}
    for name, extra in (("likelihood", {}), ("with samples", dict(sample_weight=1.0, mel_weight=1.0))):
        out = tmp_path / f"{name}.safetensors"
        train_vocoder(data, out, VocoderTrainConfig(steps=1, checkpoint_every=120, **TINY_FLOW, **extra),
                      progress=False)
        first = measure(out)
        train_vocoder(data, out, VocoderTrainConfig(steps=120, checkpoint_every=120, **TINY_FLOW, **extra),
                      progress=False)
        runs[name] = (first, measure(out))
    print({k: f"sample distance {a[0]:.3f} -> {b[0]:.3f}, NLL {a[1]:.3f} -> {b[1]:.3f}" for k, (a, b) in runs.items()})
    (_, lik), (first, both) = runs["likelihood"], runs["with samples"]
    assert both[0] < 0.93 * lik[0]         # measured: 7.92 against 9.01 (the likelihood alone)
    assert both[1] < first[1] - 0.3
    with pytest.raises(ValueError, match="flow family"):
        VocoderTrainConfig(**TINY, sample_weight=1.0).validate()
    with pytest.raises(ValueError, match="set sample_weight"):
        VocoderTrainConfig(**TINY_FLOW, mel_weight=1.0).validate()
    with pytest.raises(ValueError, match="with sample_weight set"):
        VocoderTrainConfig(**TINY_FLOW, low_weight=1.0).validate()


def test_a_flow_driven_by_its_source_is_scored_on_the_audio_its_excitation_is_in_step_with(tmp_path):
    """Teacher-forced (``teacher_forced``): the excitation made from a crop's own spectra and the
    audio the flow is scored against line up to the sample (a hop off, the flow would learn to
    play a hop early or late of what it hears)."""
    from livewave.source_excitation import Excitation
    from livewave.vocoder_training import MelCrops, load_audio_folder, teacher_forced
    cfg = VocoderTrainConfig(**TINY_FLOW, flow_source_n_fft=128).validate()
    clips, _ = load_audio_folder(tones(tmp_path / "data"), cfg.sample_rate)
    _, audio = MelCrops(clips, cfg).batch(np.random.default_rng(0), 4, 128 - 64)
    real, source = teacher_forced(torch.from_numpy(audio)[:, None], cfg, 128)
    assert real.shape == (4, 1, 16 * 64) and source.shape[2] == 16
    e = Excitation(128, 64)(source).numpy()
    lags = list(range(-30, 31))                 # under half a period of the tones (16 kHz / 330 Hz = 48)
    for b in range(4):
        xc = [float(np.dot(e[b, 200:900], real[b, 0, 200 + k:900 + k].numpy())) for k in lags]
        assert lags[int(np.argmax(xc))] == 0


def test_an_mdct_flow_learns_from_its_source_and_its_frames_line_up(tmp_path):
    """``--squeeze mdct`` with a source: the batch is read a hop earlier still (frame 0's window),
    the excitation lines up with the audio after that hop to the sample, a few steps lower the
    loss (a share of the crops' sources silenced), and the checkpoint plays with its squeeze in its card."""
    from livewave.checkpoint import load_generator
    from livewave.source_excitation import Excitation
    from livewave.vocoder_training import MelCrops, audio_lead, load_audio_folder, source_lead, teacher_forced
    tiny = {**TINY_FLOW, "n_group": 64, "n_early_size": 8}
    cfg = VocoderTrainConfig(**tiny, flow_source_n_fft=128, flow_squeeze="mdct").validate()
    data = tones(tmp_path / "data")
    clips, _ = load_audio_folder(data, cfg.sample_rate)
    lead = source_lead(128, 64) + audio_lead(cfg)
    assert lead == 128
    _, audio = MelCrops(clips, cfg).batch(np.random.default_rng(0), 4, lead)
    real, source = teacher_forced(torch.from_numpy(audio)[:, None], cfg, 128)
    assert real.shape == (4, 1, 17 * 64) and source.shape[2] == 16
    e = Excitation(128, 64)(source).numpy()
    lags = list(range(-30, 31))
    for b in range(4):
        xc = [float(np.dot(e[b, 200:900], real[b, 0, 64 + 200 + k:64 + 900 + k].numpy())) for k in lags]
        assert lags[int(np.argmax(xc))] == 0
    out = tmp_path / "m.safetensors"
    r = train_vocoder(data, out, VocoderTrainConfig(steps=30, checkpoint_every=30, **{**tiny, "flow_source_n_fft": 128,
                                                                                        "flow_squeeze": "mdct",
                                                                                        "source_dropout": 0.3,
                                                                                        "prior_weight": 1.0,
                                                                                        "lowpass": 0.5}),
                      progress=False)
    assert r["steps"] == 30 and math.isfinite(r["loss"])
    flow = load_generator(out)
    assert flow.model.config.squeeze == "mdct" and flow.info.card["training"]["flow_squeeze"] == "mdct"
    assert flow.info.card["training"]["source_dropout"] == 0.3 and flow.info.card["training"]["prior_weight"] == 1.0
    assert flow.info.card["training"]["lowpass"] == 0.5
    assert flow.model.config.mel_n_fft == tiny.get("n_fft", 1024)      # its Gaussian reads the mel's level
    with pytest.raises(ValueError, match="prior_weight is for a flow whose squeeze is the MDCT"):
        VocoderTrainConfig(**TINY_FLOW, prior_weight=1.0).validate()
    assert flow.content_delay == 128 and flow.takes_source
    with pytest.raises(ValueError, match="n_group = flow_hop"):
        VocoderTrainConfig(**TINY_FLOW, flow_squeeze="mdct").validate()


def test_source_dropout_silences_a_share_of_the_crops_sources_reproducibly():
    """``--source-dropout``: each crop's source is silenced, whole, at the given share, drawn from
    the step's generator (a resumed run draws the same); the others are untouched. Refused for a
    model without a source."""
    from livewave.vocoder_training import drop_sources
    src = torch.randn(400, 5, 3, dtype=torch.complex64) + 1.0
    a = drop_sources(src, np.random.default_rng(7), 0.25)
    b = drop_sources(src, np.random.default_rng(7), 0.25)
    assert torch.equal(a, b)
    silent = (a.abs().amax(dim=(1, 2)) == 0)
    assert 0.18 < float(silent.float().mean()) < 0.32
    assert torch.equal(a[~silent], src[~silent])
    assert torch.equal(drop_sources(src, np.random.default_rng(7), 0.0), src)
    with pytest.raises(ValueError, match="source_dropout is for a flow driven by a source"):
        VocoderTrainConfig(**TINY_FLOW, source_dropout=0.1).validate()
    with pytest.raises(ValueError, match="a share of the crops"):
        VocoderTrainConfig(**TINY_FLOW, flow_source_n_fft=128, source_dropout=1.5).validate()


def test_a_flow_trained_on_the_mel_alone_is_converted_to_take_its_source(tmp_path):
    from livewave.checkpoint import load_generator
    data = tones(tmp_path / "data", seconds=1.0)
    base, out = tmp_path / "base.safetensors", tmp_path / "sourced.safetensors"
    train_vocoder(data, base, VocoderTrainConfig(steps=2, **TINY_FLOW), progress=False)
    train_vocoder(data, out, VocoderTrainConfig(steps=3, init=str(base), flow_source_n_fft=128, **TINY_FLOW),
                  progress=False)
    gen = load_generator(out)
    assert gen.takes_source and gen.content_delay == 64 and gen.source_bins == 65
    assert "converted to take a source" in gen.info.card["training"]["fine_tuned_from"]["source"]
    listens = [float(wn.cond.weight[:, 32:].detach().abs().max()) for wn in gen.model.couplings]
    assert min(listens) > 0.0                    # zero when converted; trained, every coupling listens
    with pytest.raises(ValueError, match="flow family"):
        VocoderTrainConfig(**TINY, flow_source_n_fft=128).validate()


@pytest.mark.parametrize("family", ["melgan", "flow", "flow-source"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, family):
    data = tones(tmp_path / "data", seconds=1.0)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    # NB: MSD only: the full-size MPD (41 M parameters) makes each resume state ~0.5 GB to write
    cfg = dict(checkpoint_every=3, gan_start=2, discriminators="msd", **TINY) if family == "melgan" else \
        dict(checkpoint_every=3, sample_weight=1.0, mel_weight=1.0, low_weight=1.0, **TINY_FLOW,
             **({"flow_source_n_fft": 128} if family == "flow-source" else {}))
    train_vocoder(data, a, VocoderTrainConfig(steps=6, **cfg), progress=False)
    train_vocoder(data, b, VocoderTrainConfig(steps=3, **cfg), progress=False)      # "killed" after 3
    assert b.with_name(b.name + ".train.pt").exists()
    train_vocoder(data, b, VocoderTrainConfig(steps=6, **cfg), progress=False)      # the same command again
    from safetensors.numpy import load_file
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    assert all(np.array_equal(ta[k], tb[k]) for k in ta)
    with pytest.raises(ValueError, match="another run"):
        train_vocoder(data, b, VocoderTrainConfig(steps=8, **{**cfg, "n_mels": 16}), progress=False)


def test_bad_data_folders_are_refused_with_the_reason(tmp_path):
    r = subprocess.run([sys.executable, "-m", "livewave", "train", "melgan", "--data", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "x.safetensors"), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no such data folder" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    sf.write(empty / "quiet.wav", np.zeros(8000, np.float32), 16000)
    r = subprocess.run([sys.executable, "-m", "livewave", "train", "melgan", "--data", str(empty),
                        "--out", str(tmp_path / "x.safetensors"), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no usable audio" in r.stderr and "silent" in r.stderr
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(ValueError, match="discriminators"):
        VocoderTrainConfig(discriminators="wavenet").validate()


TINY_ISTFT = dict(family="istft", batch=4, crop_frames=16, sample_rate=16000, n_mels=32, istft_hop=64, istft_n_fft=128,
                  istft_channels=16, istft_blocks=1, n_fft=256, learning_rate=3e-3, gan_start=1000, device="cpu")


def test_fine_tuning_starts_from_a_trained_vocoder_with_its_architecture(tmp_path):
    """``--init``: the run takes the checkpoint's weights, architecture, rate, bands and analysis
    (whatever the options say), records where it came from, and refuses what it cannot tune."""
    from livewave.checkpoint import CheckpointError, load_generator
    data = tones(tmp_path / "data", seconds=1.0)
    base = tmp_path / "base.safetensors"
    train_vocoder(data, base, VocoderTrainConfig(steps=3, seed=1, **TINY_ISTFT), progress=False)
    # the options' defaults name another architecture (256 x 6), rate (22050) and bands (80)
    tuned = tmp_path / "tuned.safetensors"
    cfg = VocoderTrainConfig(family="istft", steps=2, batch=2, crop_frames=16, learning_rate=1e-9, gan_start=1000,
                             device="cpu", init=str(base))
    r = train_vocoder(data, tuned, cfg, progress=False)
    a, b = load_generator(base), load_generator(tuned)
    assert r["steps"] == 2 and b.mcfg == a.mcfg and b.mel_cfg == a.mel_cfg
    sa, sb = a.model.state_dict(), b.model.state_dict()
    # at lr 1e-9 two steps leave the base's weights; a fresh start (seed 0, not the base's 1) is far off
    assert max(float((sa[k] - sb[k]).abs().max()) for k in sa) < 1e-6
    fresh = tmp_path / "fresh.safetensors"
    train_vocoder(data, fresh, VocoderTrainConfig(**{**TINY_ISTFT, "learning_rate": 1e-9}, steps=2), progress=False)
    sf_ = load_generator(fresh).model.state_dict()
    assert max(float((sa[k] - sf_[k]).abs().max()) for k in sa) > 0.01
    lineage = b.info.card["training"]["fine_tuned_from"]
    assert lineage["steps"] == 3 and lineage["name"] == "base" and b.info.card["training"]["init"] == str(base)
    from livewave.vocoder_evaluation import write_vocoder_card_markdown
    assert "fine-tuned (`--init`) from base, itself trained 3 steps" in write_vocoder_card_markdown(tuned).read_text()
    # its training state names the base: a rerun with another base is another run
    with pytest.raises(ValueError, match="another run"):
        train_vocoder(data, tuned, VocoderTrainConfig(**{**cfg.__dict__, "steps": 3, "init": str(fresh)}),
                      progress=False)
    # what cannot be tuned: another family, a DDSP model, a corrupt file, a missing one
    melgan = tmp_path / "m.safetensors"
    train_vocoder(data, melgan, VocoderTrainConfig(steps=1, **TINY), progress=False)
    with pytest.raises(ValueError, match="a melgan model"):
        train_vocoder(data, tmp_path / "x.safetensors", VocoderTrainConfig(family="istft", init=str(melgan)),
                      progress=False)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        train_vocoder(data, tmp_path / "x.safetensors", VocoderTrainConfig(family="istft", init=str(corrupt)),
                      progress=False)
    shipped = Path(__file__).resolve().parents[1] / "models" / "cello.safetensors"
    r = subprocess.run([sys.executable, "-m", "livewave", "train", "istft", "--data", str(data), "--out",
                        str(tmp_path / "x.safetensors"), "--init", str(shipped), "-q"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "a ddsp model" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "livewave", "train", "istft", "--data", str(data), "--out",
                        str(tmp_path / "x.safetensors"), "--init", str(tmp_path / "nope.safetensors"), "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "nope.safetensors" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_fine_tuning_an_absolute_phase_istft_converts_it_and_starts_where_it_was(tmp_path):
    """The first iSTFT models took their phase per frame (``istft_vocoder``'s docstring):
    ``--init`` from one trains an integrated model that starts out rendering the same waveform;
    the way back is refused."""
    import torch

    from livewave.checkpoint import load_generator
    data = tones(tmp_path / "data", seconds=1.0)
    base, tuned = tmp_path / "base.safetensors", tmp_path / "tuned.safetensors"
    train_vocoder(data, base, VocoderTrainConfig(steps=2, **TINY_ISTFT), progress=False)      # absolute: the default
    train_vocoder(data, tuned, VocoderTrainConfig(family="istft", steps=1, batch=2, crop_frames=16, device="cpu",
                                                  learning_rate=1e-9, gan_start=1000, init=str(base),
                                                  istft_phase="integrated"), progress=False)
    a, b = load_generator(base), load_generator(tuned)
    assert a.model.config.phase == "absolute" and b.model.config.phase == "integrated"
    assert b.info.card["training"]["fine_tuned_from"]["phase"] == "converted from absolute to integrated"
    mel = torch.randn(1, 32, 20)
    with torch.no_grad():
        assert float((a.model(mel) - b.model(mel)).abs().max()) < 1e-4
    # the advance loss trains and is for integrated models only
    more = tmp_path / "more.safetensors"
    r = train_vocoder(data, more, VocoderTrainConfig(family="istft", steps=3, batch=2, crop_frames=16, device="cpu",
                                                     learning_rate=1e-3, gan_start=1000, init=str(tuned),
                                                     istft_phase="integrated", advance_weight=10.0), progress=False)
    assert r["steps"] == 3 and load_generator(more).info.card["training"]["advance_weight"] == 10.0
    with pytest.raises(ValueError, match="advance_weight"):
        VocoderTrainConfig(family="istft", istft_phase="absolute", advance_weight=1.0).validate()
    with pytest.raises(ValueError, match="converted back"):
        train_vocoder(data, tmp_path / "x.safetensors", VocoderTrainConfig(
            family="istft", steps=1, device="cpu", init=str(tuned), istft_phase="absolute"), progress=False)


def test_a_time_budget_stops_the_run_with_its_checkpoint_and_the_same_command_goes_on(tmp_path):
    """``--max-minutes``: the run stops at its budget with a playable checkpoint and its state;
    the same command again continues from there (what a GPU lent for minutes needs)."""
    from livewave.checkpoint import load_generator
    data = tones(tmp_path / "data", seconds=1.0)
    out = tmp_path / "v.safetensors"
    cmd = [sys.executable, "-m", "livewave", "train", "istft", "--data", str(data), "--out", str(out),
           "--steps", "100000", "--rate", "16000", "--n-mels", "32", "--hop", "64", "--n-fft", "128",
           "--channels", "16", "--blocks", "1", "--batch", "2", "--crop-frames", "16", "--device", "cpu",
           "--max-minutes", "0.05", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "stopped at --max-minutes 0.05" in r.stdout, r.stdout + r.stderr
    first = load_generator(out).info.card["training"]["steps"]
    assert 0 < first < 100000
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert load_generator(out).info.card["training"]["steps"] > first       # resumed, not restarted
    with pytest.raises(ValueError, match="max_minutes"):
        VocoderTrainConfig(max_minutes=-1).validate()


@pytest.mark.parametrize("tiny", [TINY, TINY_FLOW], ids=["melgan", "flow"])
def test_every_trained_family_can_be_fine_tuned(tmp_path, tiny):
    from livewave.checkpoint import load_generator
    data = tones(tmp_path / "data", seconds=1.0)
    base, tuned = tmp_path / "base.safetensors", tmp_path / "tuned.safetensors"
    train_vocoder(data, base, VocoderTrainConfig(steps=1, **tiny), progress=False)
    family = tiny.get("family", "melgan")
    train_vocoder(data, tuned, VocoderTrainConfig(family=family, steps=1, batch=2, crop_frames=16, device="cpu",
                                                  init=str(base)), progress=False)
    a, b = load_generator(base), load_generator(tuned)
    assert b.info.family == family and b.mcfg == a.mcfg and b.mel_cfg == a.mel_cfg


def test_onset_crops_start_from_digital_silence_with_their_mel_analysed_exactly():
    """``--onsets``: a share of the crops is silence up to a random frame and the audio after it
    at a random gain; its mel is the analysis of exactly that (silence before), and a crop that
    is not an onset is the plain one (the same random draws otherwise)."""
    from livewave.mel_analysis import analyse
    from livewave.vocoder_training import MelCrops
    cfg = VocoderTrainConfig(**TINY).validate()
    rng0 = np.random.default_rng(3)
    clips = [(0.3 * rng0.standard_normal(16000)).astype(np.float32) for _ in range(2)]
    crops = MelCrops(clips, cfg)
    lead, h, f = 128, cfg.hop, cfg.crop_frames
    mel, audio = crops.batch(np.random.default_rng(5), 64, lead, onsets=0.5)
    floor = np.log(1e-5)
    starts = []
    for b in range(64):
        quiet = np.flatnonzero(np.abs(audio[b]) > 0)
        if quiet[0] < lead + h:                        # a plain crop
            continue
        cut = quiet[0]
        starts.append((cut - lead) // h)
        assert (cut - lead) % h == 0 and 1 <= (cut - lead) // h <= f - 8
        assert np.allclose(mel[b], analyse(audio[b, lead:], 16000, n_fft=256, hop=h, n_mels=32).T, atol=1e-5)
        assert np.allclose(mel[b, :, :(cut - lead) // h], floor, atol=1e-4)     # silence until the cut
    assert 20 <= len(starts) <= 44 and len(set(starts)) > 3
    plain_mel, plain_audio = crops.batch(np.random.default_rng(5), 4, lead)
    assert np.abs(plain_audio[:, :lead + h]).max() > 0
    with pytest.raises(ValueError, match="onsets"):
        VocoderTrainConfig(**TINY, onsets=1.5).validate()


def test_low_pass_is_a_butterworth_magnitude_with_no_wrap_around():
    """``low_passed``: -3 dB at the cutoff, 48 dB an octave over it, flat under it; a click at
    the end of the signal does not come back at its start (the FFT is padded)."""
    from livewave.vocoder_training import low_passed
    sr, n, fc = 16000, 16000, 500.0
    t = np.arange(n) / sr
    for f, want in ((125.0, 0.0), (500.0, -3.01), (1000.0, -48.2), (2000.0, -96.3)):
        y = low_passed(np.sin(2 * np.pi * f * t), fc, sr)[4000:12000]
        got = 20 * np.log10(np.sqrt(2 * np.mean(y ** 2)))
        assert abs(got - want) < 0.05 + 0.01 * abs(want), (f, got, want)
    click = np.zeros(n)
    click[-1] = 1.0
    assert np.abs(low_passed(click, fc, sr)[:n // 2]).max() < 1e-9


def test_low_passed_crops_have_their_mel_analysed_with_their_history(monkeypatch):
    """``--lowpass``: a crop is its clip's audio through ``low_passed`` at a cutoff in
    ``LOWPASS_HZ``, the filter run over the history the mel needs too, and its mel is the
    analysis of exactly that audio."""
    import livewave.vocoder_training as vt
    from livewave.mel_analysis import analyse
    cfg = VocoderTrainConfig(**TINY).validate()
    rng0 = np.random.default_rng(3)
    clips = [(0.3 * rng0.standard_normal(16000)).astype(np.float32) for _ in range(2)]
    crops = vt.MelCrops(clips, cfg)
    seen = []
    real = vt.low_passed

    def spy(x, cutoff, sample_rate):
        seen.append((x.copy(), cutoff, real(x, cutoff, sample_rate)))
        return seen[-1][2]
    monkeypatch.setattr(vt, "low_passed", spy)
    lead, h, f = 128, cfg.hop, cfg.crop_frames
    mel, audio = crops.batch(np.random.default_rng(5), 16, lead, lowpass=1.0)
    assert len(seen) == 16
    back = len(seen[0][0]) - f * h       # samples filtered before the crop
    assert back >= lead + cfg.n_fft and back % h == 0
    first = (cfg.n_fft - lead) // h      # frames whose whole window lies in the crop's audio
    for b, (x, cutoff, y) in enumerate(seen):
        assert vt.LOWPASS_HZ[0] <= cutoff <= vt.LOWPASS_HZ[1]
        assert np.array_equal(audio[b], y[back - lead:])
        crop = x[-f * h:]                 # what was filtered ends with the plain crop of a clip
        assert any(np.array_equal(c[i:i + f * h], crop) for c in clips for i in np.flatnonzero(c == crop[0]))
        got = analyse(audio[b], 16000, n_fft=cfg.n_fft, hop=h, n_mels=32)[lead // h:].T
        assert np.allclose(mel[b, :, first:], got[:, first:f], atol=1e-4)
        whole = analyse(y, 16000, n_fft=cfg.n_fft, hop=h, n_mels=32)[back // h:back // h + f].T
        assert np.allclose(mel[b], whole, atol=1e-5)
    assert len({round(c) for _, c, _ in seen}) == 16
    with pytest.raises(ValueError, match="lowpass"):
        VocoderTrainConfig(**TINY, lowpass=-0.1).validate()


def test_synthetic_sounds_are_reproducible_onsets_after_silence(tmp_path):
    """``livewave data synth``: clips that start silent, hold sounds between -30 and -1 dBFS
    peak, the same for a seed, another for another seed; bad settings refused."""
    from livewave.synthetic_sounds import make_synthetic_dataset
    a = make_synthetic_dataset(tmp_path / "a", 0.15, sample_rate=16000, seed=4, log=lambda *_: None)
    b = make_synthetic_dataset(tmp_path / "b", 0.15, sample_rate=16000, seed=4, log=lambda *_: None)
    c = make_synthetic_dataset(tmp_path / "c", 0.15, sample_rate=16000, seed=5, log=lambda *_: None)
    files = sorted(a.glob("*.wav"))
    assert len(files) == 3
    for f in files:
        x, sr = sf.read(f, dtype="float32")
        assert sr == 16000 and x.size == 48000 and np.isfinite(x).all()
        assert np.abs(x[:3200]).max() == 0                       # 0.2 s of silence at least
        assert 10 ** (-31 / 20) < np.abs(x).max() <= 1.0
        assert np.array_equal(x, sf.read(b / f.name, dtype="float32")[0])
    assert not np.array_equal(sf.read(files[0], dtype="float32")[0], sf.read(c / files[0].name, dtype="float32")[0])
    r = subprocess.run([sys.executable, "-m", "livewave", "data", "synth", "--minutes", "0", "--out",
                        str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode == 2 and "minutes" in r.stderr
