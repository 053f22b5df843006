"""Live views of the output: an oscilloscope and a level meter with peak hold and a clip
light. They read the engine's shared memory (``scope``, ``status``) on the GUI's timer and
cost the audio nothing (no locks, no messages to the engine)."""
from __future__ import annotations

import math
import time

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen, QPolygonF
from PyQt6.QtWidgets import QWidget


class Oscilloscope(QWidget):
    def __init__(self, samples: int = 2048, parent=None):
        super().__init__(parent)
        self.samples = samples
        self.data = np.zeros(samples, np.float32)
        self.setMinimumSize(240, 120)

    def show_samples(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)
        # Trigger on a rising zero crossing in the first half so a steady note stands still.
        half = x.size // 2
        idx = np.nonzero((x[:half - 1] <= 0) & (x[1:half] > 0))[0]
        start = int(idx[-1]) if idx.size else 0
        self.data = x[start:start + half]
        self.update()

    def paintEvent(self, ev):
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QColor("#0d0f12"))
        p.setPen(QPen(QColor("#23272e"), 1))
        p.drawLine(0, h // 2, w, h // 2)
        d = self.data
        if d.size > 1:
            peak = max(0.05, float(np.abs(d).max()))
            ys = h / 2 - (d / peak) * (h / 2 - 4)
            xs = np.linspace(0, w, d.size)
            step = max(1, d.size // max(1, w))
            poly = QPolygonF([QPointF(float(a), float(b)) for a, b in zip(xs[::step], ys[::step], strict=True)])
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(QPen(QColor("#3fa9f5"), 1.5))
            p.drawPolyline(poly)
        p.end()


class LevelMeter(QWidget):
    """Vertical peak meter in dBFS (-60..+3), peak hold for 1.5 s, clip light held 3 s."""
    FLOOR = -60.0
    TOP = 3.0

    def __init__(self, parent=None):
        super().__init__(parent)
        self.level_db = self.FLOOR
        self.hold_db = self.FLOOR
        self.hold_t = 0.0
        self.clip_t = -1e9
        self.setFixedWidth(28)
        self.setMinimumHeight(120)

    def show_level(self, peak: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        db = 20 * math.log10(peak) if peak > 1e-6 else self.FLOOR
        # Falls at 30 dB/s, rises at once.
        self.level_db = max(db, self.level_db - 1.0)
        if db >= self.hold_db or now - self.hold_t > 1.5:
            self.hold_db, self.hold_t = db, now
        if peak >= 0.999:
            self.clip_t = now
        self.update()

    @property
    def clipping(self) -> bool:
        return time.monotonic() - self.clip_t < 3.0

    def _y(self, db: float) -> float:
        f = (min(self.TOP, max(self.FLOOR, db)) - self.FLOOR) / (self.TOP - self.FLOOR)
        return 8 + (self.height() - 8) * (1 - f)

    def paintEvent(self, ev):
        p = QPainter(self)
        w = self.width()
        p.fillRect(self.rect(), QColor("#0d0f12"))
        p.fillRect(QRectF(0, 0, w, 6), QColor("#e0342b") if self.clipping else QColor("#3a1a1a"))
        y = self._y(self.level_db)
        for lo, hi, col in ((self.FLOOR, -12.0, "#39b54a"), (-12.0, -3.0, "#f5d623"), (-3.0, self.TOP, "#e0342b")):
            top, bottom = self._y(hi), self._y(lo)
            top = max(top, y)
            if bottom > top:
                p.fillRect(QRectF(4, top, w - 8, bottom - top), QColor(col))
        p.setPen(QPen(QColor("#ffffff"), 2))
        yh = self._y(self.hold_db)
        p.drawLine(QPointF(4, yh), QPointF(w - 4, yh))
        p.setPen(QColor("#666"))
        f = p.font()
        f.setPointSize(6)
        p.setFont(f)
        for db in (0, -12, -24, -48):
            p.drawText(QRectF(0, self._y(db) - 6, w, 12), int(Qt.AlignmentFlag.AlignCenter), str(db))
        p.end()
