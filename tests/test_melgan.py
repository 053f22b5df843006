"""The causal MelGAN generator: streamed output equals offline output at any block size."""
import pytest
import torch

from livewave.melgan import MelGANConfig, MelGANGenerator


def small() -> MelGANGenerator:
    torch.manual_seed(1)
    return MelGANGenerator(MelGANConfig(n_mels=20, ngf=8, ratios=(4, 4, 2), n_residual_layers=3)).eval()


def test_the_reference_hyper_parameters_give_the_reference_size():
    g = MelGANGenerator()
    assert g.hop == 256
    assert g.parameter_count() == pytest.approx(4.26e6, rel=0.01)


@pytest.mark.parametrize("frames_per_block", [1, 2, 3, 7, 16, 33])
def test_streamed_equals_offline_at_any_block_size(frames_per_block):
    g = small()
    mel = torch.randn(1, 20, 66)
    with torch.no_grad():
        ref = g(mel)
        assert ref.shape == (1, 1, 66 * g.hop)
        g.reset()
        out = torch.cat([g.step(mel[:, :, i:i + frames_per_block]) for i in range(0, 66, frames_per_block)], dim=2)
    err = (out - ref).abs().max().item()
    assert err < 1e-5, err
    assert ref.abs().max() > 1e-3                  # not trivially silent


def test_causal_no_sample_depends_on_a_later_frame():
    g = small()
    mel = torch.randn(1, 20, 40)
    mel2 = mel.clone()
    mel2[:, :, 25:] += torch.randn(1, 20, 15)
    with torch.no_grad():
        a, b = g(mel), g(mel2)
    assert torch.equal(a[:, :, :25 * g.hop], b[:, :, :25 * g.hop])
    assert not torch.equal(a[:, :, 25 * g.hop:], b[:, :, 25 * g.hop:])


def test_bad_mel_and_bad_config_are_refused_clearly():
    g = small()
    with pytest.raises(ValueError, match=r"\[batch, 20 bands, frames\]"):
        g(torch.zeros(1, 80, 10))
    with pytest.raises(ValueError, match="ratios"):
        MelGANConfig(ratios=(8, 0)).check()
    with pytest.raises(ValueError, match="ngf"):
        MelGANConfig(ngf=0).check()
    assert MelGANConfig.from_dict(MelGANConfig().to_dict()) == MelGANConfig()
