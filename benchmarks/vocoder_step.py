"""The shipped vocoders' frames on CPU, torch against the Numba kernels side by side, for
``benchmarks.run --vocoder-only``:

- ``istft-fluidr3``'s streamed frame as audio in runs it (its source's phases and level):
  ``ISTFTVocoder.step`` against ``istft_vocoder_kernel.ISTFTKernel.step``;
- a frame of ``piano-midi2mel`` as the engine renders it (the roll, the harmonic reference, the
  MIDI-to-mel network, the vocoder, the resampler), with ``n`` notes sounding: the instrument's
  torch path (the network and the vocoder in torch, the CPU path until 2026-12-02) against its
  kernels (``midi_to_mel_kernel``, ``istft_vocoder_kernel``);
- a flow's streamed frame (``flow_vocoder_kernel``; no flow ships: random weights at the shape of
  the ones trained here).

Per frame: the render thread's CPU time (``time.thread_time``), median and p99, frames back to
back and with a 1.3 ms sleep before each (as the render thread runs them at 64-sample blocks)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.decoder_step import side_by_side_rows

ROOT = Path(__file__).resolve().parents[1]


def _vocoder_ways(frames: int):
    import torch

    from livewave.checkpoint import load_generator
    from livewave.istft_vocoder_kernel import ISTFTKernel
    voc = load_generator(ROOT / "models" / "istft-fluidr3.safetensors")
    model = voc.model.eval()
    kern = ISTFTKernel(model, 1)
    rng = np.random.default_rng(0)
    mel = (rng.standard_normal((1, model.n_mels)) - 4.0).astype(np.float32)
    src = (0.1 * (rng.standard_normal((1, 257)) + 1j * rng.standard_normal((1, 257)))).astype(np.complex64)
    t_mel, t_src = torch.from_numpy(mel.T[None].copy()), torch.from_numpy(src.T[None].copy())

    def torch_step():
        with torch.inference_mode():
            model.step(t_mel, t_src, source_level=True)
    return {"torch": torch_step, "kernel": lambda: kern.step(mel, src, True)}


def _flow_ways():
    """A flow at the shape trained here (groups of 32, 8 couplings of 6 x 96 WaveNets, a source's
    excitation; random weights, its ends away from zero): ``FlowVocoder.step`` against
    ``flow_vocoder_kernel.FlowKernel.step``, a frame of noise at sigma 0.6 and a source."""
    import torch

    from livewave.flow_vocoder import FlowConfig, FlowVocoder
    from livewave.flow_vocoder_kernel import FlowKernel
    torch.manual_seed(0)
    model = FlowVocoder(FlowConfig(n_group=32, n_flows=8, wn_layers=6, wn_channels=96, n_early_size=8,
                                   source_n_fft=512)).eval()
    with torch.no_grad():
        for wn in model.couplings:
            wn.end.weight.normal_(0.0, 0.02)
    kern = FlowKernel(model, 1)
    rng = np.random.default_rng(0)
    mel = (rng.standard_normal((1, 80)) - 4.0).astype(np.float32)
    z = (0.6 * rng.standard_normal((1, 32, model.per_frame))).astype(np.float32)
    src = (0.1 * (rng.standard_normal((1, 257)) + 1j * rng.standard_normal((1, 257)))).astype(np.complex64)
    t_mel, t_src = (torch.from_numpy(a.T[None].copy()) for a in (mel, src))
    t_z = torch.from_numpy(z.copy())            # one frame: [1, n_group, per] is the step's layout too

    def torch_step():
        with torch.inference_mode():
            model.step(t_mel, t_z, t_src)
    return {"torch": torch_step, "kernel": lambda: kern.step(mel, z, src)}


def _midi2mel_ways(notes: int):
    """A callable per path that renders 512-sample blocks until one makes a frame."""
    from livewave.checkpoint import load_generator
    from livewave.generator import Conditioning
    from livewave.midi_to_mel_instrument import TRAINING_GAIN
    ways = {}
    for name in ("torch", "kernel"):
        inst = load_generator(ROOT / "models" / "piano-midi2mel.safetensors")
        os.environ["LIVEWAVE_CPU_KERNELS"] = "0" if name == "torch" else "1"     # generator.cpu_kernels
        try:
            inst.prepare(48000, 512, 32, "cpu")
        finally:
            os.environ.pop("LIVEWAVE_CPU_KERNELS")
        assert (inst.kernel is None) == (name == "torch")
        cond = Conditioning(32, 512, len(inst.info.controls))
        cond.controls[:] = inst.default_controls()
        cond.active[:notes] = cond.gate[:notes] = True
        cond.note[:notes] = 48 + (3 * np.arange(notes)) % 40
        cond.velocity[:notes], cond.gain[:notes] = 0.7, TRAINING_GAIN
        out = np.zeros(512, np.float32)
        clock = [0]

        def frame(inst=inst, cond=cond, out=out, clock=clock):
            before = inst.next_frame
            while inst.next_frame == before:
                cond.sample_time, cond.frames = clock[0], 512
                cond.onset_time[:] = (clock[0] // 48000) * 48000     # restruck every second
                inst.render(cond, out)
                clock[0] += 512
        ways[name] = frame
    return ways


def vocoder_step_table(frames: int = 1500) -> list[str]:
    import torch
    torch.set_num_threads(1)
    lines = [f"### The vocoders' frames on CPU: torch against the Numba kernels (torch {torch.__version__}, one "
             "thread)", "",
             f"CPU time of one frame, us: median / p99 over {frames - frames // 10} frames, back to back and after a "
             "1.3 ms sleep (as the render thread runs them at 64-sample blocks). The piano's frame is a whole "
             "render call that makes one (512-sample blocks at 48 kHz): the roll, the harmonic reference, the "
             "network, the vocoder and the resampler.", "",
             "| frame | rest between frames | torch | kernels | torch / kernels |", "| --- | --- | ---: | ---: | ---: |"]
    cases = [("istft-fluidr3, audio in", _vocoder_ways(frames))]
    cases += [(f"piano-midi2mel, {n} note{'s' if n > 1 else ''}", _midi2mel_ways(n)) for n in (1, 8, 32)]
    cases += [("flow 8 x WN 6x96, groups of 32, source (4.6 M, random weights)", _flow_ways())]
    for label, ways in cases:
        for fn in ways.values():
            for _ in range(20):
                fn()
        n = frames if "flow" not in label else max(50, frames // 5)     # a torch flow frame takes ~17 ms
        lines += side_by_side_rows(label, ways, n, "torch", "kernel")
    return lines + [""]
