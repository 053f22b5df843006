"""The reverb's controls (``livewave.reverb``): send, decay, damping and pre-delay.

Each change emits ``changed`` with that one setting ({name: value}); the window sends it to the
engine (("reverb", {...})), and the engine's answer, or a MIDI CC 91 on the keyboard's reverb
knob, comes back through ``set_values``, which shows it without sending it back. The send slider
has CC 91's 128 steps, so what the panel shows is what a take's MIDI replays.
"""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QDoubleSpinBox, QGroupBox, QHBoxLayout, QLabel, QSlider, QSpinBox

from livewave.config import DAMPING_RANGE, DECAY_RANGE, PREDELAY_MAX_MS, REVERB_DEFAULTS, SEND_STEPS


class ReverbPanel(QGroupBox):
    changed = pyqtSignal(dict)      # {setting: value}, one setting (engine_commands.REVERB_KEYS)

    def __init__(self, parent=None):
        super().__init__("Reverb", parent)
        self.send = QSlider(Qt.Orientation.Horizontal)
        self.send.setRange(0, SEND_STEPS)
        self.send.setToolTip("reverb send (MIDI CC 91 moves it too); 0 turns the reverb off, the tail rings out")
        self.send_label = QLabel()
        self.decay = QDoubleSpinBox()
        self.decay.setRange(*DECAY_RANGE)
        self.decay.setDecimals(1)
        self.decay.setSingleStep(0.1)
        self.decay.setSuffix(" s")
        self.decay.setToolTip("time for the tail to fall 60 dB at low frequencies")
        self.damping = QDoubleSpinBox()
        self.damping.setRange(*DAMPING_RANGE)
        self.damping.setDecimals(2)
        self.damping.setSingleStep(0.05)
        self.damping.setToolTip("the treble's decay time over the bass's: lower is a darker, softer room")
        self.predelay = QSpinBox()
        self.predelay.setRange(0, int(PREDELAY_MAX_MS))
        self.predelay.setSuffix(" ms")
        self.predelay.setToolTip("gap between a note and its room")
        for box in (self.decay, self.damping, self.predelay):
            box.setKeyboardTracking(False)
        self.send_label.setMinimumWidth(34)
        row = QHBoxLayout(self)                  # one row, under the model's controls
        for text, box in (("Send", self.send), ("", self.send_label), ("Decay", self.decay),
                          ("Damping", self.damping), ("Pre-delay", self.predelay)):
            if text:
                row.addWidget(QLabel(text))
            row.addWidget(box, 1 if box is self.send else 0)
        self.set_values(REVERB_DEFAULTS)
        self.send.valueChanged.connect(self._send_moved)
        self.decay.valueChanged.connect(lambda v: self.changed.emit({"decay_s": float(v)}))
        self.damping.valueChanged.connect(lambda v: self.changed.emit({"damping": float(v)}))
        self.predelay.valueChanged.connect(lambda v: self.changed.emit({"predelay_ms": float(v)}))

    def _send_moved(self, step: int) -> None:
        self._show_send(step)
        self.changed.emit({"send": step / SEND_STEPS})

    def _show_send(self, step: int) -> None:
        self.send_label.setText("off" if step == 0 else f"{round(100 * step / SEND_STEPS)}%")

    def values(self) -> dict:
        return {"send": self.send.value() / SEND_STEPS, "decay_s": self.decay.value(), "damping": self.damping.value(),
                "predelay_ms": float(self.predelay.value())}

    def set_values(self, settings: dict) -> None:
        """Show the engine's settings (any of them), without sending them back."""
        boxes = {"send": (self.send, lambda v: round(v * SEND_STEPS)), "decay_s": (self.decay, float),
                 "damping": (self.damping, float), "predelay_ms": (self.predelay, round)}
        for key, value in settings.items():
            if key not in boxes:
                continue
            box, to = boxes[key]
            v = to(value)
            if box.value() != v:
                box.blockSignals(True)
                box.setValue(v)
                box.blockSignals(False)
        self._show_send(self.send.value())
