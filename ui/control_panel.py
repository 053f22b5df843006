"""The control panel, built from the loaded generator's declared controls (name, range,
default, unit), plus master volume. A slider sends ("control", name, value); the engine's
answer (the value as clamped) is shown, and so is a value a bound MIDI knob set.

MIDI learn: right-click a control, choose "MIDI learn", move a knob on the keyboard: the
engine binds that CC to the control (``learn_requested``; the binding comes back as the
engine's ("bindings", ...) and is shown next to the value). "Forget" removes it."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QGridLayout, QGroupBox, QLabel, QMenu, QSlider, QWidget

from livewave.midi_learn import MASTER, MASTER_RANGE

STEPS = 1000


class ControlSlider(QWidget):
    changed = pyqtSignal(str, float)

    def __init__(self, spec: dict, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.name = spec["name"]
        self.lo, self.hi = float(spec["min"]), float(spec["max"])
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setToolTip(spec.get("description") or self.name)
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(80)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.value = float(spec["default"])
        self.set_value(self.value)
        self.slider.valueChanged.connect(self._moved)

    def to_pos(self, v: float) -> int:
        return round((v - self.lo) / (self.hi - self.lo) * STEPS) if self.hi > self.lo else 0

    def from_pos(self, pos: int) -> float:
        return self.lo + (self.hi - self.lo) * pos / STEPS

    def set_value(self, v: float) -> None:
        """Show ``v`` (from the engine) without sending it back."""
        self.value = float(v)
        self.slider.blockSignals(True)
        self.slider.setValue(self.to_pos(self.value))
        self.slider.blockSignals(False)
        self._show()

    def _show(self) -> None:
        unit = self.spec.get("unit") or ""
        self.value_label.setText(f"{self.value:.3g} {unit}".strip())

    def _moved(self, pos: int) -> None:
        self.value = self.from_pos(pos)
        self._show()
        self.changed.emit(self.name, self.value)


class ControlPanel(QGroupBox):
    control_moved = pyqtSignal(str, float)
    volume_moved = pyqtSignal(float)            # dB
    learn_requested = pyqtSignal(str)           # "" cancels
    unbind_requested = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__("Controls", parent)
        self.grid = QGridLayout(self)
        self.sliders: dict[str, ControlSlider] = {}
        self.names: dict[str, QLabel] = {}          # every row's name label, volume's too
        self.bindings: dict[str, tuple[int, int]] = {}
        self.learning: str | None = None
        self.volume = ControlSlider({"name": MASTER, "min": MASTER_RANGE[0], "max": MASTER_RANGE[1], "default": 0.0,
                                     "unit": "dB", "description": "master volume"})
        self.volume.changed.connect(lambda _n, v: self.volume_moved.emit(v))
        self.volume.slider.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.volume.slider.customContextMenuRequested.connect(
            lambda pos: self._menu(MASTER, self.volume.slider.mapToGlobal(pos)))
        self.set_controls([])

    def set_controls(self, specs: list[dict]) -> None:
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None and w is not self.volume and w.parent() is self:
                w.setParent(None)
        self.sliders = {}
        self.names = {}
        rows = [self.volume] + [ControlSlider(s) for s in specs]
        for r, cs in enumerate(rows):
            label = QLabel(cs.name.replace("_", " "))
            label.setToolTip(cs.spec.get("description") or "")
            self.grid.addWidget(label, r, 0)
            self.grid.addWidget(cs.slider, r, 1)
            self.grid.addWidget(cs.value_label, r, 2)
            self.names[cs.name] = label
            if cs is not self.volume:
                self.sliders[cs.name] = cs
                cs.changed.connect(self.control_moved)
            for w in (label, cs.slider) if cs is not self.volume else (label,):   # NB: volume's slider: once
                w.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
                w.customContextMenuRequested.connect(lambda pos, n=cs.name, w=w: self._menu(n, w.mapToGlobal(pos)))
        self.grid.setColumnStretch(1, 1)
        self.grid.setRowStretch(len(rows), 1)
        self.learning = None
        self._show_names()

    # -- MIDI learn -----------------------------------------------------------------------------
    def learn_menu(self, name: str) -> QMenu:
        """The right-click menu of control ``name`` (built, not shown)."""
        menu = QMenu(self)
        if self.learning == name:
            menu.addAction("Cancel MIDI learn", lambda: self.learn_requested.emit(""))
        else:
            menu.addAction("MIDI learn (then move a knob)", lambda: self.learn_requested.emit(name))
        if name in self.bindings:
            ch, cc = self.bindings[name]
            menu.addAction(f"Forget MIDI CC {cc} (channel {ch + 1})", lambda: self.unbind_requested.emit(name))
        return menu

    def _menu(self, name: str, where) -> None:
        self.learn_menu(name).popup(where)

    def show_learning(self, name: str | None) -> None:
        self.learning = name or None
        self._show_names()

    def show_bindings(self, bindings: dict) -> None:
        self.bindings = {k: (int(v[0]), int(v[1])) for k, v in bindings.items()}
        if self.learning in self.bindings:
            self.learning = None
        self._show_names()

    def _show_names(self) -> None:
        for name, label in self.names.items():
            text = name.replace("_", " ")
            if name == self.learning:
                label.setText(f"{text}  · move a knob…")
                label.setStyleSheet("color: #ffb74d; font-weight: 600;")
                continue
            label.setStyleSheet("")
            if name in self.bindings:
                ch, cc = self.bindings[name]
                text += f"  · CC{cc}" + (f"/{ch + 1}" if ch else "")
            label.setText(text)

    def show_value(self, name: str, value: float) -> None:
        if name in self.sliders:
            self.sliders[name].set_value(value)

    def values(self) -> dict[str, float]:
        return {n: s.value for n, s in self.sliders.items()}
