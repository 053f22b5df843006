"""Engine configuration: frozen dataclasses validated at the edge (CLI, file load).

Everything inside the engine reads plain values from these; nothing here is touched
by the audio thread after ``Engine.prepare``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MIN_RATE, MAX_RATE = 22050, 192000
MIN_BLOCK, MAX_BLOCK = 1, 4096
CEILING_DBFS = -1.0
TUNING_MIN, TUNING_MAX = 400.0, 480.0     # A4 in Hz: from below baroque pitch to above any orchestra's
TRANSPOSE_MAX = 36                         # semitones either way
PLACEMENTS = ("callback", "thread", "rtmixer")   # where rendering runs (see audio_io)


VELOCITY_CURVE_RANGE = (0.25, 4.0)          # the exponent a key's velocity is raised to (1: as played)


def clamp_velocity_curve(curve: float) -> float:
    """The velocity curve held to its range (a live control: clamped, not refused; NaN: 1)."""
    v = float(curve)
    return 1.0 if v != v else min(VELOCITY_CURVE_RANGE[1], max(VELOCITY_CURVE_RANGE[0], v))


def clamp_tuning(a4_hz: float) -> float:
    """A4 in Hz held to TUNING_MIN..TUNING_MAX (a live control: clamped, not refused)."""
    return min(TUNING_MAX, max(TUNING_MIN, float(a4_hz)))


def clamp_transpose(semitones: float) -> int:
    """Semitones rounded and held to -TRANSPOSE_MAX..TRANSPOSE_MAX."""
    return int(min(TRANSPOSE_MAX, max(-TRANSPOSE_MAX, round(float(semitones)))))


# the reverb (``reverb``): its settings' defaults and ranges, here so that a client (the app) has
# them without the engine's kernels
REVERB_DEFAULTS = {"send": 0.0, "decay_s": 2.0, "damping": 0.5, "predelay_ms": 10.0}
DECAY_RANGE = (0.1, 20.0)       # seconds to -60 dB at low frequencies
DAMPING_RANGE = (0.05, 1.0)     # high-frequency decay over low-frequency decay
PREDELAY_MAX_MS = 200.0
SEND_STEPS = 127                # the send is a 7-bit value, as CC 91 carries it: a take replays it exactly


PAN_STEPS = 63                  # CC 10: 64 is the centre, 1 and 127 the sides (0 is 1, as GM2 says)


def pan_value(pan: float) -> float:
    """A pan of -1 (left) .. +1 (right) on CC 10's grid (NaN: the centre)."""
    v = float(pan)
    if v != v:
        return 0.0
    return round(min(1.0, max(-1.0, v)) * PAN_STEPS) / PAN_STEPS


def pan_from_cc(value: int) -> float:
    """CC 10's value (0..127) as a pan."""
    return (max(1, min(127, int(value))) - 64) / PAN_STEPS


def pan_to_cc(pan: float) -> int:
    """A pan on its grid as CC 10's value."""
    return 64 + int(round(pan_value(pan) * PAN_STEPS))


def clamp_room(decay_s: float, damping: float, predelay_ms: float) -> tuple[float, float, float]:
    """The reverb's decay, damping and pre-delay, each held to its range (NaN: the range's low end)."""
    def clamp(v, lo, hi):
        v = float(v)
        return lo if v != v else min(hi, max(lo, v))
    return (clamp(decay_s, *DECAY_RANGE), clamp(damping, *DAMPING_RANGE), clamp(predelay_ms, 0.0, PREDELAY_MAX_MS))


def send_value(send: float) -> float:
    """A reverb send of 0..1 on its 7-bit grid (NaN: 0)."""
    v = float(send)
    if v != v:
        return 0.0
    return round(min(1.0, max(0.0, v)) * SEND_STEPS) / SEND_STEPS


class ConfigError(ValueError):
    """A setting is out of range; the message names the setting, the value and the range."""


@dataclass(frozen=True)
class EnvelopeConfig:
    attack_s: float = 0.004
    decay_s: float = 0.25
    sustain: float = 0.7
    release_s: float = 0.18   # time to fall 80 dB after note-off

    def validate(self) -> EnvelopeConfig:
        for name in ("attack_s", "decay_s", "release_s"):
            v = getattr(self, name)
            if not (0.0 <= v <= 30.0):
                raise ConfigError(f"envelope {name}={v!r} must lie in 0..30 s")
        if not (0.0 <= self.sustain <= 1.0):
            raise ConfigError(f"envelope sustain={self.sustain!r} must lie in 0..1")
        return self


@dataclass(frozen=True)
class EngineConfig:
    sample_rate: int = 48000
    max_block: int = 4096
    polyphony: int = 16
    channels: int = 2                     # output channels: 1 mono, else stereo (left, right, left, right...)
    input_channels: int = 0               # audio input channels handed to the generator (duplex)
    bend_range: float = 2.0               # semitones, default; RPN 0 changes it per channel
    tuning_hz: float = 440.0              # concert pitch: A4 sounds at this frequency (415: baroque)
    transpose: int = 0                    # semitones added to every key played
    # a note's velocity as the model gets it: (v / 127) ** velocity_curve. Under 1 a light touch
    # plays louder (a stiff keyboard, a soft player), over 1 it takes a harder one
    velocity_curve: float = 1.0
    pan: float = 0.0                      # the dry mix, -1 (left) .. +1 (right) (stereo_pan; CC 10)
    midi_channels: tuple[int, ...] = tuple(range(16))   # channel filter, 0-based
    master_gain_db: float = 0.0
    # the reverb (``reverb``): send 0..1 (GM's CC 91; 0: off), decay to -60 dB at low frequencies,
    # damping (the top's decay over the lows'), pre-delay
    reverb_send: float = REVERB_DEFAULTS["send"]
    reverb_decay_s: float = REVERB_DEFAULTS["decay_s"]
    reverb_damping: float = REVERB_DEFAULTS["damping"]
    reverb_predelay_ms: float = REVERB_DEFAULTS["predelay_ms"]
    ceiling_dbfs: float = CEILING_DBFS
    # |x| above guard_limit * sqrt(max(1, voices sounding)) (before the limiter) counts as a broken
    # generator: 2.0 for one note or none, as the torture suite asks; a chord may sum higher
    # (measured: 16 fortissimo notes on the violin peak at 3.4, under 2 * sqrt(16) = 8)
    guard_limit: float = 2.0
    dc_cutoff_hz: float = 10.0
    crossfade_s: float = 0.03             # generator swap: the old one fades out as the new one fades in
    event_capacity: int = 65536
    device: str = "auto"                  # where a torch generator runs: auto (CUDA when present), cpu, cuda[:N]
    envelope: EnvelopeConfig = field(default_factory=EnvelopeConfig)

    def validate(self) -> EngineConfig:
        if not (MIN_RATE <= int(self.sample_rate) <= MAX_RATE):
            raise ConfigError(f"sample rate {self.sample_rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
        if not (MIN_BLOCK <= int(self.max_block) <= MAX_BLOCK):
            raise ConfigError(f"block size {self.max_block} is outside {MIN_BLOCK}..{MAX_BLOCK} samples")
        if not (1 <= self.polyphony <= 256):
            raise ConfigError(f"polyphony {self.polyphony} is outside 1..256 voices")
        if not (1 <= self.channels <= 64):
            raise ConfigError(f"{self.channels} output channels: need 1..64")
        if not (0 <= self.input_channels <= 64):
            raise ConfigError(f"{self.input_channels} input channels: need 0..64")
        if not (0.0 <= self.bend_range <= 48.0):
            raise ConfigError(f"pitch-bend range {self.bend_range} semitones is outside 0..48")
        if not (TUNING_MIN <= self.tuning_hz <= TUNING_MAX):
            raise ConfigError(f"tuning A4 = {self.tuning_hz} Hz is outside {TUNING_MIN:g}..{TUNING_MAX:g} Hz")
        if int(self.transpose) != self.transpose or not (-TRANSPOSE_MAX <= self.transpose <= TRANSPOSE_MAX):
            raise ConfigError(f"transpose {self.transpose} is not a whole number of semitones in "
                              f"-{TRANSPOSE_MAX}..{TRANSPOSE_MAX}")
        lo, hi = VELOCITY_CURVE_RANGE
        if not (lo <= self.velocity_curve <= hi):
            raise ConfigError(f"velocity curve {self.velocity_curve} is outside {lo:g}..{hi:g} (1: as played)")
        if not (-1.0 <= self.pan <= 1.0):
            raise ConfigError(f"pan {self.pan} is outside -1 (left) .. +1 (right)")
        if not self.midi_channels or any(not (0 <= c < 16) for c in self.midi_channels):
            raise ConfigError(f"MIDI channel filter {self.midi_channels!r}: channels are 1..16")
        if not (-60.0 <= self.master_gain_db <= 12.0):
            raise ConfigError(f"master gain {self.master_gain_db} dB is outside -60..+12 dB")
        for what, v, lo, hi, unit in (("reverb send", self.reverb_send, 0.0, 1.0, ""),
                                      ("reverb decay", self.reverb_decay_s, *DECAY_RANGE, " s"),
                                      ("reverb damping", self.reverb_damping, *DAMPING_RANGE, ""),
                                      ("reverb pre-delay", self.reverb_predelay_ms, 0.0, PREDELAY_MAX_MS, " ms")):
            if not (lo <= v <= hi):
                raise ConfigError(f"{what} {v}{unit} is outside {lo:g}..{hi:g}{unit}")
        if not (-24.0 <= self.ceiling_dbfs <= 0.0):
            raise ConfigError(f"ceiling {self.ceiling_dbfs} dBFS is outside -24..0 dBFS")
        d = self.device
        if not (d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit())):
            raise ConfigError(f"device {d!r}: use auto, cpu, cuda or cuda:N")
        self.envelope.validate()
        return self


def parse_channels(text: str) -> tuple[int, ...]:
    """'all' or '1,2,10' or '1-4' (1-based, as musicians count) -> 0-based tuple."""
    text = text.strip().lower()
    if text in ("", "all", "omni"):
        return tuple(range(16))
    out: set[int] = set()
    for part in text.split(","):
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                out.update(range(a, b + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise ConfigError(f"MIDI channel list {text!r}: use 'all', '1,2,10' or '1-4'") from None
    if any(not (1 <= c <= 16) for c in out):
        raise ConfigError(f"MIDI channel list {text!r}: channels are 1..16")
    return tuple(sorted(c - 1 for c in out))
