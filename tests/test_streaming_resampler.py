"""The streaming resampler (``streaming_resampler.Resampler``): its response (flat to 8 kHz at
22.05 kHz, aliases and images 100 dB down), its alignment and latency, the same samples at any
split, given evenly (the reason it replaced soxr's bursty stream), and clear errors."""
from pathlib import Path

import numpy as np
import pytest

from livewave.checkpoint import load_generator
from livewave.streaming_resampler import HALF_WIDTH, Resampler

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [(48000, 22050), (22050, 48000), (44100, 22050), (192000, 22050), (22050, 96000), (8000, 44100)]


def tone(in_rate: int, out_rate: int, f: float) -> tuple[float | None, float]:
    """(gain of a sine at ``f`` in dB or None above the output's Nyquist, the loudest other
    component in dB), from one second of output (bin-aligned) after a quarter second."""
    t = np.arange(2 * in_rate) / in_rate
    y = Resampler(in_rate, out_rate).process(np.sin(2 * np.pi * f * t).astype(np.float32))
    y = y[out_rate // 4:out_rate // 4 + out_rate].astype(np.float64)
    w = np.hanning(y.size)
    sp = np.abs(np.fft.rfft(y * w)) / (w.sum() / 2)
    gain = None
    if f < out_rate / 2:
        k = int(round(f))
        gain = 20 * np.log10(sp[k - 3:k + 4].max())
        sp[k - 6:k + 7] = 0.0
    return gain, 20 * np.log10(sp.max())


@pytest.mark.parametrize("pair", [(48000, 22050), (22050, 48000)])
def test_the_response_is_flat_to_8_khz_and_aliases_are_100_db_down(pair):
    for f in (100, 1000, 4000, 8000):
        gain, other = tone(*pair, f)
        assert abs(gain) < 0.01 and other < -100, (f, gain, other)
    assert -7.0 < tone(*pair, 9500)[0] < -5.0           # the cutoff, as soxr LQ's (-10 dB there)
    for f in (10500, 10900):
        assert tone(*pair, f)[0] < -38
    if pair[0] > pair[1]:
        for f in (11500, 14000, 20000):                 # folded into the band: aliases
            assert tone(*pair, f)[1] < -100, f


@pytest.mark.parametrize("pair", PAIRS)
def test_an_impulse_lands_where_it_was_and_any_split_gives_the_same_samples(pair):
    a, b = pair
    x = np.zeros(a, np.float32)
    x[1000] = 1.0
    whole = Resampler(a, b).process(x).copy()
    assert abs(int(np.argmax(whole)) - 1000 * b / a) <= 0.5
    rng = np.random.default_rng(a + b)
    r, parts, i = Resampler(a, b), [], 0
    while i < x.size:
        n = int(rng.integers(1, 700))
        parts.append(r.process(x[i:i + n]).copy())
        i += n
    split = np.concatenate(parts)
    assert np.array_equal(split, whole)
    r.reset()
    assert np.array_equal(r.process(x), whole)          # reset: a new stream


@pytest.mark.parametrize("pair", PAIRS)
def test_output_comes_evenly_and_waits_only_for_the_filter(pair):
    """Every call of ``m`` samples gives ``m * out / in`` samples, rounded either way; output
    ``n`` comes as soon as the input reaches ``n * in / out`` plus the filter's half-width."""
    a, b = pair
    r = Resampler(a, b)
    assert r.latency == int(np.ceil(HALF_WIDTH * max(1.0, a / b)))
    got = fed = 0
    for m in [64] * 200 + [1] * 50 + [17] * 50:
        n = r.process(np.zeros(m, np.float32)).shape[0]
        fed += m
        if fed - m > r.latency:          # past the first wait
            assert abs(n - m * b / a) < 1.0 + 1e-9, (m, n)
        got += n
        # outputs 0 .. got - 1 are out: the next one's input position plus the filter is not in
        assert got == 0 or (got - 1) * a // b + r.latency <= fed - 1
        assert fed - 1 < got * a // b + r.latency


def test_it_allocates_nothing_per_call_and_the_identity_is_a_pass_through():
    r = Resampler(48000, 22050)
    x = np.ones(256, np.float32)
    assert np.shares_memory(r.process(x), r.out)
    same = Resampler(48000, 48000)
    assert same.process(x) is x and same.latency == 0


def test_bad_rates_are_clear_errors():
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 48000)
    with pytest.raises(ValueError, match="common divisor"):
        Resampler(96001, 192000)


def test_a_vocoder_played_from_audio_in_waits_for_its_frames_not_for_bursts():
    """With soxr's bursts the shipped iSTFT vocoder's chain at 48 kHz needed 32.8 ms of delay
    (44.4 ms with its one hop of content delay); a frame's worth (11.6 ms) plus both filters is
    what it needs now."""
    g = load_generator(ROOT / "models" / "istft-fluidr3.safetensors")
    g.prepare(48000, 64, 1, "cpu")
    chain = g.info.lookahead - round(g.content_delay * 48000 / g.info.sample_rate)
    assert chain / 48 < 15.0, f"the chain's delay is {chain / 48:.1f} ms"
