"""The iSTFT vocoder's level bound (``istft_vocoder``, Level): no frame carries more energy than
the input frame it renders (audio in) or within ``exp(LEVEL_HEADROOM)`` of what its mel
allows (a mel alone, or a host's harmonic reference, whose level means nothing); it only ever
scales down and streams exactly. And the shipped vocoder no longer
bursts when a loud tone follows silence (it did: 32 times full scale)."""
import math

import numpy as np
import pytest
import torch
from shipped import MODELS, shipped
from test_istft_vocoder import tiny
from test_vocoder_instrument import stream_through

from livewave.istft_vocoder import LEVEL_HEADROOM, SOURCE_HEADROOM
from livewave.mel_analysis import mel_filterbank
from livewave.vocoder_instrument import ISTFTVocoderInstrument


def loud_tiny(bias: float):
    """A tiny source-phase model whose log-magnitudes sit near ``bias``: e^8 is far over any
    source, e^-12 far under."""
    m = tiny(phase="source")
    with torch.no_grad():
        m.head.bias[:65] = bias
    m.set_level_reference(mel_filterbank(22050, 128, 20))
    return m


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(2, 20, 40, generator=g) - 3.0
    src = torch.complex(torch.randn(2, 65, 40, generator=g), torch.randn(2, 65, 40, generator=g))
    src[:, :, 7] = 0                                # a silent source frame
    return mel, src


def test_every_frame_stays_within_its_sources_energy_or_its_mels_level():
    m = loud_tiny(8.0)
    mel, src = inputs()
    with torch.no_grad():
        mag, _ = m.spectrum(mel, source=src, source_level=True)
        have, want = (mag ** 2).sum(1), (src.abs() ** 2).sum(1)
        assert (have <= want * math.exp(2 * SOURCE_HEADROOM) * (1 + 1e-4)).all()
        assert (have >= want * math.exp(2 * SOURCE_HEADROOM) * (1 - 1e-4)).all()   # loud: held at the bound
        assert mag[:, :, 7].abs().max() == 0                                       # silent in, silent out
        for source in (None, src):           # a mel alone, or a host's reference (phases only)
            mag, _ = m.spectrum(mel, source=source)
            made = torch.einsum("mk,bkt->bt", m.level_fb, mag)
            assert (made <= torch.exp(mel).sum(1) * math.exp(LEVEL_HEADROOM) * (1 + 1e-4)).all()
            assert mag[:, :, 7].abs().max() > 0


def test_the_bound_only_ever_scales_down():
    m = loud_tiny(-12.0)
    mel, src = inputs()
    src[:, :, 7] = 1e-3                             # quiet, not silent (a silent source silences)
    with torch.no_grad():
        free = tiny(phase="source")
        free.load_state_dict(m.state_dict())
        assert torch.equal(m.spectrum(mel, source=src, source_level=True)[0], free.spectrum(mel, source=src)[0])
        assert torch.equal(m.spectrum(mel)[0], free.spectrum(mel)[0])
        assert (m.frame_gains(mel, free.spectrum(mel)[0] * 1e9) < 0.1).all()


@pytest.mark.parametrize("source_level", [True, False])
def test_the_bounded_model_streams_exactly(source_level):
    m = loud_tiny(3.0)
    mel, src = inputs(1)
    with torch.no_grad():
        off = m(mel, source=src, source_level=source_level)
        for split in ([1] * 40, [3, 17, 20], [40]):
            m.reset()
            parts, i = [], 0
            for s in split:
                parts.append(m.step(mel[:, :, i:i + s], src[:, :, i:i + s], source_level=source_level))
                i += s
            assert (torch.cat(parts, 2) - off).abs().max() < 1e-5 * max(1.0, float(off.abs().max()))


def test_a_hosts_source_sets_the_phases_not_the_level():
    m = loud_tiny(8.0)
    v = ISTFTVocoderInstrument(m, {"n_mels": 20, "hop": 64, "n_fft": 256}, name="lvl")
    assert v.model.level_fb is not None
    v.prepare(48000, 256, 1)
    mel, src = inputs(2)
    with torch.no_grad():
        a = v.synthesize(mel[:1], v.default_controls(), src[:1]).clone()
        v.reset_model()
        b = v.synthesize(mel[:1], v.default_controls(), 1000.0 * src[:1])
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not shipped("istft"), reason="no shipped iSTFT vocoder")
@pytest.mark.parametrize("f0", [440.0, 880.0])
def test_the_shipped_vocoder_does_not_burst_when_a_loud_tone_follows_silence(f0):
    """A sawtooth at 0.8 after half a second of silence, through the shipped model as audio in
    at 48 kHz: before the bound its first frames reached 32 (440 Hz) and 14 (880 Hz) times full
    scale (22.05 kHz, 2026-12-02); now within twice the input's peak (the vocoder's waveform is
    its own), and it sustains no louder than the input (plus the resamplers' ripple)."""
    from livewave.checkpoint import load_generator
    from livewave.onset_burst import sawtooth
    sr = 48000
    saw = sawtooth(np.arange(sr) / sr, f0, 0.8, 22050).astype(np.float32)    # partials the model's band holds
    x = np.concatenate([np.zeros(sr // 2, np.float32), saw])
    y = stream_through(load_generator(MODELS / "istft-fluidr3.safetensors"), x, 256)
    assert np.isfinite(y).all()
    assert np.abs(y).max() < 2.0 * np.abs(saw).max()
    steady = y[sr: sr + sr // 2]
    assert np.sqrt((steady ** 2).mean()) < 1.1 * np.sqrt((saw ** 2).mean())


def test_the_onset_measure_reads_the_level_of_what_comes_out_against_what_went_in():
    from livewave.onset_burst import SILENCE_SECONDS, onset_figures, onset_signals
    rate = 8000
    same = onset_figures(lambda x: x, rate)
    assert set(same) == set(onset_signals(rate))
    assert all(0.9 <= peak <= 1.0 and rms == 1.0 for peak, rms in same.values())   # noise peaks later

    def burst(x):               # twice as loud, and a spike of 10 at the onset
        y = 2.0 * x
        y[int(SILENCE_SECONDS * rate) + 50] = 10.0 * np.abs(x).max()
        return y
    for peak, rms in onset_figures(burst, rate).values():
        assert peak == 10.0 and rms == 2.0
    assert all(v == (float("inf"),) * 2 for v in onset_figures(lambda x: x * np.nan, rate).values())
