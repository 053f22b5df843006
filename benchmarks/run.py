"""livewave benchmarks: one command, results appended to benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run [--quick] [--no-jack]

1. DSP load of the default instrument (48 kHz, 64-sample blocks, one thread): median and
   99th-percentile cost of a block as a share of the block's duration, for 1..128 voices,
   and the largest polyphony whose median stays under 50 %.
2. Offline render speed of the shipped demo, x real time (median of 3).
3. MIDI-to-sound latency in a JACK loop (dummy driver) at 64/128/256-frame periods:
   `livewave play` in its own process, notes sent from a JACK MIDI port, its output recorded
   by another JACK client; median measured latency beside the engine's own report and the
   server's playback latency.
4. Only with its flag: ``--ddsp-only [--device cuda]``, the DDSP tables (the decoder frame on
   CPU three ways, benchmarks/decoder_step.py, and on the GPU); ``--busy-gui-only``, xruns and
   engine lateness while the app is kept busy;
   ``--vocoder-only [--device cuda]``, the shipped vocoders' frames, torch against the kernels
   (benchmarks/vocoder_step.py), and the vocoder families streamed (benchmarks/vocoder.py);
   ``--vocoder-only --vocoders A,B`` streams only the families whose label holds A or B;
   ``--swap-memory-only``, the engine process's memory over rounds of model swaps
   (benchmarks/swap_memory.py).
Times on a shared VM are noisy: read ratios and medians, not single numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def dsp_load(voices_list, block=64, rate=48000, blocks=3000, model=None, device="cpu"):
    """``model``: a checkpoint path (None: the default instrument); ``device``: where a torch
    generator runs."""
    from livewave.checkpoint import load_generator
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    rows = []
    for voices in voices_list:
        gen = load_generator(model) if model else None
        e = Engine(EngineConfig(sample_rate=rate, max_block=block, polyphony=voices, device=device), gen).prepare()
        for k in range(voices):   # a spread of the keyboard (C2..B5), mid velocity, distinct keys
            e.push_event(0, 0x90 | (k // 48), 36 + (k * 7) % 48, 90)
        out = np.zeros((block, 2), np.float32)
        ts = np.zeros(blocks)
        for i in range(blocks):
            t = time.perf_counter()
            e.render(out)
            ts[i] = time.perf_counter() - t
        assert e.stats.voices == voices
        ts = ts[blocks // 5:] * rate / block
        rows.append((voices, float(np.median(ts)), float(np.percentile(ts, 99)), float(np.mean(ts))))
    return rows


def ddsp_table(model, quick=False, device="cpu"):
    """DDSP instrument vs the default instrument at the same block size and polyphony, one
    torch thread (one core): cost of a block (median, p99) and real-time factor."""
    import torch
    torch.set_num_threads(1)
    n_blocks = {64: 1500, 128: 800, 256: 400} if quick else {64: 3000, 128: 1600, 256: 800}
    where = "on CPU (torch, one thread)" if device == "cpu" else f"with the decoder on {device} ({_gpu_name()})"
    lines = [f"### DDSP instrument `models/{model.name}` {where}, 48 kHz", "",
             "Share of one core: mean over blocks (the CPU it takes) and p99 (the worst blocks: those "
             "that run a decoder frame, every 192 samples). Real-time factor = 1 / mean. The default "
             "instrument measured right after, same block and polyphony.", "",
             "| block | voices | DDSP mean | DDSP median | DDSP p99 | DDSP p99 per block | real-time factor | "
             "default mean | DDSP / default |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for block in (64, 128, 256):
        for voices in (1, 16, 64):
            (_, m, p, mean), = dsp_load([voices], block=block, blocks=n_blocks[block], model=model, device=device)
            (_, _, _, dmean), = dsp_load([voices], block=block, blocks=n_blocks[block])
            us = p * block / 48000 * 1e6
            lines.append(f"| {block} | {voices} | {mean * 100:.1f}% | {m * 100:.1f}% | {p * 100:.1f}% | {us:.0f} us | "
                         f"{1 / mean:.1f}x | {dmean * 100:.1f}% | {mean / dmean:.1f}x |")
    return lines + [""]


def _gpu_name():
    import torch
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"


def gpu_step_table(model, frames=3000):
    """The decoder frame on CUDA alone, as the render side calls it (inputs in, graph replay,
    outputs back to pinned host memory, wait): wall time per frame, and the GPU's own time
    between CUDA events around the replay."""
    import torch

    from livewave.checkpoint import load_generator
    lines = [f"### DDSP decoder frame on CUDA (`models/{model.name}`, {_gpu_name()}, torch {torch.__version__})", "",
             "One frame = one CUDA graph replay holding the host-to-device copy of the inputs, the decoder "
             "step for all voices and the copy of the outputs back to pinned host memory, then a wait on "
             "its stream. 'wall' is what the render thread waits (perf_counter); 'GPU' is between CUDA events "
             "recorded on the stream around the replay. A frame runs every 192 samples at 48 kHz, so at "
             "most one per 64- or 128-sample block.", "",
             "| voices | wall median | wall p99 | wall max | GPU median | GPU p99 |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    rng = np.random.default_rng(0)
    for voices in (1, 16, 64, 128):
        gen = load_generator(model)
        gen.prepare(48000, 256, voices, "cuda")
        assert gen.graph is not None, "the step was not captured as a CUDA graph"
        wall, gpu = np.zeros(frames), np.zeros(frames)
        ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for i in range(frames):
            gen.f0_np[:] = 110 * 2 ** rng.uniform(0, 4, voices)
            gen.ld_np[:] = rng.uniform(-60, -10, voices)
            gen.active_np[:] = 1.0
            t = time.perf_counter()
            gen._step()
            wall[i] = time.perf_counter() - t
            with torch.cuda.stream(gen.stream):
                ev0.record()
                gen.graph.replay()
                ev1.record()
            ev1.synchronize()
            gpu[i] = ev0.elapsed_time(ev1) * 1e-3
        wall, gpu = wall[frames // 10:] * 1e6, gpu[frames // 10:] * 1e6
        lines.append(f"| {voices} | {np.median(wall):.0f} us | {np.percentile(wall, 99):.0f} us | {wall.max():.0f} us | "
                     f"{np.median(gpu):.0f} us | {np.percentile(gpu, 99):.0f} us |")
        print(lines[-1])
    return lines + [""]


def busy_gui(seconds: float = 20.0, load: bool = True) -> dict:
    """20 s of MIDI chords from a JACK MIDI port into the real engine process while the app (its
    own process, ``benchmarks/busy_gui.py``) is kept busy: resized over and over, its views
    redrawn as fast as it can, a model loaded and crossfaded in. The rig runs here, in a third
    process, as a keyboard would. -> the engine's counters over that time and JACK's culprits."""
    import json
    from collections import Counter

    from jack_rig import JackServer, Rig, xrun_culprits
    violin = ROOT / "models" / "violin.safetensors" if load else "-"
    with JackServer(48000, 128, Path(tempfile.mkdtemp())) as server:
        gui = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "busy_gui.py"), str(violin), str(seconds)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        rig = None
        try:
            assert gui.stdout.readline().strip() == "ready", "the app did not start"
            rig = Rig(seconds=seconds + 1.0)
            t_end = time.monotonic() + 10
            while not any(c.name.startswith("livewave") for c in rig.client.get_all_connections(rig.midi_out)):
                assert time.monotonic() < t_end, "MIDI not connected"
                time.sleep(0.05)
            events, t = [], 4800
            chords = ((60, 64, 67), (62, 65, 69), (57, 60, 64), (59, 62, 67))
            for i in range(int(seconds * 4)):               # a chord every 250 ms
                for n in chords[i % 4]:
                    events += [(t, bytes([0x90, n, 70 + i % 50])), (t + 11000, bytes([0x80, n, 0]))]
                t += 12000
            events.sort(key=lambda e: e[0])
            rig.schedule(events)
            log_before = len(server.log_text())
            rig.start()
            gui.stdin.write("go\n")
            gui.stdin.flush()
            report = json.loads(gui.stdout.readline())
            rig.wait_done(10)
            report["culprits"] = dict(Counter(xrun_culprits(server.log_text()[log_before:])))
            report["midi_sent"] = len(events)
        finally:
            if rig is not None:
                rig.close()
            gui.stdin.close()
            gui.wait(60)
    return report


class MidiLooper:
    """A JACK MIDI client that plays a MIDI file's events over and over for ``seconds`` from its
    own port (``lwsoak:midi_out``), on JACK's frame clock. Its process callback is compiled
    (``tests/compiled_rig.py``): a Python one took the GIL every cycle and was the client JACK
    blamed most (1946 xruns in the 60-minute soak of 2026-12-01)."""

    def __init__(self, path, rate: int, seconds: float):
        from compiled_rig import CompiledRig

        from livewave.smf import read_midi_file
        song = read_midi_file(path)
        length = int((song.duration + 1.0) * rate)
        one = [(int(t * rate), bytes([s, a, b][:3 if s & 0xF0 not in (0xC0, 0xD0) else 2]))
               for t, s, a, b in song.events]
        loops = int(seconds * rate // length) + 2
        self.rig = CompiledRig("lwsoak", 0, channels=0)
        self.rig.schedule([(4800 + k * length + t, d) for k in range(loops) for t, d in one])
        self.rig.arm()

    @property
    def sent(self) -> int:
        return self.rig.n_sent

    def close(self) -> None:
        self.rig.close()


# swapped in turn, one a minute: DDSP instruments and vocoders played from MIDI (until 2026-12-02
# the DDSP ones alone: a vocoder's frame then cost a whole 64-sample block in torch)
SOAK_MODELS = ("violin", "piano-midi2mel", "cello", "strings-midi2mel", "flute")


def soak(minutes: float, block: int) -> dict:
    """The soak of issue #6: the app (its own process, ``benchmarks/soak_app.py``: window
    animating, engine process with its warm spare, rtmixer) on ``jackd -d dummy`` at 48 kHz
    with period ``block``, MIDI from ``livewave/data/demo.mid`` looping on a JACK port of this
    process, a model swapped every minute. -> the app's report and JACK's culprits."""
    import json
    from collections import Counter

    from jack_rig import JackServer, xrun_culprits
    models = [str(ROOT / "models" / f"{m}.safetensors") for m in SOAK_MODELS]
    with JackServer(48000, block, Path(tempfile.mkdtemp())) as server:
        app = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "soak_app.py"), str(minutes), str(block),
                                *models], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        looper = None
        try:
            assert app.stdout.readline().strip() == "ready", "the app did not start"
            looper = MidiLooper(ROOT / "livewave" / "data" / "demo.mid", 48000, minutes * 60.0 + 120.0)
            log_before = len(server.log_text())
            app.stdin.write("go\n")
            app.stdin.flush()
            report = json.loads(app.stdout.readline())
            report["culprits"] = dict(Counter(xrun_culprits(server.log_text()[log_before:])))
            report["midi_sent"] = looper.sent
            report["realtime"] = server.realtime
        finally:
            if looper is not None:
                looper.close()
            app.stdin.close()
            app.wait(60)
    return report


def render_time_distribution(model: str | None, block: int, notes: int = 6, blocks: int = 20000) -> dict:
    """One thread rendering ``blocks`` blocks of ``notes`` held notes offline (no device, no
    other thread): the per-block wall and CPU time (time.thread_time) in % of the block, their
    median, p99, p99.9 and maximum. A frame-based model (DDSP) computes a frame in one block
    of several: those blocks are its spikes, which the ring of the thread and rtmixer
    placements spreads."""
    from livewave.checkpoint import load_generator
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    e = Engine(EngineConfig(sample_rate=48000, max_block=block, polyphony=16),
               load_generator(model) if model else None).prepare()
    keys = [55 + 3 * k for k in range(notes)]
    out = np.zeros((block, 2), np.float32)
    wall, cpu = np.zeros(blocks), np.zeros(blocks)
    for i in range(blocks):
        if i % 3000 == 0:
            for k in keys:
                e.push_event(0, 0x80, k, 0)
                e.push_event(0, 0x90, k, 90)
        t0, c0 = time.perf_counter(), time.thread_time()
        e.render(out)
        cpu[i], wall[i] = time.thread_time() - c0, time.perf_counter() - t0
    per = 48000 / block * 100.0
    r = {}
    for name, x in (("wall", wall), ("cpu", cpu)):
        x = x[1000:] * per
        r[name] = [float(v) for v in np.percentile(x, [50, 99, 99.9])] + [float(x.max())]
        r[name + "_over_100"] = int((x > 100.0).sum()) / x.size * 100.0
    return r


def _binned_pct(p: float) -> str:
    """A percentile read from the engine's 1% histogram (``audio_io.LOAD_BINS``): its top bin holds
    everything at or over 200%, so a percentile there is a bound, not a figure."""
    from livewave.audio_io import LOAD_BINS
    return f"at or over {LOAD_BINS - 1}%" if p >= LOAD_BINS else f"{p:.0f}%"


def _visits(samples: list[dict]) -> str:
    """Each model's resident memory, its first visit after the first minute against its last
    (a visit: the consecutive samples taken while it played; the first sample of each left out,
    as the swap may not have finished): "name a -> b MB (+x%)", or "n/a" without two visits."""
    visits: list[tuple[str, list[float]]] = []
    for s in samples:
        if "model" not in s or s["rss_mb"] <= 0 or s["t"] < 60.0:
            continue
        if visits and visits[-1][0] == s["model"]:
            visits[-1][1].append(s["rss_mb"])
        else:
            visits.append((s["model"], [s["rss_mb"]]))
    seen: dict[str, list[float]] = {}
    for name, v in visits:
        if len(v) > 1:
            seen.setdefault(name, []).append(float(np.median(v[1:])))
    cells = [f"{n} {v[0]:.0f} -> {v[-1]:.0f} MB ({(v[-1] - v[0]) / v[0] * 100:+.1f}%)"
             for n, v in seen.items() if len(v) > 1]
    return "; ".join(cells) or "n/a"


def soak_section(minutes: float, block: int) -> list[str]:
    spikes = {name: render_time_distribution(m, block) for name, m in
              (("built-in instrument", None), ("violin (DDSP)", str(ROOT / "models" / "violin.safetensors")))}
    r = soak(minutes, block)
    print(r)
    rss = [s["rss_mb"] for s in r["samples"] if s["t"] >= 60.0 and s["rss_mb"] > 0] or [0.0]
    pids = sorted({s["pid"] for s in r["samples"]})
    growth = (rss[-1] - rss[0]) / rss[0] * 100 if rss[0] else float("nan")
    livewave_culprits = {k: v for k, v in r["culprits"].items() if k.startswith("livewave")}
    return [f"### Soak: {minutes:g} min at {block}-sample blocks, 48 kHz, JACK dummy driver "
            f"({'-R' if r['realtime'] else '--no-realtime'})", "",
            "The app in its own process (window animating at its own ~30 frames/s, offscreen), its engine process "
            "(rtmixer, 4 blocks ahead, the warm spare beside it), `livewave/data/demo.mid` looping from a JACK MIDI "
            f"port, a model swapped every minute ({', '.join(SOAK_MODELS)}).", "",
            "| what | measured | target |", "| --- | ---: | --- |",
            f"| ring underruns (engine late) | {r['ring_underruns']} | 0 |",
            f"| xruns JACK blamed on livewave | {sum(livewave_culprits.values())} {livewave_culprits or ''} | 0 |",
            f"| xruns PortAudio saw (any client's, the machine's stalls) | {r['xruns']} | |",
            f"| JACK's culprits, all | {r['culprits']} | |",
            f"| render time per block, p99.9 | {_binned_pct(r['load_p999'])} of the block | under 50% |",
            f"| render time per block, max | {r['load_peak']:.0f}% of the block | under 70% |",
            f"| the render thread's own CPU time per block, p99.9 / max (the time it ran; for the rest of "
            f"the render time it waited for a core or the GIL) | {_binned_pct(r.get('cpu_p999', float('nan')))} / "
            f"{r.get('cpu_peak', float('nan')):.0f}% | |",
            f"| engine memory after the first minute, first -> last | {rss[0]:.0f} -> {rss[-1]:.0f} MB "
            f"({growth:+.1f}%) | flat (under 1%) |",
            f"| engine memory per model, its first visit after the first minute -> its last (the median of "
            f"each visit's samples after its first; the models differ in size) | {_visits(r['samples'])} | "
            f"flat (under 1%) |",
            f"| model swaps / engine restarts | {r['loads']} / {r['restarts']} | |",
            f"| MIDI sent / received | {r['midi_sent']} / {r['midi_messages']} | |",
            f"| GUI frames drawn | {r['frames_drawn']} | |", "",
            f"Engine process ids seen: {pids}. Memory every 10 s (MB): {[s['rss_mb'] for s in r['samples']]}.", "",
            f"The render time per block of the same code offline, just before the soak in the same run: one "
            f"thread, 6 notes held, {block}-sample blocks, 19000 blocks (`render_time_distribution`):", "",
            "| generator | time | median | p99 | p99.9 | max | blocks over 100% |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
            *[f"| {name} | {kind} | " + " | ".join(f"{v:.1f}%" for v in d[kind]) + f" | {d[kind + '_over_100']:.2f}% |"
              for name, d in spikes.items() for kind in ("wall", "cpu")], ""]


def render_speed(block=256):
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    from livewave.offline_render import render_song
    from livewave.smf import read_midi_file
    song = read_midi_file(ROOT / "livewave" / "data" / "demo.mid")
    speeds = []
    for _ in range(3):
        e = Engine(EngineConfig(max_block=block)).prepare()
        t = time.perf_counter()
        audio = render_song(e, song, block=block)
        speeds.append(audio.shape[0] / 48000 / (time.perf_counter() - t))
    return float(np.median(speeds))


def jack_latency(period, split, placement="callback", notes=16, rate=48000):
    """``split``: the MIDI comes from a client of its own (a source, like a hardware keyboard's
    capture port); else from the recording client (JACK runs it after the instrument)."""
    from audio_checks import onset_from_silence
    from jack_rig import JackServer, Rig
    tmp = ROOT / "out" / "bench"
    tmp.mkdir(parents=True, exist_ok=True)
    with JackServer(rate, period, tmp) as server:
        rig = Rig(seconds=notes * 0.5 + 1.0, split=split)
        stats = tmp / f"stats-{period}.json"
        stats.unlink(missing_ok=True)
        env = {**os.environ, "JACK_NO_START_SERVER": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "livewave", "play", "--audio", "system", "--midi",
                                 "lwtest", "--block", str(period), "--stats-json", str(stats), "--placement", placement],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t_end = time.monotonic() + 120
            while time.monotonic() < t_end:
                outs = rig.ports("livewave", is_audio=True, is_output=True)
                conn = [c.name for c in rig.client.get_all_connections(rig.midi_out)]
                if outs and conn and stats.exists():
                    break
                time.sleep(0.1)
            rig.connect_output(sorted(outs)[0])
            lsp = subprocess.run(["jack_lsp", "-l", "system:playback_1"], capture_output=True, text=True).stdout
            sys_lat = [int(v) for v in lsp.split("playback latency = [")[1].split("]")[0].split()] \
                if "playback latency = [" in lsp else []
            time.sleep(0.5)
            step = rate // 2 // period * period
            ev = []
            for i in range(notes):
                t = rate // 4 + i * step + (i * period) // notes   # onsets spread over the period's phase
                ev += [(t, bytes([0x90, 60 + i % 12, 100])), (t + step // 5, bytes([0x80, 60 + i % 12, 0]))]
            rig.schedule(ev)
            log_at = len(server.log_text())
            st0 = json.loads(stats.read_text())
            rig.start()
            rig.wait_done(60)
            st = json.loads(stats.read_text())
            window_log = server.log_text()[log_at:]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
            rig.close()
        x = rig.recording[:, 0]
        lats = []
        for i in range(notes):
            t = ev[2 * i][0]
            hit = onset_from_silence(x[t:t + step // 5])
            if hit >= 0 and np.abs(x[t - rate // 100:t]).max() < 1e-4:    # silent before: a clean onset
                lats.append(hit)
        from jack_rig import xrun_culprits
        xr = [c for c in xrun_culprits(window_log) if c.startswith("livewave")]
        xr_all = [c for c in xrun_culprits(server.log_text()) if c.startswith("livewave")]
    return {"period": period, "split": split, "placement": placement, "measured_median": float(np.median(lats)),
            "measured_max": int(max(lats)), "measured_min": int(min(lats)),
            "late": st["midi_late"], "late_samples": st["midi_late_samples"],
            "n": len(lats), "engine_report": st["latency_s"] * rate, "midi_delay": st["midi_delay"],
            "engine_lookahead": st["engine_latency_samples"], "server_playback_latency": list(sys_lat),
            "device_latency_pa": st["device_latency_s"] * rate, "xruns": st["xruns"] - st0["xruns"], "xrun_lines": len(xr),
            "xrun_lines_startup": len(xr_all) - len(xr)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-jack", action="store_true")
    ap.add_argument("--jack-only", action="store_true", help="only the JACK latency part")
    ap.add_argument("--ddsp-only", action="store_true", help="only the DDSP instrument table")
    ap.add_argument("--busy-gui-only", action="store_true", help="only the busy-GUI run on JACK")
    ap.add_argument("--engine-alone-only", action="store_true",
                    help="only the engine process alone on JACK, with and without CPU hogs")
    ap.add_argument("--vocoder-only", action="store_true", help="only the vocoder streaming table")
    ap.add_argument("--latency-only", action="store_true",
                    help="only the offline table from a note-on to its sound, every shipped instrument")
    ap.add_argument("--take-only", action="store_true",
                    help="only what recording a take costs the render side (offline)")
    ap.add_argument("--reverb-only", action="store_true", help="only what the reverb costs the render side (offline)")
    ap.add_argument("--swap-memory-only", action="store_true",
                    help="only the engine process's memory over rounds of model swaps on JACK")
    ap.add_argument("--vocoders", default="", help="with --vocoder-only: only the engine table, and in it only "
                    "the vocoders whose label contains one of these comma-separated parts (e.g. 'flow,source phase')")
    ap.add_argument("--swap-rounds", type=int, default=5, help="rounds for --swap-memory-only")
    ap.add_argument("--swap-models", default=",".join(SOAK_MODELS),
                    help="comma-separated model names in models/ for --swap-memory-only")
    ap.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                    help="only the soak: the app playing a looping MIDI file for MINUTES (see soak())")
    ap.add_argument("--soak-block", type=int, default=64, help="JACK period and engine block for --soak")
    ap.add_argument("--device", default="cpu", help="where the DDSP decoder runs: cpu (default) or cuda; "
                    "with cuda the DDSP tables run on both, plus the decoder frame alone on the GPU")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="append the results here")
    args = ap.parse_args()
    voices = [1, 16, 32, 64] if args.quick else [1, 8, 16, 24, 32, 48, 64, 96, 128]
    lines = [f"## {time.strftime('%Y-%m-%d %H:%M')} — `python -m benchmarks.run"
             f"{' --quick' if args.quick else ''}{' --jack-only' if args.jack_only else ''}"
             f"{' --ddsp-only' if args.ddsp_only else ''}{' --busy-gui-only' if args.busy_gui_only else ''}"
             f"{' --engine-alone-only' if args.engine_alone_only else ''}"
             f"{' --vocoder-only' if args.vocoder_only else ''}{' --latency-only' if args.latency_only else ''}"
             f"{f' --vocoders {args.vocoders!r}' if args.vocoders else ''}"
             f"{' --swap-memory-only' if args.swap_memory_only else ''}{' --take-only' if args.take_only else ''}"
             f"{' --reverb-only' if args.reverb_only else ''}"
             f"{f' --swap-rounds {args.swap_rounds}' if args.swap_rounds != 5 else ''}"
             f"{f' --swap-models {args.swap_models}' if args.swap_models != ','.join(SOAK_MODELS) else ''}"
             f"{f' --soak {args.soak:g} --soak-block {args.soak_block}' if args.soak else ''}"
             f"{'' if args.device == 'cpu' else ' --device ' + args.device}`",
             "", f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}, "
             f"Python {platform.python_version()}, {platform.platform()}"
             f"{'' if args.device == 'cpu' else ', GPU: ' + _gpu_name()}", ""]
    models = sorted((ROOT / "models").glob("*.safetensors"))[:1]
    if args.soak:
        lines += soak_section(args.soak, args.soak_block)
        args.no_jack = True
    elif args.swap_memory_only:
        from benchmarks.swap_memory import swap_memory_section
        lines += swap_memory_section([str(ROOT / "models" / f"{m}.safetensors") for m in args.swap_models.split(",")],
                                     rounds=args.swap_rounds)
        args.no_jack = True
    elif args.take_only:
        from benchmarks.take_cost import take_cost_table
        lines += take_cost_table()
        args.no_jack = True
    elif args.reverb_only:
        from benchmarks.reverb_cost import reverb_cost_table
        lines += reverb_cost_table()
        args.no_jack = True
    elif args.latency_only:
        from benchmarks.note_latency import note_latency_table
        lines += note_latency_table()
        args.no_jack = True
    elif args.vocoder_only:
        from benchmarks.vocoder import (
            mel_analysis_table,
            melgan_stream_table,
            midi2mel_engine_table,
            vocoder_engine_table,
        )
        from benchmarks.vocoder_step import vocoder_step_table
        if args.vocoders:
            lines += vocoder_engine_table(args.device, quick=args.quick, only=args.vocoders)
        else:
            if args.device == "cpu":
                lines += vocoder_step_table(300 if args.quick else 1500)
            lines += mel_analysis_table() + melgan_stream_table(args.device)
            lines += vocoder_engine_table(args.device, quick=args.quick)
            lines += midi2mel_engine_table()
        args.no_jack = True
    elif args.engine_alone_only:
        from benchmarks.engine_alone import engine_alone_table
        lines += engine_alone_table()
        args.no_jack = True
    elif args.busy_gui_only:
        lines += ["### A busy GUI while MIDI plays (JACK dummy driver, 48 kHz, period 128; the app's engine "
                  "settings: rtmixer placement, 64-sample blocks, 4 ahead)", "",
                  "20 s of chords from a JACK MIDI client (its own process) into the engine process, while the app's "
                  "process resizes and redraws its window as fast as it can; with and without loading the violin "
                  "a few seconds in (alternating runs).",
                  "", "| run | model load | GUI rounds | MIDI received / sent | xruns (PortAudio) | ring underruns "
                  "(engine late) | late at (ms after the load was asked) | generator faults | JACK's culprits |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
        for i, load in enumerate((True, False, True, False)):
            r = busy_gui(load=load)
            print(r)
            lines.append(f"| {i + 1} | {'violin' if load else 'none'} | {r['rounds']} | {r['midi_messages']} / "
                         f"{r['midi_sent']} | {r['xruns']} | {r['ring_underruns']} | {r['late_ms_after_load']} | "
                         f"{r['generator_faults']} | "
                         f"{r['culprits']} |")
        lines.append("")
        args.no_jack = True
    elif args.ddsp_only:
        from benchmarks.decoder_step import decoder_step_table
        for model in models:
            lines += decoder_step_table(model)
            if args.device != "cpu":
                lines += gpu_step_table(model)
                lines += ddsp_table(model, quick=args.quick, device=args.device)
            lines += ddsp_table(model, quick=args.quick)
            print("\n".join(lines))
        args.no_jack = True
    elif not args.jack_only:
        rows = dsp_load(voices)
        lines += ["### DSP load, default instrument, 48 kHz, 64-sample blocks, one thread", "",
                  "| voices | median | p99 |", "| ---: | ---: | ---: |"]
        lines += [f"| {v} | {m * 100:.1f}% | {p * 100:.1f}% |" for v, m, p, _ in rows]
        under = [v for v, m, _, _ in rows if m < 0.5]
        lines += ["", f"Largest polyphony measured with median under 50%: {max(under) if under else 0} voices.", ""]
        print("\n".join(lines))
        for model in models:
            if args.device != "cpu":
                lines += gpu_step_table(model)
                lines += ddsp_table(model, quick=args.quick, device=args.device)
            lines += ddsp_table(model, quick=args.quick)
            print("\n".join(lines[-14:]))
        sp = render_speed()
        lines += [f"### Offline render\n\nShipped demo, block 256: {sp:.1f}x real time (median of 3).", ""]
        print(lines[-2])
    if not args.no_jack:
        lines += ["### MIDI-to-sound latency, JACK dummy driver at 48 kHz (frames)", "",
                  "Measured in JACK's graph: from the frame a MIDI note-on is sent to the first frame of "
                  "sound in the recording client (the server's playback latency is not in this figure; "
                  "the engine's report includes it). Source 'keyboard': the MIDI comes from a client of "
                  "its own (as a hardware keyboard's capture port); 'loop': from the recording client, "
                  "which JACK runs after the instrument's audio client. Notes are sent at 16 phases of the "
                  "period: min = max means sample-accurate.", "",
                  "| period | placement | source | measured min / median / max | engine report | of which: scheduling "
                  "delay | look-ahead | late-drain allowance | late messages | PortAudio device latency | "
                  "server playback latency | xruns while playing (all seen by PortAudio; livewave late per "
                  "JACK log) | xruns with livewave late during start-up |",
                  "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for period in (64, 128, 256):
            for placement, split in (("callback", True), ("callback", False), ("thread", True), ("rtmixer", True)):
                r = jack_latency(period, split, placement)
                print(r)
                lines.append(f"| {period} | {placement} | {'keyboard' if split else 'loop'} | {r['measured_min']} / "
                             f"{r['measured_median']:.0f} / {r['measured_max']} | "
                             f"{r['engine_report']:.0f} | {r['midi_delay']} | {r['engine_lookahead']} | "
                             f"{r['late_samples']} | {r['late']} of {2 * r['n']} | "
                             f"{r['device_latency_pa']:.0f} | {r['server_playback_latency']} | "
                             f"{r['xruns']}, {r['xrun_lines']} | {r['xrun_lines_startup']} |")
        lines.append("")
    out = Path(args.results)
    head = "" if out.exists() else "# Benchmark results\n\nNewest first is not guaranteed: each run is appended.\n\n"
    with open(out, "a") as f:
        f.write(head + "\n".join(lines) + "\n")
    print(f"appended to {out}")


if __name__ == "__main__":
    main()
