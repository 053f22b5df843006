"""The on-screen keyboard: play with the mouse or the computer keyboard; shows every note the
engine is playing, from any source (the engine's shared note map, not what was clicked).

Computer keys, two rows as on most soft synths: Z S X D C V G B H N J M is the lower octave,
Q 2 W 3 E R 5 T 6 Y 7 U the upper one; [ and ] shift by an octave.
"""
from __future__ import annotations

from PyQt6.QtCore import QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QPainter
from PyQt6.QtWidgets import QSizePolicy, QWidget

LOWER_ROW = "ZSXDCVGBHNJM"
UPPER_ROW = "Q2W3ER5T6Y7U"
BLACK = {1, 3, 6, 8, 10}


def key_note(key_text: str, octave_base: int) -> int | None:
    """Computer key -> MIDI note (None for other keys)."""
    k = key_text.upper()
    if len(k) != 1:
        return None
    if k in LOWER_ROW:
        n = octave_base + LOWER_ROW.index(k)
    elif k in UPPER_ROW:
        n = octave_base + 12 + UPPER_ROW.index(k)
    else:
        return None
    return n if 0 <= n <= 127 else None


class PianoKeyboard(QWidget):
    note_on = pyqtSignal(int, int)      # note, velocity
    note_off = pyqtSignal(int)

    def __init__(self, low: int = 36, high: int = 96, parent=None):
        super().__init__(parent)
        self.low, self.high = low, high
        self.whites = [n for n in range(low, high + 1) if n % 12 not in BLACK]
        self.octave_base = 48
        self.velocity = 100
        self.sounding: dict[int, bool] = {}     # note -> still held (False: ringing out), from the engine
        self.held: set[int] = set()             # pressed here (mouse or keys)
        self._mouse_note: int | None = None
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # -- geometry -------------------------------------------------------------------------------
    def key_rect(self, note: int) -> QRectF:
        whites = self.whites
        w = self.width() / max(1, len(whites))
        h = self.height()
        if note % 12 not in BLACK:
            i = whites.index(note)
            return QRectF(i * w, 0, w, h)
        i = whites.index(note - 1)
        return QRectF((i + 0.68) * w, 0, 0.64 * w, 0.6 * h)

    def note_at(self, x: float, y: float) -> int | None:
        for n in range(self.low, self.high + 1):         # black keys lie on top
            if n % 12 in BLACK and self.key_rect(n).contains(x, y):
                return n
        for n in self.whites:
            if self.key_rect(n).contains(x, y):
                return n
        return None

    # -- playing --------------------------------------------------------------------------------
    def press(self, note: int, velocity: int | None = None) -> None:
        if note in self.held:
            return
        self.held.add(note)
        self.note_on.emit(note, int(velocity or self.velocity))
        self.update()

    def release(self, note: int) -> None:
        if note not in self.held:
            return
        self.held.discard(note)
        self.note_off.emit(note)
        self.update()

    def release_all(self) -> None:
        for n in list(self.held):
            self.release(n)

    def show_notes(self, notes) -> None:
        """``notes``: the engine's (channel, key, velocity, held) list."""
        sounding: dict[int, bool] = {}
        for _, k, _, held in notes:
            sounding[k] = sounding.get(k, False) or held
        if sounding != self.sounding:
            self.sounding = sounding
            self.update()

    def mousePressEvent(self, ev):
        p = ev.position()
        n = self.note_at(p.x(), p.y())
        if n is not None:
            # Lower on the key is louder, as on a velocity-sensitive pad.
            vel = int(40 + 87 * min(1.0, max(0.0, p.y() / max(1, self.height()))))
            self._mouse_note = n
            self.press(n, vel)

    def mouseMoveEvent(self, ev):
        if self._mouse_note is None:
            return
        p = ev.position()
        n = self.note_at(p.x(), p.y())
        if n is not None and n != self._mouse_note:     # glissando
            self.release(self._mouse_note)
            self._mouse_note = n
            self.press(n)

    def mouseReleaseEvent(self, ev):
        if self._mouse_note is not None:
            self.release(self._mouse_note)
            self._mouse_note = None

    def handle_key(self, key_text: str, pressed: bool, auto_repeat: bool = False) -> bool:
        """A computer key; True when it was a keyboard key (or octave shift)."""
        if auto_repeat:
            return key_note(key_text, self.octave_base) is not None
        if key_text in ("[", "]"):
            if pressed:
                self.release_all()
                self.octave_base = min(96, max(12, self.octave_base + (12 if key_text == "]" else -12)))
                self.update()
            return True
        n = key_note(key_text, self.octave_base)
        if n is None:
            return False
        (self.press if pressed else self.release)(n)
        return True

    def focusOutEvent(self, ev):
        self.release_all()             # no stuck notes when the window loses the keyboard
        super().focusOutEvent(ev)

    # -- drawing --------------------------------------------------------------------------------
    def paintEvent(self, ev):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        playing = QColor("#3fa9f5")
        ringing = QColor("#1f5f8a")
        for black in (False, True):
            for n in range(self.low, self.high + 1):
                if (n % 12 in BLACK) != black:
                    continue
                r = self.key_rect(n)
                base = QColor("#16181c") if black else QColor("#e8e6e1")
                if n in self.sounding:
                    base = playing if self.sounding[n] else ringing
                elif n in self.held:
                    base = playing
                p.fillRect(r.adjusted(0.5, 0, -0.5, -1), base)
                p.setPen(QColor("#0b0c0e"))
                p.drawRect(r.adjusted(0.5, 0, -0.5, -1))
        p.setPen(QColor("#555"))
        for n in self.whites:
            if n % 12 == 0:
                r = self.key_rect(n)
                p.drawText(r.adjusted(2, 0, 0, -4), int(Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter),
                           f"C{n // 12 - 1}")
        # The computer keyboard's range.
        lo = self.octave_base
        if self.low <= lo <= self.high:
            r = self.key_rect(lo if lo % 12 not in BLACK else lo + 1)
            p.fillRect(QRectF(r.left(), self.height() - 4, r.width() * 14, 4), QColor("#f5a623"))
        p.end()
