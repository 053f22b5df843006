"""Broken generators on purpose, for the torture suite: the engine must survive each.

``FaultyGenerator(inner, kind)`` plays ``inner`` and breaks it the way models break:

- ``raise``: every render raises (a model that throws);
- ``nan``: every render writes NaN (a model that diverged);
- ``hang``: a render never returns, sleeping (a model waiting on something that never comes;
  the GIL is free, so the rest of the process runs);
- ``spin``: a render never returns, computing in Python (the GIL is passed around as usual);
- ``gil``: a render holds the GIL in one C call for ``GIL_SECONDS`` (a C extension that never
  lets go: nothing else in the process runs meanwhile);
- ``stall``: one render sleeps ``STALL_SECONDS`` (50 ms), then the model plays on as before (a
  page fault storm, a slow first CUDA call, the OS taking the core away: the render side late
  once, by more than the buffer holds at small blocks).

The engine process accepts the ``fault`` command (which wraps its current generator) only when
the environment says ``LIVEWAVE_FAULTS=1``: tests set it, a performer never does.
"""
from __future__ import annotations

import os
import time

import numpy as np

from .generator import Generator, GeneratorWrapper

KINDS = ("raise", "nan", "hang", "spin", "gil", "stall")
GIL_SECONDS = 3.0          # about; one C call, calibrated at first use
STALL_SECONDS = 0.05


def enabled() -> bool:
    return os.environ.get("LIVEWAVE_FAULTS") == "1"


class InjectedFault(RuntimeError):
    pass


def inject(engine, kind: str) -> FaultyGenerator:
    """Break ``engine``'s generator the ``kind`` way, from the control side (tests only)."""
    if not enabled():
        raise ValueError("fault injection is off (it is for tests: LIVEWAVE_FAULTS=1)")
    faulty = FaultyGenerator(engine.generator, kind)
    engine.generator = faulty                  # NB: one store; the next block plays it
    engine.playing = (faulty, engine.playing[1])
    return faulty


def armed() -> str | None:
    """``livewave play``'s fault (tests only): ``LIVEWAVE_FAULT=KIND`` with ``LIVEWAVE_FAULTS=1``
    arms KIND, injected when the process receives SIGUSR1."""
    kind = os.environ.get("LIVEWAVE_FAULT", "")
    if not kind or not enabled():
        return None
    if kind not in KINDS:
        raise ValueError(f"LIVEWAVE_FAULT={kind!r}: one of {', '.join(KINDS)}")
    return kind


def _hold_gil(seconds: float) -> None:
    # NB: sum over a range is one C call that never releases the GIL
    n = 2_000_000
    t0 = time.perf_counter()
    sum(range(n))
    per = max(time.perf_counter() - t0, 1e-4) / n
    sum(range(int(seconds / per)))


class FaultyGenerator(GeneratorWrapper):
    def __init__(self, inner: Generator, kind: str):
        if kind not in KINDS:
            raise ValueError(f"fault kind {kind!r}: one of {', '.join(KINDS)}")
        super().__init__(inner)
        self.kind = kind
        self.stalled = False

    def render(self, cond, out: np.ndarray) -> None:
        k = self.kind
        if k == "raise":
            raise InjectedFault("injected fault: the model raised")
        if k == "nan":
            self.inner.render(cond, out)
            out[:] = np.nan
        elif k == "hang":
            while True:
                time.sleep(0.05)
        elif k == "stall":
            if not self.stalled:
                self.stalled = True
                time.sleep(STALL_SECONDS)
            self.inner.render(cond, out)
        elif k == "spin":
            x = 0
            while True:
                x += 1
        else:
            _hold_gil(GIL_SECONDS)
            self.inner.render(cond, out)
