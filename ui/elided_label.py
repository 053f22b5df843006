"""A one-line label that never widens its window: text too long for the width it is given is
cut with an ellipsis, and the whole text is its tooltip. For names that come from a model's
card (a user's own instrument names can be any length)."""
from __future__ import annotations

from PyQt6.QtCore import QSize, Qt
from PyQt6.QtWidgets import QLabel, QSizePolicy


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:       # noqa: N802 (Qt's name)
        self._full = text
        self.setToolTip(text)
        self._fit()

    def full_text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:         # noqa: N802
        return QSize(self.fontMetrics().horizontalAdvance("W…"), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:                # noqa: N802
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 4, super().sizeHint().height())

    def resizeEvent(self, event) -> None:       # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def changeEvent(self, event) -> None:       # noqa: N802 (a style sheet changes the font)
        super().changeEvent(event)
        self._fit()

    def _fit(self) -> None:
        full = getattr(self, "_full", "")        # NB: Qt may send a changeEvent from QLabel's own __init__
        shown = self.fontMetrics().elidedText(full, Qt.TextElideMode.ElideRight, max(self.width(), 1))
        if shown != super().text():
            super().setText(shown)
