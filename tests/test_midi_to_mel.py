"""MIDI to mel: the polyphonic phrases, the roll's definition, the model, the ``midi2mel``
family played through the engine (equal to the offline model, block-size independent), its
training, its checkpoints and its command line."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_vocoder_instrument import tiny_vocoder_checkpoint

from livewave.checkpoint import CheckpointError, load_generator, save_checkpoint
from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.midi_to_mel import MidiToMel, MidiToMelConfig, comb_table
from livewave.offline_render import render_events
from livewave.piano_phrases import generate_roll_clip
from livewave.piano_roll import F_HELD, N_FEATURES, note_ends, roll_pairs, sound_off_times

TINY = dict(sample_rate=22050, hop=64, n_mels=20, hidden=16, layers=2, tail=0.4)


# -- phrases and the roll ------------------------------------------------------------------------
def test_polyphonic_phrases_are_seeded_chords_with_a_well_formed_pedal():
    a = generate_roll_clip(0, 25.0, np.random.default_rng(5), 21, 99)
    b = generate_roll_clip(0, 25.0, np.random.default_rng(5), 21, 99)
    assert np.array_equal(a.notes, b.notes) and np.array_equal(a.pedal, b.pedal)
    n = a.notes
    assert len(n) > 40 and (n[:, 1] > n[:, 0]).all() and n[:, 1].max() <= 25.0 - 1.5 + 1e-9
    assert ((n[:, 2] >= 21) & (n[:, 2] <= 99)).all() and ((n[:, 3] >= 1) & (n[:, 3] <= 127)).all()
    _, counts = np.unique(n[:, 0], return_counts=True)
    assert counts.max() >= 3                                   # chords
    for p in np.unique(n[:, 2]):                               # no key overlaps itself
        k = n[n[:, 2] == p]
        k = k[np.argsort(k[:, 0])]
        assert (k[1:, 0] >= k[:-1, 1] - 1e-9).all()
    assert len(a.pedal) >= 2 and (np.diff(a.pedal[:, 0]) > 0).all()
    assert (a.pedal[::2, 1] == 1).all() and (a.pedal[1::2, 1] == 0).all() and a.pedal[-1, 1] == 0


def test_the_pedal_holds_a_released_key_until_it_lifts_and_a_restrike_replaces_the_note():
    notes = np.array([[0.0, 0.5, 60, 100],     # key up while the pedal is down: held to 1.0
                      [0.2, 0.3, 64, 100],     # key up before the pedal goes down: 0.3
                      [1.2, 1.4, 67, 100],     # pedal goes down at its key-up's own time: not held
                      [2.0, 3.0, 72, 100], [2.5, 2.6, 72, 90]])   # a restrike cuts the first 72
    pedal = np.array([[0.4, 1], [1.0, 0], [1.4, 1], [1.8, 0]])
    off = sound_off_times(notes, pedal)
    assert list(off) == [1.0, 0.3, 1.4, 3.0, 2.6]
    end = note_ends(notes, off, tail=0.25)
    assert list(end) == [1.25, 0.55, 1.65, 2.5, 2.85]
    rate, hop = 1000, 100                                       # frame t ends at (t + 1) / 10 s
    idx, f = roll_pairs(notes, pedal, 40, rate, hop, tail=0.25)
    assert f.shape[1] == N_FEATURES and f.dtype == np.float32
    first = f[idx == 0]                                         # tau = 0.1: only the note at 0.0
    assert len(first) == 1 and first[0, F_HELD] == 1
    # a note is in frames whose end is after its onset and not after its end: 60 sounds in
    # frames ending 0.1 .. 1.2; the 72 struck at 2.0 leaves with the restrike at 2.5
    assert ((f[:, 0] * 24 + 64).round()[idx == 11] == 60).any()
    assert not ((f[:, 0] * 24 + 64).round()[idx == 12] == 60).any()
    at = lambda t: sorted((f[idx == t, 0] * 24 + 64).round().tolist())   # noqa: E731
    assert at(24) == [72] and at(25) == [72]                  # never both: the restrike replaces
    assert f[idx == 24, 1] == pytest.approx(100 / 127) and f[idx == 25, 1] == pytest.approx(90 / 127)
    held_60 = f[(idx == 9) & ((f[:, 0] * 24 + 64).round() == 60), F_HELD]
    assert list(held_60) == [1.0]                               # tau 1.0 <= pedal-up: still held


def test_the_comb_is_what_the_engine_analysis_measures_of_a_harmonic_tone():
    from livewave.mel_analysis import analyse
    cfg = MidiToMelConfig()
    table = comb_table(cfg)
    sr, n = cfg.sample_rate, np.arange(cfg.sample_rate)
    for p in (40, 60, 76):
        f0 = 440 * 2 ** ((p - 69) / 12)
        k = np.arange(1, int(sr / 2 / f0) + 1)
        x = np.cos(2 * np.pi * np.outer(n, k * f0 / sr) + np.random.default_rng(p).uniform(0, 6.3, len(k))).sum(1)
        lin = np.exp(analyse(x.astype(np.float32), sr, n_fft=1024, hop=256, n_mels=80)[8:-2]).mean(axis=0)
        row = table[int((p - 12) * 8)]
        strong = row > 0.1 * row.max()                         # the bands the partials fall in
        assert np.abs(np.log(lin[strong]) - np.log(row[strong])).max() < 0.25


def test_a_frame_is_the_sum_of_its_notes():
    torch.manual_seed(0)
    m = MidiToMel(MidiToMelConfig(**TINY)).eval()
    f = torch.rand(3, N_FEATURES)
    with torch.no_grad():
        lin = m.note_mels(f)
        y = m(f, torch.tensor([0, 0, 1]), 3)
    assert torch.allclose(y[0], torch.log(lin[0] + lin[1] + 1e-5), atol=1e-5)
    assert torch.allclose(y[1], torch.log(lin[2] + 1e-5), atol=1e-5)
    assert torch.allclose(y[2], torch.full_like(y[2], float(np.log(1e-5))))   # no note: silence


# -- the family through the engine ----------------------------------------------------------------
def tiny_midi2mel(tmp_path, with_vocoder=True, vocoder="melgan"):
    from livewave.midi_to_mel_instrument import MidiToMelInstrument
    from livewave.vocoder_instrument import MelGANVocoder  # noqa: F401 (the family)
    torch.manual_seed(3)
    model = MidiToMel(MidiToMelConfig(**TINY))
    with torch.no_grad():                    # louder than the quiet start, so the notes are heard
        model.head.bias.fill_(0.0)
    path = tmp_path / "m.safetensors"
    if vocoder.startswith("istft"):          # a vocoder that sounds one hop (64) behind its input
        from test_istft_vocoder import tiny

        from livewave.vocoder_instrument import ISTFTVocoderInstrument
        voc = tiny(phase="source" if vocoder == "istft-source" else "integrated")
        with torch.no_grad():                # quiet: random weights are loud enough for the output guard
            voc.head.bias[:voc.config.n_fft // 2 + 1] -= 6.0
        v = ISTFTVocoderInstrument(voc, {"n_mels": 20, "hop": 64}, name="tiny-istft")
        config, tensors = v.checkpoint_parts()
        vpath = save_checkpoint(tmp_path / "v.safetensors", "istft", config, {"instrument": "tiny"}, tensors)
    else:
        vpath = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    inst = MidiToMelInstrument(model, load_generator(vpath), name="tiny")
    config, tensors = inst.checkpoint_parts()
    if not with_vocoder:
        config.pop("vocoder")
        tensors = {k: v for k, v in tensors.items() if not k.startswith("vocoder/")}
    save_checkpoint(path, "midi2mel", config, {"instrument": "tiny"}, tensors)
    return path, vpath


EVENTS = [(0.05, 0x90, 60, 100), (0.05, 0x90, 64, 90), (0.05, 0x90, 67, 80),    # a chord
          (0.2, 0xB0, 64, 127), (0.3, 0x80, 60, 0), (0.3, 0x80, 64, 0),         # pedal holds two
          (0.41, 0x90, 48, 30), (0.5, 0x80, 67, 0), (0.62, 0xB0, 64, 0),        # pedal up
          (0.7, 0x90, 48, 120), (0.72, 0xE0, 0, 80), (0.9, 0x80, 48, 0)]        # restrike, bend


def play(path, block, record=None, remade=None):
    """``record``: the frames the vocoder is given, in order; ``remade`` (a list): the frames
    made again when a note arrived after them, kept apart from ``record``."""
    gen = load_generator(path)
    if record is not None:
        real = gen.vocoder.synthesize

        def spy(mel, controls, source=None):
            (remade if gen.remaking and remade is not None else record).append(mel[0].T.numpy().copy())
            return real(mel, controls, source)
        gen.vocoder.synthesize = spy
    eng = Engine(EngineConfig(sample_rate=48000, max_block=1024, polyphony=8), gen).prepare()
    if record is not None:
        record.clear()                       # the warm-up's frames
        if remade is not None:
            remade.clear()
    return render_events(eng, EVENTS, 1.0, block=block, tail_s=0.6)[:, 0], eng


@pytest.mark.parametrize("vocoder", ["melgan", "istft-source"])
def test_midi2mel_plays_the_same_at_any_block_size_with_its_declared_latency(tmp_path, vocoder):
    """Also with a vocoder that takes its phases from the notes' harmonic reference (made per
    frame from the voices' running phases, which must not depend on the calls either)."""
    path, _ = tiny_midi2mel(tmp_path, vocoder=vocoder)
    a, eng = play(path, 17)
    b, _ = play(path, 256)
    info = eng.generator.info
    assert info.family == "midi2mel" and info.conditioning == "voices" and info.polyphonic
    assert np.isfinite(a).all() and np.abs(a).max() > 1e-4
    assert np.abs(a - b).max() <= 1e-6
    assert 0 < info.lookahead <= 2 * 64 * 48000 // 22050 + 64       # a frame, the resampler
    assert eng.generator.line.underflows == 0


@pytest.mark.parametrize("vocoder", ["melgan", "istft"])
def test_the_live_frames_are_the_offline_model_on_the_same_notes(tmp_path, vocoder):
    """Streaming equals offline: the frames the engine's voices make are what the model makes
    of the roll computed from the notes (the training definition), frame for frame. Each frame
    is made when it begins, from the notes known then, and its roll is read at its end plus the
    vocoder's delay ``d`` (the iSTFT's hop; none for this MelGAN): equal to the notes' roll ``d``
    later wherever no event falls between the frame's start and its read time, and never showing
    an event before the frame that begins at or after it."""
    path, _ = tiny_midi2mel(tmp_path, vocoder=vocoder)
    frames, remade = [], []
    _, eng = play(path, 100, record=frames, remade=remade)
    live = np.concatenate(frames)
    sr = 48000
    gen = eng.generator
    assert eng.stats.generator_faults == 0 and gen.anchor == 0    # never reset: frame t ends at (t + 1) * hop
    d = gen.vocoder.content_delay / 22050                        # seconds the roll is read ahead
    assert gen.ahead == pytest.approx(d * sr) and gen.info.lookahead == gen.line.delay
    assert d == (64 / 22050 if vocoder == "istft" else 0.0)
    t = lambda s: round(s * sr) / sr                             # noqa: E731 (event samples)
    # the bend at 0.72 moves the restruck 48 by +80/8192*2... only after 0.72: compare before it
    notes = np.array([[t(0.05), t(0.3), 60, 100], [t(0.05), t(0.3), 64, 90], [t(0.05), t(0.5), 67, 80],
                      [t(0.41), t(0.7), 48, 30], [t(0.7), t(0.9), 48, 120]])
    pedal = np.array([[t(0.2), 1], [t(0.62), 0]])
    cfg = MidiToMelConfig(**TINY)
    n = int(0.72 * cfg.sample_rate / cfg.hop)                    # frames ending before the bend
    shifted_notes, shifted_pedal = notes.copy(), pedal.copy()    # the roll d later = notes d earlier
    shifted_notes[:, :2] -= d
    shifted_pedal[:, 0] -= d
    idx, f = roll_pairs(shifted_notes, shifted_pedal, n, cfg.sample_rate, cfg.hop, cfg.tail)
    model = load_generator(path).model
    with torch.no_grad():
        off = model(torch.from_numpy(f), torch.from_numpy(idx), n).numpy()
    assert live.shape[0] > n
    ends = (np.arange(n) + 1) * cfg.hop / cfg.sample_rate
    events = np.concatenate([notes[:, 0], notes[:, 1], pedal[:, 0]])
    starts = ends - cfg.hop / cfg.sample_rate
    clear = np.array([not ((events > s0) & (events < e + d)).any() for s0, e in zip(starts, ends, strict=True)])
    assert clear.sum() > 0.8 * n
    assert np.abs(live[:n][clear] - off[clear]).max() < 1e-5
    assert (live[:n] > np.log(1e-5) + 1).any()                   # notes sound in them
    first = int(np.ceil(t(0.05) * cfg.sample_rate / cfg.hop))    # the first frame beginning after the chord
    assert (live[:first] < np.log(1e-5) + 1e-3).all() and (live[first] > np.log(1e-5) + 1).any()
    # the frame before each onset's first is made again with the new notes in it (its first hop,
    # already played, dropped: midi_to_mel_instrument, Onsets): the chord, the 48, the restruck 48
    assert len(remade) == (3 if vocoder == "istft" else 0)
    assert all((m > np.log(1e-5) + 1).any() for m in remade)


def test_a_midi2mel_without_a_vocoder_or_with_a_mismatched_one_is_refused_clearly(tmp_path):
    from livewave.vocoder_chain import make_chain
    bare, _ = tiny_midi2mel(tmp_path, with_vocoder=False)
    with pytest.raises(CheckpointError, match="livewave chain"):
        load_generator(bare)
    from livewave.melgan import MelGANConfig, MelGANGenerator
    from livewave.vocoder_instrument import MelGANVocoder
    v16 = MelGANVocoder(MelGANGenerator(MelGANConfig(n_mels=16, ngf=4, ratios=(4, 4, 2, 2))), {"n_mels": 16, "hop": 64})
    other = tmp_path / "v16.safetensors"
    config, tensors = v16.checkpoint_parts()
    save_checkpoint(other, "melgan", config, {}, tensors)
    with pytest.raises(CheckpointError, match="mel"):
        make_chain(bare, other, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()
    good = make_chain(bare, tmp_path / "v.safetensors", tmp_path / "good.safetensors")
    assert load_generator(good).info.family == "midi2mel"


# -- data, training, command line ----------------------------------------------------------------
@pytest.fixture(scope="module")
def roll_data(tmp_path_factory):
    from livewave.roll_data import load_roll_dataset, make_roll_dataset
    root = tmp_path_factory.mktemp("roll")
    make_roll_dataset(root / "train", 0, 0.4, sample_rate=22050, seed=1, low=55, high=79, log=lambda *_: None)
    make_roll_dataset(root / "heldout", 0, 0.2, sample_rate=22050, seed=2, low=55, high=79, log=lambda *_: None)
    meta, clips = load_roll_dataset(root / "train")
    assert meta["kind"] == "livewave-roll-data" and meta["pitch_range"] == [55, 79]
    assert all(c["notes"].shape[1] == 4 and c["pedal"].shape[1] == 2 for c in clips)
    return root


def test_training_lowers_the_loss_and_resumes_exactly(roll_data, tmp_path):
    from livewave.midi_to_mel_training import MidiToMelTrainConfig, train_midi2mel
    cfg = dict(batch_frames=256, hidden=32, layers=2, learning_rate=1e-2, device="cpu", checkpoint_every=3)
    whole = train_midi2mel(roll_data / "train", tmp_path / "a.safetensors", MidiToMelTrainConfig(steps=6, **cfg),
                           progress=False)
    train_midi2mel(roll_data / "train", tmp_path / "b.safetensors", MidiToMelTrainConfig(steps=3, **cfg),
                   progress=False)
    train_midi2mel(roll_data / "train", tmp_path / "b.safetensors", MidiToMelTrainConfig(steps=6, **cfg),
                   progress=False)
    from livewave.checkpoint import read_checkpoint
    _, ta = read_checkpoint(tmp_path / "a.safetensors")
    _, tb = read_checkpoint(tmp_path / "b.safetensors")
    assert all(np.array_equal(ta[k], tb[k]) for k in ta)
    long = train_midi2mel(roll_data / "train", tmp_path / "c.safetensors",
                          MidiToMelTrainConfig(steps=300, decay_steps=300, **cfg), heldout=roll_data / "heldout",
                          progress=False)
    q = long["quality"]
    assert long["loss"] < whole["loss"] - 0.5
    assert q["log_mel_l1"]["sounding"] < 0.6 * q["floors"]["mean_frame"]["sounding"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "livewave", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)   # a hang guard: 105 s alone here


def test_the_command_line_trains_chains_measures_and_renders_a_midi2mel(roll_data, tmp_path):
    voc = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    bad = run_cli("train", "midi2mel", "--data", tmp_path, "--out", tmp_path / "x.safetensors")
    assert bad.returncode == 2 and "no dataset" in bad.stderr
    # the tiny vocoder's mel has hop 64 and 20 bands: the model takes them from it
    r = run_cli("train", "midi2mel", "--data", roll_data / "train", "--out", tmp_path / "m.safetensors",
                "--vocoder", voc, "--steps", "20", "--batch-frames", "64", "--hidden", "16", "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    gen = load_generator(tmp_path / "m.safetensors")
    assert gen.info.family == "midi2mel" and gen.mcfg.hop == 64 and gen.mcfg.n_mels == 20
    e = run_cli("eval", tmp_path / "m.safetensors", "--data", roll_data / "heldout", "--write-card")
    assert e.returncode == 0, e.stderr
    md = (tmp_path / "m.md").read_text()
    assert "log-mel L1" in md and "mean frame" in md and (tmp_path / "m.png").stat().st_size > 1000
    assert "closer than the default instrument" in md and (tmp_path / "m-audio.png").stat().st_size > 1000
    assert "## Held notes" in md
    mid = next((roll_data / "heldout").glob("*.mid"))
    w = run_cli("render", mid, "--model", tmp_path / "m.safetensors", "-o", tmp_path / "song.wav", "-q")
    assert w.returncode == 0, w.stderr
    import soundfile as sf
    y, sr = sf.read(str(tmp_path / "song.wav"))
    assert sr == 48000 and np.isfinite(y).all() and np.abs(y).max() > 1e-4


def test_a_midi2mel_checkpoint_whose_config_does_not_match_its_weights_is_refused(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file
    path, _ = tiny_midi2mel(tmp_path)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    config["midi2mel"]["hidden"] = 24
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="do not match the config"):
        load_generator(tmp_path / "bad.safetensors")


def test_torchrun_trains_a_midi2mel_data_parallel(roll_data, tmp_path):
    import os
    from pathlib import Path
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "livewave", "train", "midi2mel",
                        "--data", str(roll_data / "train"), "--out", str(tmp_path / "m.safetensors"), "--steps", "3",
                        "--batch-frames", "64", "--hidden", "16", "--device", "cpu", "-q"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    from livewave.checkpoint import read_checkpoint
    card = read_checkpoint(tmp_path / "m.safetensors")[0]["card"]
    assert card["training"]["processes"] == 2 and card["training"]["steps"] == 3
