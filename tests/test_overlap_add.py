"""The shared overlap-add (livewave/overlap_add.py): an exact inverse STFT, streamed exactly."""
import math

import numpy as np
import pytest
import torch

from livewave.overlap_add import OverlapAdd


def _hann(n_fft):
    n = torch.arange(n_fft, dtype=torch.float64)
    return 0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)


def _exact(n_fft, hop):
    w = _hann(n_fft)
    return OverlapAdd(n_fft, hop, w, 1.0 / (w ** 2).reshape(-1, hop).sum(0))


def _stft(x, n_fft, hop, frames):
    """Frame t: the Hann FFT of x[t * hop : t * hop + n_fft]."""
    w = _hann(n_fft)
    return torch.stack([torch.fft.rfft(x[:, t * hop:t * hop + n_fft] * w, dim=1) for t in range(frames)], dim=2)


@pytest.mark.parametrize("n_fft,hop", [(512, 256), (1024, 256), (64, 16)])
def test_the_window_sum_gain_makes_it_the_exact_inverse_of_a_hann_stft(n_fft, hop):
    rng = np.random.default_rng(0)
    frames = 30
    x = torch.from_numpy(rng.standard_normal((2, (frames - 1) * hop + n_fft)))
    y = _exact(n_fft, hop)(_stft(x, n_fft, hop, frames))
    assert y.shape == (2, frames * hop)
    # every sample that all its frames reach (the first n_fft - hop have fewer) comes back
    assert torch.allclose(y[:, n_fft - hop:], x[:, n_fft - hop:frames * hop], atol=1e-10)
    # and the start is short only by the frames that are not there: off by more than rounding
    assert (y[:, :hop] - x[:, :hop]).abs().max() > 1e-3


@pytest.mark.parametrize("splits", [[1] * 12, [3, 1, 5, 3], [12], [2, 0, 10]])
def test_steps_concatenated_equal_the_offline_render(splits):
    rng = np.random.default_rng(1)
    n_fft, hop, frames = 256, 64, 12
    spec = torch.from_numpy(rng.standard_normal((1, n_fft // 2 + 1, frames))
                            + 1j * rng.standard_normal((1, n_fft // 2 + 1, frames)))
    for ola in (_exact(n_fft, hop), OverlapAdd(n_fft, hop, _hann(n_fft) * (2 * hop / n_fft))):
        want = ola(spec)
        ola.reset()
        got, at = [], 0
        for k in splits:
            got.append(ola.step(spec[:, :, at:at + k]))
            at += k
        assert torch.allclose(torch.cat(got, dim=1), want, atol=1e-12, rtol=0)


def test_a_step_never_writes_into_the_tail_it_carried():
    """istft_vocoder's save_stream keeps the tail by reference and puts it back."""
    rng = np.random.default_rng(2)
    ola = _exact(128, 32)
    spec = torch.from_numpy(rng.standard_normal((1, 65, 8)) + 1j * rng.standard_normal((1, 65, 8)))
    ola.step(spec[:, :, :4])
    kept = ola.tail
    copy = kept.clone()
    first = ola.step(spec[:, :, 4:])
    assert torch.equal(kept, copy)
    ola.tail = kept
    assert torch.equal(ola.step(spec[:, :, 4:]), first)


def test_bad_shapes_are_refused():
    w = _hann(64)
    with pytest.raises(ValueError, match="multiple of hop"):
        OverlapAdd(64, 24, w)
    with pytest.raises(ValueError, match="multiple of hop"):
        OverlapAdd(64, 64, w)
    with pytest.raises(ValueError, match="window of shape"):
        OverlapAdd(64, 16, w[:32])
    with pytest.raises(ValueError, match="gain of shape"):
        OverlapAdd(64, 16, w, torch.ones(8))
    with pytest.raises(ValueError, match="20 bins; need 33"):
        OverlapAdd(64, 16, w)(torch.zeros(1, 20, 3, dtype=torch.complex128))


def test_hann_inverse_is_the_window_and_gain_of_the_exact_inverse():
    from livewave.overlap_add import hann_inverse
    window, gain = hann_inverse(512, 128, scale=2.0)
    w = _hann(512)
    assert torch.allclose(window.double(), 2.0 * w, atol=1e-6)
    assert torch.allclose(gain.double(), 1.0 / (w ** 2).reshape(-1, 128).sum(0), rtol=1e-6)
    with pytest.raises(ValueError, match="at least two hops"):
        hann_inverse(512, 384)
