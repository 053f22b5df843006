"""Post chain and output guard: the ceiling holds whatever the generator does."""
import numpy as np
import pytest

from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.generator import Generator, GeneratorInfo, GeneratorWrapper
from livewave.post_chain import PostChain

SR = 48000
CEIL = 10 ** (-1 / 20)


def true_peak(x: np.ndarray, factor: int = 8) -> float:
    """Peak of the band-limited signal (8x polyphase upsampling; edges dropped)."""
    from scipy.signal import resample_poly
    up = resample_poly(np.asarray(x, np.float64), factor, 1)
    return float(np.abs(up[1000 * factor:-1000 * factor]).max())


def test_limiter_holds_the_ceiling_on_loud_and_hostile_signals():
    rng = np.random.default_rng(1)
    t = np.arange(SR) / SR
    signals = [
        4.0 * np.sin(2 * np.pi * 997 * t),                      # +12 dB sine
        20.0 * rng.standard_normal(SR),                          # loud noise
        np.where(np.arange(SR) % 4800 < 2, 50.0, 0.0),           # impulses
        3.0 * np.sin(2 * np.pi * 11999 * t + 0.7),               # inter-sample peaks near fs/4
    ]
    for x in signals:
        pc = PostChain(SR)
        buf = x.astype(np.float32)
        for i in range(0, SR, 100):
            pc.process(buf[i:i + 100], min(100, SR - i))
        assert np.abs(buf).max() <= np.float32(CEIL)
        # true peak of the limited sine stays within 0.5 dB of the ceiling
    pc = PostChain(SR)
    buf = signals[3].astype(np.float32)
    pc.process(buf, SR)
    assert true_peak(buf[SR // 2:].astype(np.float64)) < CEIL * 10 ** (0.5 / 20)


def test_limiter_is_transparent_below_the_ceiling():
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    pc = PostChain(SR)
    y = x.copy()
    pc.process(y, SR)
    lat = pc.latency
    lags = [np.abs(y[SR // 2 + k:SR - 1000 + k] - x[SR // 2:SR - 1000]).max() for k in range(64)]
    assert int(np.argmin(lags)) == lat         # the declared look-ahead is the actual delay
    # the DC blocker is a 10 Hz high-pass: at 440 Hz it changes the level by < 0.01 dB
    seg = slice(SR // 2, SR - 1000)
    assert abs(np.sqrt(np.mean(y[seg] ** 2)) / np.sqrt(np.mean(x[seg] ** 2)) - 1) < 1e-3


def test_dc_blocker_removes_a_constant_within_100_ms():
    pc = PostChain(SR)
    buf = np.full(SR // 2, 0.8, np.float32)
    pc.process(buf, len(buf))
    assert np.abs(buf[int(0.1 * SR):]).max() < 0.01 * 0.8


class Broken(Generator):
    """Emits NaN, Inf or a huge value every ``period`` calls; otherwise a quiet tone."""

    def __init__(self, bad):
        self.bad = bad
        self.calls = 0
        self.resets = 0
        self.info = GeneratorInfo(family="test", name="broken", sample_rate=None, hop=64)

    def prepare(self, sample_rate, max_block, voices, device="cpu"):
        pass

    def reset(self):
        self.resets += 1

    def render(self, cond, out):
        self.calls += 1
        n = cond.frames
        out[:n] = 0.1
        if self.calls % 5 == 0:
            if self.bad == "raise":
                raise RuntimeError("model exploded")
            out[n // 2] = self.bad


def test_broken_generator_is_muted_and_reset_never_loud():
    for bad in (np.nan, np.inf, -np.inf, 1e6, "raise"):
        g = Broken(bad)
        e = Engine(EngineConfig(sample_rate=SR, max_block=256), g).prepare()
        g.calls = 0
        g.resets = 0
        out = np.zeros((256 * 50, 2), np.float32)
        for i in range(0, out.shape[0], 256):
            e.render(out[i:i + 256])
        assert np.isfinite(out).all()
        assert np.abs(out).max() <= np.float32(CEIL)
        assert e.stats.generator_faults == 10 and g.resets == 10, bad
        assert e.stats.last_fault


class Square(Generator):
    """A square wave at +-``level`` (no DC), whatever the voices play."""

    def __init__(self, level):
        self.level = level
        self.info = GeneratorInfo(family="test", name="square", sample_rate=None, hop=64)

    def prepare(self, sample_rate, max_block, voices, device="cpu"):
        pass

    def reset(self):
        pass

    def render(self, cond, out):
        out[:cond.frames] = self.level
        out[1:cond.frames:2] = -self.level


@pytest.mark.parametrize("voices", [1, 4, 16])
def test_the_output_guard_s_threshold_is_2_per_voice_root(voices):
    """#6 item 12 at its threshold: a generator's raw output over 2 (one voice; 2 sqrt(n) with n
    voices sounding, since a chord of n voices sums beyond 2) mutes the block and resets it;
    just under it plays, untouched by the guard (the limiter takes it to the ceiling)."""
    limit = 2.0 * np.sqrt(voices)
    for level, faults in ((0.98 * limit, 0), (1.02 * limit, 1)):
        e = Engine(EngineConfig(sample_rate=SR, max_block=128), Square(level)).prepare()
        for k in range(voices):
            e.push_event(0, 0x90, 40 + k, 100)
        out = np.zeros((128, e.config.channels), np.float32)
        e.render(out)
        assert e.voices.active_count == voices
        assert (e.stats.generator_faults > 0) == bool(faults), (voices, level, e.stats.generator_faults)
        e.render(out)
        if faults:
            assert np.abs(out).max() < 1e-3               # muted again: the generator is still broken
        else:
            assert np.abs(out).max() > 0.5


class BreaksAt(GeneratorWrapper):
    """Plays ``inner`` until sample ``at``; from there every render raises."""

    def __init__(self, inner, at):
        super().__init__(inner)
        self.at = at

    def render(self, cond, out):
        if cond.sample_time >= self.at:
            raise RuntimeError("model exploded")
        self.inner.render(cond, out)


@pytest.mark.parametrize("offset", [0, 70], ids=["at a block's start", "mid-block"])
def test_a_model_that_breaks_fades_to_silence_within_its_block(offset):
    """#6 item 7, "silence within one block": the block a model breaks in is muted from that
    sample, and the 1 ms before the break (the look-ahead ring's unplayed samples included)
    goes down a ramp, so the cut is no click. Measured on a loud chord: the largest sample step
    at the break 0.043 with the ramp, 0.257 without (2.7x the chord's own largest, 0.096)."""
    from livewave.default_instrument import DefaultInstrument
    at = 60 * 128 + offset
    e = Engine(EngineConfig(sample_rate=SR, max_block=128), BreaksAt(DefaultInstrument(), at)).prepare()
    for k in (48, 55, 60, 64):
        e.push_event(0, 0x90, k, 120)
    if offset:
        e.push_event(at, 0xB0, 1, 0)          # a controller there: the block renders in two segments
    out = np.zeros((128, e.config.channels), np.float32)
    ys = []
    for _ in range(70):
        e.render(out)
        ys.append(out[:, 0].copy())
    y = np.concatenate(ys)
    step = np.abs(np.diff(y))
    natural = step[at - 4800:at - 64].max()
    assert np.abs(y[at - 4800:at - 64]).max() > 0.1 and e.stats.generator_faults >= 1
    assert step[at - 64:at + 128].max() <= natural, (step[at - 64:at + 128].max(), natural)
    quiet = y[at + e.post.latency + e._hush_len:]             # the DC blocker's sub-audio tail only
    assert np.abs(quiet).max() < 0.01, np.abs(quiet).max()


def test_loud_chord_never_exceeds_the_ceiling():
    e = Engine(EngineConfig(sample_rate=SR, max_block=512, master_gain_db=12.0)).prepare()
    for k in range(16):
        e.push_event(0, 0x90, 36 + 3 * k, 127)
    out = np.zeros((SR, 2), np.float32)
    for i in range(0, SR, 512):
        e.render(out[i:i + 512])
    assert np.abs(out).max() <= np.float32(CEIL)
    assert np.abs(out).max() > 0.8          # it is loud: the limiter is working, not muting
