"""A JACK MIDI input client whose process callback is compiled code: sample-accurate live MIDI.

Why not rtmidi here: RtMidi 5 (bundled with python-rtmidi 1.5) stamps a JACK MIDI message with
``jack_get_time()`` when its client runs, so the message's frame inside the period is lost, and
a Python callback on JACK's thread would have to take the GIL. This client registers a Numba
``cfunc`` as its JACK process callback. Each cycle it copies every event of its input port
(the absolute frame ``jack_last_frame_time + offset``, the size and the first 8 bytes) into a
``jack_ringbuffer`` (JACK's lock-free single-producer single-consumer ring). It never takes the
GIL, never allocates and makes no system call. The render side drains the ring at each block
start (``read``).

Threading: the process callback runs on JACK's real-time thread and writes the ring and the
counters in ``state`` (an int64 array that it alone writes, except ``state[_ST_RUN]``). The
render side is the ring's only reader. ``open``/``close`` run on the control thread before the
audio stream starts and after it stops. Every libjack call from Python goes through ctypes,
which releases the GIL around the call, so it cannot deadlock against a Python audio callback
that JACK is waiting for (the trap python-rtmidi falls into; see midi_input).

Records in the ring are 16 bytes: ``uint32 frame, uint32 size, uint8 data[8]``. Messages longer
than 8 bytes (SysEx) are recorded with their size and first bytes and dropped by the reader;
the instrument ignores SysEx. A full ring drops the message and counts it (``overflows``).

Releases before everything else: the last ``reserve`` records of the ring (an eighth of it by
default) take only the messages that end a sound (a note-off, a note-on at velocity 0, the
sustain pedal lifted, All Sound Off, All Notes Off). So a reader that falls behind in a flood
loses notes it never started, not the ends of notes it started, and the ring's order (and each
message's frame) stays as it was: a dropped note-on followed by its kept note-off is harmless, a
kept note-on whose note-off was dropped is a stuck note. Should a release find even the reserve
full, it is counted (``lost_releases``) and the reader releases every note the port holds
(``midi_input``): a cut instead of a stuck note.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

import numpy as np

RECORD = 16
_ST_CLIENT, _ST_PORT, _ST_RB, _ST_BASE, _ST_OVERFLOW, _ST_CYCLES, _ST_LAST, _ST_SHUTDOWN = range(8)
_ST_EVENT = 8          # jack_midi_event_t scratch (24 bytes: 3 int64)
_ST_RESERVE = 11       # bytes of the ring only releases may fill
_ST_RECORD = 12        # the record being written (2 int64)
_ST_LOST_RELEASE = 14  # releases dropped: the reserve was full too
_ST_LEN = 16
_JACK_NO_START_SERVER = 0x01
_JACK_PORT_IS_INPUT = 0x1
_MIDI_TYPE = b"8 bit raw midi"


class JackMidiError(RuntimeError):
    """libjack is missing, the server is not running, or the port could not be made."""


class _Lib:
    """libjack (and libc's memcpy) through ctypes. Pointers are declared as uint64 so the same
    prototypes serve Python and the compiled callback (same calling convention as void*)."""

    def __init__(self):
        name = ctypes.util.find_library("jack") or "libjack.so.0"
        try:
            self.jack = ctypes.CDLL(name)
        except OSError as exc:
            raise JackMidiError(f"libjack is not installed ({exc}); install the jackd2 package") from None
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        # NB: the render side's calls keep the GIL (PyDLL): they are short and never block, and a
        # ctypes call through CDLL releases the GIL, which a waiting thread (a model loader) then
        # holds for up to the switch interval (the GIL convoy engine_host describes). Side by side
        # beside a busy window and a model load, with and without this client, the render thread
        # was late as often (12-25 ring underruns in 20 s either way on a noisy day).
        # The control side's calls (open, activate, close) release it: they wait on the server.
        rt = ctypes.PyDLL(name)
        u64, u32, i32, cp = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_char_p
        self.memcpy = self._fn(libc, "memcpy", u64, u64, u64, u64)
        j = self.jack
        self.client_open = self._fn(j, "jack_client_open", u64, cp, i32, u64)
        self.client_close = self._fn(j, "jack_client_close", i32, u64)
        self.get_client_name = self._fn(j, "jack_get_client_name", cp, u64)
        self.port_register = self._fn(j, "jack_port_register", u64, u64, cp, cp, ctypes.c_ulong, ctypes.c_ulong)
        self.port_name = self._fn(j, "jack_port_name", cp, u64)
        self.set_process_callback = self._fn(j, "jack_set_process_callback", i32, u64, u64, u64)
        self.on_shutdown = self._fn(j, "jack_on_shutdown", None, u64, u64, u64)
        self.activate = self._fn(j, "jack_activate", i32, u64)
        self.deactivate = self._fn(j, "jack_deactivate", i32, u64)
        self.get_sample_rate = self._fn(j, "jack_get_sample_rate", u32, u64)
        self.get_buffer_size = self._fn(j, "jack_get_buffer_size", u32, u64)
        self.last_frame_time = self._fn(j, "jack_last_frame_time", u32, u64)      # for the callback
        self.rt_last_frame_time = self._fn(rt, "jack_last_frame_time", u32, u64)
        self.frames_to_time = self._fn(rt, "jack_frames_to_time", u64, u64, u32)
        self.get_time = self._fn(rt, "jack_get_time", u64)
        self.port_get_buffer = self._fn(j, "jack_port_get_buffer", u64, u64, u32)
        self.midi_get_event_count = self._fn(j, "jack_midi_get_event_count", u32, u64)
        self.midi_event_get = self._fn(j, "jack_midi_event_get", i32, u64, u64, u32)
        self.rb_create = self._fn(j, "jack_ringbuffer_create", u64, u64)
        self.rb_free = self._fn(j, "jack_ringbuffer_free", None, u64)
        self.rb_mlock = self._fn(j, "jack_ringbuffer_mlock", i32, u64)
        self.rb_write = self._fn(j, "jack_ringbuffer_write", u64, u64, u64, u64)
        self.rb_write_space = self._fn(j, "jack_ringbuffer_write_space", u64, u64)
        self.rb_read = self._fn(rt, "jack_ringbuffer_read", u64, u64, u64, u64)
        self.rb_read_space = self._fn(rt, "jack_ringbuffer_read_space", u64, u64)

    @staticmethod
    def _fn(lib, name, restype, *argtypes):
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise JackMidiError(f"libjack has no {name}") from None
        f.restype = restype
        f.argtypes = list(argtypes)
        return f


_lock = threading.Lock()
_compiled: tuple | None = None      # (_Lib, process cfunc, shutdown cfunc), once per process


def _callbacks() -> tuple:
    """Load libjack and compile the two callbacks (about a second, once per process). The
    compiled code holds libjack's function addresses, so it is never cached to disk."""
    global _compiled
    with _lock:
        if _compiled is not None:
            return _compiled
        lib = _Lib()
        from numba import carray, cfunc, types

        port_get_buffer, event_count = lib.port_get_buffer, lib.midi_get_event_count
        event_get, last_frame_time, memcpy = lib.midi_event_get, lib.last_frame_time, lib.memcpy
        rb_write, rb_write_space = lib.rb_write, lib.rb_write_space

        @cfunc(types.int32(types.uint32, types.CPointer(types.int64)), nopython=True)
        def process(nframes, arg):
            st = carray(arg, (_ST_LEN,))
            base = st[_ST_BASE]
            buf = port_get_buffer(st[_ST_PORT], nframes)
            f0 = last_frame_time(st[_ST_CLIENT])
            n = event_count(buf)
            for i in range(n):
                if event_get(base + 8 * _ST_EVENT, buf, i) != 0:
                    continue
                offset = st[_ST_EVENT] & 0xFFFFFFFF
                size = st[_ST_EVENT + 1]
                st[_ST_RECORD] = ((f0 + offset) & 0xFFFFFFFF) | (min(size, 0x7FFFFFFF) << 32)
                st[_ST_RECORD + 1] = 0
                memcpy(base + 8 * (_ST_RECORD + 1), st[_ST_EVENT + 2], min(size, 8))
                b = st[_ST_RECORD + 1]
                kind, d1, d2 = b & 0xF0, (b >> 8) & 0xFF, (b >> 16) & 0xFF
                release = size == 3 and (kind == 0x80 or (kind == 0x90 and d2 == 0) or (
                    kind == 0xB0 and ((d1 == 64 and d2 < 64) or d1 == 120 or d1 == 123)))
                need = RECORD if release else RECORD + st[_ST_RESERVE]
                if rb_write_space(st[_ST_RB]) < need:
                    st[_ST_OVERFLOW] += 1
                    if release:
                        st[_ST_LOST_RELEASE] += 1
                else:
                    rb_write(st[_ST_RB], base + 8 * _ST_RECORD, RECORD)
            st[_ST_LAST] = f0
            st[_ST_CYCLES] += 1
            return 0

        @cfunc(types.void(types.CPointer(types.int64)), nopython=True)
        def shutdown(arg):
            st = carray(arg, (_ST_LEN,))
            st[_ST_SHUTDOWN] = 1

        _compiled = (lib, process, shutdown)
        return _compiled


class JackMidiClient:
    """One JACK client ``name`` with one MIDI input port ``port``; see the module docstring."""

    def __init__(self, name: str, port: str = "in", ring_records: int = 1 << 14, reserve: int | None = None):
        """``ring_records``: the ring's size in messages (a power of two; JACK rounds up);
        ``reserve``: how many of them only releases may fill (default an eighth)."""
        reserve = ring_records // 8 if reserve is None else int(reserve)
        if not 0 <= reserve < ring_records:
            raise ValueError(f"a reserve of {reserve} records in a ring of {ring_records}")
        self.lib, self._process, self._shutdown = _callbacks()
        lib = self.lib
        self.state = np.zeros(_ST_LEN, np.int64)
        self._buf = np.zeros(ring_records * RECORD, np.uint8)     # the reader's copy of the ring
        self._none = self._buf[:0].reshape(0, RECORD)             # NB: returned when nothing came (no allocation)
        self._buf_addr = self._buf.ctypes.data
        self.state[_ST_BASE] = self.state.ctypes.data
        self.state[_ST_RESERVE] = reserve * RECORD
        status = np.zeros(1, np.int32)
        self.client = lib.client_open(name.encode(), _JACK_NO_START_SERVER, status.ctypes.data)
        if not self.client:
            raise JackMidiError(f"cannot open a JACK client {name!r} (JACK status 0x{int(status[0]):x}); "
                                "is the JACK server running?")
        self.rb = 0
        try:
            self.port = lib.port_register(self.client, port.encode(), _MIDI_TYPE, _JACK_PORT_IS_INPUT, 0)
            if not self.port:
                raise JackMidiError(f"JACK refused the MIDI input port {port!r}")
            self.rb = lib.rb_create(ring_records * RECORD)
            if not self.rb:
                raise JackMidiError("could not allocate the JACK MIDI ring buffer")
            lib.rb_mlock(self.rb)
            st = self.state
            st[_ST_CLIENT], st[_ST_PORT], st[_ST_RB] = self.client, self.port, self.rb
            if lib.set_process_callback(self.client, self._process.address, st.ctypes.data) != 0:
                raise JackMidiError("JACK refused the MIDI process callback")
            lib.on_shutdown(self.client, self._shutdown.address, st.ctypes.data)
            self.sample_rate = int(lib.get_sample_rate(self.client))
            self.period = int(lib.get_buffer_size(self.client))
            self.client_name = lib.get_client_name(self.client).decode()
            self.port_name = lib.port_name(self.port).decode()
            if lib.activate(self.client) != 0:
                raise JackMidiError(f"JACK did not activate the MIDI client {name!r}")
        except BaseException:
            self._release()
            raise
        self._perf_minus_jack = 0.0

    # -- control side ----------------------------------------------------------------------
    def close(self) -> None:
        """Deactivate and close (control thread, after the audio stream has stopped)."""
        if self.client:
            self.lib.deactivate(self.client)
        self._release()

    def _release(self) -> None:
        if self.client:
            self.lib.client_close(self.client)
            self.client = 0
        if self.rb:
            self.lib.rb_free(self.rb)
            self.rb = 0

    @property
    def overflows(self) -> int:
        """Messages dropped because the ring was full (the reader fell behind)."""
        return int(self.state[_ST_OVERFLOW])

    @property
    def lost_releases(self) -> int:
        """Of ``overflows``, the releases (note-offs, pedal up, All Notes/Sound Off): the
        reserve was full too."""
        return int(self.state[_ST_LOST_RELEASE])

    @property
    def cycles(self) -> int:
        return int(self.state[_ST_CYCLES])

    @property
    def server_gone(self) -> bool:
        return bool(self.state[_ST_SHUTDOWN])

    # -- render side -----------------------------------------------------------------------
    def cycle_frame(self) -> int:
        """The first frame of JACK's current cycle (any thread; every client of the server
        sees the same cycle). Inside an audio callback it is the cycle being processed."""
        return int(self.lib.rt_last_frame_time(self.client)) if self.client else 0

    def read(self) -> np.ndarray:
        """Take every queued record: a view of uint8 [n, 16] valid until the next call."""
        if not self.client or self.state[_ST_SHUTDOWN]:
            return self._none
        lib = self.lib
        n = int(lib.rb_read_space(self.rb))
        n -= n % RECORD
        n = min(n, self._buf.shape[0])
        if not n:
            return self._none
        lib.rb_read(self.rb, self._buf_addr, n)
        return self._buf[:n].reshape(-1, RECORD)

    def sync_clock(self) -> None:
        """Measure the offset between JACK's microsecond clock and ``perf_counter`` (render side,
        once per drain; the two are both monotonic but need not share an origin or rate)."""
        t0 = time.perf_counter()
        j = self.lib.get_time()
        t1 = time.perf_counter()
        self._perf_minus_jack = 0.5 * (t0 + t1) - j * 1e-6

    def frame_to_perf(self, frame32: int) -> float:
        """When a frame happens (its start on JACK's clock, through JACK's own frame timer),
        as ``perf_counter`` seconds."""
        return self.lib.frames_to_time(self.client, frame32 & 0xFFFFFFFF) * 1e-6 + self._perf_minus_jack


def frame_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit JACK frame times (they wrap every 24.8 h at 48 kHz)."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d >= 0x80000000 else d


def parse_records(records: np.ndarray) -> list[tuple[int, bytes]]:
    """(frame32, message bytes) per record; messages over 8 bytes come back empty."""
    out = []
    for r in records:
        frame = int(r[:4].view(np.uint32)[0])
        size = int(r[4:8].view(np.uint32)[0])
        out.append((frame, bytes(r[8:8 + size]) if size <= 8 else b""))
    return out
