"""Numba's on-disk cache, keyed by livewave's own source.

Numba caches each ``cache=True`` kernel beside its module, indexed by that module's file stamp.
A kernel that calls a kernel of another module carries the callee compiled in, so when only the
callee's file changes the caller's cache is stale, and numba loads it: on 2026-12-02 an edit to
``source_phase.harmonic_reference`` had no effect on ``midi_to_mel_instrument.fill_reference``
(the piano played from MIDI sounded exactly as before) until that module's cache files were
deleted. A git checkout, a branch switch or a hand edit leaves the unchanged callers' stamps
alone, so the engine could run code its source no longer says.

So ``use_source_keyed_cache`` (called as livewave is imported) points numba's cache at a folder
named for a hash of every module of the package: ``$XDG_CACHE_HOME/livewave/numba/<key>``
(``~/.cache`` by default). Any change to any module starts from an empty cache; the first
start after it compiles again (tens of seconds on a 2-core machine), every later one loads.
A ``NUMBA_CACHE_DIR`` the user set is left as it is. Folders of other keys untouched for
``KEEP_DAYS`` are removed. Where the folder cannot be made, numba keeps its default.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

KEEP_DAYS = 7.0


def source_key(package: Path) -> str:
    """A hash of every ``.py`` file under ``package`` (names and contents)."""
    h = hashlib.sha256()
    for p in sorted(package.rglob("*.py")):
        h.update(str(p.relative_to(package)).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "livewave" / "numba"


def use_source_keyed_cache(package: Path | None = None, root: Path | None = None) -> Path | None:
    """Point numba's cache at ``root / source_key(package)`` (module docstring); returns that
    folder, or None where the user chose one (``NUMBA_CACHE_DIR``) or it cannot be made."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    package = Path(package or Path(__file__).parent)
    root = Path(root or cache_root())
    try:
        folder = root / source_key(package)
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)                      # in use: kept by the pruning below
    except OSError:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    config = sys.modules.get("numba.core.config")
    if config is not None:                     # numba imported first: it read the variable already
        config.CACHE_DIR = str(folder)
    _prune(root, keep=folder)
    return folder


def _prune(root: Path, keep: Path) -> None:
    cutoff = time.time() - KEEP_DAYS * 86400.0
    try:
        old = [p for p in root.iterdir() if p.is_dir() and p != keep and p.stat().st_mtime < cutoff]
    except OSError:
        return
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
