"""A-weighted frame loudness against exact signals: level of sines, the A-curve, silence, framing."""
import numpy as np
import pytest

from livewave.loudness import a_weighting_db, frame_loudness, window_size


def sine(freq, amp, sr, seconds=1.0):
    return amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)


def test_a_weighting_matches_the_standard_table():
    # IEC 61672-1 table (dB) at the exact base-ten band frequencies 1000 * 10^(n/10)
    table = {-15: -39.4, -12: -26.2, -10: -19.1, -6: -8.6, -3: -3.2, 0: 0.0, 3: 1.2,
             6: 1.0, 9: -1.1, 12: -6.6}
    got = a_weighting_db([1000 * 10 ** (n / 10) for n in table])
    assert np.allclose(got, list(table.values()), atol=0.1)
    assert a_weighting_db(1000.0) == pytest.approx(0.0, abs=1e-9)
    assert a_weighting_db(0.0) == -np.inf


@pytest.mark.parametrize("sr", [16000, 22050, 48000])
def test_sine_at_1khz_reads_its_rms_level(sr):
    hop = round(0.004 * sr)
    for amp in (1.0, 0.5, 0.1, 0.01, 0.001):
        ld = frame_loudness(sine(1000, amp, sr), sr, hop)
        inner = ld[20:-20]
        assert np.all(np.abs(inner - 20 * np.log10(amp / np.sqrt(2))) < 0.5), (sr, amp, inner.min(), inner.max())


def test_low_tone_reads_about_19_db_lower():
    sr, hop = 16000, 64
    l1k = np.median(frame_loudness(sine(1000, 0.3, sr), sr, hop)[20:-20])
    l100 = np.median(frame_loudness(sine(100, 0.3, sr), sr, hop)[20:-20])
    assert 17.5 < l1k - l100 < 20.5


def test_silence_reads_the_floor_and_framing_is_centred():
    sr, hop = 16000, 64
    assert window_size(sr) == 512
    ld = frame_loudness(np.zeros(10000), sr, hop)
    assert ld.dtype == np.float32 and ld.shape == (10000 // hop,) and np.all(ld == -100.0)
    # a burst starting at sample 6400 = frame 100: frame k sees it once k*hop + 256 > 6400
    x = np.zeros(16000)
    x[6400:] = sine(1000, 0.5, sr)[:16000 - 6400]
    ld = frame_loudness(x, sr, hop)
    assert ld[95] == -100.0 and ld[97] > -60.0 and abs(ld[100] - ld[140]) < 8.0
    assert abs(ld[104] - (20 * np.log10(0.5 / np.sqrt(2)))) < 0.5


def test_long_audio_is_handled_in_chunks():
    sr, hop = 16000, 64
    x = np.tile(sine(1000, 0.25, sr), 40)            # 40 s: several chunks of frames
    ld = frame_loudness(x, sr, hop)
    assert ld.shape == (len(x) // hop,)
    assert np.ptp(ld[10:-10]) < 0.01
