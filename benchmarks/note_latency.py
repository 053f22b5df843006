"""From a note-on to its sound, offline, for every shipped instrument: the engine's declared
latency beside when the sound actually rises (the algorithm's latency, counted in samples, so
the figures do not depend on the machine). FluidR3 (fluidsynth) on the same note is the
reference the sampled instruments were trained on."""
from __future__ import annotations

import tempfile
from pathlib import Path

from livewave import note_onset

ROOT = Path(__file__).resolve().parents[1]
RATE, PHASES, KEY, VELOCITY = note_onset.RATE, note_onset.PHASES, note_onset.KEY, note_onset.VELOCITY


def fluidr3_rise() -> dict | None:
    """Program 0 (the piano) on the same key, rendered by fluidsynth; None without it."""
    try:
        import mido

        from livewave.soundfont_data import render_midi
        tmp = Path(tempfile.mkdtemp())
        mid = mido.MidiFile(type=0, ticks_per_beat=480)
        tr = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000), mido.Message("program_change", program=0),
                             mido.Message("note_on", note=KEY, velocity=VELOCITY, time=480),
                             mido.Message("note_off", note=KEY, velocity=64, time=480),
                             mido.MetaMessage("end_of_track", time=960)])
        mid.tracks.append(tr)
        mid.save(str(tmp / "one.mid"))
        x, _ = render_midi(tmp / "one.mid", tmp / "one.wav", RATE, "/usr/share/sounds/sf2/FluidR3_GM.sf2")
    except Exception as exc:                  # noqa: BLE001 (a reference row, not the benchmark)
        print(f"FluidR3 reference skipped: {exc}")
        return None
    r = note_onset.rise(x, RATE // 2)
    return None if r is None else {"first_ms": round(r[0] * 1000 / RATE, 1), "half_ms": round(r[1] * 1000 / RATE, 1)}


def note_latency_table() -> list[str]:
    from livewave.checkpoint import load_generator
    from livewave.default_instrument import DefaultInstrument
    rows = [("default instrument", DefaultInstrument())]
    for path in sorted((ROOT / "models").glob("*.safetensors")):
        gen = load_generator(path)
        if gen.info.conditioning == "voices":
            rows.append((f"{path.stem} ({gen.info.family})", gen))
    lines = [f"### From a note-on to its sound, offline (48 kHz, key {KEY}, velocity {VELOCITY}, 64-sample blocks)",
             "", f"Medians over {PHASES} note-ons spread across one 11.6 ms frame (a fresh engine each); the "
             "sound's magnitude against its own peak (the first sample over 5% and over 50%; "
             "`livewave/note_onset.py`). Counted in samples: the same on any machine.", "",
             "| instrument | declared latency (ms) | to 5% of the peak (ms) | range over the phases | to 50% (ms) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, gen in rows:
        r = note_onset.onset_times(gen)
        print(name, r)
        lo, hi = r["first_range_ms"]
        lines.append(f"| {name} | {r['declared_ms']} | {r['first_ms']} | {lo}-{hi} | {r['half_ms']} |")
    ref = fluidr3_rise()
    if ref is not None:
        lines.append(f"| FluidR3 piano (fluidsynth, the reference; from its note-on in the file) | | {ref['first_ms']} "
                     f"| | {ref['half_ms']} |")
    return lines + [""]
