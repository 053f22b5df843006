"""Concert pitch and transpose: every family sounds A4 at the tuning asked (415 to 466 Hz and
between), held notes follow a new tuning, a transpose moves the next notes only (a held note
keeps its pitch and its note-off), a key transposed off the keyboard does not sound, and a take
replays at the pitch it was played at."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from audio_checks import cents, f0_spectral, play_events

from livewave.config import ConfigError, EngineConfig
from livewave.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
RATE = 48000


def engine(gen=None, **cfg) -> Engine:
    return Engine(EngineConfig(sample_rate=RATE, max_block=256, **cfg), gen).prepare()




def pitch(x: np.ndarray) -> float:
    return f0_spectral(x, RATE)


@pytest.mark.parametrize("a4", [415.0, 432.0, 442.0, 466.0])
def test_a4_sounds_at_the_tuning_asked(a4):
    y = play_events(engine(tuning_hz=a4), [(0.0, 0x90, 69, 100)], 1.0)
    assert abs(cents(pitch(y[RATE // 2:]), a4)) < 2.0


@pytest.mark.parametrize("model", ["violin", "piano-midi2mel"])
def test_trained_models_follow_the_tuning_too(model):
    from livewave.checkpoint import load_generator
    y = play_events(engine(load_generator(ROOT / "models" / f"{model}.safetensors"), tuning_hz=442.0),
             [(0.0, 0x90, 69, 100)], 1.5)
    assert abs(cents(pitch(y[RATE // 2:RATE + RATE // 2]), 442.0)) < 5.0


def test_a_held_note_follows_a_new_tuning_and_a_bend_adds_to_it():
    eng = engine()
    before = play_events(eng, [(0.0, 0x90, 69, 100)], 0.6)
    assert eng.set_tuning(446.0) == 446.0
    after = play_events(eng, [], 0.6)
    bent = play_events(eng, [(0.0, 0xE0, 0, 96)], 0.6)               # half-way up a 2-semitone range: +1
    assert abs(cents(pitch(before[RATE // 5:]), 440.0)) < 2.0
    assert abs(cents(pitch(after[RATE // 5:]), 446.0)) < 2.0
    assert abs(cents(pitch(bent[RATE // 5:]), 446.0 * 2 ** (1 / 12))) < 2.0
    assert eng.set_tuning(1000.0) == 480.0 and eng.set_tuning(float("nan")) == 480.0   # clamped; NaN ignored


def test_a_transpose_moves_the_next_notes_only_and_never_strands_a_note_off():
    eng = engine(transpose=2)
    a = play_events(eng, [(0.0, 0x90, 69, 100)], 0.6)
    assert abs(cents(pitch(a[RATE // 5:]), 440.0 * 2 ** (2 / 12))) < 2.0      # key A4 sounds B4
    assert eng.set_transpose(-12) == -12
    held = play_events(eng, [], 0.4)
    assert abs(cents(pitch(held[RATE // 10:]), 440.0 * 2 ** (2 / 12))) < 2.0  # the held note keeps its pitch
    play_events(eng, [(0.0, 0x80, 69, 0)], 0.6)                                     # its note-off still finds it
    assert eng.voices.active_count == 0
    b = play_events(eng, [(0.0, 0x90, 69, 100)], 0.6)
    assert abs(cents(pitch(b[RATE // 5:]), 220.0)) < 2.0
    assert eng.set_transpose(99) == 36 and eng.set_transpose(2.6) == 3


def test_a_key_transposed_off_the_keyboard_does_not_sound():
    eng = engine(transpose=5)
    y = play_events(eng, [(0.0, 0x90, 125, 100), (0.2, 0x80, 125, 0)], 0.5)
    assert np.abs(y).max() == 0.0 and eng.channels.off_keyboard == 1 and eng.voices.active_count == 0


@pytest.mark.parametrize("bad, words", [({"tuning_hz": 300.0}, "tuning"), ({"transpose": 2.5}, "transpose"),
                                        ({"transpose": 40}, "transpose")])
def test_out_of_range_settings_are_refused(bad, words):
    with pytest.raises(ConfigError, match=words):
        EngineConfig(**bad).validate()


def test_a_take_replays_at_the_pitch_it_was_played_at(tmp_path):
    import soundfile as sf

    from livewave.smf import read_midi_file
    from livewave.take_recorder import TakeRecorder
    eng = engine(tuning_hz=415.0, transpose=-2)
    rec = TakeRecorder(tmp_path / "t.wav", RATE, tmp_path / "t.mid").start()
    eng.start_take(rec)
    y = play_events(eng, [(0.05, 0x90, 69, 100), (0.6, 0x80, 69, 0)], 1.2, 100)
    eng.stop_take()
    rec.finish()
    assert read_midi_file(tmp_path / "t.mid").take_tuning == (415.0, -2)
    assert abs(cents(pitch(y[RATE // 5:RATE // 2]), 415.0 * 2 ** (-2 / 12))) < 2.0
    r = subprocess.run([sys.executable, "-m", "livewave", "render", str(tmp_path / "t.mid"), "-o",
                        str(tmp_path / "again.wav"), "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    again, _ = sf.read(str(tmp_path / "again.wav"), dtype="float32")
    np.testing.assert_array_equal(again[:y.size, 0], y)


def test_a_new_prepare_keeps_the_pitch_set_live():
    eng = Engine(EngineConfig(sample_rate=RATE, max_block=256))
    eng.set_transpose(-12)                              # before the engine is prepared, too
    eng.prepare()
    eng.set_tuning(442.0)
    eng.prepare(sample_rate=44100)                      # as a device change does
    y = play_events(eng, [(0.0, 0x90, 81, 100)], 1.0)
    assert abs(cents(f0_spectral(y[44100 // 2:], 44100), 442.0)) < 2.0
