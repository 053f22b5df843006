"""Streaming equals offline for the causal layers, at any split of the frames."""
import numpy as np
import pytest
import torch

from livewave.streaming_conv import CausalConv1d, CausalConvTranspose1d

SPLITS = (1, 2, 3, 5, 17, 33, 65)


def streamed(layer, x: torch.Tensor, size: int) -> torch.Tensor:
    layer.reset()
    return torch.cat([layer.step(x[:, :, i:i + size]) for i in range(0, x.shape[2], size)], dim=2)


@pytest.mark.parametrize("kernel,dilation", [(1, 1), (3, 1), (3, 9), (7, 1), (4, 2)])
def test_causal_conv_streams_exactly_and_never_looks_ahead(kernel, dilation):
    torch.manual_seed(kernel * 10 + dilation)
    layer = CausalConv1d(5, 6, kernel, dilation=dilation).eval()
    x = torch.randn(2, 5, 150)
    with torch.no_grad():
        ref = layer(x)
        assert ref.shape == (2, 6, 150)
        for size in SPLITS:
            assert torch.allclose(streamed(layer, x, size), ref, atol=1e-5, rtol=0), size
        x2 = x.clone()
        x2[:, :, 80:] = torch.randn(2, 5, 70)        # change the future only
        assert torch.equal(layer(x2)[:, :, :80], ref[:, :, :80])
        # and the numbers are a convolution: frame t from x[t - (k-1)d .. t]
        w, b = layer.weight.numpy(), layer.bias.numpy()
        t = 100
        taps = [x[:, :, t - (kernel - 1 - j) * dilation].numpy() for j in range(kernel)]
        want = sum(np.einsum("oc,bc->bo", w[:, :, j], taps[j]) for j in range(kernel)) + b
        assert np.allclose(ref[:, :, t].numpy(), want, atol=1e-5)


@pytest.mark.parametrize("kernel,stride", [(16, 8), (4, 2), (5, 3), (3, 3)])
def test_causal_transposed_conv_streams_exactly_and_upsamples_causally(kernel, stride):
    torch.manual_seed(kernel + stride)
    layer = CausalConvTranspose1d(4, 3, kernel, stride).eval()
    x = torch.randn(2, 4, 70)
    with torch.no_grad():
        ref = layer(x)
        assert ref.shape == (2, 3, 70 * stride)
        for size in SPLITS:
            assert torch.allclose(streamed(layer, x, size), ref, atol=1e-5, rtol=0), size
        x2 = x.clone()
        x2[:, :, 40:] = 0.0
        assert torch.equal(layer(x2)[:, :, :40 * stride], ref[:, :, :40 * stride])
        # a numpy transposed conv, cut to T * stride: the same numbers
        w, b = layer.weight.numpy(), layer.bias.numpy()        # [in, out, k]
        full = np.zeros((2, 3, (70 - 1) * stride + kernel))
        for t in range(70):
            full[:, :, t * stride:t * stride + kernel] += np.einsum("bi,iok->bok", x[:, :, t].numpy(), w)
        assert np.allclose(ref.numpy(), full[:, :, :70 * stride] + b[None, :, None], atol=1e-5)


def test_a_transposed_conv_that_cannot_stream_is_refused():
    with pytest.raises(ValueError, match="stride <= kernel <= 2 \\* stride"):
        CausalConvTranspose1d(2, 2, 20, 8)


def test_reset_starts_a_new_stream_from_silence():
    torch.manual_seed(0)
    layer = CausalConv1d(2, 2, 5).eval()
    x = torch.randn(1, 2, 30)
    with torch.no_grad():
        first = streamed(layer, x, 7)
        layer.step(torch.randn(1, 2, 9))           # more of the old stream...
        assert torch.allclose(streamed(layer, x, 7), first)   # ...gone after reset (streamed resets)
