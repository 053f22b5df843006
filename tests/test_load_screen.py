"""The load-time screen (torture item 11): 1 s of silence and 1 s of notes through each model
before it plays. NaN/Inf or a raise: refused; peaks over +6 dBFS or DC over 0.1 before the
limiter: flagged in the card and the engine's reports; every shipped model passes clean."""
import numpy as np
import pytest
from shipped import shipped

from livewave.config import EngineConfig
from livewave.default_instrument import DefaultInstrument
from livewave.fault_injection import FaultyGenerator
from livewave.load_screen import ScreenRefused, describe_flags, screen

pytestmark = pytest.mark.torture


class Loud(DefaultInstrument):
    """The built-in instrument 8x too loud (+18 dB) with a DC of 0.3 under it."""

    def render(self, cond, out):
        super().render(cond, out)
        out[:cond.frames] = 8.0 * out[:cond.frames] + 0.3


@pytest.mark.parametrize("kind", ["nan", "raise"])
def test_a_model_that_renders_nan_or_raises_is_refused(kind):
    with pytest.raises(ScreenRefused, match="refused"):
        screen(FaultyGenerator(DefaultInstrument(), kind), EngineConfig())


def test_a_loud_model_with_dc_is_flagged_with_its_figures():
    gen = Loud()
    report = screen(gen, EngineConfig())
    notes = report["notes"]
    assert notes["peak_dbfs"] > 6.0 and abs(report["silence"]["dc"] - 0.3) < 1e-3
    assert any("dBFS" in f for f in report["flags"]) and any("DC" in f for f in report["flags"])
    assert gen.info.card["load_screen"] == report
    assert "flagged" in describe_flags(gen)


def test_the_cli_refuses_a_nan_model_and_reports_a_flagged_one(tmp_path, monkeypatch):
    from argparse import Namespace

    from livewave.checkpoint import CheckpointError
    from livewave.cli import _engine
    args = Namespace(model="nan-model", polyphony=8, bend_range=2.0, channels="all", gain=0.0, device="cpu")
    with pytest.raises(CheckpointError, match="nan-model: the model .*refused"):
        _engine(args, 48000, 256, gen=FaultyGenerator(DefaultInstrument(), "nan"), screen=True)
    eng = _engine(Namespace(**{**vars(args), "model": "loud"}), 48000, 256, gen=Loud(), screen=True)
    assert any("flagged" in r for r in eng.reports)


@pytest.mark.parametrize("path", [p for f in ("ddsp", "midi2mel", "istft", "flow") for p in shipped(f)],
                         ids=lambda p: p.stem)
def test_every_shipped_model_passes_clean_and_its_card_says_so(path):
    from livewave.checkpoint import load_generator, read_checkpoint
    report = screen(load_generator(path), EngineConfig())
    print(path.stem, report)
    assert not report["flags"]
    assert report["notes"]["peak_dbfs"] is not None and report["notes"]["peak_dbfs"] > -30
    assert np.isfinite(report["notes"]["dc"])
    # the figures shipped in its card (livewave screen --write-card) are the ones measured now
    card = read_checkpoint(path)[0]["card"]["load_screen"]
    assert card["flags"] == [] and card["sample_rate"] == 48000
    for phase in ("silence", "notes"):
        assert card[phase]["nonfinite_samples"] == 0
        assert abs(card[phase]["dc"] - report[phase]["dc"]) < 1e-3
        if report[phase]["peak_dbfs"] is not None and report[phase]["peak_dbfs"] > -120:
            assert abs(card[phase]["peak_dbfs"] - report[phase]["peak_dbfs"]) < 1.0, (phase, card, report)
    assert "## Load-time screen" in path.with_suffix(".md").read_text()


def test_livewave_screen_prints_the_figures_and_writes_them_to_the_card(tmp_path):
    import shutil
    import subprocess
    import sys

    from livewave.checkpoint import read_checkpoint
    src = shipped("ddsp")[0]
    model = tmp_path / src.name
    shutil.copy(src, model)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    r = subprocess.run([sys.executable, "-m", "livewave", "screen", str(model), "--write-card"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "notes: peak" in r.stdout and "clean" in r.stdout and "written to its card" in r.stdout
    meta = read_checkpoint(model)[0]
    assert meta["card"]["load_screen"]["notes"]["peak_dbfs"] < 6.0
    assert "## Load-time screen" in model.with_suffix(".md").read_text()
    r = subprocess.run([sys.executable, "-m", "livewave", "screen", str(bad), str(model)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "livewave: error:" in r.stderr and "Traceback" not in r.stderr
    assert f"{model}: silence" in r.stdout           # the good one after the bad one is still screened


def test_the_notes_play_at_the_live_block_and_their_cost_is_kept():
    """The longest block of the notes, in the render thread's CPU time, at the block size given:
    what the engine sets its lead from (``audio_io.lead_for``): a model that computes 3 ms in each
    call costs at least that, the built-in instrument less."""
    import time

    from livewave.generator import GeneratorWrapper

    class Busy(GeneratorWrapper):
        def render(self, cond, out):
            t = time.thread_time()
            while time.thread_time() - t < 0.003:
                pass
            self.inner.render(cond, out)
    cfg = EngineConfig(sample_rate=48000, max_block=1024)
    quick = screen(DefaultInstrument(), cfg, block=64)
    busy = screen(Busy(DefaultInstrument()), cfg, block=64)
    assert quick["block"] == busy["block"] == 64
    assert 0.0 < quick["block_cost_s"] < 0.003 <= busy["block_cost_s"] < 0.05
