"""Torture: every model at every device rate and block size, as pluginval runs a plugin.

Rates 22050, 44100, 48000, 96000 and 192000 x blocks 1, 17, 32, 64, 256, 1024 and 4096,
with noise on the audio input and random notes, bends, pedal and controllers: the output has
no NaN, Inf or subnormal, never exceeds the ceiling, and at every block size equals the
offline render (one 4096-sample block at a time) within 1e-5. Then conditions change
mid-stream: variable callback sizes (PortAudio may call with any size up to the maximum), a
block-size change and a sample-rate change (``Engine.prepare`` again, as a device switch does).

CI runs the default instrument and one shipped model of each family; ``LIVEWAVE_TORTURE=full``
runs every shipped model.
"""
import os

import numpy as np
import pytest
from shipped import shipped

pytestmark = pytest.mark.torture
RATES = (22050, 44100, 48000, 96000, 192000)
BLOCKS = (1, 17, 32, 64, 256, 1024, 4096)
SECONDS = 0.2
TINY = np.finfo(np.float32).tiny


def _models() -> list[str]:
    full = os.environ.get("LIVEWAVE_TORTURE") == "full"
    out = ["default"]
    for family in ("ddsp", "midi2mel", "istft", "flow"):
        found = [p.stem for p in shipped(family)]
        out += found if full else found[:1]
    return out


def _engine(model: str, rate: int, max_block: int = 4096):
    from livewave.checkpoint import load_generator
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    gen = None if model == "default" else load_generator(f"models/{model}.safetensors")
    return Engine(EngineConfig(sample_rate=rate, max_block=max_block), gen)


def performance(rate: int, seconds: float, seed: int = 0):
    """Random notes (some held past the end), bends, pedal, mod wheel, expression and pan, at
    sample times; and noise for the audio input."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    events = []
    for _ in range(12):
        t = int(rng.integers(0, int(0.6 * n)))
        key = int(rng.integers(36, 90))
        events.append((t, 0x90, key, int(rng.integers(1, 128))))
        if rng.random() < 0.7:
            events.append((t + int(rng.integers(1, n // 3)), 0x80, key, 0))
    for _ in range(6):
        t = int(rng.integers(0, n))
        kind = int(rng.integers(0, 5))
        v = int(rng.integers(0, 128))
        events.append((t, *((0xE0, int(rng.integers(0, 128)), v), (0xB0, 64, v), (0xB0, 1, v), (0xB0, 11, v),
                            (0xB0, 10, v))[kind]))
    events.sort(key=lambda e: e[0])
    noise = (0.2 * rng.standard_normal((n, 1))).astype(np.float32)
    return events, noise


def centred(eng):
    """The engine back to the state after ``prepare`` with the pan at the centre: the pan, like
    the reverb's send, is a setting that a reset keeps, and a performance's CC 10 moved it."""
    eng.set_pan(0.0)
    eng.hard_reset()
    return eng


def render(eng, events, noise, sizes) -> np.ndarray:
    """Render ``len(noise)`` samples with callbacks of the given sizes (cycled)."""
    for e in events:
        eng.push_event(*e)
    n = noise.shape[0]
    out = np.zeros((n, eng.config.channels), np.float32)
    i = k = 0
    while i < n:
        b = min(sizes[k % len(sizes)], n - i)
        eng.render(out[i:i + b], noise[i:i + b])
        i += b
        k += 1
    return out[:, 0]


def check_clean(x: np.ndarray, ceiling: float, what: str) -> None:
    assert np.isfinite(x).all(), f"{what}: NaN or Inf"
    nz = np.abs(x[x != 0])
    assert nz.size == 0 or nz.min() >= TINY, f"{what}: subnormal samples ({int((nz < TINY).sum())})"
    assert np.abs(x).max() <= ceiling + 1e-6, f"{what}: {np.abs(x).max():.4f} above the ceiling {ceiling:.4f}"


@pytest.mark.parametrize("model", _models())
def test_every_rate_and_block_size_is_clean_and_equals_the_offline_render(model):
    """One engine, prepared at each rate; ``hard_reset`` between takes (so this also tests that
    a reset gives back the state after ``prepare``)."""
    worst = {}
    eng = _engine(model, RATES[0])
    for rate in RATES:
        events, noise = performance(rate, SECONDS)
        eng.set_pan(0.0)
        eng.prepare(sample_rate=rate)
        ceiling = eng.post.ceiling
        ref = render(eng, events, noise, [4096])
        check_clean(ref, ceiling, f"{model} at {rate} Hz, offline")
        assert np.sqrt(np.mean(ref ** 2)) > 1e-3, f"{model} at {rate} Hz: silent"
        for block in BLOCKS[:-1]:
            x = render(centred(eng), events, noise, [block])
            check_clean(x, ceiling, f"{model} at {rate} Hz, block {block}")
            err = float(np.abs(x - ref).max())
            worst[(rate, block)] = err
            assert err <= 1e-5, f"{model} at {rate} Hz, block {block}: {err:.2e} from the offline render"
    print(f"{model}: largest difference from the offline render over {len(worst)} rate x block pairs: "
          f"{max(worst.values()):.1e}")


@pytest.mark.parametrize("model", _models())
def test_conditions_change_mid_stream(model):
    """Callback sizes that vary at random up to the maximum; the maximum block raised and the
    device rate changed mid-performance (a device switch prepares the engine again): still
    clean, below the ceiling, and the variable sizes give the offline render's samples."""
    rate = 48000
    events, noise = performance(rate, SECONDS, seed=1)
    eng = _engine(model, rate).prepare()
    ref = render(eng, events, noise, [4096])
    sizes = [int(s) for s in np.random.default_rng(2).integers(1, 4097, 64)]
    x = render(centred(eng), events, noise, sizes)
    check_clean(ref, eng.post.ceiling, f"{model}, blocks of 4096")
    check_clean(x, eng.post.ceiling, f"{model}, variable callback sizes")
    assert np.abs(x - ref).max() <= 1e-5
    eng.prepare(max_block=256)
    first = render(eng, events, noise[:rate // 10], [256])
    eng.prepare(max_block=1024)                       # a larger block: buffers re-made
    second = render(eng, [], noise[:rate // 10], [1024, 1000, 3])
    eng.prepare(sample_rate=96000)                    # the device changed rate
    ev96, noise96 = performance(96000, 0.2, seed=3)
    third = render(eng, ev96, noise96, [97, 1024, 5])
    for part, what in ((first, "before"), (second, "after a block-size change"), (third, "after a rate change")):
        check_clean(part, eng.post.ceiling, f"{model}, {what}")
    assert np.sqrt(np.mean(third ** 2)) > 1e-3, "silent after the rate change"
