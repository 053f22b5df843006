"""Stereo pan (Numba): where the instrument's dry mix sits between the left and right speakers.

The generator renders one mono mix, so the pan places the whole instrument: GM's CC 10 on any
channel the engine listens to (the last one wins), ``Engine.set_pan``, the app's pan knob, or
``--pan``. A per-channel pan would need a mix per MIDI channel, which no generator renders.

- **Law:** equal power, scaled so the centre is the unpanned mix (each side at unity): left
  ``sqrt(2) cos(theta)``, right ``sqrt(2) sin(theta)``, ``theta = (pan + 1) pi / 4``. Hard left
  is +3 dB on the left and silence on the right, the same acoustic power as the centre.
- **The grid:** a pan lives on CC 10's 7-bit grid (``config.pan_value``), so a take's MIDI replays it
  exactly: CC 10 of 0 and 1 are both hard left (GM2), 64 the centre, 127 hard right.
- **Only the dry mix moves.** The reverb's send is taken from the unpanned mix and its two tails
  stay around the centre, as a room would; the limiter after it is linked.
- **No zipper noise:** each side's gain glides to its target with a 10 ms one-pole, per sample.
- **Mono devices** have nothing to pan: the mono chain is left as it is.

Threading: ``pan_dry`` runs on the render side and writes only into the arrays it is given;
the pan itself is one float store from the control side (``Engine.pan``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

GLIDE_S = 0.01                  # each side's gain reaches its target with this time constant


@njit(nogil=True, cache=True, fastmath=False)
def pan_gains(pan: float) -> tuple[float, float]:
    """(left, right) gains of the dry mix at ``pan``; exactly (1, 1) at the centre (the
    formula gives 1.0000000000000002 on the left there: the engine would never see it settle)."""
    if pan == 0.0:
        return 1.0, 1.0
    theta = (min(1.0, max(-1.0, pan)) + 1.0) * (math.pi / 4.0)
    return math.sqrt(2.0) * math.cos(theta), math.sqrt(2.0) * math.sin(theta)


def glide_coefficient(sample_rate: int) -> float:
    return 1.0 - math.exp(-1.0 / (GLIDE_S * sample_rate))


@njit(nogil=True, cache=True)
def pan_dry(left: np.ndarray, right: np.ndarray, dry: np.ndarray, n: int, pan: float,
            state: np.ndarray, coef: float) -> None:
    """``left`` and ``right`` hold ``dry`` (``[n]``, the unpanned mix) plus whatever was added to
    it (the reverb's tails); their dry parts become the panned ones. ``state``: the two gains as
    they stand (they glide to ``pan``'s over ``GLIDE_S``)."""
    tl, tr = pan_gains(pan)
    gl, gr = state[0], state[1]
    if gl == tl == 1.0 and gr == tr == 1.0:
        return                                       # the centre, settled: nothing to do
    for i in range(n):                               # (settled elsewhere, the glide adds 0)
        gl += (tl - gl) * coef
        gr += (tr - gr) * coef
        if abs(gl - tl) < 1e-7 and abs(gr - tr) < 1e-7:
            gl, gr = tl, tr      # settled, at the same sample however the blocks fall (a take replays exactly)
        d = dry[i]
        left[i] += (gl - 1.0) * d
        right[i] += (gr - 1.0) * d
    state[0] = gl
    state[1] = gr


def warm_up() -> None:
    """Compile (or read from Numba's cache) the kernels off the render side."""
    x = np.zeros(4, np.float32)
    pan_dry(x, x.copy(), x.copy(), 4, 0.5, np.ones(2), glide_coefficient(48000))
