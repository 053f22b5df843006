"""The GAN vocoders' discriminators and losses, and a few GAN steps that must learn."""
import numpy as np
import pytest
import torch

from livewave.gan_discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)


def test_multi_scale_discriminator_sees_three_rates():
    d = MultiScaleDiscriminator(channels=4, max_channels=64)
    scores, feats = d(torch.randn(2, 1, 4096))
    assert len(scores) == len(feats) == 3
    assert [len(f) for f in feats] == [7, 7, 7]
    # each scale halves the rate; the strided convs divide by 4**4
    assert [s.shape[-1] for s in scores] == [16, 8, 4]


def test_multi_period_discriminator_folds_by_period():
    d = MultiPeriodDiscriminator(channels=(4, 8, 16, 16))
    scores, feats = d(torch.randn(2, 1, 1000))
    assert len(scores) == 5 and all(len(f) == 6 for f in feats)
    for p, f in zip((2, 3, 5, 7, 11), feats, strict=True):
        assert f[0].shape[-1] == p          # [batch, channels, frames, period]


def test_losses_are_zero_where_they_should_be():
    one, zero = [torch.ones(3, 5)], [torch.zeros(3, 5)]
    assert discriminator_loss(one, zero).item() == 0.0
    assert discriminator_loss(zero, one).item() == pytest.approx(2.0)
    assert generator_adversarial_loss(one).item() == 0.0
    assert discriminator_loss([torch.full((2,), 1.5)], [torch.full((2,), -1.5)], hinge=True).item() == 0.0
    f = [[torch.randn(2, 3), torch.randn(2, 4)]]
    assert feature_matching_loss(f, f).item() == 0.0
    g = [[x + 1.0 for x in f[0]]]
    assert feature_matching_loss(f, g).item() == pytest.approx(1.0)


def test_a_few_gan_steps_move_a_tiny_melgan_towards_its_target():
    """Copy synthesis of one fixed clip (a 330 Hz tone with harmonics) by a tiny MelGAN under
    the full vocoder objective (spectral + adversarial + feature matching): the spectral
    distance must fall well below where it starts."""
    from livewave.mel_analysis import analyse
    from livewave.melgan import MelGANConfig, MelGANGenerator
    from livewave.spectral_loss import multiscale_spectral_distance
    torch.manual_seed(0)
    sr, n = 22050, 8192
    t = np.arange(n) / sr
    target = sum(0.3 / k * np.sin(2 * np.pi * 330 * k * t) for k in (1, 2, 3)).astype(np.float32)
    mel = torch.from_numpy(analyse(target, sr, n_mels=40).T[None])          # [1, 40, frames]
    y = torch.from_numpy(target)[None, None, :mel.shape[2] * 256]
    g = MelGANGenerator(MelGANConfig(n_mels=40, ngf=8, ratios=(8, 8, 4), n_residual_layers=2))
    d = MultiScaleDiscriminator(channels=4, max_channels=32)
    opt_g = torch.optim.Adam(g.parameters(), 2e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.5, 0.9))
    sizes = (1024, 512, 256, 128)

    def spectral(x):
        return multiscale_spectral_distance(x[:, 0], y[:, 0], fft_sizes=sizes)
    with torch.no_grad():
        start = spectral(g(mel)).item()
    for _ in range(60):
        fake = g(mel)
        s_real, _ = d(y)
        s_fake, _ = d(fake.detach())
        opt_d.zero_grad()
        discriminator_loss(s_real, s_fake).backward()
        opt_d.step()
        s_fake, f_fake = d(fake)
        _, f_real = d(y)
        loss = spectral(fake) + 0.1 * generator_adversarial_loss(s_fake) + feature_matching_loss(f_real, f_fake)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
    with torch.no_grad():
        end = spectral(g(mel)).item()
    print(f"spectral distance {start:.3f} -> {end:.3f}")
    assert end < 0.6 * start
