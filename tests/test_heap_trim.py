"""Freed memory given back to the system after a model swap (livewave/heap_trim.py)."""
import platform
import subprocess
import sys

import pytest

from livewave import heap_trim

PROBE = """
from livewave import heap_trim
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2 ** 20
blocks = [bytearray(4000) for _ in range(50_000)]     # 200 MB from malloc (past pymalloc's 512 B)
keep = blocks[::64] + [bytearray(4000)]               # a few survive, one at the top: free() alone keeps it all
del blocks
before = rss()
ran = heap_trim.trim()
print(ran, before, rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_a_trim_gives_freed_fragmented_memory_back():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    ran, before, after = out.stdout.split()
    assert ran == "True" and heap_trim.available()
    # 197 MB freed but held (every 64th block survives); a trim returned 185 MB of it here
    assert float(before) - float(after) > 100.0, out.stdout


def test_trim_says_whether_it_ran():
    assert heap_trim.trim() is heap_trim.available()
