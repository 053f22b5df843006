"""Standard MIDI File reader.

``read_midi_file(path)`` loads a type 0 or type 1 SMF into a :class:`MidiSong`:
a time-ordered list of channel-voice events ``(time_seconds, status, d1, d2)``
merged over all tracks and channels.  Tempo changes (from any track) are
honoured; SMPTE time division (frames per second x ticks per frame) is
supported too, in which case tempo events are ignored as the standard says.
Pitch bend is reported as ``(0xE0 | ch, lsb, msb)``; two-byte messages
(program change, channel pressure) have ``d2 = 0``.  Meta and SysEx events are
dropped.  Events with equal times keep file order (track order, then position
within the track).

The chunk structure is checked here, and the event data of each track is
decoded with ``mido``.  Every failure is reported as :class:`MidiFileError`
(a ``ValueError``) whose message names the file and the problem; no raw
``mido``/``OSError``/``EOFError`` exception escapes.

Threading model: pure functions without shared state; ``read_midi_file`` does
blocking file I/O and must not be called from the audio thread - load songs on
a worker or UI thread and hand the immutable ``MidiSong`` over.  ``MidiSong`` is
a frozen dataclass and safe to share (do not mutate its ``events`` list).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field

DEFAULT_TEMPO = 500_000  # microseconds per quarter note (120 BPM)
_MAX_FILE_BYTES = 64 * 1024 * 1024


class MidiFileError(ValueError):
    """A MIDI file could not be read; the message names file and problem."""


@dataclass(frozen=True)
class MidiSong:
    events: list = field(default_factory=list)  # (time_s, status, d1, d2)
    duration: float = 0.0                       # time of last event, seconds
    path: str = ""
    # a livewave take (take_recorder): (the engine sample its first sample was, that engine's
    # rate), and (A4 in Hz, transpose) as it began, from its TAKE_MARKER text event; None for
    # any other file
    take_start: tuple[int, int] | None = None
    take_tuning: tuple[float, int] | None = None
    take_room: tuple[float, float, float, float] | None = None   # the reverb's (send, decay s, damping, pre-delay ms)
    take_velocity_curve: float | None = None    # the velocity curve it was played with, where not 1
    take_pan: float | None = None               # the pan it began with (then CC 10), where not the centre


TAKE_MARKER = "livewave take: engine sample "
# + "<sample> at <rate> Hz[, A4 <hz> Hz, transpose <n>][, reverb send <x>, decay <s> s, damping <x>, pre-delay <ms> ms]"
#   "[, velocity curve <x>][, pan <x>]"


def parse_take_marker(text: str) -> tuple | None:
    """(sample, rate, A4 Hz or None, transpose or None, the reverb's (send, decay s, damping,
    pre-delay ms) or None, the velocity curve or None, the pan or None) from a take's marker,
    else None."""
    if not text.startswith(TAKE_MARKER):
        return None
    try:
        parts = text[len(TAKE_MARKER):].split(", ")
        sample, rate = parts[0].split(" at ", 1)
        sample, rate = int(sample), int(rate.removesuffix(" Hz"))
        tuning = transpose = curve = pan = None
        room = {}
        for p in parts[1:]:
            if p.startswith("A4 "):
                tuning = float(p[3:].removesuffix(" Hz"))
            elif p.startswith("transpose "):
                transpose = int(p[len("transpose "):])
            elif p.startswith("reverb send "):
                room["send"] = float(p[len("reverb send "):])
            elif p.startswith("decay "):
                room["decay"] = float(p[len("decay "):].removesuffix(" s"))
            elif p.startswith("damping "):
                room["damping"] = float(p[len("damping "):])
            elif p.startswith("pre-delay "):
                room["predelay"] = float(p[len("pre-delay "):].removesuffix(" ms"))
            elif p.startswith("velocity curve "):
                curve = float(p[len("velocity curve "):])
            elif p.startswith("pan "):
                pan = float(p[len("pan "):])
        room = (room["send"], room["decay"], room["damping"], room["predelay"]) if len(room) == 4 else None
        return (sample, rate, tuning, transpose, room, curve, pan) if sample >= 0 and rate > 0 else None
    except ValueError:
        return None


def _split_chunks(data: bytes, fail):
    """Validate the chunk layout; return (format, division, [track bytes])."""
    if not data:
        fail("file is empty")
    if data[:4] != b"MThd":
        if data[:4] == b"RIFF" and data[8:12] == b"RMID":
            fail("RIFF-wrapped MIDI (RMID) files are not supported")
        fail("not a Standard MIDI File (no MThd header)")
    if len(data) < 14:
        fail("file is truncated (header ends early)")
    hlen = struct.unpack(">L", data[4:8])[0]
    if hlen < 6:
        fail(f"bad MThd header (length {hlen}, expected at least 6)")
    fmt, ntracks, division = struct.unpack(">HHH", data[8:14])
    if fmt > 2:
        fail(f"unknown MIDI file format {fmt} (expected 0, 1 or 2)")
    if fmt == 2:
        fail("format 2 (independent sequences) files are not supported")
    if fmt == 0 and ntracks != 1:
        fail(f"format 0 file must have exactly 1 track, header says {ntracks}")
    if division == 0:
        fail("bad time division 0 in header")
    pos = 8 + hlen
    if pos > len(data):
        fail("file is truncated (header ends early)")
    tracks: list[bytes] = []
    skipped: list[str] = []
    while len(tracks) < ntracks:
        n = len(tracks) + 1
        if pos >= len(data):
            plural = "track" if ntracks == 1 else "tracks"
            note = (f"; skipped unknown chunks {', '.join(skipped)}"
                    if skipped else "")
            fail(f"file is truncated (header announces {ntracks} {plural}, "
                 f"found {len(tracks)}{note})")
        if pos + 8 > len(data):
            fail(f"file is truncated (track {n} header ends early)")
        cid, clen = struct.unpack(">4sL", data[pos:pos + 8])
        if not all(0x20 <= c < 0x7F for c in cid):
            fail(f"bad chunk at byte {pos} (expected MTrk for track {n}, "
                 f"found {cid!r})")
        if pos + 8 + clen > len(data):
            what = f"track {n}" if cid == b"MTrk" else f"chunk {cid.decode()!r}"
            fail(f"file is truncated ({what} ends early: needs {clen} bytes, "
                 f"{len(data) - pos - 8} present)")
        if cid == b"MTrk":
            tracks.append(data[pos:pos + 8 + clen])
        else:  # unknown chunk types are skipped, as the SMF spec requires
            skipped.append(repr(cid.decode()))
        pos += 8 + clen
    return fmt, division, tracks


def _decode_track(chunk: bytes, n: int, fail):
    """Decode one MTrk chunk with mido; return list of (tick, msg)."""
    import mido

    # A one-track format-0 file wrapping just this chunk lets mido's public
    # API decode it, and lets us report which track is broken.
    header = b"MThd" + struct.pack(">LHHH", 6, 0, 1, 480)
    try:
        mf = mido.MidiFile(file=io.BytesIO(header + chunk))
    except EOFError:
        fail(f"track {n} is corrupt (its last event runs past the end of "
             "the track)")
    except Exception as exc:  # OSError, KeyError, ValueError, ... from mido
        detail = str(exc) or type(exc).__name__
        fail(f"track {n} is corrupt ({detail})")
    tick = 0
    out = []
    for msg in mf.tracks[0]:
        tick += msg.time
        out.append((tick, msg))
    return out


def _event_bytes(msg):
    """(status, d1, d2) for a channel-voice mido message, else None."""
    if msg.is_meta or msg.type == "sysex":
        return None
    raw = msg.bytes()
    status = raw[0]
    if not 0x80 <= status <= 0xEF:
        return None
    d1 = raw[1] if len(raw) > 1 else 0
    d2 = raw[2] if len(raw) > 2 else 0
    return (status, d1, d2)


def read_midi_file(path) -> MidiSong:
    """Read a type 0/1 Standard MIDI File; raise MidiFileError on any problem."""
    spath = os.fspath(path) if not isinstance(path, (str, bytes)) else path
    if isinstance(spath, bytes):
        spath = os.fsdecode(spath)
    name = os.path.basename(spath) or spath

    def fail(problem: str):
        raise MidiFileError(f"{name}: {problem}")

    try:
        with open(spath, "rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        fail("file not found")
    except IsADirectoryError:
        fail("is a directory, not a MIDI file")
    except PermissionError:
        fail("permission denied")
    except OSError as exc:
        fail(f"cannot read file ({exc.strerror or exc})")
    if len(data) > _MAX_FILE_BYTES:
        fail(f"file is too large (over {_MAX_FILE_BYTES // (1024 * 1024)} MiB)")

    try:
        _fmt, division, chunks = _split_chunks(data, fail)
        tracks = [_decode_track(c, i + 1, fail) for i, c in enumerate(chunks)]
        return _build_song(tracks, division, spath)
    except MidiFileError:
        raise
    except Exception as exc:  # defensive: nothing raw escapes
        raise MidiFileError(f"{name}: cannot read MIDI data "
                            f"({type(exc).__name__}: {exc})") from exc


def _build_song(tracks, division: int, spath: str) -> MidiSong:
    # Collect channel events and tempo changes with a stable sort key.
    raw = []      # (tick, track, index, status, d1, d2)
    tempos = []   # (tick, track, index, tempo)
    take = None
    for t, events in enumerate(tracks):
        for i, (tick, msg) in enumerate(events):
            if msg.is_meta:
                if msg.type == "set_tempo":
                    tempos.append((tick, t, i, msg.tempo))
                elif msg.type == "text" and take is None:
                    take = parse_take_marker(msg.text)
                continue
            ev = _event_bytes(msg)
            if ev is not None:
                raw.append((tick, t, i) + ev)
    raw.sort(key=lambda e: (e[0], e[1], e[2]))

    if division & 0x8000:   # SMPTE: high byte = -frames/s, low = ticks/frame
        fps = 256 - (division >> 8)
        fps_exact = 30000 / 1001 if fps == 29 else float(fps)
        tpf = division & 0xFF
        if fps not in (24, 25, 29, 30) or tpf == 0:
            raise MidiFileError(f"{os.path.basename(spath)}: bad SMPTE time "
                                f"division ({fps} fps, {tpf} ticks per frame)")
        sec_per_tick = 1.0 / (fps_exact * tpf)
        events = [(tick * sec_per_tick, s, a, b) for tick, _t, _i, s, a, b in raw]
    else:
        tpb = division
        tempos.sort(key=lambda e: (e[0], e[1], e[2]))
        # Tempo map segments: (start_tick, start_seconds, tempo)
        seg_tick, seg_sec, tempo = 0, 0.0, DEFAULT_TEMPO
        tq = [(tk, tp) for tk, _t, _i, tp in tempos]
        k = 0
        events = []
        for tick, _t, _i, s, a, b in raw:
            while k < len(tq) and tq[k][0] <= tick:
                new_tick, new_tempo = tq[k]
                seg_sec += (new_tick - seg_tick) * tempo / (1_000_000 * tpb)
                seg_tick, tempo = new_tick, new_tempo
                k += 1
            t_sec = seg_sec + (tick - seg_tick) * tempo / (1_000_000 * tpb)
            events.append((t_sec, s, a, b))
    duration = events[-1][0] if events else 0.0
    tuning = None
    if take is not None and take[2] is not None and take[3] is not None:
        tuning = (take[2], take[3])
    return MidiSong(events=events, duration=duration, path=spath, take_start=take[:2] if take else None,
                    take_tuning=tuning, take_room=take[4] if take else None,
                    take_velocity_curve=take[5] if take else None, take_pan=take[6] if take else None)
