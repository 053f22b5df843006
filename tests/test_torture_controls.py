"""Torture: control abuse, controls set from another thread while blocks render, and the state
round trip of a preset.

- Every control set 10 times per 32-sample block with NaN, +-Inf, huge and out-of-range values:
  each lands clamped in its range (NaN gives the default), and the audio is bit for bit the
  audio of a take where only the last (clamped) value of each block was set: the abuse adds
  nothing beyond the control's own change.
- A "GUI" thread sets every control 500 times (abusive values included) while a render thread
  renders 500 blocks: no exception, clean output, and no sample-to-sample step larger than the
  largest one a single-threaded take makes with the controls jumping between their extremes at
  block boundaries (the control's own change).
- Preset: engine state (controls, master volume, MIDI bindings) saved, restored onto a fresh
  engine, the same state; saving again gives identical bytes.
"""
import threading

import numpy as np
import pytest
from shipped import shipped

pytestmark = pytest.mark.torture
RATE, BLOCK = 48000, 32
ABUSE = (float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 1e-320)


def _models() -> list[str]:
    return ["default"] + [p.stem for f in ("ddsp", "midi2mel", "istft", "flow") for p in shipped(f)[:1]]


def _engine(model: str):
    from livewave.checkpoint import load_generator
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    gen = None if model == "default" else load_generator(f"models/{model}.safetensors")
    return Engine(EngineConfig(sample_rate=RATE, max_block=4096), gen).prepare()


def _notes(eng) -> None:
    for t, key in ((0, 48), (0, 55), (300, 60), (2000, 64), (9000, 67)):
        eng.push_event(t, 0x90, key, 100)
    eng.push_event(15000, 0x80, 55, 0)


def _values(c, rng, n: int) -> list[float]:
    """n values for control c: abuse, out of range, and in range."""
    span = c.maximum - c.minimum
    pool = [*ABUSE, c.minimum - 10 * span - 1, c.maximum + 10 * span + 1]
    return [pool[int(rng.integers(len(pool)))] if rng.random() < 0.5 else float(rng.uniform(c.minimum, c.maximum))
            for _ in range(n)]


@pytest.mark.parametrize("model", _models())
def test_abusive_values_are_clamped_and_add_nothing_beyond_the_change(model):
    blocks = RATE // 2 // BLOCK
    noise = (0.1 * np.random.default_rng(9).standard_normal((blocks * BLOCK, 1))).astype(np.float32)
    abused, plain = _engine(model), _engine(model)
    controls = abused.generator.info.controls
    if not controls:
        pytest.skip(f"{model} has no controls")
    rng = np.random.default_rng(1)
    takes = {id(abused): np.zeros((blocks * BLOCK, 2), np.float32), id(plain): np.zeros((blocks * BLOCK, 2), np.float32)}
    for eng in (abused, plain):
        _notes(eng)
    for b in range(blocks):
        sl = slice(b * BLOCK, (b + 1) * BLOCK)
        for i, c in enumerate(controls):
            last = None
            for v in _values(c, rng, 10):
                last = abused.set_control(i, v)
                got = float(abused.cond.controls[i])
                assert np.isfinite(got) and c.minimum <= got <= c.maximum, f"{c.name} = {got} after {v}"
                assert got == last and (v == v or got == c.default)
            plain.set_control(i, last)
        for eng in (abused, plain):
            eng.render(takes[id(eng)][sl, :eng.config.channels], noise[sl])
    a, p = takes[id(abused)][:, 0], takes[id(plain)][:, 0]
    assert np.isfinite(a).all() and np.abs(a).max() <= abused.post.ceiling + 1e-6
    assert np.array_equal(a, p), f"{model}: abuse changed the audio by {np.abs(a - p).max():.2e}"
    assert np.sqrt(np.mean(a ** 2)) > 1e-3


def _largest_step(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x)).max())


@pytest.mark.parametrize("model", _models())
def test_a_gui_thread_setting_controls_while_blocks_render(model):
    blocks, sets = 500, 500
    block = 128
    noise = (0.1 * np.random.default_rng(3).standard_normal((blocks * block, 1))).astype(np.float32)

    # the control's own change: extremes at block boundaries, one thread
    ref_eng = _engine(model)
    controls = ref_eng.generator.info.controls
    if not controls:
        pytest.skip(f"{model} has no controls")
    _notes(ref_eng)
    ref = np.zeros((blocks * block, ref_eng.config.channels), np.float32)
    for b in range(blocks):
        for i, c in enumerate(controls):
            ref_eng.set_control(i, c.maximum if (b // 7 + i) % 2 else c.minimum)
        ref_eng.render(ref[b * block:(b + 1) * block], noise[b * block:(b + 1) * block])

    eng = _engine(model)
    _notes(eng)
    out = np.zeros_like(ref)
    errors: list[BaseException] = []
    started = threading.Event()

    def gui():
        rng = np.random.default_rng(4)
        started.wait(5)
        try:
            for _ in range(sets):
                for i, c in enumerate(controls):
                    eng.set_control(i, _values(c, rng, 1)[0])
        except BaseException as exc:         # noqa: BLE001 (reported below)
            errors.append(exc)

    def render():
        try:
            for b in range(blocks):
                if b == 5:
                    started.set()
                eng.render(out[b * block:(b + 1) * block], noise[b * block:(b + 1) * block])
        except BaseException as exc:         # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=gui), threading.Thread(target=render)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    x = out[:, 0]
    assert np.isfinite(x).all() and np.abs(x).max() <= eng.post.ceiling + 1e-6
    assert eng.stats.generator_faults == 0, eng.stats.last_fault
    step, own = _largest_step(x), _largest_step(ref[:, 0])
    print(f"{model}: largest step with a GUI thread setting controls {step:.4f}; with the controls "
          f"jumping between extremes at block boundaries {own:.4f}")
    assert step <= 1.25 * own + 1e-3


@pytest.mark.parametrize("model", _models())
def test_preset_round_trip_gives_the_same_state_and_the_same_bytes(model, tmp_path):
    from ui.presets import load_preset, make_preset, save_preset
    eng = _engine(model)
    rng = np.random.default_rng(5)
    controls = eng.generator.info.controls
    for i, c in enumerate(controls):
        eng.set_control(i, float(rng.uniform(c.minimum, c.maximum)))
    eng.set_master_gain_db(-7.3)
    eng.set_reverb(send=0.41, decay_s=3.7, damping=0.33, predelay_ms=27)
    for k, c in enumerate(controls[:3]):
        eng.bind_cc(c.name, k, 20 + k)

    def state(e) -> dict:
        return make_preset(f"models/{model}.safetensors", {c.name: float(e.cond.controls[i])
                                                           for i, c in enumerate(e.generator.info.controls)},
                           e.post.gain_db, dict(e.bindings.bindings), e.set_reverb())

    first = save_preset(tmp_path / "a.json", state(eng))
    p = load_preset(first)
    fresh = _engine(model)
    for name, v in p["controls"].items():
        fresh.set_control(name, v)
    fresh.set_master_gain_db(p["gain_db"])
    fresh.set_bindings(p["midi_bindings"])
    fresh.set_reverb(**p["reverb"])
    assert np.array_equal(fresh.cond.controls, eng.cond.controls)
    assert fresh.set_reverb() == eng.set_reverb() and np.array_equal(fresh.reverb.coef, eng.reverb.coef)
    assert fresh.post.gain_db == eng.post.gain_db and fresh.bindings.bindings == eng.bindings.bindings
    second = save_preset(tmp_path / "b.json", state(fresh))
    assert first.read_bytes() == second.read_bytes()
