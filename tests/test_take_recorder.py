"""Recording a take (``take_recorder``): the WAV holds exactly what the engine played, and the
MIDI take replays it: rendered again from a fresh engine it gives the same samples, even when
the take began mid-session with a pedal down, a bend and a bend range set, and notes held."""
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_checks import play_events

from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.offline_render import render_song
from livewave.smf import read_midi_file
from livewave.take_recorder import TakeRecorder, free_take_paths, push_audio, tick_base, write_midi_take

ROOT = Path(__file__).resolve().parents[1]
RATE = 48000


def engine(gen=None) -> Engine:
    return Engine(EngineConfig(sample_rate=RATE, max_block=256), gen).prepare()




def take(eng: Engine, tmp: Path, events, seconds: float, block: int, name: str = "take") -> tuple[np.ndarray, dict]:
    rec = TakeRecorder(tmp / f"{name}.wav", RATE, tmp / f"{name}.mid").start()
    eng.start_take(rec)
    y = play_events(eng, events, seconds, block, stereo=True)
    assert eng.stop_take() is rec
    return y, rec.finish()


def test_the_wav_is_what_played_and_the_midi_replays_it_sample_for_sample(tmp_path):
    eng = engine()
    events = [(0.1, 0x90, 60, 100), (0.2, 0xE0, 0, 80), (0.35, 0xB0, 64, 127), (0.5, 0x80, 60, 0),
              (0.6, 0x90, 64, 90), (0.9, 0xB0, 64, 0), (1.0, 0x80, 64, 0)]
    y, s = take(eng, tmp_path, events, 1.6, 100)
    assert s["dropped_samples"] == 0 and s["dropped_events"] == 0 and s["error"] is None
    assert s["seconds"] == pytest.approx(1.6) and s["events"] == len(events)
    w, sr = sf.read(str(tmp_path / "take.wav"), dtype="float32")
    assert sr == RATE and sf.info(str(tmp_path / "take.wav")).subtype == "FLOAT"
    np.testing.assert_array_equal(w, y)
    assert np.abs(w).max() > 0.01
    song = read_midi_file(tmp_path / "take.mid")
    assert song.take_start == (0, RATE)
    # one tick is one sample: every event at the sample it took effect
    assert [(round(t * RATE, 6), *m) for t, *m in song.events] == [(round(t * RATE), *m) for t, *m in events]
    again = render_song(engine(), song, block=64)
    np.testing.assert_array_equal(again[:len(w)], w)


def test_a_take_begun_mid_session_opens_with_the_channels_state_and_ends_with_its_notes_released(tmp_path):
    eng = engine()
    before = [(0.0, 0xB0, 64, 127), (0.01, 0xE0, 0, 90), (0.02, 0xB0, 7, 90), (0.03, 0xB2, 101, 0),
              (0.03, 0xB2, 100, 0), (0.03, 0xB2, 6, 12), (0.04, 0xD2, 30, 0), (0.05, 0xB3, 11, 60),
              (0.1, 0x91, 50, 100), (0.2, 0x81, 50, 0), (0.21, 0xB1, 123, 0)]
    play_events(eng, before, 1.3371, 128)                       # an odd start: the frame grid and the noise follow the clock
    first = eng.sample_time
    during = [(0.1, 0x90, 60, 100), (0.3, 0xB0, 64, 0), (0.5, 0x80, 60, 0), (0.6, 0x90, 64, 90),
              (0.65, 0x92, 67, 80), (0.7, 0xB0, 1, 64)]
    w, s = take(eng, tmp_path, during, 1.0, 100)
    song = read_midi_file(tmp_path / "take.mid")
    assert song.take_start == (first, RATE)
    opening = [tuple(e[1:]) for e in song.events if e[0] == 0.0]
    assert (0xE0, 0, 90) in opening and (0xB0, 7, 90) in opening and (0xB0, 64, 127) in opening
    assert (0xB2, 6, 12) in opening and (0xD2, 30, 0) in opening and (0xB3, 11, 60) in opening
    # the notes still held at the end (64 on channel 1, 67 on channel 3) are released there
    last = [tuple(e[1:]) for e in song.events if abs(e[0] - 1.0) < 1e-9]
    assert sorted(last) == [(0x80, 64, 0), (0x82, 67, 0)]
    again = render_song(engine(), song, block=64)
    np.testing.assert_array_equal(again[:len(w)], w)


def test_a_shipped_ddsp_model_replays_its_take_exactly(tmp_path):
    from livewave.checkpoint import load_generator
    eng = engine(load_generator(ROOT / "models" / "violin.safetensors"))
    play_events(eng, [(0.0, 0x90, 67, 90), (0.3, 0x80, 67, 0)], 2.8123, 256)   # rung out before the take
    w, _ = take(eng, tmp_path, [(0.05, 0x90, 69, 100), (0.2, 0xE0, 0, 70), (0.6, 0x80, 69, 0)], 1.2, 64)
    again = render_song(engine(load_generator(ROOT / "models" / "violin.safetensors")),
                        read_midi_file(tmp_path / "take.mid"), block=256)
    assert np.abs(w).max() > 0.01
    np.testing.assert_array_equal(again[:len(w)], w)


def test_panic_and_release_all_are_in_the_take_as_midi(tmp_path):
    eng = engine()
    rec = TakeRecorder(tmp_path / "t.wav", RATE, tmp_path / "t.mid").start()
    eng.start_take(rec)
    play_events(eng, [(0.0, 0x90, 60, 100), (0.0, 0xB0, 64, 127)], 0.1, 128)
    eng.release_all()
    play_events(eng, [(0.0, 0x90, 62, 100)], 0.1, 128)
    eng.panic()
    play_events(eng, [], 0.1, 128)
    eng.stop_take()
    rec.finish()
    msgs = [tuple(e[1:]) for e in read_midi_file(tmp_path / "t.mid").events]
    for ch in range(16):
        assert (0xB0 | ch, 64, 0) in msgs and (0xB0 | ch, 123, 0) in msgs
        assert (0xB0 | ch, 120, 0) in msgs and (0xB0 | ch, 121, 0) in msgs
    assert msgs.index((0xB0, 123, 0)) < msgs.index((0x90, 62, 100)) < msgs.index((0xB0, 120, 0))


@pytest.mark.parametrize("rate, exact", [(22050, True), (44100, True), (48000, True), (96000, True),
                                         (192000, True), (11025, True), (65537, False)])
def test_ticks_are_samples_wherever_the_format_allows(rate, exact):
    ppq, tempo, is_exact = tick_base(rate)
    assert is_exact == exact and 1 <= ppq <= 32767 and 60 <= 60e6 / tempo <= 480
    if exact:
        assert ppq * 1_000_000 / tempo == rate


def test_events_land_within_half_a_tick_where_ticks_are_not_samples(tmp_path):
    rate = 65537
    events = [(s, 0x90, 60, 100) for s in (0, 1, 2, 3, 1000, 65536)]
    write_midi_take(tmp_path / "t.mid", events, rate, 70000)
    ppq, tempo, _ = tick_base(rate)
    per_tick = rate * tempo / 1e6 / ppq
    got = [t * rate for t, *_ in read_midi_file(tmp_path / "t.mid").events if _[0] == 0x90]
    assert max(abs(g - s) for g, (s, *_) in zip(got, events, strict=True)) <= per_tick / 2 + 1e-6


def test_the_render_side_drops_what_does_not_fit_and_counts_it_when_the_disk_falls_behind(tmp_path):
    eng = engine()
    rec = TakeRecorder(tmp_path / "t.wav", RATE, None, ring_seconds=0.0)     # 1024 samples; no writer
    eng.start_take(rec)
    y = play_events(eng, [(0.0, 0x90, 60, 100)], 0.1, 128)
    eng.stop_take()
    assert rec.apos[0] == 1024 and rec.apos[2] == y.size - 1024
    assert np.abs(y).max() > 0.01                       # the music did not wait


def test_a_failing_disk_is_reported_and_the_music_and_the_midi_go_on(tmp_path, monkeypatch):
    eng = engine()
    rec = TakeRecorder(tmp_path / "t.wav", RATE, tmp_path / "t.mid").start()

    def full(_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rec._file, "write", full)
    eng.start_take(rec)
    y = play_events(eng, [(0.0, 0x90, 60, 100), (0.2, 0x80, 60, 0)], 0.5, 128)
    eng.stop_take()
    s = rec.finish()
    assert "No space left" in s["error"] and np.abs(y).max() > 0.01
    assert [e[1] for e in read_midi_file(tmp_path / "t.mid").events] == [0x90, 0x80]


def test_a_take_never_overwrites_another_and_bad_names_are_refused(tmp_path):
    assert free_take_paths(tmp_path / "take.wav") == (tmp_path / "take.wav", tmp_path / "take.mid")
    (tmp_path / "take.wav").write_bytes(b"")
    assert free_take_paths(tmp_path / "take.wav") == (tmp_path / "take-2.wav", tmp_path / "take-2.mid")
    (tmp_path / "take-2.mid").write_bytes(b"")
    assert free_take_paths(tmp_path / "take.wav")[0] == tmp_path / "take-3.wav"
    assert free_take_paths(tmp_path / "solo.wav", midi=False) == (tmp_path / "solo.wav", None)
    with pytest.raises(ValueError, match="WAV"):
        free_take_paths(tmp_path / "take.flac")
    with pytest.raises(ValueError, match="no such folder"):
        TakeRecorder(tmp_path / "missing" / "t.wav", RATE)
    with pytest.raises(RuntimeError, match="already"):
        eng = engine()
        eng.start_take(TakeRecorder(tmp_path / "a.wav", RATE))
        eng.start_take(TakeRecorder(tmp_path / "b.wav", RATE))


def test_the_cli_refuses_a_take_it_cannot_write_before_opening_anything(tmp_path):
    r = subprocess.run([sys.executable, "-m", "livewave", "play", "--record", str(tmp_path / "no" / "t.wav"),
                        "--duration", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no folder" in r.stderr + r.stdout


def test_render_allocations_stay_flat_while_a_take_records():
    """The render side's copies are Numba: with a take running, what ``Engine.render`` keeps
    stays flat (the writer thread's own growing MIDI list is in take_recorder's lines, left out)."""
    import tempfile
    eng = engine()
    out = np.zeros((128, 2), np.float32)
    flt = [tracemalloc.Filter(True, "*livewave/*"), tracemalloc.Filter(False, "*take_recorder*"),
           tracemalloc.Filter(False, "*tracemalloc*")]
    with tempfile.TemporaryDirectory() as d:
        rec = TakeRecorder(Path(d) / "t.wav", RATE, Path(d) / "t.mid").start()
        eng.start_take(rec)
        tracemalloc.start(1)
        try:
            held = []
            for i in range(6001):
                if i % 25 == 0:
                    eng.push_event(eng.sample_time, 0x90 if i % 50 == 0 else 0x80, 48 + (i // 50) % 24, 100)
                if i >= 1000 and i % 1000 == 0:
                    held.append(sum(st.size for st in tracemalloc.take_snapshot().filter_traces(flt).statistics("filename")))
                eng.render(out)
        finally:
            tracemalloc.stop()
            eng.stop_take()
            s = rec.finish()
    print(f"bytes held by livewave's render-side lines every 1,000 blocks: {held}")
    assert s["events"] == 241 and s["dropped_samples"] == 0
    assert held[-1] - held[0] <= 1024, held


def test_push_audio_wraps_around_the_ring():
    ring, pos = np.zeros((8, 2), np.float32), np.zeros(3, np.int64)
    pos[:2] = 6                                          # written and read up to 6: the next write wraps
    src = np.stack([np.arange(1, 6), -np.arange(1, 6)]).astype(np.float32)     # left, right
    push_audio(ring, pos, src, 5)
    assert list(ring[:, 0]) == [3, 4, 5, 0, 0, 0, 1, 2] and list(pos) == [11, 6, 0]
    assert list(ring[:, 1]) == [-3, -4, -5, 0, 0, 0, -1, -2]
    push_audio(ring, pos, src, 5)
    assert list(pos) == [14, 6, 2]                       # 3 fit, 2 dropped
    mono = np.zeros((8, 2), np.float32)                  # a mono mix into a stereo take: both alike
    push_audio(mono, np.zeros(3, np.int64), src[:1], 5)
    assert list(mono[:5, 0]) == list(mono[:5, 1]) == [1, 2, 3, 4, 5]


CRASH = """
import os, sys, time
from pathlib import Path
import numpy as np
from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.take_recorder import TakeRecorder
d = Path(sys.argv[1])
eng = Engine(EngineConfig(sample_rate=48000, max_block=256)).prepare()
rec = TakeRecorder(d / "c.wav", 48000, d / "c.mid").start()
eng.start_take(rec)
out = np.zeros((480, 2), np.float32)
eng.push_event(eng.sample_time + 100, 0x90, 60, 100)
for i in range(200):
    eng.render(out)
    time.sleep(0.005)
time.sleep(1.5)                   # the writer drains; then the process dies without a word
os._exit(9)
"""


def test_a_take_cut_short_by_a_crash_opens_at_its_length_with_its_notes_ended(tmp_path):
    r = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 9, r.stderr
    info = sf.info(str(tmp_path / "c.wav"))
    assert info.frames == 96000                          # the header was kept up to date
    ev = read_midi_file(tmp_path / "c.mid").events
    assert [e[1:] for e in ev] == [(0x90, 60, 100), (0x80, 60, 0)] and ev[1][0] == pytest.approx(2.0)


def test_an_audio_driven_take_keeps_its_input_and_resynth_gives_the_take_back(tmp_path):
    """With the engine opened duplex, the take also holds the input the model heard
    (``take-in.wav``); played through the same vocoder from the engine's first sample
    (``livewave resynth``'s path) it gives the take back, shifted by the declared latency."""
    from livewave.checkpoint import load_generator
    from livewave.offline_render import render_audio

    def vocoder_engine() -> Engine:
        gen = load_generator(ROOT / "models" / "istft-fluidr3.safetensors")
        return Engine(EngineConfig(sample_rate=RATE, max_block=256, input_channels=1), gen).prepare()

    eng = vocoder_engine()
    t = np.arange(RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.2)).astype(np.float32)[:, None]
    rec = TakeRecorder(tmp_path / "v.wav", RATE, None, record_input=True).start()
    eng.start_take(rec)
    out = np.zeros((RATE, 2), np.float32)
    for j in range(0, RATE, 100):
        eng.render(out[j:j + 100], x[j:j + 100])
    eng.stop_take()
    s = rec.finish()
    assert s["input"] == str(tmp_path / "v-in.wav") and s["dropped_samples"] == 0
    heard, _ = sf.read(s["input"], dtype="float32")
    np.testing.assert_array_equal(heard, x[:, 0])
    w, _ = sf.read(s["audio"], dtype="float32")
    np.testing.assert_array_equal(w, out)           # both channels, as the device got them
    lat = eng.latency_samples
    again = render_audio(vocoder_engine(), heard[:, None], block=256)
    assert np.abs(w).max() > 0.05
    np.testing.assert_array_equal(again[:len(w) - lat], w[lat:])
    (tmp_path / "v.wav").unlink()                       # its input alone still keeps the name taken
    assert free_take_paths(tmp_path / "v.wav")[0] == tmp_path / "v-2.wav"


def test_the_midi_take_is_a_standard_file_that_mido_reads_the_same():
    """livewave writes the take's bytes itself (``MidiTake``: appended as events come, so a
    long take is not re-encoded every second); mido, an independent reader, reads them back."""
    import tempfile

    import mido
    events = [(0, 0xB0, 64, 127), (10, 0x90, 60, 100), (10, 0xC1, 5, 0), (300, 0xD0, 40, 0),
              (301, 0xE0, 3, 70), (20000, 0xA0, 60, 20), (200_000, 0x80, 60, 0), (200_001, 0x91, 72, 90)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.mid"
        write_midi_take(path, events, RATE, 250_000, first_sample=12345)
        mf = mido.MidiFile(str(path))
        assert mf.type == 0 and mf.ticks_per_beat == 24000 and len(mf.tracks) == 1
        tick, got = 0, []
        for msg in mf.tracks[0]:
            tick += msg.time
            if not msg.is_meta:
                got.append((tick, *msg.bytes()))
        assert got[:len(events)] == [(s, st, d1) if st & 0xF0 in (0xC0, 0xD0) else (s, st, d1, d2)
                                     for s, st, d1, d2 in events]
        assert got[len(events):] == [(250_000, 0x81, 72, 0)]          # the note still held, released
        assert read_midi_file(path).take_start == (12345, RATE)


def test_a_panic_is_in_the_take_as_what_it_does_to_the_channels(tmp_path):
    """The panic after a volume change: replayed, the take is exact up to the panic and back
    within 1e-5 of it 0.1 s later (the panic's hard stop is not MIDI: take_recorder's docstring);
    without the panic's volume reset in the MIDI the next note came back at the old volume."""
    eng = engine()
    rec = TakeRecorder(tmp_path / "t.wav", RATE, tmp_path / "t.mid").start()
    eng.start_take(rec)
    play_events(eng, [(0.0, 0xB0, 7, 60), (0.01, 0x90, 60, 100)], 0.3)
    at = eng.sample_time - rec.first_sample
    eng.panic()
    play_events(eng, [(0.05, 0x90, 64, 100), (0.3, 0x80, 64, 0)], 0.8)
    eng.stop_take()
    rec.finish()
    w, _ = sf.read(str(tmp_path / "t.wav"), dtype="float32")
    again = render_song(engine(), read_midi_file(tmp_path / "t.mid"))[:len(w)]
    np.testing.assert_array_equal(again[:at], w[:at])
    assert np.abs(again[at + RATE // 10:] - w[at + RATE // 10:]).max() < 1e-5
    assert np.abs(w[at + RATE // 10:]).max() > 0.01


def test_a_take_replays_its_bend_range_on_an_engine_whose_default_is_another(tmp_path):
    """Played with --bend-range 12, replayed with the default 2: the take says 12 itself."""
    eng = Engine(EngineConfig(sample_rate=RATE, max_block=256, bend_range=12.0)).prepare()
    w, _ = take(eng, tmp_path, [(0.05, 0x90, 69, 100), (0.1, 0xE0, 0, 96), (0.6, 0x80, 69, 0)], 1.0, 128)
    again = render_song(engine(), read_midi_file(tmp_path / "take.mid"))[:len(w)]
    np.testing.assert_array_equal(again, w)
