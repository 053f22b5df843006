"""The neural DDSP family: a trained decoder drives the engine's harmonic-plus-noise core.

Per frame (the model's own frame, e.g. 4 ms, on the absolute sample clock) every active
voice's f0 and loudness go through the decoder as one batch ``[voices]``; each voice keeps
its own GRU state ``[voices, hidden]`` (zeroed when a voice starts fresh) and its own
oscillator phases in the core. Loudness comes from the note by the checkpoint's
calibration (``ddsp_calibration.py``); the engine's envelope is reduced to a gate and a
release, which the model asks for through ``info.envelope``.

The model was trained at one sample rate and knows nothing above that rate's Nyquist: at
any device rate it is played band-limited to it (harmonics masked, noise bands defined in
Hz), so no resampler is needed for this family.

Device: weights live on the device from ``prepare``. On CUDA the per-frame step, with its
copies in from and out to pinned host memory, is captured as one CUDA graph on a
high-priority stream of its own and replayed; on CPU the same step runs as a Numba kernel
(``ddsp_decoder_kernel``) on float32 copies of the weights: one call, no torch on the render
side (a TorchScript trace of it cost a frame block ~95% of a 64-sample block, measured).

Threading: ``render`` runs on the render side; it writes into buffers allocated in
``prepare`` and imports nothing (torch is bound in ``prepare``). Neither path allocates.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numba import njit

from .config import EnvelopeConfig
from .ddsp_calibration import validate_calibration, voice_loudness
from .generator import RESTART_FRESH, Conditioning, Control, Generator, GeneratorInfo, cpu_kernels
from .harmonic_noise import HarmonicNoiseCore

GATE_GAIN = 1000.0     # engine envelope -> gate: 1 down to -60 dB, then follows the envelope

CONTROLS = (
    Control("vibrato_rate", 2.0, 9.0, 5.5, "Hz", cc=76, description="vibrato speed"),
    Control("vibrato_depth", 0.0, 100.0, 25.0, "cents", cc=77, description="vibrato depth at full mod wheel"),
    Control("portamento", 0.0, 1.0, 0.003, "s", cc=5, description="glide time of a retriggered voice and of bends"),
    Control("breath", 0.0, 2.0, 1.0, "x", cc=2, description="scales the model's noise component"),
    Control("dynamics", -24.0, 12.0, 0.0, "dB", description="offset of the loudness the model is fed"),
    Control("velocity_brightness", 0.0, 2.0, 1.0, "", cc=74,
            description="spectral tilt from velocity on top of the model (the soundfont data has none)"),
)
VIB_RATE, VIB_DEPTH, PORTAMENTO, BREATH, DYNAMICS, VEL_BRIGHTNESS = range(len(CONTROLS))
IN_F0, IN_LD, IN_ACTIVE, IN_FRESH = range(4)     # rows of the per-frame input staging tensor
N_INPUTS = 4


@njit(nogil=True, cache=True)
def velocity_tilt(mask, amp, velocity, amount):
    """Tilt each masked voice's harmonics by ``(k+1) ** (amount * (velocity - 0.6) * 0.4)``,
    keeping its energy (the calibrated level): a hard note brighter, a soft one darker."""
    n_h = amp.shape[1]
    for v in range(mask.shape[0]):
        if not mask[v]:
            continue
        e = amount * (velocity[v] - 0.6) * 0.4
        if e == 0.0:
            continue
        before = 0.0
        after = 0.0
        for k in range(n_h):
            a = amp[v, k]
            before += a * a
            a *= math.pow(k + 1.0, e)
            amp[v, k] = a
            after += a * a
        if after > 0.0:
            g = math.sqrt(before / after)
            for k in range(n_h):
                amp[v, k] *= g


def build_decoder(config: dict, tensors: dict):
    """-> (DDSPDecoder with the checkpoint's weights, DecoderConfig); validates names and shapes."""
    import torch

    from .ddsp_model import DDSPDecoder, DecoderConfig
    dcfg = DecoderConfig.from_dict(config.get("decoder", {}))
    model = DDSPDecoder(dcfg)
    want = model.state_dict()
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    if missing or extra:
        raise ValueError(f"weights do not match the decoder config: missing {missing[:4]}, unexpected {extra[:4]}")
    for k, w in want.items():
        if tuple(tensors[k].shape) != tuple(w.shape):
            raise ValueError(f"tensor {k!r} has shape {tuple(tensors[k].shape)}, the config needs {tuple(w.shape)}")
        if tensors[k].dtype.kind != "f":
            raise ValueError(f"tensor {k!r} has dtype {tensors[k].dtype}, need floating point")
    model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in tensors.items()})
    model.eval()
    return model, dcfg


class DDSPInstrument(Generator):
    def __init__(self, model, decoder_config, calibration: dict, name: str = "ddsp", card: dict | None = None):
        self.model = model
        self.dcfg = decoder_config
        self.cal = validate_calibration(calibration)
        self.noise_kernel_seconds = 65.0 / 16000.0
        # The calibration's release is the time to fall 40 dB; the engine's envelope counts 80 dB.
        release = min(30.0, 2.0 * self.cal["release_s"])
        self.info = GeneratorInfo(
            family="ddsp", name=name, sample_rate=None, hop=0, lookahead=0, polyphonic=True,
            conditioning="voices", controls=CONTROLS, card=dict(card or {}),
            envelope=EnvelopeConfig(attack_s=0.002, decay_s=1.0, sustain=1.0, release_s=release),
        )
        self.device = "cpu"

    @staticmethod
    def warm_up() -> None:
        """Every Numba kernel a DDSP instrument runs (the decoder's step, the loudness, the tilt,
        the oscillators and the noise), compiled before any stream (``generator.preload_families``):
        a tiny instrument of random weights played through an engine for a few blocks."""
        from .config import EngineConfig
        from .ddsp_model import DDSPDecoder, DecoderConfig
        from .engine import Engine
        cfg = DecoderConfig(n_harmonics=4, n_bands=2, hidden=8, mlp=8).validate()
        cal = {"velocity_db": [20.0, -40.0], "attack_db": [0.0], "release_s": 0.1, "frame_seconds": 0.004}
        eng = Engine(EngineConfig(sample_rate=22050, max_block=64), DDSPInstrument(DDSPDecoder(cfg), cfg, cal))
        eng.prepare()
        eng.push_midi(0x90, 60, 100)
        out = np.zeros((64, 2), np.float32)
        for _ in range(8):
            eng.render(out)

    @classmethod
    def from_checkpoint(cls, config: dict, card: dict, tensors: dict) -> DDSPInstrument:
        model, dcfg = build_decoder(config, tensors)
        if "calibration" not in config:
            raise ValueError("no loudness calibration in the config")
        inst = cls(model, dcfg, config["calibration"], str(config.get("name", "ddsp"))[:200], card)
        nks = config.get("noise_kernel_seconds", inst.noise_kernel_seconds)
        if not isinstance(nks, (int, float)) or not (0.0005 <= nks <= 0.05):
            raise ValueError(f"noise_kernel_seconds={nks!r} is outside 0.0005..0.05")
        inst.noise_kernel_seconds = float(nks)
        return inst

    # -- set-up ------------------------------------------------------------------------
    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        import torch
        d = self.dcfg
        self.sample_rate = sample_rate
        self.core = HarmonicNoiseCore(sample_rate, voices, d.n_harmonics, d.n_bands, d.frame_seconds,
                                      noise_top_hz=d.sample_rate / 2,
                                      noise_kernel_seconds=self.noise_kernel_seconds)
        self.info = replace(self.info, hop=self.core.hop)
        self.nyquist = 0.5 * min(sample_rate, d.sample_rate)
        # White noise spreads its power over 0..Nyquist: keep the model's noise density per Hz.
        self.noise_scale = math.sqrt(sample_rate / d.sample_rate)
        self.attack_step = self.cal["frame_seconds"] * sample_rate
        from .generator import torch_device
        dev = torch_device(device)
        self._torch = torch          # NB: the render side uses this; it never imports
        self.device = str(dev)
        self.model = self.model.to(dev)
        self.model.requires_grad_(False)
        self.gate = np.zeros((voices, max_block), np.float32)
        self.fresh = np.zeros(voices, np.bool_)
        # One staging tensor each way. Inputs per voice: f0, loudness, active, fresh (zero the
        # GRU state first); outputs: harmonic amplitudes then noise band magnitudes. On CUDA
        # the host side is pinned and both copies are inside the captured graph, so a frame
        # is one replay and one wait; on CPU host and device are the same tensor.
        cuda = dev.type == "cuda"
        self.in_host = torch.zeros(N_INPUTS, voices, pin_memory=cuda)
        self.out_host = torch.zeros(voices, d.n_harmonics + d.n_bands, pin_memory=cuda)
        self.in_dev = self.in_host.to(dev) if cuda else self.in_host
        self.out_dev = self.out_host.to(dev) if cuda else self.out_host
        inp = self.in_host.numpy()
        self.f0_np, self.ld_np, self.active_np, self.fresh_np = inp[IN_F0], inp[IN_LD], inp[IN_ACTIVE], inp[IN_FRESH]
        self.f0_np[:] = 440.0
        outp = self.out_host.numpy()
        self.amp_np, self.mags_np = outp[:, :d.n_harmonics], outp[:, d.n_harmonics:]
        self.h = torch.zeros(voices, d.hidden, device=dev)
        self.graph = None
        self.stream = None
        self.kernel = None
        self._cond: Conditioning | None = None
        self._targets_cb = self._targets
        if cuda:
            self._capture()
        elif cpu_kernels():
            from .ddsp_decoder_kernel import DecoderKernel
            self.kernel = DecoderKernel(self.model, voices)
            self.h_np = self.h.numpy()
            self.active_np[:] = 1.0
            self._step()               # NB: compiles (or loads) the kernel here, not on the render side
            self.active_np[:] = 0.0
        self.reset()

    def _compute(self) -> None:
        """The per-frame step on the static device tensors in torch (captured as a graph on CUDA;
        on CPU the kernel computes the same, ``_step``)."""
        torch = self._torch
        x = self.in_dev
        f0, ld = x[IN_F0], x[IN_LD]
        h = self.h * (1.0 - x[IN_FRESH]).unsqueeze(1)
        amps, mags, h_new = self.model.step(f0, ld, h, self.nyquist)
        self.h.copy_(torch.where(x[IN_ACTIVE].unsqueeze(1) > 0.5, h_new, h))
        nh = amps.shape[1]
        self.out_dev[:, :nh].copy_(amps)
        self.out_dev[:, nh:].copy_(mags)

    def _frame(self) -> None:
        """Host inputs -> device, the step, outputs -> host (the body of the CUDA graph)."""
        self.in_dev.copy_(self.in_host, non_blocking=True)
        self._compute()
        self.out_host.copy_(self.out_dev, non_blocking=True)

    def _capture(self) -> None:
        """Capture on this (loader) thread; ``thread_local`` so that the render thread, which
        may be replaying another model's graph meanwhile, neither breaks nor is refused."""
        import torch
        # A stream of its own at high priority, so that work queued by other threads (a model
        # loading on the legacy default stream, a GUI) neither orders nor delays the frame.
        _, hi = torch.cuda.Stream.priority_range()
        self.stream = torch.cuda.Stream(device=self.in_dev.device, priority=hi)
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            for _ in range(3):             # warm-up before capture (kernel selection, allocator)
                self._frame()
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self._frame()
        self.graph = graph
        self.h.zero_()
        self.stream.synchronize()

    def reset(self) -> None:
        self.core.reset()
        self.h.zero_()
        self.fresh_np[:] = 0.0

    # -- render side -------------------------------------------------------------------
    def _step(self) -> None:
        if self.graph is not None:
            with self._torch.cuda.stream(self.stream):     # NB: a graph replays on the current stream
                self.graph.replay()
            self.stream.synchronize()
        elif self.kernel is not None:
            self.kernel.step(self.f0_np, self.ld_np, self.active_np, self.fresh_np, self.h_np, self.nyquist,
                             self.amp_np, self.mags_np)
        else:                              # LIVEWAVE_CPU_KERNELS=0: torch's step (generator.cpu_kernels)
            with self._torch.inference_mode():
                self._compute()
        self.fresh_np[:] = 0.0      # consumed by this frame

    def _targets(self, t: int, mask: np.ndarray) -> None:
        c = self._cond
        cal = self.cal
        voice_loudness(mask, t, c.sample_time, c.frames, c.velocity, c.note, c.gain, c.env, c.onset_time,
                       cal["a"] + c.controls[DYNAMICS], cal["b"], cal["key_low"], cal["key_db"], cal["attack_db"],
                       self.attack_step, self.ld_np)
        np.copyto(self.f0_np, c.f0, casting="same_kind")
        np.copyto(self.active_np, mask)
        self._step()
        core = self.core
        np.copyto(core.new_amp, self.amp_np)
        velocity_tilt(mask, core.new_amp, c.velocity, c.controls[VEL_BRIGHTNESS])
        np.multiply(self.mags_np, c.controls[BREATH] * self.noise_scale, out=core.new_mags)

    def render(self, cond: Conditioning, out: np.ndarray) -> None:
        n = cond.frames
        core = self.core
        self._cond = cond
        ctl = cond.controls
        gate = self.gate[:, :n]
        np.multiply(cond.env[:, :n], GATE_GAIN, out=gate)
        np.minimum(gate, 1.0, out=gate)
        fresh = self.fresh
        np.equal(cond.restart, RESTART_FRESH, out=fresh)
        if fresh.any():             # the GRU state of these voices is zeroed by the next frame
            np.maximum(self.fresh_np, fresh, out=self.fresh_np)
        core.vib_rate = ctl[VIB_RATE]
        np.multiply(cond.mod, ctl[VIB_DEPTH] / 1200.0, out=core.vib_depth)
        core.f0_coef = 1.0 - math.exp(-1.0 / max(1.0, ctl[PORTAMENTO] * self.sample_rate))
        core.render(cond, out, self._targets_cb, env=self.gate)
