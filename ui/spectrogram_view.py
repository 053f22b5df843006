"""A scrolling spectrogram of the output: one column per view refresh (~30 per second), the
newest at the right, on a log-frequency axis (30 Hz to 16 kHz or Nyquist) that a musician
reads as pitch, coloured from -100 to 0 dBFS.

Fed from the engine's shared scope ring on the GUI's timer (``show_samples``), so it costs
the audio process nothing. Each column is a Hann-windowed FFT of the newest ``fft_size``
samples; the image is a ring of columns painted in two pieces (no scrolling copy).
"""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF
from PyQt6.QtGui import QColor, QImage, QPainter, QPen
from PyQt6.QtWidgets import QWidget

FLOOR_DB = -100.0
F_LO = 30.0
F_HI = 16000.0
LABELS = (100, 440, 1000, 4000, 10000)


def colour_table() -> np.ndarray:
    """256 RGB32 colours: black, deep blue, magenta, orange, pale yellow (perceptually rising)."""
    stops = np.array([[0.0, 6, 7, 10], [0.25, 30, 28, 110], [0.5, 160, 40, 140],
                      [0.75, 245, 130, 40], [1.0, 255, 250, 200]])
    x = np.linspace(0.0, 1.0, 256)
    rgb = [np.interp(x, stops[:, 0], stops[:, k]).astype(np.uint32) for k in (1, 2, 3)]
    return (0xFF000000 | (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]).astype(np.uint32)


class Spectrogram(QWidget):
    def __init__(self, rate: int = 48000, columns: int = 320, rows: int = 160, fft_size: int = 2048, parent=None):
        super().__init__(parent)
        self.columns, self.rows, self.fft_size = columns, rows, fft_size
        self.lut = colour_table()
        self.image = np.full((rows, columns), self.lut[0], np.uint32)   # row 0 = the top (highest)
        self.col = 0              # where the next column goes
        self.window = np.hanning(fft_size).astype(np.float32)
        self.norm = 2.0 / self.window.sum()          # a full-scale sine reads 0 dBFS
        self.set_rate(rate)
        self.setMinimumSize(240, 120)
        self.setToolTip("spectrogram of the output (log frequency, -100..0 dBFS)")

    def set_rate(self, rate: int) -> None:
        self.rate = int(rate)
        hi = min(F_HI, 0.5 * self.rate)
        # row r (0 = top) -> frequency, log-spaced; each row takes the strongest bin it covers
        edges = F_LO * (hi / F_LO) ** (np.arange(self.rows + 1) / self.rows)
        bins = np.clip(np.round(edges * self.fft_size / self.rate).astype(int), 1, self.fft_size // 2)
        self.bin_lo = bins[:-1]                     # ascending; rows that share a bin repeat it
        self.bin_top = int(max(bins[-1], bins[-2] + 1))
        self.f_hi = hi

    def row_of(self, f: float) -> float:
        """Where frequency ``f`` sits, as a fraction of the height from the top."""
        return 1.0 - np.log(f / F_LO) / np.log(self.f_hi / F_LO)

    def show_samples(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)
        if x.size < self.fft_size:
            x = np.concatenate([np.zeros(self.fft_size - x.size, np.float32), x])
        mag = np.abs(np.fft.rfft(x[-self.fft_size:] * self.window)) * self.norm
        # the strongest bin of each row (reduceat gives a lone bin for rows that share one)
        peak = np.maximum.reduceat(mag[:self.bin_top], self.bin_lo)[::-1]
        db = 20.0 * np.log10(np.maximum(peak, 1e-12))
        idx = np.clip((db - FLOOR_DB) / -FLOOR_DB * 255.0, 0, 255).astype(np.intp)
        self.image[:, self.col] = self.lut[idx]
        self.col = (self.col + 1) % self.columns
        self.update()

    def column_db(self, k: int = 1) -> np.ndarray:
        """The ``k``-th newest column as dB per row, top row first (tests)."""
        index = {int(v): i for i, v in enumerate(self.lut)}
        col = self.image[:, (self.col - k) % self.columns]
        return np.array([FLOOR_DB + index[int(v)] / 255.0 * -FLOOR_DB for v in col])

    def paintEvent(self, ev):
        p = QPainter(self)
        w, h = self.width(), self.height()
        q = QImage(self.image.data, self.columns, self.rows, self.columns * 4, QImage.Format.Format_RGB32)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        old = self.columns - self.col               # the ring in two pieces: oldest at the left
        x_split = w * old / self.columns
        p.drawImage(QRectF(0, 0, x_split, h), q, QRectF(self.col, 0, old, self.rows))
        if self.col:
            p.drawImage(QRectF(x_split, 0, w - x_split, h), q, QRectF(0, 0, self.col, self.rows))
        p.setPen(QPen(QColor(255, 255, 255, 110), 1))
        for f in LABELS:
            if f < self.f_hi:
                y = self.row_of(f) * h
                p.drawLine(0, int(y), 6, int(y))
                p.drawText(9, int(y) + 4, f"{f // 1000}k" if f >= 1000 and f % 1000 == 0 else str(f))
        p.end()
