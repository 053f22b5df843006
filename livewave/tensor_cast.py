"""``as_dtype``: a tensor in a dtype, itself when it already is (no call into ``Tensor.to``).

Why a function of its own: on the streamed path (the render side) ``Tensor.to(dtype)`` leaves
small Python objects behind even when it returns the tensor itself (torch 2.13, CPU,
inference mode: 67-byte objects, 6 to 10 of them held at any time over 200,000 calls in a
bare loop, while ``.float()`` and ``.to(device)`` held none). Inside the engine they were
``LIVEWAVE_TORTURE=full``'s allocation growth: the iSTFT vocoder's torch steps held 1.9 KB after
2,000 blocks and 10.1 KB from 6,000 on, all from one ``.to(mag.dtype)`` of its level bound,
and the MDCT flow's grew the same way (stop 33). Training and offline use pass tensors
of other dtypes too, so the cast stays where it is needed."""
from __future__ import annotations

import torch


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)
