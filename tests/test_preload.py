"""Start-up compiles every Numba kernel a model needs: after ``preload_families`` (run before any
stream), loading, preparing and playing each shipped model compiles nothing more. A kernel
compiled lazily runs its compile on the loader thread of a playing engine, where the GIL pauses
stretched one to 40 s (stop 21, measured). Fails if a family's ``warm_up`` misses a kernel."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = r"""
import sys
import numpy as np
from livewave.generator import preload_families
from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.checkpoint import load_generator, BUILTIN

def signatures():
    from numba.core.registry import CPUDispatcher
    n = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("livewave"):
            for attr, obj in vars(mod).items():
                if isinstance(obj, CPUDispatcher):
                    n[f"{name}.{attr}"] = len(obj.signatures)
    return n

def play(path, config):
    eng = Engine(config, load_generator(path)).prepare()
    out = np.zeros((256, 2), np.float32)
    x = (0.3 * np.sin(np.arange(256) * 0.07)).astype(np.float32)[:, None]
    for i, note in enumerate((60, 64, 67)):
        eng.push_midi(0x90, note, 100)
    for i in range(60):
        if i == 40:
            eng.push_midi(0xB0, 64, 127)
            eng.push_midi(0x80, 64, 0)
            eng.push_midi(0xE0, 0, 80)
        eng.render(out, x)

failed = preload_families()
assert not failed, failed                       # a family whose warm-up raised
config = EngineConfig(sample_rate=48000, max_block=256, input_channels=1)
play(BUILTIN, config)                           # the engine's own kernels, as the app starts
before = signatures()
for path in sys.argv[1:]:
    play(path, config)
    after = signatures()
    new = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    print(path.split("/")[-1], "NEW", new)
"""


def models_of_other_depths(folder: Path) -> list[str]:
    """Models unlike the warm-ups' tiny ones in how many layers or steps they have, as a user may
    train them: a flow on groups of samples with 6 steps and one on the MDCT with 5 (the warm-ups:
    4), and a MIDI-to-mel network of 4 layers (3). Their kernels hold the count in a shape, or
    take one Numba call a step, so no depth compiles anew."""
    import torch

    from livewave.checkpoint import save_checkpoint
    from livewave.flow_vocoder import FlowConfig, FlowVocoder
    from livewave.midi_to_mel import MidiToMel, MidiToMelConfig
    from livewave.midi_to_mel_instrument import MidiToMelInstrument
    from livewave.vocoder_instrument import FlowVocoderInstrument, tiny_istft_instrument
    torch.manual_seed(3)
    mm = MidiToMelInstrument(MidiToMel(MidiToMelConfig(sample_rate=8000, n_fft=128, hop=32, n_mels=8, hidden=8,
                                                       layers=4)), tiny_istft_instrument())
    config, tensors = mm.checkpoint_parts()
    out = [str(save_checkpoint(folder / "midi2mel4.safetensors", "midi2mel", config, tensors=tensors))]
    for name, cfg in (("groups6", dict(n_group=8, n_flows=6, n_early_size=2)),
                      ("mdct5", dict(n_group=64, n_flows=5, n_early_size=8, squeeze="mdct", prior_channels=16))):
        torch.manual_seed(3)
        m = FlowVocoder(FlowConfig(n_mels=20, hop=64, n_early_every=2, wn_layers=2, wn_channels=8,
                                   sample_rate=22050, source_n_fft=128, source_channels=4, **cfg))
        config, tensors = FlowVocoderInstrument(m, {"n_mels": 20, "hop": 64, "n_fft": 256}, name=name).checkpoint_parts()
        out.append(str(save_checkpoint(folder / f"{name}.safetensors", "flow", config, tensors=tensors)))
    return out


def test_a_model_loaded_after_start_up_compiles_nothing(tmp_path):
    models = sorted(str(p) for p in (ROOT / "models").glob("*.safetensors")) + models_of_other_depths(tmp_path)
    r = subprocess.run([sys.executable, "-c", CODE, *models], capture_output=True, text=True, timeout=600,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if " NEW " in ln]
    assert len(lines) == len(models), r.stdout
    assert all(ln.endswith("NEW {}") for ln in lines), "\n".join(lines)
