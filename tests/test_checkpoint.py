"""Checkpoints: round trip, and every kind of bad file refused with the file and reason named."""
import json
import pickle

import numpy as np
import pytest

from livewave.checkpoint import CheckpointError, load_generator, read_checkpoint, save_checkpoint
from livewave.config import EngineConfig
from livewave.engine import Engine


def test_default_instrument_preset_round_trip(tmp_path):
    p = save_checkpoint(tmp_path / "soft.safetensors", "default",
                        {"name": "soft flute", "breath": 0.8, "brightness": -0.5}, {"note": "hand-set"})
    gen = load_generator(p)
    assert gen.info.name == "soft flute" and gen.info.card["note"] == "hand-set"
    e = Engine(EngineConfig(max_block=512), gen).prepare()
    assert e.cond.controls[e.control_index("breath")] == 0.8
    e.push_event(0, 0x90, 60, 100)
    out = np.zeros((4800, 2), np.float32)
    e.render(out)
    assert np.abs(out).max() > 0.01


def test_write_is_atomic_no_temp_left(tmp_path):
    save_checkpoint(tmp_path / "a.safetensors", "default", {})
    assert [f.name for f in tmp_path.iterdir()] == ["a.safetensors"]


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "pickle", "pt", "huge_header",
                                  "no_meta", "bad_version", "unknown_family", "bad_json", "nan",
                                  "bad_value"])
def test_bad_checkpoints_are_refused_clearly(tmp_path, case):
    p = tmp_path / f"{case}.safetensors"
    good = save_checkpoint(tmp_path / "good.safetensors", "default", {"breath": 0.3},
                           tensors={"w": np.ones(4, np.float32)})
    raw = good.read_bytes()
    if case == "empty":
        p.write_bytes(b"")
    elif case == "truncated":
        p.write_bytes(raw[: len(raw) // 2])
    elif case == "pickle":
        p.write_bytes(pickle.dumps({"a": 1}))
    elif case == "pt":
        p = tmp_path / "model.pt"
        p.write_bytes(pickle.dumps({"a": 1}))
    elif case == "huge_header":
        p.write_bytes((10 ** 12).to_bytes(8, "little") + b"{}")
    elif case == "no_meta":
        from safetensors.numpy import save_file
        save_file({"w": np.ones(2, np.float32)}, str(p))
    elif case == "bad_version":
        save_checkpoint(p, "default", {})
        raw2 = p.read_bytes().replace(b'"livewave_format":"1"', b'"livewave_format":"9"')
        p.write_bytes(raw2)
    elif case == "unknown_family":
        save_checkpoint(p, "no-such-family", {})
    elif case == "bad_json":
        save_checkpoint(p, "default", {})
        cfg = json.dumps(json.dumps({}, sort_keys=True))[1:-1].encode()
        p.write_bytes(p.read_bytes().replace(b'"config":"' + cfg, b'"config":"{{{{'))
    elif case == "nan":
        save_checkpoint(p, "default", {}, tensors={"w": np.array([1.0, np.nan], np.float32)})
    elif case == "bad_value":
        save_checkpoint(p, "default", {"breath": 7.0})
    with pytest.raises(CheckpointError) as err:
        load_generator(p)
    msg = str(err.value)
    assert p.name in msg, msg
    assert len(msg) > len(str(p)) + 10


def test_read_gives_parsed_metadata(tmp_path):
    p = save_checkpoint(tmp_path / "x.safetensors", "default", {"a": 1}, {"b": 2},
                        tensors={"w": np.arange(3, dtype=np.float32)})
    meta, tensors = read_checkpoint(p)
    assert meta["config"] == {"a": 1} and meta["card"] == {"b": 2}
    assert np.array_equal(tensors["w"], np.arange(3))


def test_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """A safetensors header length whose low byte is 0x80 (a pickle's first byte) is valid."""
    for pad in range(300):
        p = save_checkpoint(tmp_path / "m.safetensors", "default", {"name": "x" * pad}, {}, {})
        if p.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert read_checkpoint(p)[0]["config"]["name"] == "x" * pad
