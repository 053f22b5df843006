"""The main window: model browser, audio and MIDI pickers, controls with MIDI learn, scope,
spectrogram and meter, on-screen keyboard, status.

A thin client: everything it does goes through ``EngineClient`` (commands out, events in)
and the engine's shared memory (notes, scope, status), read on a ~30 fps view timer.
"""
from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import QEvent, QObject, QSettings, QStandardPaths, Qt, QTimer
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from livewave.checkpoint import BUILTIN

from .control_panel import ControlPanel
from .device_panel import DevicePanel
from .elided_label import ElidedLabel
from .engine_client import EngineClient
from .model_browser import SUFFIXES, ModelBrowser
from .piano_keyboard import PianoKeyboard
from .presets import PresetError, load_preset, make_preset, save_preset
from .reverb_panel import ReverbPanel
from .scope_view import LevelMeter, Oscilloscope
from .spectrogram_view import Spectrogram

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODELS = ROOT / "models"
USER_MODELS = Path.home() / ".local" / "share" / "livewave" / "models"
SESSION = Path.home() / ".config" / "livewave" / "last-session.json"


def takes_folder() -> Path:
    """Where the app's takes go: the user's music folder's ``livewave`` (``~/Music/livewave``)."""
    music = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MusicLocation)
    return Path(music or Path.home() / "Music") / "livewave"


def dropped_checkpoint(mime) -> str | None:
    """The first local checkpoint file in a drag's data, else None."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and Path(url.toLocalFile()).suffix in SUFFIXES:
            return url.toLocalFile()
    return None


class MainWindow(QMainWindow):
    def __init__(self, client: EngineClient, model_folders=None, settings: QSettings | None = None,
                 session: Path | None = None, restore_session: bool = True):
        super().__init__()
        self.client = client
        self.settings = settings
        self.session = session            # the last session's preset: restored at start, saved at close
        self.pending_preset: dict | None = None
        self.setWindowTitle("livewave")
        self.setAcceptDrops(True)
        self.error_box: QMessageBox | None = None
        self.pending: str | None = None
        self.model_info: dict = {}

        self.browser = ModelBrowser(model_folders if model_folders is not None else [SHIPPED_MODELS, USER_MODELS])
        self.controls = ControlPanel()
        self.scope = Oscilloscope()
        self.devices = DevicePanel()
        self.reverb = ReverbPanel()
        info = getattr(client.engine, "info", {}) or {}
        self.spectrogram = Spectrogram(rate=int(info.get("rate") or 48000))
        self.devices.set_format(int(info.get("rate") or 48000), int(info.get("block") or 64))
        self.meter = LevelMeter()
        self.keyboard = PianoKeyboard()
        self.model_label = ElidedLabel()        # a card's name can be any length: it never widens the window
        self.model_label.setObjectName("modelLabel")
        self.panic_button = QPushButton("PANIC")
        self.panic_button.setObjectName("panic")
        self.panic_button.setToolTip("All notes off and reset the instrument (Esc)")
        self.record_button = QPushButton("REC")
        self.record_button.setObjectName("record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record a take: what plays to a WAV and the MIDI to a .mid beside it, "
                                      "in ~/Music/livewave (Ctrl+R)")
        self.take: dict | None = None      # the take being recorded: {"wav", "mid", "since"}
        self.takes_dir: Path | None = None  # None: takes_folder()

        top = QHBoxLayout()
        top.addWidget(self.model_label, 1)
        top.addWidget(self.record_button)
        top.addWidget(self.panic_button)
        views = QHBoxLayout()
        views.addWidget(self.scope, 1)
        views.addWidget(self.spectrogram, 1)
        views.addWidget(self.meter)
        centre = QVBoxLayout()
        centre.addLayout(top)
        centre.addWidget(self.controls, 1)
        centre.addWidget(self.reverb)
        centre.addLayout(views, 1)
        mid = QWidget()
        mid.setLayout(centre)
        left = QWidget()
        side = QVBoxLayout(left)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.browser, 1)
        side.addWidget(self.devices)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(mid)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 700])
        outer = QVBoxLayout()
        outer.addWidget(split, 1)
        outer.addWidget(self.keyboard)
        root = QWidget()
        root.setLayout(outer)
        self.setCentralWidget(root)

        self.status_labels = {k: QLabel() for k in ("take", "device", "load", "latency", "xruns", "voices")}
        for lab in self.status_labels.values():
            self.statusBar().addPermanentWidget(lab)
        self.status_labels["take"].setStyleSheet("color: #ff5252; font-weight: 700; padding: 0 8px;")
        self._device_alert = ""       # why the device label says nothing plays ("": it plays)

        self._actions()
        client.loaded.connect(self.on_loaded)
        client.load_failed.connect(self.on_load_failed)
        client.control_changed.connect(self.controls.show_value)
        client.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        client.died.connect(lambda m: self.statusBar().showMessage(f"engine stopped: {m.splitlines()[0]}", 8000))
        client.restarted.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.browser.load_requested.connect(self.load)
        self.browser.programs_changed.connect(lambda paths: client.send("programs", paths))
        client.send("programs", self.browser.programs())
        client.program.connect(self.on_program)
        self.controls.control_moved.connect(lambda n, v: client.send("control", n, v))
        self.controls.volume_moved.connect(lambda db: client.send("gain_db", db))
        self.controls.learn_requested.connect(lambda n: client.send("learn", n))
        self.controls.unbind_requested.connect(lambda n: client.send("unbind", n))
        client.bindings.connect(self.controls.show_bindings)
        client.gain_changed.connect(self.controls.volume.set_value)
        client.learning.connect(self.controls.show_learning)
        client.learned.connect(lambda n, ch, cc: self.statusBar().showMessage(
            f"MIDI learn: CC {cc} on channel {ch + 1} now drives {n}", 5000))
        client.devices.connect(self.devices.set_devices)
        client.midi_ports.connect(self.devices.set_midi)
        client.reconfigured.connect(self.on_reconfigured)
        client.restarted.connect(lambda _m: self.on_reconfigured(getattr(client.engine, "info", {}) or {}))
        self.devices.audio_changed.connect(self.change_audio)
        self.devices.midi_changed.connect(self.change_midi)
        self.devices.tuning_changed.connect(lambda hz: client.send("tuning", float(hz)))
        self.devices.transpose_changed.connect(lambda st: client.send("transpose", int(st)))
        client.tuning_changed.connect(lambda hz: self.on_pitch("tuning", hz))
        client.transpose_changed.connect(lambda st: self.on_pitch("transpose", st))
        self.devices.velocity_curve_changed.connect(lambda x: client.send("velocity_curve", float(x)))
        client.velocity_curve_changed.connect(lambda x: self.on_pitch("velocity_curve", x))
        self.devices.pan_changed.connect(lambda x: client.send("pan", float(x)))
        client.pan_changed.connect(lambda x: self.on_pitch("pan", x))
        es = client.engine.settings
        self.devices.set_pitch(float(es.get("tuning", 440.0)), int(es.get("transpose", 0)),
                               float(es.get("velocity_curve", 1.0)), float(es.get("pan", 0.0)))
        self.reverb.changed.connect(lambda d: client.send("reverb", d))
        client.reverb_changed.connect(self.on_reverb)
        self.reverb.set_values(es.get("reverb") or {})
        self.keyboard.note_on.connect(lambda n, v: client.send("midi", 0x90, n, v))
        self.keyboard.note_off.connect(lambda n: client.send("midi", 0x80, n, 0))
        self.panic_button.clicked.connect(self.panic)
        self.record_button.clicked.connect(lambda _checked: self.toggle_record())
        client.recording.connect(self.on_recording)
        client.recorded.connect(self.on_recorded)
        client.died.connect(self.on_engine_died_recording)

        self.view_timer = QTimer(self)
        self.view_timer.setInterval(33)
        self.view_timer.timeout.connect(self.refresh_views)
        self.view_timer.start()
        self.ports_timer = QTimer(self)           # MIDI hot-plug: the list follows the ports
        self.ports_timer.setInterval(1000)
        self.ports_timer.timeout.connect(lambda: client.send("midi_ports"))
        self.ports_timer.start()
        client.send("devices")
        client.send("midi_ports")
        self.controls.show_bindings(client.engine.settings.get("bindings") or {})
        self.on_loaded(client.engine.model_info.get("path") or "", client.engine.model_info)
        if restore_session and session is not None and Path(session).exists():
            try:
                self.apply_preset(load_preset(session))
            except PresetError as exc:
                self.statusBar().showMessage(f"the last session was not restored: {exc}", 8000)

    def _actions(self) -> None:
        def act(text, shortcut, slot):
            a = QAction(text, self)
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            a.triggered.connect(slot)
            self.addAction(a)
            return a
        self.open_action = act("Open model...", "Ctrl+O", self.open_dialog)
        self.panic_action = act("Panic", "Esc", self.panic)
        self.record_action = act("Record take", "Ctrl+R", self.toggle_record)
        self.save_preset_action = act("Save preset...", "Ctrl+S", self.save_preset_dialog)
        self.load_preset_action = act("Load preset...", "Ctrl+L", self.load_preset_dialog)
        quit_action = act("Quit", "Ctrl+Q", self.close)
        menu = self.menuBar().addMenu("&File")
        for a in (self.open_action, self.load_preset_action, self.save_preset_action, self.record_action,
                  self.panic_action, quit_action):
            menu.addAction(a)

    # -- models ---------------------------------------------------------------------------------
    def load(self, path: str) -> None:
        if self.pending_preset is not None and (self.pending_preset.get("model") or "") != path:
            self.pending_preset = None      # another model asked for: the preset's model is not loaded now
        self.pending = path
        self.statusBar().showMessage(f"loading {Path(path).name}... (the current model plays on)")
        if not self.client.load(path):
            self.statusBar().showMessage("the engine is not running; it restarts shortly", 5000)

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a livewave model", str(USER_MODELS),
                                              "livewave checkpoints (*.safetensors)")
        if path:
            self.browser.add_path(Path(path))
            self.load(path)

    def on_loaded(self, path: str, info: dict) -> None:
        self.pending = None
        self.model_info = info
        name = info.get("card", {}).get("instrument") or info.get("name") or "built-in instrument"
        self.model_label.setText(f"{name}  ·  {info.get('family', '')}  ·  {info.get('device', 'cpu')}")
        self.controls.set_controls(info.get("controls", []))
        if path:
            it = self.browser.item_for(path) or self.browser.add_path(Path(path))
            self.browser.list.blockSignals(True)
            self.browser.list.setCurrentItem(it)
            self.browser.list.blockSignals(False)
            self.browser.show_card(it)
            if self.settings is not None:
                self.settings.setValue("model", path)
        self.statusBar().showMessage(f"playing {name}", 4000)
        pp = self.pending_preset
        if pp is not None and (pp.get("model") or "") in (path, ""):
            self.pending_preset = None
            self._apply_values(pp)

    def on_program(self, channel: int, program: int, path: str) -> None:
        """A MIDI program change: the engine loads that model (or says there is none)."""
        if path:
            self.pending = path
            name = "the built-in instrument" if path == BUILTIN else Path(path).stem
            self.statusBar().showMessage(f"program {program + 1} (channel {channel + 1}): loading {name}...")

    # -- audio and MIDI devices ------------------------------------------------------------------
    def change_audio(self, changes: dict) -> None:
        """Restart the engine on another output, rate or block (same model, same bindings)."""
        self.statusBar().showMessage("restarting the audio engine...")
        self.keyboard.release_all()
        info = self.client.reconfigure(**changes)
        if info is not None and self.settings is not None:
            for k in ("audio", "rate", "block"):
                self.settings.setValue(k, self.client.engine.settings.get(k))
        self.on_reconfigured(getattr(self.client.engine, "info", {}) or {})

    def on_reconfigured(self, info: dict) -> None:
        if info.get("rate"):
            self.devices.set_format(int(info["rate"]), int(info["block"]))
            self.spectrogram.set_rate(int(info["rate"]))
        self.client.send("devices")
        self.client.send("midi_ports")
        self.client.send("programs", self.browser.programs())     # a new engine process has no list
        self.controls.show_bindings(self.client.engine.settings.get("bindings") or {})

    def on_pitch(self, key: str, value) -> None:
        """The engine's answer: shown, and remembered across restarts of the app."""
        self.devices.set_pitch(**{key: value})
        if self.settings is not None:
            self.settings.setValue(key, value)
        what = {"tuning": lambda: f"A4 = {value:g} Hz", "transpose": lambda: f"transpose {value:+d} semitones",
                "velocity_curve": lambda: f"velocity curve {value:g}",
                "pan": lambda: f"pan {self.devices.pan_label.text()}"}[key]()
        self.statusBar().showMessage(what, 3000)

    def on_reverb(self, settings: dict) -> None:
        """The engine's answer, or a CC 91 from the keyboard: shown, and remembered across restarts."""
        self.reverb.set_values(settings)
        if self.settings is not None:
            for k, v in settings.items():
                self.settings.setValue(f"reverb_{k}", float(v))

    def change_midi(self, selection: str) -> None:
        self.client.send("midi_ports", selection)
        if self.settings is not None:
            self.settings.setValue("midi", selection)
        self.statusBar().showMessage(f"MIDI input: {selection}", 4000)

    # -- presets --------------------------------------------------------------------------------
    def current_preset(self) -> dict:
        return make_preset(self.model_info.get("path"), self.controls.values(), self.controls.volume.value,
                           self.controls.bindings, self.reverb.values(), self.devices.pan_position())

    def apply_preset(self, preset: dict) -> None:
        """Load the preset's model (if another one plays) and then set its values."""
        model = preset.get("model")
        if model and model != self.model_info.get("path"):
            self.pending_preset = preset
            self.load(model)
        else:
            self._apply_values(preset)

    def _apply_values(self, preset: dict) -> None:
        for name, value in preset["controls"].items():
            if name in self.controls.sliders:
                self.client.send("control", name, value)
                self.controls.show_value(name, value)
        self.controls.volume.set_value(preset["gain_db"])
        self.client.send("gain_db", preset["gain_db"])
        wanted = preset.get("midi_bindings", {})
        for name in set(self.controls.bindings) - set(wanted):
            self.client.send("unbind", name)
        for name, (ch, cc) in wanted.items():
            if self.controls.bindings.get(name) != (ch, cc):
                self.client.send("bind", name, ch, cc)
        if preset.get("reverb") is not None:       # a preset saved before the reverb leaves it as it is
            self.client.send("reverb", preset["reverb"])
        if preset.get("pan") is not None:          # and one saved before the pan, the pan
            self.client.send("pan", preset["pan"])

    def save_preset_to(self, path) -> None:
        save_preset(path, self.current_preset())
        self.statusBar().showMessage(f"preset saved: {path}", 4000)

    def load_preset_from(self, path) -> None:
        try:
            self.apply_preset(load_preset(path))
        except PresetError as exc:
            self.show_error("The preset did not load", f"{Path(path).name} did not load; nothing changed.", str(exc))

    def save_preset_dialog(self) -> None:
        self._preset_dialog(save=True)

    def load_preset_dialog(self) -> None:
        self._preset_dialog(save=False)

    def _preset_dialog(self, save: bool) -> None:
        ask = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        path, _ = ask(self, "Save preset" if save else "Load preset", str(SESSION.parent / "presets"),
                      "livewave presets (*.json)")
        if not path:
            return
        if not save:
            self.load_preset_from(path)
            return
        try:
            self.save_preset_to(path)
        except OSError as exc:
            self.show_error("The preset was not saved", f"{path} could not be written.", str(exc))

    def on_load_failed(self, path: str, message: str) -> None:
        self.pending = None
        if self.pending_preset is not None and self.pending_preset.get("model") == path:
            self.pending_preset = None
        self.show_error("The model did not load", f"{Path(path).name} did not load; the current model plays on.",
                        message)

    def show_error(self, title: str, text: str, detail: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, parent=self)
        box.setInformativeText(detail)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.error_box = box
        box.open()                    # NB: not exec(): the GUI (and its timers) keep running

    def dragEnterEvent(self, ev):
        if dropped_checkpoint(ev.mimeData()):
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        path = dropped_checkpoint(ev.mimeData())
        if path:
            ev.acceptProposedAction()
            self.browser.add_path(Path(path))
            self.load(path)

    # -- takes ----------------------------------------------------------------------------------
    def toggle_record(self) -> None:
        """Start a take in the takes folder (named for the time: never over another), or stop it."""
        if self.take is not None:
            self.client.send("record_stop")
            self.record_button.setChecked(True)          # until the engine says the take is saved
            return
        folder = self.takes_dir or takes_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.record_button.setChecked(False)
            self.show_error("Recording did not start", f"{folder} could not be made.", str(exc))
            return
        self.record_button.setChecked(False)              # until the engine says it records
        if not self.client.send("record", str(folder / time.strftime("take-%Y%m%d-%H%M%S.wav"))):
            self.statusBar().showMessage("the engine is not running; it restarts shortly", 5000)

    def on_recording(self, wav: str, mid: str) -> None:
        self.take = {"wav": wav, "mid": mid, "since": time.monotonic()}
        self.record_button.setChecked(True)
        self.record_action.setText("Stop recording")
        self.statusBar().showMessage(f"recording to {wav}", 4000)

    def _take_ended(self) -> None:
        self.take = None
        self.record_button.setChecked(False)
        self.record_action.setText("Record take")
        self.status_labels["take"].setText("")

    def on_recorded(self, summary: dict) -> None:
        self._take_ended()
        text = f"take saved: {summary.get('audio')} ({summary.get('seconds', 0.0):.1f} s)"
        if summary.get("midi"):
            text += f" and {Path(summary['midi']).name} ({summary.get('events', 0)} MIDI events)"
        if summary.get("dropped_samples") or summary.get("dropped_events"):
            text += (f"; the disk fell behind: {summary['dropped_samples']} samples and "
                     f"{summary['dropped_events']} events were not recorded")
        if summary.get("error"):
            self.show_error("The take was not saved whole", text, str(summary["error"]))
        self.statusBar().showMessage(text, 10000)

    def on_engine_died_recording(self, _message: str) -> None:
        if self.take is None:
            return
        take = self.take
        self._take_ended()
        self.statusBar().showMessage(f"the engine stopped during a take: what it recorded is in {take['wav']} "
                                     f"and {Path(take['mid']).name}", 10000)

    # -- playing --------------------------------------------------------------------------------
    def panic(self) -> None:
        self.keyboard.release_all()
        self.client.send("panic")
        self.statusBar().showMessage("panic: all notes off", 3000)

    def keyPressEvent(self, ev):
        if not self.keyboard.handle_key(ev.text(), True, ev.isAutoRepeat()):
            super().keyPressEvent(ev)

    def keyReleaseEvent(self, ev):
        if not self.keyboard.handle_key(ev.text(), False, ev.isAutoRepeat()):
            super().keyReleaseEvent(ev)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:
        """Letters play notes whichever child has the focus (sliders take only arrows)."""
        if ev.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and self.isActiveWindow():
            pressed = ev.type() == QEvent.Type.KeyPress
            if not ev.modifiers() & ~Qt.KeyboardModifier.ShiftModifier and \
                    self.keyboard.handle_key(ev.text(), pressed, ev.isAutoRepeat()):
                return True
        return super().eventFilter(obj, ev)

    def refresh_views(self) -> None:
        eng = self.client.engine
        st = eng.status()
        self.keyboard.show_notes(eng.notes())
        samples = eng.scope(2048)
        self.scope.show_samples(samples)
        self.spectrogram.show_samples(samples)
        self.meter.show_level(float(st.get("peak", 0.0)))
        lab = self.status_labels
        info = getattr(eng, "info", {}) or {}
        # nothing plays: say so where the device is shown, until it plays again (NB: a restart runs
        # on this thread, so an engine seen down here is down: its restart failed, or waits to retry)
        waiting = getattr(eng, "waiting", "")
        alert = waiting or ("" if eng.alive() else "the engine stopped; the status messages said why")
        if waiting:
            lab["device"].setText(f"\u26a0 no audio: waiting for {info.get('device_name') or 'the device'}")
        elif alert:
            lab["device"].setText("\u26a0 no audio: the engine stopped")
        else:
            lab["device"].setText(f"{info.get('device_name', '?')} · model on {self.model_info.get('device', 'cpu')}")
        if alert != self._device_alert:
            self._device_alert = alert
            lab["device"].setStyleSheet("color: #ff5252; font-weight: 700;" if alert else "")
            lab["device"].setToolTip(alert)
        lab["load"].setText(f"DSP {st.get('load', 0.0):.0f}%")
        lab["latency"].setText(f"latency {st.get('latency_ms', 0.0):.1f} ms")
        lab["xruns"].setText(f"xruns {st.get('xruns', 0)}")
        lab["voices"].setText(f"voices {st.get('voices', 0)}/{st.get('polyphony', 0)}")
        if self.take is not None:
            secs = int(time.monotonic() - self.take["since"])
            lab["take"].setText(f"\u25cf REC {secs // 60}:{secs % 60:02d}")

    def closeEvent(self, ev):
        if self.session is not None:
            try:
                save_preset(self.session, self.current_preset())
            except OSError:
                pass                  # a read-only home: the session is simply not remembered
        self.view_timer.stop()
        self.ports_timer.stop()
        self.keyboard.release_all()
        self.client.stop()
        super().closeEvent(ev)
