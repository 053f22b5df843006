"""The test keyboard and recorder's JACK process callbacks, as compiled code.

The tests' own JACK clients were Python callbacks (JACK-Client): each cycle they took the GIL
and ran interpreted code on JACK's real-time thread. On this shared VM they were the clients
JACK blamed most (the 60-minute soak: 1946 xruns on the benchmark's Python MIDI player against
228 on livewave), and a late client's MIDI is dropped by JACK, so the MIDI flood and the timing
tests lost messages the instrument never saw. These callbacks are Numba ``cfunc``s on libjack
through ctypes (as ``livewave.jack_midi_client``): no GIL, no allocation, no system call.

One int64 ``root`` array is each client's callback argument. It holds the clients and ports,
the flags and counters, and the address and length of the current schedule (``sched``: frames,
byte offsets, sizes and, written by the callback, the offset and absolute frame of each event
sent). ``schedule`` builds a new one and publishes it with one store of its length.

Threading: the callbacks run on JACK's real-time thread(s) (with ``split``, the sender and the
recorder are two clients that JACK may run on two threads: the recorder alone writes ``START``
and the recording, the sender alone the sent counters). The control side writes ``ARMED`` and
the schedule before arming.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

from livewave.jack_midi_client import JackMidiError, _Lib

(CLIENT, MIDI_PORT, REC_CLIENT, N_IN, ARMED, START, NEXT, N_EVENTS, SCHED, BLOB, REC, REC_LEN,
 RECORDED, N_SENT) = range(14)
IN0 = 14                 # input ports, up to MAX_IN
MAX_IN = 8
HEADER = IN0 + MAX_IN
_AUDIO = b"32 bit float mono audio"
_MIDI = b"8 bit raw midi"
_IS_INPUT, _IS_OUTPUT = 0x1, 0x2
_NO_START_SERVER = 0x01

_lock = threading.Lock()
_compiled: tuple | None = None


def _callbacks() -> tuple:
    """libjack, and the three process callbacks (send and record, send only, record only) compiled once
    per process (about two seconds)."""
    global _compiled
    with _lock:
        if _compiled is not None:
            return _compiled
        lib = _Lib()
        u64, u32, i32 = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int
        lib.midi_clear_buffer = lib._fn(lib.jack, "jack_midi_clear_buffer", None, u64)
        lib.midi_event_write = lib._fn(lib.jack, "jack_midi_event_write", i32, u64, u32, u64, u64)
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        as_i64 = lib._fn(libc, "memcpy", ctypes.POINTER(ctypes.c_int64), u64, u64, u64)   # an address, typed
        from numba import carray, cfunc, njit, types

        port_get_buffer, last_frame_time, memcpy = lib.port_get_buffer, lib.last_frame_time, lib.memcpy
        clear, write = lib.midi_clear_buffer, lib.midi_event_write

        @njit(nogil=True)
        def send(nframes, st):
            buf = port_get_buffer(st[MIDI_PORT], nframes)
            clear(buf)
            n = st[N_EVENTS]
            start = st[START]
            if not st[ARMED] or start < 0 or st[NEXT] >= n:
                return
            now = np.int64(last_frame_time(st[CLIENT]))
            base = now - start
            sched = carray(as_i64(st[SCHED], st[SCHED], 0), (5 * n,))
            i = st[NEXT]
            k = st[N_SENT]
            while i < n and sched[i] < base + nframes:
                off = sched[i] - base
                if off < 0:
                    off = 0
                if write(buf, off, st[BLOB] + sched[n + i], sched[2 * n + i]) != 0:
                    break                  # the port's buffer is full this cycle: the rest go next cycle
                sched[3 * n + k] = sched[i]
                sched[4 * n + k] = now + off
                k += 1
                i += 1
            st[N_SENT] = k
            st[NEXT] = i

        @njit(nogil=True)
        def record(nframes, st):
            if not st[ARMED] or st[RECORDED]:
                return
            now = np.int64(last_frame_time(st[REC_CLIENT]))
            if st[START] < 0:
                st[START] = now
            base = now - st[START]
            length = st[REC_LEN]
            n = min(np.int64(nframes), length - base)
            if n > 0:
                for c in range(st[N_IN]):
                    src = port_get_buffer(st[IN0 + c], nframes)
                    memcpy(st[REC] + 4 * (c * length + base), src, 4 * n)
            if base + nframes >= length:
                st[RECORDED] = 1

        sig = types.int32(types.uint32, types.CPointer(types.int64))

        @cfunc(sig, nopython=True)
        def both(nframes, arg):
            st = carray(arg, (HEADER,))
            if st[ARMED] and st[START] < 0:
                st[START] = np.int64(last_frame_time(st[CLIENT]))
            send(nframes, st)
            record(nframes, st)
            return 0

        @cfunc(sig, nopython=True)
        def send_only(nframes, arg):
            send(nframes, carray(arg, (HEADER,)))
            return 0

        @cfunc(sig, nopython=True)
        def record_only(nframes, arg):
            record(nframes, carray(arg, (HEADER,)))
            return 0

        _compiled = (lib, both, send_only, record_only)
        return _compiled


class CompiledRig:
    """The JACK side of ``jack_rig.Rig``: client ``name`` with a MIDI out ``midi_out`` and
    ``channels`` audio ins (or, with ``split``, the ins on a second client ``name-rec``),
    recording ``frames`` frames from the first cycle after ``arm``."""

    def __init__(self, name: str, frames: int, channels: int = 1, split: bool = False):
        if not 0 <= channels <= MAX_IN:
            raise ValueError(f"channels: 0..{MAX_IN}")
        self.lib, both, send_only, record_only = _callbacks()
        self.root = np.zeros(HEADER, np.int64)
        self.root[START] = -1
        self.recording_cm = np.zeros((channels, int(frames)), np.float32)     # channel-major
        self._blob = np.zeros(1, np.uint8)
        self._sched = np.zeros(0, np.int64)
        st = self.root
        st[N_IN], st[REC], st[REC_LEN] = channels, self.recording_cm.ctypes.data, int(frames)
        st[BLOB] = self._blob.ctypes.data
        self.clients: list[int] = []
        try:
            send_client = self._open(name)
            st[CLIENT] = send_client
            st[MIDI_PORT] = self._register(send_client, "midi_out", _MIDI, _IS_OUTPUT)
            rec_client = self._open(f"{name}-rec") if split else send_client
            st[REC_CLIENT] = rec_client
            for c in range(channels):
                st[IN0 + c] = self._register(rec_client, f"in_{c + 1}", _AUDIO, _IS_INPUT)
            lib = self.lib
            if split:
                self._set(send_client, send_only)
                self._set(rec_client, record_only)
                self._activate(rec_client)
            else:
                self._set(send_client, both)
            self._activate(send_client)
            self.rate = int(lib.get_sample_rate(send_client))
            self.name = lib.get_client_name(send_client).decode()
            self.rec_name = lib.get_client_name(rec_client).decode()
        except BaseException:
            self.close()
            raise

    def _open(self, name: str) -> int:
        status = np.zeros(1, np.int32)
        c = self.lib.client_open(name.encode(), _NO_START_SERVER, status.ctypes.data)
        if not c:
            raise JackMidiError(f"cannot open a JACK client {name!r} (status 0x{int(status[0]):x})")
        self.clients.append(c)
        return c

    def _register(self, client: int, port: str, kind: bytes, flags: int) -> int:
        p = self.lib.port_register(client, port.encode(), kind, flags, 0)
        if not p:
            raise JackMidiError(f"JACK refused the port {port!r}")
        return p

    def _set(self, client: int, fn) -> None:
        if self.lib.set_process_callback(client, fn.address, self.root.ctypes.data) != 0:
            raise JackMidiError("JACK refused the process callback")

    def _activate(self, client: int) -> None:
        if self.lib.activate(client) != 0:
            raise JackMidiError("JACK did not activate the client")

    # -- control side ----------------------------------------------------------------------
    def schedule(self, events: list[tuple[int, bytes]]) -> None:
        """Events (frame after the recording's first frame, bytes), sorted by frame, before ``arm``."""
        if self.root[ARMED]:
            raise RuntimeError("schedule before arming")
        n = len(events)
        blob = np.frombuffer(b"".join(d for _, d in events) or b"\0", np.uint8).copy()
        sched = np.zeros(5 * max(n, 1), np.int64)
        sizes = np.fromiter((len(d) for _, d in events), np.int64, n)
        sched[:n] = [t for t, _ in events]
        sched[2 * n:3 * n] = sizes
        sched[n:2 * n] = np.concatenate(([0], np.cumsum(sizes)[:-1])) if n else []
        st = self.root
        st[N_EVENTS] = 0                      # NB: publish the new arrays, then their length
        self._blob, self._sched = blob, sched
        st[BLOB], st[SCHED], st[NEXT], st[N_SENT] = blob.ctypes.data, sched.ctypes.data, 0, 0
        st[N_EVENTS] = n

    def arm(self) -> None:
        self.root[ARMED] = 1

    @property
    def start_frame(self) -> int:
        return int(self.root[START])

    @property
    def sent(self) -> list[tuple[int, int]]:
        """(frame offset, absolute frame) of each event sent, in order."""
        n, k = int(self.root[N_EVENTS]), int(self.root[N_SENT])
        return list(zip(self._sched[3 * n:3 * n + k].tolist(), self._sched[4 * n:4 * n + k].tolist(), strict=True))

    @property
    def n_sent(self) -> int:
        return int(self.root[N_SENT])

    @property
    def all_sent(self) -> bool:
        return bool(self.root[NEXT] >= self.root[N_EVENTS])

    @property
    def recorded(self) -> bool:
        return bool(self.root[RECORDED])

    def close(self) -> None:
        for c in self.clients:
            self.lib.deactivate(c)
        for c in self.clients:
            self.lib.client_close(c)
        self.clients = []
