"""The reverb (livewave/reverb.py) and its place in the engine: measured decay times, level,
stability, the bypass, block-size independence, CC 91, panic, takes and the settings' edges."""
from __future__ import annotations

import numpy as np
import pytest
from audio_checks import ABUSIVE, abused_peak, render_growth

from livewave.config import ConfigError, EngineConfig
from livewave.engine import Engine
from livewave.reverb import Reverb, line_lengths


def impulse_response(sr: int, seconds: float, **room) -> np.ndarray:
    r = Reverb(sr, send=1.0, **room)
    r.reset()
    x = np.zeros(int(sr * seconds), np.float32)
    x[0] = 1.0
    r.process(x, x.size)
    wet = x.astype(np.float64)
    wet[0] -= 1.0
    return wet


def band(x: np.ndarray, sr: int, lo: float, hi: float) -> np.ndarray:
    """``x`` through a 4th-order Butterworth band-pass of lo..hi Hz (an octave-band filter's kind:
    a brick wall's ringing would fill the decay's floor)."""
    from scipy.signal import butter, sosfilt
    return sosfilt(butter(4, [lo, hi], "bandpass", fs=sr, output="sos"), x)


def t30(x: np.ndarray, sr: int) -> float:
    """Decay time to -60 dB from the -5..-35 dB slope of the Schroeder energy decay curve."""
    e = np.cumsum(x[::-1] ** 2)[::-1]
    edc = 10.0 * np.log10(e / e[0] + 1e-300)
    i5, i35 = int(np.argmax(edc < -5.0)), int(np.argmax(edc < -35.0))
    t = np.arange(x.size) / sr
    slope = np.polyfit(t[i5:i35], edc[i5:i35], 1)[0]
    return -60.0 / slope


LOW = (200.0, 4000.0)       # where the decay knob's time is defined (the top octave decays faster: module docstring)


@pytest.mark.parametrize("sr", [22050, 48000, 192000])
@pytest.mark.parametrize("decay", [0.4, 2.0, 8.0])
def test_the_decay_time_is_the_one_set(sr, decay):
    ir = impulse_response(sr, decay * 1.2, decay_s=decay, damping=1.0, predelay_ms=0.0)
    assert np.all(np.isfinite(ir))
    assert t30(band(ir, sr, *LOW), sr) == pytest.approx(decay, rel=0.05)


def test_damping_shortens_the_top_and_leaves_the_bass():
    sr, decay, damping = 48000, 3.0, 0.3
    ir = impulse_response(sr, 4.0, decay_s=decay, damping=damping, predelay_ms=0.0)
    low, high = t30(band(ir, sr, 100, 400), sr), t30(band(ir, sr, 8000, 12000), sr)
    undamped = t30(band(impulse_response(sr, 4.0, decay_s=decay, damping=1.0), sr, 8000, 12000), sr)
    assert low == pytest.approx(decay, rel=0.1)
    assert high < 0.6 * low and high < 0.6 * undamped


@pytest.mark.parametrize("decay", [0.3, 1.0, 4.0, 12.0])
def test_the_level_does_not_follow_the_decay(decay):
    """Below 4 kHz the impulse response carries about the impulse's own energy at any decay."""
    sr = 48000
    ir = impulse_response(sr, decay * 1.5, decay_s=decay, damping=1.0)
    pulse = np.zeros_like(ir)
    pulse[0] = 1.0
    assert 0.8 < (band(ir, sr, *LOW) ** 2).sum() / (band(pulse, sr, *LOW) ** 2).sum() < 1.4


def test_the_lines_swing_so_a_long_tail_has_no_ringing_modes_yet_keeps_the_pitch():
    """The slow swing of the lines' delays (module docstring) breaks up the network's modes in a
    long tail (unswung, the spectrum of the late tail is discrete lines: its normalised fourth
    moment was 7.2 at an 8 s decay, against 2.0 for noise; swung, 3.2), and a held note's tail
    stays at its pitch (energy within 1 Hz of a 440 Hz tone's, 1.5 to 3.5 s after it stopped:
    0.87 unswung, 0.65 swung; an orthogonal rotation of the feedback matrix tried instead
    spread it to 0.04)."""
    sr = 48000
    ir = impulse_response(sr, 5.0, decay_s=8.0, damping=0.7, predelay_ms=0.0)
    w = ir[int(2.4 * sr):int(4.4 * sr)] * 10 ** (3 * np.arange(2 * sr) / sr / 8.0)   # its decay taken out
    spec = np.abs(np.fft.rfft(w * np.hanning(w.size)))
    f = np.fft.rfftfreq(w.size, 1 / sr)
    s = spec[(f > 200) & (f < 2000)]
    assert np.mean(s ** 4) / np.mean(s ** 2) ** 2 < 4.5
    r = Reverb(sr, send=1.0, decay_s=4.0, damping=0.7, predelay_ms=0.0)
    r.reset()
    x = np.zeros(sr * 4, np.float32)
    x[:sr] = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(sr) / sr)
    y = x.copy()
    r.process(y, y.size)
    tail = (y - x).astype(np.float64)[int(1.5 * sr):int(3.5 * sr)]
    spec = np.abs(np.fft.rfft(tail * np.hanning(tail.size), 8 * tail.size)) ** 2
    f = np.fft.rfftfreq(8 * tail.size, 1 / sr)
    assert spec[np.abs(f - 440) < 1].sum() / spec[np.abs(f - 440) < 30].sum() > 0.5


def test_the_first_echoes_come_after_the_pre_delay():
    sr = 48000
    for ms in (0.0, 25.0, 200.0):
        ir = impulse_response(sr, 0.5, predelay_ms=ms)
        first = int(np.argmax(np.abs(ir) > 1e-6))
        assert round(ms * sr / 1000) <= first <= round(ms * sr / 1000) + min(line_lengths(sr)) + sr // 50


def test_lines_are_distinct_primes_at_every_rate():
    for sr in (22050, 44100, 48000, 96000, 192000):
        m = line_lengths(sr)
        assert len(set(m)) == len(m) == 8
        assert all(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in m)


def test_stable_at_the_longest_decay_under_loud_noise():
    sr = 48000
    r = Reverb(sr, send=1.0, decay_s=20.0, damping=1.0)
    r.reset()
    rng = np.random.default_rng(0)
    dry = (0.5 * rng.standard_normal(sr * 30)).astype(np.float32)
    x = dry.copy()
    for i in range(0, x.size, 4096):
        r.process(x[i:i + 4096], min(4096, x.size - i))
    wet = x.astype(np.float64) - dry
    assert np.all(np.isfinite(wet))
    steady = np.sqrt(np.mean(wet[-sr * 5:] ** 2)) / np.sqrt(np.mean(dry ** 2))
    early = np.sqrt(np.mean(wet[sr * 20:sr * 25] ** 2)) / np.sqrt(np.mean(dry ** 2))
    assert 0.6 < steady < 1.6               # the wet is about as loud as the dry, not growing
    assert abs(20 * np.log10(steady / early)) < 0.5


def test_off_touches_nothing_and_a_tail_ends_idle():
    sr = 48000
    r = Reverb(sr)                            # send 0: the default
    x = np.random.default_rng(1).standard_normal(4096).astype(np.float32)
    y = x.copy()
    r.process(y, y.size)
    assert np.array_equal(x, y) and r.idle
    r.set_send(0.5)
    r.process(y, y.size)
    assert not r.idle and not np.array_equal(x, y)
    r.set_send(0.0)                           # the tail rings out, then the reverb goes idle
    quiet = np.zeros(512, np.float32)
    for _ in range(int(4 * 2.0 * sr / 512)):  # -140 dB comes after 2.3 decays of a unit-level tail
        quiet[:] = 0.0
        r.process(quiet, 512)
        if r.idle:
            break
    assert r.idle and not r.mem.any()


def test_settings_are_clamped_and_the_send_is_on_cc91s_grid():
    r = Reverb(48000)
    assert r.set_room(float("nan"), 7.0, -3.0) == (0.1, 1.0, 0.0)
    assert r.set_room(100.0, 0.0, 1e9) == (20.0, 0.05, 200.0)
    assert r.set_send(float("inf")) == 1.0
    assert r.set_send(float("nan")) == 0.0
    assert r.set_send(0.5) == 64 / 127
    with pytest.raises(ConfigError, match="reverb decay"):
        EngineConfig(reverb_decay_s=0.0).validate()
    with pytest.raises(ConfigError, match="reverb send"):
        EngineConfig(reverb_send=1.5).validate()


def _play(engine: Engine, block: int, seconds: float = 1.5, extra=()) -> np.ndarray:
    sr = engine.config.sample_rate
    for t, st, d1, d2 in sorted([(100, 0x90, 60, 100), (9000, 0x90, 64, 90), (24000, 0x80, 60, 0),
                                 (30000, 0x80, 64, 0), *extra]):          # the queue takes them in time order
        engine.push_event(t, st, d1, d2)
    out = np.zeros((int(sr * seconds), 1), np.float32)
    for i in range(0, out.shape[0], block):
        engine.render(out[i:i + block])
    return out[:, 0]


def test_the_engine_renders_the_same_at_any_block_size():
    """Sends moved by CC 91 and a room cleared by CC 120 at odd samples included: the reverb runs
    segment by segment, so each acts at its own sample. (Run over whole blocks, a CC 91 took
    effect at its block's start: a take replayed in other blocks was 6.4e-6 off.)"""
    knobs = [(5001, 0xB0, 91, 20), (11111, 0xB0, 91, 127), (40003, 0xB0, 120, 0), (40500, 0x90, 67, 100),
             (52001, 0xB0, 91, 60), (60000, 0x80, 67, 0)]

    def run(block):
        return _play(Engine(EngineConfig(sample_rate=48000, reverb_send=0.6, reverb_decay_s=1.5)).prepare(), block,
                     extra=knobs)
    ref = run(4096)
    for block in (1, 17, 64, 256):
        assert np.array_equal(run(block), ref)
    dry = _play(Engine(EngineConfig(sample_rate=48000)).prepare(), 64)
    assert np.sqrt(np.mean(ref[40000:] ** 2)) > 10 * np.sqrt(np.mean(dry[40000:] ** 2)) + 1e-6   # a tail


def test_cc91_sets_the_send_and_a_learnt_binding_takes_it_first():
    eng = Engine(EngineConfig(sample_rate=48000)).prepare()
    _play(eng, 256, 0.2, extra=[(500, 0xB0, 91, 100)])
    assert eng.reverb.send[0] == 100 / 127
    assert eng.set_reverb()["send"] == 100 / 127
    eng2 = Engine(EngineConfig(sample_rate=48000)).prepare()
    name = eng2.generator.info.controls[0].name
    eng2.bind_cc(name, 0, 91)
    _play(eng2, 256, 0.2, extra=[(500, 0xB0, 91, 100)])
    assert eng2.reverb.send[0] == 0.0 and eng2.reverb.idle


@pytest.mark.parametrize("how", ["panic", "cc120"])
def test_panic_and_all_sound_off_silence_the_tail_too(how):
    sr, block = 48000, 256
    eng = Engine(EngineConfig(sample_rate=sr, max_block=block, reverb_send=1.0, reverb_decay_s=8.0)).prepare()
    _play(eng, block, 1.0)
    buf = np.zeros((block, 1), np.float32)
    eng.render(buf)
    assert np.abs(buf).max() > 1e-3                        # ringing
    if how == "panic":
        eng.panic()
    else:
        eng.push_event(eng.sample_time, 0xB0, 123, 0)
        eng.push_event(eng.sample_time, 0xB0, 120, 0)
    after = np.zeros((4 * block, 1), np.float32)
    eng.render(after)
    cut = eng.latency_samples + block
    # as test_engine_offline's CC 120 test: after the cut only the DC blocker's own sub-audio
    # decay is left (sample-to-sample change under -100 dBFS), and the room is empty
    assert np.abs(np.diff(after[cut:, 0])).max() < 1e-5
    assert not eng.reverb.mem.any()


def test_the_reverb_persists_across_prepare_and_reports_as_set():
    eng = Engine(EngineConfig(sample_rate=48000)).prepare()
    got = eng.set_reverb(send=0.3, decay_s=3.3, damping=0.25, predelay_ms=40)
    assert got == {"send": 38 / 127, "decay_s": 3.3, "damping": 0.25, "predelay_ms": 40.0}
    eng.prepare(sample_rate=96000)
    assert eng.reverb.settings == got and eng.reverb.sample_rate == 96000
    eng.push_event(eng.sample_time, 0xB0, 91, 77)          # a keyboard's knob, then another device
    eng.render(np.zeros((64, 1), np.float32))
    eng.prepare(sample_rate=44100)
    assert eng.reverb.send[0] == 77 / 127


def test_the_render_side_allocates_nothing_with_the_reverb_on():
    eng = Engine(EngineConfig(sample_rate=48000, max_block=64, reverb_send=0.8)).prepare()
    grown = render_growth(eng, 91, 500, ("reverb", "engine.py"))
    assert sum(s.size_diff for s in grown) < 1024, grown


def test_a_take_replays_its_reverb_exactly(tmp_path):
    """The send is CC 91 in the MIDI (set from the app or by a CC, on CC 91's own grid) and the
    room is in the take's marker: ``livewave render TAKE.mid`` gives the take back sample for sample."""
    from audio_checks import play_events, replayed_by_render

    from livewave.smf import read_midi_file
    from livewave.take_recorder import TakeRecorder
    rate = 48000
    eng = Engine(EngineConfig(sample_rate=rate, max_block=256, reverb_send=0.25, reverb_decay_s=1.2,
                              reverb_damping=0.4, reverb_predelay_ms=33)).prepare()
    rec = TakeRecorder(tmp_path / "take.wav", rate, tmp_path / "take.mid").start()
    eng.start_take(rec)
    y = play_events(eng, [(0.05, 0x90, 60, 100), (0.3, 0x80, 60, 0), (0.4, 0xB0, 91, 90), (0.45, 0x90, 67, 100),
                          (0.7, 0x80, 67, 0)], 0.8, 128, stereo=True)
    eng.set_reverb(send=0.7)                     # a slider: not MIDI, but the send is written as CC 91
    y = np.concatenate([y, play_events(eng, [(0.85, 0x90, 64, 100), (1.1, 0x80, 64, 0)], 1.0, 128, stereo=True)])
    eng.stop_take()
    rec.finish()
    song = read_midi_file(tmp_path / "take.mid")
    assert song.take_room == (32 / 127, 1.2, 0.4, 33.0)
    sends = [(round(t * rate), m[2]) for t, *m in song.events if m[0] == 0xB0 and m[1] == 91]
    assert sends == [(round(0.4 * rate), 90), (round(0.8 * rate), 89)]      # round(0.7 * 127), from the slider
    w = replayed_by_render(tmp_path, rate, y)
    assert np.abs(w[int(1.5 * rate):]).max() > 1e-3          # the tail after the last note is there too


@pytest.mark.torture
def test_every_reverb_setting_abused_ten_times_a_sub_block_never_breaks_the_output():
    """#6 item 3 for the reverb: NaN, +-Inf and out-of-range values (clamped) set 10 times per
    32-sample sub-block while notes play: no exception, nothing non-finite, never above the ceiling."""
    eng = Engine(EngineConfig(sample_rate=48000, max_block=32)).prepare()
    keys = ("send", "decay_s", "damping", "predelay_ms")
    peak = abused_peak(eng, lambda rng, _j: eng.set_reverb(**{keys[int(rng.integers(4))]:
                                                               ABUSIVE[int(rng.integers(len(ABUSIVE)))]}))
    assert peak <= 10 ** (eng.config.ceiling_dbfs / 20) + 1e-7
    r = eng.set_reverb()
    assert 0.0 <= r["send"] <= 1.0 and 0.1 <= r["decay_s"] <= 20.0 and 0.05 <= r["damping"] <= 1.0


@pytest.mark.torture
@pytest.mark.parametrize("rate", [22050, 44100, 96000, 192000])
def test_with_the_reverb_on_every_rate_renders_the_same_at_block_1_and_4096(rate):
    def run(block):
        eng = Engine(EngineConfig(sample_rate=rate, reverb_send=1.0, reverb_decay_s=3.0)).prepare()
        return _play(eng, block, 0.25)
    a = run(4096)
    np.testing.assert_array_equal(run(1), a)
    assert np.all(np.isfinite(a)) and np.abs(a).max() <= 10 ** (-1 / 20) + 1e-7


@pytest.mark.parametrize("room", [(20.0, 0.7, 10.0), (2.0, 0.2, 10.0), (2.0, 0.7, 80.0)])
def test_a_room_moved_while_the_tail_sounds_does_not_click(room):
    """A new decay, damping or pre-delay while a 440 Hz tone plays through the reverb. Stepped
    at once, each clicked (module docstring: the wet's peak above 3 kHz in the 0.15 s after the
    change 36, 8 and 14 times its peak in the 0.1 s before); they glide (the pre-delay
    crossfades) over 10 ms, so no more than twice (measured 0.64, 0.82 and 0.86)."""
    from scipy.signal import butter, sosfilt
    sr = 48000
    r = Reverb(sr, send=1.0, decay_s=2.0, damping=0.7)
    r.reset()
    x = np.zeros(sr, np.float32)
    x[:int(0.6 * sr)] = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(int(0.6 * sr)) / sr)
    dry = x.copy()
    at = int(0.4 * sr) + 17
    r.process(x[:at], at)
    r.set_room(*room)
    r.process(x[at:], sr - at)
    high = sosfilt(butter(4, 3000, "highpass", fs=sr, output="sos"), (x - dry).astype(np.float64))
    before = np.abs(high[at - sr // 10:at - 48]).max()
    around = np.abs(high[at - 48:at + int(0.15 * sr)]).max()      # a new pre-delay is heard a line later
    assert around < 2.0 * before, (around, before)


def test_a_render_keeps_the_rooms_tail_and_a_stop_fades_it_without_a_click():
    """``render_events`` (``livewave render``) goes on until the room has fallen 60 dB, not
    just the release; a stream that stops with the room ringing fades it (``Engine.ring_out``)."""
    from livewave.offline_render import render_events
    sr = 48000
    events = [(0.0, 0x90, 60, 110), (0.3, 0x80, 60, 0)]
    dry = render_events(Engine(EngineConfig(sample_rate=sr)).prepare(), events, 0.3)
    eng = Engine(EngineConfig(sample_rate=sr, reverb_send=0.6, reverb_decay_s=1.5, reverb_predelay_ms=20)).prepare()
    assert eng.tail_s == pytest.approx(eng.release_s + 1.52)
    wet = render_events(eng, events, 0.3)[:, 0]
    assert wet.size >= dry.shape[0] + int(1.5 * sr)
    peak = np.abs(wet).max()
    assert np.sqrt(np.mean(wet[-sr // 10:] ** 2)) < peak * 10 ** (-55 / 20)          # rung out
    eng2 = Engine(EngineConfig(sample_rate=sr, max_block=256, reverb_send=0.8, reverb_decay_s=6.0)).prepare()
    y = _play(eng2, 256, 0.5)
    assert np.abs(y[-2400:]).max() > 1e-3                      # ringing when the stop comes
    eng2.ring_out(wait=lambda s: None)
    after = np.zeros((4800, 1), np.float32)
    eng2.render(after)
    assert np.abs(after[-256:]).max() < 1e-4                   # silent within 0.1 s...
    assert np.abs(np.diff(np.concatenate([y[-1:], after[:, 0]]))).max() < 0.05   # ...gliding, no step


def test_a_take_begun_mid_session_on_a_silent_room_replays_exactly(tmp_path):
    """The room played, went quiet (idle at -140 dBFS with the send still up), then a take began
    at an odd sample: replayed on the take's clock, the room's swing is where it was live (it
    follows the engine's clock), so the take comes back sample for sample. (When the swing
    followed the reverb's own count instead, the same replay was 6.6e-6 off.)"""
    from audio_checks import play_events

    from livewave.offline_render import render_song
    from livewave.smf import read_midi_file
    from livewave.take_recorder import TakeRecorder
    rate = 48000
    cfg = dict(sample_rate=rate, max_block=256, reverb_send=0.5, reverb_decay_s=0.5, reverb_damping=0.6)
    eng = Engine(EngineConfig(**cfg)).prepare()
    # the room idles about 1.2 s after the note (-140 dBFS at a 0.5 s decay); the DC blocker's
    # own residue of its tail (1e-28 and falling) takes about 1 s more to flush
    play_events(eng, [(0.0, 0x90, 60, 100), (0.3, 0x80, 60, 0)], 3.0 + 17 / rate, 128)
    assert eng.reverb.idle and eng.post.state[2] == 0.0
    rec = TakeRecorder(tmp_path / "take.wav", rate, tmp_path / "take.mid").start()
    eng.start_take(rec)
    w = play_events(eng, [(0.05, 0x90, 64, 100), (0.4, 0x80, 64, 0), (0.5, 0xB0, 91, 110), (0.6, 0x90, 67, 90),
                          (0.9, 0x80, 67, 0)], 1.8, 128)
    eng.stop_take()
    rec.finish()
    song = read_midi_file(tmp_path / "take.mid")
    assert song.take_start[0] > 3 * rate
    again = render_song(Engine(EngineConfig(sample_rate=rate, max_block=256, reverb_send=song.take_room[0],
                                            reverb_decay_s=song.take_room[1], reverb_damping=song.take_room[2],
                                            reverb_predelay_ms=song.take_room[3])).prepare(), song, block=64)[:, 0]
    np.testing.assert_array_equal(again[:w.size], w)
    assert np.abs(w[int(1.0 * rate):]).max() > 1e-3          # the room rings in it
