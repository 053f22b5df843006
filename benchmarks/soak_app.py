"""The app left playing, for ``benchmarks.run --soak MINUTES``: ``soak_app.py MINUTES BLOCK MODEL [MODEL ...]``.

The real app (its window and its engine process with the warm spare, rtmixer placement, MIDI
from the port ``lwsoak``) on the JACK server that is running. Prints "ready" once its engine
plays, waits for a line on stdin, then for MINUTES keeps the window animating as the app does
(its view timer redraws the keyboard, scope and spectrogram at ~30 frames a second; until
2026-12-01 the soak also repainted the whole window at 60 frames a second) and loads the
next MODEL every minute (crossfaded in). Every 10 s it
samples the engine's status; at the end it prints one JSON line: the counters over the run,
the render time per block (99.9th percentile and maximum, % of the block), and the engine
process's memory over time."""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(minutes: float, block: int, models: list[str]) -> None:
    from livewave.engine_process import EngineProcess
    from ui.app import LIVE_DEFAULTS, make_app
    from ui.engine_client import EngineClient
    from ui.main_window import MainWindow
    app = make_app(["soak"])
    client = EngineClient(EngineProcess(ready_timeout=120, spare=True))
    client.start({**LIVE_DEFAULTS, "audio": "system", "midi": "lwsoak", "placement": "rtmixer", "block": block,
                  "model": models[0]})
    w = MainWindow(client, model_folders=[ROOT / "models"], session=None)
    w.show()
    app.processEvents()
    print("ready", flush=True)
    sys.stdin.readline()
    ep = client.engine
    st0 = ep.status()
    t0 = time.monotonic()
    t_end = t0 + minutes * 60.0
    frames = [0]
    w.view_timer.timeout.connect(lambda: frames.__setitem__(0, frames[0] + 1))
    loads, samples = 0, []
    next_sample = t0
    next_load = t0 + 60.0
    while time.monotonic() < t_end:
        now = time.monotonic()
        app.processEvents()
        if now >= next_load:
            next_load += 60.0
            loads += 1
            w.load(models[loads % len(models)])
        if now >= next_sample:
            next_sample += 10.0
            st = ep.status()
            samples.append({"t": round(now - t0, 1), "rss_mb": round(st["rss_mb"], 1),
                            "model": Path(models[loads % len(models)]).stem,
                            "ring_underruns": st["ring_underruns"] - st0["ring_underruns"],
                            "xruns": st["xruns"] - st0["xruns"], "pid": st["pid"]})
        time.sleep(0.002)
    st = ep.status()
    keys = ("xruns", "ring_underruns", "generator_faults", "midi_messages", "dropped_events", "callbacks")
    print(json.dumps({"minutes": minutes, "block": block, "frames_drawn": frames[0], "loads": loads,
                      "restarts": ep.restarts, "load_p999": st["load_p999"], "load_peak": st["load_peak"],
                      "cpu_p999": st["cpu_p999"], "cpu_peak": st["cpu_peak"],
                      "samples": samples, **{k: st[k] - st0[k] for k in keys}}), flush=True)
    w.close()


if __name__ == "__main__":      # NB: spawned engine processes re-import this module
    main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
