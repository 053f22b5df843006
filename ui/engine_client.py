"""The Qt adapter of the engine process: its events as Qt signals, drained on a GUI timer.

The engine (``EngineProcess``, or ``NullEngine`` in tests) knows nothing of Qt. This object
polls it every ``interval_ms`` on the GUI thread (DESIGN: real-time events are queued and
drained, never emitted from the audio side), turns each event into a signal, and restarts
the engine with the same model when it died.
"""
from __future__ import annotations

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from livewave.engine_process import EngineError


class EngineClient(QObject):
    loaded = pyqtSignal(str, dict)           # path, model info (controls, card, device)
    load_failed = pyqtSignal(str, str)       # path, message
    control_changed = pyqtSignal(str, float)
    message = pyqtSignal(str)                # errors and reports from the engine
    died = pyqtSignal(str)                   # how it ended; a restart follows
    restarted = pyqtSignal(str)
    devices = pyqtSignal(list, str)          # audio outputs, the one in use
    midi_ports = pyqtSignal(list, str, list) # available inputs, selection, connected inputs
    bindings = pyqtSignal(dict)              # {control: [channel, cc]}
    learning = pyqtSignal(str)               # control waiting for a CC ("" = none)
    learned = pyqtSignal(str, int, int)      # control, channel, cc
    reconfigured = pyqtSignal(dict)          # the engine's ready info after a device change
    gain_changed = pyqtSignal(float)         # master volume dB (answer, or a bound CC moved it)
    tuning_changed = pyqtSignal(float)       # A4 in Hz, as the engine set it
    transpose_changed = pyqtSignal(int)      # semitones, as the engine set it
    velocity_curve_changed = pyqtSignal(float)   # the velocity curve, as the engine set it
    reverb_changed = pyqtSignal(dict)        # the reverb's settings as the engine set them (or CC 91 moved)
    program = pyqtSignal(int, int, str)      # a MIDI program change: channel, program, the model ("": none)
    recording = pyqtSignal(str, str)         # a take started: its WAV and MIDI paths
    recorded = pyqtSignal(dict)              # a take ended: audio, midi, seconds, events, dropped, error

    def __init__(self, engine, interval_ms: int = 15, parent=None):
        super().__init__(parent)
        self.engine = engine
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)

    def start(self, settings: dict | None = None) -> dict:
        info = self.engine.start(settings)
        self.timer.start()
        return info

    def stop(self) -> None:
        self.timer.stop()
        self.engine.stop()

    # -- commands (never raise into the GUI: a dead engine is reported by poll) ----------------
    def send(self, *cmd) -> bool:
        return self.engine.send(*cmd)

    def load(self, path) -> bool:
        return self.engine.send("load", str(path))

    def reconfigure(self, **changes) -> dict | None:
        """Restart the engine on other audio settings (device, rate, block) with the same
        model and bindings. If it does not start on them, back to the settings it had."""
        before = {k: self.engine.settings.get(k) for k in changes}
        try:
            info = self.engine.restart(**changes)
        except EngineError as exc:
            self.message.emit(f"the engine did not start on {changes}: {exc}; back to the previous settings")
            try:
                info = self.engine.restart(**before)
            except EngineError as exc2:
                self.message.emit(f"the engine could not be restarted: {exc2}")
                return None
        self.reconfigured.emit(info)
        return info

    # -- events ---------------------------------------------------------------------------------
    def poll(self) -> None:
        for ev in self.engine.poll_events():
            kind = ev[0]
            if kind == "loaded":
                self.loaded.emit(ev[1], ev[2])
            elif kind == "load_failed":
                self.load_failed.emit(ev[1], ev[2])
            elif kind == "control":
                self.control_changed.emit(ev[1], float(ev[2]))
            elif kind in ("error", "report"):
                self.message.emit(str(ev[1]))
            elif kind == "restarted":
                self.restarted.emit(str(ev[1]))
            elif kind == "gain_db":
                self.gain_changed.emit(float(ev[1]))
            elif kind == "devices":
                self.devices.emit(list(ev[1]), str(ev[2]))
            elif kind == "midi_ports":
                self.midi_ports.emit(list(ev[3]) if len(ev) > 3 else [], str(ev[2]), list(ev[1]))
            elif kind == "bindings":
                self.bindings.emit(dict(ev[1]))
            elif kind == "learning":
                self.learning.emit(str(ev[1]))
            elif kind == "learned":
                self.learned.emit(str(ev[1]), int(ev[2]), int(ev[3]))
            elif kind == "tuning":
                self.tuning_changed.emit(float(ev[1]))
            elif kind == "transpose":
                self.transpose_changed.emit(int(ev[1]))
            elif kind == "velocity_curve":
                self.velocity_curve_changed.emit(float(ev[1]))
            elif kind == "reverb":
                self.reverb_changed.emit(dict(ev[1]))
            elif kind == "program":
                self.program.emit(int(ev[1]), int(ev[2]), str(ev[3] or ""))
            elif kind == "recording":
                self.recording.emit(str(ev[1]), str(ev[2]))
            elif kind == "recorded":
                self.recorded.emit(dict(ev[1]))
        why = self.engine.check()
        if why:
            self.died.emit(why)
            try:
                info = self.engine.restart()
            except EngineError as exc:
                self.message.emit(f"the engine could not be restarted: {exc}")
                return
            self.loaded.emit(info.get("model", {}).get("path") or "", info.get("model", {}))
            for ev in self.engine.poll_events():
                if ev[0] == "restarted":
                    self.restarted.emit(str(ev[1]))
