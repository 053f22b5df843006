"""The Qt adapter of the engine process: its events as Qt signals, drained on a GUI timer.

The engine (``EngineProcess``, or ``NullEngine`` in tests) knows nothing of Qt. This object
polls it every ``interval_ms`` on the GUI thread (DESIGN: real-time events are queued and
drained, never emitted from the audio side), turns each event into a signal, and restarts
the engine with the same model when it died. One whose audio device went away (unplugged, its
server ended) waits for it in its own process and plays again, with the same model, when it
is back (the ("ready", info) event). An engine that does not start again for any other reason
is tried again every ``RETRY_S``, ``GIVE_UP_AFTER`` times.
"""
from __future__ import annotations

import time

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from livewave.engine_process import DeviceUnavailable, EngineError

RETRY_S = 2.0
GIVE_UP_AFTER = 3


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
    pan_changed = pyqtSignal(float)              # the pan, as the engine set it or a CC 10 moved it
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
        self._retry_at = 0.0          # when to try a restart again (0: none pending)
        self._tries = 0

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
        model and bindings. If it does not start on them, back to the settings it had, waiting
        for that device if it has gone meanwhile (then None; it says ("ready", info) when it
        plays, as after a lost device)."""
        before = {k: self.engine.settings.get(k) for k in changes}
        try:
            info = self.engine.restart(**changes)
        except EngineError as exc:
            self.message.emit(f"the engine did not start on {changes}: {exc}; back to the previous settings")
            try:
                info = self.engine.restart(**before, wait_for_device=True)
            except EngineError as exc2:
                if self.engine.waiting:
                    self._say_waiting(exc2)
                else:
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
            elif kind == "pan":
                self.pan_changed.emit(float(ev[1]))
            elif kind == "reverb":
                self.reverb_changed.emit(dict(ev[1]))
            elif kind == "program":
                self.program.emit(int(ev[1]), int(ev[2]), str(ev[3] or ""))
            elif kind == "recording":
                self.recording.emit(str(ev[1]), str(ev[2]))
            elif kind == "recorded":
                self.recorded.emit(dict(ev[1]))
            elif kind == "ready":            # the audio device it waited for is back
                model = ev[1].get("model", {})
                self.loaded.emit(model.get("path") or "", model)
                self.restarted.emit(f"the audio device {ev[1].get('device_name', '')} is back; the engine plays again")
        why = self.engine.check()
        if why:
            self.died.emit(why)
            self._tries = 0
            self._restart()
        elif self._retry_at and time.monotonic() >= self._retry_at:
            self._restart()

    def _say_waiting(self, exc: Exception) -> None:
        self.message.emit(f"{exc}: it plays again, {self.engine.plays_when_back()}, when the device is back")

    def _restart(self) -> None:
        try:
            info = self.engine.restart()
        except EngineError as exc:
            self._tries += 1
            if self.engine.waiting:           # its process waits for the device and says when it plays
                self._retry_at = 0.0
                self._say_waiting(exc)
                return
            waiting = isinstance(exc, DeviceUnavailable)
            if not waiting and self._tries >= GIVE_UP_AFTER:
                self._retry_at = 0.0
                self.message.emit(f"the engine could not be restarted: {exc}")
                return
            if self._tries == 1 or self._tries % 15 == 0:
                what = "waiting for the audio device" if waiting else "trying again"
                self.message.emit(f"the engine could not be restarted: {exc}; {what}, every {RETRY_S:.0f} s")
            self._retry_at = time.monotonic() + RETRY_S
            return
        self._retry_at = 0.0
        self._tries = 0
        self.loaded.emit(info.get("model", {}).get("path") or "", info.get("model", {}))
        for ev in self.engine.poll_events():
            if ev[0] == "restarted":
                self.restarted.emit(str(ev[1]))
