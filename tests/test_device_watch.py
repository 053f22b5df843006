"""The rule by which a lost audio device is told from a late control loop (``device_watch``);
the real thing, a JACK server killed under livewave, is ``tests/test_torture_device_loss.py``."""
from types import SimpleNamespace

from livewave.device_watch import LATE_LOOP, LOST_AFTER, DeviceWatch


class Device:
    """What the watch reads of an ``AudioOutput``: its block count, whether it runs, its placement."""

    def __init__(self, policy="rtmixer"):
        self.blocks, self.running, self.policy = 0, True, policy
        self.engine = SimpleNamespace(stats=SimpleNamespace(render_started=0.0))

    def device_blocks(self):
        return self.blocks


def looks(watch, dev, t0, t1, step, blocks_per_look=0):
    """The watch's verdicts, looking every ``step`` seconds from t0 to t1."""
    out, t = [], t0
    while t < t1:
        dev.blocks += blocks_per_look
        out.append(watch.check(now=t))
        t += step
    return out


def test_a_device_that_stops_is_lost_after_lost_after_seconds_of_a_punctual_loop():
    dev = Device()
    w = DeviceWatch(dev)
    assert looks(w, dev, 0.0, 2.0, 0.05, blocks_per_look=18) == [None] * 40      # playing
    verdicts = looks(w, dev, 2.0, 4.0, 0.05)                                      # stopped at 2 s
    first = next(i for i, v in enumerate(verdicts) if v is not None)
    assert abs(first * 0.05 - LOST_AFTER) <= 0.051 and verdicts[first] >= LOST_AFTER


def test_a_starved_loop_starts_its_count_again_and_a_running_device_is_never_lost():
    dev = Device()
    w = DeviceWatch(dev)
    looks(w, dev, 0.0, 1.0, 0.05, blocks_per_look=18)
    # the GIL held elsewhere: the loop looks at 1.0, then 3.0 s (the device's count unchanged,
    # since the callback could not run either), then on time again
    assert w.check(now=1.0) is None and w.check(now=3.0) is None
    assert all(v is None for v in looks(w, dev, 3.05, 3.0 + LOST_AFTER - 0.1, 0.05))
    assert w.check(now=3.0 + LOST_AFTER + 0.01) is not None
    dev.blocks += 1                               # it plays again: never lost
    assert all(v is None for v in looks(w, dev, 5.0, 9.0, LATE_LOOP * 0.9, blocks_per_look=1))


def test_not_started_stopped_or_a_block_in_the_device_s_own_callback_is_not_a_lost_device():
    dev = Device()
    w = DeviceWatch(dev)
    assert all(v is None for v in looks(w, dev, 0.0, 3.0, 0.05))                 # no block yet
    dev.blocks = 10
    dev.running = False                                                          # stopped on purpose
    assert all(v is None for v in looks(w, dev, 3.0, 6.0, 0.05))
    cb = Device(policy="callback")
    cb.blocks = 10
    cb.engine.stats.render_started = 1.0          # a model hangs in the callback: the model watchdog's
    w = DeviceWatch(cb)
    assert all(v is None for v in looks(w, cb, 0.0, 3.0, 0.05))
