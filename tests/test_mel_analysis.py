"""The Numba log-mel analysis: its FFT, its filterbank, and streaming equal to a numpy
reference at any block size."""
import numpy as np
import pytest

from livewave.mel_analysis import (
    MelStream,
    analyse,
    fft_magnitude,
    fft_tables,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
)

SR = 22050


def reference(x, n_fft=1024, hop=256, n_mels=80, floor=1e-5, fmax=None):
    """numpy: causal frames ending at (t+1)*hop, periodic Hann, rfft magnitude, mel, ln."""
    padded = np.concatenate([np.zeros(n_fft - hop), x.astype(np.float64)])
    n = x.shape[0] // hop
    frames = np.stack([padded[t * hop:t * hop + n_fft] for t in range(n)])
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    mag = np.abs(np.fft.rfft(frames * win, axis=1))
    fb = mel_filterbank(SR, n_fft, n_mels, 0.0, fmax).astype(np.float64)
    return np.log(np.maximum(floor, mag @ fb.T))


@pytest.mark.parametrize("n", [2, 16, 256, 1024])
def test_the_numba_fft_matches_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n)
    win = np.hanning(n)
    rev, tw = fft_tables(n)
    mag = np.zeros(n // 2 + 1)
    fft_magnitude(x, win, rev, tw, np.zeros(n), np.zeros(n), mag)
    assert np.allclose(mag, np.abs(np.fft.rfft(x * win)), atol=1e-9 * n)
    with pytest.raises(ValueError, match="power of two"):
        fft_tables(1000)


def test_the_mel_scale_and_filterbank_are_slaneys():
    assert hz_to_mel(1000.0) == pytest.approx(15.0) and hz_to_mel(200.0) == pytest.approx(3.0)
    f = np.array([50.0, 700.0, 1000.0, 3000.0, 11025.0])
    assert np.allclose(mel_to_hz(hz_to_mel(f)), f)
    fb = mel_filterbank(SR, 1024, 80)
    assert fb.shape == (80, 513) and (fb >= 0).all()
    df = SR / 1024
    area = fb.sum(axis=1) * df
    assert np.allclose(area[20:], 1.0, rtol=0.05)          # area-normalised (wide bands: sampled finely)
    assert abs(np.median(area[20:]) - 1.0) < 0.01
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > 480
    with pytest.raises(ValueError, match="fmin < fmax"):
        mel_filterbank(SR, 1024, 80, fmin=9000, fmax=8000)


@pytest.mark.parametrize("block", [1, 7, 64, 255, 256, 1000, 4097])
def test_streaming_equals_the_numpy_reference_at_any_block_size(block):
    rng = np.random.default_rng(block)
    x = (0.3 * rng.standard_normal(SR // 2)).astype(np.float32)
    ref = reference(x)
    st = MelStream(SR, max_block=8192)
    got = np.concatenate([st.push(x[i:i + block]).copy() for i in range(0, x.shape[0], block)])
    assert got.shape == ref.shape == (x.shape[0] // 256, 80)
    assert np.abs(got - ref).max() < 1e-4
    assert np.array_equal(analyse(x, SR), got)


def test_a_tone_lights_its_band_and_silence_sits_on_the_floor():
    t = np.arange(SR) / SR
    mel = analyse(0.5 * np.sin(2 * np.pi * 1000.0 * t), SR, fmax=8000.0)
    centres = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), 82))[1:-1]
    assert abs(centres[mel[10:].mean(axis=0).argmax()] - 1000.0) < 60.0
    quiet = analyse(np.zeros(4096, np.float32), SR, log10=True)
    assert np.allclose(quiet, -5.0)
    with pytest.raises(ValueError, match="mono"):
        MelStream(SR).push(np.zeros((64, 2), np.float32))
