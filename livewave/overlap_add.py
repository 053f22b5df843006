"""Overlap-add of short-time spectra into a waveform, offline and streaming: the synthesis half of
an inverse STFT, shared by the iSTFT vocoder (``istft_vocoder``) and a flow's source excitation
(``source_excitation``).

Frame ``t``'s spectrum goes through an inverse real FFT of ``n_fft`` points, times ``window``, and
is added into the output at ``t * hop``. A sample is final once no later frame reaches it: the
first ``T * hop`` of ``T`` frames (the last ``n_fft - hop`` wait for the next frames). A final
sample is then multiplied by ``gain`` (one value per position within its hop, the reciprocal of
the overlap-added squared windows for an exact inverse; ``None``: as it is).

``forward`` renders a whole sequence; ``step`` takes the next frames and gives their final
samples, carrying the unfinished ``n_fft - hop`` as ``tail``, so concatenated steps equal
``forward``. ``step`` never writes into the tail it carries (it replaces it), so a caller may keep
a reference to it and put it back (``istft_vocoder``'s ``save_stream``). Threading: one stream
per object.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_window(n_fft: int, hop: int, what: str = "overlap-add") -> None:
    """Refuse a window that overlap-add cannot stream: ``n_fft`` a multiple of ``hop``, at least two."""
    if hop < 1 or n_fft % hop or n_fft < 2 * hop:
        raise ValueError(f"{what}: n_fft ({n_fft}) must be a multiple of hop ({hop}), at least two hops")


def hann_inverse(n_fft: int, hop: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(window, gain) of the exact inverse of a periodic Hann STFT at ``hop`` (the analysis window
    of ``source_phase.source_spectrum``): Hann again, the overlap-added squared windows divided out
    (torch.istft normalises so), times ``scale``."""
    check_window(n_fft, hop)
    w = torch.hann_window(n_fft, periodic=True)
    return w * scale, 1.0 / (w ** 2).reshape(-1, hop).sum(0)


class OverlapAdd(nn.Module):
    what = "overlap-add"        # who the error messages name

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor, gain: torch.Tensor | None = None):
        super().__init__()
        check_window(n_fft, hop, self.what)
        if window.shape != (n_fft,):
            raise ValueError(f"{self.what}: a window of shape {tuple(window.shape)}; need ({n_fft},)")
        if gain is not None and gain.shape != (hop,):
            raise ValueError(f"{self.what}: a gain of shape {tuple(gain.shape)}; need ({hop},)")
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("gain", gain, persistent=False)
        self.tail: torch.Tensor | None = None

    def frames(self, spec: torch.Tensor) -> torch.Tensor:
        """``[B, n_fft // 2 + 1, T]`` complex -> windowed frames ``[B, n_fft, T]``."""
        if spec.shape[1] != self.n_fft // 2 + 1:
            raise ValueError(f"{self.what}: spectra of {spec.shape[1]} bins; need {self.n_fft // 2 + 1}")
        return torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[None, :, None]

    def _sum(self, spec: torch.Tensor) -> torch.Tensor:
        """-> every frame added at its place ``[B, (T - 1) * hop + n_fft]``, not yet final."""
        fr = self.frames(spec)
        t = fr.shape[2]
        return F.fold(fr, output_size=(1, (t - 1) * self.hop + self.n_fft), kernel_size=(1, self.n_fft),
                      stride=(1, self.hop))[:, 0, 0]

    def _final(self, y: torch.Tensor) -> torch.Tensor:
        """Final samples ``[B, k * hop]``, starting at a hop boundary, times the gain in place
        (a new tensor per streamed step held Python memory: traced, 2026-12-02)."""
        if self.gain is not None:
            y.view(y.shape[0], -1, self.hop).mul_(self.gain)
        return y

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Offline: ``[B, bins, T]`` -> ``[B, T * hop]``."""
        return self._final(self._sum(spec)[:, :spec.shape[2] * self.hop])

    def step(self, spec: torch.Tensor) -> torch.Tensor:
        """Streaming: the next ``T`` frames' spectra -> their ``T * hop`` final samples."""
        if spec.shape[2] == 0:
            return spec.real.new_zeros(spec.shape[0], 0)
        y = self._sum(spec)             # a new tensor: adding into it leaves the old tail as it was
        keep = self.n_fft - self.hop
        if self.tail is not None and self.tail.shape[0] == y.shape[0]:
            y[:, :keep] += self.tail
        n = spec.shape[2] * self.hop
        self.tail = y[:, n:].clone()
        return self._final(y[:, :n])

    def reset(self) -> None:
        self.tail = None
