"""The test keyboard (``jack_rig.Rig``) in a process of its own, for tests whose own process is
busy (a GUI): a Python JACK client shares its process's GIL, and a busy GUI beside it makes
it late (measured: ~1000 xruns in 20 s blamed on the rig's client when it ran in the test's
process). ``python tests/rig_process.py EVENTS.json SECONDS``: registers the MIDI port,
prints "ready", waits for a line on stdin, plays the events (frame, hex bytes), prints one
JSON line {"sent": n, "done": bool} when done."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(events_path: str, seconds: float) -> None:
    from jack_rig import Rig
    events = [(int(t), bytes.fromhex(h)) for t, h in json.loads(Path(events_path).read_text())]
    rig = Rig(seconds=seconds, split=True)
    try:
        rig.schedule(events)
        print("ready", flush=True)
        sys.stdin.readline()
        rig.start()
        done = rig.wait_done(seconds + 20)
        print(json.dumps({"sent": len(rig.sent), "done": done}), flush=True)
    finally:
        rig.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
