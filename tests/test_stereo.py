"""The stereo engine: the generator's mono mix in the middle, the reverb's two tails around it,
a linked limiter; and a mono device still gets exactly the mono chain."""
import numpy as np
from audio_checks import play_events

from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.post_chain import PostChain

RATE = 48000
CHORD = [(0.05, 0x90, 60, 100), (0.05, 0x90, 64, 90), (0.05, 0x90, 67, 95), (0.6, 0x80, 60, 0),
         (0.6, 0x80, 64, 0), (0.6, 0x80, 67, 0)]


def engine(channels: int, **kw) -> Engine:
    return Engine(EngineConfig(sample_rate=RATE, max_block=256, channels=channels, **kw)).prepare()


def render(eng: Engine, seconds: float, block: int = 128) -> np.ndarray:
    for t, *msg in CHORD:
        eng.push_event(int(round(t * RATE)), *msg)
    out = np.zeros((int(seconds * RATE), eng.config.channels), np.float32)
    for j in range(0, out.shape[0], block):
        eng.render(out[j:j + block])
    return out


def test_dry_the_two_channels_are_the_mono_chain_exactly_even_when_the_limiter_works():
    """Reverb off: left and right are the same samples, and they are what a mono engine (one
    output channel) gives, also where the linked limiter takes the peaks down (a ceiling of
    -20 dBFS)."""
    for ceiling in (-1.0, -20.0):
        st = render(engine(2, ceiling_dbfs=ceiling), 1.0)
        mono = render(engine(1, ceiling_dbfs=ceiling), 1.0)[:, 0]
        np.testing.assert_array_equal(st[:, 0], st[:, 1])
        np.testing.assert_array_equal(st[:, 0], mono)
    assert np.abs(mono).max() > 0.99 * 10 ** (-20 / 20)       # it reached the ceiling


def test_the_reverb_rings_around_the_dry_sound():
    """With the send up: the left channel is the mono engine's output exactly (the left tap is
    the mono reverb's); the right carries the same dry sound and a tail of about the same
    energy, another tail (a chord's tail is a few partials, so how far the two correlate
    depends on their phases: the impulse response's measure is below)."""
    kw = dict(reverb_send=0.5, reverb_decay_s=1.5)
    st = render(engine(2, **kw), 2.5)
    mono = render(engine(1, **kw), 2.5)[:, 0]
    np.testing.assert_array_equal(st[:, 0], mono)
    tail = slice(int(0.9 * RATE), int(2.0 * RATE))           # the notes' release has ended (0.6 + 0.25 s)
    left, right = st[tail, 0].astype(np.float64), st[tail, 1].astype(np.float64)
    assert np.abs(left).max() > 1e-3
    energy = np.sum(right ** 2) / np.sum(left ** 2)
    assert 0.6 < energy < 1.6, energy
    assert np.abs(left - right).max() > 0.3 * np.abs(left).max()
    # while the notes sound the dry part dominates both: highly correlated there
    held = slice(int(0.1 * RATE), int(0.5 * RATE))
    a, b = st[held, 0].astype(np.float64), st[held, 1].astype(np.float64)
    assert np.sum(a * b) / np.sqrt(np.sum(a ** 2) * np.sum(b ** 2)) > 0.5


def iacc(a: np.ndarray, b: np.ndarray, rate: int = RATE) -> float:
    """The interaural cross-correlation coefficient: the largest |normalised cross-correlation|
    within 1 ms either way (ISO 3382-1)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    k = rate // 1000
    xc = np.correlate(a, b[k:len(b) - k], "valid")
    return float(np.abs(xc).max() / den)


def test_the_impulse_response_is_decorrelated_between_the_sides():
    """The reverb's stereo impulse response (send 1, no pre-delay): after its first 80 ms the
    two sides' IACC is under 0.2 (measured 0.04 to 0.11 at decays of 0.5 to 4 s; a concert
    hall's late sound measures about 0.1 to 0.2), with the same energy on both sides within 5%.
    The first 80 ms, the first pass through the lines, correlate more (measured 0.5 to 0.73)."""
    from livewave.reverb import Reverb
    for decay in (0.5, 1.5, 4.0):
        r = Reverb(RATE, send=1.0, decay_s=decay, damping=0.5, predelay_ms=0.0)
        n = int(RATE * min(3 * decay, 6.0))
        left = np.zeros(n, np.float32)
        left[0] = 1.0
        right = left.copy()
        for i in range(0, n, 256):
            r.process(left[i:i + 256], min(256, n - i), i, right[i:i + 256])
        late = slice(int(0.08 * RATE), n)
        a, b = left[late], right[late]
        assert iacc(a, b) < 0.2, (decay, iacc(a, b))
        assert abs(np.sum(b.astype(np.float64) ** 2) / np.sum(a.astype(np.float64) ** 2) - 1) < 0.05


def test_output_channels_take_left_right_left_right():
    eng = engine(4, reverb_send=0.6)
    out = play_events(eng, CHORD, 1.5, 128)
    full = np.zeros((int(1.5 * RATE), 4), np.float32)
    eng2 = engine(4, reverb_send=0.6)
    for t, *msg in CHORD:
        eng2.push_event(int(round(t * RATE)), *msg)
    for j in range(0, full.shape[0], 128):
        eng2.render(full[j:j + 128])
    np.testing.assert_array_equal(full[:, 0], out)
    np.testing.assert_array_equal(full[:, 0], full[:, 2])
    np.testing.assert_array_equal(full[:, 1], full[:, 3])
    assert np.abs(full[:, 0] - full[:, 1]).max() > 1e-3     # the room differs between the sides


def test_the_linked_limiter_takes_both_channels_down_together():
    """A peak on the left alone: the right, quiet, is scaled by the same gain at every sample,
    so the image does not swing toward the quiet side; the ceiling holds on both."""
    t = np.arange(RATE) / RATE
    left = (3.0 * np.sin(2 * np.pi * 220 * t) * (t > 0.5)).astype(np.float32)
    right = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    pc = PostChain(RATE, channels=2)
    buf = np.stack([left, right])
    for i in range(0, RATE, 64):
        pc.process(buf[:, i:i + 64], min(64, RATE - i))
    ceiling = np.float32(10 ** (-1 / 20))
    assert np.abs(buf).max() <= ceiling
    # the right alone through a mono chain: unlimited; linked, it was taken down with the left
    alone = right.copy()
    PostChain(RATE).process(alone, RATE)
    lat = pc.latency
    late = slice(int(0.6 * RATE), RATE - lat)
    ratio = np.abs(buf[1, late]).max() / np.abs(alone[late]).max()
    assert ratio < 0.5, ratio
    np.testing.assert_allclose(buf[1, :int(0.49 * RATE)], alone[:int(0.49 * RATE)], atol=1e-7)
    # the same gain on both sides: each output over that channel through a chain that never
    # limits (a +40 dBFS ceiling; the same gain glide, DC blocker and delay) is one gain curve
    free = np.stack([left, right])
    for c in range(2):
        PostChain(RATE, ceiling_dbfs=40.0).process(free[c], RATE)
    sure = (np.abs(free[0, late]) > 0.3) & (np.abs(free[1, late]) > 0.05)
    gains = [buf[c, late][sure] / free[c, late][sure] for c in range(2)]
    assert sure.sum() > 1000
    np.testing.assert_allclose(gains[0], gains[1], rtol=2e-3)
    assert gains[0].max() < 0.4


def test_a_mono_chain_takes_a_flat_block_and_refuses_a_mismatched_one():
    import pytest
    pc = PostChain(RATE)
    x = np.full(64, 0.1, np.float32)
    pc.process(x, 64)
    with pytest.raises(ValueError, match="channels"):
        pc.process(np.zeros((2, 64), np.float32), 64)
    with pytest.raises(ValueError, match="mono"):
        PostChain(RATE, channels=3)
