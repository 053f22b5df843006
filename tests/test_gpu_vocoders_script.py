"""``scripts/gpu_vocoders.sh train``, the one command a lent GPU runs, run here on the CPU with
budgets of seconds: every flag it passes is valid, the fine-tune starts from the shipped iSTFT
vocoder with its GAN (and, as its last stage, onsets after silence and synthetic sounds), the
flow trains, both stop at their time budgets and come back playable."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_vocoder_training import tones

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "models" / "istft-fluidr3.safetensors").exists(), reason="no shipped vocoder")
def test_the_gpu_script_trains_both_vocoders_within_its_budgets(tmp_path):
    from livewave.checkpoint import load_generator
    data = tones(tmp_path / "data", seconds=1.5)
    out = tmp_path / "out"
    env = {**os.environ, "PY": sys.executable, "DEVICE": "cpu", "BATCH": "1", "ISTFT_MINUTES": "0.01",
           "FLOW_MINUTES": "0.01", "OUT": str(out), "WORK": str(tmp_path / "work"), "DATA": str(data)}
    r = subprocess.run([str(ROOT / "scripts" / "gpu_vocoders.sh"), "train"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "stopped at --max-minutes" in (out / "istft.log").read_text()
    gan = load_generator(out / "istft-fluidr3-gan.safetensors")
    t = gan.info.card["training"]
    shipped = load_generator(ROOT / "models" / "istft-fluidr3.safetensors").info.card["training"]["steps"]
    assert t["fine_tuned_from"]["steps"] == shipped and t["gan_start"] == 0 and t["discriminators"] == "msd+mpd"
    assert t["steps"] >= 1 and gan.model.config.phase == "source"
    assert t["onsets"] == 0.25 and len(list((data / "synth").glob("*.wav"))) == 36     # as the shipped model's last stage
    # a file the device returns may hold 16 MB at most: the flow comes back in parts, which
    # `finish` joins
    parts = sorted(out.glob("flow-fluidr3.safetensors.part*"))
    assert parts and all(p.stat().st_size < 16e6 for p in [out / "istft-fluidr3-gan.safetensors", *parts])
    joined = tmp_path / "flow-fluidr3.safetensors"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    flow = load_generator(joined)
    assert flow.info.family == "flow" and flow.info.card["training"]["steps"] >= 1
    assert flow.model.takes_source and flow.model.config.n_group == 32     # the sourced flow the CPU got furthest with
