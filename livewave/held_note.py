"""Is a held note in tune? Pitch measures for vocoders (audio in, audio out) and for instruments
played from MIDI.

A steady tone (``harmonic_tone``: 8 partials at 1/k amplitude) goes through the model; where the
strongest peak within half an octave of the fundamental lies in the second half of the output
(``peak_cents``: Hann window, FFT zero-padded 8 times, parabolic interpolation on the log
magnitude) is the note's pitch, in cents from where it should be; the strongest peak in that
range more than 50 cents from the note (``spur_db``, dB against the note) says how clean it is.
For an instrument played from MIDI (``held_midi_note``) the note is held 2.5 s through the
engine at 48 kHz.

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


def silent(y: np.ndarray) -> bool:
    """Nothing (or something not finite) in the second half of ``y``, where a held note is read."""
    seg = np.asarray(y[y.size // 2:], np.float64)
    return not np.isfinite(seg).all() or np.sqrt(np.mean(seg ** 2)) < 1e-6


def _near(y: np.ndarray, f0: float, sample_rate: int) -> tuple[np.ndarray, int, int, int]:
    """The second half of ``y``'s magnitude spectrum (Hann window, zero-padded 8 times), its
    FFT size and the bins half an octave below and above ``f0``."""
    if silent(y):
        raise ValueError("silent (or not finite) where the pitch is read")
    seg = np.asarray(y[y.size // 2:], np.float64)
    n = 8 * seg.size
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n))
    return spec, n, int(f0 * 2 ** -0.5 * n / sample_rate), int(np.ceil(f0 * 2 ** 0.5 * n / sample_rate))


def spur_db(y: np.ndarray, f0: float, sample_rate: int, within_cents: float = 50.0) -> float:
    """How clean a held note is: the strongest peak within half an octave of ``f0`` but more than
    ``within_cents`` from it, in dB against the strongest within (``_near``'s spectrum of the
    second half). Sidebands a frame rate from the note (an iSTFT synthesis whose frames ripple)
    show here; a clean note is far below 0 dB, one whose strongest peak is elsewhere above it."""
    spec, n, lo, hi = _near(y, f0, sample_rate)
    cents = 1200 * np.log2(np.maximum(np.arange(lo, hi + 1), 1) * sample_rate / n / f0)
    band = spec[lo:hi + 1]
    inside, outside = band[np.abs(cents) <= within_cents], band[np.abs(cents) > within_cents]
    return float(20 * np.log10((outside.max() + 1e-30) / (inside.max() + 1e-30)))


def peak_cents(y: np.ndarray, f0: float, sample_rate: int) -> float:
    """Where the strongest peak within half an octave of ``f0`` lies, in cents from ``f0``: the
    second half of ``y``, Hann window, FFT zero-padded 8 times, parabolic interpolation. Raises
    ValueError where that half is silent (no pitch to read)."""
    spec, n, lo, hi = _near(y, f0, sample_rate)
    i = lo + int(np.argmax(spec[lo:hi + 1]))
    a, b, c = np.log(spec[i - 1:i + 2] + 1e-30)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return float(1200 * np.log2((i + shift) * sample_rate / n / f0))


def held_note_pitch(render, sample_rate: int, freqs=HELD_NOTE_HZ) -> list[float]:
    """Cents off for each steady harmonic tone in ``freqs`` rendered by ``render`` (audio -> audio
    at ``sample_rate``): does a held note come back in tune?"""
    return held_notes(render, sample_rate, freqs)[0]


def held_notes(render, sample_rate: int, freqs=HELD_NOTE_HZ) -> tuple[list[float], list[float]]:
    """``held_note_pitch``'s cents, and each tone's ``spur_db``: in tune, and clean? None for a
    tone that came out silent (a flow driven by its source, given none)."""
    cents, spurs = [], []
    for f in freqs:
        y = render(harmonic_tone(f, sample_rate))
        if silent(y):
            cents.append(None)
            spurs.append(None)
            continue
        cents.append(round(peak_cents(y, f, sample_rate), 2))
        spurs.append(round(spur_db(y, f, sample_rate), 1))
    return cents, spurs


def held_midi_note_cents(gen, note: int, seconds: float = 2.5, sample_rate: int = 48000) -> float:
    """``held_midi_note``'s cents alone."""
    return held_midi_note(gen, note, seconds, sample_rate)[0]


def held_midi_note(gen, note: int, seconds: float = 2.5, sample_rate: int = 48000) -> tuple[float, float]:
    """MIDI ``note`` (velocity 100) held ``seconds`` through an engine playing ``gen`` (a
    generator played from MIDI): ``peak_cents`` and ``spur_db`` of the stretch from 0.3 s to
    0.1 s before the release, which read its second half (1.35 to 2.4 s for 2.5 s)."""
    from .config import EngineConfig
    from .engine import Engine
    from .offline_render import render_events
    eng = Engine(EngineConfig(sample_rate=sample_rate, max_block=1024, polyphony=8), gen).prepare()
    y = render_events(eng, [(0.0, 0x90, note, 100), (seconds, 0x80, note, 0)], seconds, block=256, tail_s=0.2)[:, 0]
    f0 = 440.0 * 2 ** ((note - 69) / 12)
    held = y[int(0.3 * sample_rate):int((seconds - 0.1) * sample_rate)]
    return peak_cents(held, f0, sample_rate), spur_db(held, f0, sample_rate)
