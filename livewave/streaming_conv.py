"""Causal convolutions that stream: the same layer run offline on a whole sequence, or block
by block with carried state, giving the same numbers.

Tensors are ``[batch, channels, frames]``. Every layer here has two paths:
- ``forward(x)``: offline, stateless, written with the ordinary torch ops and explicit
  padding (the reference the streamed output is tested against);
- ``step(x)``: streaming, stateful. A conv keeps the last ``(kernel - 1) * dilation`` input
  frames (a cache) and convolves ``cache + block`` without padding; a transposed conv keeps
  the ``kernel - stride`` output samples that spill past the block (its tail, without bias)
  and adds them to the next block's start. ``reset()`` returns to silence (the offline path's
  zero padding), so ``cat(step(b) for b in blocks) == forward(cat(blocks))`` at any split,
  to float rounding (tests/test_streaming_conv.py: 1e-5 over block sizes 1, odd and powers of
  two plus one).

Causal means output frame ``t`` depends on inputs ``<= t`` only: a causal model streams with
no lookahead; its latency is the host's block size and the conditioning hop, nothing more.
Threading: one stream per layer object; ``step`` from one thread at a time (the render side).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def valid_conv1d(xx: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    """``F.conv1d(xx, weight, bias, dilation=dilation)`` (stride 1, no padding), fast on a CPU.
    NB: on the CPU, torch's kernel for a dilated conv is a slow fallback (an element-wise gather:
    1.8 ms of a 3.6 ms vocoder frame, profiled) and its im2col conv costs ~100 us for a few
    frames; so on the CPU a dilated conv, or any conv over at most 16 steps (a streamed
    frame-rate step), stacks the ``kernel`` taps as channels and does one matrix product: the
    same sums in another order."""
    out_ch, in_ch, k = weight.shape
    t = xx.shape[2] - (k - 1) * dilation
    if xx.device.type != "cpu" or (dilation == 1 and t > 16):
        return F.conv1d(xx, weight, bias, dilation=dilation)
    # taps[:, c * k + i] = xx[:, c, i * d:], the weight's own layout (a view of it, no copy)
    taps = xx if k == 1 else torch.stack([xx[:, :, i * dilation:i * dilation + t] for i in range(k)],
                                         dim=2).flatten(1, 2)
    y = torch.matmul(weight.reshape(out_ch, k * in_ch), taps)
    return y if bias is None else y + bias[:, None]


class CausalConv1d(nn.Conv1d):
    """``nn.Conv1d`` (stride 1) padded on the left only: ``y[t]`` sees ``x[t - (k-1)d .. t]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.context = (kernel_size - 1) * dilation
        self._cache: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(F.pad(x, (self.context, 0)))

    def _conv(self, xx: torch.Tensor) -> torch.Tensor:
        """The valid convolution of ``xx`` (context included)."""
        return valid_conv1d(xx, self.weight, self.bias, self.dilation[0])

    def reset(self) -> None:
        self._cache = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.context == 0:
            return F.conv1d(x, self.weight, self.bias)
        cache = self._cache
        if cache is None or cache.shape[0] != x.shape[0]:
            cache = x.new_zeros(x.shape[0], x.shape[1], self.context)
        xx = torch.cat((cache, x), dim=2)
        self._cache = xx[:, :, -self.context:]
        return self._conv(xx)


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """Upsampling by ``stride``: ``T`` frames in, ``T * stride`` samples out, sample ``n``
    depending on frames ``<= n // stride`` (the transposed conv's output, its spill past the
    last frame cut off). ``kernel_size`` between ``stride`` and ``2 * stride``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool = True):
        if not stride <= kernel_size <= 2 * stride:
            raise ValueError(f"a streaming transposed conv needs stride <= kernel <= 2 * stride; got kernel "
                             f"{kernel_size}, stride {stride}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        self.spill = kernel_size - stride
        self._tail: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * self.stride[0]
        return F.conv_transpose1d(x, self.weight, self.bias, stride=self.stride)[:, :, :n]

    def reset(self) -> None:
        self._tail = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * self.stride[0]
        y = F.conv_transpose1d(x, self.weight, None, stride=self.stride)
        if self.spill:
            tail = self._tail
            if tail is not None and tail.shape[0] == y.shape[0]:
                y[:, :, :self.spill] += tail
            self._tail = y[:, :, n:].clone()
        y = y[:, :, :n]
        return y + self.bias[None, :, None] if self.bias is not None else y


def streaming_layers(module: nn.Module):
    """Every streaming layer inside ``module`` (for reset)."""
    return [m for m in module.modules() if isinstance(m, (CausalConv1d, CausalConvTranspose1d))]


def reset_stream(module: nn.Module) -> None:
    for m in streaming_layers(module):
        m.reset()
