"""The command line, run as a user runs it: real processes, real files, real errors."""
import os
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
from audio_checks import cents, f0_spectral

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "JACK_NO_START_SERVER": "1"}


def livewave(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "livewave", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def write_song(path: Path) -> None:
    """A at 120 bpm for one beat, then a tempo change to 60 bpm and E for one beat."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    t0 = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0),
                         mido.MetaMessage("set_tempo", tempo=1000000, time=480)])
    t1 = mido.MidiTrack([mido.Message("note_on", note=69, velocity=100, time=0),
                         mido.Message("note_off", note=69, velocity=0, time=480),
                         mido.Message("note_on", channel=3, note=76, velocity=100, time=0),
                         mido.Message("note_off", channel=3, note=76, velocity=0, time=480)])
    mid.tracks += [t0, t1]
    mid.save(str(path))


def test_render_follows_tempo_changes_and_all_channels(tmp_path):
    song = tmp_path / "song.mid"
    write_song(song)
    out = tmp_path / "song.wav"
    r = livewave("render", song, "-o", out, "--rate", 44100, "--block", 100)
    assert r.returncode == 0, r.stderr
    assert "x real time" in r.stdout
    x, sr = sf.read(out)
    assert sr == 44100 and x.ndim == 2
    x = x[:, 0]
    # first note 0..0.5 s (A4), second 0.5..1.5 s (E5, channel 4, after the tempo change)
    assert abs(cents(f0_spectral(x[int(0.1 * sr):int(0.45 * sr)], sr), 440.0)) < 5
    assert abs(cents(f0_spectral(x[int(0.7 * sr):int(1.4 * sr)], sr), 440 * 2 ** (7 / 12))) < 5


def test_render_identical_across_block_sizes(tmp_path):
    song = tmp_path / "song.mid"
    write_song(song)
    outs = []
    for b in (17, 4096):
        out = tmp_path / f"b{b}.wav"
        assert livewave("render", song, "-o", out, "--block", b, "-q").returncode == 0
        outs.append(sf.read(out)[0])
    assert outs[0].shape == outs[1].shape
    assert np.abs(outs[0] - outs[1]).max() <= 1e-6


def test_bad_midi_files_give_a_clear_error(tmp_path):
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    r = livewave("render", junk, "-o", tmp_path / "x.wav")
    assert r.returncode == 2 and "junk.mid" in r.stderr and "Traceback" not in r.stderr
    good = tmp_path / "good.mid"
    write_song(good)
    cut = tmp_path / "cut.mid"
    cut.write_bytes(good.read_bytes()[:-9])
    r = livewave("render", cut, "-o", tmp_path / "x.wav")
    assert r.returncode == 2 and "truncated" in r.stderr and "Traceback" not in r.stderr
    r = livewave("render", tmp_path / "missing.mid", "-o", tmp_path / "x.wav")
    assert r.returncode == 2 and "missing.mid" in r.stderr


def test_bad_settings_give_a_clear_error(tmp_path):
    good = tmp_path / "good.mid"
    write_song(good)
    r = livewave("render", good, "-o", tmp_path / "x.wav", "--rate", 8000)
    assert r.returncode == 2 and "8000" in r.stderr and "22050" in r.stderr
    r = livewave("render", good, "-o", tmp_path / "x.wav", "--block", 100000)
    assert r.returncode == 2 and "block size" in r.stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    r = livewave("render", good, "-o", tmp_path / "x.wav", "--model", bad)
    assert r.returncode == 2 and "bad.safetensors" in r.stderr and "Traceback" not in r.stderr


def test_main_job_without_audio_device_renders_the_demo(tmp_path):
    env = {**ENV, "JACK_NO_START_SERVER": "1"}
    # With no JACK server and no sound card PortAudio sees no output device.
    if subprocess.run(["pgrep", "-x", "jackd"], capture_output=True).returncode == 0:
        import pytest
        pytest.skip("a JACK server is running: the main job would play live")
    out = tmp_path / "demo.wav"
    r = subprocess.run([sys.executable, "-m", "livewave", "-o", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "rendering the shipped demo" in r.stdout
    x, sr = sf.read(out)
    assert x.shape[0] > 20 * sr and np.abs(x).max() > 0.05


def test_play_isolate_passes_every_option_to_the_engine_process():
    """``play --isolate`` hands its options to the engine process as settings that
    ``check_settings`` takes, and a setting it refuses is a clear error before anything starts."""
    from pytest import approx

    from livewave.cli import build_parser
    from livewave.engine_commands import check_settings
    from livewave.supervised_play import settings_from_args
    args = build_parser().parse_args(["play", "--isolate", "--audio", "system", "--midi", "none", "--rate", "44100",
                                      "--placement", "rtmixer", "--ahead", "3", "--tuning", "442", "--transpose", "-2",
                                      "--reverb", "0.3", "--reverb-decay", "4", "--channels", "1-4", "--gain", "-6"])
    s = check_settings(settings_from_args(args, 128))
    assert (s["rate"], s["block"], s["placement"], s["ahead"], s["tuning"], s["transpose"]) == (44100, 128, "rtmixer",
                                                                                              3, 442.0, -2)
    assert s["reverb"]["send"] == approx(0.3, abs=1 / 127) and s["reverb"]["decay_s"] == 4.0
    assert len(s["reverb"]) == 2 and s["channels"] == "1-4" and s["gain"] == -6.0
    assert s["velocity_curve"] == 1.0 and s["model"] is None and s["midi"] == "none"
    r = livewave("play", "--isolate", "--tuning", "900", "--duration", "1", timeout=120)
    assert r.returncode == 2 and "tuning" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_play_refuses_a_program_list_with_a_missing_model_before_opening_anything(tmp_path):
    r = livewave("play", "--programs", f"builtin,{tmp_path / 'nope.safetensors'}", "--duration", "1", timeout=120)
    assert r.returncode == 2 and "--programs: no model file" in r.stderr + r.stdout and "nope" in r.stderr + r.stdout
