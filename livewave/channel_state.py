"""Per-channel MIDI controller state and message dispatch to the voice allocator.

Threading: render side only, called by the engine at each event's sample. Values are
clamped to their MIDI ranges, so out-of-range input cannot reach the synthesis.

Handled: note on/off (velocity 0 = off), pitch bend (range per channel, RPN 0 honoured,
null RPN), channel pressure, poly aftertouch, CC1 mod wheel, CC7 volume, CC11 expression,
CC64 sustain, CC66 sostenuto (``VoiceAllocator``), CC67 soft pedal (a note struck while it is
down plays at ``SOFT_PEDAL`` times its velocity, as a piano's una corda plays softer and, for a
model that hears velocity, duller), CC120 all sound off, CC121 reset controllers, CC123 all notes off (and the
omni/mono/poly mode messages 124-127, which imply all notes off).
"""
from __future__ import annotations

import math

import numpy as np

from .generator import Conditioning, midi_to_hz
from .voice_allocator import VoiceAllocator

SOFT_PEDAL = 0.75      # the velocity of a note struck with the soft pedal down, over its own


class ChannelState:
    def __init__(self, cond: Conditioning, voices: VoiceAllocator, bend_range: float,
                 channel_mask: np.ndarray):
        self.cond = cond
        self.voices = voices
        self.default_bend_range = float(bend_range)
        self.mask = channel_mask                       # bool[16]
        self.bend = np.zeros(16, np.float64)           # -1..1
        self.bend_range = np.full(16, float(bend_range))
        self.mod = np.zeros(16, np.float64)
        self.volume = np.full(16, 100 / 127, np.float64)
        self.expression = np.ones(16, np.float64)
        self.sustain = np.zeros(16, np.bool_)
        self.sostenuto = np.zeros(16, np.bool_)
        self.soft = np.zeros(16, np.bool_)
        self.pressure = np.zeros(16, np.float64)
        self.poly = np.zeros((16, 128), np.float64)
        self.rpn = np.full((16, 2), 127, np.int16)     # [msb, lsb]; 127/127 = null
        self.ignored = 0                               # messages dropped by the channel filter
        # Concert pitch and transpose (the engine's set_tuning / set_transpose, applied on the
        # render side). The tuning is an offset in semitones from A4 = 440 Hz, so every family
        # follows it, whether it reads a voice's fractional note or its f0; held notes follow a
        # new tuning. The transpose is taken by a note when it begins (the voice keeps it), so
        # a change never moves a held note nor loses its note-off; a key transposed off the
        # keyboard (outside 0..127) does not sound.
        self.tune = 0.0
        self.transpose = 0
        self.velocity_curve = 1.0                      # a note's velocity: (v / 127) ** this (EngineConfig)
        self.off_keyboard = 0                          # note-ons transposed outside 0..127

    def reset(self) -> None:
        self.bend[:] = 0.0
        self.bend_range[:] = self.default_bend_range
        self.mod[:] = 0.0
        self.volume[:] = 100 / 127
        self.expression[:] = 1.0
        self.sustain[:] = False
        self.sostenuto[:] = False
        self.soft[:] = False
        self.pressure[:] = 0.0
        self.poly[:] = 0.0
        self.rpn[:] = 127

    def set_tuning(self, a4_hz: float) -> None:
        self.tune = 12.0 * math.log2(a4_hz / 440.0)
        for ch in range(16):
            self._retune(ch)

    def _note_f(self, ch: int, note: int, shift: int = 0) -> float:
        return note + shift + self.tune + self.bend[ch] * self.bend_range[ch]

    def _gain(self, ch: int) -> float:
        # Volume follows the GM-recommended squared law (40 log10), expression likewise.
        return (self.volume[ch] ** 2) * (self.expression[ch] ** 2)

    def _retune(self, ch: int) -> None:
        c = self.cond
        for v in self.voices.voices_on(ch):
            nf = self._note_f(ch, int(self.voices.note_int[v]), int(self.voices.shift[v]))
            c.note[v] = nf
            c.f0[v] = midi_to_hz(nf)

    def _regain(self, ch: int) -> None:
        g = self._gain(ch)
        for v in self.voices.voices_on(ch):
            self.cond.gain[v] = g

    def _repress(self, ch: int) -> None:
        for v in self.voices.voices_on(ch):
            self.cond.pressure[v] = max(self.pressure[ch], self.poly[ch, self.voices.note_int[v]])

    def handle(self, status: int, d1: int, d2: int, t: int) -> None:
        """Apply one channel message at absolute sample ``t``."""
        if status < 0x80 or status >= 0xF0:
            return
        kind = status & 0xF0
        ch = status & 0x0F
        if not self.mask[ch]:
            self.ignored += 1
            return
        d1 &= 0x7F
        d2 &= 0x7F
        v = self.voices
        if kind == 0x90 and d2 > 0:
            shift = self.transpose
            if not 0 <= d1 + shift <= 127:
                self.off_keyboard += 1
                return
            nf = self._note_f(ch, d1, shift)
            vel = d2 / 127.0
            if self.velocity_curve != 1.0:
                vel = vel ** self.velocity_curve
            if self.soft[ch]:
                vel *= SOFT_PEDAL
            v.note_on(ch, d1, vel, t, midi_to_hz(nf), nf, self._gain(ch), self.mod[ch],
                      max(self.pressure[ch], self.poly[ch, d1]), shift)
        elif kind == 0x80 or kind == 0x90:
            v.note_off(ch, d1, t, bool(self.sustain[ch]))
        elif kind == 0xE0:
            self.bend[ch] = max(-1.0, ((d2 << 7) | d1) / 8192.0 - 1.0)
            self._retune(ch)
        elif kind == 0xD0:
            self.pressure[ch] = d1 / 127.0
            self._repress(ch)
        elif kind == 0xA0:
            self.poly[ch, d1] = d2 / 127.0
            self._repress(ch)
        elif kind == 0xB0:
            self._control_change(ch, d1, d2, t)

    def _control_change(self, ch: int, cc: int, val: int, t: int) -> None:
        v = self.voices
        if cc == 1:
            self.mod[ch] = val / 127.0
            for i in v.voices_on(ch):
                self.cond.mod[i] = self.mod[ch]
        elif cc == 7:
            self.volume[ch] = val / 127.0
            self._regain(ch)
        elif cc == 11:
            self.expression[ch] = val / 127.0
            self._regain(ch)
        elif cc == 64:
            down = val >= 64
            if self.sustain[ch] and not down:
                v.pedal_up(ch, t)
            self.sustain[ch] = down
        elif cc == 66:
            down = val >= 64
            if down and not self.sostenuto[ch]:
                v.sostenuto_down(ch)
            elif self.sostenuto[ch] and not down:
                v.sostenuto_up(ch, t, bool(self.sustain[ch]))
            self.sostenuto[ch] = down
        elif cc == 67:
            self.soft[ch] = val >= 64
        elif cc == 101:
            self.rpn[ch, 0] = val
        elif cc == 100:
            self.rpn[ch, 1] = val
        elif cc == 6 and self.rpn[ch, 0] == 0 and self.rpn[ch, 1] == 0:
            frac = self.bend_range[ch] - int(self.bend_range[ch])
            self.bend_range[ch] = min(48.0, val + frac)
            self._retune(ch)
        elif cc == 38 and self.rpn[ch, 0] == 0 and self.rpn[ch, 1] == 0:
            self.bend_range[ch] = int(self.bend_range[ch]) + val / 100.0
            self._retune(ch)
        elif cc == 120:
            v.all_sound_off(ch, t)
        elif cc == 121:
            self.bend[ch] = 0.0
            self.mod[ch] = 0.0
            self.expression[ch] = 1.0
            self.pressure[ch] = 0.0
            self.poly[ch, :] = 0.0
            self.rpn[ch, :] = 127
            if self.sustain[ch]:
                self.sustain[ch] = False
                v.pedal_up(ch, t)
            if self.sostenuto[ch]:
                self.sostenuto[ch] = False
                v.sostenuto_up(ch, t, False)
            self.soft[ch] = False
            self._retune(ch)
            self._regain(ch)
            self._repress(ch)
            for i in v.voices_on(ch):
                self.cond.mod[i] = 0.0
        elif cc == 123 or cc >= 124:
            v.all_notes_off(ch, t, bool(self.sustain[ch]))
