"""The chain family: an instrument played from MIDI, re-rendered by a vocoder (DDSP to vocoder)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_vocoder_instrument import tiny_vocoder_checkpoint

from livewave.checkpoint import BUILTIN, CheckpointError, load_generator
from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.offline_render import render_events

MODELS = Path(__file__).resolve().parents[1] / "models"


def play(gen, block, notes=True):
    eng = Engine(EngineConfig(sample_rate=48000, max_block=1024), gen).prepare()
    ev = [(0.05, 0x90, 57, 100), (0.3, 0x90, 64, 80), (0.8, 0x80, 57, 0), (0.9, 0x80, 64, 0)] if notes else []
    return render_events(eng, ev, 1.0, block=block, tail_s=0.3)[:, 0], eng


def test_the_default_instrument_through_a_vocoder_plays_the_same_at_any_block(tmp_path):
    from livewave.vocoder_chain import make_chain
    voc = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    out = make_chain(BUILTIN, voc, tmp_path / "chain.safetensors")
    a, eng = play(load_generator(out), 17)
    b, _ = play(load_generator(out), 256)
    info = eng.generator.info
    assert info.family == "chain" and info.conditioning == "voices"
    names = [c.name for c in info.controls]
    assert "input_gain" in names and names.index("input_gain") >= eng.generator.n_source
    assert info.lookahead == eng.generator.vocoder.info.lookahead > 0       # the default instrument adds none
    assert np.isfinite(a).all() and np.abs(a).max() > 1e-4
    assert np.abs(a - b).max() <= 1e-5
    # what an untrained vocoder makes of silence until the first note plus the chain's latency,
    # then the note
    idle, _ = play(load_generator(out), 256, notes=False)
    onset = int(0.05 * 48000) + eng.latency_samples
    first = int(np.flatnonzero(np.abs(a - idle) > 1e-6)[0])
    print(f"the note reaches the output {first - onset} samples after the declared latency")
    assert onset <= first <= onset + 400                    # never early; late by at most about a hop


def test_a_shipped_ddsp_instrument_through_a_vocoder(tmp_path):
    voc = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    src = sorted(MODELS.glob("*.safetensors"))
    src = [p for p in src if load_generator(p).info.family == "ddsp"][0]
    r = subprocess.run([sys.executable, "-m", "livewave", "chain", str(src), str(voc), "-o",
                        str(tmp_path / "c.safetensors")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    gen = load_generator(tmp_path / "c.safetensors")
    assert gen.source.info.family == "ddsp" and gen.info.envelope == gen.source.info.envelope
    a, _ = play(gen, 128)
    assert np.isfinite(a).all() and np.abs(a).max() > 1e-4


def test_a_chain_needs_a_midi_source_and_a_vocoder(tmp_path):
    from livewave.vocoder_chain import make_chain
    voc = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    with pytest.raises(CheckpointError, match="played from MIDI"):
        make_chain(voc, voc, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="must take audio"):
        make_chain(BUILTIN, BUILTIN, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_an_audio_driven_model_without_an_input_is_said_so(tmp_path):
    """`play` and the app's engine report this line when such a model starts or loads."""
    from livewave.generator import missing_input_warning
    gen = load_generator(tiny_vocoder_checkpoint(tmp_path / "v.safetensors"))
    assert "no audio input is open" in missing_input_warning(gen.info, 0)
    assert missing_input_warning(gen.info, 1) is None
    assert missing_input_warning(load_generator(BUILTIN).info, 0) is None
