"""Multi-scale spectral distance (the DDSP paper's reconstruction loss), for training and reports.

For each FFT size: Hann-windowed STFT magnitudes ``S`` of both signals, then
``mean |Sx - Sy| + log_weight * mean |log(Sx + eps) - log(Sy + eps)|``; the result is the
**mean over scales** (DDSP sums them; a mean keeps the number comparable when the scales
change). Frames are centred with zero padding (so signals shorter than an FFT still work).

``multiscale_spectral_distance`` is torch (differentiable, any device, ``[B, N]`` or ``[N]``);
``spectral_distance_np`` gives the same number from arrays, for evaluation reports.
"""
from __future__ import annotations

import math

import numpy as np
import torch

DEFAULT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
REFERENCE_RATE = 16000     # the rate the DDSP paper's FFT sizes were chosen for


def _magnitudes(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(x, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return spec.abs()


def multiscale_spectral_distance(x: torch.Tensor, y: torch.Tensor,
                                 fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES, overlap: float = 0.75,
                                 log_weight: float = 1.0, eps: float = 1e-7) -> torch.Tensor:
    """Scalar tensor: the mean over ``fft_sizes`` of the linear plus ``log_weight`` x log
    magnitude L1 distances (each a mean over batch, bins and frames). ``x``, ``y``: ``[B, N]``
    or ``[N]``, same shape. STFT hop = ``n_fft * (1 - overlap)`` (at least 1)."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim not in (1, 2):
        raise ValueError(f"need [B, N] or [N] signals, got shape {tuple(x.shape)}")
    if not fft_sizes:
        raise ValueError("fft_sizes is empty")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap}: need 0 <= overlap < 1")
    total = x.new_zeros(())
    for n_fft in fft_sizes:
        hop = max(1, int(round(n_fft * (1.0 - overlap))))
        window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
        sx = _magnitudes(x, n_fft, hop, window)
        sy = _magnitudes(y, n_fft, hop, window)
        lin = (sx - sy).abs().mean()
        log = (torch.log(sx + eps) - torch.log(sy + eps)).abs().mean()
        total = total + lin + log_weight * log
    return total / len(fft_sizes)


def scaled_fft_sizes(sample_rate: int, fft_sizes: tuple[int, ...] = DEFAULT_FFT_SIZES) -> tuple[int, ...]:
    """The FFT sizes that span the same durations at ``sample_rate`` as ``fft_sizes`` at 16 kHz
    (nearest power of two on a log scale)."""
    ratio = sample_rate / REFERENCE_RATE
    return tuple(int(2 ** round(math.log2(n * ratio))) for n in fft_sizes)


def spectral_distance_np(x, y, sample_rate: int | None = None, **kw) -> float:
    """``multiscale_spectral_distance`` of two arrays (``[N]`` or ``[B, N]``), computed in
    float64, as a float. With ``sample_rate`` the FFT sizes are scaled from 16 kHz
    (``scaled_fft_sizes``) so figures at different rates mean the same time scales; without
    it (or at 16 kHz) the number is exactly the torch function's on the same arrays."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
    if sample_rate is not None:
        kw["fft_sizes"] = scaled_fft_sizes(sample_rate, kw.get("fft_sizes", DEFAULT_FFT_SIZES))
    with torch.no_grad():
        return float(multiscale_spectral_distance(xt, yt, **kw))


def log_mel_distance(x: torch.Tensor, y: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 256,
                     n_mels: int = 80, floor: float = 1e-5) -> torch.Tensor:
    """Mean ``|log(max(floor, mel(x))) - log(max(floor, mel(y)))|`` (natural log): the log-mel L1
    that vocoder evaluations report (HiFi-GAN trains on it too), with livewave's filterbank
    (Slaney, magnitudes) on centred Hann frames. Differentiable; ``[B, N]`` or ``[N]``."""
    from .mel_analysis import mel_filterbank
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    fb = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)).to(x.device, x.dtype)
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    mx = torch.matmul(fb, _magnitudes(x, n_fft, hop, window))
    my = torch.matmul(fb, _magnitudes(y, n_fft, hop, window))
    return (torch.log(mx.clamp(min=floor)) - torch.log(my.clamp(min=floor))).abs().mean()


def low_band_distance(x: torch.Tensor, y: torch.Tensor, sample_rate: int, top_hz: float = 500.0,
                      floor_db: float = -60.0) -> torch.Tensor:
    """Mean ``|log max(f, |X|) - log max(f, |Y|)|`` over the bins under ``top_hz`` of each whole
    signal's Hann-windowed spectrum, ``f`` being ``floor_db`` under ``y``'s peak there. Its
    resolution is the signal's length (2.7 Hz for an 8192-sample crop at 22.05 kHz), so a line
    the frames put in (the frame rate: 86 Hz at hop 256) has bins of its own, where a frame-wise
    STFT smears it and mel bands average it away. Differentiable; ``[B, N]`` or ``[N]``."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    n = x.shape[-1]
    k = min(n // 2 + 1, int(top_hz * n / sample_rate) + 1)
    window = torch.hann_window(n, periodic=False, dtype=x.dtype, device=x.device)
    mx = torch.fft.rfft(x * window).abs()[..., :k]
    my = torch.fft.rfft(y * window).abs()[..., :k]
    f = my.amax(-1, keepdim=True) * 10.0 ** (floor_db / 20.0) + 1e-12
    return (torch.log(torch.maximum(mx, f)) - torch.log(torch.maximum(my, f))).abs().mean()
