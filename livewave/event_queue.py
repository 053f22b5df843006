"""Timestamped MIDI event queue between MIDI threads (producers) and the render side (consumer).

Threading: any number of producer threads (one per MIDI port, plus the offline renderer or
the GUI) call ``push``; they serialise among themselves with a lock that the consumer
never takes. Exactly one consumer (the render side) calls ``peek_time`` / ``pop``.
The storage is a preallocated ring of numpy arrays; the write index is published after the
slot is filled (NB: under the GIL an int attribute store is atomic, so the consumer
never sees a half-written slot).

If the ring is full the event is dropped and counted, except that releases are never lost
(note-offs, velocity-0 note-ons, the sustain pedal lifted, All Sound Off, All Notes Off): they
go into overflow tables (16x128 keys, 16x3 controllers) with the write index they arrived at,
and the consumer applies each once it has read every event queued before it (``due_releases``):
so an older note-on still in the ring never sounds after its own note-off (a stuck note), and
the overflow keeps the order it broke into.
"""
from __future__ import annotations

import threading

import numpy as np

NO_EVENT = np.iinfo(np.int64).max
OVERFLOW_CONTROLLERS = (64, 120, 123)    # kept through an overflow: pedal up, All Sound Off, All Notes Off


class EventQueue:
    def __init__(self, capacity: int = 65536):
        cap = 1
        while cap < capacity:
            cap <<= 1
        self.capacity = cap
        self._mask = cap - 1
        self.time = np.zeros(cap, np.int64)
        self.data = np.zeros((cap, 3), np.int16)
        self.port = np.zeros(cap, np.int16)
        self._write = 0          # producers only
        self._read = 0           # consumer only
        self._lock = threading.Lock()
        # releases that found the ring full: the write index they arrived at, -1 where none
        self.overflow_offs = np.full((16, 128), -1, np.int64)
        self.overflow_ctl = np.full((16, len(OVERFLOW_CONTROLLERS)), -1, np.int64)
        self.overflow_pending = False
        self.dropped = 0         # events lost to overflow (releases excluded: those are kept)
        self.kept = 0            # releases kept through the overflow tables
        self._last_time = 0

    def push(self, time: int, status: int, d1: int, d2: int = 0, port: int = 0) -> bool:
        """Enqueue one channel message at absolute sample ``time``. Times are made
        non-decreasing (a late event is moved to the previous event's time)."""
        with self._lock:
            if time < self._last_time:
                time = self._last_time
            w = self._write
            if w - self._read >= self.capacity:
                kind = status & 0xF0
                if kind == 0x80 or (kind == 0x90 and d2 == 0):
                    self.overflow_offs[status & 0x0F, d1 & 0x7F] = w
                elif kind == 0xB0 and d1 in OVERFLOW_CONTROLLERS and (d1 != 64 or d2 < 64):
                    self.overflow_ctl[status & 0x0F, OVERFLOW_CONTROLLERS.index(d1)] = w
                else:
                    self.dropped += 1
                    return False
                self.kept += 1
                self.overflow_pending = True      # last: the consumer then sees the index
                return False
            i = w & self._mask
            self.time[i] = time
            self.data[i, 0] = status
            self.data[i, 1] = d1
            self.data[i, 2] = d2
            self.port[i] = port
            self._last_time = time
            self._write = w + 1          # publish
            return True

    def __len__(self) -> int:
        return self._write - self._read

    def peek_time(self) -> int:
        """Time of the next event, or NO_EVENT."""
        if self._read == self._write:
            return NO_EVENT
        return int(self.time[self._read & self._mask])

    def pop(self) -> tuple[int, int, int, int]:
        """(status, d1, d2, port) of the next event; call only after ``peek_time`` found one."""
        i = self._read & self._mask
        d = self.data[i]
        out = (int(d[0]), int(d[1]), int(d[2]), int(self.port[i]))
        self._read += 1
        return out

    def due_releases(self, handle) -> None:
        """Consumer side: ``handle(status, d1, d2)`` each overflowed release whose place in the
        ring has been read (every event queued before it), in the order: controllers' pedal
        up and All Sound/Notes Off, then the note-offs. Call at each block start while
        ``overflow_pending``."""
        self.overflow_pending = False
        r = self._read
        offs, ctl = self.overflow_offs, self.overflow_ctl
        for ch in range(16):
            for j in range(ctl.shape[1]):
                w = ctl[ch, j]
                if w >= 0:
                    if w <= r:
                        ctl[ch, j] = -1
                        handle(0xB0 | ch, OVERFLOW_CONTROLLERS[j], 0)
                    else:
                        self.overflow_pending = True
            for k in range(128):
                w = offs[ch, k]
                if w >= 0:
                    if w <= r:
                        offs[ch, k] = -1
                        handle(0x80 | ch, k, 0)
                    else:
                        self.overflow_pending = True

    def clear(self) -> None:
        """Consumer side: drop everything queued (used by a hard reset)."""
        self._read = self._write

    def restart_clock(self) -> None:
        """Drop everything and let times start again from 0 (the engine's clock went back to
        0: without this, the first events after a reset were held until the old last time)."""
        with self._lock:
            self._read = self._write
            self._last_time = 0
