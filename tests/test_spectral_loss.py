"""Multi-scale spectral distance: zero on equality, monotone in the damage, symmetric, differentiable."""
import numpy as np
import torch

from livewave.spectral_loss import multiscale_spectral_distance, scaled_fft_sizes, spectral_distance_np

SR = 16000


def tone(f0, seconds=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8))


def test_zero_for_identical_signals():
    x = torch.from_numpy(tone(220.0))
    assert multiscale_spectral_distance(x, x.clone()).item() == 0.0
    assert spectral_distance_np(np.zeros(1000), np.zeros(1000)) == 0.0


def test_grows_with_noise_and_with_pitch_shift():
    x = tone(220.0)
    noise = np.random.default_rng(0).normal(size=x.shape)
    d_noise = [spectral_distance_np(x, x + a * noise) for a in (0.001, 0.01, 0.1)]
    assert 0.0 < d_noise[0] < d_noise[1] < d_noise[2], d_noise
    d_pitch = [spectral_distance_np(x, tone(220.0 * 2 ** (c / 1200))) for c in (5, 50, 300)]
    assert 0.0 < d_pitch[0] < d_pitch[1] < d_pitch[2], d_pitch


def test_symmetric_batched_and_same_number_as_numpy():
    g = np.random.default_rng(1)
    x, y = g.normal(size=(3, 4000)), g.normal(size=(3, 4000))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    d = multiscale_spectral_distance(xt, yt)
    assert d.ndim == 0 and d.item() > 0
    assert d.item() == multiscale_spectral_distance(yt, xt).item()
    assert d.item() == spectral_distance_np(x, y) == spectral_distance_np(x, y, sample_rate=SR)
    one = [multiscale_spectral_distance(xt[i], yt[i]).item() for i in range(3)]
    assert abs(np.mean(one) - d.item()) < 1e-12       # batch = mean over items (equal lengths)
    short = spectral_distance_np(x[0, :100], y[0, :100])   # shorter than the largest FFT
    assert np.isfinite(short) and short > 0
    assert scaled_fft_sizes(48000)[:2] == (8192, 4096) and scaled_fft_sizes(SR) == (2048, 1024, 512, 256, 128, 64)


def test_differentiable():
    target = torch.from_numpy(tone(220.0, 0.25)).float()
    x = torch.zeros_like(target, requires_grad=True)        # silence: |STFT| = 0 must not give NaN
    multiscale_spectral_distance(x, target).backward()
    assert torch.isfinite(x.grad).all()                     # (zero there, as for any magnitude loss)
    x = (1e-3 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
    multiscale_spectral_distance(x, target).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # Gradient steps on the level of a too-quiet copy bring it closer.
    gain = torch.tensor(0.3, requires_grad=True)
    opt = torch.optim.Adam([gain], lr=0.05)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = multiscale_spectral_distance(gain * target, target)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    assert losses[-1] < 0.8 * losses[0] and gain.item() > 0.45, (losses, gain.item())


def test_the_low_band_distance_sees_a_frame_rate_line_that_the_log_mel_l1_barely_does():
    """A 110 Hz tone with a line at the frame rate (86.1 Hz, hop 256 at 22.05 kHz) 16 dB under
    it, the fault the mel term taught the flow: the fine low band scores it many times its
    share of the log-mel L1, and its gradient reaches the signal."""
    from livewave.spectral_loss import log_mel_distance, low_band_distance
    sr, n = 22050, 8192
    t = np.arange(n) / sr
    real = torch.from_numpy(tone(110.0, n / sr, sr))
    line = torch.from_numpy(0.3 * 10 ** (-16 / 20) * np.sin(2 * np.pi * sr / 256 * t))
    assert low_band_distance(real, real.clone(), sr).item() == 0.0
    low = low_band_distance(real + line, real, sr).item()
    mel = log_mel_distance(real + line, real, sr).item()
    assert low > 0.05 and low > 3 * mel, (low, mel)
    above = low_band_distance(real + torch.from_numpy(0.05 * np.sin(2 * np.pi * 2000.0 * t)), real, sr).item()
    assert above < 1e-6                                    # over 500 Hz: not its business
    x = (real + line).clone().requires_grad_(True)
    low_band_distance(x, real, sr).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
