"""Training data: phrases and their labels, real fluidsynth renders checked against the sound,
the user's own recordings, and the dataset reader's refusals."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from audio_checks import cents, f0_spectral

from livewave.phrases import BEND_RANGE, generate_clip, gm_name, program_range
from livewave.smf import read_midi_file
from livewave.soundfont_data import DEFAULT_SOUNDFONT, DatasetError, load_dataset

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "JACK_NO_START_SERVER": "1"}
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None or not Path(DEFAULT_SOUNDFONT).is_file(),
                                      reason="fluidsynth and FluidR3_GM.sf2 are needed")


def livewave(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "livewave", *map(str, args)], cwd=ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)


def midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, np.float64) - 69) / 12)


# -- phrases ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_clip():
    return generate_clip(73, 150.0, np.random.default_rng(1))


def test_phrases_are_deterministic_from_the_seed():
    def key(c):
        return [(t, m.bytes()) for t, m in c.events]
    a, b = (generate_clip(40, 30.0, np.random.default_rng(7)) for _ in range(2))
    assert key(a) == key(b)
    assert key(a) != key(generate_clip(40, 30.0, np.random.default_rng(8)))


def test_phrases_cover_the_playing_styles(long_clip):
    lo, hi = program_range(73)
    ev = long_clip.events
    cc = [(t, m.control, m.value) for t, m in ev if m.type == "control_change"]
    setup = [c[1:] for c in cc if c[0] == 0]
    assert setup[:4] == [(101, 0), (100, 0), (6, int(BEND_RANGE)), (38, 0)], "RPN 0 sets the bend range first"
    assert all(v == 0 for _t, c, v in cc if c == 1), "the mod wheel stays at 0"
    assert any(c == 11 and v < 100 for _t, c, v in cc), "expression ramps"
    notes = long_clip.notes
    on, off, pitch, vel = notes.T
    assert np.all(off > on) and np.all(on[1:] >= off[:-1]), "monophonic"
    assert lo <= pitch.min() <= lo + 2 and hi - 2 <= pitch.max() <= hi, "the whole range"
    assert vel.min() <= 30 and vel.max() >= 115 and vel.min() >= 20 and vel.max() <= 127
    gap = on[1:] - off[:-1]
    ioi = on[1:] - on[:-1]
    assert (gap == 0).sum() > 10, "legato: next note-on at the note-off's tick"
    assert ((off - on)[:-1] < 0.5 * ioi).sum() > 10, "staccato"
    assert (gap > 0.3).sum() > 5, "rests"
    bends = np.array([t for t, m in ev if m.type == "pitchwheel"])
    assert (np.diff(bends) == 10).sum() > 200, "vibrato as bend events every 10 ms"


def test_label_timeline_is_exact(long_clip):
    """Replay the events independently; after each tick's last event the timeline must hold
    exactly that state: pitch = last note + bend (held through rests), velocity, sounding."""
    tl = long_clip.timeline
    ev = long_clip.events
    held, last, bend, vel = None, int(long_clip.notes[0, 2]), 0.0, 0
    checked = 0
    for i, (tick, m) in enumerate(ev):
        if m.type == "note_on":
            held = last = m.note
            vel = m.velocity
        elif m.type == "note_off":
            held, vel = None, 0
        elif m.type == "pitchwheel":
            bend = m.pitch / 8192 * BEND_RANGE
        if i + 1 < len(ev) and ev[i + 1][0] == tick:
            continue
        p, v, s, _e = tl.at(tick / 1000)
        assert p == pytest.approx(last + bend, abs=1e-12) and v == vel and bool(s) == (held is not None)
        checked += 1
    assert checked > 1000
    for on, off, pitch, v_note in long_clip.notes:
        p, v, s, _e = tl.at((on + off) / 2)
        assert s and v == v_note and abs(p - pitch) <= BEND_RANGE
    lab = tl.frames(16000, 64, int(150 * 250))
    assert lab["f0_hz"].dtype == np.float32 and np.all(lab["f0_hz"] > 0)
    assert np.all(lab["velocity"][~lab["voiced"]] == 0) and np.all(lab["velocity"][lab["voiced"]] >= 20 / 127)


def test_written_midi_holds_the_same_events(long_clip, tmp_path):
    path = tmp_path / "p.mid"
    long_clip.write(path)
    mf = mido.MidiFile(str(path))
    tick, got = 0, []
    for m in mf.tracks[0]:
        tick += m.time
        if not m.is_meta:
            got.append((tick, m.bytes()))
    assert got == [(t, m.bytes()) for t, m in long_clip.events]
    assert mf.length == pytest.approx(150.0, abs=0.002)
    song = read_midi_file(path)
    assert sum(1 for e in song.events if e[1] & 0xF0 == 0x90 and e[3] > 0) == len(long_clip.notes)


def test_ranges_and_names():
    assert gm_name(40) == "Violin" and gm_name(73) == "Flute"
    assert program_range(40) == (55, 96) and program_range(0) == (48, 84)
    assert program_range(40, low=60) == (60, 96)
    with pytest.raises(ValueError, match="range"):
        program_range(40, low=90, high=80)
    with pytest.raises(ValueError, match="128"):
        gm_name(128)


# -- soundfont datasets -----------------------------------------------------------------------
def made_dataset(tmp_path_factory, name: str, *args) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp(name) / "data"
    r = livewave("data", "soundfont", *args, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r.stdout


@pytest.fixture(scope="module")
def violin(tmp_path_factory):
    return made_dataset(tmp_path_factory, "violin", "--program", 40, "--minutes", 0.7, "--seed", 5)


@pytest.fixture(scope="module")
def flute(tmp_path_factory):
    return made_dataset(tmp_path_factory, "flute", "--program", 73, "--minutes", 0.3, "--rate", 22050)


def check_layout(out: Path, sr: int, program: int, name: str, clips: int):
    meta = json.loads((out / "dataset.json").read_text())
    hop = round(0.004 * sr)
    assert meta["format"] == 1 and meta["kind"] == "livewave-ddsp-data" and meta["source"] == "soundfont"
    assert meta["sample_rate"] == sr and meta["hop"] == hop and meta["frame_seconds"] == 0.004
    assert meta["program"] == program and meta["instrument"] == name
    assert meta["clips"] == [f"clip_{i:04d}" for i in range(clips)]
    lo, hi = meta["pitch_range"]
    assert program_range(program)[0] <= lo < hi <= program_range(program)[1]
    total = 0
    for c in meta["clips"]:
        info = sf.info(str(out / f"{c}.wav"))
        assert info.channels == 1 and info.samplerate == sr and info.subtype == "FLOAT"
        assert info.frames % hop == 0 and 15 * sr < info.frames <= 30 * sr
        total += info.frames
        z = np.load(out / f"{c}.npz")
        frames = info.frames // hop
        for k, dt in (("f0_hz", np.float32), ("loudness_db", np.float32), ("voiced", np.bool_),
                      ("velocity", np.float32)):
            assert z[k].dtype == dt and z[k].shape == (frames,), k
        notes = z["notes"]
        assert notes.ndim == 2 and notes.shape[1] == 4 and len(notes) > 5
        assert np.all(notes[:, 1] > notes[:, 0]) and notes[:, 2].min() >= lo and notes[:, 2].max() <= hi
        assert np.all((notes[:, 3] >= 20) & (notes[:, 3] <= 127))
        assert np.all(z["velocity"][~z["voiced"]] == 0)
        assert len(read_midi_file(out / f"{c}.mid").events) > len(notes)
    assert meta["minutes"] == pytest.approx(total / sr / 60, abs=1e-3)
    return meta


def onsets_from_silence(clips, sr):
    """For notes that start from exact silence: first sound sample minus the labelled onset."""
    lags = []
    for clip in clips:
        x = clip["audio"]
        for on in clip["notes"][:, 0]:
            s = int(round(on * sr))
            if np.all(x[s - int(0.02 * sr):s - 2] == 0):
                lags.append(int(np.flatnonzero(x[s - 2:s + 400] != 0)[0]) - 2)
    return lags


@needs_fluidsynth
def test_violin_dataset_labels_agree_with_the_sound(violin):
    out, stdout = violin
    meta = check_layout(out, 16000, 40, "Violin", clips=2)
    assert "pitch check" in stdout and "Violin" in stdout
    pc = meta["pitch_check"]
    assert pc["frames"] > 2000 and pc["median_abs_cents"] < 5.0 and pc["p95_abs_cents"] < 40.0, pc
    # the measured key tuning is what brings the labels onto the sound
    assert meta["key_tuning"]["pitch_check_untuned"]["median_abs_cents"] > 2 * pc["median_abs_cents"]
    cal = meta["calibration"]
    assert cal["model"] == "loudness_db = a + b * velocity / 127"
    assert cal["velocity_db"][1] > 10.0 and cal["notes"] >= 20 and cal["rms_error_db"] < 6.0, cal
    meta2, clips = load_dataset(out)
    assert meta2 == meta and len(clips) == 2
    sr, hop = 16000, 64
    lags = onsets_from_silence(clips, 16000)
    assert len(lags) >= 3 and all(abs(d) <= 1 for d in lags), lags     # labels sample-exact in time
    peak = max(float(np.abs(c["audio"]).max()) for c in clips)
    # The soundfont's own level (scale 1), so every dataset of an instrument has the same level.
    assert meta["render"]["scale"] == 1.0 and -30.0 < 20 * np.log10(peak) <= -1.0
    for clip in clips:
        assert clip["audio"].dtype == np.float32
        ld, voiced, notes = clip["loudness_db"], clip["voiced"], clip["notes"]
        # rests well after the release: far quieter than the notes
        t = np.arange(len(ld)) * hop / sr
        rest = np.ones(len(ld), bool)
        for on, off, _p, _v in notes:
            rest &= ~((t >= on - 0.05) & (t < off + 0.7))
        assert rest.sum() > 20
        assert np.median(ld[rest]) < np.median(ld[voiced]) - 30.0
    # an independent measurement: the spectral f0 of 80 ms windows inside notes, where the
    # label moves by less than 10 cents, against the label's mean there
    errs = []
    for clip in clips:
        for on, off, _p, _v in clip["notes"]:
            for a in np.arange(on + 0.1, off - 0.13, 0.08):
                k0, k1 = int(a * sr) // hop, int((a + 0.08) * sr) // hop
                fl = clip["f0_hz"][k0:k1]
                if np.ptp(1200 * np.log2(fl)) < 10:
                    errs.append(cents(f0_spectral(clip["audio"][k0 * hop:k1 * hop], sr), np.exp(np.log(fl).mean())))
    errs = np.abs(errs)
    assert len(errs) >= 10 and np.median(errs) < 4.0 and np.percentile(errs, 90) < 10.0, errs


@needs_fluidsynth
def test_flute_at_22050(flute):
    out, _stdout = flute
    meta = check_layout(out, 22050, 73, "Flute", clips=1)
    assert meta["pitch_check"]["median_abs_cents"] < 5.0
    assert meta["calibration"]["velocity_db"][1] > 10.0
    _meta, clips = load_dataset(out)
    assert len(clips[0]["audio"]) == 88 * len(clips[0]["f0_hz"])
    lags = onsets_from_silence(clips, 22050)
    assert len(lags) >= 2 and all(abs(d) <= 1 for d in lags), lags


@needs_fluidsynth
def test_soundfont_errors_are_one_clear_line(tmp_path):
    r = livewave("data", "soundfont", "--program", 40, "--minutes", 0.1, "--out", tmp_path / "a",
                 "--soundfont", tmp_path / "none.sf2")
    assert r.returncode == 2 and "none.sf2" in r.stderr and "Traceback" not in r.stderr
    r = livewave("data", "soundfont", "--program", 40, "--minutes", 0.1, "--out", tmp_path / "b",
                 env={**ENV, "PATH": str(tmp_path)})
    assert r.returncode == 2 and "fluidsynth not found" in r.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.txt").write_text("mine")
    r = livewave("data", "soundfont", "--program", 40, "--minutes", 0.1, "--out", busy)
    assert r.returncode == 2 and "thesis.txt" in r.stderr and (busy / "thesis.txt").exists()
    r = livewave("data", "soundfont", "--program", 40, "--minutes", 0.1, "--out", tmp_path / "c", "--low", 90,
                 "--high", 80)
    assert r.returncode == 2 and "range 90..80" in r.stderr
    r = livewave("data", "soundfont", "--program", 40, "--minutes", 0.1, "--out", tmp_path / "d", "--low", 90)
    assert r.returncode == 2 and "only keys 90..93 of" not in r.stderr and "only keys 90..93 sound" in r.stderr


# -- the user's own recordings ----------------------------------------------------------------
def melody(sr, notes, seconds_each, gap=0.15):
    """Harmonic tones (8 partials) with short fades; returns audio and the true f0 per sample
    (0 in the gaps)."""
    xs, fs = [], []
    for m in notes:
        n, g = int(seconds_each * sr), int(gap * sr)
        t = np.arange(n) / sr
        f = midi_hz(m) * 2 ** (30 * np.sin(2 * np.pi * 5 * t) / 1200)     # with some vibrato
        ph = 2 * np.pi * np.cumsum(f) / sr
        x = sum(0.7 ** h * np.sin((h + 1) * ph) * ((h + 1) * f < 0.45 * sr) for h in range(8))
        env = np.minimum(1.0, np.minimum(t / 0.03, (t[-1] - t) / 0.03))
        xs += [0.2 * x * env, np.zeros(g)]
        fs += [f, np.zeros(g)]
    return np.concatenate(xs), np.concatenate(fs)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    x1, f1 = melody(44100, [50, 55, 62, 67, 74, 79] * 3, 1.8)           # 35 s, stereo 44.1 kHz
    sf.write(str(d / "take1.wav"), np.stack([x1, 0.8 * x1], 1), 44100)
    (d / "more").mkdir()
    x2, f2 = melody(22050, [69, 72, 76], 1.0)
    sf.write(str(d / "more" / "take2.flac"), x2, 22050)
    sf.write(str(d / "silent.wav"), np.zeros(30000), 44100)
    (d / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage")
    (d / "notes.txt").write_text("not audio")
    return d, {"take1.wav": (f1, 44100), "more/take2.flac": (f2, 22050)}


def test_audio_dataset_keeps_the_good_and_names_the_bad(recordings, tmp_path):
    d, truth = recordings
    out = tmp_path / "data"
    r = livewave("data", "audio", d, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "broken.wav: unreadable" in r.stdout and "silent.wav: silent" in r.stdout
    meta, clips = load_dataset(out)
    assert meta["source"] == "audio" and meta["sample_rate"] == 16000 and meta["hop"] == 64
    assert sorted(s["file"] for s in meta["skipped"]) == ["broken.wav", "silent.wav"]
    assert list(meta["sources"].values()) == ["take1.wav", "take1.wav", "more/take2.flac"]   # 35 s: two clips
    p = meta["voiced_loudness_db"]
    assert p["p5"] < p["p50"] < p["p95"] < 0
    sr, hop = 16000, 64
    by_source = {}
    for name, clip in zip(meta["clips"], clips, strict=True):
        assert len(clip["audio"]) % hop == 0 and len(clip["audio"]) <= 30 * sr
        assert "velocity" not in clip and "notes" not in clip
        assert np.all(clip["f0_hz"] > 0)
        by_source.setdefault(meta["sources"][name], []).append(clip)
    for src, (f_true, rate) in truth.items():
        parts = by_source[src]
        f0 = np.concatenate([c["f0_hz"] for c in parts])
        voiced = np.concatenate([c["voiced"] for c in parts])
        ft = f_true[(np.arange(len(f0)) * hop * rate / sr).astype(int).clip(0, len(f_true) - 1)]
        # frames well inside a tone (5 frames from its ends) must be voiced and right
        inside = np.convolve(ft > 0, np.ones(11), "same") == 11
        assert voiced[inside].mean() > 0.98
        err = np.abs(cents(f0[inside], ft[inside]))
        assert np.median(err) < 3.0 and err.max() < 15.0, (src, np.median(err), err.max())
        assert voiced[ft == 0].mean() < 0.2                       # the gaps (YIN's window overlaps the tones)


def test_audio_dataset_with_nothing_usable_fails_clearly(recordings, tmp_path):
    d, _ = recordings
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(d / "silent.wav", bad)
    shutil.copy(d / "broken.wav", bad)
    r = livewave("data", "audio", bad, "--out", tmp_path / "data")
    assert r.returncode == 2 and "no usable recordings" in r.stderr
    assert "silent.wav" in r.stderr and "broken.wav" in r.stderr and "Traceback" not in r.stderr
    r = livewave("data", "audio", tmp_path / "nothing-here", "--out", tmp_path / "data")
    assert r.returncode == 2 and "nothing-here" in r.stderr


def test_load_dataset_refuses_damaged_data(recordings, tmp_path):
    d, _ = recordings
    good = tmp_path / "good"
    sub = d / "more"
    from livewave.audio_data import make_audio_dataset
    make_audio_dataset(sub, good, log=lambda s: None)
    load_dataset(good)

    def damaged(name, change):
        bad = tmp_path / name
        shutil.copytree(good, bad)
        change(bad)
        return bad

    def future(p):
        meta = json.loads((p / "dataset.json").read_text())
        meta["format"] = 2
        (p / "dataset.json").write_text(json.dumps(meta))

    with pytest.raises(DatasetError, match="format 2"):
        load_dataset(damaged("future", future))
    with pytest.raises(DatasetError, match=r"clip_0000\.wav.*multiple of the hop"):
        load_dataset(damaged("cut", lambda p: sf.write(str(p / "clip_0000.wav"), np.zeros(1000, np.float32),
                                                       16000, subtype="FLOAT")))
    def drop_loudness(p):
        z = dict(np.load(p / "clip_0000.npz"))
        del z["loudness_db"]
        np.savez(p / "clip_0000.npz", **z)

    def short_f0(p):
        z = dict(np.load(p / "clip_0000.npz"))
        z["f0_hz"] = z["f0_hz"][:-1]
        np.savez(p / "clip_0000.npz", **z)

    with pytest.raises(DatasetError, match=r"clip_0000\.npz: no 'loudness_db'"):
        load_dataset(damaged("nokey", drop_loudness))
    with pytest.raises(DatasetError, match=r"clip_0000\.npz: 'f0_hz' is float32 \[\d+\], expected"):
        load_dataset(damaged("short", short_f0))
    with pytest.raises(DatasetError, match="no dataset.json"):
        load_dataset(tmp_path)
