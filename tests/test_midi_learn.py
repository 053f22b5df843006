"""MIDI learn and CC bindings in the engine (offline: events at exact samples)."""
from pathlib import Path

import numpy as np
import pytest

from livewave.checkpoint import load_generator
from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.midi_learn import BindingError, ControlBindings

ROOT = Path(__file__).resolve().parents[1]
VIOLIN = ROOT / "models" / "violin.safetensors"
BLOCK = 128


def engine(gen=None) -> Engine:
    return Engine(EngineConfig(max_block=1024), gen).prepare()


def value(eng: Engine, name: str) -> float:
    return float(eng.cond.controls[eng.control_index(name)])


def play(eng: Engine, blocks: int = 1) -> None:
    out = np.zeros((BLOCK, 2), np.float32)
    for _ in range(blocks):
        eng.render(out)


def test_a_bound_cc_drives_its_control_over_the_range_and_others_do_not():
    eng = engine()
    eng.bind_cc("vibrato_rate", 0, 21)            # 2..9 Hz
    for val, want in ((0, 2.0), (127, 9.0), (64, 2.0 + 7.0 * 64 / 127)):
        eng.push_event(eng.sample_time, 0xB0, 21, val)
        play(eng)
        assert value(eng, "vibrato_rate") == pytest.approx(want)
    before = eng.cond.controls.copy()
    eng.push_event(eng.sample_time, 0xB1, 21, 0)   # another channel
    eng.push_event(eng.sample_time, 0xB0, 22, 0)   # another CC
    play(eng)
    assert np.array_equal(eng.cond.controls, before)
    eng.unbind_cc("vibrato_rate")
    eng.push_event(eng.sample_time, 0xB0, 21, 0)
    play(eng)
    assert value(eng, "vibrato_rate") == pytest.approx(before[eng.control_index("vibrato_rate")])


def test_one_cc_drives_one_control_and_bad_bindings_are_refused():
    eng = engine()
    eng.bind_cc("breath", 0, 21)
    eng.bind_cc("brightness", 0, 21)              # takes the CC over
    assert eng.bindings.bindings == {"brightness": (0, 21)}
    with pytest.raises(KeyError, match="no control 'nope'.*brightness"):
        eng.bind_cc("nope", 0, 22)
    for ch, cc in ((16, 1), (0, 128), (0, 6), (0, 101), (0, 123), (-1, 3)):
        with pytest.raises(BindingError):
            eng.bind_cc("breath", ch, cc)
    assert eng.bindings.bindings == {"brightness": (0, 21)}
    with pytest.raises(BindingError):
        eng.set_bindings({"breath": [0, 21], "brightness": [0, 6]})   # all or nothing
    assert eng.bindings.bindings == {"brightness": (0, 21)}


def test_learning_binds_the_next_cc_and_skips_structural_ones():
    eng = engine()
    eng.learn_cc("breath")
    assert eng.poll_learned() is None
    eng.push_event(eng.sample_time, 0xB2, 101, 0)      # RPN select: not learnable
    play(eng)
    assert eng.poll_learned() is None and eng.bindings.learning == "breath"
    eng.push_event(eng.sample_time, 0xB2, 71, 100)
    play(eng)
    assert eng.poll_learned() == ("breath", 2, 71)
    assert eng.bindings.learning is None
    eng.push_event(eng.sample_time, 0xB2, 71, 127)
    play(eng)
    assert value(eng, "breath") == pytest.approx(1.0)
    eng.learn_cc("breath")
    eng.learn_cc(None)                                   # cancelled
    eng.push_event(eng.sample_time, 0xB0, 72, 5)
    play(eng)
    assert eng.poll_learned() is None and eng.bindings.bindings == {"breath": (2, 71)}


@pytest.mark.skipif(not VIOLIN.exists(), reason="no shipped violin")
def test_bindings_follow_the_control_name_across_a_model_swap_even_in_the_swap_block():
    eng = engine()
    eng.bind_cc("breath", 0, 2)                  # index 1 on the default, 3 on the DDSP model
    gen = load_generator(VIOLIN)
    Engine(eng.config, gen).prepare()
    eng.swap_generator(gen)
    eng.push_event(eng.sample_time + 5, 0xB0, 2, 127)   # lands in the very block of the swap
    play(eng)
    assert eng.generator is gen
    assert value(eng, "breath") == pytest.approx(2.0)    # DDSP breath: 0..2
    assert value(eng, "vibrato_rate") == pytest.approx(5.5)
    eng.refresh_bindings()
    assert [t[0] for t in eng.bindings._tables] == [gen]   # the old model is not kept alive
    eng.bind_cc("dynamics", 0, 3)                # only the DDSP model has it
    back = load_generator("builtin:default")
    Engine(eng.config, back).prepare()
    eng.swap_generator(back)
    eng.push_event(eng.sample_time, 0xB0, 3, 0)
    play(eng)
    assert eng.bindings.bindings == {"breath": (0, 2), "dynamics": (0, 3)}   # kept, inactive here


def test_the_render_side_allocates_nothing_for_a_cc():
    b = ControlBindings()
    eng = engine()
    b.bind("breath", 0, 9, (eng.generator,))
    import tracemalloc
    controls = eng.cond.controls
    b.on_cc(eng.generator, controls, 0, 9, 1)
    tracemalloc.start()
    for v in range(100):
        b.on_cc(eng.generator, controls, 0, 9, v)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 512                            # no arrays, no lists: a few boxed floats at most
    assert controls[eng.control_index("breath")] == pytest.approx(99 / 127)


def test_the_master_volume_binds_like_a_control_whatever_the_model():
    from livewave.midi_learn import MASTER, MASTER_RANGE
    eng = engine()
    eng.bind_cc(MASTER, 0, 7 + 20)
    eng.push_event(eng.sample_time, 0xB0, 27, 0)
    play(eng)
    assert eng.post.target_gain == pytest.approx(10 ** (MASTER_RANGE[0] / 20))
    assert eng.bindings.master_db == MASTER_RANGE[0] and eng.bindings.master_serial == 1
    eng.push_event(eng.sample_time, 0xB0, 27, 127)
    play(eng)
    assert eng.post.target_gain == pytest.approx(10 ** (MASTER_RANGE[1] / 20))


def test_a_swapped_in_model_starts_where_the_knobs_are():
    """The knob is the truth: a model swapped in takes its bound controls from the knobs' last
    positions, not from its defaults (unbound controls keep their defaults)."""
    eng = engine()
    eng.bind_cc("breath", 0, 2)
    eng.push_event(eng.sample_time, 0xB0, 2, 0)          # knob at 0
    play(eng)
    assert value(eng, "breath") == pytest.approx(0.0)
    gen = load_generator(VIOLIN)
    Engine(eng.config, gen).prepare()
    eng.swap_generator(gen)
    play(eng)
    assert eng.generator is gen
    assert value(eng, "breath") == pytest.approx(0.0)    # not the violin's default (1.0)
    assert value(eng, "vibrato_rate") == pytest.approx(5.5)
