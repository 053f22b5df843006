"""Tests for livewave.smf (Standard MIDI File reader)."""

import struct

import mido
import numpy as np
import pytest

from livewave.smf import MidiFileError, MidiSong, read_midi_file


def _save(tmp_path, name, mid):
    path = tmp_path / name
    mid.save(str(path))
    return path


def _type1_song():
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name="tempo", time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=250000, time=960))
    mid.tracks.append(conductor)
    t1 = mido.MidiTrack()
    t1.append(mido.Message("program_change", channel=0, program=5, time=0))
    t1.append(mido.Message("note_on", channel=0, note=60, velocity=100, time=0))
    t1.append(mido.Message("note_off", channel=0, note=60, velocity=0, time=480))
    t1.append(mido.Message("note_on", channel=0, note=62, velocity=90, time=480))
    t1.append(mido.Message("note_off", channel=0, note=62, velocity=0, time=480))
    mid.tracks.append(t1)
    t2 = mido.MidiTrack()
    t2.append(mido.Message("control_change", channel=9, control=7, value=64,
                           time=0))
    t2.append(mido.Message("pitchwheel", channel=9, pitch=0, time=480))
    t2.append(mido.Message("sysex", data=[1, 2, 3], time=0))
    t2.append(mido.Message("aftertouch", channel=9, value=33, time=960))
    t2.append(mido.Message("polytouch", channel=9, note=40, value=11, time=0))
    mid.tracks.append(t2)
    return mid


def test_type1_two_tracks_with_tempo_change(tmp_path):
    song = read_midi_file(_save(tmp_path, "song.mid", _type1_song()))
    assert isinstance(song, MidiSong)
    # 480 ticks at 500000 us/beat = 0.5 s; tempo -> 250000 at tick 960 (1.0 s)
    # tick 1440 = 1.0 + 480 * 0.25 / 480 = 1.25 s; tick 1440 in track 2
    # likewise 1.25 s.
    assert song.events == [
        (0.0, 0xC0, 5, 0),
        (0.0, 0x90, 60, 100),
        (0.0, 0xB9, 7, 64),
        (0.5, 0x80, 60, 0),
        (0.5, 0xE9, 0x00, 0x40),           # pitch 0 -> lsb 0, msb 64
        (1.0, 0x90, 62, 90),
        (1.25, 0x80, 62, 0),
        (1.25, 0xD9, 33, 0),
        (1.25, 0xA9, 40, 11),
    ]
    assert song.duration == 1.25
    assert song.path.endswith("song.mid")
    with pytest.raises(Exception):
        song.duration = 3.0                 # frozen


def test_equal_times_keep_file_order(tmp_path):
    mid = mido.MidiFile(type=0, ticks_per_beat=96)
    tr = mido.MidiTrack()
    for note in (70, 50, 60):
        tr.append(mido.Message("note_on", note=note, velocity=1, time=0))
    mid.tracks.append(tr)
    song = read_midi_file(_save(tmp_path, "order.mid", mid))
    assert [e[2] for e in song.events] == [70, 50, 60]


def test_type0_file(tmp_path):
    mid = mido.MidiFile(type=0, ticks_per_beat=96)
    tr = mido.MidiTrack()
    tr.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
    tr.append(mido.Message("note_on", channel=3, note=64, velocity=80, time=96))
    tr.append(mido.MetaMessage("set_tempo", tempo=2_000_000, time=0))
    tr.append(mido.Message("note_off", channel=3, note=64, velocity=0,
                           time=48))
    tr.append(mido.Message("pitchwheel", channel=3, pitch=8191, time=96))
    mid.tracks.append(tr)
    song = read_midi_file(str(_save(tmp_path, "zero.mid", mid)))
    # 96 ticks @ 1 s/beat = 1.0; +48 @ 2 s/beat = 2.0; +96 @ 2 s/beat = 4.0
    assert song.events == [(1.0, 0x93, 64, 80), (2.0, 0x83, 64, 0),
                           (4.0, 0xE3, 0x7F, 0x7F)]
    assert song.duration == 4.0


def test_default_tempo_without_set_tempo(tmp_path):
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tr = mido.MidiTrack()
    tr.append(mido.Message("note_on", note=1, velocity=1, time=960))
    mid.tracks.append(tr)
    song = read_midi_file(_save(tmp_path, "d.mid", mid))
    assert song.events == [(1.0, 0x90, 1, 1)]


def test_empty_track_gives_empty_song(tmp_path):
    mid = mido.MidiFile(type=1)
    mid.tracks.append(mido.MidiTrack())
    song = read_midi_file(_save(tmp_path, "silent.mid", mid))
    assert song.events == [] and song.duration == 0.0


def test_smpte_division(tmp_path):
    data = bytearray(_save(tmp_path, "a.mid", _type1_song()).read_bytes())
    # 25 fps, 40 ticks per frame -> 1000 ticks per second
    data[12:14] = bytes([256 - 25, 40])
    path = tmp_path / "smpte.mid"
    path.write_bytes(bytes(data))
    song = read_midi_file(path)
    assert song.events[3] == (0.48, 0x80, 60, 0)
    assert song.duration == pytest.approx(1.44)


def test_unknown_chunk_is_skipped(tmp_path):
    data = _save(tmp_path, "a.mid", _type1_song()).read_bytes()
    extra = b"XFIH" + struct.pack(">L", 3) + b"abc"
    path = tmp_path / "extra.mid"
    path.write_bytes(data[:14] + extra + data[14:])
    assert read_midi_file(path).events == read_midi_file(tmp_path /
                                                         "a.mid").events


def _expect_error(path, *fragments):
    with pytest.raises(MidiFileError) as info:
        read_midi_file(path)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert path.name in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mid"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096,
                                                       dtype=np.uint8).tobytes())
    _expect_error(path, "not a Standard MIDI File (no MThd header)")


def test_wav_header(tmp_path):
    path = tmp_path / "sound.wav"
    path.write_bytes(b"RIFF" + struct.pack("<L", 36) + b"WAVEfmt " +
                     bytes(100))
    _expect_error(path, "not a Standard MIDI File")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mid"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nowhere.mid", "not found")


def test_directory(tmp_path):
    d = tmp_path / "dir.mid"
    d.mkdir()
    _expect_error(d)


def test_truncated_file(tmp_path):
    data = _save(tmp_path, "a.mid", _type1_song()).read_bytes()
    path = tmp_path / "cut.mid"
    for cut in (1, 5, 20, len(data) - 30, len(data) - 14):
        path.write_bytes(data[:-cut])
        _expect_error(path, "truncated")
    path.write_bytes(data[:-1])
    _expect_error(path, "track 3 ends early")
    path.write_bytes(data[:10])
    _expect_error(path, "header ends early")


def test_truncated_track_count(tmp_path):
    data = bytearray(_save(tmp_path, "a.mid", _type1_song()).read_bytes())
    data[10:12] = struct.pack(">H", 5)          # header claims 5 tracks
    path = tmp_path / "few.mid"
    path.write_bytes(bytes(data))
    _expect_error(path, "truncated", "5 tracks, found 3")


def test_corrupt_track_data(tmp_path):
    mid = mido.MidiFile(type=0)
    tr = mido.MidiTrack()
    tr.append(mido.Message("note_on", note=60, velocity=100, time=0))
    mid.tracks.append(tr)
    data = bytearray(_save(tmp_path, "a.mid", mid).read_bytes())
    i = data.index(bytes([0x90, 60, 100]))
    bad = tmp_path / "bad.mid"
    data[i + 1] = 0x80 | 60                   # data byte out of range
    bad.write_bytes(bytes(data))
    _expect_error(bad, "track 1 is corrupt")
    data[i:i + 3] = bytes([60, 100, 0])       # running status without status
    bad.write_bytes(bytes(data))
    _expect_error(bad, "track 1 is corrupt")
    # track length shorter than its content: last event runs past the end
    data = bytearray(_save(tmp_path, "a.mid", mid).read_bytes())
    data[18:22] = struct.pack(">L", 2)
    bad.write_bytes(bytes(data[:22 + 2]))
    _expect_error(bad, "track 1")


def test_bad_header_fields(tmp_path):
    data = bytearray(_save(tmp_path, "a.mid", _type1_song()).read_bytes())
    path = tmp_path / "hdr.mid"
    bad = bytearray(data)
    bad[8:10] = struct.pack(">H", 7)
    path.write_bytes(bytes(bad))
    _expect_error(path, "format 7")
    bad = bytearray(data)
    bad[14:18] = b"JUNK"
    path.write_bytes(bytes(bad))
    _expect_error(path, "skipped unknown chunks 'JUNK'")
    bad[14:18] = b"\x00\x01MT"
    path.write_bytes(bytes(bad))
    _expect_error(path, "bad chunk at byte 14")
    bad = bytearray(data)
    bad[4:8] = struct.pack(">L", 2)
    path.write_bytes(bytes(bad))
    _expect_error(path, "MThd")
