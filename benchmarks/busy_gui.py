"""The app kept busy, for ``benchmarks.run --busy-gui-only``: ``busy_gui.py MODEL SECONDS``
(MODEL ``-``: no load, the GUI alone). Prints "ready"
once its engine process plays, waits for a line on stdin, then for SECONDS resizes the
window and redraws its views as fast as it can, loading MODEL a few seconds in; prints the
engine's counters over that time as one JSON line and exits."""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(model: str, seconds: float) -> None:
    from livewave.engine_process import EngineProcess
    from ui.app import make_app
    from ui.engine_client import EngineClient
    from ui.main_window import MainWindow
    app = make_app(["busy"])
    client = EngineClient(EngineProcess(ready_timeout=120))
    from ui.app import LIVE_DEFAULTS
    client.start({**LIVE_DEFAULTS, "audio": "system", "midi": "lwtest", "placement": "rtmixer"})   # as the app
    w = MainWindow(client, model_folders=[ROOT / "models"], session=None)
    w.show()
    app.processEvents()
    print("ready", flush=True)
    sys.stdin.readline()
    st0 = client.engine.status()
    t_end = time.monotonic() + seconds
    k, asked = 0, False
    t_load, late_at, seen = None, [], st0["ring_underruns"]
    while time.monotonic() < t_end:
        k += 1
        u = client.engine.status()["ring_underruns"]
        if u != seen:       # when the engine was late, in ms after the load was asked for
            late_at.append(round((time.monotonic() - (t_load or t_end)) * 1e3))
            seen = u
        w.resize(900 + 200 * (k % 2), 600 + 100 * (k % 3))
        w.refresh_views()
        w.repaint()
        app.processEvents()
        if not asked and model != "-" and time.monotonic() > t_end - seconds + 4:
            w.load(model)
            asked, t_load = True, time.monotonic()
    t_wait = time.monotonic() + 20
    while model != "-" and w.model_info.get("path") != model and time.monotonic() < t_wait:
        app.processEvents()
        time.sleep(0.01)
    time.sleep(0.5)
    st = client.engine.status()
    keys = ("xruns", "ring_underruns", "generator_faults", "midi_messages")
    print(json.dumps({"rounds": k, "loaded": w.model_info.get("path") == model if model != "-" else None,
                      "late_ms_after_load": late_at,
                      **{key: st[key] - st0[key] for key in keys}}), flush=True)
    w.close()


if __name__ == "__main__":      # NB: spawned engine processes re-import this module
    main(sys.argv[1], float(sys.argv[2]))
