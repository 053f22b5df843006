"""The DDSP decoder frame on CPU, three ways side by side, for ``benchmarks.run --ddsp-only``:
torch's eager ``DDSPDecoder.step``, a TorchScript trace of it (the CPU path until 2026-12-02)
and the Numba kernel (``ddsp_decoder_kernel``, the CPU path now). Per frame: the render
thread's CPU time (``time.thread_time``), median and p99, with the thread running frames back
to back and with a 1.3 ms sleep before each (the live render thread sleeps between blocks,
and what it finds in the caches afterwards is what it pays for)."""
from __future__ import annotations

import time
import warnings
from functools import partial

import numpy as np

VOICES = (1, 3, 16, 64)


def frame_times(step, frames: int, nap: float) -> np.ndarray:
    """CPU time of ``step()`` (us), ``frames`` calls, the first tenth dropped; ``nap`` s of sleep before each."""
    ts = np.zeros(frames)
    for i in range(frames):
        if nap:
            time.sleep(nap)
        t = time.thread_time()
        step()
        ts[i] = time.thread_time() - t
    return ts[frames // 10:] * 1e6


def _in_inference(fn, *args) -> None:
    import torch
    with torch.inference_mode():
        fn(*args)


def decoder_step_table(model_path, frames: int = 1500) -> list[str]:
    import torch

    from livewave.checkpoint import load_generator
    from livewave.ddsp_decoder_kernel import DecoderKernel
    torch.set_num_threads(1)
    model = load_generator(model_path).model.eval().requires_grad_(False)
    nyq = 8000.0

    class Step(torch.nn.Module):          # as the CPU path traced it
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, f0, ld, h):
            return self.model.step(f0, ld, h, nyq)
    c = model.config
    lines = [f"### The DDSP decoder frame on CPU: torch, TorchScript, Numba (`models/{model_path.name}`, "
             f"torch {torch.__version__}, one thread)", "",
             "CPU time of one frame (all active voices), us: median / p99 over "
             f"{frames - frames // 10} frames. 'back to back': frame after frame; 'after a 1.3 ms sleep': as the "
             "render thread runs them, a block apart at 64-sample blocks. Same weights, inputs and voices each way.",
             "", "| voices | rest between frames | torch eager | TorchScript trace | Numba kernel | trace / kernel |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    rng = np.random.default_rng(0)
    for voices in VOICES:
        f0 = torch.from_numpy((110 * 2 ** rng.uniform(0, 4, voices)).astype(np.float32))
        ld = torch.from_numpy(rng.uniform(-60, -10, voices).astype(np.float32))
        h = torch.zeros(voices, c.hidden)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(Step().eval(), (f0, ld, h), check_trace=False)
        kern = DecoderKernel(model, voices)
        arrays = (f0.numpy(), ld.numpy(), np.ones(voices, np.float32), np.zeros(voices, np.float32),
                  np.zeros((voices, c.hidden), np.float32), nyq, np.zeros((voices, c.n_harmonics), np.float32),
                  np.zeros((voices, c.n_bands), np.float32))
        ways = {"eager": partial(_in_inference, model.step, f0, ld, h, nyq),
                "script": partial(_in_inference, traced, f0, ld, h),
                "numba": partial(kern.step, *arrays)}
        for name in ("eager", "script", "script", "script", "numba"):   # TorchScript optimises on its first calls
            ways[name]()
        lines += side_by_side_rows(str(voices), ways, frames, "script", "numba")
    return lines + [""]


def side_by_side_rows(label: str, ways: dict, frames: int, before: str, after: str) -> list[str]:
    """Table rows ``| label | rest | median / p99 of each way ... | before / after |``: each way's
    CPU time per call (us), back to back and after a 1.3 ms sleep (a 64-sample block at 48 kHz)."""
    rows = []
    for rest, nap in (("back to back", 0.0), ("after a 1.3 ms sleep", 64 / 48000)):
        m = {}
        for name, fn in ways.items():
            ts = frame_times(fn, frames, nap)
            m[name] = (float(np.median(ts)), float(np.percentile(ts, 99)))
        row = (f"| {label} | {rest} | " + " | ".join(f"{a:.0f} / {b:.0f}" for a, b in m.values())
               + f" | {m[before][0] / m[after][0]:.1f}x |")
        print(row, flush=True)
        rows.append(row)
    return rows
