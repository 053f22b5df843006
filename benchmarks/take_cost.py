"""What recording a take costs the render side, for ``benchmarks.run --take-only``: the engine
renders 64-sample blocks at 48 kHz with notes held, in alternating runs without and with a take
(``take_recorder``: the render side's copies into the rings, a writer thread draining them to a
WAV and a MIDI file in a temporary folder). Medians of the per-block render time, side by side
in one run, and their ratio. The writer thread's own work runs beside the render (on this 2-core
machine it competes for the same cores), so it is in the "recording" column's block times only
as far as it disturbs them."""
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def held_chord(model, **config):
    """An engine at 48 kHz, 64-sample blocks, six notes held and warmed up; and its output block."""
    from livewave.checkpoint import load_generator
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    gen = load_generator(model) if model else None
    eng = Engine(EngineConfig(sample_rate=48000, max_block=64, **config), gen).prepare()
    out = np.zeros((64, 2), np.float32)
    for n in (48, 55, 60, 64, 67, 72):
        eng.push_event(eng.sample_time, 0x90, n, 90)
    for _ in range(500):
        eng.render(out)
    return eng, out


def median_block(eng, out, blocks: int) -> float:
    """Median seconds per ``eng.render(out)`` over ``blocks`` blocks (a CC 1 every 200 blocks)."""
    t = np.empty(blocks)
    for i in range(blocks):
        if i % 200 == 0:             # a CC now and then: events go into a take too
            eng.push_event(eng.sample_time, 0xB0, 1, i % 128)
        t0 = time.perf_counter()
        eng.render(out)
        t[i] = time.perf_counter() - t0
    return float(np.median(t))


def _runs(model, blocks: int, rounds: int):
    from livewave.take_recorder import TakeRecorder
    eng, out = held_chord(model)
    times = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d:
        for r in range(rounds):
            for recording in (False, True):
                rec = None
                if recording:
                    rec = TakeRecorder(Path(d) / f"t{r}.wav", 48000, Path(d) / f"t{r}.mid").start()
                    eng.start_take(rec)
                times[recording].append(median_block(eng, out, blocks))
                if rec is not None:
                    eng.stop_take()
                    rec.finish()
    return times


def take_cost_table(blocks: int = 3000, rounds: int = 5) -> list[str]:
    lines = ["### What recording a take costs the render side (offline, 48 kHz, 64-sample blocks, six notes held)",
             "", f"{rounds} alternating rounds of {blocks} blocks without and with a take (WAV and MIDI written to a "
             "temporary folder by the writer thread); the median block time of each round, then the median over "
             "rounds.", "",
             "| model | median block, no take (us) | median block, recording (us) | ratio | rounds (no take / take, us) |",
             "| --- | ---: | ---: | ---: | --- |"]
    for name in ("default instrument", "violin", "piano-midi2mel"):
        model = None if name == "default instrument" else str(ROOT / "models" / f"{name}.safetensors")
        t = _runs(model, blocks, rounds)
        a, b = float(np.median(t[False])) * 1e6, float(np.median(t[True])) * 1e6
        each = ", ".join(f"{x * 1e6:.1f}/{y * 1e6:.1f}" for x, y in zip(t[False], t[True], strict=True))
        row = f"| {name} | {a:.1f} | {b:.1f} | {b / a:.3f} | {each} |"
        print(row, flush=True)
        lines.append(row)
    return lines + [""]
