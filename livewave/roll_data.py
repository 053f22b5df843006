"""Polyphonic (MIDI, audio) pairs for MIDI-to-mel models, rendered from a soundfont:
``livewave data soundfont --polyphonic``.

Clips of about 25 s of :mod:`livewave.piano_phrases` (chords, broken chords, melody over
chords, single notes, restrikes, ringing chords, with the sustain pedal), rendered by the
fluidsynth CLI exactly as the DDSP data (:mod:`livewave.soundfont_data`: no reverb or chorus,
gain 1, float output, scaled down only where a peak would pass -1 dBFS). The key probe runs
first: keys that do not sound at their pitch are left out, and the fluidsynth timing it
measures moves every note and pedal time to where the audio has it.

Layout (format 1, kind ``livewave-roll-data``)::

    DIR/dataset.json   sample_rate, program, pitch_range, clips, render, ...
    DIR/clip_0000.wav  mono float32 at sample_rate
    DIR/clip_0000.npz  notes float64 [N, 4] (onset_s, key-up_s, midi_pitch, velocity 1..127),
                       pedal float64 [M, 2] (time_s, 1 down / 0 up), times in the audio
    DIR/clip_0000.mid  the MIDI the clip was rendered from

The audio files are also plain vocoder training data (``livewave train melgan --data DIR``).
Threading: plain blocking functions; nothing shared.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .soundfont_data import (
    CHUNK_SECONDS,
    DEFAULT_SOUNDFONT,
    PEAK_DBFS,
    DatasetError,
    _render_all,
    _usable_run,
    check_render_request,
    prepare_out_dir,
    probe_soundfont,
    read_clip_audio,
    read_meta,
    write_clip,
    write_meta,
)

FORMAT = 1
KIND = "livewave-roll-data"
# Keyboard-wide ranges where the monophonic phrases' ranges are narrower (a piano's 88 keys).
POLY_RANGES = {**{p: (21, 108) for p in range(8)}, 19: (24, 96), 48: (28, 96), 49: (28, 96)}


def make_roll_dataset(out, program: int, minutes: float, sample_rate: int = 22050, seed: int = 0,
                      low: int | None = None, high: int | None = None, soundfont=DEFAULT_SOUNDFONT,
                      pedal: bool = True, log=print) -> dict:
    """Render ``minutes`` of polyphonic phrases of GM ``program`` into ``out``; returns the meta."""
    from .phrases import gm_name
    from .piano_phrases import generate_roll_clip
    wide = POLY_RANGES.get(program, (None, None))
    lo, hi = check_render_request(program, wide[0] if low is None else low, wide[1] if high is None else high,
                                  sample_rate, minutes, soundfont)
    out = prepare_out_dir(out)
    n_clips = max(1, round(minutes * 60 / CHUNK_SECONDS))
    seconds = minutes * 60 / n_clips
    names = [f"clip_{i:04d}" for i in range(n_clips)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="livewave-render-") as tmp:
        curves, timing = probe_soundfont(program, lo, hi, sample_rate, soundfont, tmp)
        ulo, uhi = _usable_run(curves, lo, hi)
        if uhi - ulo < 5:
            raise DatasetError(f"{soundfont}: program {program} ({gm_name(program)}): too few keys of "
                               f"{lo}..{hi} sound at their pitch")
        if (ulo, uhi) != (lo, hi):
            log(f"livewave: keys {lo}..{hi} asked, but only {ulo}..{uhi} sound at their pitch; using {ulo}..{uhi}")
            lo, hi = ulo, uhi
        rng = np.random.default_rng(seed)
        clips = [generate_roll_clip(program, seconds, rng, lo, hi, pedal=pedal) for _ in names]
        jobs = []
        for name, clip in zip(names, clips, strict=True):
            clip.write(out / f"{name}.mid")
            jobs.append((out / f"{name}.mid", Path(tmp) / f"{name}.wav"))
        rendered, gain = _render_all(jobs, sample_rate, soundfont)
    samples = int(round(seconds * sample_rate))
    audio = []
    for name, x in zip(names, rendered, strict=True):
        if np.abs(x).max() < 1e-4:
            raise DatasetError(f"{name}.mid: fluidsynth rendered silence (does {soundfont} have GM program {program}?)")
        audio.append(np.pad(x[:samples], (0, max(0, samples - len(x)))))
    scale = min(1.0, 10.0 ** (PEAK_DBFS / 20.0) / max(float(np.abs(x).max()) for x in audio))
    n_notes = 0
    for name, clip, x in zip(names, clips, audio, strict=True):
        notes, ped = clip.notes.copy(), clip.pedal.copy()
        notes[:, :2] = timing(notes[:, :2])
        if len(ped):
            ped[:, 0] = timing(ped[:, 0])
        n_notes += len(notes)
        write_clip(out, name, (x * scale).astype(np.float32), sample_rate, {"notes": notes, "pedal": ped})
    render_s = time.perf_counter() - t0
    meta = {"format": FORMAT, "kind": KIND, "sample_rate": sample_rate, "source": "soundfont", "program": program,
            "instrument": gm_name(program), "soundfont": str(Path(soundfont).resolve()), "seed": seed,
            "pedal": bool(pedal), "minutes": round(n_clips * samples / sample_rate / 60, 4), "pitch_range": [lo, hi],
            "notes": n_notes, "clips": names,
            "render": {"timing": timing.describe(), "fluidsynth_gain": gain, "scale": round(scale, 6),
                       "peak_dbfs": PEAK_DBFS, "seconds": round(render_s, 2)}}
    write_meta(out, meta)
    log(f"livewave: wrote {n_clips} polyphonic clip{'s' * (n_clips > 1)} ({meta['minutes'] * 60:.1f} s, "
        f"{n_notes} notes) of {meta['instrument']} (program {program}, keys {lo}..{hi}) at {sample_rate} Hz "
        f"to {out} in {render_s:.1f} s")
    return meta


def load_roll_dataset(path) -> tuple[dict, list[dict]]:
    """``(meta, clips)``, each clip ``{name, audio float32, notes [N, 4], pedal [M, 2]}``; a
    DDSP soundfont dataset (``livewave data soundfont`` without ``--polyphonic``) reads too, with
    no pedal. Everything is checked; raises :class:`DatasetError`."""

    from .soundfont_data import KIND as DDSP_KIND
    folder = Path(path)
    meta, mpath = read_meta(folder, "make one with livewave data soundfont --polyphonic")
    kind = meta.get("kind")
    if kind not in (KIND, DDSP_KIND) or (kind == DDSP_KIND and meta.get("source") != "soundfont"):
        raise DatasetError(f"{mpath}: not MIDI-labelled data (kind {kind!r}); MIDI-to-mel needs the notes a clip "
                           "was rendered from (livewave data soundfont --polyphonic)")
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{mpath}: data format {meta.get('format')!r} is not supported")
    sr, names = meta.get("sample_rate"), meta.get("clips")
    if not isinstance(sr, int) or sr <= 0 or not isinstance(names, list) or not names:
        raise DatasetError(f"{mpath}: bad sample_rate {sr!r} or clips")
    clips = []
    for name in names:
        wav, npz = folder / f"{name}.wav", folder / f"{name}.npz"
        audio, rate = read_clip_audio(wav)
        if rate != sr:
            raise DatasetError(f"{wav}: {rate} Hz, dataset says {sr} Hz")
        try:
            with np.load(npz) as z:
                notes = np.asarray(z["notes"], np.float64)
                ped = np.asarray(z["pedal"], np.float64) if "pedal" in z.files else np.zeros((0, 2))
        except Exception as exc:
            raise DatasetError(f"{npz}: cannot read the notes ({exc})") from exc
        if notes.ndim != 2 or notes.shape[1] != 4 or not np.isfinite(notes).all():
            raise DatasetError(f"{npz}: 'notes' must be finite [N, 4], got {list(notes.shape)}")
        if ped.ndim != 2 or ped.shape[1] != 2 or not np.isfinite(ped).all():
            raise DatasetError(f"{npz}: 'pedal' must be finite [M, 2], got {list(ped.shape)}")
        if len(notes) and ((notes[:, 1] < notes[:, 0]).any() or (notes[:, 3] < 1).any() or (notes[:, 3] > 127).any()
                           or (notes[:, 2] < 0).any() or (notes[:, 2] > 127).any()):
            raise DatasetError(f"{npz}: a note ends before it starts, or its pitch or velocity is out of range")
        clips.append({"name": name, "audio": audio.mean(axis=1), "notes": notes, "pedal": ped})
    return meta, clips
