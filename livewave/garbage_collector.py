"""Keeping Python's cyclic garbage collector off the audio thread.

CPython runs a collection in whichever thread happens to allocate the container object that
crosses the generation-0 threshold. A torch generator allocates a few Python objects per
block (tensor wrappers, freed by reference counting), so left alone the collector sometimes
runs inside the audio callback or the render thread: measured on the violin, one
generation-0 collection per ~20,000 64-sample blocks, each a pause the block did not budget for.

``OffAudioThread`` takes collection away from chance: at start it collects once and freezes
what start-up built (``gc.freeze``: those objects are never scanned again), then turns
automatic collection off. The control side (the engine process's command loop, ``livewave
play``'s status loop) calls ``tick()`` a few times a second; it collects generation 0 when
its count passes the threshold, and everything younger than the freeze every ``full_every``
seconds (5 minutes: the longest pause, a few ms after model loads), so cycles made after
start-up (a model swap, a reload) are still freed; and at once when the engine process
releases a swapped-out model (``collect_now``), so its cycles go with it. While it
collects the control thread holds the GIL: a render thread waits that long, which the output
ring absorbs (rtmixer's C callback never needs the GIL); a Python callback placement waits
too, but for one short, scheduled collection instead of one at a random point mid-block.

Threading: ``start``/``tick``/``stop`` from one control thread.
"""
from __future__ import annotations

import gc
import time


class OffAudioThread:
    def __init__(self, threshold: int = 700, full_every: float = 300.0):
        self.threshold, self.full_every = int(threshold), float(full_every)
        self.collections = 0          # collections run by tick()
        self.longest = 0.0            # seconds, the longest of them
        self.active = False
        self._next_full = 0.0
        self._was_enabled = True

    def start(self) -> OffAudioThread:
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        self.active = True
        self._next_full = time.monotonic() + self.full_every
        return self

    def tick(self) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if now >= self._next_full:
            self._next_full = now + self.full_every
            self._collect(2)
        elif gc.get_count()[0] >= self.threshold:
            self._collect(0)

    def collect_now(self) -> None:
        """A full collection now (the control thread), and the next one ``full_every`` later:
        after a swapped-out model is released, whose objects may hold each other in cycles
        that reference counting cannot free (measured, benchmarks/RESULTS.md 2026-12-03: about
        1 MB a swap, held until the five-minute collection)."""
        if self.active:
            self._next_full = time.monotonic() + self.full_every
            self._collect(2)

    def _collect(self, generation: int) -> None:
        t0 = time.perf_counter()
        gc.collect(generation)
        self.longest = max(self.longest, time.perf_counter() - t0)
        self.collections += 1

    def stop(self) -> None:
        if self.active:
            self.active = False
            if self._was_enabled:
                gc.enable()
