"""The default instrument: the DDSP synthesis core driven by hand-set spectral envelopes.

Plays with no checkpoint at all. Per frame and voice it derives harmonic amplitudes from
the note (f0), velocity, channel volume/expression, aftertouch and its controls: a spectral
tilt that brightens with velocity and pressure, two fixed body resonances, a mild odd/even
balance, a taper below Nyquist (no aliasing), and a little breath noise. The mod wheel sets
vibrato depth. The neural DDSP family replaces ``_targets`` with a trained decoder and keeps
the same core.

Threading: as ``HarmonicNoiseCore``; control values are read from ``cond.controls``
(clamped by the engine), so the GUI or MIDI learn never touch this object directly.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numba import njit

from .checkpoint import finite_number
from .generator import Conditioning, Control, Generator, GeneratorInfo
from .harmonic_noise import HarmonicNoiseCore

CONTROLS = (
    Control("brightness", -1.0, 1.0, 0.0, "", cc=74, description="spectral tilt; velocity adds to it"),
    Control("breath", 0.0, 1.0, 0.2, "", cc=2, description="level of the filtered-noise component"),
    Control("vibrato_rate", 2.0, 9.0, 5.5, "Hz", cc=76, description="vibrato speed"),
    Control("vibrato_depth", 0.0, 100.0, 30.0, "cents", cc=77, description="vibrato depth at full mod wheel"),
)
VOICE_PEAK = 0.25     # amplitude of one voice at full velocity, volume and expression


@njit(nogil=True, cache=True)
def hand_set_targets(mask, f0, velocity, gain, pressure, brightness, breath, sample_rate,
                     band_centres, amp, mags):
    nyq = 0.5 * sample_rate
    top = min(0.45 * sample_rate, 18000.0)
    fade = 0.08 * sample_rate
    n_h = amp.shape[1]
    for v in range(mask.shape[0]):
        if not mask[v]:
            continue
        vel = velocity[v]
        level = VOICE_PEAK * math.pow(10.0, -24.0 * (1.0 - vel) / 20.0) * gain[v]
        b = 0.15 + 0.55 * vel + 0.3 * pressure[v] + 0.5 * brightness
        b = min(1.2, max(-0.3, b))
        slope = 2.3 - 1.5 * b
        energy = 0.0
        for k in range(n_h):
            fk = (k + 1) * f0[v]
            if fk >= top or f0[v] <= 0.0:
                amp[v, k] = 0.0
                continue
            a = math.pow(k + 1.0, -slope)
            l1 = math.log2(fk / 300.0) / 0.5
            l2 = math.log2(fk / 2800.0) / 0.6
            a *= 1.0 + 1.5 * math.exp(-0.5 * l1 * l1) + (0.6 + b) * math.exp(-0.5 * l2 * l2)
            if k % 2 == 1:
                a *= 0.75
            if fk > top - fade:
                a *= (top - fk) / fade
            amp[v, k] = a
            energy += a * a
        norm = level / math.sqrt(energy) if energy > 0.0 else 0.0
        for k in range(n_h):
            amp[v, k] *= norm
        for j in range(mags.shape[1]):
            fc = band_centres[j]
            shape = math.sqrt(fc / 1000.0) / (1.0 + (fc / 8000.0) ** 2)
            mags[v, j] = breath * level * 0.12 * shape if fc < nyq else 0.0


class DefaultInstrument(Generator):
    def __init__(self, params: dict | None = None):
        self.params = dict(params or {})
        controls = tuple(replace(c, default=float(self.params[c.name])) if c.name in self.params else c
                         for c in CONTROLS)
        self.info = GeneratorInfo(
            family="default", name=self.params.get("name", "livewave default"),
            sample_rate=None, hop=0, lookahead=0, polyphonic=True, conditioning="voices",
            controls=controls,
            card={"description": "Hand-set harmonic-plus-noise instrument (no training).",
                  "family": "default"},
        )
        self.core: HarmonicNoiseCore | None = None
        self._cond: Conditioning | None = None

    @classmethod
    def from_checkpoint(cls, config: dict, card: dict, tensors: dict) -> DefaultInstrument:
        """A preset of the hand-set instrument: a name and default control values."""
        params = {"name": str(config.get("name", "livewave default"))[:200]}
        for c in CONTROLS:
            if c.name in config:
                params[c.name] = finite_number(config[c.name], c.name, c.minimum, c.maximum)
        inst = cls(params)
        inst.info = replace(inst.info, card={**inst.info.card, **card})
        return inst

    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        self.core = HarmonicNoiseCore(sample_rate, voices)
        self.info = GeneratorInfo(**{**self.info.__dict__, "hop": self.core.hop})
        nb = self.core.n_bands
        self.band_centres = (np.arange(nb) + 0.5) * (0.5 * sample_rate / nb)
        self.sample_rate = sample_rate
        self._targets_cb = self._targets   # one bound method, not one per block

    def reset(self) -> None:
        self.core.reset()

    def _targets(self, t: int, mask: np.ndarray) -> None:
        c = self._cond
        ctl = c.controls
        hand_set_targets(mask, c.f0, c.velocity, c.gain, c.pressure, ctl[0], ctl[1],
                         float(self.sample_rate), self.band_centres, self.core.new_amp, self.core.new_mags)

    def render(self, cond: Conditioning, out: np.ndarray) -> None:
        core = self.core
        self._cond = cond
        ctl = cond.controls
        core.vib_rate = ctl[2]
        np.multiply(cond.mod, ctl[3] / 1200.0, out=core.vib_depth)
        core.render(cond, out, self._targets_cb)
