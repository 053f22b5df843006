"""The engine process's memory over many model swaps: ``python -m benchmarks.run --swap-memory-only``.

The soak's memory figure (first sample after a minute against the last) mixes two things: the
models differ in size, so the engine's resident memory follows whichever one plays, and a leak
would add to every one. Here the real engine process (``EngineProcess`` on ``jackd -d dummy``,
rtmixer placement) loads the soak's models in turn for several rounds, plays a chord on each
for a few seconds, and reads its resident memory (``status()["rss_mb"]``) while each plays.
A leak grows a model's figure from one visit to the next; a model's size does not. The first
round is the warm-up (first loads, Numba's and torch's one-off allocations); growth is counted
from the second round to the last.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

CHORD = (48, 55, 64, 72)


def swap_memory(models: list[str], rounds: int = 5, seconds: float = 3.0, block: int = 256) -> dict:
    """-> {"models": names, "rss": {name: [MB at each visit]}, "loads": n, "failed": [...],
    "restarts": n}; each visit's figure read after ``seconds`` of the chord."""
    from jack_rig import JackServer

    from livewave.engine_process import EngineProcess
    names = [Path(m).stem for m in models]
    rss = {n: [] for n in names}
    failed = []
    with JackServer(48000, block, Path(tempfile.mkdtemp())):
        ep = EngineProcess(ready_timeout=180)
        try:
            ep.start({"audio": "system", "midi": "none", "block": block, "placement": "rtmixer",
                      "model": models[0]})
            loads = 0
            for r in range(rounds):
                for name, path in zip(names, models, strict=True):
                    if (r, name) != (0, names[0]):
                        ep.load(path)
                        loads += 1
                        ev = _answer(ep, path, 120)
                        if ev is None or ev[0] != "loaded":
                            failed.append((r, name, ev if ev is None else ev[:2]))
                            continue
                    for k in CHORD:
                        ep.send("midi", 0x90, k, 96)
                    time.sleep(seconds)
                    rss[name].append(round(ep.status()["rss_mb"], 1))
                    for k in CHORD:
                        ep.send("midi", 0x80, k, 0)
                    time.sleep(0.5)
            st = ep.status()
            return {"models": names, "rss": rss, "loads": loads, "failed": failed, "restarts": ep.restarts,
                    "ring_underruns": st["ring_underruns"], "generator_faults": st["generator_faults"],
                    "heap_trims": st["heap_trims"], "gc_longest_ms": st["gc_longest_ms"]}
        finally:
            ep.stop()


def _answer(ep, path: str, timeout: float):
    """The engine's answer to the load of ``path`` (a late answer to an earlier load is passed
    over, so it is not read as this one's)."""
    t_end = time.monotonic() + timeout
    while (left := t_end - time.monotonic()) > 0:
        ev = ep.wait_event(("loaded", "load_failed"), left)
        if ev is None or str(ev[1]) == str(path):
            return ev
    return None


def swap_memory_section(models: list[str], rounds: int = 5, seconds: float = 3.0, block: int = 256) -> list[str]:
    r = swap_memory(models, rounds, seconds, block)
    print(r)
    rows = []
    for name in r["models"]:
        v = r["rss"][name]
        growth = (v[-1] - v[1]) / v[1] * 100.0 if len(v) > 1 else float("nan")
        rows.append(f"| {name} | " + " | ".join(f"{x:.0f}" for x in v) + f" | {growth:+.2f}% |")
    # a leak per load adds to every model's next visit: the slope of each model's figures over its
    # visits after the first, fitted together (one slope, an offset per model)
    spread, xs, ys = [], [], []
    for v in (np.asarray(v[1:]) for v in r["rss"].values() if len(v) > 2):
        spread.append(v.max() - v.min())
        xs.append(np.arange(v.size) - (v.size - 1) / 2.0)
        ys.append(v - v.mean())
    x, y = np.concatenate(xs or [[0.0]]), np.concatenate(ys or [[0.0]])
    slope = float((x * y).sum() / (x * x).sum()) if (x * x).sum() else float("nan")
    return [f"### Memory over model swaps: {rounds} rounds of {len(models)} models, {block}-sample blocks, "
            "JACK dummy driver", "",
            "The engine process (rtmixer) loads each model in turn, plays a four-note chord on it for "
            f"{seconds:g} s and reads its resident memory (`benchmarks/swap_memory.py`). A leak grows a model's "
            "figure from visit to visit; the models' own sizes do not. Round 1 is the warm-up.", "",
            "| model | " + " | ".join(f"round {i + 1} (MB)" for i in range(rounds)) + " | round 2 -> last |",
            "| --- | " + " | ".join("---:" for _ in range(rounds)) + " | ---: |", *rows, "",
            f"{r['loads']} loads, {len(r['failed'])} failed {r['failed'] or ''}, {r['restarts']} engine restarts, "
            f"{r['ring_underruns']} ring underruns, {r['generator_faults']} generator faults, {r['heap_trims']} heap trims "
            f"(`livewave/heap_trim.py`), the longest garbage collection {r['gc_longest_ms']:.1f} ms. The widest range of "
            f"one model's figures after round 1: {max(spread, default=float('nan')):.1f} MB. Fitted growth per round "
            f"after round 1 (one slope for all models): {slope:+.2f} MB per round of {len(models)} loads.", ""]
