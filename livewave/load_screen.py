"""The load-time screen: a model plays 1 s of silence and 1 s of notes before anyone hears it.

What the model itself outputs (tapped before the engine's guard, DC blocker and limiter) is
measured in each second: samples that are NaN or Inf, the peak in dBFS, and the DC (the mean).
A model that renders NaN or Inf, or raises, is refused (``ScreenRefused``); one that peaks above
``PEAK_DBFS`` or holds a DC above ``DC_LIMIT`` is flagged: it plays (the limiter and the DC
blocker contain it), and the figures go into its card (``info.card["load_screen"]``) and the
engine's reports. A model driven by audio in hears a 220 Hz tone during the notes.

The notes are then played once more, at the live block size when the caller gives it
(``block``), and the render thread's CPU time of each block is kept: ``report["block_cost_s"]``,
the longest, from which the engine sets how far ahead it renders (``audio_io.lead_for``). The
longest, not a percentile: a vocoder computes a frame in one block of nine at 64 samples, and the 99th
percentile of those landed anywhere from 2.5 to 4.8 ms between loads of one model (max 5.7).

Runs off the render side: the engine process's loader, ``livewave play`` before the stream
opens. Threading: one call at a time per generator (it prepares and renders it).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from .generator import Generator, GeneratorWrapper

PEAK_DBFS = 6.0
DC_LIMIT = 0.1
BLOCK = 512
PHASES = ("silence", "notes")


class ScreenRefused(ValueError):
    pass


class _Tap(GeneratorWrapper):
    """Plays ``inner`` and keeps, per phase, the peak, the sum and the non-finite count of its output."""

    def __init__(self, inner: Generator):
        super().__init__(inner)
        self.clear()

    def clear(self) -> None:
        self.peak, self.total, self.count, self.nonfinite = 0.0, 0.0, 0, 0

    def render(self, cond, out: np.ndarray) -> None:
        self.inner.render(cond, out)
        x = out[:cond.frames]
        finite = np.isfinite(x)
        bad = int(x.size - np.count_nonzero(finite))
        self.nonfinite += bad
        if bad:
            x = x[finite]
        if x.size:
            self.peak = max(self.peak, float(np.abs(x).max()))
            self.total += float(x.sum(dtype=np.float64))
            self.count += x.size

    def figures(self) -> dict:
        return {"nonfinite_samples": self.nonfinite,
                "peak_dbfs": round(20 * math.log10(self.peak), 2) if self.peak > 0 else None,
                "dc": round(self.total / self.count, 5) if self.count else 0.0}


def screen(gen: Generator, config, block: int = BLOCK) -> dict:
    """Prepare ``gen`` for an engine with ``config`` and screen it; the notes' cost is timed on a
    second pass at ``block`` samples a call. Returns the report (also stored in
    ``gen.info.card["load_screen"]``); raises ``ScreenRefused`` for NaN/Inf output."""
    from .engine import Engine
    audio = gen.info.conditioning == "audio"
    tap = _Tap(gen)
    eng = Engine(replace(config, input_channels=max(1, config.input_channels)), tap).prepare()
    if eng.warmup_faults:
        raise ScreenRefused(f"the model faulted on a test note ({eng.warmup_fault}); it is refused")
    sr = eng.config.sample_rate
    n = sr
    block = max(1, min(int(block), eng.config.max_block))
    out = np.zeros((max(BLOCK, block), eng.config.channels), np.float32)
    zeros = np.zeros((max(BLOCK, block), eng.config.input_channels), np.float32)
    costs = np.zeros(n // min(block, BLOCK) + 1)
    t = np.arange(n) / sr
    tone = np.repeat((0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)[:, None], eng.config.input_channels, 1)
    report = {"sample_rate": sr}
    for phase in PHASES + ("timing",):
        tap.clear()
        eng.hard_reset()
        if phase != "silence":
            for at, key in ((0, 48), (0, 55), (0, 64), (int(0.3 * sr), 72)):
                eng.push_event(at, 0x90, key, 100)
            for key in (48, 55, 64, 72):
                eng.push_event(int(0.7 * sr), 0x80, key, 0)
        # NB: the notes again at the live block, timed: after the first pass, so that a kernel
        # compiled on first use (Numba's cache cold after an install or an update) is compiled
        # outside the timed blocks
        step = block if phase == "timing" else BLOCK
        for k, i in enumerate(range(0, n, step)):
            m = min(step, n - i)
            c = time.thread_time()
            eng.render(out[:m], tone[i:i + m] if phase != "silence" and audio else zeros[:m])
            costs[k] = time.thread_time() - c
        if eng.stats.generator_faults:
            raise ScreenRefused(f"the model faulted in {phase} ({eng.stats.last_fault}); it is refused")
        if phase == "timing":
            report["block"] = block
            report["block_cost_s"] = round(float(costs[:k + 1].max()), 6)
        else:
            report[phase] = tap.figures()
    eng.hard_reset()
    flags = []
    for phase in PHASES:
        f = report[phase]
        if f["peak_dbfs"] is not None and f["peak_dbfs"] > PEAK_DBFS:
            flags.append(f"peaks at {f['peak_dbfs']:+.1f} dBFS in {phase} (before the limiter)")
        if abs(f["dc"]) > DC_LIMIT:
            flags.append(f"a DC of {f['dc']:+.3f} in {phase}")
    report["flags"] = flags
    gen.info = replace(gen.info, card={**(gen.info.card or {}), "load_screen": report})
    bad = {p: report[p]["nonfinite_samples"] for p in PHASES if report[p]["nonfinite_samples"]}
    if bad:
        raise ScreenRefused(f"the model renders NaN or Inf ({', '.join(f'{k} samples in {p}' for p, k in bad.items())} "
                            "of 1 s of silence and 1 s of notes); it is refused")
    return report


def describe_flags(gen: Generator) -> str | None:
    flags = (gen.info.card or {}).get("load_screen", {}).get("flags")
    return f"{gen.info.name} is flagged at load: {'; '.join(flags)}" if flags else None


def card_lines(card: dict | None) -> list[str]:
    """The model card page's section on the screen (``card["load_screen"]``), or none."""
    r = (card or {}).get("load_screen")
    if not r:
        return []
    lines = ["## Load-time screen", "",
             f"What the model itself outputs, before the engine's guard, DC blocker and limiter, at "
             f"{r.get('sample_rate', '?')} Hz (`livewave screen MODEL`; the engine screens every model again "
             f"when it loads):", "",
             "| 1 s of | NaN or Inf samples | peak (dBFS) | DC |", "| --- | ---: | ---: | ---: |"]
    for phase in PHASES:
        f = r[phase]
        peak = "silent" if f["peak_dbfs"] is None else f"{f['peak_dbfs']:+.2f}"
        lines.append(f"| {phase} | {f['nonfinite_samples']} | {peak} | {f['dc']:+.5f} |")
    lines += ["", ("Flagged: " + "; ".join(r["flags"]) + ".") if r.get("flags") else
              f"Not flagged: peaks at or under {PEAK_DBFS:+.0f} dBFS, DC within {DC_LIMIT}.", ""]
    return lines
