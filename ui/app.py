"""Start the app: ``python -m ui`` (``--null`` for a window with no audio engine).

The engine runs in its own process (``EngineProcess``); when it cannot start (no audio
device) the window says why and opens on the null engine, so models can still be browsed.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys

from PyQt6.QtCore import QSettings
from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication, QMessageBox

from livewave.config import REVERB_DEFAULTS, clamp_transpose, clamp_tuning, clamp_velocity_curve, pan_value
from livewave.engine_commands import reverb_settings
from livewave.engine_process import EngineError, EngineProcess
from livewave.null_engine import NullEngine

from .engine_client import EngineClient
from .main_window import SESSION, MainWindow
from .presets import PresetError, load_preset

STYLE = """
QWidget { font-size: 11pt; }
QLabel#modelLabel { font-size: 15pt; font-weight: 600; color: #f0f0f0; }
QPushButton#panic { background: #8a1c1c; color: white; font-weight: 700; padding: 8px 18px;
                    border-radius: 4px; }
QPushButton#panic:pressed { background: #c62828; }
QPushButton#record { color: #e0e0e0; font-weight: 700; padding: 8px 14px; border: 1px solid #5a2020;
                     border-radius: 4px; }
QPushButton#record:checked { background: #d32f2f; color: white; border-color: #d32f2f; }
QGroupBox { border: 1px solid #2c3038; border-radius: 4px; margin-top: 1.2em; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; color: #9aa0a6; }
QSlider::groove:horizontal { height: 6px; background: #2c3038; border-radius: 3px; }
QSlider::handle:horizontal { width: 16px; margin: -6px 0; background: #3fa9f5; border-radius: 8px; }
QListWidget { background: #14161a; border: 1px solid #2c3038; }
QListWidget::item:selected { background: #1f5f8a; }
"""


# The app's engine: 64-sample blocks with 4 of them rendered ahead (5.3 ms of slack at 48 kHz).
# Measured with a DDSP model under a busy window on a 2-core VM (tests/test_ui_live.py), late
# blocks in 20 s: 128 x 2 ahead, 0-3 a run; 64 x 4, 0 and 1 (amid machine stalls) in 2 runs;
# 128 x 3, 0 in 3 runs.
LIVE_DEFAULTS = {"block": 64, "ahead": 4}


def dark_palette() -> QPalette:
    p = QPalette()
    for role, col in ((QPalette.ColorRole.Window, "#1b1d22"), (QPalette.ColorRole.WindowText, "#e6e6e6"),
                      (QPalette.ColorRole.Base, "#14161a"), (QPalette.ColorRole.AlternateBase, "#1f2228"),
                      (QPalette.ColorRole.Text, "#e6e6e6"), (QPalette.ColorRole.Button, "#262a31"),
                      (QPalette.ColorRole.ButtonText, "#e6e6e6"), (QPalette.ColorRole.Highlight, "#3fa9f5"),
                      (QPalette.ColorRole.HighlightedText, "#0b0c0e"), (QPalette.ColorRole.ToolTipBase, "#262a31"),
                      (QPalette.ColorRole.ToolTipText, "#e6e6e6")):
        p.setColor(role, QColor(col))
    return p


def make_app(argv=None) -> QApplication:
    app = QApplication.instance() or QApplication(list(argv or sys.argv))
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(STYLE)
    return app


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="livewave-app")
    ap.add_argument("--model", help="checkpoint to start with (default: the last one played)")
    ap.add_argument("--audio", help="output device, number or part of its name (default: the last one chosen)")
    ap.add_argument("--rate", type=int, help="sample rate (default: the last one chosen, else 48000)")
    ap.add_argument("--block", type=int, help="block size (default: the last one chosen, else 64)")
    ap.add_argument("--midi", help="MIDI input: all, none, or part of a port name (default: the last one chosen)")
    ap.add_argument("--input-channels", type=int,
                    help="audio inputs to open for models driven by audio in, such as a vocoder (default: the last "
                         "number chosen, else 0)")
    ap.add_argument("--null", action="store_true", help="no audio engine (browse models, try the window)")
    args = ap.parse_args(argv)
    app = make_app()
    store = QSettings("livewave", "livewave")
    try:
        last = load_preset(SESSION).get("model") if SESSION.exists() else None
    except PresetError:
        last = None
    model = args.model or last or store.value("model") or None
    bindings = {}
    try:
        bindings = load_preset(SESSION).get("midi_bindings", {}) if SESSION.exists() else {}
    except PresetError:
        pass

    def remembered(key, arg, default, kind=str):
        if arg is not None:
            return arg
        value = store.value(key)
        try:
            return kind(value) if value not in (None, "") else default
        except (TypeError, ValueError):
            return default
    settings = {**LIVE_DEFAULTS, "model": model, "audio": remembered("audio", args.audio, None),
                "rate": remembered("rate", args.rate, 48000, int),
                "block": remembered("block", args.block, LIVE_DEFAULTS["block"], int),
                "midi": remembered("midi", args.midi, "all"), "bindings": {k: list(v) for k, v in bindings.items()},
                "input_channels": remembered("input_channels", args.input_channels, 0, int),
                "tuning": clamp_tuning(remembered("tuning", None, 440.0, float)),
                "transpose": clamp_transpose(remembered("transpose", None, 0, int)),
                "velocity_curve": clamp_velocity_curve(remembered("velocity_curve", None, 1.0, float)),
                "pan": pan_value(remembered("pan", None, 0.0, float)),
                "reverb": reverb_settings({k: x for k, v in REVERB_DEFAULTS.items()
                                           if math.isfinite(x := remembered(f"reverb_{k}", None, v, float))}),
                "placement": "rtmixer" if importlib.util.find_spec("rtmixer") else "callback"}
    if settings["placement"] == "callback":
        settings.pop("ahead")
    engine = NullEngine() if args.null else EngineProcess(spare=True)   # a restart takes the warm spare
    client = EngineClient(engine)
    problem = None
    try:
        client.start(settings)
    except EngineError as exc:
        problem = exc
    if args.input_channels is not None:
        store.setValue("input_channels", max(0, args.input_channels))
    for fallback in ({"model": None}, {"input_channels": 0},
                     {"model": None, "audio": None, "rate": 48000, "block": 64, "input_channels": 0}):
        if problem is None:
            break
        try:                     # the remembered model or device no longer starts: the defaults
            client.start({**settings, **fallback})
            problem = None
        except EngineError as exc:
            problem = exc
    if problem is not None:
        QMessageBox.warning(None, "livewave: no audio", f"The audio engine did not start:\n{problem}\n\n"
                            "The window opens without sound.")
        client = EngineClient(NullEngine())
        client.start({**settings, "model": None})
    win = MainWindow(client, settings=store, session=SESSION,
                     restore_session=not args.model)
    app.installEventFilter(win)
    win.resize(1100, 680)
    win.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
