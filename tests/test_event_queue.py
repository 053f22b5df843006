"""The engine's MIDI event queue when it is full: releases kept, in their place in the order."""
import numpy as np

from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.event_queue import EventQueue


def test_a_full_queue_keeps_releases_and_hands_them_over_after_what_came_before():
    q = EventQueue(8)
    for k in range(8):
        assert q.push(10 + k, 0x90, 60 + k, 100)
    assert not q.push(20, 0x80, 60, 0)            # a note-off
    assert not q.push(21, 0xB0, 64, 0)            # the pedal up
    assert not q.push(22, 0xB1, 123, 0)           # All Notes Off
    assert not q.push(23, 0x90, 70, 100)          # a note-on: dropped
    assert not q.push(24, 0xB0, 64, 127)          # the pedal down: dropped
    assert not q.push(25, 0xB0, 7, 0)             # a controller: dropped
    assert (q.kept, q.dropped) == (3, 3) and q.overflow_pending
    got = []
    for k in range(7):                            # its note-on (and six more) still queued: not yet
        q.due_releases(lambda *m: got.append(m))
        assert q.pop()[:3] == (0x90, 60 + k, 100)
    q.due_releases(lambda *m: got.append(m))
    assert got == [] and q.overflow_pending
    assert q.pop()[:3] == (0x90, 67, 100)
    q.due_releases(lambda *m: got.append(m))
    assert got == [(0xB0, 64, 0), (0x80, 60, 0), (0xB1, 123, 0)] and not q.overflow_pending


def test_note_offs_that_overflowed_the_engine_s_queue_never_leave_a_note_stuck():
    """A burst the queue cannot hold: sixteen notes fill it, their note-offs overflow. Each
    note-off must act after its own note-on (an overflow table applied at the next block start
    released them before the notes had started: all sixteen stuck)."""
    eng = Engine(EngineConfig(sample_rate=48000, max_block=128, event_capacity=16)).prepare()
    for k in range(16):
        assert eng.push_event(300 + 10 * k, 0x90, 48 + k, 100)
    for k in range(16):
        assert not eng.push_event(600 + k, 0x80, 48 + k, 0)
    out = np.zeros((128, eng.config.channels), np.float32)
    for _ in range(4):                            # to sample 512: every note-on (300..450) read
        eng.render(out)
    assert eng.voices.key_down.sum() == 16 and np.abs(out).max() > 0
    eng.render(out)                               # then the note-offs, at the next block's start
    assert not eng.voices.key_down.any() and eng.events.kept == 16
