"""Polyphonic training phrases with the sustain pedal, for MIDI-to-mel models (piano first).

:func:`generate_roll_clip` draws, from a numpy ``Generator`` (a seed fixes everything), a clip
of passages a pianist plays: block-chord progressions with legato pedalling, broken chords
(rolling and Alberti patterns) over a held pedal, a melody over held left-hand chords, single
notes anywhere in the range (staccato to long, to learn each key's own decay), repeated notes
and chords (restrikes), long chords left to ring out, and rests. Velocities 12..127 with
crescendo and diminuendo within a passage. The same generator serves a sustained instrument
(string ensemble, organ): its notes simply last as long as the keys are held.

No two notes of one pitch overlap: a restrike ends the key's previous note at the same tick
(note-off written before the note-on), the way the engine's voice allocator retriggers a key.

Time base as :mod:`livewave.phrases`: 1 tick = 1 ms. The clip carries its ``notes`` (float64
``[N, 4]``: onset_s, key-up_s, midi_pitch, velocity 1..127) and ``pedal`` (float64 ``[M, 2]``:
time_s, 1 down / 0 up), the exact events written to the file.
Threading: pure functions; nothing shared.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .phrases import TEMPO, TICKS_PER_BEAT, TICKS_PER_SECOND, gm_name

_TRIADS = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 4, 7, 10), (0, 3, 6), (0, 5, 7), (0, 4, 9))
_SCALE = (0, 2, 4, 5, 7, 9, 11)
KINDS = ("chords", "broken", "melody", "singles", "repeated", "ring")
_KIND_P = (0.22, 0.25, 0.25, 0.12, 0.1, 0.06)


@dataclass(frozen=True)
class RollClip:
    program: int
    seconds: float
    notes: np.ndarray      # [N, 4] onset_s, key-up_s, pitch, velocity (sorted by onset)
    pedal: np.ndarray      # [M, 2] time_s, 1 down / 0 up

    def write(self, path) -> None:
        """A type-0 SMF: program, volume 100, expression 127, then the notes and CC64."""
        import mido
        ev = [(0, 1, mido.Message("program_change", program=self.program))]
        for control, value in ((7, 100), (10, 64), (11, 127), (64, 0), (1, 0)):
            ev.append((0, 1, mido.Message("control_change", control=control, value=value)))
        for on, off, pitch, vel in self.notes:
            ev.append((_tick(on), 2, mido.Message("note_on", note=int(pitch), velocity=int(vel))))
            ev.append((_tick(off), 0, mido.Message("note_off", note=int(pitch), velocity=64)))
        for t, down in self.pedal:       # pedal changes after the note-offs, before the note-ons
            ev.append((_tick(t), 1, mido.Message("control_change", control=64, value=127 if down else 0)))
        ev.sort(key=lambda e: (e[0], e[1]))
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO),
                                mido.MetaMessage("track_name", name=gm_name(self.program))])
        now = 0
        for tick, _order, msg in ev:
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, _tick(self.seconds) - now)))
        mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
        mid.tracks.append(track)
        mid.save(str(path))


def _tick(t: float) -> int:
    return int(round(float(t) * TICKS_PER_SECOND))


class _Roll:
    """Notes in ticks; a restrike ends the key's sounding note at the new onset."""

    def __init__(self):
        self.notes: list[list[int]] = []
        self.last: dict[int, int] = {}       # pitch -> index of its latest note
        self.pedal: list[tuple[int, int]] = []

    def note(self, on: int, off: int, pitch: int, vel: int) -> None:
        j = self.last.get(pitch)
        if j is not None and self.notes[j][1] > on:
            if self.notes[j][0] >= on:        # same tick: the later one wins
                self.notes[j] = [on, max(off, on + 20), pitch, vel]
                return
            self.notes[j][1] = on
        self.last[pitch] = len(self.notes)
        self.notes.append([on, max(off, on + 20), pitch, int(np.clip(vel, 1, 127))])

    def pedal_down(self, t: int) -> None:
        if not self.pedal or self.pedal[-1][1] == 0:
            self.pedal.append((max(t, self.pedal[-1][0] + 1) if self.pedal else t, 1))

    def pedal_up(self, t: int) -> None:
        if self.pedal and self.pedal[-1][1] == 1:
            self.pedal.append((max(t, self.pedal[-1][0] + 1), 0))


def _chord(rng, root: int, lo: int, hi: int, size: int) -> list[int]:
    shape = _TRIADS[rng.integers(len(_TRIADS))]
    pcs = [(root + s) % 12 for s in shape]
    pool = [p for p in range(lo, hi + 1) if p % 12 in pcs]
    if not pool:
        return [int(np.clip(root, lo, hi))]
    centre = int(rng.integers(lo, hi + 1))
    pool.sort(key=lambda p: abs(p - centre))
    return sorted(pool[:max(1, size)])


def _dyn(rng, n: int) -> np.ndarray:
    """A velocity contour of n notes: a level, a ramp, jitter."""
    a, b = rng.uniform(20, 120, size=2)
    return np.clip(np.linspace(a, b, max(1, n)) + rng.normal(0, 6, max(1, n)), 12, 127).round().astype(int)


def _passage(r: _Roll, rng, kind: str, t: int, lo: int, hi: int, pedal: bool) -> int:
    """Write one passage from tick t; returns its end tick."""
    root = int(rng.integers(12))
    if kind == "chords":
        n = int(rng.integers(3, 7))
        vel = _dyn(rng, n)
        for i in range(n):
            dur = int(rng.integers(350, 2000))
            notes = _chord(rng, root + int(rng.choice([0, 5, 7, 9, 2])), lo, hi, int(rng.integers(2, 6)))
            if rng.random() < 0.6:                       # a bass note an octave or two down
                notes.append(max(lo, notes[0] - 12 * int(rng.integers(1, 3))))
            legato = rng.random() < 0.5
            for p in set(notes):
                r.note(t, t + (dur if legato else int(dur * rng.uniform(0.3, 0.9))), p,
                       int(vel[i] + rng.integers(-5, 6)))
            if pedal:                                    # legato pedalling: change just after the chord
                r.pedal_up(t + 5)
                r.pedal_down(t + int(rng.integers(40, 120)))
            t += dur
        if pedal:
            t += int(rng.integers(0, 600))
            r.pedal_up(t)
        return t
    if kind == "broken":
        n_chords = int(rng.integers(2, 5))
        step = int(rng.integers(70, 200))
        for _ in range(n_chords):
            notes = _chord(rng, root + int(rng.choice([0, 5, 7, 9])), lo, hi, int(rng.integers(3, 6)))
            if rng.random() < 0.5:
                pattern = notes + notes[-2:0:-1]                     # rolling up and down
            else:
                pattern = [notes[0], notes[-1], notes[len(notes) // 2], notes[-1]]   # Alberti
            k = int(rng.integers(6, 17))
            vel = _dyn(rng, k)
            if pedal:
                r.pedal_up(t)
                r.pedal_down(t + 30)
            for j in range(k):
                p = pattern[j % len(pattern)]
                r.note(t, t + int(step * rng.uniform(0.5, 1.0)), p, int(vel[j]))
                t += step
        if pedal:
            r.pedal_up(t + 200)
        return t + 200
    if kind == "melody":
        mid = int(rng.integers(lo, hi + 1))
        bass_lo, bass_hi = max(lo, mid - 24), max(lo, mid - 5)
        scale = [p for p in range(max(lo, mid - 7), min(hi, mid + 14) + 1) if (p - root) % 12 in _SCALE] or [mid]
        n = int(rng.integers(6, 16))
        vel = _dyn(rng, n)
        i = int(rng.integers(len(scale)))
        chord_every = int(rng.integers(2, 5))
        for j in range(n):
            dur = int(rng.choice([150, 250, 350, 500, 750]))
            if j % chord_every == 0:
                held = dur * chord_every
                for p in _chord(rng, root + int(rng.choice([0, 5, 7])), bass_lo, max(bass_lo, bass_hi), 3):
                    r.note(t, t + held, p, int(vel[j] * 0.8))
                if pedal:
                    r.pedal_up(t + 5)
                    r.pedal_down(t + 60)
            r.note(t, t + int(dur * rng.uniform(0.6, 1.0)), scale[i], int(vel[j]))
            i = int(np.clip(i + rng.choice([-2, -1, -1, 1, 1, 2, 0]), 0, len(scale) - 1))
            t += dur
        if pedal:
            r.pedal_up(t + 100)
        return t + 100
    if kind == "singles":
        n = int(rng.integers(3, 9))
        for _ in range(n):
            p = int(rng.integers(lo, hi + 1))
            dur = int(rng.choice([60, 150, 400, 900, 2000]))
            r.note(t, t + dur, p, int(rng.integers(12, 128)))
            t += dur + int(rng.integers(30, 400))
        return t
    if kind == "repeated":
        notes = _chord(rng, root, lo, hi, int(rng.integers(1, 4)))
        n = int(rng.integers(4, 12))
        step = int(rng.integers(90, 350))
        vel = _dyn(rng, n)
        if pedal and rng.random() < 0.5:
            r.pedal_down(t)
        for j in range(n):
            for p in notes:
                r.note(t, t + int(step * rng.uniform(0.3, 0.95)), p, int(vel[j]))
            t += step
        r.pedal_up(t + 100)
        return t + 100
    # "ring": a chord left to sound out (pedal or keys), then a release
    notes = _chord(rng, root, lo, hi, int(rng.integers(1, 6)))
    dur = int(rng.integers(2500, 6000))
    vel = int(rng.integers(30, 128))
    use_pedal = pedal and rng.random() < 0.5
    if use_pedal:
        r.pedal_down(t + 20)
    for p in notes:
        r.note(t, t + (300 if use_pedal else dur), p, vel + int(rng.integers(-6, 7)))
    if use_pedal:
        r.pedal_up(t + dur)
    return t + dur + 300


def generate_roll_clip(program: int, seconds: float, rng: np.random.Generator, lo: int, hi: int,
                       pedal: bool = True) -> RollClip:
    """Passages until ``seconds`` minus a 1.5 s release tail; 0.2 s of silence first."""
    if hi < lo:
        raise ValueError(f"empty key range {lo}..{hi}")
    r = _Roll()
    t, end = 200, _tick(seconds) - 1500
    while t < end - 1000:
        kind = str(rng.choice(KINDS, p=_KIND_P))
        t = _passage(r, rng, kind, t, lo, hi, pedal)
        t += int(rng.choice([0, 0, 100, 300, 800]))
    r.pedal_up(t)
    stop = _tick(seconds) - 1500
    notes = []
    for on, off, p, v in r.notes:
        if on >= stop:
            continue
        notes.append((on, min(off, stop), p, v))
    pedal_ev = [(min(tt, stop), d) for tt, d in r.pedal if tt < stop or d == 0]
    if pedal_ev and pedal_ev[-1][1] == 1:
        pedal_ev.append((stop, 0))
    pedal_ev = [e for i, e in enumerate(pedal_ev) if i == 0 or e[1] != pedal_ev[i - 1][1]]
    n = np.array(sorted(notes), np.float64).reshape(-1, 4)
    n[:, :2] /= TICKS_PER_SECOND
    pd = np.array(pedal_ev, np.float64).reshape(-1, 2)
    pd[:, 0] /= TICKS_PER_SECOND
    return RollClip(program, float(seconds), n, pd)
