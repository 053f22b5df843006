"""The excitation a flow vocoder is driven by (``source_excitation``): its source's phases, in
time, without its level, one ``n_fft - hop`` late; streamed as rendered."""
import numpy as np
import torch

from livewave.source_excitation import Excitation
from livewave.source_phase import source_spectrum

N_FFT, HOP, RATE = 512, 256, 22050


def excite(x: np.ndarray) -> np.ndarray:
    frames = x.size // HOP
    spec = source_spectrum(torch.from_numpy(x.astype(np.float32))[None], N_FFT, HOP)[:, :, :frames]
    return Excitation(N_FFT, HOP)(spec)[0].numpy()


def test_a_note_excites_at_its_pitch_in_step_with_its_source_and_at_any_level():
    t = np.arange(RATE) / RATE
    loud = sum(0.5 / k * np.sin(2 * np.pi * 220 * k * t + k) for k in range(1, 6))
    a, b = excite(loud), excite(0.01 * loud)
    assert np.abs(a - b).max() < 1e-3 * np.abs(a).max()          # the level is the mel's, not the excitation's
    spec = np.abs(np.fft.rfft(a[RATE // 4:] * np.hanning(a.size - RATE // 4)))
    f = np.fft.rfftfreq(a.size - RATE // 4, 1 / RATE)
    assert abs(f[np.argmax(spec)] - 220) < 3
    # in step: one n_fft - hop behind the source, phase for phase
    lag = np.arange(-300, 300)
    mid = slice(RATE // 4, 3 * RATE // 4)
    xc = [float(np.dot(a[mid], np.roll(loud, k)[mid])) for k in lag]
    assert lag[int(np.argmax(xc))] == N_FFT - HOP
    assert 0.1 < np.sqrt(np.mean(a[mid] ** 2)) < 1.0               # measured: 0.26 (white noise: 1.17)


def test_silence_excites_nothing_and_the_stream_equals_the_render():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(4 * HOP), 0.2 * rng.standard_normal(20 * HOP), np.zeros(8 * HOP)]).astype(np.float32)
    whole = excite(x)
    assert np.abs(whole[:4 * HOP]).max() == 0.0
    assert np.abs(whole[-4 * HOP:]).max() == 0.0                   # silent once the window has passed
    spec = source_spectrum(torch.from_numpy(x)[None], N_FFT, HOP)[:, :, :x.size // HOP]
    ex = Excitation(N_FFT, HOP)
    parts = [ex.step(spec[:, :, i:i + k]) for i, k in ((0, 1), (1, 3), (4, 0), (4, 7), (11, 21))]
    assert np.abs(torch.cat(parts, 1)[0].numpy() - whole).max() < 1e-5
