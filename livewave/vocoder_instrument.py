"""The vocoder families' generators (``melgan``, ``istft``, ``flow``), driven by live audio in: play or sing
into it, and it comes out rendered by the vocoder (resynthesis, or timbre transfer with a
vocoder trained on another instrument).

Per render call, on the render side:
    input channel 1 (device rate) -> input gain -> resample to the model's rate (``streaming_resampler``)
    -> streamed log-mel analysis (``mel_analysis.MelStream``, causal frames)
       (and, for an iSTFT model with a source phase, the input's own spectrum at the same frames:
       ``source_phase.SourceSpectrum``)
    -> each completed frame through the causal vocoder (``melgan`` or ``flow_vocoder``, one ``step``
       per call; the flow draws its noise frame by frame from a seeded generator and scales it
       by the ``sigma`` control; on a CPU the iSTFT and flow vocoders' steps are Numba kernels,
       ``istft_vocoder_kernel`` and ``flow_vocoder_kernel``, and torch runs the others)
    -> resample to the device rate -> ``DelayLine`` -> out.
Every stage is chunk-independent, and the delay line pays out a fixed delay chosen in
``prepare`` (the chain's worst shortfall, measured with silence at block sizes 1, 17, 64 and
the largest), so the output does not depend on the block size and the declared lookahead
is exact. Latency = that delay; the analysis window (``n_fft``) reaches back in time, not ahead.

Checkpoint config: ``{"melgan" | "flow": the model's config dict, "mel": {n_fft, hop, n_mels,
fmin, fmax, floor, log10}, "name": ...}``; tensors: the model's state dict.
Threading: ``render`` on the render side only; torch is bound in ``prepare``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from .flow_vocoder import SIGMA, FlowConfig, FlowVocoder
from .generator import Control, Generator, GeneratorInfo, cpu_kernels
from .istft_vocoder import ISTFTConfig, ISTFTVocoder
from .mel_analysis import MelStream, mel_filterbank
from .melgan import MelGANConfig, MelGANGenerator
from .reference_vocoders import HiFiGANConfig, HiFiGANGenerator, MelGANReferenceConfig, MelGANReferenceGenerator
from .streaming_resampler import DelayLine, Resampler
from .tensor_cast import as_dtype

CONTROLS = (Control("input_gain", -24.0, 24.0, 0.0, "dB", cc=7 + 20, description="level of the input into the analysis"),)
FLOW_CONTROLS = CONTROLS + (Control("sigma", 0.0, 1.2, SIGMA, "", cc=71,
                                    description="sampling temperature: lower is cleaner, higher more varied"),)
INPUT_GAIN, SIGMA_CONTROL = 0, 1
MEL_KEYS = {"n_fft": int, "hop": int, "n_mels": int, "fmin": float, "fmax": (float, type(None)), "floor": float,
            "log10": bool}
DEFAULT_MEL = {"n_fft": 1024, "hop": 256, "n_mels": 80, "fmin": 0.0, "fmax": None, "floor": 1e-5, "log10": False}


@njit(nogil=True, cache=True)
def take_input(src, n, gain, dst):
    """``dst[:n] = src[:n] * gain``; NaN/Inf become 0, the rest is clipped to +-4."""
    for i in range(n):
        x = src[i] * gain
        if not (x == x) or x > 1e30 or x < -1e30:
            x = 0.0
        dst[i] = min(4.0, max(-4.0, x))


def check_mel_config(mel: dict, model) -> dict:
    """The mel settings, completed with the defaults and checked against the model's config
    (anything with ``hop`` and ``n_mels``)."""
    out = dict(DEFAULT_MEL)
    for k, v in (mel or {}).items():
        if k not in MEL_KEYS:
            raise ValueError(f"unknown mel setting {k!r} (settings: {', '.join(MEL_KEYS)})")
        if isinstance(v, bool) != (MEL_KEYS[k] is bool) or not isinstance(v, MEL_KEYS[k] if MEL_KEYS[k] is not float
                                                                          else (int, float)):
            raise ValueError(f"mel setting {k}={v!r} has the wrong type")
        out[k] = v
    if out["hop"] != model.hop:
        raise ValueError(f"mel hop {out['hop']} differs from the generator's hop {model.hop}")
    if out["n_mels"] != model.n_mels:
        raise ValueError(f"mel bands {out['n_mels']} differ from the generator's input bands {model.n_mels}")
    return out


def _load_state(model, tensors: dict) -> None:
    """Weights into ``model`` after checking every name and shape against its config."""
    import torch
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"weights do not match the config: missing {missing[:4]}{'...' if len(missing) > 4 else ''}"
                         f", unexpected {extra[:4]}{'...' if len(extra) > 4 else ''}")
    for k, v in own.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"weights do not match the config: {k} is {tuple(tensors[k].shape)}, "
                             f"the config makes it {tuple(v.shape)}")
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(t)) for k, t in tensors.items()})


class AudioVocoder(Generator):
    """The audio-in chain around a causal vocoder; subclasses give the model's step."""

    family = ""
    config_key = ""
    config_class = None
    model_class = None
    controls = CONTROLS
    lag_frames = 0        # frames of lookahead: block t is emitted once frame t + lag_frames has arrived
    content_delay = 0     # model-rate samples the output lags its input by, beyond the chain's delay
    takes_source = False  # the model synthesises with its source's phases (``source_phase``)
    source_n_fft = 0      # and the window of its source spectra

    @property
    def source_bins(self) -> int:
        """Bins of its source spectra (0: it takes none)."""
        return self.source_n_fft // 2 + 1 if self.source_n_fft else 0
    kernel = None         # the model's step as a Numba kernel, where one computes it (``_prepare_kernel``)

    def __init__(self, model, mel: dict | None = None, name: str = "", card: dict | None = None):
        self.model = model.eval()
        self.mcfg = model.config
        self.mel_cfg = check_mel_config(mel or {}, self.mcfg)
        self.info = GeneratorInfo(family=self.family, name=name or self.family, sample_rate=self.mcfg.sample_rate,
                                  hop=self.mcfg.hop, polyphonic=False, conditioning="audio", controls=self.controls,
                                  card=dict(card or {}))
        self.device = "cpu"

    @classmethod
    def from_checkpoint(cls, config: dict, card: dict, tensors: dict):
        model = cls.model_class(cls.config_class.from_dict(config.get(cls.config_key) or {}))
        _load_state(model, tensors)
        return cls(model, config.get("mel"), str(config.get("name", cls.family))[:200], card)

    def checkpoint_parts(self) -> tuple[dict, dict]:
        """(config, tensors) for ``checkpoint.save_checkpoint(path, self.family, ...)``."""
        return ({self.config_key: self.mcfg.to_dict(), "mel": dict(self.mel_cfg), "name": self.info.name},
                {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()})

    def _step(self, mel, controls, source=None) -> object:
        """The model's audio (a torch tensor ``[samples]``) for mel ``[1, n_mels, frames]``
        (``source``: their source spectra, where ``takes_source``)."""
        raise NotImplementedError

    def synthesize(self, mel, controls, source=None) -> object:
        """Streamed: model-rate audio (torch ``[samples]``) for the next completed mel frames
        ``[1, n_mels, frames]`` on the prepared device, the model's state carried; fewer samples
        than ``frames * hop`` while a lookahead fills. For a host that makes its own mel frames
        (``midi2mel``); render side, after ``prepare``. ``source``: where ``takes_source``, the
        frames' source spectra ``[1, source_bins, frames]`` complex (``source_phase``), or None
        (the model's own phases)."""
        return self._step(mel, controls, source)

    def synthesize_frames(self, mel: np.ndarray, controls, source: np.ndarray | None = None) -> np.ndarray:
        """``synthesize`` for frames on the CPU, numpy in and out: ``mel`` float32 ``[frames,
        n_mels]`` (C order), ``source`` complex64 ``[frames, source_bins]`` or None -> float32 audio
        (a view the next call may reuse). Through the kernel where there is one; render side."""
        if self.kernel is not None:
            return self._kernel_step(mel, source, controls)     # a host's source: phases, not levels
        torch = self._torch
        with torch.inference_mode():
            m = torch.from_numpy(mel.T[None].copy())
            s = None if source is None else torch.from_numpy(source.T[None].copy())
            return self.synthesize(m, controls, s).float().numpy()

    def reset_model(self) -> None:
        """Back to silence: the model's streaming state only."""
        self._reset_model()

    def offline(self, mel: np.ndarray, audio: np.ndarray | None = None) -> np.ndarray:
        """Copy synthesis at the model's rate, not streamed: mel ``[frames, n_mels]`` -> audio
        ``[frames * hop]`` (evaluation). ``audio``: the signal the mel came from, the source of
        the phases where ``takes_source`` (ignored otherwise; without it such a model uses its own)."""
        import torch
        with torch.inference_mode():
            m = torch.from_numpy(np.ascontiguousarray(mel.T[None], np.float32))
            if self.takes_source and audio is not None:
                return self._offline(m, self._source_of(torch.from_numpy(np.asarray(audio, np.float32))[None],
                                                        m.shape[2])).float().numpy()
            return self._offline(m).float().numpy()

    def _source_stream(self, max_block: int):
        from .source_phase import SourceSpectrum
        return SourceSpectrum(self.source_n_fft, self.mcfg.hop, max_block)

    def _source_of(self, audio, frames: int):
        """The source spectra of ``frames`` mel frames of ``audio`` ``[1, samples]`` (offline)."""
        from .source_phase import source_spectrum
        return source_spectrum(audio, self.source_n_fft, self.mcfg.hop)[:, :, :frames]

    # -- set-up --------------------------------------------------------------------------------
    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        import torch

        from .generator import torch_device
        self._torch = torch               # NB: the render side uses this; it never imports
        self.dev = torch_device(device)
        self.device = str(self.dev)
        self.model.to(self.dev)
        self.sample_rate, self.max_block = int(sample_rate), int(max_block)
        mr, m = self.mcfg.sample_rate, self.mel_cfg
        self.rs_in, self.rs_out = Resampler(sample_rate, mr), Resampler(mr, sample_rate)
        most = 4096 + 4 * max_block * max(1, -(-mr // sample_rate))     # model-rate samples a call brings, and room
        self.mel = MelStream(mr, m["n_fft"], m["hop"], m["n_mels"], m["fmin"], m["fmax"], m["floor"], m["log10"],
                             max_block=most)
        self.src = self._source_stream(most) if self.takes_source else None
        self.kernel = self._prepare_kernel(most // m["hop"] + 1) if self.dev.type == "cpu" and cpu_kernels() else None
        self.line = DelayLine(self.chain_delay(max_block))
        # NB: a model fed frames centred later than livewave's causal ones sounds that much late too
        self.info = replace(self.info, lookahead=self.line.delay + round(self.content_delay * sample_rate / mr))
        self.x_in = np.zeros(max_block, np.float32)
        self.reset()
        cond_in = np.zeros((max_block, 1), np.float32)        # warm up every kernel and the model
        out = np.zeros(max_block, np.float32)
        for _ in range(4):
            self._render(cond_in[:, 0], 0, max_block, 1.0, out, self.default_controls())
        self.reset()

    def chain_delay(self, max_block: int) -> int:
        """The smallest delay the output never runs short with: silence through the chain's
        stages (counts only: the model emits ``hop`` samples per completed frame) at block
        sizes 1, 17, 64 and ``max_block``; the worst shortfall over 2 s of each."""
        mr, hop, sr = self.mcfg.sample_rate, self.mcfg.hop, self.sample_rate
        worst = 0
        for block in sorted({1, 17, 64, max_block}):
            rs_in, rs_out = Resampler(sr, mr), Resampler(mr, sr)
            z = np.zeros(block, np.float32)
            fed = got = model_in = frames = 0
            while fed < 2 * sr:
                model_in += rs_in.process(z).shape[0]
                k = max(0, model_in // hop - self.lag_frames) - frames    # blocks the model can emit
                frames += k
                got += rs_out.process(np.zeros(k * hop, np.float32)).shape[0]
                fed += block
                worst = max(worst, fed - got)
        return worst

    def _prepare_kernel(self, max_frames: int):
        """The CPU step as a kernel taking up to ``max_frames`` frames a call, or None (torch)."""
        return None

    def _kernel_step(self, mel: np.ndarray, source: np.ndarray | None, controls, source_level: bool = False):
        """The kernel's next samples for ``mel`` float32 ``[frames, n_mels]`` (``source``: their
        source spectra or None; ``source_level``: hold each frame to the source's energy, as
        audio in does). Render side."""
        return self.kernel.step(mel, source, source_level)

    def reset(self) -> None:
        self.rs_in.reset()
        self.rs_out.reset()
        self.mel.reset()
        if self.src is not None:
            self.src.reset()
        self._reset_model()
        self.line.reset()

    def _reset_model(self) -> None:
        self.model.reset()
        if self.kernel is not None:
            self.kernel.reset()

    # -- render side -------------------------------------------------------------------------------
    def render(self, cond, out: np.ndarray) -> None:
        n = cond.frames
        gain = 10.0 ** (cond.controls[INPUT_GAIN] / 20.0)
        self._render(cond.audio_in[:, 0], cond.audio_in_offset, n, gain, out, cond.controls)

    def _render(self, audio_in: np.ndarray, offset: int, n: int, gain: float, out: np.ndarray, controls) -> None:
        torch = self._torch
        x = self.x_in
        take_input(audio_in[offset:offset + n], n, gain, x)
        xm = self.rs_in.process(x[:n])
        frames = self.mel.push(xm)
        spec = self.src.push(xm) if self.src is not None else None      # the same frames (SourceSpectrum)
        if frames.shape[0] and self.kernel is not None:
            self.line.push(self.rs_out.process(self._kernel_step(frames, spec, controls, spec is not None)))
        elif frames.shape[0]:
            with torch.inference_mode():
                mel = torch.from_numpy(frames.T[None].copy()).to(self.dev)
                source = None if spec is None else torch.from_numpy(spec.T[None].copy()).to(self.dev)
                y = self._step(mel, controls, source).float().cpu().numpy()
            self.line.push(self.rs_out.process(y))
        self.line.pull(out, n)


class MelGANVocoder(AudioVocoder):
    family = config_key = "melgan"
    config_class, model_class = MelGANConfig, MelGANGenerator

    def _step(self, mel, controls, source=None):
        return self.model.step(mel)[0, 0]

    def _offline(self, mel):
        return self.model(mel)[0, 0]


class ISTFTVocoderInstrument(AudioVocoder):
    """The causal iSTFT GAN vocoder: it sounds one hop behind its input (trained so). With
    ``phase="source"`` it takes its phases from its input (``source_phase``), so a held note
    stays in tune; a host that makes its own mel frames passes the frames' source spectra."""
    family = config_key = "istft"
    config_class, model_class = ISTFTConfig, ISTFTVocoder

    def __init__(self, model, mel: dict | None = None, name: str = "", card: dict | None = None):
        super().__init__(model, mel, name, card)
        self.content_delay = model.output_delay
        self.takes_source = model.config.phase == "source"
        self.source_n_fft = model.config.n_fft
        m, c = self.mel_cfg, model.config      # every frame's level held to its input's (istft_vocoder: Level)
        model.set_level_reference(mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, m["fmin"], m["fmax"]), m["log10"])

    def prime_silence(self) -> None:
        """Every later stream starts from a history of silence (``ISTFTVocoder.prime``), for a
        host that makes its own mel frames (``midi2mel``); after ``prepare``."""
        import torch
        floor = float(self.mel_cfg["floor"])
        silent = np.log10(floor) if self.mel_cfg["log10"] else np.log(floor)
        self.model.prime(torch.full((1, self.mcfg.n_mels, 1), float(silent), device=self.dev))
        if self.kernel is not None:
            self.kernel.prime(np.full(self.mcfg.n_mels, silent, np.float32))
        self.reset()

    @staticmethod
    def warm_up() -> None:
        """Every Numba kernel a model of this family runs, compiled before any stream
        (``generator.preload_families``): a tiny one prepared and played from audio in. Compiled
        lazily instead, a first load into a playing engine compiled them on the loader thread,
        23-46 s beside a playing vocoder (measured, stop 21)."""
        tiny_istft_instrument().prepare(8000, 64, 1, "cpu")     # at its own rate: no resampling to time

    def _prepare_kernel(self, max_frames: int):
        if self.mcfg.phase == "integrated":
            return None
        from .istft_vocoder_kernel import ISTFTKernel
        return ISTFTKernel(self.model, max_frames)

    def save_stream(self) -> None:
        """Remember the stream's state, for a host that may make its last frame again
        (``midi2mel``: a note that arrives after a frame was made; render side)."""
        if self.kernel is not None:
            self.kernel.save()
        else:
            self.model.save_stream()

    def restore_stream(self) -> None:
        """Back to the state ``save_stream`` remembered (render side)."""
        if self.kernel is not None:
            self.kernel.restore()
        else:
            self.model.restore_stream()

    def synthesize(self, mel, controls, source=None):
        return self.model.step(mel, source)[0, 0]        # a host's source: phases, not levels

    def _step(self, mel, controls, source=None):
        return self.model.step(mel, source, source_level=source is not None)[0, 0]

    def _offline(self, mel, source=None):
        return self.model(mel, source=source, source_level=source is not None)[0, 0]


def tiny_istft_instrument(n_mels: int = 8, hop: int = 32, sample_rate: int = 8000) -> ISTFTVocoderInstrument:
    """A source-phase iSTFT vocoder of random weights, a few thousand parameters (warm-ups)."""
    model = ISTFTVocoder(ISTFTConfig(n_mels=n_mels, hop=hop, n_fft=2 * hop, channels=8, blocks=1, phase="source",
                                     sample_rate=sample_rate))
    return ISTFTVocoderInstrument(model, {"n_fft": 4 * hop, "hop": hop, "n_mels": n_mels})


class FlowVocoderInstrument(AudioVocoder):
    """The flow vocoder: its noise is drawn one mel frame at a time from a generator seeded at
    ``reset``, so the output does not depend on how frames are batched, and scaled by the
    ``sigma`` control (clamped to 0..1.2 by the engine; 0.6 by default, as WaveGlow). A model
    driven by a source (``source_n_fft``) gets its input's spectra and sounds
    ``output_delay`` behind it (declared)."""
    family = config_key = "flow"
    config_class, model_class = FlowConfig, FlowVocoder
    controls = FLOW_CONTROLS
    seed = 1234

    def __init__(self, model, mel: dict | None = None, name: str = "", card: dict | None = None):
        super().__init__(model, mel, name, card)
        self.content_delay = model.output_delay
        self.takes_source = model.takes_source
        self.source_n_fft = model.config.source_n_fft
        c, m = model.config, self.mel_cfg
        nyquist = m["fmax"] is None or float(m["fmax"]) == c.sample_rate / 2
        if c.mel_n_fft and not (int(m["n_fft"]) == c.mel_n_fft and float(m["fmin"]) == 0.0 and nyquist
                                and not m["log10"]):
            raise ValueError(f"{name or 'flow vocoder'}: its Gaussian reads mel frames of n_fft {c.mel_n_fft}, fmin 0, "
                             f"fmax the Nyquist frequency, natural log; its mel analysis says {dict(m)}")

    def reset(self) -> None:
        super().reset()
        gen = getattr(self, "_noise", None)
        if gen is not None:
            gen.manual_seed(self.seed)

    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        import torch
        self._noise = torch.Generator(device="cpu")
        self._noise.manual_seed(self.seed)
        super().prepare(sample_rate, max_block, voices, device)

    @staticmethod
    def warm_up() -> None:
        """The flow's Numba kernel compiled before any stream (``generator.preload_families``): a
        tiny flow with a source prepared and played from audio in, at its own rate."""
        tiny_flow_instrument().prepare(8000, 64, 1, "cpu")
        tiny_flow_instrument(squeeze="mdct").prepare(8000, 64, 1, "cpu")      # and the MDCT flow's

    def _prepare_kernel(self, max_frames: int):
        from .flow_vocoder_kernel import FlowKernel, MDCTFlowKernel
        # each frame's noise, drawn as the torch path draws it (``_step``), into a buffer made once
        self._z = self._torch.zeros(max_frames, self.mcfg.n_group, self.model.per_frame)
        self._z_np = self._z.numpy()
        return (MDCTFlowKernel if self.model.mdct is not None else FlowKernel)(self.model, max_frames)

    def _kernel_step(self, mel, source, controls, source_level=False):
        torch = self._torch
        t = mel.shape[0]
        z = self._z
        for f in range(t):
            torch.randn(z.shape[1], z.shape[2], generator=self._noise, out=z[f])
        z[:t].mul_(float(controls[SIGMA_CONTROL]))
        return self.kernel.step(mel, self._z_np[:t], source)

    def _step(self, mel, controls, source=None):
        torch = self._torch
        per = self.model.per_frame
        n_group = self.mcfg.n_group
        sigma = float(controls[SIGMA_CONTROL])
        z = torch.cat([torch.randn(1, n_group, per, generator=self._noise) for _ in range(mel.shape[2])], dim=2)
        return self.model.step(mel, as_dtype((sigma * z).to(mel.device), mel.dtype), source)[0]

    def _offline(self, mel, source=None):
        import torch
        g = torch.Generator().manual_seed(self.seed)
        return self.model.infer(mel, SIGMA, z=self.model.noise(mel, SIGMA, generator=g), source=source)[0]


def tiny_flow_instrument(n_mels: int = 8, hop: int = 32, sample_rate: int = 8000,
                         squeeze: str = "groups") -> FlowVocoderInstrument:
    """A flow vocoder driven by a source, of random weights, a few thousand parameters (warm-ups);
    ``squeeze`` "mdct": on the MDCT's coefficients, reading the mel's level."""
    mdct = squeeze == "mdct"
    model = FlowVocoder(FlowConfig(n_mels=n_mels, hop=hop, n_group=hop if mdct else 8, n_flows=4, n_early_every=2,
                                   n_early_size=8 if mdct else 2, wn_layers=2, wn_channels=8,
                                   sample_rate=sample_rate, source_n_fft=2 * hop, source_channels=4,
                                   squeeze=squeeze, prior_channels=8, mel_n_fft=4 * hop if mdct else 0))
    return FlowVocoderInstrument(model, {"n_fft": 4 * hop, "hop": hop, "n_mels": n_mels})


class _ReferenceVocoder(AudioVocoder):
    """A non-causal vocoder from the reference code, streamed exactly with cached layer state
    (``cached_streaming``), ``lag_frames`` behind its input (its receptive field's right side,
    rounded up to whole frames). Imported ones were trained on mel frames
    centred on their blocks, so they sound ``(n_fft - hop) / 2`` samples later than the input on
    top of the lookahead; one trained here (config ``"frames": "causal"``) learnt livewave's
    causal frames, aligned like the MelGAN's, and adds only the lookahead."""

    def __init__(self, model, mel: dict | None = None, name: str = "", card: dict | None = None,
                 centred: bool = True):
        from .reference_vocoders import HiFiGANGenerator, receptive_field
        super().__init__(model, mel, name, card)
        left, right = receptive_field(type(model), model.config)
        self.centred = bool(centred)
        self.content_delay = (int(self.mel_cfg["n_fft"]) - self.mcfg.hop) // 2 if centred else 0
        # every layer keeps its own state: one frame of work per frame (cached_streaming)
        from .cached_streaming import CachedHiFiGANStreamer, CachedMelGANStreamer
        streamer = CachedHiFiGANStreamer if isinstance(model, HiFiGANGenerator) else CachedMelGANStreamer
        self.streamer = streamer(model)
        self.lag_frames = self.streamer.lag
        self.info = replace(self.info, card={**self.info.card, "receptive_field_frames": [left, right],
                                                       "stream_lag_frames": self.lag_frames})

    @classmethod
    def from_checkpoint(cls, config: dict, card: dict, tensors: dict):
        frames = config.get("frames", "centred")
        if frames not in ("centred", "causal"):
            raise ValueError(f"frames={frames!r}: centred or causal")
        model = cls.model_class(cls.config_class.from_dict(config.get(cls.config_key) or {}))
        _load_state(model, tensors)
        return cls(model, config.get("mel"), str(config.get("name", cls.family))[:200], card,
                   centred=frames == "centred")

    def checkpoint_parts(self) -> tuple[dict, dict]:
        config, tensors = super().checkpoint_parts()
        return {**config, "frames": "centred" if self.centred else "causal"}, tensors

    def _reset_model(self) -> None:
        self.streamer.reset()

    def _step(self, mel, controls, source=None):
        return self.streamer.push(mel)[0, 0]

    def _offline(self, mel):
        return self.model(mel)[0, 0]


class HiFiGANVocoder(_ReferenceVocoder):
    family = config_key = "hifigan"
    config_class, model_class = HiFiGANConfig, HiFiGANGenerator


class MelGANReferenceVocoder(_ReferenceVocoder):
    family = config_key = "melgan_reference"
    config_class, model_class = MelGANReferenceConfig, MelGANReferenceGenerator
