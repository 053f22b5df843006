"""The README's screenshot of the real window: run under Xvfb (Debian package xvfb), with
the real engine process on a JACK dummy server, a shipped model loaded (the violin unless
named), its card shown in the browser, the reverb on, a take recording (into a temporary folder) and a chord
held.

    xvfb-run -s "-screen 0 1180x700x24" .venv/bin/python scripts/app_screenshot.py docs/app.png [piano-midi2mel]
"""
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main(out: str, model: str = "violin") -> None:
    from jack_rig import JackServer
    from PyQt6.QtCore import QTimer

    from livewave.engine_process import EngineProcess
    from ui.app import make_app
    from ui.engine_client import EngineClient
    from ui.main_window import MainWindow
    with JackServer(48000, 128, Path(tempfile.mkdtemp())):
        app = make_app(["livewave"])
        client = EngineClient(EngineProcess(ready_timeout=120))
        client.start({"audio": "system", "midi": "none", "block": 128, "placement": "rtmixer",
                      "model": str(ROOT / "models" / f"{model}.safetensors"),
                      "reverb": {"send": 0.35, "decay_s": 2.4, "damping": 0.45, "predelay_ms": 15}})
        w = MainWindow(client, session=None)
        w.takes_dir = Path(tempfile.mkdtemp())
        item = w.browser.item_for(str(ROOT / "models" / f"{model}.safetensors"))
        if item is not None:
            w.browser.list.setCurrentItem(item)
        w.resize(1180, 700)
        w.show()

        def play():
            for n, v in ((62, 90), (69, 100), (74, 110)):
                w.keyboard.press(n, v)

        def shot():
            app.primaryScreen().grabWindow(0).save(out)
            w.keyboard.release_all()
            w.close()
            app.quit()
        QTimer.singleShot(300, w.toggle_record)
        QTimer.singleShot(800, play)
        QTimer.singleShot(2500, shot)
        app.exec()


if __name__ == "__main__":         # NB: the engine process is spawned: this module is re-imported there
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/app.png", *sys.argv[2:3])
