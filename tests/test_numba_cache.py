"""Numba's cache keyed by the package's source (livewave/numba_cache.py): an edit to a kernel
reaches the kernels of other modules that call it."""
import os
import subprocess
import sys
from pathlib import Path

import livewave
from livewave.numba_cache import source_key, use_source_keyed_cache

NUMBA_CACHE = Path(livewave.__file__).parent / "numba_cache.py"

CALLEE = "from numba import njit\n\n\n@njit(cache=True)\ndef level():\n    return {value}\n"
CALLER = ("from numba import njit\n\nfrom .callee import level\n\n\n@njit(cache=True)\n"
          "def doubled():\n    return 2.0 * level()\n")
# loads numba_cache.py on its own (importing livewave would key the cache by livewave instead)
RUN = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("numba_cache", {module!r})
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
folder = m.use_source_keyed_cache(Path({pkg!r}), Path({root!r})) if {keyed} else None
sys.path.insert(0, {parent!r})
from kernels.caller import doubled
print(doubled(), folder)
"""


def _run(tmp_path: Path, keyed: bool) -> tuple[float, str]:
    code = RUN.format(module=str(NUMBA_CACHE), pkg=str(tmp_path / "kernels"), root=str(tmp_path / "cache"),
                      parent=str(tmp_path), keyed=keyed)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    value, folder = out.stdout.split()
    return float(value), folder


def _package(tmp_path: Path, value: str) -> None:
    pkg = tmp_path / "kernels"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "callee.py").write_text(CALLEE.format(value=value))
    (pkg / "caller.py").write_text(CALLER)


def test_an_edit_to_a_called_kernel_reaches_its_caller(tmp_path):
    _package(tmp_path, "1.0")
    first, folder1 = _run(tmp_path, keyed=True)
    again, folder_again = _run(tmp_path, keyed=True)          # loaded from the cache: the same
    _package(tmp_path, "21.0")                                # the callee's file alone changes
    second, folder2 = _run(tmp_path, keyed=True)
    assert (first, again, second) == (2.0, 2.0, 42.0)
    assert folder1 == folder_again != folder2
    assert any(Path(folder1).rglob("*.nbi"))                  # numba did cache there


def test_the_key_follows_names_and_contents_and_a_user_cache_dir_wins(tmp_path, monkeypatch):
    _package(tmp_path, "1.0")
    pkg = tmp_path / "kernels"
    k1 = source_key(pkg)
    assert source_key(pkg) == k1
    (pkg / "callee.py").write_text(CALLEE.format(value="2.0"))
    k2 = source_key(pkg)
    (pkg / "callee.py").rename(pkg / "other.py")
    assert len({k1, k2, source_key(pkg)}) == 3
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert use_source_keyed_cache(pkg, tmp_path / "cache") is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_livewave_keys_its_own_cache():
    """Importing livewave (here, in this process) pointed numba at a folder named for its source,
    unless the environment already named one."""
    out = subprocess.run([sys.executable, "-c", "import os, livewave; print(os.environ['NUMBA_CACHE_DIR'])"],
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"})
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).name == source_key(Path(livewave.__file__).parent)
