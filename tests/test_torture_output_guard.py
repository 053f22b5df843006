"""Torture: the output guard on float32 and int16 devices (JACK dummy driver, recorded).

A broken model that outputs a constant 1.0: the DC blocker takes it under 1% within 100 ms.
One that emits NaN, Inf or values far over full scale between quiet blocks: those blocks are
silenced and the model reset, the rest plays; nothing non-finite and nothing over the ceiling
reaches the device. In the Python placements (rtmixer's C callback plays float32 only, and
PortAudio converts). On an int16 device the samples arrive as 16-bit values (PortAudio hands
JACK k / 32768), clipped, never wrapped.
"""

import numpy as np
import pytest
from jack_rig import require_jackd, served

from livewave.generator import Generator, GeneratorInfo

pytestmark = [pytest.mark.jack, pytest.mark.torture]
RATE, PERIOD = 48000, 128
CEILING = 10 ** (-1 / 20)

require_jackd()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from served(tmp_path_factory, RATE, PERIOD)


class Broken(Generator):
    """``dc``: a constant 1.0. ``bursts``: a quiet 440 Hz tone, with NaN, +Inf and 5.0 blocks among them."""

    def __init__(self, kind: str):
        self.kind, self.calls, self.t = kind, 0, 0
        self.info = GeneratorInfo(family="test", name=f"broken ({kind})", sample_rate=None, hop=64)

    def prepare(self, sample_rate, max_block, voices, device="cpu"):
        self.sr = sample_rate

    def reset(self):
        pass

    def render(self, cond, out):
        n = cond.frames
        self.calls += 1
        if self.kind == "dc":
            out[:n] = 1.0
            return
        out[:n] = 0.1 * np.sin(2 * np.pi * 440.0 * (self.t + np.arange(n)) / self.sr)
        self.t += n
        bad = (np.nan, np.inf, 5.0)[self.calls % 3]
        if self.calls % 10 == 0:
            out[n // 2] = bad


@pytest.mark.parametrize("fmt", ["float32", "int16"])
@pytest.mark.parametrize("placement", ["callback", "thread"])
def test_the_guard_and_the_dc_blocker_hold_on_float_and_int16_devices(server, fmt, placement):
    from jack_rig import Rig

    from livewave import audio_io
    from livewave.audio_io import AudioOutput
    from livewave.engine import Engine
    takes = {}
    for kind in ("dc", "bursts"):
        rig = Rig(seconds=0.8, name="lwguard")
        out = AudioOutput(Engine(generator=Broken(kind)), device="system", block=PERIOD, policy=placement,
                          ahead=2, sample_format=fmt)
        try:
            out.open()
            rig.start()
            out.start()
            rig.connect_output(sorted(rig.ports("livewave", is_audio=True, is_output=True))[0])
            assert rig.wait_done(20)
            faults = out.engine.stats.generator_faults
        finally:
            out.stop()
            rig.close()
            audio_io.sounddevice()._terminate()     # NB: while the server is up (see test_live_jack)
            audio_io._sd = None
        takes[kind] = (rig.recording[:, 0].copy(), faults)
    for kind, (x, _) in takes.items():
        assert np.isfinite(x).all() and np.abs(x).max() <= CEILING + 1e-6, kind
        if fmt == "int16":
            k = x * 32768.0
            assert np.abs(k - np.round(k)).max() < 1e-3, f"{kind}: not 16-bit values"
    dc, _ = takes["dc"]
    start = int(np.argmax(np.abs(dc) > 1e-4))              # the stream reached the recording here
    late = dc[start + RATE // 10:]
    print(f"{fmt}, {placement}: DC 1.0 after 100 ms: {np.abs(late).max():.5f}; "
          f"bursts: {takes['bursts'][1]} blocks muted, peak {np.abs(takes['bursts'][0]).max():.3f}")
    from jack_rig import on_time_or_slow_machine
    # the stream reaches the recording once PortAudio's client is connected, late on a slow machine
    on_time_or_slow_machine(late.size > RATE // 4, f"the stream reached the 0.8 s take only at "
                                                   f"{start / RATE * 1e3:.0f} ms")
    assert np.abs(late).max() < 0.01
    x, faults = takes["bursts"]
    assert faults > 0 and np.abs(x).max() > 0.05           # the tone plays between the muted blocks


def test_int16_is_refused_where_it_cannot_work():
    from livewave.audio_io import AudioOutput
    from livewave.config import ConfigError
    from livewave.engine import Engine
    with pytest.raises(ConfigError, match="float32 only"):
        AudioOutput(Engine(), policy="rtmixer", sample_format="int16")
    with pytest.raises(ConfigError, match="output only"):
        AudioOutput(Engine(), input_channels=1, sample_format="int16")
    with pytest.raises(ConfigError, match="sample format"):
        AudioOutput(Engine(), sample_format="int24")
