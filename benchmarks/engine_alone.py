"""The engine process alone on JACK, for ``benchmarks.run --engine-alone-only``: no window, three
notes held, with 0-2 other processes spinning a Python loop beside it. Ring underruns (the
render side late), machine stalls (jack_rig.stall_count) and the hypervisor's steal per take:
whether a model, or a CPU hog, makes the engine late."""
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOG = "import time\nt = time.time()\nwhile time.time() - t < 60:\n    sum(i * i for i in range(1000))\n"


def engine_alone_table(seconds: float = 15.0, hogs=(0, 1, 2, 0, 1, 2)) -> list[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from jack_rig import JackServer, cpu_ticks, stall_count, steal_share

    from livewave.engine_process import EngineProcess
    lines = ["### The engine process alone (JACK dummy driver, 48 kHz, period 128; rtmixer, 64-sample blocks, "
             "4 ahead; three notes held; no window)", "",
             f"{seconds:g} s per take; a CPU hog is another process spinning a Python loop.", "",
             "| model | lead (blocks) | CPU hogs | ring underruns | xruns (PortAudio) | machine stalls | steal | "
             "peak block time |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in ("default instrument", "violin", "piano-midi2mel"):
        model = None if name == "default instrument" else str(ROOT / "models" / f"{name}.safetensors")
        with JackServer(48000, 128, Path("/tmp")) as server:
            ep = EngineProcess(ready_timeout=120)
            info = ep.start({"block": 64, "ahead": 4, "audio": "system", "midi": "none", "placement": "rtmixer",
                      "model": model})
            try:
                time.sleep(3.0)
                for n in (60, 64, 67):
                    ep.send("midi", 0x90, n, 90)
                for k in hogs:
                    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(k)]
                    try:
                        time.sleep(1.0)
                        b, log0, t0 = ep.status(), len(server.log_text()), cpu_ticks()
                        time.sleep(seconds)
                        a, t1 = ep.status(), cpu_ticks()
                    finally:
                        for p in procs:
                            p.kill()
                            p.wait()
                    steal = steal_share(t0, t1)
                    row = (f"| {name} | {info['lead']} | {k} | {a['ring_underruns'] - b['ring_underruns']} "
                           f"| {a['xruns'] - b['xruns']} "
                           f"| {stall_count(server.log_text()[log0:])} | {steal:.1%} | {a['load_peak']:.0f}% |")
                    print(row, flush=True)
                    lines.append(row)
            finally:
                ep.stop(timeout=5)
    return lines + ["", "Peak block time: the engine's longest render of a block since it started, over the "
                    "block's duration (`load_peak`).", ""]
