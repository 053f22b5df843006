"""Per-voice amplitude envelopes (Numba), sample-accurate.

Threading: ``envelope_block`` runs on the render side, ``nogil``, writes into arrays it is
given, allocates nothing. Stages live in an int8 array ``[voices]``, levels in float64.
Because the state advances one sample at a time, the result does not depend on how a
stretch of time is split into calls (block-size independence).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

IDLE, ATTACK, DECAY, RELEASE, KILL = 0, 1, 2, 3, 4
SILENT = 1e-4            # -80 dB: a releasing voice below this is finished
KILL_SECONDS = 0.001     # all-sound-off and steal fades: 1 ms, linear


def envelope_coefficients(sample_rate: float, attack_s: float, decay_s: float,
                          sustain: float, release_s: float) -> np.ndarray:
    """[attack_inc, decay_coef, sustain, release_coef, kill_dec] for ``envelope_block``."""
    sr = float(sample_rate)
    a_inc = 1.0 / max(1.0, attack_s * sr)
    d_coef = math.exp(-3.0 / max(1.0, decay_s * sr))            # ~-26 dB of the gap per decay_s
    r_coef = math.pow(SILENT, 1.0 / max(1.0, release_s * sr))   # -80 dB in release_s
    k_dec = 1.0 / max(1.0, KILL_SECONDS * sr)
    return np.array([a_inc, d_coef, sustain, r_coef, k_dec], np.float64)


@njit(nogil=True, cache=True)
def envelope_block(stage, level, out, n, coef):
    """Advance every voice ``n`` samples, writing levels to ``out[v, :n]``.
    A voice that finishes its release (or kill fade) goes to IDLE; the caller frees it."""
    a_inc = coef[0]
    d_coef = coef[1]
    sus = coef[2]
    r_coef = coef[3]
    k_dec = coef[4]
    for v in range(stage.shape[0]):
        st = stage[v]
        lv = level[v]
        if st == IDLE:
            for i in range(n):
                out[v, i] = 0.0
            continue
        for i in range(n):
            if st == ATTACK:
                lv += a_inc
                if lv >= 1.0:
                    lv = 1.0
                    st = DECAY
            elif st == DECAY:
                lv = sus + (lv - sus) * d_coef
            elif st == RELEASE:
                lv *= r_coef
                if lv < SILENT:
                    lv = 0.0
                    st = IDLE
            elif st == KILL:
                lv -= k_dec
                if lv <= 0.0:
                    lv = 0.0
                    st = IDLE
            else:
                lv = 0.0
            out[v, i] = lv
        stage[v] = st
        level[v] = lv
