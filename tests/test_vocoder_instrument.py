"""The MelGAN family driven by audio in: the output does not depend on the block size, and
the declared lookahead is the delay line's."""
import numpy as np
import torch

from livewave.generator import Conditioning
from livewave.melgan import MelGANConfig, MelGANGenerator
from livewave.vocoder_instrument import MelGANVocoder


def take(block: int, x: np.ndarray) -> np.ndarray:
    torch.manual_seed(0)
    g = MelGANGenerator(MelGANConfig(n_mels=20, ngf=4, ratios=(4, 4, 2, 2), sample_rate=22050))
    v = MelGANVocoder(g, {"n_mels": 20, "hop": 64})
    v.prepare(48000, 512, 1)
    cond = Conditioning(1, 512, 1, 1)
    out = np.zeros(x.size, np.float32)
    for i in range(0, x.size, block):
        n = min(block, x.size - i)
        cond.frames, cond.audio_in_offset = n, 0
        cond.audio_in[:n, 0] = x[i:i + n]
        v.render(cond, out[i:i + n])
    assert v.line.underflows == 0 and v.info.lookahead == v.line.delay > 0
    return out


def test_the_output_does_not_depend_on_the_block_size():
    t = np.arange(48000) / 48000
    x = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    x[1000] = np.nan                                     # bad input: silence there, not a crash
    a, b = take(17, x), take(256, x)
    assert np.isfinite(a).all() and np.abs(a).max() > 1e-4
    assert np.allclose(a, b, atol=1e-6)
