"""The sostenuto pedal (CC 66): the notes whose keys are down when it goes down hold until it
lifts; notes played while it is down do not; with the sustain pedal, each holds what it holds."""
import numpy as np
import pytest
import soundfile as sf
from audio_checks import play_events

from livewave.config import EngineConfig
from livewave.engine import Engine

RATE = 48000


def engine() -> Engine:
    return Engine(EngineConfig(sample_rate=RATE, max_block=256)).prepare()


def sounding(eng: Engine, events, until: float) -> set[int]:
    """Play ``events`` [(seconds, status, d1, d2)] up to ``until`` s: the notes still gated
    (held by a key or a pedal) then."""
    for t, st, d1, d2 in events:
        eng.push_event(int(round(t * RATE)), st, d1, d2)
    buf = np.zeros((256, 1), np.float32)
    while eng.sample_time < int(until * RATE):
        eng.render(buf)
    return {int(eng.voices.note_int[v]) for v in range(eng.cond.active.shape[0])
            if eng.cond.active[v] and eng.cond.gate[v]}


def test_the_keys_down_when_it_goes_down_hold_the_rest_do_not():
    eng = engine()
    held = sounding(eng, [(0.0, 0x90, 48, 90), (0.0, 0x90, 55, 90), (0.1, 0xB0, 66, 127),   # chord, then the pedal
                          (0.2, 0x80, 48, 0), (0.2, 0x80, 55, 0),                           # keys up: held
                          (0.3, 0x90, 72, 90), (0.4, 0x80, 72, 0)], 0.5)                    # a melody note: not
    assert held == {48, 55}
    assert sounding(eng, [(0.6, 0xB0, 66, 0)], 0.7) == set()                               # the pedal up: released


def test_a_key_still_down_when_it_lifts_sounds_on_and_the_sustain_pedal_takes_over_what_it_held():
    eng = engine()
    held = sounding(eng, [(0.0, 0x90, 48, 90), (0.0, 0x90, 52, 90), (0.1, 0xB0, 66, 127), (0.2, 0x80, 48, 0),
                          (0.3, 0xB0, 64, 127), (0.4, 0xB0, 66, 0)], 0.5)
    assert held == {48, 52}                    # 52's key is down; 48 now held by the sustain pedal
    assert sounding(eng, [(0.6, 0xB0, 64, 0)], 0.7) == {52}
    eng2 = engine()                            # the sustain pedal up first: the sostenuto still holds
    held = sounding(eng2, [(0.0, 0x90, 60, 90), (0.05, 0xB0, 64, 127), (0.1, 0xB0, 66, 127), (0.2, 0x80, 60, 0),
                           (0.3, 0xB0, 64, 0)], 0.4)
    assert held == {60}
    assert sounding(eng2, [(0.5, 0xB0, 66, 0)], 0.6) == set()


@pytest.mark.parametrize("cc, left", [(123, {40}), (120, set()), (121, {43})])
def test_all_notes_off_respects_it_and_sound_off_and_reset_controllers_do_not(cc, left):
    """40 is latched (its key up), 43 was struck after the pedal went down and its key is down.
    All Notes Off releases 43 and keeps 40; All Sound Off silences both (the pedal stays down,
    as GM has it); Reset All Controllers lifts the pedal, so 40 goes and 43's key keeps it."""
    eng = engine()
    assert sounding(eng, [(0.0, 0x90, 40, 90), (0.1, 0xB0, 66, 127), (0.2, 0x80, 40, 0),
                          (0.25, 0x90, 43, 90), (0.3, 0xB0, cc, 0)], 0.4) == left
    assert eng.channels.sostenuto[0] == (cc != 121)


def test_a_take_begun_with_it_down_replays_sample_for_sample(tmp_path):
    from livewave.offline_render import render_song
    from livewave.smf import read_midi_file
    from livewave.take_recorder import TakeRecorder
    eng = engine()
    play_events(eng, [(0.0, 0xB0, 66, 127)], 0.1, 128)        # down before the take
    rec = TakeRecorder(tmp_path / "take.wav", RATE, tmp_path / "take.mid").start()
    eng.start_take(rec)
    w = play_events(eng, [(0.15, 0x90, 60, 100), (0.3, 0xB0, 66, 0), (0.35, 0xB0, 66, 127), (0.4, 0x80, 60, 0),
                          (0.5, 0x90, 64, 100), (0.55, 0x80, 64, 0), (0.8, 0xB0, 66, 0)], 1.2, 128,
                      stereo=True)
    eng.stop_take()
    rec.finish()
    song = read_midi_file(tmp_path / "take.mid")
    assert (0xB0, 66, 127) == tuple(song.events[0][1:])         # the take opens with the pedal down
    again = render_song(engine(), song, block=64)
    np.testing.assert_array_equal(again[:len(w)], sf.read(str(tmp_path / "take.wav"), dtype="float32")[0])


def test_the_soft_pedal_softens_the_notes_struck_while_it_is_down():
    """CC 67: a note struck with it down gets 0.75 of its velocity (after the velocity curve);
    a note already sounding keeps its own; a take opens with it down when it is."""
    from livewave.channel_state import SOFT_PEDAL
    eng = Engine(EngineConfig(sample_rate=RATE, max_block=256, velocity_curve=2.0)).prepare()
    sounding(eng, [(0.0, 0x90, 60, 100), (0.1, 0xB0, 67, 127), (0.2, 0x90, 64, 100)], 0.3)
    vel = {int(eng.voices.note_int[v]): float(eng.cond.velocity[v]) for v in range(16) if eng.cond.active[v]}
    assert vel[60] == pytest.approx((100 / 127) ** 2) and vel[64] == pytest.approx(SOFT_PEDAL * (100 / 127) ** 2)
    sounding(eng, [(0.3, 0xB0, 67, 0), (0.4, 0x90, 67, 100)], 0.5)
    assert float(eng.cond.velocity[int(eng.voices.note_voice[0, 67])]) == pytest.approx((100 / 127) ** 2)
