"""Writes the shipped demo song (``livewave/data/demo.mid``): chords under the sustain pedal,
a melody with pitch bends and mod-wheel vibrato, a tempo change. Run as a module to rebuild.
"""
from __future__ import annotations

from pathlib import Path

import mido

TPB = 480


def _track(events):
    """[(tick, message)] -> MidiTrack with delta times."""
    tr = mido.MidiTrack()
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        tr.append(msg.copy(time=tick - last))
        last = tick
    return tr


def build() -> mido.MidiFile:
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    beat = TPB
    meta = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(96))),
            (16 * beat, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(112)))]
    mid.tracks.append(_track(meta))
    chords = [(48, 55, 60, 64), (45, 52, 57, 60), (41, 48, 53, 57), (43, 50, 55, 59)] * 2
    pad = []
    for i, ch in enumerate(chords):
        t = i * 4 * beat
        pad.append((t, mido.Message("control_change", channel=0, control=64, value=127)))
        for k, n in enumerate(ch):
            pad.append((t + k * 40, mido.Message("note_on", channel=0, note=n, velocity=70 + 8 * k)))
            pad.append((t + 2 * beat, mido.Message("note_off", channel=0, note=n, velocity=0)))
        pad.append((t + 4 * beat - 10, mido.Message("control_change", channel=0, control=64, value=0)))
    pad.append((0, mido.Message("control_change", channel=0, control=7, value=90)))
    mid.tracks.append(_track(pad))
    melody = [72, 74, 76, 79, 76, 74, 72, 71, 72, 76, 79, 84, 83, 79, 76, 74]
    mel = [(0, mido.Message("control_change", channel=1, control=7, value=110))]
    for i, n in enumerate(melody * 2):
        t = i * 2 * beat
        vel = 60 + (i * 7) % 60
        mel.append((t, mido.Message("note_on", channel=1, note=n, velocity=vel)))
        mel.append((t + 2 * beat - 60, mido.Message("note_off", channel=1, note=n, velocity=0)))
        if i % 4 == 3:   # a bend up into the note and back
            for s in range(8):
                mel.append((t + s * 30, mido.Message("pitchwheel", channel=1, pitch=int(-4096 * (1 - s / 7)))))
        if i % 8 == 5:
            mel.append((t + beat // 2, mido.Message("control_change", channel=1, control=1, value=100)))
            mel.append((t + 2 * beat - 100, mido.Message("control_change", channel=1, control=1, value=0)))
    mid.tracks.append(_track(mel))
    return mid


DEMO_PATH = Path(__file__).with_name("data") / "demo.mid"


def main(path: Path = DEMO_PATH) -> None:
    build().save(str(path))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
