"""The excitation a flow vocoder can be driven by: its source's phases as a signal, its levels flattened.

A flow trained on the mel alone must find a note's pitch and its partials' phases in the mel,
which holds neither exactly; a small one trained on this CPU did not (held notes 27-555 cents
off, noise with the group rate's lines; models/README.md). The iSTFT vocoder met the same
defect by taking its phases from its source (``source_phase``); this is that idea for a
waveform model, in the manner of neural source-filter vocoders: the flow's couplings are
conditioned on an excitation made from the source, and learn the filter (the levels) from the
mel.

The excitation of synthesis frame ``t``: the source spectrum (``source_phase``: the Hann FFT of
the ``n_fft`` source samples ending where mel frame ``t`` ends) with every bin's phase kept and its
level compressed to ``(|S| / peak) ** POWER`` of its frame's loudest bin (so a partial stays a
peak over its valleys, -60 dB becomes -18 dB), bins under ``FLOOR`` of the peak and frames whose
peak is under ``SILENT`` (about -90 dB of a full-scale sine) set to 0; then the exact inverse of
the Hann STFT (Hann again, the overlap-added squared windows divided out, as ``istft_vocoder``'s
source phase), times ``sqrt(n_fft)`` (measured at n_fft 512: white noise comes out at an RMS of
1.17, a harmonic tone at 0.26). It sounds ``n_fft - hop`` samples (one hop at ``n_fft = 2 hop``)
behind its input, so a flow driven by it plays that much late (``FlowVocoder.output_delay``), and
is trained so. The input's level is gone from it (the mel has
it), so the excitation of a note is the same at any dynamic.

Streaming: ``step`` takes the next frames' spectra and gives their final ``hop`` samples each,
carrying the overlap; concatenated, the steps equal ``forward`` over the whole sequence.
Threading: one stream per object.
"""
from __future__ import annotations

import math

import torch

from .overlap_add import OverlapAdd, hann_inverse
from .source_phase import FLOOR

POWER = 0.3          # the compression of each bin's level against its frame's peak
SILENT = 4e-3        # a frame whose loudest bin is under this is silence (a 0 dBFS sine peaks at n_fft / 4)


def excitation_spectrum(spec: torch.Tensor) -> torch.Tensor:
    """``[B, bins, T]`` complex source spectra -> the excitation's spectra (module docstring)."""
    mag = spec.abs()
    peak = mag.amax(dim=1, keepdim=True)
    tiny = torch.finfo(mag.dtype).tiny
    keep = (mag >= FLOOR * peak) & (peak >= SILENT)
    scale = torch.where(keep, (mag / peak.clamp_min(tiny)) ** POWER / mag.clamp_min(tiny), torch.zeros_like(mag))
    return spec * scale


class Excitation(OverlapAdd):
    """The excitation's synthesis (module docstring): ``forward`` offline, ``step`` streaming
    (``overlap_add``), from ``[B, n_fft // 2 + 1, T]`` complex source spectra."""

    what = "excitation"

    def __init__(self, n_fft: int, hop: int):
        super().__init__(n_fft, hop, *hann_inverse(n_fft, hop, math.sqrt(n_fft)))

    @property
    def delay(self) -> int:
        """Samples the excitation lags the source it comes from."""
        return self.n_fft - self.hop

    def frames(self, spec: torch.Tensor) -> torch.Tensor:
        return super().frames(excitation_spectrum(spec))        # (the bins are checked there)


MDCT_SILENT = 1e-4   # an MDCT frame whose largest coefficient is under this is silence (a 0 dBFS sine's is about 10)


class SourceSignal(OverlapAdd):
    """The source itself, back from its spectra: the exact inverse of its Hann STFT, ``n_fft -
    hop`` samples late (``delay``). A flow on the MDCT's coefficients (``flow_vocoder``,
    ``squeeze="mdct"``) takes its frames and whitens them there (``whiten_frames``), so its
    excitation's coefficients carry the signs and the fine structure of the coefficients it is
    to make."""

    what = "source"

    def __init__(self, n_fft: int, hop: int):
        super().__init__(n_fft, hop, *hann_inverse(n_fft, hop, 1.0))

    @property
    def delay(self) -> int:
        return self.n_fft - self.hop


WHITEN_HALF_WIDTH = 4   # the envelope ``whiten_frames`` divides out: RMS over 2 * 4 + 1 coefficients


def whiten_frames(c: torch.Tensor) -> torch.Tensor:
    """``[B, coefficients, T]`` MDCT frames of a source -> the excitation's: each coefficient over
    its frame's smooth envelope, the RMS of the ``2 WHITEN_HALF_WIDTH + 1`` coefficients around it
    (floored at ``FLOOR`` of the frame's largest, so what lies near 60 dB under the peak stays
    small); a coefficient at ``FLOOR`` of the largest halved, and fading to 0 under it (a
    continuous gate, ``r^2 / (1 + r^2)`` of its level ``r`` over the floor: else float32's
    rounding, 140 dB under the peak, came out at -80 dB and differed with the block size, and a
    hard threshold flickered); a frame whose largest is under ``MDCT_SILENT``, 0. Frame by
    frame, so it streams.

    Within a partial's main lobe, and between a partial and the valleys beside it, the
    coefficients keep their ratios exactly (the envelope spans 390 Hz at 22.05 kHz and hop 256,
    a few partials of a low note): what pitch and phase the source has, its excitation has, and
    the flow's Gaussian need only give the smooth envelope, which the mel holds. (An earlier
    excitation compressed each coefficient's level to the power 0.3 of its frame's peak, as
    ``excitation_spectrum`` does: no smooth gain undoes that, and the flow trained on it played
    held tones with sidebands 1 to 24 dB under the note, one 77 cents sharp; models/README.md.)"""
    b, k, t = c.shape
    w = WHITEN_HALF_WIDTH
    power = (c * c).transpose(1, 2).reshape(b * t, 1, k)
    env = torch.nn.functional.avg_pool1d(power, 2 * w + 1, 1, w, count_include_pad=False)
    env = env.reshape(b, t, k).transpose(1, 2).sqrt()
    peak = c.abs().amax(dim=1, keepdim=True)
    floor = (FLOOR * peak).clamp_min(torch.finfo(c.dtype).tiny)
    r2 = (c / floor) ** 2
    e = c / torch.maximum(env, floor) * (r2 / (1.0 + r2))     # a soft gate: half at the floor, 1e-8 at rounding's
    return torch.where(peak >= MDCT_SILENT, e, torch.zeros_like(c))
