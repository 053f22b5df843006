"""Voice allocation: polyphony limit, stealing, sustain pedal, retrigger, freeing.

Threading: render side only (the engine calls it between render segments, at the exact
sample of each event). The voice state lives in the engine's ``Conditioning`` arrays plus
a few arrays of its own, all preallocated; nothing here allocates per event.

Policy:
- a note-on for a (channel, note) that still has a voice (held, sustained or releasing)
  retriggers that voice (legato restart: no phase reset, envelope restarts from its level);
- otherwise a free voice; otherwise steal: released voices first (the one released
  longest ago), then the oldest sounding one. A stolen voice is restarted legato, so the
  waveform stays continuous (no click);
- a note-off while the channel's sustain pedal is down keeps the voice sounding until
  the pedal lifts; all-notes-off (CC123) respects the pedal, all-sound-off (CC120) does not;
- the sostenuto pedal (CC 66, ``sostenuto_down`` / ``sostenuto_up``) latches the voices whose
  keys are down when it goes down: their note-offs wait until it lifts (or, if the sustain pedal
  is down then, until that lifts); notes struck while it is down are not latched, as on a
  piano's middle pedal. All-notes-off respects it too.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .envelope import ATTACK, IDLE, KILL, RELEASE
from .generator import RESTART_FRESH, RESTART_LEGATO, Conditioning


@njit(nogil=True, cache=True)
def free_finished(stage, active, gate, key_down, sustained, note_voice, channel, note_int):
    """Free voices whose envelope reached IDLE; returns how many voices remain active."""
    n_active = 0
    for v in range(stage.shape[0]):
        if active[v] and stage[v] == IDLE:
            active[v] = False
            gate[v] = False
            key_down[v] = False
            sustained[v] = False
            c = channel[v]
            k = note_int[v]
            if note_voice[c, k] == v:
                note_voice[c, k] = -1
        if active[v]:
            n_active += 1
    return n_active


class VoiceAllocator:
    def __init__(self, cond: Conditioning):
        p = cond.active.shape[0]
        self.cond = cond
        self.polyphony = p
        self.stage = np.zeros(p, np.int8)
        self.level = np.zeros(p, np.float64)
        self.key_down = np.zeros(p, np.bool_)
        self.sustained = np.zeros(p, np.bool_)
        self.latched = np.zeros(p, np.bool_)     # held by the sostenuto pedal (its key may be up)
        self.note_int = np.zeros(p, np.int16)
        self.shift = np.zeros(p, np.int16)       # the transpose a voice's note began with (semitones)
        self.start_order = np.zeros(p, np.int64)
        self.release_order = np.zeros(p, np.int64)
        self.note_voice = np.full((16, 128), -1, np.int16)
        self._counter = 0
        self.steals = 0
        self.active_count = 0

    # -- queries -----------------------------------------------------------------
    def voices_on(self, ch: int):
        c = self.cond
        for v in range(self.polyphony):
            if c.active[v] and c.channel[v] == ch:
                yield v

    def _pick_voice(self) -> tuple[int, int]:
        c = self.cond
        best, best_order = -1, 0
        for v in range(self.polyphony):
            if not c.active[v]:
                return v, RESTART_FRESH
        for v in range(self.polyphony):       # released voices first, released longest ago
            if not c.gate[v] and (best < 0 or self.release_order[v] < best_order):
                best, best_order = v, self.release_order[v]
        if best < 0:
            for v in range(self.polyphony):   # then the oldest sounding voice
                if best < 0 or self.start_order[v] < best_order:
                    best, best_order = v, self.start_order[v]
        self.steals += 1
        return best, RESTART_LEGATO

    # -- events ------------------------------------------------------------------
    def note_on(self, ch: int, note: int, velocity: float, t: int, f0: float, note_f: float,
                gain: float, mod: float, pressure: float, shift: int = 0) -> int:
        c = self.cond
        v = int(self.note_voice[ch, note])
        if v >= 0 and c.active[v]:
            restart = RESTART_LEGATO
        else:
            v, restart = self._pick_voice()
            self.latched[v] = False              # a new note (a key re-struck keeps its latch)
            old_c, old_k = int(c.channel[v]), int(self.note_int[v])
            if c.active[v] and self.note_voice[old_c, old_k] == v:
                self.note_voice[old_c, old_k] = -1
        if c.restart[v] != RESTART_FRESH:    # a fresh start not yet rendered stays fresh
            c.restart[v] = restart
        self._counter += 1
        self.start_order[v] = self._counter
        self.note_voice[ch, note] = v
        self.note_int[v] = note
        self.shift[v] = shift
        self.key_down[v] = True
        self.sustained[v] = False
        self.stage[v] = ATTACK
        if restart == RESTART_FRESH:
            self.level[v] = 0.0
        c.active[v] = True
        c.gate[v] = True
        c.channel[v] = ch
        c.note[v] = note_f
        c.f0[v] = f0
        c.velocity[v] = velocity
        c.gain[v] = gain
        c.mod[v] = mod
        c.pressure[v] = pressure
        c.onset_time[v] = t
        c.release_time[v] = -1
        self.active_count = int(np.count_nonzero(c.active))
        return v

    def _release(self, v: int, t: int) -> None:
        c = self.cond
        self.key_down[v] = False
        self.sustained[v] = False
        self.latched[v] = False
        if c.gate[v]:
            c.gate[v] = False
            c.release_time[v] = t
            self._counter += 1
            self.release_order[v] = self._counter
            if self.stage[v] != IDLE and self.stage[v] != KILL:
                self.stage[v] = RELEASE

    def note_off(self, ch: int, note: int, t: int, pedal_down: bool) -> None:
        v = int(self.note_voice[ch, note])
        if v < 0 or not self.cond.active[v] or not self.key_down[v]:
            return
        if pedal_down:
            self.key_down[v] = False
            self.sustained[v] = True
        elif self.latched[v]:
            self.key_down[v] = False             # held by the sostenuto pedal until it lifts
        else:
            self._release(v, t)

    def pedal_up(self, ch: int, t: int) -> None:
        for v in self.voices_on(ch):
            if self.sustained[v]:
                if self.latched[v]:
                    self.sustained[v] = False    # the sostenuto pedal still holds it
                else:
                    self._release(v, t)

    def sostenuto_down(self, ch: int) -> None:
        for v in self.voices_on(ch):
            if self.key_down[v]:
                self.latched[v] = True

    def sostenuto_up(self, ch: int, t: int, pedal_down: bool) -> None:
        for v in self.voices_on(ch):
            if self.latched[v]:
                self.latched[v] = False
                if not self.key_down[v] and not self.sustained[v] and self.cond.gate[v]:
                    if pedal_down:               # its key went up while latched: the sustain pedal takes it
                        self.sustained[v] = True
                    else:
                        self._release(v, t)

    def all_notes_off(self, ch: int, t: int, pedal_down: bool) -> None:
        for v in self.voices_on(ch):
            if self.key_down[v]:
                self.note_off(ch, int(self.note_int[v]), t, pedal_down)

    def all_sound_off(self, ch: int, t: int) -> None:
        for v in self.voices_on(ch):
            self._release(v, t)
            self.stage[v] = KILL

    def release_all(self, t: int) -> None:
        """Release every voice regardless of pedal (shutdown, port lost)."""
        for v in range(self.polyphony):
            if self.cond.active[v]:
                self._release(v, t)

    def kill_all(self) -> None:
        """Panic: every voice silent at once, all state forgotten."""
        c = self.cond
        c.active[:] = False
        c.gate[:] = False
        self.stage[:] = IDLE
        self.level[:] = 0.0
        self.key_down[:] = False
        self.sustained[:] = False
        self.latched[:] = False
        self.note_voice[:] = -1
        self.active_count = 0

    def free_finished(self) -> int:
        c = self.cond
        self.active_count = free_finished(self.stage, c.active, c.gate, self.key_down, self.sustained,
                                          self.note_voice, c.channel, self.note_int)
        return self.active_count
