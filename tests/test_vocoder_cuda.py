"""The causal vocoders and a vocoder played from MIDI on CUDA: the streamed GPU output is the
CPU's. Runs where torch sees a GPU (skipped elsewhere; CI has none, the lent GPU machines do)."""
import numpy as np
import pytest
import torch
from test_midi_to_mel import EVENTS, tiny_midi2mel

from livewave.checkpoint import load_generator
from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.istft_vocoder import ISTFTConfig, ISTFTVocoder
from livewave.melgan import MelGANConfig, MelGANGenerator
from livewave.offline_render import render_events

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.mark.parametrize("make", [lambda: ISTFTVocoder(ISTFTConfig(n_mels=20, hop=64, n_fft=128, channels=32,
                                                                   blocks=3)),
                                  lambda: MelGANGenerator(MelGANConfig(n_mels=20, ngf=8, ratios=(4, 4, 2, 2)))])
def test_streamed_on_the_gpu_equals_offline_on_the_cpu(make):
    torch.manual_seed(0)
    m = make().eval()
    mel = torch.randn(1, 20, 40)
    with torch.inference_mode():
        ref = m(mel)
        m.cuda().reset()
        parts, i = [], 0
        for s in (1, 7, 2, 30):
            parts.append(m.step(mel[:, :, i:i + s].cuda()).cpu())
            i += s
    assert (torch.cat(parts, 2) - ref).abs().max() < 1e-4


def test_a_vocoder_played_from_midi_plays_the_same_on_the_gpu(tmp_path):
    path, _ = tiny_midi2mel(tmp_path)
    outs = []
    for device, block in (("cpu", 256), ("cuda", 256), ("cuda", 17)):
        eng = Engine(EngineConfig(sample_rate=48000, max_block=1024, polyphony=8, device=device),
                     load_generator(path)).prepare()
        assert eng.generator.device.startswith(device)
        outs.append(render_events(eng, EVENTS, 1.0, block=block, tail_s=0.6)[:, 0])
    assert np.abs(outs[0]).max() > 1e-4
    assert np.abs(outs[1] - outs[0]).max() < 1e-3
    assert np.abs(outs[2] - outs[1]).max() < 1e-5
