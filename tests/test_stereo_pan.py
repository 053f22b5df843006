"""The pan (``stereo_pan``): CC 10 and ``set_pan`` move the dry mix between the speakers, with
equal power, no zipper noise, the reverb left around the centre, and a take that replays it."""
import math

import numpy as np
import pytest
from audio_checks import ABUSIVE, abused_peak, play_events, render_growth

from livewave.config import ConfigError, EngineConfig, pan_from_cc, pan_to_cc, pan_value
from livewave.engine import Engine
from livewave.stereo_pan import pan_gains

RATE = 48000
NOTE = [(0.02, 0x90, 57, 100), (0.9, 0x80, 57, 0)]


def engine(**kw) -> Engine:
    return Engine(EngineConfig(sample_rate=RATE, max_block=256, **kw)).prepare()


def held(y: np.ndarray) -> np.ndarray:
    return y[int(0.2 * RATE):int(0.8 * RATE)].astype(np.float64)


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_the_law_is_equal_power_with_the_centre_at_unity_and_lives_on_cc10s_grid():
    assert pan_gains(0.0) == (1.0, 1.0)                      # exactly: the centre costs nothing
    eng = engine()
    play_events(eng, [(0.0, 0xB0, 10, 0), (0.05, 0xB0, 10, 64)], 0.4, stereo=True)
    assert tuple(eng._pan_state) == (1.0, 1.0)              # back at the centre, settled there
    assert pan_gains(-1.0) == pytest.approx((math.sqrt(2.0), 0.0), abs=1e-12)
    for p in np.linspace(-1, 1, 21):
        gl, gr = pan_gains(p)
        assert gl * gl + gr * gr == pytest.approx(2.0)        # the centre's power everywhere
    assert pan_from_cc(0) == pan_from_cc(1) == -1.0 and pan_from_cc(64) == 0.0 and pan_from_cc(127) == 1.0
    assert all(pan_from_cc(pan_to_cc(pan_from_cc(v))) == pan_from_cc(v) for v in range(128))
    assert pan_value(float("nan")) == 0.0 and pan_value(-7.0) == -1.0 and pan_value(0.5) == 32 / 63
    with pytest.raises(ConfigError, match="pan"):
        EngineConfig(pan=1.5).validate()


@pytest.mark.parametrize("cc, left, right", [(0, math.sqrt(2.0), 0.0), (127, 0.0, math.sqrt(2.0)),
                                             (32, None, None)])
def test_cc10_places_the_dry_sound_and_the_centre_is_what_it_was(cc, left, right):
    """Reverb off: each side is the centred output times its gain (the limiter is not reached
    by one note), exactly silent on the far side at a hard pan; the centre is untouched."""
    centre = play_events(engine(), NOTE, 1.0, stereo=True)
    np.testing.assert_array_equal(centre[:, 0], centre[:, 1])
    eng = engine()
    y = play_events(eng, [(0.0, 0xB0, 10, cc), *NOTE], 1.0, stereo=True)
    gl, gr = pan_gains(pan_from_cc(cc))
    if left is not None:
        assert (gl, gr) == pytest.approx((left, right), abs=1e-12)
    c = held(centre[:, 0])
    assert rms(c) > 0.01 and np.abs(c).max() < 0.5
    np.testing.assert_allclose(held(y[:, 0]), gl * c, atol=2e-6)
    np.testing.assert_allclose(held(y[:, 1]), gr * c, atol=2e-6)
    power = (rms(held(y[:, 0])) ** 2 + rms(held(y[:, 1])) ** 2) / (2 * rms(c) ** 2)
    assert power == pytest.approx(1.0, abs=1e-3)
    assert eng.set_pan(eng.pan[0]) == pan_from_cc(cc)


def test_a_mono_device_is_not_panned():
    a = play_events(Engine(EngineConfig(sample_rate=RATE, channels=1)).prepare(), NOTE, 1.0)
    eng = Engine(EngineConfig(sample_rate=RATE, channels=1, pan=-1.0)).prepare()
    np.testing.assert_array_equal(play_events(eng, NOTE, 1.0), a)


def test_a_pan_swept_while_a_note_holds_glides_without_a_step():
    """CC 10 from 0 to 127 and back, one step every 2 ms, and set_pan jumping side to side
    every 20 ms: no sample-to-sample change on either side larger than the centred note's
    own (a step in the gain would be a click)."""
    centre = play_events(engine(), [(0.0, 0x90, 45, 100)], 1.5, block=64, stereo=True)
    own = np.abs(np.diff(centre[int(0.1 * RATE):, 0])).max()
    eng = engine()
    sweep = [(0.1 + 0.002 * k, 0xB0, 10, k) for k in range(128)]
    sweep += [(0.4 + 0.002 * k, 0xB0, 10, 127 - k) for k in range(128)]
    y = play_events(eng, [(0.0, 0x90, 45, 100), *sweep], 0.8, block=64, stereo=True)
    for k in range(20):
        eng.set_pan(-1.0 if k % 2 else 1.0)
        y = np.concatenate([y, play_events(eng, [], 0.02, block=64, stereo=True)])
    jumps = np.abs(np.diff(y[int(0.1 * RATE):], axis=0)).max(axis=0)
    assert np.isfinite(y).all()
    assert (jumps < 1.5 * own).all(), (jumps, own)


def test_the_reverb_stays_around_the_centre_when_the_dry_sound_is_panned():
    """Hard left, send up: the room is fed as unpanned and its two tails stay where they were;
    only the dry note moved. So the right side is the centred output less the dry note, the
    left the centred output plus (sqrt 2 - 1) of it, and the tail after the note is unchanged."""
    kw = dict(reverb_send=0.5, reverb_decay_s=1.5)
    centre = play_events(engine(**kw), NOTE, 2.0, stereo=True).astype(np.float64)
    dry = play_events(engine(), NOTE, 2.0, stereo=True).astype(np.float64)
    y = play_events(engine(pan=-1.0, **kw), NOTE, 2.0, stereo=True)
    np.testing.assert_allclose(y[:, 1], centre[:, 1] - dry[:, 1], atol=3e-6)
    np.testing.assert_allclose(y[:, 0], centre[:, 0] + (math.sqrt(2.0) - 1.0) * dry[:, 0], atol=3e-6)
    tail = slice(int(1.3 * RATE), int(2.0 * RATE))
    np.testing.assert_allclose(y[tail], centre[tail], atol=1e-9)
    assert rms(y[tail, 1]) > 1e-3 and rms(held(dry[:, 0])) > 0.01


def test_the_pan_persists_across_prepare_and_a_binding_takes_cc10_first():
    eng = engine()
    eng.push_event(0, 0xB0, 10, 20)
    eng.render(np.zeros((64, 2), np.float32))
    eng.prepare(sample_rate=44100)
    assert eng.pan[0] == pan_from_cc(20)
    eng2 = engine()
    eng2.bind_cc(eng2.generator.info.controls[0].name, 0, 10)
    play_events(eng2, [(0.0, 0xB0, 10, 0)], 0.05)
    assert eng2.pan[0] == 0.0


def test_a_take_replays_its_pan_exactly(tmp_path):
    """Where the pan began is in the take's marker, and each move is CC 10 in its MIDI (from a
    keyboard, or from set_pan: the app's knob), so ``livewave render TAKE.mid`` gives the take
    back sample for sample."""
    from audio_checks import replayed_by_render

    from livewave.smf import read_midi_file
    from livewave.take_recorder import TakeRecorder
    eng = engine(pan=0.5)
    rec = TakeRecorder(tmp_path / "take.wav", RATE, tmp_path / "take.mid").start()
    eng.start_take(rec)
    y = play_events(eng, [(0.05, 0x90, 60, 100), (0.3, 0xB0, 10, 5), (0.5, 0x80, 60, 0)], 0.6, 128, stereo=True)
    eng.set_pan(-0.25)
    y = np.concatenate([y, play_events(eng, [(0.05, 0x90, 64, 100), (0.3, 0x80, 64, 0)], 0.8, 128, stereo=True)])
    eng.stop_take()
    rec.finish()
    song = read_midi_file(tmp_path / "take.mid")
    pans = [(round(t * RATE), m[2]) for t, *m in song.events if m[0] == 0xB0 and m[1] == 10]
    assert song.take_pan == pan_value(0.5)                    # where it began is in the take's marker
    assert pans == [(round(0.3 * RATE), 5), (round(0.6 * RATE), pan_to_cc(-0.25))]
    replayed_by_render(tmp_path, RATE, y)


def test_panning_allocates_nothing_on_the_render_side():
    grown = render_growth(engine(pan=-0.3), 10, 100, ("pan", "engine.py"))
    assert sum(s.size_diff for s in grown) < 1024, grown


@pytest.mark.torture
def test_the_pan_abused_ten_times_a_sub_block_never_breaks_the_output():
    """#6 item 3 for the pan: NaN, +-Inf and out-of-range values (clamped) and CC 10 at every
    value, 10 times per 32-sample sub-block while notes play: nothing non-finite, never above
    the ceiling, and the pan always on its grid."""
    eng = Engine(EngineConfig(sample_rate=RATE, max_block=32, reverb_send=0.3)).prepare()
    grid = {pan_from_cc(v) for v in range(128)}

    def set_one(rng, j):
        if j % 2:
            eng.push_event(eng.sample_time + 3 * j, 0xB0, 10, int(rng.integers(0, 128)))
        else:
            assert eng.set_pan(ABUSIVE[int(rng.integers(len(ABUSIVE)))]) in grid
    assert 0.05 < abused_peak(eng, set_one) <= eng.post.ceiling + 1e-6
