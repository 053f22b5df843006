"""The piano roll a MIDI-to-mel model reads: which notes sound at a mel frame, and what each
note's state is there (pitch, velocity, time since onset, held or released and since when).

One definition serves training (notes from a dataset, :func:`roll_pairs`) and the live engine
(voices from ``Conditioning``, :func:`note_features` per voice), so what the model learns from
is what it is played with:

- Frame ``t`` is the causal mel frame ending at model sample ``(t + 1) * hop``; it sees the
  events strictly before its end time ``tau = (t + 1) * hop / rate`` (an event at ``tau`` belongs
  to the next frame), as the engine's render segments split at each event's sample.
- A note is held from its onset until its key is up and the sustain pedal does not hold it:
  its key-up time, or the first pedal-up after it when the pedal was down at key-up (a pedal
  change at the key-up's own tick comes after the note-off, as files and the engine order them).
- A note sounds until ``tail`` seconds after it stops being held, or until its key is struck
  again (the engine retriggers that voice: the old note is replaced).
- Features, each in 0..1 or near it (``N_FEATURES``): pitch ``(p - 64) / 24`` (fractional: bend),
  velocity ``/127``, ``exp(-t_on / tau)`` for the ``ONSET_TAUS``, held (0/1), and while released
  ``exp(-t_rel / tau)`` for the ``RELEASE_TAUS`` (0 while held). The sustain pedal enters through
  held: that is what it does to a note.

Threading: pure functions; ``note_features`` is Numba (``nogil``, no allocation): render side.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

ONSET_TAUS = np.array([0.015, 0.05, 0.15, 0.5, 1.5, 5.0])
RELEASE_TAUS = np.array([0.03, 0.1, 0.3, 1.0])
N_FEATURES = 2 + len(ONSET_TAUS) + 1 + len(RELEASE_TAUS)
F_PITCH, F_VELOCITY, F_HELD = 0, 1, 2 + len(ONSET_TAUS)


@njit(nogil=True, cache=True)
def note_features(pitch, velocity, t_on, held, t_rel, onset_taus, release_taus, out):
    """One note's features into ``out[:N_FEATURES]``; velocity 0..1, times in seconds."""
    out[0] = (pitch - 64.0) / 24.0
    out[1] = velocity
    n_on = onset_taus.shape[0]
    t_on = max(0.0, t_on)
    for i in range(n_on):
        out[2 + i] = math.exp(-t_on / onset_taus[i])
    out[2 + n_on] = 1.0 if held else 0.0
    t_rel = max(0.0, t_rel)
    for i in range(release_taus.shape[0]):
        out[3 + n_on + i] = 0.0 if held else math.exp(-t_rel / release_taus[i])


def sound_off_times(notes: np.ndarray, pedal: np.ndarray) -> np.ndarray:
    """When each note stops being held: key-up, or the first pedal-up after it if the pedal
    was down (by events strictly before the key-up) at key-up."""
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    pedal = np.asarray(pedal, np.float64).reshape(-1, 2)
    out = notes[:, 1].copy()
    if not len(pedal):
        return out
    order = np.argsort(pedal[:, 0], kind="stable")
    pt, pv = pedal[order, 0], pedal[order, 1] > 0.5
    for i, off in enumerate(notes[:, 1]):
        j = np.searchsorted(pt, off, side="left") - 1          # the last pedal event before key-up
        if j >= 0 and pv[j]:
            ups = np.flatnonzero(~pv[j + 1:])
            out[i] = pt[j + 1 + ups[0]] if ups.size else np.inf
    return out


def note_ends(notes: np.ndarray, sound_off: np.ndarray, tail: float) -> np.ndarray:
    """When each note stops sounding: ``tail`` after its sound-off, or its key's next onset."""
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    end = sound_off + tail
    for p in np.unique(notes[:, 2]):
        idx = np.flatnonzero(notes[:, 2] == p)
        idx = idx[np.argsort(notes[idx, 0], kind="stable")]
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            end[a] = min(end[a], notes[b, 0])
    return end


def roll_pairs(notes: np.ndarray, pedal: np.ndarray, frames: int, rate: int, hop: int,
               tail: float) -> tuple[np.ndarray, np.ndarray]:
    """Every (frame, sounding note) of a clip: ``(frame index int64 [P], features float32
    [P, N_FEATURES])``, sorted by frame."""
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    off = sound_off_times(notes, pedal)
    end = note_ends(notes, off, tail)
    tau = (np.arange(frames) + 1.0) * hop / rate
    idx, feats = [], []
    buf = np.zeros(N_FEATURES)
    for i, (on, _key_up, pitch, vel) in enumerate(notes):
        a = np.searchsorted(tau, on, side="right")             # first frame with on < tau
        b = np.searchsorted(tau, end[i], side="right")         # frames with tau <= end
        for t in range(a, b):
            held = tau[t] <= off[i]
            note_features(pitch, vel / 127.0, tau[t] - on, held, 0.0 if held else tau[t] - off[i],
                          ONSET_TAUS, RELEASE_TAUS, buf)
            idx.append(t)
            feats.append(buf.copy())
    if not idx:
        return np.zeros(0, np.int64), np.zeros((0, N_FEATURES), np.float32)
    idx = np.array(idx, np.int64)
    order = np.argsort(idx, kind="stable")
    return idx[order], np.array(feats, np.float32)[order]
