"""Audio output, sample rate, block size and MIDI input pickers; concert pitch and transpose.

The lists come from the engine (("devices",) and ("midi_ports",) answers): the engine process
owns PortAudio and the MIDI ports. MIDI inputs are polled about once a second, so a keyboard
plugged in while the app runs appears in the list; "All inputs" follows hot-plug by itself.
A pick emits ``audio_changed`` (settings to restart the engine with) or ``midi_changed``
(a selection the engine applies live); the window remembers both. The tuning (A4 in Hz) and
the transpose (semitones) are applied live (``tuning_changed``, ``transpose_changed``): held
notes follow a new tuning, a new transpose takes effect from the next note. So does the
velocity curve (``velocity_curve_changed``): the exponent a key's velocity is raised to, and
the pan (``pan_changed``): where the instrument sits between the speakers, on MIDI CC 10's grid
(a keyboard's pan knob moves it too, and the engine's answer comes back through ``set_pitch``).
"""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QWidget,
)

from livewave.config import PAN_STEPS, TRANSPOSE_MAX, TUNING_MAX, TUNING_MIN, VELOCITY_CURVE_RANGE

RATES = (44100, 48000, 88200, 96000)
BLOCKS = (32, 64, 128, 256, 512, 1024)
ALL_INPUTS = "all"
NO_INPUT = "none"


class DevicePanel(QGroupBox):
    audio_changed = pyqtSignal(dict)       # {"audio": name or None, "rate": int, "block": int}
    midi_changed = pyqtSignal(str)         # all, none, or a port name
    tuning_changed = pyqtSignal(float)     # A4 in Hz
    transpose_changed = pyqtSignal(int)    # semitones
    velocity_curve_changed = pyqtSignal(float)   # the exponent (1: as played)
    pan_changed = pyqtSignal(float)        # -1 (left) .. 1 (right)

    def __init__(self, parent=None):
        super().__init__("Audio and MIDI", parent)
        self.audio = QComboBox()
        self.rate = QComboBox()
        self.block = QComboBox()
        self.midi = QComboBox()
        self.audio.setToolTip("audio output device (the engine restarts on it)")
        self.midi.setToolTip("MIDI input: all inputs (new keyboards join by themselves), none, or one port")
        for r in RATES:
            self.rate.addItem(f"{r} Hz", r)
        for b in BLOCKS:
            self.block.addItem(f"{b} samples", b)
        self.tuning = QDoubleSpinBox()
        self.tuning.setRange(TUNING_MIN, TUNING_MAX)
        self.tuning.setDecimals(1)
        self.tuning.setSingleStep(0.5)
        self.tuning.setSuffix(" Hz")
        self.tuning.setValue(440.0)
        self.tuning.setKeyboardTracking(False)         # typed digits apply on Enter, not one by one
        self.tuning.setToolTip("concert pitch: the frequency of A4 (440 standard, 442 many orchestras, "
                               "415 baroque); held notes follow")
        self.transpose = QSpinBox()
        self.transpose.setRange(-TRANSPOSE_MAX, TRANSPOSE_MAX)
        self.transpose.setSuffix(" st")
        self.transpose.setKeyboardTracking(False)
        self.transpose.setToolTip("semitones added to every key, from the next note on")
        self.velocity = QDoubleSpinBox()
        self.velocity.setRange(*VELOCITY_CURVE_RANGE)
        self.velocity.setDecimals(2)
        self.velocity.setSingleStep(0.1)
        self.velocity.setValue(1.0)
        self.velocity.setKeyboardTracking(False)
        self.velocity.setToolTip("velocity curve: a key's velocity becomes (v/127)^x. Under 1 a light touch plays "
                                 "louder (a stiff keyboard), over 1 it takes a harder one; 1 plays as it comes")
        self.pan = QSlider(Qt.Orientation.Horizontal)
        self.pan.setRange(-PAN_STEPS, PAN_STEPS)
        self.pan.setToolTip("where the instrument sits between the speakers (MIDI CC 10 moves it too); "
                            "the reverb stays around the centre. Double-click: the centre")
        self.pan_label = QLabel()
        self.pan_label.setMinimumWidth(30)
        pan_row = QWidget()                  # the slider and its reading, in one cell
        pan_layout = QHBoxLayout(pan_row)
        pan_layout.setContentsMargins(0, 0, 0, 0)
        pan_layout.addWidget(self.pan, 1)
        pan_layout.addWidget(self.pan_label)
        grid = QGridLayout(self)
        for row, (text, box) in enumerate((("Output", self.audio), ("Rate", self.rate), ("Block", self.block),
                                           ("MIDI in", self.midi), ("Tune A4", self.tuning),
                                           ("Transpose", self.transpose), ("Velocity", self.velocity),
                                           ("Pan", pan_row))):
            grid.addWidget(QLabel(text), row, 0)
            grid.addWidget(box, row, 1)
        grid.setColumnStretch(1, 1)
        self.set_midi([], ALL_INPUTS, [])
        for box in (self.audio, self.rate, self.block):
            box.activated.connect(self._audio_picked)
        self.midi.activated.connect(lambda _i: self.midi_changed.emit(self.midi.currentData()))
        self.tuning.valueChanged.connect(self.tuning_changed.emit)
        self.transpose.valueChanged.connect(self.transpose_changed.emit)
        self.velocity.valueChanged.connect(self.velocity_curve_changed.emit)
        self._show_pan(0)
        self.pan.valueChanged.connect(self._pan_moved)
        self.pan.mouseDoubleClickEvent = lambda _e: self.pan.setValue(0)

    # -- from the engine -------------------------------------------------------------------------
    def set_devices(self, devices: list[dict], current: str) -> None:
        """Output devices (``list_output_devices`` dicts) and the name of the one in use."""
        self._refill(self.audio, [(f"{d['name']} ({d['hostapi']})", d["name"]) for d in devices], current)

    def set_format(self, rate: int, block: int) -> None:
        for box, value in ((self.rate, rate), (self.block, block)):
            if box.findData(value) < 0:
                box.addItem(str(value), value)
            box.setCurrentIndex(box.findData(value))

    def set_midi(self, available: list[str], selection: str, connected: list[str]) -> None:
        if self.midi.view().isVisible():
            return                  # NB: never refill a list the performer has open
        items = [("All inputs", ALL_INPUTS), ("None", NO_INPUT)]
        items += [(f"{p}{'  (connected)' if p in connected or any(c in p for c in connected) else ''}", p)
                  for p in available]
        if selection not in (ALL_INPUTS, NO_INPUT) and selection not in available:
            items.append((f"{selection}  (not plugged in)", selection))
        self._refill(self.midi, items, selection)

    @staticmethod
    def _refill(box: QComboBox, items: list[tuple[str, object]], current) -> None:
        if [(box.itemText(i), box.itemData(i)) for i in range(box.count())] == items \
                and box.currentData() == current:
            return
        box.blockSignals(True)
        box.clear()
        for text, data in items:
            box.addItem(text, data)
        i = box.findData(current)
        if i < 0 and current:
            box.addItem(str(current), current)
            i = box.count() - 1
        box.setCurrentIndex(max(i, 0))
        box.blockSignals(False)

    def set_pitch(self, tuning: float | None = None, transpose: int | None = None,
                  velocity_curve: float | None = None, pan: float | None = None) -> None:
        """Show what the engine plays at (its answers), without sending it back."""
        step = None if pan is None else round(pan * PAN_STEPS)
        for box, value in ((self.tuning, tuning), (self.transpose, transpose), (self.velocity, velocity_curve),
                           (self.pan, step)):
            if value is not None and box.value() != value:
                box.blockSignals(True)
                box.setValue(value)
                box.blockSignals(False)
        self._show_pan(self.pan.value())

    def _show_pan(self, step: int) -> None:
        pct = round(100 * abs(step) / PAN_STEPS)
        self.pan_label.setText("C" if step == 0 else f"{'L' if step < 0 else 'R'}{pct}")

    def pan_position(self) -> float:
        """The pan shown, -1 (left) .. 1 (right)."""
        return self.pan.value() / PAN_STEPS

    def _pan_moved(self, step: int) -> None:
        self._show_pan(step)
        self.pan_changed.emit(step / PAN_STEPS)

    # -- from the performer ------------------------------------------------------------------------
    def choice(self) -> dict:
        return {"audio": self.audio.currentData(), "rate": int(self.rate.currentData()),
                "block": int(self.block.currentData())}

    def _audio_picked(self, _i: int) -> None:
        self.audio_changed.emit(self.choice())
