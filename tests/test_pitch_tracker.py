"""YIN on exact signals: harmonic tones across the range at two rates, vibrato (no lag),
silence and noise unvoiced, filling gaps, speed."""
import time

import numpy as np
import pytest

from livewave.pitch_tracker import fill_unvoiced, yin


def harmonic(f0, sr, seconds=1.0, harmonics=8):
    """Band-limited: 8 harmonics with decaying amplitudes (those under Nyquist)."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = np.broadcast_to(f0, t.shape)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(0.7 ** h * np.sin((h + 1) * phase + 0.4 * h) * ((h + 1) * f0 < 0.45 * sr) for h in range(harmonics))
    return 0.3 * x / np.abs(x).max()


def midi_hz(m):
    return 440.0 * 2 ** ((m - 69) / 12)


@pytest.mark.parametrize("sr", [16000, 22050])
@pytest.mark.parametrize("note", [36, 57, 69, 84, 96])
def test_harmonic_tones_within_10_cents(sr, note):
    hop = round(0.004 * sr)
    f = midi_hz(note)
    f0, per = yin(harmonic(f, sr), sr, hop, fmax=2500.0)
    assert f0.dtype == np.float32 and per.dtype == np.float32 and f0.shape == (sr // hop,)
    inner = f0[15:-15]
    assert np.all(inner > 0), "voiced frames away from the edges"
    cents = 1200 * np.log2(inner / f)
    assert np.abs(cents).max() < 10.0, np.abs(cents).max()
    assert per[15:-15].min() > 0.85


def test_vibrato_is_tracked_without_lag():
    sr, hop = 16000, 64
    t = np.arange(2 * sr) / sr
    f = 330 * 2 ** (60 * np.sin(2 * np.pi * 6 * t) / 1200)       # +-60 cents at 6 Hz
    f0, _ = yin(harmonic(f, sr, 2.0), sr, hop)
    truth = f[::hop][:len(f0)]
    err = 1200 * np.log2(f0[20:-20] / truth[20:-20])
    assert np.abs(err).max() < 8.0, np.abs(err).max()


def test_silence_and_noise_are_unvoiced():
    sr, hop = 16000, 64
    f0, per = yin(np.zeros(sr), sr, hop)
    assert np.all(f0 == 0) and np.all(per == 0)
    noise = 0.3 * np.random.default_rng(1).standard_normal(2 * sr)
    f0, per = yin(noise, sr, hop)
    assert (f0 > 0).mean() < 0.01
    assert np.median(per) < 0.5


def test_fill_unvoiced_holds_and_interpolates_in_cents():
    f0 = np.array([0, 0, 200, 0, 0, 0, 400, 400, 0, 0], np.float32)
    out = fill_unvoiced(f0, f0 > 0)
    assert np.all(out[:3] == 200) and np.all(out[-4:] == 400)
    assert np.allclose(out[2:7], 200 * 2 ** (np.arange(5) / 4), rtol=1e-5)   # geometric steps
    with pytest.raises(ValueError, match="no voiced"):
        fill_unvoiced(np.zeros(5), np.zeros(5, bool))


def test_speed_a_minute_well_under_ten_seconds():
    sr, hop = 16000, 64
    x = harmonic(220.0, sr, 30.0) + 0.01 * np.random.default_rng(0).standard_normal(30 * sr)
    yin(x[:sr], sr, hop)                         # warm up
    t0 = time.process_time()
    f0, _ = yin(x, sr, hop)
    el = time.process_time() - t0
    assert el < 5.0, f"30 s of audio took {el:.1f} s of CPU"
    assert np.abs(1200 * np.log2(f0[20:-20] / 220.0)).max() < 5
