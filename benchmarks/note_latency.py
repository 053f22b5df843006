"""From a note-on to its sound, offline, for every shipped instrument: the engine's declared
latency beside when the sound actually rises (the algorithm's latency, counted in samples, so
the figures do not depend on the machine). FluidR3 (fluidsynth) on the same note is the
reference the sampled instruments were trained on."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATE = 48000
PHASES = 7          # note-ons spread over one 11.6 ms frame (hop 256 at 22.05 kHz)
KEY, VELOCITY = 60, 100


def rise(y: np.ndarray, at: int) -> tuple[int, int]:
    """Samples from ``at`` until the waveform first reaches 5% and 50% of its peak magnitude
    (the first sample over each: a trailing envelope would cross at the same sample)."""
    a = np.abs(y)
    peak = a.max()
    return int(np.flatnonzero(a > 0.05 * peak)[0]) - at, int(np.flatnonzero(a > 0.5 * peak)[0]) - at


def instrument_rise(generator) -> dict:
    """A fresh engine per note (nothing left ringing from the one before)."""
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    from livewave.offline_render import render_events
    first, half = [], []
    for t0 in np.linspace(0.2, 0.2 + 256 / 22050, PHASES):
        eng = Engine(EngineConfig(sample_rate=RATE, max_block=64, polyphony=8), generator).prepare()
        y = render_events(eng, [(float(t0), 0x90, KEY, VELOCITY), (float(t0) + 0.5, 0x80, KEY, 0)], 1.0, block=64,
                          tail_s=0.3)[:, 0]
        a, b = rise(y, round(t0 * RATE))
        first.append(a)
        half.append(b)
    return {"declared": eng.latency_samples, "first": float(np.median(first)), "half": float(np.median(half)),
            "first_range": (min(first), max(first))}


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
    a, b = rise(x, RATE // 2)
    return {"first": float(a), "half": float(b)}


def note_latency_table() -> list[str]:
    from livewave.checkpoint import load_generator
    from livewave.default_instrument import DefaultInstrument
    rows = [("default instrument", DefaultInstrument())]
    for path in sorted((ROOT / "models").glob("*.safetensors")):
        gen = load_generator(path)
        if gen.info.conditioning == "voices":
            rows.append((f"{path.stem} ({gen.info.family})", gen))
    ms = lambda s: f"{s * 1000 / RATE:.1f}"         # noqa: E731
    lines = [f"### From a note-on to its sound, offline (48 kHz, key {KEY}, velocity {VELOCITY}, 64-sample blocks)",
             "", f"Medians over {PHASES} note-ons spread across one 11.6 ms frame (a fresh engine each); the "
             "sound's magnitude against its own peak (the first sample over 5% and over 50%). Counted in "
             "samples: the same on any machine.", "",
             "| instrument | declared latency (ms) | to 5% of the peak (ms) | range over the phases | to 50% (ms) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, gen in rows:
        r = instrument_rise(gen)
        print(name, r)
        lo, hi = r["first_range"]
        lines.append(f"| {name} | {ms(r['declared'])} | {ms(r['first'])} | {ms(lo)}-{ms(hi)} | {ms(r['half'])} |")
    ref = fluidr3_rise()
    if ref is not None:
        lines.append(f"| FluidR3 piano (fluidsynth, the reference; from its note-on in the file) | | {ms(ref['first'])} "
                     f"| | {ms(ref['half'])} |")
    return lines + [""]
