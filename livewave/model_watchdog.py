"""Noticing, from the control side, a model that fails while it plays.

Two ways a model fails on the render side:

- it **hangs**: one block never ends (``EngineStats.render_started`` stays set). Nothing can stop
  a thread stuck in a model, so the process that runs it must end: the engine process exits
  with ``EXIT_RENDER_HUNG`` and its parent restarts it without the model
  (``engine_process.EngineProcess.restart``). ``livewave play`` leaves the stuck render thread
  behind and plays on with the built-in instrument in a fresh engine
  (``AudioOutput.adopt_engine``); under ``--placement callback``, where the stuck thread is the
  audio device's own, it says so and exits.
- it **keeps faulting**: it raises or emits NaN/Inf block after block. The engine mutes each
  such block and resets the model (``Engine._segment``); after ``unload_after`` seconds of that
  the model is swapped for the built-in instrument, prepared ahead (``fallback``). A single
  bad block is not a run: faults ``gap`` seconds apart start a new one.

``check()`` is called by the control loop every few milliseconds and returns what to do.
Threading: the control thread only; it reads the render side's counters (plain numbers).
"""
from __future__ import annotations

import time

HANG_AFTER = 0.5           # seconds one block may take before the render side counts as hung
UNLOAD_AFTER = 0.25        # seconds of faulting blocks (each muted) before the model is unloaded
GAP = 0.1                  # a pause this long between faults ends a run of them


class ModelWatchdog:
    def __init__(self, engine, fallback, hang_after: float = HANG_AFTER, unload_after: float = UNLOAD_AFTER,
                 gap: float = GAP):
        self.engine, self.fallback = engine, fallback
        self.hang_after, self.unload_after, self.gap = hang_after, unload_after, gap
        self._seen = engine.stats.generator_faults
        self._run: tuple[float, float] | None = None     # (first, last) time of the current run of faults

    def check(self) -> tuple[str, object] | None:
        """("hung", seconds the block has taken), ("failing", the last fault), or None."""
        eng = self.engine
        started = eng.stats.render_started
        if started and time.perf_counter() - started > self.hang_after:
            return "hung", time.perf_counter() - started
        faults = eng.stats.generator_faults
        now = time.monotonic()
        if faults != self._seen:
            self._seen = faults
            first = self._run[0] if self._run and now - self._run[1] < self.gap else now
            self._run = (first, now)
            if now - first >= self.unload_after and eng.generator is not self.fallback:
                return "failing", eng.stats.last_fault or "non-finite output"
        elif self._run and now - self._run[1] >= self.gap:
            self._run = None
        return None

    def unload(self) -> bool:
        """Swap the built-in instrument in for the failing model (False: a swap is pending; ask again)."""
        try:
            self.engine.swap_generator(self.fallback)
        except RuntimeError:
            return False
        self._run = None
        return True


def prepared_fallback(engine):
    """The built-in instrument, prepared for ``engine``'s settings (off the render side)."""
    from .default_instrument import DefaultInstrument
    gen = DefaultInstrument()
    c = engine.config
    gen.prepare(c.sample_rate, c.max_block, c.polyphony, c.device)
    return gen
