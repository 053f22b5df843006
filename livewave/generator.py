"""The generator contract every family implements (DDSP, GAN and flow vocoders, ...).

Threading: ``prepare`` and ``reset`` run off the audio path or between blocks on the
render side; ``render`` runs on the render side (audio callback or render thread) and
must not allocate, lock, log or do I/O. The engine owns one ``Conditioning`` object
whose arrays it updates in place before each ``render`` call.

Families register under the entry-point group ``livewave.generators``; a new family is
a new module plus one line in ``pyproject.toml``, not an edit of the engine.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

ENTRY_POINT_GROUP = "livewave.generators"
BUILTIN_FAMILIES = {"default": "livewave.default_instrument:DefaultInstrument",
                    "ddsp": "livewave.ddsp_instrument:DDSPInstrument",
                    "melgan": "livewave.vocoder_instrument:MelGANVocoder",
                    "flow": "livewave.vocoder_instrument:FlowVocoderInstrument",
                    "istft": "livewave.vocoder_instrument:ISTFTVocoderInstrument",
                    "hifigan": "livewave.vocoder_instrument:HiFiGANVocoder",
                    "melgan_reference": "livewave.vocoder_instrument:MelGANReferenceVocoder",
                    "chain": "livewave.vocoder_chain:VocoderChain",
                    "midi2mel": "livewave.midi_to_mel_instrument:MidiToMelInstrument"}

# Voice restart codes, set by the engine on the first call after a voice (re)starts.
RESTART_NONE = 0
RESTART_FRESH = 1    # a free voice starts: forget its phase and recurrent state
RESTART_LEGATO = 2   # a sounding voice is retriggered or stolen: keep phase, move to the new note


@dataclass(frozen=True)
class Control:
    """One performer-facing control; the GUI builds its panel from these."""
    name: str
    minimum: float
    maximum: float
    default: float
    unit: str = ""
    cc: int | None = None        # suggested MIDI CC for MIDI learn
    description: str = ""

    def clamp(self, value: float) -> float:
        """NaN gives the default; +-Inf and out-of-range values are clamped."""
        if value != value:  # NaN
            return self.default
        return min(self.maximum, max(self.minimum, value))


@dataclass(frozen=True)
class GeneratorInfo:
    family: str                       # 'default', 'ddsp', 'melgan', 'hifigan', 'flow', ...
    name: str
    sample_rate: int | None           # model's own rate; None = runs at any device rate
    hop: int                          # conditioning frame hop in samples at the model rate
    lookahead: int = 0                # samples of delay the generator adds (declared latency)
    polyphonic: bool = True           # False: one stream for all voices (vocoders)
    conditioning: str = "voices"      # 'voices' (f0/loudness per voice), 'mel', 'audio'
    controls: tuple[Control, ...] = ()
    card: dict = field(default_factory=dict)   # model card: data, training, measured quality
    # The amplitude envelope the engine should run for this generator's voices, as an
    # ``EnvelopeConfig``; None = the engine's configured one. A trained model whose loudness
    # input already carries the instrument's attack asks for a plain gate (fast attack, full
    # sustain, its calibrated release).
    envelope: object | None = None


class Conditioning:
    """What the engine hands a generator each render call. Shapes are ``[voices]`` unless stated.

    The arrays are allocated once in ``prepare`` and updated in place; a generator reads
    them and must not keep references to slices across calls.
    """

    def __init__(self, voices: int, max_block: int, n_controls: int, input_channels: int = 0):
        self.sample_time = 0                       # absolute sample index of this call's first sample
        self.frames = 0                            # samples in this call (<= max_block)
        self.active = np.zeros(voices, np.bool_)
        self.restart = np.zeros(voices, np.int8)   # RESTART_* codes
        self.channel = np.zeros(voices, np.int16)
        self.note = np.zeros(voices, np.float64)       # MIDI note incl. pitch bend (fractional)
        self.f0 = np.zeros(voices, np.float64)         # Hz incl. pitch bend
        self.velocity = np.zeros(voices, np.float64)   # 0..1
        self.gain = np.zeros(voices, np.float64)       # channel volume x expression, linear 0..1
        self.mod = np.zeros(voices, np.float64)        # mod wheel 0..1
        self.pressure = np.zeros(voices, np.float64)   # max(channel, poly aftertouch) 0..1
        self.gate = np.zeros(voices, np.bool_)         # key (or pedal) still holding the note
        self.onset_time = np.zeros(voices, np.int64)   # sample the note started
        self.release_time = np.full(voices, -1, np.int64)  # sample of release, -1 while held
        self.env = np.zeros((voices, max_block), np.float32)  # per-sample envelope for this call
        self.controls = np.zeros(n_controls, np.float64)      # generator's declared controls, clamped
        # Audio input for audio-driven models: ``audio_in[audio_in_offset:audio_in_offset + frames]``
        # is this call's input ``[frames, input channels]`` (zeros when no input is open).
        self.audio_in = np.zeros((max_block, max(1, input_channels)), np.float32)
        self.audio_in_offset = 0


class Generator:
    """Base class. Subclasses set ``info`` and implement ``prepare``, ``reset``, ``render``."""

    info: GeneratorInfo

    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def render(self, cond: Conditioning, out: np.ndarray) -> None:
        """Fill ``out[:cond.frames]`` (float32, mono) with this call's sound. Overwrite, do not add."""
        raise NotImplementedError

    def default_controls(self) -> np.ndarray:
        return np.array([c.default for c in self.info.controls], np.float64)


class GeneratorWrapper(Generator):
    """Plays ``inner``; everything but ``render`` is the inner generator's (a subclass changes or
    watches what it renders: ``load_screen``, ``fault_injection``)."""

    def __init__(self, inner: Generator):
        self.inner, self.info = inner, inner.info

    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        self.inner.prepare(sample_rate, max_block, voices, device)

    def default_controls(self) -> np.ndarray:
        return self.inner.default_controls()

    def reset(self) -> None:
        self.inner.reset()

    def render(self, cond: Conditioning, out: np.ndarray) -> None:
        self.inner.render(cond, out)


def missing_input_warning(info: GeneratorInfo, input_channels: int) -> str | None:
    """A line for the performer when a model driven by audio in has no input to hear."""
    if info.conditioning != "audio" or input_channels > 0:
        return None
    return (f"{info.name} ({info.family}) is driven by audio in, but no audio input is open: it plays what it "
            "makes of silence. Open one (livewave play --input-channels 1, or the app's --input-channels 1) or play "
            "it from MIDI through a chain (livewave chain SOURCE VOCODER -o OUT)")


def cpu_kernels() -> bool:
    """Whether a model prepared on the CPU runs its Numba kernels (the DDSP decoder, the iSTFT
    vocoder, the MIDI-to-mel network), as it does unless the environment says
    ``LIVEWAVE_CPU_KERNELS=0``: then torch computes each step, as before the kernels existed (to
    compare the two when in doubt, and for tests of a model that costs what torch does)."""
    return os.environ.get("LIVEWAVE_CPU_KERNELS", "1").strip() != "0"


def torch_device(device: str):
    """The ``torch.device`` a generator's ``prepare`` binds: ``auto`` is CUDA where torch sees a
    GPU, else the CPU; an explicit ``cuda`` without one is a ``ConfigError``."""
    import torch

    from .config import ConfigError
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return torch.device(device)


def midi_to_hz(note: float) -> float:
    return 440.0 * math.pow(2.0, (note - 69.0) / 12.0)


def available_families() -> dict[str, object]:
    """Entry points of ``livewave.generators`` by name (not yet imported)."""
    found = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name, target in BUILTIN_FAMILIES.items():   # a source tree that was not pip-installed
        if name not in found:
            found[name] = metadata.EntryPoint(name, target, ENTRY_POINT_GROUP)
    return found


def family_class(family: str):
    eps = available_families()
    if family not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise LookupError(f"unknown generator family {family!r} (installed families: {known})")
    return eps[family].load()


def preload_families(torch_threads: int = 1) -> list[str]:
    """Import every installed family (and torch) now, before the audio stream starts: a first
    ``import torch`` holds the GIL for ~200 ms, which a model load on a live engine must not
    do to the render side (measured: a 187 ms stall of a 1 ms sleeper thread). Sets torch's
    intra-op threads to ``torch_threads``: the per-block model calls are small, and a pool
    spinning on every core starves the render thread of a 2-core machine. A family class with a
    ``warm_up`` (static) method has it called: its Numba kernels compile here. Returns the
    families that failed to import, with the reason (they fail again, clearly, on load)."""
    from .streaming_resampler import warm_up
    warm_up()                # every vocoder family resamples to and from its model's rate
    failed = []
    for name, ep in available_families().items():
        try:
            warm = getattr(ep.load(), "warm_up", None)     # a family's own kernels, compiled now
            if callable(warm):
                warm()
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    try:
        import torch
    except ImportError:
        return failed
    torch.set_num_threads(max(1, int(torch_threads)))
    import warnings
    with warnings.catch_warnings(), torch.no_grad():
        # NB: the first trace imports and builds much of torch.jit (a 2 s first load, then an
        # underrun at its swap, measured); do it here, where the stream has not started
        warnings.simplefilter("ignore")
        try:
            torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2), check_trace=False)(torch.zeros(1, 2))
        except Exception:
            pass
    return failed
