"""Monophonic training phrases for one General MIDI program, as a Standard MIDI File plus
exact labels.

:func:`generate_clip` draws phrases from a numpy ``Generator`` (so a seed fixes everything):
scales, arpeggios, leaps, melodies, repeated notes, long tones and whole-range sweeps;
legato (the next note-on at the tick of the previous note-off), normal and staccato playing;
velocity ramps and CC11 expression ramps; pitch-bend scoops and glides; vibrato written as
pitch-bend events every 10 ms (never the mod wheel: a soundfont's own vibrato would leave the
f0 label unknown); velocities 20..127 over the instrument's playable range; rests.

Time base: 500 ticks per beat at 120 bpm, so one tick is exactly 1 ms. The bend range is set
to 2 semitones with an explicit RPN 0 at the start. Events at one tick are written note-offs
first, then controllers and bends, then note-ons.

Labels: :class:`LabelTimeline` is built by walking the very events that are written (not by
re-reading the file): a piecewise-constant state, exact at any time, of the sounding MIDI
pitch including bend (fractional; held at the last note's pitch, with its bend, through rests
and before the first note at that note's pitch), the sounding note's velocity (0 in rests),
whether a note is held, and CC11 expression.

Threading: pure functions; nothing shared.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TICKS_PER_BEAT = 500
TEMPO = 500_000                 # microseconds per beat: 1 tick = 1 ms
TICKS_PER_SECOND = 1000         # = TICKS_PER_BEAT * 1e6 / TEMPO; times are tick / 1000 (exact rounding)
BEND_RANGE = 2.0                # semitones, written as RPN 0
VIBRATO_STEP = 10               # ticks between vibrato / glide bend events
EXPRESSION_STEP = 20            # ticks between CC11 ramp events

GM_NAMES = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ",
    "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar",
    "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)",
    "Fretless Bass", "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola",
    "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Voice", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax",
    "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo", "Flute",
    "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina", "Lead 1 (square)",
    "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)",
    "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)",
    "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise", "Breath Noise",
    "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)

# Playable ranges (sounding MIDI pitch, low and high) for GM programs (0-based numbers).
RANGES = {
    40: (55, 96),   # violin, G3..C7
    41: (48, 84),   # viola, C3..C6
    42: (36, 76),   # cello, C2..E5
    43: (28, 60),   # contrabass, E1..C4
    56: (54, 84),   # trumpet, F#3..C6
    57: (40, 72),   # trombone, E2..C5
    60: (41, 77),   # french horn, F2..F5
    64: (56, 87),   # soprano sax, Ab3..Eb6
    65: (49, 80),   # alto sax, Db3..Ab5
    66: (44, 75),   # tenor sax, Ab2..Eb5
    68: (58, 91),   # oboe, Bb3..G6
    71: (50, 91),   # clarinet, D3..G6
    73: (60, 96),   # flute, C4..C7
    75: (72, 96),   # (soprano) recorder, C5..C7
}
DEFAULT_RANGE = (48, 84)

_SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 3, 5, 7, 8, 11), (0, 2, 4, 7, 9),
           tuple(range(12)))
_CHORDS = ((0, 4, 7), (0, 3, 7), (0, 3, 6), (0, 4, 7, 10), (0, 4, 7, 11), (0, 3, 7, 10))
_KINDS = ("scale", "arpeggio", "leaps", "melody", "repeated", "long", "sweep")
_KIND_WEIGHTS = (0.2, 0.15, 0.12, 0.2, 0.08, 0.18, 0.07)


def gm_name(program: int) -> str:
    if not 0 <= program <= 127:
        raise ValueError(f"GM program {program} is out of range 0..127")
    return GM_NAMES[program]


def program_range(program: int, low: int | None = None, high: int | None = None) -> tuple[int, int]:
    """The playable range of ``program`` (``low``/``high`` override either end)."""
    gm_name(program)
    lo, hi = RANGES.get(program, DEFAULT_RANGE)
    lo, hi = lo if low is None else int(low), hi if high is None else int(high)
    if not 0 <= lo < hi <= 127 or hi - lo < 5:
        raise ValueError(f"bad pitch range {lo}..{hi} (need 0 <= low, low + 5 <= high <= 127)")
    return lo, hi


@dataclass(frozen=True)
class LabelTimeline:
    """Piecewise-constant labels: the state from ``times[i]`` (seconds) until ``times[i + 1]``.
    All arrays are ``[changes]``."""
    times: np.ndarray        # float64, increasing, starts at 0
    pitch: np.ndarray        # float64 MIDI pitch including bend
    velocity: np.ndarray     # float64 1..127 of the held note, 0 when none is held
    sounding: np.ndarray     # bool, a note is held (between its note-on and note-off)
    expression: np.ndarray   # float64 CC11 0..127
    key: np.ndarray          # int64 MIDI key of the held (or last) note
    onset: np.ndarray        # float64 time of that note's note-on (seconds)

    def at(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(pitch, velocity, sounding, expression)`` at times ``t`` (seconds, any shape)."""
        i = self.index(t)
        return self.pitch[i], self.velocity[i], self.sounding[i], self.expression[i]

    def index(self, t, heard=None) -> np.ndarray:
        """Which state holds at times ``t``; with ``heard``, ``t`` are times in the audio."""
        times = self.times if heard is None else heard(self.times)
        return np.maximum(np.searchsorted(times, np.asarray(t, dtype=np.float64), side="right") - 1, 0)

    def frames(self, sample_rate: int, hop: int, frames: int, key_cents=None, heard=None) -> dict[str, np.ndarray]:
        """Labels on the frame grid (frame k at sample ``k * hop``): ``f0_hz float32``,
        ``velocity float32`` (0..1), ``voiced bool``, ``expression float32`` (0..1), all ``[frames]``.

        ``key_cents``, if given, is how the synthesiser tunes each key, in cents added to the
        f0 of that key's notes: ``[128]``, or ``[128, steps]`` over the sample played since the
        note-on (step j at ``j * hop`` samples of unbent playback; the last step holds on). A
        sample player reads faster when bent up, so the position is the integral of the bend
        ratio since the note-on. ``heard`` maps event times (seconds, array) to when the
        synthesiser makes them heard in its output."""
        t = np.arange(frames) * hop / sample_rate
        times = self.times if heard is None else heard(self.times)
        i = self.index(t, heard)
        p, v, s, e = self.pitch[i], self.velocity[i], self.sounding[i], self.expression[i]
        if key_cents is not None:
            kc = np.asarray(key_cents, dtype=np.float64)
            if kc.ndim == 1:
                p = p + kc[self.key[i]] / 100.0
            else:
                # playback position: integral of 2^(bend/12) dt over the piecewise-constant states
                ratio = 2.0 ** ((self.pitch - self.key) / 12.0)
                played = np.concatenate(([0.0], np.cumsum(ratio[:-1] * np.diff(times))))

                def position(tt, j):
                    return played[j] + ratio[j] * (tt - times[j])

                onset = self.onset if heard is None else heard(self.onset)
                since = position(t, i) - position(onset[i], self.index(onset[i], heard))
                step = np.clip(np.round(since * sample_rate / hop).astype(np.int64), 0, kc.shape[1] - 1)
                p = p + kc[self.key[i], step] / 100.0
        return {"f0_hz": (440.0 * 2.0 ** ((p - 69.0) / 12.0)).astype(np.float32),
                "velocity": (v / 127.0).astype(np.float32), "voiced": s.copy(),
                "expression": (e / 127.0).astype(np.float32)}


@dataclass(frozen=True)
class PhraseClip:
    """One clip of phrases: its events (what :meth:`write` puts in the file), notes and labels."""
    program: int
    seconds: float            # clip length: the end-of-track time
    events: tuple             # ((tick, mido.Message), ...) in file order
    notes: np.ndarray         # float64 [N, 4]: onset_s, offset_s, midi_pitch, velocity 1..127
    timeline: LabelTimeline

    def write(self, path) -> None:
        """Write a type-0 SMF of the events."""
        import mido
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO, time=0),
                                mido.MetaMessage("track_name", name=gm_name(self.program), time=0)])
        now = 0
        for tick, msg in self.events:
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=round(self.seconds * TICKS_PER_SECOND) - now))
        mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
        mid.tracks.append(track)
        mid.save(str(path))


class _Events:
    """Collects one clip's messages as ``(tick, order, seq, msg)``; tracks bend and expression."""

    def __init__(self):
        self.items: list = []
        self.bend = 0.0
        self.expression = 127

    def add(self, tick: int, msg, order: int = 1) -> None:
        self.items.append((int(tick), order, len(self.items), msg))

    def cc(self, tick: int, control: int, value: int) -> None:
        import mido
        self.add(tick, mido.Message("control_change", control=control, value=int(value)))

    def set_bend(self, tick: int, semitones: float) -> None:
        import mido
        value = int(np.clip(round(semitones / BEND_RANGE * 8192), -8192, 8191))
        self.bend = value / 8192 * BEND_RANGE
        self.add(tick, mido.Message("pitchwheel", pitch=value))

    def set_expression(self, tick: int, value: int) -> None:
        if value != self.expression:
            self.expression = int(value)
            self.cc(tick, 11, value)

    def note(self, on: int, off: int, pitch: int, velocity: int) -> None:
        import mido
        if self.bend != 0.0:
            self.set_bend(on, 0.0)
        self.add(on, mido.Message("note_on", note=int(pitch), velocity=int(velocity)), order=2)
        self.add(off, mido.Message("note_off", note=int(pitch), velocity=64), order=0)


def _setup(ev: _Events, program: int) -> None:
    import mido
    ev.add(0, mido.Message("program_change", program=program))
    for control, value in ((101, 0), (100, 0), (6, int(BEND_RANGE)), (38, 0), (101, 127), (100, 127),
                           (1, 0), (7, 100), (10, 64), (11, 127), (64, 0)):
        ev.cc(0, control, value)
    ev.set_bend(0, 0.0)


def _pitch_set(rng, lo: int, hi: int, chord: bool) -> np.ndarray:
    root = int(rng.integers(12))
    if chord:
        pcs = _CHORDS[rng.integers(len(_CHORDS))]
    else:
        pcs = _SCALES[rng.choice(len(_SCALES), p=(0.35, 0.25, 0.1, 0.15, 0.15))]
    return np.array([p for p in range(lo, hi + 1) if (p - root) % 12 in pcs])


def _pitches(kind: str, rng, lo: int, hi: int) -> list[int]:
    """The pitch sequence of one phrase."""
    if kind == "sweep":
        ps = _pitch_set(rng, lo, hi, chord=False)
        return list(ps if rng.random() < 0.5 else ps[::-1])
    if kind in ("scale", "arpeggio", "melody"):
        ps = _pitch_set(rng, lo, hi, chord=kind == "arpeggio")
        n = int(rng.integers(5, 17))
        i = int(rng.integers(len(ps)))
        if kind == "melody":
            steps = rng.choice([-3, -2, -1, -1, 1, 1, 2, 3, 0], size=n - 1)
        else:
            d = 1 if rng.random() < 0.5 else -1
            steps = np.full(n - 1, d)
            if rng.random() < 0.3:                 # up and back down (or the reverse)
                steps[(n - 1) // 2:] = -d
        out = [i]
        for s in steps:
            j = out[-1] + int(s)
            if not 0 <= j < len(ps):               # bounce off the range's ends
                j = out[-1] - int(s)
            out.append(int(np.clip(j, 0, len(ps) - 1)))
        return [int(ps[j]) for j in out]
    if kind == "leaps":
        out = [int(rng.integers(lo, hi + 1))]
        for _ in range(int(rng.integers(4, 10))):
            for _try in range(20):
                p = out[-1] + int(rng.choice([-1, 1]) * rng.integers(5, 20))
                if lo <= p <= hi:
                    break
            else:
                p = int(rng.integers(lo, hi + 1))
            out.append(p)
        return out
    if kind == "repeated":
        return [int(rng.integers(lo, hi + 1))] * int(rng.integers(3, 9))
    return [int(p) for p in rng.integers(lo, hi + 1, size=int(rng.integers(1, 4)))]   # long


def _phrase(ev: _Events, rng, kind: str, start: int, end_limit: int, lo: int, hi: int) -> int:
    """Write one phrase from tick ``start``; notes that would end after ``end_limit`` are left
    out. Returns the tick where the phrase ends (its last note-off)."""
    pitches = _pitches(kind, rng, lo, hi)
    n = len(pitches)
    base = {"scale": (90, 350), "arpeggio": (90, 350), "sweep": (90, 200), "leaps": (200, 800),
            "melody": (150, 600), "repeated": (120, 500), "long": (800, 3000)}[kind]
    if kind == "long":
        ioi = rng.integers(base[0], base[1] + 1, size=n)
    else:
        ioi = np.full(n, int(rng.integers(base[0], base[1] + 1)))
        if kind == "melody":
            ioi = (ioi * rng.choice([0.5, 1, 1, 1, 2], size=n)).astype(int)
    style = "legato" if kind == "long" and rng.random() < 0.5 else rng.choice(["legato", "normal", "staccato"],
                                                                                p=[0.35, 0.4, 0.25])
    frac = {"legato": 1.0, "normal": rng.uniform(0.8, 0.95), "staccato": rng.uniform(0.25, 0.5)}[style]
    v0, v1 = rng.integers(20, 128, size=2)
    if rng.random() < 0.4:
        v1 = v0
    vel = np.clip(np.round(np.linspace(v0, v1, n) + rng.normal(0, 4, n)), 20, 127).astype(int)
    p_vibrato = {"long": 0.7, "melody": 0.35, "leaps": 0.3}.get(kind, 0.1)
    p_glide = {"long": 0.3, "melody": 0.15}.get(kind, 0.05)
    total = int(ioi.sum())
    if rng.random() < 0.2 and total > 600:          # an expression (CC11) swell or fade
        e0, e1 = (127, int(rng.integers(30, 90))) if rng.random() < 0.5 else (int(rng.integers(30, 90)), 127)
        for t in range(start, min(start + total, end_limit), EXPRESSION_STEP):
            ev.set_expression(t, round(e0 + (e1 - e0) * (t - start) / total))
    elif ev.expression != 127:
        ev.set_expression(start, 127)
    t = start
    end = start
    for i in range(n):
        if kind == "melody" and i > 0 and rng.random() < 0.08:
            t += int(rng.integers(100, 500))        # a rest inside the phrase
        dur = max(40, int(ioi[i] * frac)) if style != "legato" else int(ioi[i])
        if t + dur > end_limit:
            break
        ev.note(t, t + dur, pitches[i], vel[i])
        _bend_shapes(ev, rng, t, t + dur, p_vibrato, p_glide)
        end = t + dur
        t += int(ioi[i])
    return end


def _bend_shapes(ev: _Events, rng, on: int, off: int, p_vibrato: float, p_glide: float) -> None:
    """Pitch-bend gestures inside one note: a scoop into it, a glide, or vibrato (bend LFO)."""
    dur = off - on
    u = rng.random()
    if dur >= 350 and u < p_vibrato:
        delay, rate = int(rng.integers(80, 300)), rng.uniform(4.5, 7.0)
        depth, fade = rng.uniform(0.1, 0.6), 200.0
        for t in range(on + delay, off, VIBRATO_STEP):
            env = min(1.0, (t - on - delay) / fade)
            ev.set_bend(t, depth * env * np.sin(2 * np.pi * rate * (t - on - delay) / 1000.0))
    elif dur >= 400 and u < p_vibrato + p_glide:
        target = rng.choice([-1, 1]) * rng.uniform(0.3, BEND_RANGE)
        t0 = on + int(dur * rng.uniform(0.1, 0.4))
        span = int(rng.integers(100, 400))
        for t in range(t0, min(off, t0 + span + 1), VIBRATO_STEP):
            ev.set_bend(t, target * min(1.0, (t - t0) / span))
    elif dur >= 200 and u > 0.9:
        depth, span = rng.uniform(0.3, 1.0), int(rng.integers(60, 200))
        ev.set_bend(on, -depth)          # order 1: before the note-on at this tick
        for t in range(on + VIBRATO_STEP, min(off, on + span + 1), VIBRATO_STEP):
            ev.set_bend(t, -depth * (1.0 - (t - on) / span))


def generate_clip(program: int, seconds: float, rng: np.random.Generator, low: int | None = None,
                  high: int | None = None, lead_in: float = 0.25, tail: float = 1.0) -> PhraseClip:
    """``seconds`` of phrases for GM ``program`` (0-based): silence for ``lead_in``, phrases
    separated by rests, and at least ``tail`` seconds at the end for the release."""
    lo, hi = program_range(program, low, high)
    if seconds < lead_in + tail + 1.0:
        raise ValueError(f"a clip of {seconds} s is too short (lead-in {lead_in} s, tail {tail} s)")
    ev = _Events()
    _setup(ev, program)
    t = round(lead_in * TICKS_PER_SECOND)
    limit = round((seconds - tail) * TICKS_PER_SECOND)
    while t < limit - 300:
        kind = _KINDS[rng.choice(len(_KINDS), p=_KIND_WEIGHTS)]
        end = _phrase(ev, rng, kind, t, limit, lo, hi)
        t = max(end, t) + int(rng.integers(150, 1200))
    items = sorted(ev.items, key=lambda e: e[:3])
    events = tuple((tick, msg) for tick, _o, _s, msg in items)
    notes, timeline = _labels(events)
    return PhraseClip(program=program, seconds=float(seconds), events=events, notes=notes, timeline=timeline)


def _labels(events) -> tuple[np.ndarray, LabelTimeline]:
    """Walk the events as a synthesiser would: the notes ``[N, 4]`` and the label timeline."""
    first = next((m.note for _t, m in events if m.type == "note_on" and m.velocity > 0), 60)
    rows, notes = [], []
    held, last, bend, vel, expr, onset = None, first, 0.0, 0.0, 127.0, None
    for tick, m in events:
        t = tick / TICKS_PER_SECOND
        if m.type == "note_on" and m.velocity > 0:
            held, last, vel, onset = m.note, m.note, float(m.velocity), t
            notes.append([t, np.nan, m.note, m.velocity])
        elif m.type in ("note_off", "note_on") and m.note == held:
            held, vel = None, 0.0
            notes[-1][1] = t
        elif m.type == "pitchwheel":
            bend = m.pitch / 8192 * BEND_RANGE
        elif m.type == "control_change" and m.control == 11:
            expr = float(m.value)
        row = [t, last + bend, vel, held is not None, expr, last, onset]
        if rows and rows[-1][0] == t:
            rows[-1] = row                      # only the state after a tick's last event lasts
        else:
            rows.append(row)
    if not rows or rows[0][0] > 0:
        rows.insert(0, [0.0, float(first), 0.0, False, 127.0, first, None])
    first_onset = notes[0][0] if notes else 0.0
    for r in rows:                              # before the first note: as if it had begun
        r[6] = first_onset if r[6] is None else r[6]
    cols = list(zip(*rows, strict=True))
    tl = LabelTimeline(times=np.array(cols[0]), pitch=np.array(cols[1], dtype=np.float64),
                       velocity=np.array(cols[2], dtype=np.float64), sounding=np.array(cols[3], dtype=bool),
                       expression=np.array(cols[4], dtype=np.float64), key=np.array(cols[5], dtype=np.int64),
                       onset=np.array(cols[6], dtype=np.float64))
    return np.array(notes, dtype=np.float64).reshape(-1, 4), tl
