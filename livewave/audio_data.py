"""DDSP training data from the user's own recordings of one monophonic instrument.

Every ``.wav``, ``.flac``, ``.aif``/``.aiff`` and ``.ogg`` under a folder (recursively) is
mixed to mono, resampled with soxr, and labelled on the frame grid of
:mod:`livewave.soundfont_data` (frame k at sample ``k * hop``): f0 from YIN
(:mod:`livewave.pitch_tracker`), made continuous across unvoiced frames with
``fill_unvoiced``; ``voiced`` where YIN finds a pitch and the level is within 50 dB of the
file's loud parts; loudness from :func:`livewave.loudness.frame_loudness`. Files longer than
30 s are split into clips of at most 30 s (analysed whole, so labels near a cut have context).

There is no MIDI, so no velocity or notes; instead ``dataset.json`` keeps the loudness
distribution of voiced frames (``voiced_loudness_db``: p5, p50, p95), which is what maps a
player's MIDI velocity onto this instrument's loudness at play time. Levels are kept as
recorded (no normalisation).

Files that cannot be used (unreadable, empty, shorter than 0.5 s, silent, no voiced frames)
are reported by name and reason and skipped; with nothing usable left, :class:`DatasetError`.

Threading: plain blocking functions (file I/O); nothing shared.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .soundfont_data import (
    FORMAT,
    FRAME_SECONDS,
    KIND,
    DatasetError,
    check_out_dir,
    hop_for,
    prepare_out_dir,
    write_clip,
    write_meta,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
MIN_SECONDS = 0.5
CLIP_SECONDS = 30.0
SILENT_DBFS = -70.0             # a file whose peak is below this is silence
VOICED_RANGE_DB = 50.0          # voiced frames are at most this far below the loud (p99) level
MIN_VOICED_RUN = 3              # frames; shorter voiced blips are YIN catching noise


def find_audio_files(folder, exclude=None) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted), leaving out anything under ``exclude``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    skip = Path(exclude).resolve() if exclude is not None else None
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if skip is not None and (Path(root).resolve() == skip or skip in Path(root).resolve().parents):
            continue
        found += [Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in AUDIO_SUFFIXES]
    return found


def load_mono(path, sample_rate: int) -> np.ndarray:
    """``float32 [samples]``: the file mixed to mono and resampled to ``sample_rate``.
    Raises :class:`DatasetError` with the reason when it cannot be used."""
    import soundfile as sf
    import soxr
    try:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise DatasetError(f"unreadable ({str(exc).strip() or type(exc).__name__})") from exc
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DatasetError("empty (no samples)")
    if x.shape[0] / rate < MIN_SECONDS:
        raise DatasetError(f"too short ({x.shape[0] / rate:.2f} s, need {MIN_SECONDS} s)")
    x = x.mean(axis=1)
    if not np.isfinite(x).all():
        raise DatasetError("holds NaN or infinite samples")
    peak = float(np.abs(x).max())
    if peak < 10.0 ** (SILENT_DBFS / 20.0):
        level = f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "all zeros"
        raise DatasetError(f"silent (peak {level})")
    if rate != sample_rate:
        x = soxr.resample(x, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)


def label_audio(audio: np.ndarray, sample_rate: int, hop: int, fmin: float = 40.0,
                fmax: float = 2000.0) -> dict[str, np.ndarray]:
    """Frame labels ``[len(audio) // hop]``: ``f0_hz`` (float32, filled across unvoiced frames),
    ``loudness_db`` (float32), ``voiced`` (bool), ``periodicity`` (float32). Raises
    :class:`DatasetError` when no frame is voiced."""
    from .loudness import frame_loudness
    from .pitch_tracker import fill_unvoiced, yin
    f0, per = yin(audio, sample_rate, hop, fmin=fmin, fmax=fmax)
    loud = frame_loudness(audio, sample_rate, hop)
    voiced = (f0 > 0) & (loud > np.percentile(loud, 99) - VOICED_RANGE_DB)
    voiced = _drop_short_runs(voiced, MIN_VOICED_RUN)
    if not voiced.any():
        raise DatasetError("no voiced frames (no steady pitch found)")
    return {"f0_hz": fill_unvoiced(f0, voiced), "loudness_db": loud, "voiced": voiced,
            "periodicity": per.astype(np.float32)}


def _drop_short_runs(mask: np.ndarray, shortest: int) -> np.ndarray:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    out = mask.copy()
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a < shortest:
            out[a:b] = False
    return out


def make_audio_dataset(indir, out, sample_rate: int = 16000, fmin: float = 40.0, fmax: float = 2000.0,
                       log=print) -> dict:
    """Label every usable recording under ``indir`` into the folder ``out``; returns the meta."""
    if not 8000 <= sample_rate <= 192000:
        raise DatasetError(f"sample rate {sample_rate} Hz is outside 8000..192000")
    if not 0 < fmin < fmax < sample_rate / 2:
        raise DatasetError(f"need 0 < fmin < fmax < {sample_rate / 2:g} Hz, got {fmin:g} and {fmax:g}")
    indir, out = Path(indir), Path(out)
    files = find_audio_files(indir, exclude=out)
    if not files:
        raise DatasetError(f"{indir}: no {'/'.join(AUDIO_SUFFIXES)} files in it or below it")
    check_out_dir(out)                           # before any work; emptied at the first good file
    hop = hop_for(sample_rate)
    names, sources, skipped, voiced_loud, samples = [], {}, [], [], 0
    prepared = False
    for path in files:
        rel = str(path.relative_to(indir))
        try:
            x = load_mono(path, sample_rate)
            labels = label_audio(x, sample_rate, hop, fmin, fmax)
        except DatasetError as exc:
            skipped.append({"file": rel, "reason": str(exc)})
            log(f"livewave: skipped {rel}: {exc}")
            continue
        if not prepared:
            prepare_out_dir(out)
            prepared = True
        frames = len(x) // hop
        n = int(np.ceil(frames * hop / (CLIP_SECONDS * sample_rate)))
        edges = np.round(np.linspace(0, frames, n + 1)).astype(int)
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            name = f"clip_{len(names):04d}"
            write_clip(out, name, x[a * hop:b * hop], sample_rate, {k: v[a:b] for k, v in labels.items()})
            names.append(name)
            sources[name] = rel
        voiced_loud.append(labels["loudness_db"][labels["voiced"]])
        samples += frames * hop
    if not names:
        raise DatasetError(f"{indir}: no usable recordings ({len(skipped)} skipped: "
                           + "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:5])
                           + ("; ..." if len(skipped) > 5 else "") + ")")
    vl = np.concatenate(voiced_loud)
    meta = {"format": FORMAT, "kind": KIND, "sample_rate": sample_rate, "frame_seconds": FRAME_SECONDS,
            "hop": hop, "source": "audio", "input": str(indir.resolve()),
            "minutes": round(samples / sample_rate / 60, 4), "clips": names, "sources": sources,
            "skipped": skipped, "pitch_tracker": {"method": "yin", "fmin": fmin, "fmax": fmax},
            "voiced_fraction": round(float(vl.size) / (samples // hop), 4),
            "voiced_loudness_db": {f"p{p}": round(float(np.percentile(vl, p)), 2) for p in (5, 50, 95)}}
    write_meta(out, meta)
    used = len(files) - len(skipped)
    log(f"livewave: wrote {len(names)} clip{'s' * (len(names) > 1)} ({samples / sample_rate:.1f} s, "
        f"{meta['voiced_fraction'] * 100:.0f}% voiced) from {used} of {len(files)} files at {sample_rate} Hz "
        f"to {out}; voiced loudness p5/p50/p95 {meta['voiced_loudness_db']['p5']:.1f}/"
        f"{meta['voiced_loudness_db']['p50']:.1f}/{meta['voiced_loudness_db']['p95']:.1f} dB"
        + (f"; skipped {len(skipped)}" if skipped else ""))
    return meta
