"""Is a held note in tune? Pitch measures for vocoders (audio in, audio out) and for instruments
played from MIDI.

A steady tone (``harmonic_tone``: 8 partials at 1/k amplitude) goes through the model; where the
strongest peak within half an octave of the fundamental lies in the second half of the output
(``peak_cents``: Hann window, FFT zero-padded 8 times, parabolic interpolation on the log
magnitude) is the note's pitch, in cents from where it should be. For an instrument played from
MIDI (``held_midi_note_cents``) the note is held 2.5 s through the engine at 48 kHz.

Why it exists: an iSTFT vocoder that takes each frame's phase from its network alone turns a
steady mel into the same frame every hop, whose partials can only be multiples of the frame rate
(``istft_vocoder``'s docstring); the log-mel and STFT distances hardly see that, an ear does.
Threading: plain functions.
"""
from __future__ import annotations

import numpy as np

HELD_NOTE_HZ = (110.0, 164.8, 220.0, 261.6, 300.0, 440.0, 523.3, 700.0, 1000.0)


def harmonic_tone(f0: float, sample_rate: int, seconds: float = 2.0, harmonics: int = 8) -> np.ndarray:
    """A steady tone: ``harmonics`` partials at 1/k amplitude (below Nyquist), peak about 0.5."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1) if k * f0 < 0.45 * sample_rate)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def peak_cents(y: np.ndarray, f0: float, sample_rate: int) -> float:
    """Where the strongest peak within half an octave of ``f0`` lies, in cents from ``f0``: the
    second half of ``y``, Hann window, FFT zero-padded 8 times, parabolic interpolation. Raises
    ValueError where that half is silent (no pitch to read)."""
    seg = np.asarray(y[y.size // 2:], np.float64)
    if not np.isfinite(seg).all() or np.sqrt(np.mean(seg ** 2)) < 1e-6:
        raise ValueError("silent (or not finite) where the pitch is read")
    n = 8 * seg.size
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n))
    lo, hi = int(f0 * 2 ** -0.5 * n / sample_rate), int(np.ceil(f0 * 2 ** 0.5 * n / sample_rate))
    i = lo + int(np.argmax(spec[lo:hi + 1]))
    a, b, c = np.log(spec[i - 1:i + 2] + 1e-30)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return float(1200 * np.log2((i + shift) * sample_rate / n / f0))


def held_note_pitch(render, sample_rate: int, freqs=HELD_NOTE_HZ) -> list[float]:
    """Cents off for each steady harmonic tone in ``freqs`` rendered by ``render`` (audio -> audio
    at ``sample_rate``): does a held note come back in tune?"""
    return [round(peak_cents(render(harmonic_tone(f, sample_rate)), f, sample_rate), 2) for f in freqs]


def held_midi_note_cents(gen, note: int, seconds: float = 2.5, sample_rate: int = 48000) -> float:
    """Cents off for MIDI ``note`` (velocity 100) held ``seconds`` through an engine playing
    ``gen`` (a generator played from MIDI): ``peak_cents`` of the stretch from 0.3 s to 0.1 s
    before the release, which reads its second half (1.35 to 2.4 s for 2.5 s)."""
    from .config import EngineConfig
    from .engine import Engine
    from .offline_render import render_events
    eng = Engine(EngineConfig(sample_rate=sample_rate, max_block=1024, polyphony=8), gen).prepare()
    y = render_events(eng, [(0.0, 0x90, note, 100), (seconds, 0x80, note, 0)], seconds, block=256, tail_s=0.2)[:, 0]
    f0 = 440.0 * 2 ** ((note - 69) / 12)
    return peak_cents(y[int(0.3 * sample_rate):int((seconds - 0.1) * sample_rate)], f0, sample_rate)
