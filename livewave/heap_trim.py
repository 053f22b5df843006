"""Giving a swapped-out model's memory back to the system (glibc's ``malloc_trim``).

When a model is swapped out and its last reference goes, its tensors and Python objects are
freed, but glibc keeps the freed pages in its arenas for reuse: the process's resident memory
does not come down. The next model reuses most of them, not all (a model is loaded on the
loader thread, whose allocations land in an arena of their own), so over many swaps the engine
process's memory wanders in a band above what it needs. The swap-memory benchmark measured it
(benchmarks/RESULTS.md, 2026-12-02): +3.0% over 31 loads, bounded but over #6's 1% target.

``trim()`` calls ``malloc_trim(0)``, which returns every arena's free pages to the system.
Measured on this VM (2026-12-03), one process without an engine loading and screening
piano-midi2mel six times, dropping each: after the drop (and a full garbage collection) 566-569
MB resident, after a trim 538.1 MB every time. With a flute loaded beside it, five rounds:
483.4-483.5 MB after every trim. A trim took 1.8-2.8 ms. It runs on the engine process's loader
thread, after a retired generator is released (``engine_host``): ctypes lets the GIL go during
the call, and the render side, which allocates (torch) but whose blocks are buffered ahead in
the output ring, can at most wait that long for an arena's lock.

Where there is no glibc (macOS, Windows, musl) ``trim()`` does nothing and says so (False).
Threading: any thread.
"""
from __future__ import annotations

import ctypes
import functools


@functools.cache
def _function():
    """glibc's ``malloc_trim``, or None."""
    try:
        # NB: the symbols already in the process (no find_library: it runs ldconfig in a subprocess)
        fn = ctypes.CDLL(None).malloc_trim        # AttributeError where the C library lacks it
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def available() -> bool:
    """Whether this C library can give freed memory back (glibc)."""
    return _function() is not None


def trim() -> bool:
    """Return the allocator's free pages to the system: True if it ran (glibc), else False."""
    fn = _function()
    if fn is None:
        return False
    fn(0)
    return True
