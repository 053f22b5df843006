"""Record a take: what the engine plays, to a WAV file, and the MIDI it played, to a Standard MIDI
File, while it plays (`livewave play --record take.wav`; the app's File > Record).

The render side only copies. ``Engine._render_block`` hands every final block (after the post
chain: what the device gets) and every event it applies (at the sample it takes effect) to
``push_audio`` and ``push_event``: Numba copies into rings preallocated here, no allocation, no
lock, no I/O. A writer thread drains the rings about 20 times a second: the audio into the WAV
file (32-bit float, stereo as the engine plays it, or mono from a mono engine; a WAV holds 4 GB,
3 hours of stereo at 48 kHz), the events into the MIDI take. When the disk falls behind by more than
``RING_SECONDS`` the render side drops what does not fit and counts it (``dropped_samples``,
``dropped_events``); the music never waits for the disk.

**The MIDI take replays the audio take.** Its ticks are samples: at 48 kHz it is written at 120
BPM with 24000 ticks per quarter note, so ``livewave render take.mid`` puts every event at the
sample where it sounded live, and with the same model from a fresh engine renders the same
audio (``tests/test_take_recorder.py``; where the rate admits no such resolution, ``tick_base``
picks the finest one that fits the format and says so). The take opens with the channels' state
at its first sample (bend and its range, mod wheel, volume, expression, the sustain, sostenuto and soft pedals, channel
pressure), read on the render side where the engine keeps it, so the take needs nothing played
before it. A note still held when the take stops is released at its last sample, so no note of
the file hangs. A panic is written as what it does to the channels (All Sound Off, Reset All
Controllers, volume 100, the default bend range: ``panic_events``), a release of every note as
the sustain and sostenuto pedals up and All Notes Off (``release_events``). What MIDI cannot
say is the panic's hard stop (All Sound Off fades its voices out) and the reset of the model's
own state: replayed, a take is exact up to a panic, then differs for about 0.1 s (the built-in
instrument: back within 1e-5 after 0.1 s, measured); a model that keeps state between notes (a
recurrent decoder) may differ for longer. Slider moves from the app are not MIDI and are in the
audio only; a knob bound by MIDI learn is in the MIDI too, as the CC it sent.

Nothing is lost to a crash: the WAV header is rewritten as it grows (libsndfile's automatic
header update), and the MIDI file is rewritten (atomically) about once a second as the take
grows. Its bytes are encoded once, as events arrive (``MidiTake``), so a rewrite is a copy.

Threading: ``TakeRecorder.start``/``stop`` from the control side; ``push_*`` from the render
side only (one producer); the writer thread is the one consumer.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
from numba import njit

RING_SECONDS = 10.0          # how far the disk may fall behind before audio is dropped
EVENT_CAPACITY = 1 << 16     # events the writer may fall behind by
DRAIN_SECONDS = 0.05
MIDI_EVERY_SECONDS = 1.0
DEFAULT_TEMPO = 500_000      # microseconds per quarter note: 120 BPM
MAX_PPQ = 32767              # SMF division: 15 bits
SFC_SET_UPDATE_HEADER_AUTO = 0x1110     # libsndfile's sndfile.h


# positions: [written, read, dropped]; the producer owns [0] and [2], the consumer [1]
@njit(nogil=True, cache=True)
def push_audio(ring, pos, src, n):
    """``src[:, :n]`` (the engine's ``[channels, frames]`` mix) into ``ring`` ``[capacity,
    take channels]``: a take's channel ``c`` gets the mix's row ``c`` (a mono mix: its one row
    to every channel)."""
    cap = ring.shape[0]
    w = pos[0]
    room = cap - (w - pos[1])
    k = n if n <= room else room
    rows = src.shape[0]
    for c in range(ring.shape[1]):
        r = c if c < rows else rows - 1
        i = w % cap
        for j in range(k):
            ring[i, c] = src[r, j]
            i += 1
            if i == cap:
                i = 0
    pos[0] = w + k
    pos[2] += n - k


@njit(nogil=True, cache=True)
def push_column(ring, pos, src, col, n):
    """``push_audio`` of ``src[:n, col]`` (the input a model hears: ``Conditioning.audio_in``)."""
    cap = ring.shape[0]
    w = pos[0]
    room = cap - (w - pos[1])
    k = n if n <= room else room
    for j in range(k):
        ring[(w + j) % cap] = src[j, col]
    pos[0] = w + k
    pos[2] += n - k


@njit(nogil=True, cache=True)
def push_event(ring, pos, t, status, d1, d2):
    cap = ring.shape[0]
    w = pos[0]
    if w - pos[1] >= cap:
        pos[2] += 1
        return
    i = w % cap
    ring[i, 0] = t
    ring[i, 1] = status
    ring[i, 2] = d1
    ring[i, 3] = d2
    pos[0] = w + 1


@njit(nogil=True, cache=True)
def push_bend_range(ring, pos, t, cc, bend_range):
    """RPN 0 (pitch-bend sensitivity) set to ``bend_range`` semitones on ``cc``'s channel, then
    the null RPN."""
    semis = int(bend_range)
    push_event(ring, pos, t, cc, 101, 0)
    push_event(ring, pos, t, cc, 100, 0)
    push_event(ring, pos, t, cc, 6, semis)
    push_event(ring, pos, t, cc, 38, int(round((bend_range - semis) * 100.0)))
    push_event(ring, pos, t, cc, 101, 127)
    push_event(ring, pos, t, cc, 100, 127)


@njit(nogil=True, cache=True)
def push_state(ring, pos, t, bend, bend_range, mod, volume, expression, sustain, sostenuto, soft, pressure):
    """The channels' state at sample ``t`` as the messages that set it (``ChannelState``'s
    arrays), where it differs from a fresh engine's with the defaults (a bend range of 2)."""
    for ch in range(16):
        cc = 0xB0 | ch
        b = int(round((bend[ch] + 1.0) * 8192.0))
        b = 0 if b < 0 else (16383 if b > 16383 else b)
        if b != 8192:
            push_event(ring, pos, t, 0xE0 | ch, b & 0x7F, b >> 7)
        if bend_range[ch] != 2.0:      # GM's default, and render's: a take says any other itself
            push_bend_range(ring, pos, t, cc, bend_range[ch])
        v = int(round(mod[ch] * 127.0))
        if v != 0:
            push_event(ring, pos, t, cc, 1, v)
        v = int(round(volume[ch] * 127.0))
        if v != 100:
            push_event(ring, pos, t, cc, 7, v)
        v = int(round(expression[ch] * 127.0))
        if v != 127:
            push_event(ring, pos, t, cc, 11, v)
        if sustain[ch]:
            push_event(ring, pos, t, cc, 64, 127)
        if sostenuto[ch]:
            push_event(ring, pos, t, cc, 66, 127)
        if soft[ch]:
            push_event(ring, pos, t, cc, 67, 127)
        v = int(round(pressure[ch] * 127.0))
        if v != 0:
            push_event(ring, pos, t, 0xD0 | ch, v, 0)


@njit(nogil=True, cache=True)
def panic_events(ring, pos, t, bend_range):
    """A panic at sample ``t`` as the messages that do to the channels what it does
    (``ChannelState.reset``): sound off, controllers reset, volume 100, the default bend range."""
    for ch in range(16):
        cc = 0xB0 | ch
        push_event(ring, pos, t, cc, 120, 0)
        push_event(ring, pos, t, cc, 121, 0)
        push_event(ring, pos, t, cc, 7, 100)
        push_bend_range(ring, pos, t, cc, bend_range)


@njit(nogil=True, cache=True)
def release_events(ring, pos, t):
    """Every note released at sample ``t`` (``Engine.release_all``): the pedals up, All Notes Off."""
    for ch in range(16):
        push_event(ring, pos, t, 0xB0 | ch, 64, 0)
        push_event(ring, pos, t, 0xB0 | ch, 66, 0)
        push_event(ring, pos, t, 0xB0 | ch, 123, 0)


def warm_up() -> None:
    """Compile the render side's kernels (called as the engine starts, never at a take's start)."""
    ring, pos = np.zeros(8, np.float32), np.zeros(3, np.int64)
    push_audio(np.zeros((8, 2), np.float32), pos, np.zeros((2, 4), np.float32), 4)
    push_column(ring, pos, np.zeros((4, 2), np.float32), 0, 4)
    ev, ep = np.zeros((4, 4), np.int64), np.zeros(3, np.int64)
    push_event(ev, ep, 0, 0x90, 60, 100)
    z, f = np.zeros(16), np.full(16, 2.0)
    off = np.zeros(16, np.bool_)
    push_state(ev, ep, 0, z, f, z, z, z, off, off, off, z)
    panic_events(ev, ep, 0, 2.0)
    release_events(ev, ep, 0)


def tick_base(sample_rate: int) -> tuple[int, int, bool]:
    """(ticks per quarter note, tempo in microseconds per quarter note, exact): one tick per
    sample where the format allows it (tempos of 60 to 480 BPM by octaves, 120 first), else
    the finest division at 120 BPM (``exact`` False: events land within half a tick)."""
    for tempo in (500_000, 1_000_000, 250_000, 125_000):
        ppq = sample_rate * tempo / 1_000_000
        if ppq == int(ppq) and 1 <= ppq <= MAX_PPQ:
            return int(ppq), tempo, True
    return min(MAX_PPQ, max(1, sample_rate // 2)), DEFAULT_TEMPO, False


def _vlq(n: int) -> bytes:
    """A Standard MIDI File variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _meta(kind: int, data: bytes) -> bytes:
    return b"\x00\xff" + bytes([kind]) + _vlq(len(data)) + data


class MidiTake:
    """The MIDI of a take, encoded as it comes: ``add`` appends one event's bytes (so a file of
    a long take is written without re-encoding it: 20,000 events through mido took 173 ms of
    Python, measured, every rewrite), ``data`` gives the whole type 0 file with every note
    still on released at ``end_sample``. Events are (sample relative to the take's first
    sample, status, d1, d2), in order. ``first_sample``: the engine sample the take began at,
    kept in a text event (``smf.TAKE_MARKER``) so that ``livewave render`` can start its clock
    there: a voice's noise and a model's frame grid follow the engine's clock."""

    def __init__(self, sample_rate: int, first_sample: int = 0, tuning: tuple[float, int] = (440.0, 0),
                 room: tuple[float, float, float, float] | None = None, velocity_curve: float = 1.0,
                 pan: float = 0.0):
        self.sample_rate = int(sample_rate)
        self.tuning = (float(tuning[0]), int(tuning[1]))    # (A4 Hz, transpose) as the take began
        self.room = room        # the reverb's (send, decay s, damping, pre-delay ms) as it began; then CC 91
        self.velocity_curve = float(velocity_curve)   # as the take began (EngineConfig.velocity_curve)
        self.pan = float(pan)   # as the take began (stereo_pan); then CC 10
        self.ppq, self.tempo, self.exact = tick_base(self.sample_rate)
        self.per_tick = self.sample_rate * self.tempo / 1_000_000 / self.ppq   # samples per tick (1.0 when exact)
        self.first_sample = max(0, int(first_sample))
        self.track = bytearray()
        self.count = 0
        self.last = 0                                        # tick of the last event
        self.on: dict[tuple[int, int], int] = {}             # (channel, note) -> times on

    def _tick(self, sample: int) -> int:
        return max(self.last, int(round(sample / self.per_tick)))

    @staticmethod
    def _message(status: int, d1: int, d2: int) -> bytes:
        if status & 0xF0 in (0xC0, 0xD0):
            return bytes([status, d1 & 0x7F])
        return bytes([status, d1 & 0x7F, d2 & 0x7F])

    def add(self, sample: int, status: int, d1: int, d2: int) -> None:
        tick = self._tick(sample)
        self.track += _vlq(tick - self.last) + self._message(status, d1, d2)
        self.last = tick
        self.count += 1
        kind, key = status & 0xF0, (status & 0x0F, d1 & 0x7F)
        if kind == 0x90 and d2 > 0:
            self.on[key] = self.on.get(key, 0) + 1
        elif kind in (0x80, 0x90) and self.on.get(key):
            self.on[key] -= 1

    def data(self, end_sample: int) -> bytes:
        from .smf import TAKE_MARKER
        head = (_meta(0x51, self.tempo.to_bytes(3, "big")) + _meta(0x03, b"livewave take")
                + _meta(0x01, (f"{TAKE_MARKER}{self.first_sample} at {self.sample_rate} Hz, A4 {self.tuning[0]:g} Hz, "
                               f"transpose {self.tuning[1]}" + ("" if self.room is None else
                                                                f", reverb send {self.room[0]!r}, decay "
                                                                f"{self.room[1]!r} s, damping {self.room[2]!r}, "
                                                                f"pre-delay {self.room[3]!r} ms")
                               + ("" if self.velocity_curve == 1.0 else f", velocity curve {self.velocity_curve!r}")
                               + ("" if self.pan == 0.0 else f", pan {self.pan!r}")
                               ).encode()))
        tail, last = bytearray(), self.last
        end = self._tick(end_sample)
        for (ch, note), n in sorted(self.on.items()):
            for _ in range(n):
                tail += _vlq(end - last) + bytes([0x80 | ch, note, 0])
                last = end
        tail += _vlq(end - last) + b"\xff\x2f\x00"
        body = head + bytes(self.track) + bytes(tail)
        return (b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
                + self.ppq.to_bytes(2, "big") + b"MTrk" + len(body).to_bytes(4, "big") + body)

    def save(self, path: Path, end_sample: int) -> None:
        """Written atomically: a reader (or a crash) sees the previous file or this one."""
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(self.data(end_sample))
        os.replace(tmp, path)


def write_midi_take(path: Path, events: list[tuple[int, int, int, int]], sample_rate: int,
                    end_sample: int, first_sample: int = 0, tuning: tuple[float, int] = (440.0, 0)) -> None:
    """``events`` [(sample, status, d1, d2)] relative to the take's first sample, in order ->
    a type 0 Standard MIDI File (``MidiTake``), written atomically."""
    take = MidiTake(sample_rate, first_sample, tuning)
    for e in events:
        take.add(*e)
    take.save(Path(path), end_sample)


def _auto_header(sfile) -> None:
    """Ask libsndfile to rewrite the WAV header after every write, so a take cut short by a crash
    still opens at its full length (SFC_SET_UPDATE_HEADER_AUTO; best effort)."""
    try:
        from soundfile import _ffi, _snd
        _snd.sf_command(sfile._file, SFC_SET_UPDATE_HEADER_AUTO, _ffi.NULL, 1)
    except Exception:        # another soundfile: the header is then written at the end only
        pass


def input_path(audio_path) -> Path:
    """Where a take's audio input goes: ``take-in.wav`` beside ``take.wav``."""
    p = Path(audio_path)
    return p.with_name(f"{p.stem}-in{p.suffix}")


def start_take(engine, wav, mid) -> TakeRecorder:
    """A take of ``engine`` into ``wav`` (and ``mid``; with its audio input where the engine is
    duplex), started and handed to the engine."""
    take = TakeRecorder(wav, engine.config.sample_rate, mid, record_input=engine.config.input_channels > 0,
                        channels=2 if engine.config.channels >= 2 else 1).start()
    engine.start_take(take)
    return take


def free_take_paths(audio_path, midi: bool = True) -> tuple[Path, Path | None]:
    """``take.wav`` (and ``take.mid``) where neither exists (nor ``take-in.wav``), else
    ``take-2``, ``take-3`` ...: a take never overwrites an earlier one."""
    p = Path(audio_path)
    if p.suffix.lower() != ".wav":
        raise ValueError(f"{p}: a take is written as WAV; give a .wav name")
    for n in range(1, 10_000):
        a = p if n == 1 else p.with_name(f"{p.stem}-{n}{p.suffix}")
        m = a.with_suffix(".mid") if midi else None
        if not a.exists() and (m is None or not m.exists()) and not input_path(a).exists():
            return a, m
    raise ValueError(f"{p}: 9999 takes of that name already; choose another")


class TakeRecorder:
    """One take: ``start()``, hand it to ``Engine.start_take``, later ``Engine.stop_take`` and
    ``finish()``. ``audio_path`` a ``.wav``; ``midi_path`` a ``.mid`` (None: audio only);
    ``record_input``: also the audio input a model hears (its first channel, what an
    audio-driven model renders), to ``input_path(audio_path)``, for an engine opened duplex:
    ``livewave resynth take-in.wav --model OTHER`` plays the performance through another model."""

    def __init__(self, audio_path, sample_rate: int, midi_path=None, ring_seconds: float = RING_SECONDS,
                 event_capacity: int = EVENT_CAPACITY, record_input: bool = False, channels: int = 2):
        self.audio_path = Path(audio_path)
        self.midi_path = Path(midi_path) if midi_path is not None else None
        if self.audio_path.suffix.lower() != ".wav":
            raise ValueError(f"{self.audio_path}: a take is written as WAV; give a .wav name")
        if self.midi_path is not None and self.midi_path.suffix.lower() not in (".mid", ".midi"):
            raise ValueError(f"{self.midi_path}: a MIDI take needs a .mid name")
        if not self.audio_path.parent.is_dir():
            raise ValueError(f"{self.audio_path.parent}: no such folder for the take")
        if channels not in (1, 2):
            raise ValueError(f"a take is mono (1 channel) or stereo (2), not {channels}")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        frames = max(1024, int(ring_seconds * self.sample_rate))
        self.ring = np.zeros((frames, self.channels), np.float32)
        self.apos = np.zeros(3, np.int64)
        self.input_path = input_path(self.audio_path) if record_input else None
        self.in_ring = np.zeros(frames, np.float32) if record_input else None
        self.ipos = np.zeros(3, np.int64)
        self._in_file = None
        self.events = np.zeros((max(64, int(event_capacity)), 4), np.int64)
        self.epos = np.zeros(3, np.int64)
        self.first_sample = -1           # the engine sample of the take's first sample (render side)
        self.samples = 0                 # written to the file
        self.midi: MidiTake | None = None   # made at the first drain after the render side began
        self.tuning = (440.0, 0)         # (A4 Hz, transpose) as the take began (Engine.start_take)
        self.room = None                 # the reverb's (send, decay s, damping, pre-delay ms) then (Engine.start_take)
        self.velocity_curve = 1.0        # and the velocity curve (Engine.start_take)
        self.pan = 0.0                   # and the pan (Engine.start_take; then CC 10 in the MIDI)
        self.error: str | None = None    # the writer's failure (a full disk), reported, never raised there
        self._error_said = False
        self._file = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._midi_dirty = False
        self._midi_written = 0.0
        self._midi_samples = 0
        self._midi_every = MIDI_EVERY_SECONDS

    # -- control side ---------------------------------------------------------------------
    def start(self) -> TakeRecorder:
        import soundfile as sf
        self._file = sf.SoundFile(str(self.audio_path), "w", samplerate=self.sample_rate, channels=self.channels,
                                  format="WAV", subtype="FLOAT")
        _auto_header(self._file)
        if self.input_path is not None:
            self._in_file = sf.SoundFile(str(self.input_path), "w", samplerate=self.sample_rate, channels=1,
                                         format="WAV", subtype="FLOAT")
            _auto_header(self._in_file)
        self._thread = threading.Thread(target=self._run, name="livewave-take", daemon=True)
        self._thread.start()
        return self

    def finish(self) -> dict:
        """After the engine let go of it (``Engine.stop_take``): drain, close both files."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._drain()
        for f in (self._file, self._in_file):
            if f is not None:
                f.close()
        self._file = self._in_file = None
        if self.midi_path is not None:
            self._write_midi()
        return self.summary()

    def new_error(self) -> str | None:
        """The writer's failure the first time it is asked after it happened, else None (for a
        control loop that reports it once)."""
        if self.error is None or self._error_said:
            return None
        self._error_said = True
        return self.error

    def summary(self) -> dict:
        return {"audio": str(self.audio_path), "midi": str(self.midi_path) if self.midi_path else None,
                "input": str(self.input_path) if self.input_path else None,
                "seconds": self.samples / self.sample_rate, "events": self.midi.count if self.midi else 0,
                "dropped_samples": int(self.apos[2] + self.ipos[2]), "dropped_events": int(self.epos[2]),
                "error": self.error}

    # -- writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(DRAIN_SECONDS):
            self._drain()
            # the MIDI on disk follows the take (its held notes end where the audio has got to):
            # rewritten once a second, or less often where a long take makes that costly
            if (self.midi_path is not None and (self._midi_dirty or self.samples > self._midi_samples)
                    and time.monotonic() - self._midi_written >= self._midi_every):
                self._write_midi()

    def _drain_ring(self, ring, pos, file, path) -> int:
        """What the render side wrote since the last drain, into ``file``: the samples drained."""
        w, r = int(pos[0]), int(pos[1])
        if w <= r:
            return 0
        cap = ring.shape[0]
        i, k = r % cap, w - r
        part = ring[i:i + k] if i + k <= cap else np.concatenate([ring[i:], ring[:i + k - cap]])
        if file is not None and self.error is None:
            try:
                file.write(part)
            except Exception as exc:       # a full disk: say so, keep the music and the MIDI
                self.error = f"{path}: {type(exc).__name__}: {exc}"
        pos[1] = w
        return k

    def _drain(self) -> None:
        self.samples += self._drain_ring(self.ring, self.apos, self._file, self.audio_path)
        if self.in_ring is not None:
            self._drain_ring(self.in_ring, self.ipos, self._in_file, self.input_path)
        if self.midi is None and self.first_sample >= 0:
            self.midi = MidiTake(self.sample_rate, self.first_sample, self.tuning, self.room, self.velocity_curve,
                                 self.pan)
        w, r = int(self.epos[0]), int(self.epos[1])
        if w > r and self.midi is not None:
            t0 = self.first_sample
            cap = self.events.shape[0]
            for j in range(r, w):
                t, st, d1, d2 = (int(v) for v in self.events[j % cap])
                self.midi.add(t - t0, st, d1, d2)
            self.epos[1] = w
            self._midi_dirty = True

    def _write_midi(self) -> None:
        t = time.monotonic()
        try:
            (self.midi or MidiTake(self.sample_rate)).save(self.midi_path, self.samples)
        except Exception as exc:
            self.error = self.error or f"{self.midi_path}: {type(exc).__name__}: {exc}"
        self._midi_dirty = False
        self._midi_samples = self.samples
        self._midi_written = time.monotonic()
        self._midi_every = max(MIDI_EVERY_SECONDS, 20.0 * (self._midi_written - t))
