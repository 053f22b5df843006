"""The reverb: a feedback delay network (Jot and Chaigne 1991), Numba, first in the post chain.

The shipped models were trained on FluidR3 rendered dry (``soundfont_data``: no reverb), and a
dry instrument on stage or in headphones sounds like it was played in a cupboard. This is the
room a keyboard's own reverb gives, set by a decay time, not by a feedback amount.

Per sample, mono in, mono or stereo out, send style (``out = dry + wet``; the send scales what goes in, as GM's CC 91,
Reverb Send Level, does, so turning it down lets the tail ring out):
- ``dry * send`` (the send smoothed over 10 ms: no zipper noise) -> a pre-delay line;
- four Schroeder allpasses in series (4.8, 3.6, 12.7 and 9.3 ms; gains 0.75 and 0.625), which
  thicken the first echoes without colouring the spectrum (an allpass passes every frequency at
  unit gain);
- into ``LINES`` = 8 delay lines of 29.7 to 73.7 ms (prime lengths in samples at the rate, so no
  two share a period), with signs ``IN_SIGNS``, over ``sqrt(8)`` (the impulse's energy, shared);
- each line read with a delay that swings slowly around its length (``MOD_MS`` = 0.25 ms either
  way, at ``MOD_HZ`` = 0.31 to 0.97 Hz, a different rate and phase per line; 4-point Lagrange
  interpolation). Eight fixed lines of 406 ms in all have modes 2.5 Hz apart, and in a long tail
  each decays alone: measured, the late tail of an 8 s decay had a spectrum of discrete lines
  (its normalised fourth moment 7.2, against 2.0 for noise), a metallic ring on a held chord.
  Swung, 3.2. A held 440 Hz tone's tail keeps 65% of its energy within 1 Hz of the note (87%
  unswung). Tried instead and dropped: a slowly turning orthogonal rotation of pairs of lines
  after the feedback matrix (lossless, so no interpolation loss), which spread that tone's tail
  over 30 Hz (4% within 1 Hz): a detuned tail. The interpolation costs the top octave: with
  damping 1 and an 8 s decay, T30 is 7.9 s below 4 kHz, 7.2 s at 4-8 kHz, 5.2 s at 8-12 kHz,
  2.7 s at 12-16 kHz and 1.4 s at 16-20 kHz (48 kHz; at 96 kHz and up the audio band is clear
  of it). A hall's air absorbs the top octave faster than that anyway;
- each line's output through its absorption filter, a one-pole lowpass whose gain is
  ``g = 10 ** (-3 m / (fs T_low))`` at 0 Hz and ``h = 10 ** (-3 m / (fs T_high))`` at Nyquist for
  a line of ``m`` samples (``T_high = damping * T_low``): every path through the network loses
  60 dB in ``T_low`` at low frequencies and in ``T_high`` at the top whatever delays it takes
  (Jot's absorbent filters). The pole is ``b = (1 - h / g) / (1 + h / g)``, the filter
  ``y = g (1 - b) x + b y[-1]``;
- the wet output: the filtered lines summed with signs ``OUT_SIGNS`` (stereo: that is the left
  channel's, and the right's sums them with ``OUT_SIGNS_RIGHT``, orthogonal to it, so the two
  tails are uncorrelated: a room around the listener, not a point in the middle; the dry signal
  stays in the middle), times
  ``sqrt(1 - r ** 2) / r`` with ``r = 10 ** (-3 m_mean / (fs T_low))`` (one pass's gain): an
  impulse's echoes carry ``r ** 2`` of its energy on the first pass and ``r ** 2 / (1 - r ** 2)``
  over all, so the impulse response carries about the impulse's own energy at any decay (below
  4 kHz 1.0 to 1.2 times, measured at 0.3 to 12 s) and the decay knob does not move the level;
- a new decay or damping glides in: the filters' gains and poles and the output gain move to
  their new values with the send's 10 ms time constant, sample by sample (so at any block
  size alike); a new pre-delay crossfades from the old read point to the new one over 10 ms.
  Measured with a 440 Hz tone playing through the reverb, the wet's peak above 3 kHz in the
  0.15 s after the change over its peak in the 0.1 s before: stepped at once, 36 (decay 2 to
  20 s), 8 (damping 0.7 to 0.2) and 14 (pre-delay 10 to 80 ms): clicks; gliding, 0.64, 0.82
  and 0.86 (``tests/test_reverb.py``);
- fed back through the 8 x 8 Hadamard matrix over ``sqrt(8)`` (orthogonal: lossless, so all
  decay is in the absorption filters, and every line feeds every other).
The signs are not a row of the Hadamard matrix (three negatives, where its rows have none or
four), so the input excites, and the output hears, every line from the first pass on.

Idle: once the room holds nothing over -140 dBFS (``QUIET``) and nothing goes in (the send at 0,
or a silent block), its state is cleared and ``process`` returns without touching the blocks
until a block with sound comes and the send is up: a reverb that is off, or has nothing to play,
costs nothing, and one that is off leaves the engine's output bit-identical to having none. A
panic or All Sound Off clears it (``reset``). The swing's phase is a function of the engine's
sample clock, not of the reverb's own count. So a take begun on a silent room replays exactly
on the take's own clock, room included (``tests/test_reverb.py``).

Threading: ``process`` and ``reset`` on the render side. The control side sets the decay,
damping and pre-delay with ``set_room`` (a new coefficient array, published by one reference
store, read once per block) and the send with ``set_send`` (one float store into a one-element
array, which the render side also writes at a CC 91). Nothing on the render side allocates.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .config import PREDELAY_MAX_MS, REVERB_DEFAULTS, clamp_room, send_value
from .post_chain import peak_abs

LINES = 8
LINE_MS = (29.7, 37.1, 41.1, 43.7, 53.3, 59.9, 67.7, 73.7)
DIFFUSER_MS = (4.77, 3.60, 12.73, 9.31)          # Dattorro's plate's input diffusers
DIFFUSER_GAIN = (0.75, 0.75, 0.625, 0.625)
MOD_MS = 0.25                                    # each line's delay swings this much either way...
MOD_HZ = (0.31, 0.53, 0.41, 0.67, 0.37, 0.83, 0.47, 0.97)   # ...at these rates (all different)
IN_SIGNS = np.array([1, 1, -1, 1, -1, 1, 1, -1], np.float64)
OUT_SIGNS = np.array([1, -1, 1, 1, 1, -1, -1, 1], np.float64)
# the right channel's tap: orthogonal to the left's (they agree on four lines and differ on
# four), so the two tails are uncorrelated; three negatives, like the left's, so it is no row
# of the Hadamard matrix either
OUT_SIGNS_RIGHT = np.array([1, -1, 1, 1, -1, 1, 1, -1], np.float64)
MONO_TAP = OUT_SIGNS[None, :].copy()
STEREO_TAPS = np.stack([OUT_SIGNS, OUT_SIGNS_RIGHT])

QUIET = 1e-7                    # -140 dBFS: a tail under this is gone
ANCHOR = 4096                   # the swing's phasors are computed exactly every this many samples
SMOOTH_S = 0.01

# coefficient slots
C_SMOOTH, C_PRE, C_NORM, C_AP, C_G, C_B = 0, 1, 2, 3, 3 + 4, 3 + 4 + LINES
C_FADE, N_COEF = 3 + 4 + 2 * LINES, 4 + 4 + 2 * LINES     # the pre-delay's crossfade step
# state slots: the smoothed send, the smoothed output gain, each line's filter memory, then each
# line's smoothed filter gain and pole
S_SEND, S_NORM, S_LP = 0, 1, 2
S_G, S_B = S_LP + LINES, S_LP + 2 * LINES
# and the pre-delay: the one read, the one it is fading from, how far the fade has gone (1: done)
S_PRE, S_PRE_FROM, S_PRE_FADE, N_STATE = S_B + LINES, S_B + LINES + 1, S_B + LINES + 2, S_B + LINES + 3


def _prime_at_least(n: int) -> int:
    n = max(2, int(n))
    while any(n % k == 0 for k in range(2, int(math.isqrt(n)) + 1)):
        n += 1
    return n


def line_lengths(sample_rate: int) -> list[int]:
    """The delay lines' lengths in samples at ``sample_rate``: primes, all different."""
    out: list[int] = []
    for ms in LINE_MS:
        m = _prime_at_least(round(ms * sample_rate / 1000.0))
        while m in out:
            m = _prime_at_least(m + 1)
        out.append(m)
    return out


class Reverb:
    def __init__(self, sample_rate: int, send: float = REVERB_DEFAULTS["send"],
                 decay_s: float = REVERB_DEFAULTS["decay_s"], damping: float = REVERB_DEFAULTS["damping"],
                 predelay_ms: float = REVERB_DEFAULTS["predelay_ms"], send_cell: np.ndarray | None = None):
        """``send_cell``: a one-element float64 array to hold the send (the engine's, so the send
        outlives a new ``Reverb`` at a device change); None: its own, set to ``send``."""
        self.sample_rate = sr = int(sample_rate)
        self.lines = line_lengths(sr)
        diffusers = [_prime_at_least(round(ms * sr / 1000.0)) for ms in DIFFUSER_MS]
        pre = int(math.ceil(PREDELAY_MAX_MS * sr / 1000.0)) + 1
        self.swing = MOD_MS * sr / 1000.0          # samples either way
        span = int(math.ceil(self.swing)) + 3          # room for the swing and the cubic's taps
        # every delay a ring of a power of two (indexed with a mask, not a modulo: measured, the
        # modulos were most of the kernel's time), read at its delay behind the write
        need = [pre, *(d + 1 for d in diffusers), *(m + span for m in self.lines)]
        size = [1 << (k - 1).bit_length() for k in need]
        self.ring_mask = np.array([k - 1 for k in size], np.int64)
        self.ring_off = np.concatenate(([0], np.cumsum(size)[:-1])).astype(np.int64)
        self.diffuser_delay = np.array(diffusers, np.int64)
        self.max_predelay = pre - 1
        self.mem = np.zeros(int(sum(size)), np.float64)
        self.state = np.zeros(N_STATE, np.float64)
        # each line's swing: a unit phasor whose phase at engine sample t is phase + omega t,
        # computed exactly at every multiple of ANCHOR and turned by omega each sample between
        # (``swing_tab`` rows: cos omega, sin omega, omega, phase; ``lfo``: the phasors at the
        # sample last rendered). So the swing is a function of the clock alone, whatever the
        # blocks: a take replayed on its own clock swings alike, at any block size
        omega = [2 * math.pi * f / sr for f in MOD_HZ]
        self.swing_tab = np.array([(math.cos(w), math.sin(w), w, 2 * math.pi * i / LINES)   # phases spread
                                   for i, w in enumerate(omega)])
        self.lfo = np.zeros((LINES, 2), np.float64)
        self.line_delay = np.array(self.lines, np.float64)
        self.pos = np.zeros(2, np.int64)   # the rings' write position; the clock ``lfo`` is ready for
        self.pos[1] = -1
        self.clock = 0                   # samples processed, where the caller gives no clock
        self.scratch = np.zeros(LINES, np.float64)
        self.idle = True
        if send_cell is None:
            self.send = np.zeros(1, np.float64)
            self.set_send(send)
        else:
            self.send = send_cell
        self.set_room(decay_s, damping, predelay_ms)
        self._settle()

    def _settle(self) -> None:
        """The gliding coefficients at their targets (render side: no allocation)."""
        c, st = self.coef, self.state
        st[S_NORM] = c[C_NORM]
        st[S_G:S_G + LINES] = c[C_G:C_G + LINES]
        st[S_B:S_B + LINES] = c[C_B:C_B + LINES]
        st[S_PRE] = st[S_PRE_FROM] = c[C_PRE]
        st[S_PRE_FADE] = 1.0

    # -- control side -----------------------------------------------------------------
    def set_send(self, send: float) -> float:
        """The send, 0..1 on its 7-bit grid; returned as set."""
        v = send_value(send)
        self.send[0] = v                 # NB: one float store, read per sample by the render side
        return v

    def set_room(self, decay_s: float, damping: float, predelay_ms: float) -> tuple[float, float, float]:
        """Decay (s to -60 dB, low frequencies), damping (the top's decay over it) and pre-delay
        (ms), each clamped to its range; returned as set."""
        self.decay_s, self.damping, self.predelay_ms = decay_s, damping, predelay_ms = clamp_room(
            decay_s, damping, predelay_ms)
        sr = self.sample_rate
        c = np.zeros(N_COEF, np.float64)
        c[C_SMOOTH] = 1.0 - math.exp(-1.0 / (SMOOTH_S * sr))
        c[C_PRE] = min(round(predelay_ms * sr / 1000.0), self.max_predelay)
        c[C_FADE] = 1.0 / (SMOOTH_S * sr)
        m_mean = sum(self.lines) / LINES
        r = 10.0 ** (-3.0 * m_mean / (sr * decay_s))
        c[C_NORM] = math.sqrt(1.0 - r * r) / r
        c[C_AP:C_AP + 4] = DIFFUSER_GAIN
        for i, m in enumerate(self.lines):
            g = 10.0 ** (-3.0 * m / (sr * decay_s))
            h = 10.0 ** (-3.0 * m / (sr * decay_s * damping))
            c[C_G + i] = g
            c[C_B + i] = (1.0 - h / g) / (1.0 + h / g)
        self.coef = c                    # NB: one reference store; the render side reads it once a block
        return decay_s, damping, predelay_ms

    @property
    def settings(self) -> dict:
        return {"send": float(self.send[0]), "decay_s": self.decay_s, "damping": self.damping,
                "predelay_ms": self.predelay_ms}

    # -- render side -------------------------------------------------------------------
    def reset(self) -> None:
        """Silence: every delay and filter cleared, the smoothed send where the send is."""
        self.mem[:] = 0.0
        self.state[:] = 0.0
        self.state[S_SEND] = self.send[0]
        self._settle()
        self.pos[0] = 0
        self.idle = True

    def process(self, buf: np.ndarray, n: int, t0: int | None = None, right: np.ndarray | None = None) -> None:
        """``buf[:n] += wet`` (module docstring); ``t0``: the engine's sample clock at ``buf[0]``
        (None: the reverb counts its own samples). ``right``: stereo, the right channel, holding
        the same dry signal as ``buf`` (the input is ``buf``), which gets the right tap's wet."""
        if t0 is None:
            t0 = self.clock
        self.clock = t0 + n
        if self.idle:
            if self.send[0] == 0.0 or peak_abs(buf, n) == 0.0:
                return                   # nothing in the room and nothing going in
            self._settle()               # a silent room takes its settings and its send at once
            self.state[S_SEND] = self.send[0]
            self.idle = False
        if self.pos[1] != t0:            # a new clock (a start, a wake, a jump): the swing found there
            seek_swing(self.lfo, self.swing_tab, t0)
            self.pos[1] = t0
        tail = reverb_process(buf, n, self.send, self.state, self.coef, self.mem, self.ring_off, self.ring_mask,
                              self.diffuser_delay, self.pos, self.scratch, IN_SIGNS,
                              MONO_TAP if right is None else STEREO_TAPS, self.line_delay, self.swing, self.lfo,
                              self.swing_tab, buf if right is None else right)
        if tail < QUIET and peak_abs(self.mem, self.mem.shape[0]) < QUIET and (
                self.send[0] == 0.0 or peak_abs(buf, n) < QUIET):
            self.reset()                 # the room has gone quiet: exactly silent, and idle until fed


@njit(nogil=True, cache=True)
def turn_swing(lfo, tab, t):
    """``lfo`` from the phasors at sample ``t - 1`` to those at ``t``: exact at an anchor (a
    multiple of ``ANCHOR``), else turned by one sample. The only place they move, so their value
    at ``t`` depends on ``t`` alone."""
    if t & (ANCHOR - 1) == 0:
        for L in range(lfo.shape[0]):
            a = tab[L, 3] + tab[L, 2] * t
            lfo[L, 0] = math.cos(a)
            lfo[L, 1] = math.sin(a)
    else:
        for L in range(lfo.shape[0]):
            c, s = lfo[L, 0], lfo[L, 1]
            lfo[L, 0] = c * tab[L, 0] - s * tab[L, 1]
            lfo[L, 1] = s * tab[L, 0] + c * tab[L, 1]


@njit(nogil=True, cache=True)
def seek_swing(lfo, tab, t0):
    """``lfo`` as it stands after sample ``t0 - 1`` had the swing run from its last anchor on.
    (A kernel of its own: with the phasors computed inside ``reverb_process`` from three more
    arguments, that kernel's first 2000 or so calls in a process held 312 KB more in 1598
    objects of 200 bytes, measured with tracemalloc, then nothing more; why was not found.)"""
    if t0 <= 0:
        return
    start = (t0 - 1) - ((t0 - 1) & (ANCHOR - 1))
    for t in range(start, t0):
        turn_swing(lfo, tab, t)


@njit(nogil=True, cache=True)
def reverb_process(buf, n, send, state, coef, mem, off, mask, diffuser_delay, pos_arr, f, in_signs, out_signs,
                   delay, swing, lfo, tab, right):
    """Add the reverb of ``buf[:n]`` to it in place (``pos_arr``: the rings' write position, and
    the engine sample of ``buf[0]``, for which ``lfo`` is ready); with two rows of ``out_signs``
    (stereo), the second tap's wet to ``right[:n]`` too. Returns the block's largest |wet|."""
    s = state[0]
    k = coef[0]
    pre_to = coef[1]
    pre = int(state[S_PRE])
    pre_from = int(state[S_PRE_FROM])
    fade = state[S_PRE_FADE]
    fade_step = coef[C_FADE]
    target_norm = coef[2]
    norm = state[1]
    pos = pos_arr[0]
    clock = pos_arr[1]
    peak = 0.0
    lines = f.shape[0]
    taps = out_signs.shape[0]
    inv = 1.0 / math.sqrt(lines)
    for i in range(n):
        turn_swing(lfo, tab, clock + i)
        target = send[0]
        s += (target - s) * k
        if target == 0.0 and s < 1e-6:
            s = 0.0
        x = buf[i] * s
        # pre-delay: write, then read ``pre`` samples back
        o, m = off[0], mask[0]
        mem[o + (pos & m)] = x
        if pre_to != pre and fade >= 1.0:      # a new pre-delay: crossfade to its read point
            pre_from = pre
            pre = int(pre_to)
            fade = 0.0
        v = mem[o + ((pos - pre) & m)]
        if fade < 1.0:
            fade = min(1.0, fade + fade_step)
            v = fade * v + (1.0 - fade) * mem[o + ((pos - pre_from) & m)]
        # the diffusers: w = v + g z, y = z - g w (z: w delayed by the diffuser's delay)
        for a in range(4):
            o, m = off[1 + a], mask[1 + a]
            z = mem[o + ((pos - diffuser_delay[a]) & m)]
            g = coef[3 + a]
            w = v + g * z
            mem[o + (pos & m)] = w
            v = z - g * w
        # the lines' outputs through their absorption filters
        wet = 0.0
        wet_r = 0.0
        for L in range(lines):
            o, m = off[5 + L], mask[5 + L]
            g = state[2 + lines + L]                   # the filter's gain and pole glide to a new decay's
            g += (coef[7 + L] - g) * k
            state[2 + lines + L] = g
            b = state[2 + 2 * lines + L]
            b += (coef[7 + lines + L] - b) * k
            state[2 + 2 * lines + L] = b
            d = delay[L] + swing * lfo[L, 1]           # this sample's delay, around the line's length
            back = int(d)
            fr = d - back
            # 4-point Lagrange (cubic) interpolation between the samples ``back`` and ``back + 1`` ago
            x0 = mem[o + ((pos - back + 1) & m)]
            x1 = mem[o + ((pos - back) & m)]
            x2 = mem[o + ((pos - back - 1) & m)]
            x3 = mem[o + ((pos - back - 2) & m)]
            read = (x1 + fr * (-x0 / 3.0 - x1 / 2.0 + x2 - x3 / 6.0 + fr * ((x0 + x2) / 2.0 - x1
                    + fr * ((x3 - x0) / 6.0 + (x1 - x2) / 2.0))))
            y = g * (1.0 - b) * read + b * state[2 + L]
            if abs(y) < 1e-30:
                y = 0.0
            state[2 + L] = y
            f[L] = y
            wet += out_signs[0, L] * y
            if taps == 2:
                wet_r += out_signs[1, L] * y
        # the Hadamard matrix (butterflies), over sqrt(lines)
        h = 1
        while h < lines:
            for a in range(0, lines, 2 * h):
                for b2 in range(a, a + h):
                    p, q = f[b2], f[b2 + h]
                    f[b2] = p + q
                    f[b2 + h] = p - q
            h *= 2
        for L in range(lines):
            mem[off[5 + L] + (pos & mask[5 + L])] = (f[L] + in_signs[L] * v) * inv
        norm += (target_norm - norm) * k          # a new decay's level glides in with the send's time
        wet *= norm
        if abs(wet) > peak:
            peak = abs(wet)
        buf[i] += wet
        if taps == 2:
            wet_r *= norm
            if abs(wet_r) > peak:
                peak = abs(wet_r)
            right[i] += wet_r
        pos += 1
    state[0] = s
    state[1] = norm
    state[S_PRE] = pre
    state[S_PRE_FROM] = pre_from
    state[S_PRE_FADE] = fade
    pos_arr[0] = pos
    pos_arr[1] = clock + n
    return peak


def warm_up() -> None:
    """Compile (or load from Numba's cache) the render side's kernels now, not at the first CC 91."""
    r = Reverb(8000, send=1.0)
    buf = np.zeros(16, np.float32)
    buf[0] = 1.0
    r.process(buf, 16)
    r.reset()
    r.process(buf, 16, right=buf.copy())

