"""How soon an instrument sounds after a note-on: the algorithm's own delay, offline.

``onset_times(generator)`` renders one note (key 60, velocity 100) at seven phases spread over
one 11.6 ms frame (the MIDI-to-mel frame grid at 22.05 kHz, hop 256), each through a fresh
engine at 48 kHz with 64-sample blocks. For each it takes the first sample whose magnitude is
over 5% and over 50% of the note's peak, counted from the note-on, and returns the medians, the
range of the 5% times, and the engine's whole declared latency. Counted in samples, so the
figures are the same on any machine. Used by ``livewave eval`` (the MIDI-to-mel cards),
``benchmarks/note_latency.py`` and the tests.
"""
from __future__ import annotations

import numpy as np

RATE = 48000
PHASES = 7
KEY, VELOCITY = 60, 100


def rise(y: np.ndarray, at: int) -> tuple[int, int] | None:
    """Samples from ``at`` to the first sample over 5% and over 50% of ``y``'s peak magnitude
    (None: silence)."""
    a = np.abs(y)
    peak = float(a.max()) if a.size else 0.0
    if not peak > 0.0:
        return None
    return int(np.flatnonzero(a > 0.05 * peak)[0]) - at, int(np.flatnonzero(a > 0.5 * peak)[0]) - at


def onset_times(generator) -> dict:
    """-> {"declared_ms", "first_ms", "half_ms", "first_range_ms", "key", "velocity", "phases", "rate"}.
    A model that stays silent raises ValueError."""
    from .config import EngineConfig
    from .engine import Engine
    from .offline_render import render_events
    first, half, declared = [], [], 0
    for t0 in np.linspace(0.2, 0.2 + 256 / 22050, PHASES):
        eng = Engine(EngineConfig(sample_rate=RATE, max_block=64, polyphony=8), generator).prepare()
        declared = eng.latency_samples
        y = render_events(eng, [(float(t0), 0x90, KEY, VELOCITY), (float(t0) + 0.5, 0x80, KEY, 0)], 1.0, block=64,
                          tail_s=0.3)[:, 0]
        r = rise(y, round(t0 * RATE))
        if r is None:
            raise ValueError(f"{generator.info.name}: silent after a note-on (key {KEY}, velocity {VELOCITY})")
        first.append(r[0])
        half.append(r[1])
    ms = lambda s: round(float(s) * 1000.0 / RATE, 1)     # noqa: E731
    return {"declared_ms": ms(declared), "first_ms": ms(np.median(first)), "half_ms": ms(np.median(half)),
            "first_range_ms": [ms(min(first)), ms(max(first))], "key": KEY, "velocity": VELOCITY,
            "phases": PHASES, "rate": RATE}
