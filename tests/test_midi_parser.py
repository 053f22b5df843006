"""Tests for livewave.midi_parser."""

import numpy as np
import pytest

from livewave.midi_parser import (
    CHANNEL_PRESSURE,
    CONTROL_CHANGE,
    NOTE_OFF,
    NOTE_ON,
    PITCH_BEND,
    POLY_PRESSURE,
    PROGRAM_CHANGE,
    MidiParser,
    data_length,
    message_kind,
)


@pytest.fixture
def p():
    return MidiParser()


def test_constants_and_helpers():
    assert (NOTE_OFF, NOTE_ON, POLY_PRESSURE, CONTROL_CHANGE, PROGRAM_CHANGE,
            CHANNEL_PRESSURE, PITCH_BEND) == (0x80, 0x90, 0xA0, 0xB0, 0xC0,
                                              0xD0, 0xE0)
    assert message_kind(0x93) == NOTE_ON
    assert message_kind(0xEF) == PITCH_BEND
    assert message_kind(0xF8) == 0xF8
    assert data_length(0x95) == 2
    assert data_length(0xC3) == 1
    assert data_length(0xD0) == 1
    assert data_length(0xF2) == 2
    assert data_length(0xF6) == 0
    with pytest.raises(ValueError):
        data_length(0x40)
    with pytest.raises(ValueError):
        message_kind(256)


def test_note_on_off(p):
    assert p.feed(bytes([0x90, 60, 100])) == [(0x90, 60, 100)]
    assert p.feed([0x80, 60, 0]) == [(0x80, 60, 0)]
    assert p.errors == 0


def test_two_byte_messages(p):
    assert p.feed([0xC2, 5, 0xD2, 77]) == [(0xC2, 5, 0), (0xD2, 77, 0)]
    # running status for a 2-byte message
    assert p.feed([6, 7]) == [(0xD2, 6, 0), (0xD2, 7, 0)]
    assert p.errors == 0


def test_running_status(p):
    assert p.feed([0x90, 60, 100, 62, 100]) == [(0x90, 60, 100), (0x90, 62, 100)]
    # running status survives across feed calls and split messages
    assert p.feed([64]) == []
    assert p.feed([90]) == [(0x90, 64, 90)]
    assert p.errors == 0


def test_input_types(p):
    assert p.feed(bytearray([0xB0, 7, 127])) == [(0xB0, 7, 127)]
    assert p.feed(np.array([0xE1, 0, 64], dtype=np.uint8)) == [(0xE1, 0, 64)]
    assert p.feed(memoryview(b"\x91\x10\x20")) == [(0x91, 0x10, 0x20)]
    assert p.feed([np.int64(0x92), 1, 2]) == [(0x92, 1, 2)]
    assert p.errors == 0


def test_realtime_inside_message_does_not_disturb(p):
    data = [0x90, 0xF8, 60, 0xFE, 0xFA, 100, 0xFF, 62, 0xF8, 101]
    assert p.feed(data) == [(0x90, 60, 100), (0x90, 62, 101)]
    assert p.errors == 0


@pytest.mark.torture
def test_realtime_inside_sysex(p):
    data = [0xF0, 0x7E, 0xF8, 0x01, 0xFE, 0x02, 0xF7, 0x90, 60, 1]
    assert p.feed(data) == [(0x90, 60, 1)]
    assert p.errors == 0
    assert p.last_sysex_length == 3


def test_sysex_clears_running_status(p):
    assert p.feed([0x90, 60, 100]) == [(0x90, 60, 100)]
    assert p.feed([0xF0, 1, 2, 0xF7, 61, 100]) == []
    assert p.errors == 2
    assert "without a status byte" in p.last_error


def test_realtime_keeps_running_status(p):
    assert p.feed([0x90, 60, 100, 0xF8, 0xFC, 61, 100]) == [
        (0x90, 60, 100), (0x90, 61, 100)]


def test_large_sysex_skipped(p):
    body = np.random.default_rng(0).integers(0, 128, 100_000, dtype=np.uint8)
    assert p.feed(b"\xF0") == []
    assert p.feed(body) == []              # fed in one go ...
    for i in range(0, 1000, 100):          # ... and in small chunks
        assert p.feed(body[i:i + 100]) == []
    assert p.feed(b"\xF7\x90\x3c\x40") == [(0x90, 60, 64)]
    assert p.last_sysex_length == 101_000
    assert p.errors == 0
    assert not hasattr(p, "_sysex_buffer")


def test_status_terminates_sysex(p):
    assert p.feed([0xF0, 1, 2, 3, 0x80, 60, 0]) == [(0x80, 60, 0)]
    assert p.errors == 0


def test_system_common_consumed(p):
    # song position (2 bytes), song select (1), MTC quarter frame (1), tune req
    data = [0xF2, 0x10, 0x20, 0xF3, 5, 0xF1, 0x33, 0xF6, 0x90, 1, 2]
    assert p.feed(data) == [(0x90, 1, 2)]
    assert p.errors == 0
    # system common clears running status
    assert p.feed([0xF6, 3, 4]) == []
    assert p.errors == 2


@pytest.mark.torture
def test_truncated_message_resyncs(p):
    assert p.feed([0x90, 0x3C, 0x80, 0x3C, 0x00]) == [(0x80, 0x3C, 0)]
    assert p.errors == 1
    assert p.last_error == ("truncated message 0x90 0x3c: expected 2 data "
                            "bytes, got 1")
    assert p.feed([0xB0, 0xC0, 5]) == [(0xC0, 5, 0)]
    assert p.errors == 2
    assert "0xb0" in p.last_error and "got 0" in p.last_error


def test_truncated_running_status_message(p):
    assert p.feed([0x90, 60, 100, 61, 0xE0, 0, 64]) == [
        (0x90, 60, 100), (0xE0, 0, 64)]
    assert p.errors == 1
    assert "0x90 0x3d" in p.last_error


def test_data_byte_without_status(p):
    assert p.feed([0x45, 0x10]) == []
    assert p.errors == 2
    assert p.last_error == "data byte 0x10 without a status byte"
    assert p.feed([0x90, 60, 100]) == [(0x90, 60, 100)]


@pytest.mark.torture
def test_bytes_above_127_are_status_bytes(p):
    # 0x90 60 then 0xA5 (not a valid velocity): partial dropped, 0xA5 is status
    assert p.feed([0x90, 60, 0xA5, 10, 20]) == [(0xA5, 10, 20)]
    assert p.errors == 1
    # undefined status bytes are errors and clear running status
    assert p.feed([0xF4, 1, 2]) == []
    assert p.errors == 4


def test_values_outside_byte_range(p):
    assert p.feed([0x90, 300, 60, -1, 100]) == [(0x90, 60, 100)]
    assert p.errors == 2
    assert p.last_error == "value -1 is not a byte"
    assert p.feed([0x90, 60, 1.5, "x", None, 70]) == [(0x90, 60, 70)]
    assert p.errors == 5
    assert p.feed([300]) == []
    assert p.last_error == "value 300 is not a byte"


@pytest.mark.torture
def test_bad_input_objects_never_raise(p):
    assert p.feed(None) == []
    assert p.feed(12345) == []
    assert p.feed(object()) == []
    assert p.errors == 3
    assert p.feed(np.array([[0x90, 1, 2]], dtype=np.int32)) == [(0x90, 1, 2)]


def test_parse_message_good(p):
    assert p.parse_message([0x90, 60, 100]) == (0x90, 60, 100)
    assert p.parse_message([0xC5, 3]) == (0xC5, 3, 0)
    assert p.parse_message((0xE0, 0, 64)) == (0xE0, 0, 64)
    # valid system messages: None but no error
    assert p.parse_message([0xF8]) is None
    assert p.parse_message([0xF0, 1, 2, 0xF7]) is None
    assert p.parse_message([0xF2, 1, 2]) is None
    assert p.errors == 0


@pytest.mark.parametrize("msg, fragment", [
    ([], "empty"),
    ([60, 100], "does not start with a status byte"),
    ([0x90, 60], "expects 2 data bytes, got 1"),
    ([0x90, 60, 100, 5], "expects 2 data bytes, got 3"),
    ([0xC0, 1, 2], "expects 1 data byte, got 2"),
    ([0x90, 60, 200], "data byte 0xc8"),
    ([0x90, 60, 300], "value 300 is not a byte"),
    ([0xF0, 1, 2], "not terminated"),
    ([0xF4], "undefined"),
    (None, "not a sequence"),
])
def test_parse_message_bad(p, msg, fragment):
    assert p.parse_message(msg) is None
    assert p.errors == 1
    assert fragment in p.last_error


def test_parse_message_does_not_disturb_stream(p):
    assert p.feed([0x90, 60]) == []
    assert p.parse_message([0x80, 1, 2]) == (0x80, 1, 2)
    assert p.parse_message([0xB0]) is None
    assert p.feed([100, 61, 101]) == [(0x90, 60, 100), (0x90, 61, 101)]
    p.feed([0xF0, 1])
    assert p.parse_message([0xC0, 1]) == (0xC0, 1, 0)
    assert p.feed([2, 0xF7, 0x91, 1, 2]) == [(0x91, 1, 2)]
    assert p.errors == 1


@pytest.mark.torture
def test_fuzz_random_bytes(p):
    data = np.random.default_rng(1234).integers(0, 256, 1_000_000,
                                                dtype=np.uint8)
    out = p.feed(data)
    out += p.feed(list(data[:50_000].tolist()) + [999, -5])
    for status, d1, d2 in out:
        assert 0x80 <= status <= 0xEF
        assert 0 <= d1 < 128 and 0 <= d2 < 128
        if status & 0xF0 in (PROGRAM_CHANGE, CHANNEL_PRESSURE):
            assert d2 == 0
    assert len(out) > 1000
    assert p.errors > 0 and p.last_error
    # terminate whatever SysEx/partial state we are in, then a clean note-on
    assert p.feed([0x93, 60, 100]) == [(0x93, 60, 100)]
    assert p.feed([0x83, 60, 0]) == [(0x83, 60, 0)]


@pytest.mark.torture
def test_fuzz_small_chunks_match_single_feed():
    data = np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8)
    a, b = MidiParser(), MidiParser()
    whole = a.feed(data)
    pieces = []
    for i in range(0, len(data), 7):
        pieces += b.feed(data[i:i + 7].tobytes())
    assert whole == pieces
    assert a.errors == b.errors
