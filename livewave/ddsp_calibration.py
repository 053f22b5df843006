"""From MIDI to what a DDSP model was trained on: the loudness curve of a played note.

A model is conditioned on A-weighted loudness (dBFS) measured from its training audio.
Live, there is no audio to measure: the loudness curve is built from the note, in the
same dB scale, by a calibration fitted on the training data and stored in the checkpoint:

    loudness(t) = a + b * velocity + key_db[note]          (the note's held level)
                  + attack_db[frames since the onset]      (the instrument's own swell)
                  + 20 log10(channel gain / the gain the data was played at)
                  + 20 log10(engine envelope)               (gate and release)

``fit_calibration`` measures ``a, b`` and the per-key offsets (least squares over held
frames: instruments and soundfont zones are not equally loud over their range), the
median attack curve (loudness after the onset relative to the note's level) and the release time (how long
the instrument takes to fall 40 dB after a note-off followed by a rest). A dataset of
free recordings (no MIDI) maps velocity onto its 5th..95th loudness percentiles and gets
a flat attack.

``voice_loudness`` is the render-side kernel (Numba, ``nogil``, no allocation); it depends
only on absolute sample times, so it is block-size independent.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

ATTACK_SECONDS = 0.5          # length of the stored attack curve
RELEASE_PROBE_SECONDS = 1.0   # how far after a note-off the release is followed
DEFAULT_RELEASE_S = 0.3
# The soundfont data is played at GM's default channel volume (100) and full expression; the
# engine's channel gain (squared law, as GM) at those settings is this many dB.
REFERENCE_GAIN_DB = 40.0 * math.log10(100.0 / 127.0)


def _held_frames(clips: list[dict], frame_s: float):
    """Every frame inside a held note: (velocity 0..1, key, frames since onset, measured dB
    with expression taken out), plus the release times (s to fall 40 dB after a note-off
    that a rest follows)."""
    n_rel = int(round(RELEASE_PROBE_SECONDS / frame_s))
    vel, key, since, target, rel_times = [], [], [], [], []
    for clip in clips:
        notes = clip.get("notes")
        if notes is None or len(notes) == 0:
            continue
        ld = np.asarray(clip["loudness_db"], np.float64)
        expr = clip.get("expression")
        if expr is not None:     # take expression (CC11, squared law as GM) out of the measured level
            ld = ld - 40.0 * np.log10(np.maximum(np.asarray(expr, np.float64), 1e-3))
        notes = np.asarray(notes, np.float64)
        for j, (on, off, pitch, v) in enumerate(notes):
            i0, i1 = int(round(on / frame_s)), min(ld.size, int(round(off / frame_s)))
            if i1 - i0 < 2:
                continue
            k = np.arange(i1 - i0)
            vel.append(np.full(k.size, v / 127.0))
            key.append(np.full(k.size, int(round(pitch))))
            since.append(k)
            target.append(ld[i0:i1])
            nxt = notes[j + 1][0] if j + 1 < len(notes) else math.inf
            if nxt - off >= 0.4:          # a rest follows: the release is audible
                at_off = ld[max(i0, i1 - 2):i1 + 1].mean()
                end = ld.size if math.isinf(nxt) else int(nxt / frame_s)
                below = np.nonzero(ld[i1:min(ld.size, i1 + n_rel, end)] < at_off - 40.0)[0]
                if below.size:
                    rel_times.append(below[0] * frame_s)
    if not vel:
        return None
    cat = np.concatenate
    return cat(vel), cat(key), cat(since), cat(target), rel_times


def fit_calibration(clips: list[dict], sample_rate: int, hop: int) -> dict:
    """-> JSON-able dict: ``velocity_db`` [a, b] (velocity 0..1), ``key_db`` (offset per key
    from ``key_low``), ``attack_db`` (per frame after the onset), ``release_s``, the fit's
    ``rms_error_db`` over held frames, ``frame_seconds``, ``reference_gain_db``.

    Fitted on every held frame, not on note averages, so the loudness the model is fed live
    matches, frame by frame, what it saw in training: a least-squares fit of the level on
    velocity and one offset per key (soundfont zones and instruments are not equally loud
    over their range), alternated with the median attack curve of the residual."""
    frame_s = hop / sample_rate
    n_att = int(round(ATTACK_SECONDS / frame_s))
    held = _held_frames(clips, frame_s)
    if held is not None and held[0].size >= 50:
        vel, key, since, target, rel_times = held
        ok = target > -90.0
        vel, key, since, target = vel[ok], key[ok], since[ok], target[ok]
        lo, hi = int(key.min()), int(key.max())
        onehot = np.zeros((key.size, hi - lo + 1))
        onehot[np.arange(key.size), key - lo] = 1.0
        design = np.concatenate([vel[:, None], onehot], 1)
        kk = np.minimum(since, n_att - 1)
        attack = np.zeros(n_att)
        for _ in range(3):
            coef, *_ = np.linalg.lstsq(design, target - attack[kk], rcond=None)
            resid = target - design @ coef
            for k in range(n_att):
                sel = resid[kk == k]
                attack[k] = np.median(sel) if sel.size >= 5 else attack[k - 1] if k else 0.0
            attack -= attack[-1]          # the held level lives in the key offsets
        rms = float(np.sqrt(np.mean((target - design @ coef - attack[kk]) ** 2)))
        b = float(coef[0])
        offsets = coef[1:]
        present = np.isin(np.arange(lo, hi + 1), key)
        offsets = np.interp(np.arange(lo, hi + 1), np.arange(lo, hi + 1)[present], offsets[present])
        a = float(np.mean(offsets))
        release = float(np.median(rel_times)) if rel_times else DEFAULT_RELEASE_S
        return {"velocity_db": [round(a, 4), round(b, 4)], "key_low": lo,
                "key_db": [round(float(x - a), 3) for x in offsets],
                "attack_db": [round(float(x), 3) for x in np.minimum(attack, 12.0)],
                "release_s": round(min(2.0, max(0.05, release)), 4), "rms_error_db": round(rms, 3),
                "held_frames": int(target.size), "frame_seconds": frame_s, "source": "notes",
                "reference_gain_db": round(REFERENCE_GAIN_DB, 4)}
    # Free recordings: velocity spans the voiced loudness range.
    voiced = np.concatenate([np.asarray(c["loudness_db"])[np.asarray(c["voiced"], bool)] for c in clips])
    if voiced.size < 10:
        raise ValueError("not enough voiced frames to calibrate loudness")
    p5, p95 = np.percentile(voiced, [5, 95])
    return {"velocity_db": [float(p5), float(p95 - p5)], "key_low": 0, "key_db": [0.0], "attack_db": [0.0],
            "release_s": DEFAULT_RELEASE_S, "rms_error_db": None, "held_frames": 0, "frame_seconds": frame_s,
            "source": "loudness percentiles", "reference_gain_db": round(REFERENCE_GAIN_DB, 4)}


def validate_calibration(cal: dict) -> dict:
    """Check a calibration read from a checkpoint; -> the arrays the kernel needs."""
    try:
        a, b = (float(x) for x in cal["velocity_db"])
        attack = np.asarray(cal["attack_db"], np.float64)
        release = float(cal["release_s"])
        frame_s = float(cal["frame_seconds"])
        ref_gain = float(cal.get("reference_gain_db", 0.0))
        key_low = int(cal.get("key_low", 0))
        key_db = np.asarray(cal.get("key_db", [0.0]), np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"calibration is incomplete or malformed ({exc!r})") from None
    if attack.ndim != 1 or attack.size < 1 or attack.size > 100000:
        raise ValueError("calibration attack_db must be a non-empty list of numbers")
    vals = np.array([a, b, release, frame_s, ref_gain])
    if key_db.ndim != 1 or not (1 <= key_db.size <= 128) or not 0 <= key_low <= 127:
        raise ValueError("calibration key_db must be 1..128 numbers and key_low a MIDI key")
    if not (np.all(np.isfinite(vals)) and np.all(np.isfinite(attack)) and np.all(np.isfinite(key_db))):
        raise ValueError("calibration holds NaN or Inf")
    if not (-120 <= a <= 20 and -120 <= b <= 120 and 0.0 < release <= 30.0 and 0.0005 <= frame_s <= 0.1):
        raise ValueError(f"calibration out of range: velocity_db=[{a}, {b}], release_s={release}, "
                         f"frame_seconds={frame_s}")
    if np.abs(key_db).max() > 120 or np.abs(attack).max() > 120:
        raise ValueError("calibration key_db or attack_db outside -120..120 dB")
    if not -60.0 <= ref_gain <= 0.0:
        raise ValueError(f"calibration reference_gain_db={ref_gain} is outside -60..0")
    # The kernel adds 20 log10(gain); the data's own gain is part of ``a`` already.
    return {"a": a - ref_gain, "b": b, "key_low": float(key_low), "key_db": key_db, "attack_db": attack,
            "release_s": release, "frame_seconds": frame_s}


@njit(nogil=True, cache=True)
def voice_loudness(mask, t, call_start, call_frames, velocity, note, gain, env, onset_time, a, b, key_low,
                   key_db, attack_db, attack_step, out):
    """Loudness (dB) of each masked voice at absolute sample ``t``. ``attack_step``: device
    samples per attack-curve entry. ``env[v, t - call_start]`` is the engine envelope."""
    n_att = attack_db.shape[0]
    pos = t - call_start
    if pos < 0:
        pos = 0
    if pos > call_frames - 1:
        pos = call_frames - 1
    for v in range(mask.shape[0]):
        if not mask[v]:
            continue
        x = (t - onset_time[v]) / attack_step
        if x < 0.0:
            x = 0.0
        i = int(x)
        if i >= n_att - 1:
            att = attack_db[n_att - 1]
        else:
            w = x - i
            att = attack_db[i] + (attack_db[i + 1] - attack_db[i]) * w
        g = gain[v]
        e = env[v, pos]
        x = note[v] - key_low           # per-key offset, linear between keys (bends), held at the ends
        n_keys = key_db.shape[0]
        if x <= 0.0:
            kd = key_db[0]
        elif x >= n_keys - 1:
            kd = key_db[n_keys - 1]
        else:
            j = int(x)
            kd = key_db[j] + (key_db[j + 1] - key_db[j]) * (x - j)
        db = a + b * velocity[v] + kd + att
        db += 20.0 * math.log10(max(g, 1e-5)) + 20.0 * math.log10(max(e, 1e-5))
        out[v] = min(0.0, max(-100.0, db))
