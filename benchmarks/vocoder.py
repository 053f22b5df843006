"""Vocoder benchmarks for ``benchmarks.run --vocoder-only``: the causal MelGAN generator,
offline and streamed, on the CPU (1 and 2 torch threads) and on CUDA when asked.

A stream steps whole mel frames (hop 256 at the model's 22.05 kHz); a device block of B
samples needs B / 256 frames on average, so the table gives the cost of a step of 1, 2 and
4 frames (256, 512, 1024 samples) and the headroom: audio duration / median step time.
"""
from __future__ import annotations

import os
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


def vocoder_configs(quick: bool = False) -> list[tuple[str, object]]:
    """(label, generator) for every vocoder family, random weights at the reference sizes."""
    import torch

    from livewave.flow_vocoder import FlowConfig, FlowVocoder
    from livewave.istft_vocoder import ISTFTConfig, ISTFTVocoder
    from livewave.melgan import MelGANConfig, MelGANGenerator
    from livewave.reference_vocoders import (
        HiFiGANConfig,
        HiFiGANGenerator,
        MelGANReferenceConfig,
        MelGANReferenceGenerator,
    )
    from livewave.vocoder_instrument import (
        FlowVocoderInstrument,
        HiFiGANVocoder,
        ISTFTVocoderInstrument,
        MelGANReferenceVocoder,
        MelGANVocoder,
    )
    torch.manual_seed(0)
    out = [("istft 256 x 6 (causal)", ISTFTVocoderInstrument(ISTFTVocoder())),
           ("istft 256 x 6, source phase (causal)", ISTFTVocoderInstrument(ISTFTVocoder(ISTFTConfig(phase="source")))),
           ("melgan ngf 16 (causal)", MelGANVocoder(MelGANGenerator(MelGANConfig(ngf=16)))),
           ("melgan ngf 32 (causal)", MelGANVocoder(MelGANGenerator(MelGANConfig(ngf=32)))),
           ("flow 12 x WN 8x64 (causal)", FlowVocoderInstrument(FlowVocoder(FlowConfig()))),
           ("flow 8 x WN 6x48 (causal)", FlowVocoderInstrument(FlowVocoder(FlowConfig(
               n_flows=8, wn_layers=6, wn_channels=48)))),
           ("flow 8 x WN 6x96, groups of 32, source (causal)", FlowVocoderInstrument(FlowVocoder(FlowConfig(
               n_group=32, n_flows=8, wn_layers=6, wn_channels=96, n_early_size=8, source_n_fft=512)))),
           ("flow mdct 6 x WN 4x128, source (causal)", FlowVocoderInstrument(FlowVocoder(FlowConfig(
               n_group=256, n_flows=6, wn_layers=4, wn_channels=128, n_early_size=32, source_n_fft=512,
               squeeze="mdct", mel_n_fft=1024))))]
    v3 = HiFiGANConfig(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
                       upsample_initial_channel=256, resblock_kernel_sizes=(3, 5, 7),
                       resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)))
    mel = {"n_fft": 1024, "hop": 256, "n_mels": 80, "fmax": 8000.0}
    # imported (not causal): streamed with cached layer state, their lookahead as latency
    out += [("melgan ngf 32 (imported, cached)", MelGANReferenceVocoder(MelGANReferenceGenerator(
                MelGANReferenceConfig()))),
            ("hifigan V3 (imported, cached)", HiFiGANVocoder(HiFiGANGenerator(v3), mel)),
            ("hifigan V2 (imported, cached)", HiFiGANVocoder(HiFiGANGenerator(HiFiGANConfig(
                upsample_initial_channel=128)), mel))]
    if not quick:
        out.append(("hifigan V1 (imported, cached)", HiFiGANVocoder(HiFiGANGenerator(HiFiGANConfig()), mel)))
    return out


def vocoder_engine_table(device: str = "cpu", seconds: float = 4.0, quick: bool = False, only: str = "") -> list[str]:
    """Each vocoder family as the engine runs it (audio in -> resampler -> streamed mel -> model ->
    resampler -> delay line) at 48 kHz: per device block, the mean cost and the 99th percentile as a
    share of the block's duration, and offline copy synthesis as x real time. ``only``: just the
    configurations whose label contains one of its comma-separated parts."""
    import torch
    sr = 48000
    blocks = (64, 128, 256, 512)
    lines = [f"### Vocoders in the engine on {device} (48 kHz device, model at 22.05 kHz, hop 256; random weights: "
             "speed only)", "",
             "Per device block: mean cost / p99 cost, each as a share of the block's duration (a model frame falls "
             "in one block of every 557 samples; the p99 is that block). Real time needs the mean under 100%; "
             "the goal's 2x headroom at 512 is a p99 under 50%. Offline: the model alone on 4 s of mel.", "",
             "| vocoder | threads | parameters | lookahead (ms) | offline x real time | "
             + " | ".join(f"block {b}" for b in blocks) + " |",
             "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in blocks) + " |"]
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    for threads in ((1, 2) if device == "cpu" else (1,)):
        torch.set_num_threads(threads)
        for label, voc in vocoder_configs(quick):
            if only and not any(o in label for o in only.split(",")):
                continue
            voc.prepare(sr, 512, 1, device)
            ways = [(label, True)]
            if voc.kernel is not None:        # the same model with torch computing its steps, beside it
                ways.append((f"{label}, torch steps", False))
            for name, kernels in ways:
                os.environ["LIVEWAVE_CPU_KERNELS"] = "1" if kernels else "0"      # generator.cpu_kernels
                try:
                    voc.prepare(sr, 512, 1, device)
                finally:
                    os.environ.pop("LIVEWAVE_CPU_KERNELS")
                offline, cells = _stream_costs(voc, x, sr, blocks, seconds, device)
                params = sum(p.numel() for p in voc.model.parameters())
                lines.append(f"| {name} | {threads} | {params / 1e6:.2f} M | {voc.info.lookahead / sr * 1e3:.1f} | "
                             f"{offline:.1f} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    return lines + [""]


def _stream_costs(voc, x, sr: int, blocks, seconds: float, device: str) -> tuple[float, list[str]]:
    """(offline x real time of the model alone on ``seconds`` of mel, a "mean / p99" cell per
    device block size) for a prepared vocoder playing ``x`` from audio in."""
    import torch

    from livewave.generator import Conditioning
    mel = torch.randn(1, 80, int(seconds * 22050 / 256), device=voc.dev)
    with torch.inference_mode():
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            voc._offline(mel) if hasattr(voc, "_offline") else None
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
    cells = []
    for b in blocks:
        voc.reset()
        cond = Conditioning(1, 512, len(voc.info.controls), 1)
        cond.controls[:] = voc.default_controls()
        out = np.zeros(b, np.float32)
        ts = []
        for i in range(0, x.size - b, b):
            cond.frames, cond.audio_in_offset = b, 0
            cond.audio_in[:b, 0] = x[i:i + b]
            t0 = time.perf_counter()
            voc.render(cond, out)
            ts.append(time.perf_counter() - t0)
        ts = np.array(ts[20:]) / (b / sr)
        cells.append(f"{ts.mean() * 100:.0f}% / {np.percentile(ts, 99) * 100:.0f}%")
    return seconds / min(runs), cells


def midi2mel_engine_table(seconds: float = 4.0, voices=(1, 8, 16, 32)) -> list[str]:
    """A vocoder played from MIDI as the engine runs it (voices -> MIDI-to-mel -> the iSTFT
    vocoder -> resampler -> delay line) at 48 kHz, with ``n`` notes sounding all along (a held
    chord, restruck every second so every note stays in its attack-to-release life): per device
    block, the mean and p99 cost as a share of the block's duration. The vocoder with an
    absolute phase, and with its phases from the notes' harmonic reference (``source_phase``)."""
    import torch

    from livewave.generator import Conditioning
    from livewave.istft_vocoder import ISTFTConfig, ISTFTVocoder
    from livewave.midi_to_mel import MidiToMel
    from livewave.midi_to_mel_instrument import TRAINING_GAIN, MidiToMelInstrument
    from livewave.vocoder_instrument import ISTFTVocoderInstrument
    sr, blocks = 48000, (64, 128, 256, 512)
    lines = ["### A vocoder played from MIDI in the engine (MIDI to mel, 72 k parameters, then the iSTFT vocoder "
             "256 x 6; 48 kHz device; random weights: speed only)", "",
             "Per device block: mean / p99 cost as a share of the block's duration, with that many notes sounding.",
             "", "| vocoder phase | threads | notes | " + " | ".join(f"block {b}" for b in blocks) + " |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in blocks) + " |"]
    torch.manual_seed(0)
    for phase, threads in (("absolute", 1), ("source", 1), ("absolute", 2), ("source", 2)):
        torch.set_num_threads(threads)
        for n in voices:
            inst = MidiToMelInstrument(MidiToMel(), ISTFTVocoderInstrument(ISTFTVocoder(ISTFTConfig(phase=phase))))
            inst.prepare(sr, 512, max(voices), "cpu")
            cells = []
            for b in blocks:
                inst.reset()
                cond = Conditioning(max(voices), 512, len(inst.info.controls))
                cond.controls[:] = inst.default_controls()
                cond.active[:n] = cond.gate[:n] = True
                cond.note[:n] = 48 + 3 * np.arange(n) % 40
                cond.velocity[:n], cond.gain[:n] = 0.7, TRAINING_GAIN
                out = np.zeros(b, np.float32)
                ts = []
                for i in range(0, int(seconds * sr) - b, b):
                    cond.sample_time, cond.frames = i, b
                    cond.onset_time[:n] = (i // sr) * sr
                    t0 = time.perf_counter()
                    inst.render(cond, out)
                    ts.append(time.perf_counter() - t0)
                ts = np.array(ts[20:]) / (b / sr)
                cells.append(f"{ts.mean() * 100:.0f}% / {np.percentile(ts, 99) * 100:.0f}%")
            lines.append(f"| {phase} | {threads} | {n} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines + [""]
