"""The model loader (``livewave/model_loader.py``): the latest request wins. A keyboard's program
knob scrolled through several programs sends a program change for each; only the last one's
model is loaded and swapped in, and the ones it overtook say so (``superseded``)."""
import time
from pathlib import Path

import numpy as np

from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.generator import preload_families
from livewave.model_loader import ModelLoader

ROOT = Path(__file__).resolve().parents[1]


def run_until_loaded(eng, loader, seconds: float = 120.0) -> list[tuple]:
    """Poll the loader (and render, so a swap is picked up) until a model is swapped in or fails."""
    out = np.zeros((256, 2), np.float32)
    events, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds and not any(k in ("loaded", "load_failed") for k, *_ in events):
        events += loader.poll()
        eng.render(out)
        time.sleep(0.005)
    for _ in range(4):
        eng.render(out)              # the crossfade ends
    return events


def test_the_latest_of_quick_requests_is_the_only_one_loaded():
    preload_families()          # as the app and play do before a stream: no kernel compiles in a load
    eng = Engine(EngineConfig(sample_rate=48000, max_block=256)).prepare()
    loader = ModelLoader(lambda: eng, lambda: 256).start()
    try:
        for name in ("violin", "cello", "flute"):            # three program changes in a row
            loader.request(str(ROOT / "models" / f"{name}.safetensors"))
        events = run_until_loaded(eng, loader)
        assert [(k, Path(p).stem) for k, p, _ in events] == [("superseded", "violin"), ("superseded", "cello"),
                                                             ("loaded", "flute")], events
        assert eng.generator is events[-1][2] and "flute" in eng.generator.info.name.lower()
        loader.request(str(ROOT / "models" / "cello.safetensors"))      # one alone still loads
        events = run_until_loaded(eng, loader)
        assert [(k, Path(p).stem) for k, p, _ in events] == [("loaded", "cello")], events
        loader.request(str(ROOT / "models" / "violin.safetensors"))     # a failure overtaken is not reported
        loader.request(str(ROOT / "README.md"))                          # (not a model: the last word, reported)
        events = run_until_loaded(eng, loader)
        assert [(k, Path(p).name) for k, p, _ in events] == [("superseded", "violin.safetensors"),
                                                             ("load_failed", "README.md")], events
        assert "cello" in eng.generator.info.name.lower()                # and the cello plays on
    finally:
        loader.stop()
