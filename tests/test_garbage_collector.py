"""The command loop's garbage collection (livewave/garbage_collector.py)."""
import gc
import weakref

from livewave.garbage_collector import OffAudioThread


class _Node:
    pass


def _cycle():
    """Two objects that refer to each other, one holding 8 MB: reference counting cannot free them."""
    a, b = _Node(), _Node()
    a.other, b.other, a.payload = b, a, bytearray(8 << 20)
    return weakref.ref(a)


def test_collect_now_frees_a_released_models_cycles_that_tick_would_keep_for_minutes():
    was = gc.isenabled()
    collector = OffAudioThread(threshold=10 ** 9, full_every=300.0).start()
    try:
        ref = _cycle()
        for _ in range(5):
            collector.tick()                  # gen 0 under its threshold, the full one minutes away
        assert ref() is not None, "freed without a collection: the test proves nothing"
        n = collector.collections
        collector.collect_now()
        assert ref() is None and collector.collections == n + 1 and collector.longest > 0.0
        assert not gc.isenabled()            # still the command loop's to run
    finally:
        collector.stop()
    assert gc.isenabled() == was


def test_collect_now_does_nothing_before_start():
    collector = OffAudioThread()
    collector.collect_now()
    assert collector.collections == 0
