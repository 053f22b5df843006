"""The velocity curve (``EngineConfig.velocity_curve``): a note's velocity becomes (v / 127) ** x
for every family, live from the next note on, kept in a take and replayed with it."""
import numpy as np
import pytest
from audio_checks import play_events, replayed_by_render

from livewave.config import ConfigError, EngineConfig, clamp_velocity_curve
from livewave.engine import Engine

RATE = 48000


def engine(**kw) -> Engine:
    return Engine(EngineConfig(sample_rate=RATE, max_block=256, **kw)).prepare()


def struck(eng: Engine, velocity: int, note: int = 60) -> float:
    eng.push_event(eng.sample_time, 0x90, note, velocity)
    eng.render(np.zeros((64, 1), np.float32))
    v = [i for i in range(eng.cond.active.shape[0]) if eng.cond.active[i] and eng.voices.note_int[i] == note]
    return float(eng.cond.velocity[v[-1]])


@pytest.mark.parametrize("curve", [0.5, 1.0, 2.0, 3.7])
def test_a_note_gets_its_velocity_through_the_curve(curve):
    eng = engine(velocity_curve=curve)
    for i, vel in enumerate((1, 40, 64, 100, 127)):
        assert struck(eng, vel, 40 + i) == pytest.approx((vel / 127) ** curve, rel=1e-12)


def test_a_light_touch_plays_louder_under_one_and_softer_over_one():
    def level(curve):
        y = play_events(engine(velocity_curve=curve), [(0.0, 0x90, 60, 50), (0.4, 0x80, 60, 0)], 0.4, 256)
        return float(np.sqrt(np.mean(y ** 2)))
    soft, linear, hard = level(0.5), level(1.0), level(2.0)
    assert soft > 1.5 * linear > 2.25 * hard


def test_a_new_curve_plays_from_the_next_note_and_held_notes_keep_theirs():
    eng = engine()
    assert struck(eng, 64, 60) == pytest.approx(64 / 127)
    assert eng.set_velocity_curve(2.0) == 2.0
    assert struck(eng, 64, 62) == pytest.approx((64 / 127) ** 2)
    held = [i for i in range(eng.cond.active.shape[0]) if eng.cond.active[i] and eng.voices.note_int[i] == 60]
    assert float(eng.cond.velocity[held[0]]) == pytest.approx(64 / 127)


def test_out_of_range_is_clamped_live_and_refused_in_a_config():
    assert clamp_velocity_curve(float("nan")) == 1.0
    assert clamp_velocity_curve(100) == 4.0 and clamp_velocity_curve(0) == 0.25
    eng = engine()
    assert eng.set_velocity_curve(-3) == 0.25 and eng.set_velocity_curve(float("inf")) == 4.0
    with pytest.raises(ConfigError, match="velocity curve"):
        EngineConfig(velocity_curve=5.0).validate()


def test_a_take_replays_with_the_curve_it_was_played_with(tmp_path):
    from livewave.smf import read_midi_file
    from livewave.take_recorder import TakeRecorder
    eng = engine(velocity_curve=0.6)
    rec = TakeRecorder(tmp_path / "take.wav", RATE, tmp_path / "take.mid").start()
    eng.start_take(rec)
    y = play_events(eng, [(0.05, 0x90, 60, 40), (0.3, 0x80, 60, 0), (0.35, 0x90, 67, 90), (0.6, 0x80, 67, 0)], 0.9, 128,
                    stereo=True)
    eng.stop_take()
    rec.finish()
    song = read_midi_file(tmp_path / "take.mid")
    assert song.take_velocity_curve == 0.6
    assert [m[2] for _, *m in song.events if m[0] == 0x90] == [40, 90]            # the keys as played
    w = replayed_by_render(tmp_path, RATE, y)
    plain = engine()                          # without it, the same MIDI is another performance
    z = play_events(plain, [(t, *m) for t, *m in song.events], 0.9, 128)
    assert np.abs(z - w[:, 0]).max() > 1e-3
