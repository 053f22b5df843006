"""Signal measurements the tests assert on: onset sample, f0 in Hz, level; and a helper that
plays events through an engine offline."""
from __future__ import annotations

import numpy as np


def first_sample_above(x: np.ndarray, threshold: float) -> int:
    idx = np.flatnonzero(np.abs(x) > threshold)
    return int(idx[0]) if idx.size else -1


def onset_from_silence(x: np.ndarray, step: float = 5e-5) -> int:
    """The first sample that steps away from (near) silence, in either direction: a note's first
    sample moves by over 1e-4 while a DC blocker's tail moves by about 1e-5 a sample. Unlike a
    level threshold it does not depend on the phase the waveform starts at. -1: none."""
    idx = np.flatnonzero(np.abs(np.diff(x)) > step)
    return int(idx[0]) + 1 if idx.size else -1


def f0_spectral(x: np.ndarray, rate: int, fmin: float = 20.0, fmax: float = 5000.0) -> float:
    """Fundamental of a steady harmonic tone: the strongest peak's harmonic number is resolved
    by checking sub-multiples, then refined by parabolic interpolation on a zero-padded
    Hann spectrum (accurate to well under a cent for a second of audio)."""
    x = np.asarray(x, np.float64)
    x = x - x.mean()
    n = len(x)
    nfft = 1 << int(np.ceil(np.log2(n * 8)))
    spec = np.abs(np.fft.rfft(x * np.hanning(n), nfft))
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)

    def refine(k: int) -> float:
        a, b, c = np.log(spec[k - 1:k + 2] + 1e-30)
        p = 0.5 * (a - c) / (a - 2 * b + c)
        return (k + p) * rate / nfft

    band = (freqs >= fmin) & (freqs <= fmax)
    k = int(np.argmax(np.where(band, spec, 0.0)))
    top = spec[k]
    f = refine(k)
    for h in range(8, 1, -1):            # the true f0 may be a weaker lower partial
        kk = int(round(k / h))
        if freqs[kk] < fmin:
            continue
        lo, hi = max(1, kk - 4), kk + 5
        j = lo + int(np.argmax(spec[lo:hi]))
        if spec[j] > 0.05 * top:
            return refine(j) if h > 1 else f
    return f


def holes(x: np.ndarray, min_gap: int = 16) -> list[tuple[int, int]]:
    """(start, end) of each run of ``min_gap`` or more exact zeros in ``x``. A JACK cycle that
    no client got to run (an xrun of the machine) leaves such a hole in a live recording."""
    zero = np.concatenate(([False], x == 0.0, [False]))
    d = np.diff(zero.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= min_gap]


def longest_unbroken(x: np.ndarray, min_gap: int = 16) -> np.ndarray:
    """The longest stretch of ``x`` without a hole (``holes``): the phase jump across one would
    bias a spectral pitch estimate."""
    bounds = [0] + [v for h in holes(x, min_gap) for v in h] + [len(x)]
    pieces = [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]
    a, b = max(pieces, key=lambda p: p[1] - p[0])
    return x[a:b]


def cents(f: float, ref: float) -> float:
    return 1200.0 * np.log2(f / ref)


def rms_db(x: np.ndarray) -> float:
    return 20.0 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-12)


def play_events(eng, events, seconds: float, block: int = 128, stereo: bool = False) -> np.ndarray:
    """``events`` [(seconds from now, status, d1, d2)] pushed at the engine's current clock,
    then ``seconds`` rendered in blocks of ``block``: the first channel of the output (``stereo``:
    the first two, ``[frames, 2]``)."""
    rate = eng.config.sample_rate
    t0 = eng.sample_time
    for t, *msg in events:
        eng.push_event(t0 + int(round(t * rate)), *msg)
    out = np.zeros((int(seconds * rate), eng.config.channels), np.float32)
    for j in range(0, out.shape[0], block):
        eng.render(out[j:j + block])
    return out[:, :2] if stereo else out[:, 0]


def replayed_by_render(folder, rate: int, played):
    """A take in ``folder`` (``take.wav``, ``take.mid``): its WAV is ``played``, and
    ``livewave render take.mid`` (the user's command, in this process) gives it back sample for
    sample, both channels. Returns the WAV (``[frames, 2]``)."""
    import soundfile as sf

    from livewave.cli import main
    assert main(["render", str(folder / "take.mid"), "-o", str(folder / "again.wav"), "--rate", str(rate),
                 "--quiet"]) == 0
    again, _ = sf.read(str(folder / "again.wav"), dtype="float32")
    w, _ = sf.read(str(folder / "take.wav"), dtype="float32")
    np.testing.assert_array_equal(w, played)
    assert w.ndim == 2 and w.shape[1] == 2, w.shape            # a take of a stereo engine is stereo
    np.testing.assert_array_equal(again[:w.shape[0], :2], w)
    return w


def render_growth(eng, cc: int, every: int, where: tuple[str, ...], blocks: int = 3000) -> list:
    """What the render side kept allocated while a note plays in 64-sample blocks (after 300 to
    warm up) and a knob (``cc``, channel 1) moves every ``every`` blocks, in files whose
    traceback names any of ``where``: the tracemalloc statistics that grew."""
    import tracemalloc
    buf = np.zeros((64, eng.config.channels), np.float32)
    eng.push_event(0, 0x90, 60, 100)
    for _ in range(300):
        eng.render(buf)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for k in range(blocks):
            if k % every == 0:
                eng.push_event(eng.sample_time, 0xB0, cc, (40 + 4 * k // every) % 128)
            eng.render(buf)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return [s for s in after.compare_to(before, "filename")
            if s.size_diff > 0 and any(w in str(s.traceback) for w in where)]


ABUSIVE = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 0.5, 1.0, 1e9, 1e-9, 3.0]


def abused_peak(eng, set_one, blocks: int = 3000, seed: int = 3) -> float:
    """#6 item 3 for an engine setting: ``set_one(rng, j)`` 10 times per 32-sample block (j = 0..9)
    while notes play (a new one every 300 blocks): every sample finite; returns the peak."""
    rng = np.random.default_rng(seed)
    buf = np.zeros((32, eng.config.channels), np.float32)
    peak = 0.0
    for k in range(blocks):
        if k % 300 == 0:
            eng.push_event(eng.sample_time, 0x90, int(rng.integers(40, 90)), 110)
        for j in range(10):
            set_one(rng, j)
        eng.render(buf)
        assert np.isfinite(buf).all()
        peak = max(peak, float(np.abs(buf).max()))
    return peak
