"""Vocoder benchmarks for ``benchmarks.run --vocoder-only``: the causal MelGAN generator,
offline and streamed, on the CPU (1 and 2 torch threads) and on CUDA when asked.

A stream steps whole mel frames (hop 256 at the model's 22.05 kHz); a device block of B
samples needs B / 256 frames on average, so the table gives the cost of a step of 1, 2 and
4 frames (256, 512, 1024 samples) and the headroom: audio duration / median step time.
"""
from __future__ import annotations

import time

import numpy as np


def mel_analysis_table(seconds: float = 5.0) -> list[str]:
    """The streamed Numba log-mel analysis (live audio in): cost per 256-sample hop."""
    from livewave.mel_analysis import MelStream
    x = np.random.default_rng(0).standard_normal(int(22050 * seconds)).astype(np.float32)
    rows = ["### Streamed log-mel analysis (Numba: radix-2 FFT 1024, hop 256, 80 mels, 22.05 kHz)", "",
            "| block (samples) | per frame, median of 3 runs | x real time |", "| ---: | ---: | ---: |"]
    for block in (64, 256, 1024):
        st = MelStream(22050)
        runs = []
        for _ in range(3):
            st.reset()
            t = time.perf_counter()
            for i in range(0, x.size, block):
                st.push(x[i:i + block])
            runs.append(time.perf_counter() - t)
        el = float(np.median(runs))
        rows.append(f"| {block} | {el / (x.size / 256) * 1e6:.0f} us | {seconds / el:.0f} |")
        print(rows[-1])
    return rows + [""]


def melgan_stream_table(device: str = "cpu", frames: int = 200) -> list[str]:
    import torch

    from livewave.melgan import MelGANConfig, MelGANGenerator
    lines = ["### Causal MelGAN generator, streamed (80 mels, hop 256, 22.05 kHz; random weights: speed only)", "",
             "| device | threads | ngf (parameters) | offline x real time | step 1 frame (256 samples) | "
             "step 2 frames (512) | step 4 frames (1024) |", "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    threads_list = (1, 2) if device == "cpu" else (1,)
    for threads in threads_list:
        torch.set_num_threads(threads)
        for ngf in (32, 16):
            g = MelGANGenerator(MelGANConfig(ngf=ngf)).eval().to(device)
            mel = torch.randn(1, 80, frames, device=device)
            sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
            with torch.inference_mode():
                offline = []
                for _ in range(3):
                    sync()
                    t = time.perf_counter()
                    g(mel)
                    sync()
                    offline.append(time.perf_counter() - t)
                cells = []
                for n in (1, 2, 4):
                    g.reset()
                    ts = []
                    for i in range(0, frames - n + 1, n):
                        t = time.perf_counter()
                        g.step(mel[:, :, i:i + n])
                        sync()
                        ts.append(time.perf_counter() - t)
                    med = float(np.median(ts[5:]))
                    audio = n * 256 / 22050
                    cells.append(f"{med * 1e3:.2f} ms ({audio / med:.1f}x)")
            rt = frames * 256 / 22050 / float(np.median(offline))
            lines.append(f"| {device} | {threads} | {ngf} ({g.parameter_count() / 1e6:.2f} M) | {rt:.1f} | "
                         + " | ".join(cells) + " |")
            print(lines[-1])
    return lines + [""]
