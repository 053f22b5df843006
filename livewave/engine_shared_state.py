"""Shared memory between the engine process (writer) and the GUI (reader), without locks.

Shared memory layout (native byte order; offsets in bytes):
    0      header: 64 slots of 8 bytes; slot 0 is the sequence counter (int64), slot i+1 holds
           ``STATUS_FIELDS[i]`` (int64 or float64 as its kind says). Written by the child's
           command loop every ~10 ms as a seqlock: the counter is made odd, the fields and the
           notes are written, the counter is made even. A reader retries while the counter is
           odd or changed during its copy (a torn read).
    512    notes: uint8 [16 channels, 128 keys], part of the seqlock'd status: 0 = silent,
           else the velocity (1..127) of the sounding note, plus 128 when its key (and pedal)
           has been released and it is ringing out.
    2560   render area: int64 write index (samples ever written to the ring), int64 blocks,
           float64 peak and float64 RMS of the last block (over left and right, linear).
           Written on the render side right after each ``Engine.render``.
    2624   ring: float32 [RING_SIZE], the last RING_SIZE output samples (the first channel); sample k
           lives at ``k % RING_SIZE``. The render side copies a block in, then stores the write
           index (NB: after the data, so every sample below the index is complete); a reader
           takes the index, copies, and re-reads the index to see whether the writer lapped it.
"""
from __future__ import annotations

import time
from multiprocessing import shared_memory

import numpy as np

from .engine_commands import EngineError

MAGIC = 0x4C57_5348        # 'LWSH'
LAYOUT_VERSION = 4
HEADER_SLOTS = 64
NOTES_OFFSET = 512
RENDER_OFFSET = NOTES_OFFSET + 16 * 128
RING_OFFSET = RENDER_OFFSET + 64
RING_SIZE = 16384                        # a power of two
SHM_SIZE = RING_OFFSET + 4 * RING_SIZE
RELEASED = 128                           # notes: flag of a released (ringing out) note

STATUS_FIELDS = (
    ("magic", "i"), ("version", "i"), ("pid", "i"),
    ("state", "i"),                 # STATE_*
    ("heartbeat", "f"),             # time.monotonic() of the child at this write
    ("sample_rate", "i"), ("block", "i"), ("polyphony", "i"), ("voices", "i"),
    ("load", "f"),                  # DSP load, % of the block time (smoothed)
    ("load_peak", "f"),             # % since start
    ("latency_ms", "f"),            # MIDI to sound, as AudioOutput.latency reports it
    ("xruns", "i"), ("ring_underruns", "i"), ("generator_faults", "i"),
    ("sample_time", "i"), ("callbacks", "i"),
    ("midi_messages", "i"), ("midi_malformed", "i"), ("midi_late", "i"), ("dropped_events", "i"),
    ("model_generation", "i"),      # +1 at each successful load
    ("load_p999", "f"),             # render time per block, 99.9th percentile since start, % of the block
    ("rss_mb", "f"),                # the engine process's resident memory (updated about once a second)
    ("cpu_p999", "f"),              # the render thread's own CPU time per block, 99.9th percentile, % of the block
    ("cpu_peak", "f"),              # its maximum since start, % of the block
    ("heap_trims", "i"),            # freed memory given back to the system after swaps (heap_trim)
    ("gc_longest_ms", "f"),         # the longest garbage collection the command loop has run (garbage_collector)
)
assert len(STATUS_FIELDS) < HEADER_SLOTS
STATE_EMPTY, STATE_STARTING, STATE_RUNNING, STATE_STOPPING, STATE_STOPPED = range(5)
STATE_NAMES = ("empty", "starting", "running", "stopping", "stopped")


class SharedState:
    """The shared-memory block (layout in the module docstring). The parent ``create``s and
    ``unlink``s it; the child ``attach``es. Writer methods: ``write_status`` (one thread);
    the render side writes ``ring``, ``render_i`` and ``meters`` directly. Reader methods:
    ``status``, ``notes``, ``scope``."""

    _SLOTS = {name: (i + 1, kind) for i, (name, kind) in enumerate(STATUS_FIELDS)}

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool):
        self.shm = shm
        self.owner = owner
        buf = shm.buf
        self.hdr_i = np.ndarray((HEADER_SLOTS,), np.int64, buf, 0)
        self.hdr_f = np.ndarray((HEADER_SLOTS,), np.float64, buf, 0)
        self.note_map = np.ndarray((16, 128), np.uint8, buf, NOTES_OFFSET)
        self.render_i = np.ndarray((2,), np.int64, buf, RENDER_OFFSET)          # write index, blocks
        self.meters = np.ndarray((2,), np.float64, buf, RENDER_OFFSET + 16)     # peak, RMS
        self.ring = np.ndarray((RING_SIZE,), np.float32, buf, RING_OFFSET)

    @classmethod
    def create(cls) -> SharedState:
        self = cls(shared_memory.SharedMemory(create=True, size=SHM_SIZE), owner=True)
        self.clear()
        return self

    @classmethod
    def attach(cls, name: str) -> SharedState:
        shm = shared_memory.SharedMemory(name=name)
        if shm.size < SHM_SIZE:
            shm.close()
            raise EngineError(f"shared memory {name!r} has {shm.size} bytes; the layout needs {SHM_SIZE}")
        return cls(shm, owner=False)

    @property
    def name(self) -> str:
        return self.shm.name

    def clear(self) -> None:
        """Zero everything (parent, while no child writes)."""
        self.shm.buf[:SHM_SIZE] = bytes(SHM_SIZE)
        self.hdr_i[self._SLOTS["magic"][0]] = MAGIC
        self.hdr_i[self._SLOTS["version"][0]] = LAYOUT_VERSION

    def close(self) -> None:
        # NB: numpy views hold exports of the buffer; drop them before closing the mapping
        self.hdr_i = self.hdr_f = self.note_map = self.render_i = self.meters = self.ring = None
        self.shm.close()

    def unlink(self) -> None:
        try:
            self.shm.unlink()
        except FileNotFoundError:
            pass

    # -- writer (one thread of the child) ---------------------------------------------------
    def begin_write(self) -> None:
        self.hdr_i[0] += 1          # odd: a write is in progress

    def end_write(self) -> None:
        self.hdr_i[0] += 1          # even again, and different from before

    def write_status(self, values: dict, notes: np.ndarray | None = None) -> None:
        """Store ``values`` (names of STATUS_FIELDS) and the note map as one seqlock'd update."""
        self.begin_write()
        try:
            for k, v in values.items():
                slot, kind = self._SLOTS[k]
                if kind == "i":
                    self.hdr_i[slot] = v
                else:
                    self.hdr_f[slot] = v
            if notes is not None:
                self.note_map[:] = notes
        finally:
            self.end_write()

    # -- reader (the parent; lock-free) ------------------------------------------------------
    def _read_once(self, with_notes: bool):
        s1 = int(self.hdr_i[0])
        vals = {}
        for name, (slot, kind) in self._SLOTS.items():
            vals[name] = int(self.hdr_i[slot]) if kind == "i" else float(self.hdr_f[slot])
        notes = self.note_map.copy() if with_notes else None
        s2 = int(self.hdr_i[0])
        return s1, s2, vals, notes

    def _read(self, with_notes: bool, tries: int):
        for i in range(tries):
            s1, s2, vals, notes = self._read_once(with_notes)
            if s1 == s2 and not s1 & 1:
                return vals, notes, False
            if i >= 3:
                time.sleep(0.0001)     # the writer is mid-update: give it the CPU
        return vals, notes, True       # a writer that died mid-update: stale, and said so

    def status(self, tries: int = 50) -> dict:
        """A consistent snapshot of the status fields, plus the render side's meters, the ring's
        write index, ``age_s`` (since the child's last update) and ``torn`` (True only when no
        consistent copy was had in ``tries``: the writer died while writing)."""
        vals, _, torn = self._read(False, tries)
        vals["torn"] = torn
        vals["state_name"] = STATE_NAMES[vals["state"]] if 0 <= vals["state"] < len(STATE_NAMES) else "?"
        vals["age_s"] = time.monotonic() - vals["heartbeat"] if vals["heartbeat"] > 0 else float("inf")
        vals["peak"] = float(self.meters[0])
        vals["rms"] = float(self.meters[1])
        vals["write_index"] = int(self.render_i[0])
        return vals

    def notes_array(self, tries: int = 50) -> np.ndarray:
        """uint8 [16, 128] copy of the note map (see the layout)."""
        return self._read(True, tries)[1]

    def notes(self, tries: int = 50) -> list[tuple[int, int, int, bool]]:
        """Sounding notes as (channel 0..15, key, velocity, held)."""
        nm = self.notes_array(tries)
        return [(int(c), int(k), int(nm[c, k] & 127), not nm[c, k] & RELEASED) for c, k in zip(*np.nonzero(nm), strict=True)]

    def scope(self, n: int, tries: int = 20) -> np.ndarray:
        """The last ``n`` output samples (float32, oldest first; zeros before the first sample)."""
        n = int(n)
        if not 0 <= n <= RING_SIZE:
            raise ValueError(f"scope: n={n} must lie in 0..{RING_SIZE}")
        out = np.zeros(n, np.float32)
        for _ in range(tries):
            w = int(self.render_i[0])
            k = min(n, w)
            if k:
                i = (w - k) % RING_SIZE
                first = min(k, RING_SIZE - i)
                out[n - k:n - k + first] = self.ring[i:i + first]
                out[n - k + first:] = self.ring[:k - first]
            if int(self.render_i[0]) - w <= RING_SIZE - n:
                return out             # the writer did not reach what was copied
        return out
