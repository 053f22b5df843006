"""Noticing, from the control side, an audio device that stops taking audio.

A USB interface pulled out, a JACK server that ends, a client JACK threw out for being late:
the stream stays open, no error reaches Python, its callback is simply never called again. And
PortAudio cannot close such a stream (``Pa_StopStream`` waits for a callback that never comes:
measured on JACK, it hung for good), so the process that opened it must end without closing it.

``DeviceWatch.check()`` is called by the control loop every few tens of milliseconds. It reads
how many blocks the device has taken (``AudioOutput.device_blocks``: the Python callback's count,
or rtmixer's C callback's own) and says the device is lost when that count has not moved for
``lost_after`` seconds while this loop itself ran on time. A loop that was starved (a gap over
``late_loop`` between two looks: the GIL held elsewhere, the machine stalled) starts its count
again, since it cannot tell a device that stopped from one it did not see. A block in progress
in the device's own callback (a model that hangs there: ``model_watchdog`` answers that) is not
a lost device.

What is done about it: the engine process reports it and ends with ``EXIT_DEVICE_LOST``; its
parent (the app, ``livewave play --isolate``) starts it again with the same model once the
device is back. Plain ``livewave play`` says so and ends with exit status 4.

Threading: the control thread only; it reads the render side's counters (plain numbers).
"""
from __future__ import annotations

import time

LOST_AFTER = 1.0       # seconds without a block taken, the watch awake all along: the device is gone
LATE_LOOP = 0.25       # seconds between two looks beyond which the watch was starved and starts again


class DeviceWatch:
    def __init__(self, out, lost_after: float = LOST_AFTER, late_loop: float = LATE_LOOP):
        self.out = out
        self.lost_after, self.late_loop = lost_after, late_loop
        self._blocks = -1
        self._quiet_since = self._last = time.monotonic()

    def check(self, now: float | None = None) -> float | None:
        """Seconds the device has taken nothing (once that is ``lost_after`` or more), else None."""
        now = time.monotonic() if now is None else now
        out = self.out
        n = out.device_blocks()
        in_callback = out.policy == "callback" and out.engine.stats.render_started != 0.0
        if n != self._blocks or not out.running or in_callback or n == 0:
            self._blocks = n                  # NB: n == 0: not started yet (a device opens slowly)
            self._quiet_since = self._last = now
            return None
        if now - self._last > self.late_loop:
            self._quiet_since = now           # this loop was starved: it cannot tell
        self._last = now
        quiet = now - self._quiet_since
        return quiet if quiet >= self.lost_after else None
