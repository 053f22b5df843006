"""The differentiable torch twin of the harmonic-plus-noise core (``harmonic_noise.py``), for training.

Pure functions, no state, no device policy: tensors in, audio out, autograd through the
harmonic amplitudes and the noise band magnitudes (and f0, though training rarely needs it).
The numbers equal the Numba core's for a voice that starts fresh at sample 0 with envelope 1
and no vibrato, given the core's per-sample (already glided) f0 and the same white noise
(``harmonic_noise.white_frames``); tests/test_ddsp_synth.py holds them to 1e-4:

- phase advances before use: ``ph[n] = sum_{i<=n} f0[i] / sr`` (float64 cumsum, wrapped to
  [0, 1)), harmonic ``k`` sounds ``sin(2 pi k ph[n])``;
- within frame ``j`` (samples ``j*hop .. j*hop + hop - 1``) the amplitudes ramp linearly from
  frame ``j-1``'s targets to frame ``j``'s: ``a = prev + (next - prev) * s / hop``, with frame
  ``-1`` taken as frame ``0``;
- the noise of frame ``j`` is the full linear convolution of its ``hop`` white samples with the
  FIR ``mags[j] @ kernels``, overlap-added at sample ``j*hop`` (its tail spills into the next
  frames; what spills past the end is dropped).

Shapes: ``B`` batch, ``F`` frames, ``N = F * hop`` samples, ``H`` harmonics.
Cost: one ``[B, N, H]`` sine table (the only large tensor), a batched matmul per frame and
small FFTs for the noise; no Python loop over samples or frames.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as tnf

__all__ = ["synthesize", "harmonic_bank", "filtered_noise", "harmonic_mask"]


def harmonic_mask(f0_frames: torch.Tensor, n_harmonics: int, nyquist_hz: float) -> torch.Tensor:
    """``[B, F, H]``: 1 where harmonic ``k`` (1-based) of ``f0_frames`` ``[B, F]`` (Hz) lies below
    ``nyquist_hz``, 0 at and above it. Multiply the harmonic amplitudes by it (no aliasing)."""
    dtype = f0_frames.dtype if f0_frames.is_floating_point() else torch.float32
    k = torch.arange(1, n_harmonics + 1, device=f0_frames.device, dtype=dtype)
    return (f0_frames.to(dtype).unsqueeze(-1) * k < nyquist_hz).to(dtype)


def harmonic_bank(f0: torch.Tensor, amp: torch.Tensor, sample_rate: float, hop: int) -> torch.Tensor:
    """Oscillator bank. ``f0`` ``[B, N]`` Hz per sample, ``amp`` ``[B, F, H]`` targets at frame
    starts (``N = F * hop``) -> ``[B, N]`` in ``amp``'s dtype."""
    b, f, h = amp.shape
    n = f * hop
    if f0.shape != (b, n):
        raise ValueError(f"f0 has shape {tuple(f0.shape)}; with amp {tuple(amp.shape)} and hop {hop} "
                         f"it must be [{b}, {n}]")
    dtype = amp.dtype
    # NB: float64 accumulation, wrapped before the sines: a float32 cumsum drifts by cents
    # over seconds and k * phase would lose its fraction.
    ph = torch.cumsum(f0.to(torch.float64) / float(sample_rate), dim=-1)
    ph = (ph - torch.floor(ph)).to(dtype)
    k = torch.arange(1, h + 1, device=amp.device, dtype=dtype) * (2.0 * math.pi)
    table = torch.sin(ph.unsqueeze(-1) * k).view(b, f, hop, h)          # [B, F, hop, H]
    prev = torch.cat([amp[:, :1], amp[:, :-1]], dim=1)                   # frame -1 := frame 0
    coef = torch.stack([prev, amp - prev], dim=-1)                       # [B, F, H, 2]
    r = torch.matmul(table, coef)                                        # [B, F, hop, 2]
    w = torch.arange(hop, device=amp.device, dtype=dtype) / hop
    return (r[..., 0] + r[..., 1] * w).reshape(b, n)


def filtered_noise(mags: torch.Tensor, white: torch.Tensor, kernels, hop: int) -> torch.Tensor:
    """Filtered noise. ``mags`` ``[B, F, bands]``, ``white`` ``[B, F, hop]``, ``kernels``
    ``[bands, taps]`` (``harmonic_noise.band_kernels``; tensor or array) -> ``[B, F * hop]`` in
    ``mags``' dtype."""
    b, f, nb = mags.shape
    dtype = mags.dtype
    kernels = torch.as_tensor(kernels, dtype=dtype, device=mags.device)
    if kernels.ndim != 2 or kernels.shape[0] != nb:
        raise ValueError(f"kernels has shape {tuple(kernels.shape)}; with mags {tuple(mags.shape)} "
                         f"it must be [{nb}, taps]")
    if white.shape != (b, f, hop):
        raise ValueError(f"white has shape {tuple(white.shape)}; it must be [{b}, {f}, {hop}]")
    taps = kernels.shape[1]
    length = hop + taps - 1                          # full linear convolution of one frame
    n_fft = 1 << (length - 1).bit_length()
    fir = torch.matmul(mags, kernels)                # [B, F, taps]
    spec = torch.fft.rfft(white.to(dtype), n_fft) * torch.fft.rfft(fir, n_fft)
    y = torch.fft.irfft(spec, n_fft)[..., :length]  # [B, F, hop + taps - 1]
    chunks = -(-length // hop)
    y = tnf.pad(y, (0, chunks * hop - length)).view(b, f, chunks, hop)
    out = y[:, :, 0]
    for c in range(1, min(chunks, f)):               # tails: usually one chunk (taps <= hop + 1)
        out = out + tnf.pad(y[:, :f - c, c], (0, 0, c, 0))
    return out.reshape(b, f * hop)


def synthesize(f0: torch.Tensor, amp: torch.Tensor, mags: torch.Tensor, white: torch.Tensor,
               kernels, sample_rate: float, hop: int) -> torch.Tensor:
    """Harmonics plus filtered noise, ``[B, N]`` with ``N = F * hop``.

    ``f0`` ``[B, N]`` Hz per sample (already smoothed: the twin does not glide), ``amp``
    ``[B, F, H]`` harmonic amplitudes at frame starts, ``mags`` ``[B, F, bands]`` noise band
    magnitudes, ``white`` ``[B, F, hop]`` in [-1, 1), ``kernels`` ``[bands, taps]``.
    Computes in ``amp``'s dtype (phase accumulation in float64)."""
    if mags.shape[:2] != amp.shape[:2]:
        raise ValueError(f"amp {tuple(amp.shape)} and mags {tuple(mags.shape)} disagree on [B, F]")
    return harmonic_bank(f0, amp, sample_rate, hop) + filtered_noise(mags.to(amp.dtype), white, kernels, hop)

