"""The cached HiFi-GAN streamer: every layer keeps its state, the streamed audio is the
offline audio at any chunking, for the V1, V2 and V3 layouts (narrowed), and its lag is the
structural one (never less than the perturbation-measured receptive field)."""
import pytest
import torch

from livewave.cached_streaming import CachedHiFiGANStreamer, CachedMelGANStreamer
from livewave.reference_vocoders import (
    HIFIGAN_VERSIONS,
    HiFiGANConfig,
    HiFiGANGenerator,
    MelGANReferenceConfig,
    MelGANReferenceGenerator,
    receptive_field,
)


def assert_streams_exactly(model, streamer, frames: int, splits) -> None:
    """Push the same mel in each split's chunks: whole hops, ``lag`` behind, the offline audio to 1e-10."""
    mel = torch.randn(1, 80, frames, dtype=torch.float64)
    with torch.no_grad():
        offline = model(mel)[0, 0]
        for split in splits:
            streamer.reset()
            parts, i = [], 0
            for n in split:
                parts.append(streamer.push(mel[:, :, i:i + n]))
                i += n
            y = torch.cat(parts, 2)[0, 0]
            assert y.shape[0] == (frames - streamer.lag) * model.hop
            assert (y - offline[:y.shape[0]]).abs().max() < 1e-10


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_streamed_equals_offline_at_any_chunking(version):
    cfg = HiFiGANConfig(**{**HIFIGAN_VERSIONS[version], "upsample_initial_channel": 32}).check()
    torch.manual_seed(0)
    model = HiFiGANGenerator(cfg).double().eval()
    with torch.no_grad():                        # trained-like weights: larger than the default init
        for p in model.parameters():
            p.mul_(2.0)
    s = CachedHiFiGANStreamer(model)
    assert_streams_exactly(model, s, 50, ([1] * 50, [7, 0, 3, 40], [50]))
    _, right = receptive_field(HiFiGANGenerator, cfg)
    assert right <= s.lag <= right + 1 and (s.lag - 1) * cfg.hop < s.lag_samples <= s.lag * cfg.hop


def test_reference_melgan_streams_exactly_with_reflection_padding():
    """The reference MelGAN's ReflectionPad1d layers: each layer waits for the samples its left
    reflection needs, then streams with cached context; the audio is the offline audio at any
    chunking, including a first push shorter than the first reflection."""
    cfg = MelGANReferenceConfig(ngf=8, n_residual_layers=3).check()
    torch.manual_seed(1)
    model = MelGANReferenceGenerator(cfg).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    s = CachedMelGANStreamer(model)
    assert_streams_exactly(model, s, 40, ([1] * 40, [2, 0, 5, 33], [40]))
    _, right = receptive_field(MelGANReferenceGenerator, cfg)
    assert right <= s.lag <= right + 1
