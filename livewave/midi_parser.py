"""Robust MIDI 1.0 byte-stream parser.

Turns a raw MIDI byte stream (as read from a serial port, a virtual port or a
file dump) into complete channel-voice messages ``(status, d1, d2)``.  ``d2`` is
0 for the two-byte messages (program change, channel pressure).

Stream rules implemented by :meth:`MidiParser.feed`:

* running status: the last channel status byte is remembered; system common
  messages (0xF0-0xF7) clear it, real-time bytes (0xF8-0xFF) do not;
* real-time bytes may appear anywhere (also inside SysEx or between a status
  byte and its data bytes) and are ignored without disturbing anything;
* SysEx (0xF0 ... 0xF7) of any length is skipped; only its length is counted,
  nothing is buffered.  Any non-real-time status byte ends it;
* system common messages (0xF1, 0xF2, 0xF3, 0xF6) consume their data bytes
  and are dropped;
* data bytes without a status are dropped and counted as errors; a status byte
  that interrupts an incomplete message drops the partial message (counted as
  a truncation error) and the parser resyncs on the new status.

Errors never raise: they increment ``parser.errors`` and set
``parser.last_error`` to a plain-language description.

Threading model: a ``MidiParser`` holds mutable stream state and is NOT
thread-safe.  Use one instance per input stream and call ``feed`` from a single
thread (typically the MIDI input callback thread).  ``parse_message`` does not
touch the stream state but does update the error counters, so it should also
be called from that same thread.  The module-level helpers are pure functions
and safe to call from any thread.
"""

from __future__ import annotations

import operator

NOTE_OFF = 0x80
NOTE_ON = 0x90
POLY_PRESSURE = 0xA0
CONTROL_CHANGE = 0xB0
PROGRAM_CHANGE = 0xC0
CHANNEL_PRESSURE = 0xD0
PITCH_BEND = 0xE0

SYSEX_START = 0xF0
SYSEX_END = 0xF7

KIND_NAMES = {
    NOTE_OFF: "note_off",
    NOTE_ON: "note_on",
    POLY_PRESSURE: "poly_pressure",
    CONTROL_CHANGE: "control_change",
    PROGRAM_CHANGE: "program_change",
    CHANNEL_PRESSURE: "channel_pressure",
    PITCH_BEND: "pitch_bend",
}

# Data bytes that follow each status (index = status - 0x80).  SysEx (0xF0) is
# variable length and marked -1; undefined 0xF4/0xF5 and real-time have none.
_CHANNEL_LEN = {NOTE_OFF: 2, NOTE_ON: 2, POLY_PRESSURE: 2, CONTROL_CHANGE: 2,
                PROGRAM_CHANGE: 1, CHANNEL_PRESSURE: 1, PITCH_BEND: 2}
_SYSTEM_LEN = {0xF0: -1, 0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF4: 0, 0xF5: 0,
               0xF6: 0, 0xF7: 0}
_LEN = [(_CHANNEL_LEN[s & 0xF0] if s < 0xF0 else _SYSTEM_LEN.get(s, 0))
        for s in range(0x80, 0x100)]


def _hex(values) -> str:
    return " ".join(f"0x{v:02x}" for v in values)


def _check_status(status: int) -> int:
    if type(status) is not int or not 0x80 <= status <= 0xFF:
        raise ValueError(f"{status!r} is not a MIDI status byte (0x80..0xff)")
    return status


def message_kind(status: int) -> int:
    """Message type of a status byte.

    For channel statuses (0x80-0xEF) this is the high nibble, i.e. one of
    NOTE_OFF ... PITCH_BEND (``KIND_NAMES`` maps it to a name).  System status
    bytes (0xF0-0xFF) are returned unchanged.  Raises ValueError otherwise.
    """
    _check_status(status)
    return status & 0xF0 if status < 0xF0 else status


def data_length(status: int) -> int:
    """Number of data bytes following ``status`` (-1 for SysEx, variable).

    Raises ValueError if ``status`` is not a status byte.
    """
    return _LEN[_check_status(status) - 0x80]


class MidiParser:
    """Incremental MIDI 1.0 stream parser; see the module docstring."""

    def __init__(self) -> None:
        self.errors = 0
        self.last_error = ""
        self.sysex_count = 0          # complete or terminated SysEx seen
        self.last_sysex_length = 0    # data bytes of the last SysEx
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the stream state (running status, partial message, SysEx)."""
        self._status = 0        # status of the message being assembled / running
        self._need = 0          # data bytes that message needs
        self._d1 = 0
        self._got = 0           # data bytes collected so far
        self._partial = False   # a message has started and is incomplete
        self._in_sysex = False
        self._sysex_len = 0

    def _error(self, msg: str) -> None:
        self.errors += 1
        self.last_error = msg

    # ------------------------------------------------------------------- feed
    def feed(self, data) -> list[tuple[int, int, int]]:
        """Parse more bytes; return the channel messages completed by them."""
        out: list[tuple[int, int, int]] = []
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                values, check = bytes(data), False
            elif hasattr(data, "tolist"):        # numpy arrays and scalars
                flat = data.ravel() if hasattr(data, "ravel") else data
                values, check = flat.tolist(), True
                if not isinstance(values, list):
                    values = [values]
            elif isinstance(data, int):
                values, check = [data], True
            else:
                try:
                    values, check = iter(data), True
                except TypeError:
                    self._error(f"input of type {type(data).__name__} is not "
                                "a byte sequence")
                    return out
            self._run(values, check, out)
        except Exception as exc:  # never let anything escape the input thread
            self._error(f"internal parser error ({type(exc).__name__}: {exc})")
        return out

    def _run(self, values, check: bool, out: list) -> None:
        status, need, d1, got = self._status, self._need, self._d1, self._got
        partial, in_sysex, sysex_len = self._partial, self._in_sysex, self._sysex_len
        lengths = _LEN
        append = out.append
        try:
            for b in values:
                if check and (type(b) is not int or b < 0 or b > 255):
                    if type(b) is not int:
                        try:
                            if isinstance(b, bool):
                                raise TypeError
                            b = operator.index(b)   # numpy integer scalars
                        except TypeError:
                            self._error(f"value {b!r} is not a byte")
                            continue
                    if not 0 <= b <= 255:
                        self._error(f"value {b} is not a byte")
                        continue
                if b < 0x80:                                   # data byte
                    if in_sysex:
                        sysex_len += 1
                    elif status:
                        if got == 0:
                            d1 = b
                            got = 1
                            partial = True
                            if need == 1:
                                if status < 0xF0:
                                    append((status, b, 0))
                                else:
                                    status = 0
                                got = 0
                                partial = False
                        else:
                            if status < 0xF0:
                                append((status, d1, b))
                            else:
                                status = 0
                            got = 0
                            partial = False
                    else:
                        self._error(f"data byte 0x{b:02x} without a status byte")
                    continue
                if b >= 0xF8:                                  # real-time
                    continue
                if in_sysex:
                    in_sysex = False
                    self.sysex_count += 1
                    self.last_sysex_length = sysex_len
                    if b == SYSEX_END:
                        continue
                    # any other status byte terminates the SysEx and is parsed
                elif partial:
                    have = [d1] if got else []
                    self._error(
                        f"truncated message {_hex([status] + have)}: expected "
                        f"{need} data byte{'s' if need != 1 else ''}, got {got}")
                got = 0
                partial = False
                if b < 0xF0:                                   # channel status
                    status = b
                    need = lengths[b - 0x80]
                    partial = True
                elif b == SYSEX_START:
                    status = 0
                    in_sysex = True
                    sysex_len = 0
                elif b == SYSEX_END:
                    status = 0
                    self._error("end of SysEx 0xf7 without a 0xf0 start")
                elif b == 0xF4 or b == 0xF5:
                    status = 0
                    self._error(f"undefined status byte 0x{b:02x}")
                else:                                          # 0xF1-0xF3, 0xF6
                    need = lengths[b - 0x80]
                    status = b if need else 0
                    partial = need > 0
        finally:
            self._status, self._need, self._d1, self._got = status, need, d1, got
            self._partial, self._in_sysex = partial, in_sysex
            self._sysex_len = sysex_len

    # -------------------------------------------------------- whole messages
    def parse_message(self, msg) -> tuple[int, int, int] | None:
        """Validate one complete message (e.g. from python-rtmidi).

        Returns ``(status, d1, d2)`` for a well-formed channel-voice message.
        Well-formed system messages (real-time, system common, framed SysEx)
        return None without an error; malformed input returns None and counts
        an error.  The stream state used by :meth:`feed` is not touched.
        """
        try:
            if hasattr(msg, "tolist"):
                msg = msg.tolist()
            msg = [operator.index(v) if type(v) is not int and
                   not isinstance(v, bool) and hasattr(v, "__index__") else v
                   for v in msg]
        except Exception:
            self._error(f"message {msg!r} is not a sequence of bytes")
            return None
        if not msg:
            self._error("empty message")
            return None
        for v in msg:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255:
                self._error(f"value {v!r} is not a byte")
                return None
        status = msg[0]
        if status < 0x80:
            self._error(f"message {_hex(msg[:4])} does not start with a status byte")
            return None
        if status == SYSEX_START:
            if msg[-1] != SYSEX_END or len(msg) < 2:
                self._error("SysEx message not terminated by 0xf7")
            elif any(v > 0x7F for v in msg[1:-1]):
                self._error("SysEx message contains a status byte")
            return None
        if status in (0xF4, 0xF5, 0xF7):
            self._error(f"undefined or stray status byte 0x{status:02x}")
            return None
        need = _LEN[status - 0x80]
        if len(msg) != need + 1:
            self._error(f"message {_hex(msg[:4])}{' ...' if len(msg) > 4 else ''}: "
                        f"status 0x{status:02x} expects {need} data "
                        f"byte{'s' if need != 1 else ''}, got {len(msg) - 1}")
            return None
        for v in msg[1:]:
            if v > 0x7F:
                self._error(f"message {_hex(msg)}: data byte 0x{v:02x} is "
                            "above 0x7f")
                return None
        if status >= 0xF0:
            return None
        return (status, msg[1] if need else 0, msg[2] if need == 2 else 0)
