"""The flow vocoder: exactly invertible, its log-determinant is the Jacobian's, it streams, and
sigma sets the output energy."""
import math

import pytest
import torch

from livewave.flow_vocoder import FlowConfig, FlowVocoder


def model(seed: int = 0, **kw) -> FlowVocoder:
    torch.manual_seed(seed)
    cfg = dict(n_mels=10, hop=32, n_group=8, n_flows=6, n_early_every=2, n_early_size=2, wn_layers=3, wn_channels=16)
    cfg.update(kw)
    m = FlowVocoder(FlowConfig(**cfg))
    for wn in m.couplings:                         # a trained-looking flow, not the identity it starts as
        torch.nn.init.normal_(wn.end.weight, std=0.1)
        torch.nn.init.normal_(wn.end.bias, std=0.1)
    return m.eval().double()


def test_audio_to_z_to_audio_is_exact():
    m = model()
    mel = torch.randn(2, 10, 12, dtype=torch.float64)
    x = 0.3 * torch.randn(2, 12 * 32, dtype=torch.float64)
    with torch.no_grad():
        z, _ = m(x, mel)
        assert z.shape == (2, 8, 12 * 32 // 8)
        back = m.run_inverse(z, mel, False)
    assert (back - x).abs().max().item() < 1e-4
    assert (z - x.reshape(2, -1, 8).transpose(1, 2)).abs().max() > 0.05      # it did transform


def test_the_log_determinant_is_the_jacobians():
    m = model(1, hop=8, n_group=4, n_flows=4, n_early_every=2, n_early_size=2, wn_layers=2, wn_channels=8)
    mel = torch.randn(1, 10, 3, dtype=torch.float64)
    x = 0.3 * torch.randn(1, 24, dtype=torch.float64)
    with torch.no_grad():
        _, logdet = m(x, mel)
    jac = torch.autograd.functional.jacobian(lambda a: m(a.reshape(1, -1), mel)[0].reshape(-1), x.reshape(-1))
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-6)


@pytest.mark.parametrize("frames_per_block", [1, 2, 3, 5])
def test_streamed_sampling_equals_offline_for_the_same_noise(frames_per_block):
    m = model(2)
    mel = torch.randn(1, 10, 15, dtype=torch.float64)
    with torch.no_grad():
        z = m.noise(mel, 0.6)
        ref = m.infer(mel, z=z)
        m.reset()
        per = m.per_frame
        out = torch.cat([m.step(mel[:, :, i:i + frames_per_block], z[:, :, i * per:(i + frames_per_block) * per])
                         for i in range(0, 15, frames_per_block)], dim=1)
    assert out.shape == ref.shape == (1, 15 * 32)
    assert (out - ref).abs().max().item() < 1e-5


def test_sigma_sets_the_output_energy():
    m = model(3)
    mel = torch.randn(1, 10, 40, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    base = m.noise(mel, 1.0, generator=g)
    with torch.no_grad():
        rms = [m.infer(mel, z=s * base).pow(2).mean().sqrt().item() for s in (0.0, 0.3, 0.6, 1.0)]
    assert rms == sorted(rms) and rms[3] > 1.5 * rms[1], rms


def test_the_likelihood_of_noise_under_the_untrained_flow_is_the_gaussians():
    torch.manual_seed(4)
    m = FlowVocoder(FlowConfig(n_mels=10, hop=32, n_flows=6, n_early_every=2, wn_layers=2, wn_channels=8)).double()
    mel = torch.randn(1, 10, 50, dtype=torch.float64)
    x = 0.5 * torch.randn(1, 50 * 32, dtype=torch.float64)
    with torch.no_grad():
        nll = m.negative_log_likelihood(x, mel).item()
    # identity couplings, rotations: z is x rotated, so -log p = E[x^2] / 2 + log(2 pi) / 2 per sample
    want = 0.5 * x.pow(2).mean().item() + 0.5 * math.log(2 * math.pi)
    assert nll == pytest.approx(want, rel=1e-6)          # the rotations are orthogonal to float32 precision


def test_bad_configs_and_mels_are_refused():
    with pytest.raises(ValueError, match="divide hop"):
        FlowConfig(hop=100).check()
    with pytest.raises(ValueError, match="channels would be left"):
        FlowConfig(n_group=4, n_flows=12, n_early_every=4, n_early_size=2).check()
    with pytest.raises(ValueError, match=r"\[batch, 10 bands, frames\]"):
        model().infer(torch.zeros(1, 80, 3, dtype=torch.float64))
    assert FlowConfig.from_dict(FlowConfig().to_dict()) == FlowConfig()


# -- driven by a source (source_excitation) ----------------------------------------------------------
def sourced(seed: int = 4) -> FlowVocoder:
    m = model(seed, source_n_fft=64, source_channels=6)
    with torch.no_grad():
        for wn in m.couplings:                     # listening to the excitation, as training makes it
            wn.cond.weight[:, 10:] = 0.2 * torch.randn_like(wn.cond.weight[:, 10:])
    return m


def source_of(x: torch.Tensor, frames: int) -> torch.Tensor:
    from livewave.source_phase import source_spectrum
    return source_spectrum(x, 64, 32)[:, :, :frames]


@pytest.mark.parametrize("frames_per_block", [1, 2, 5])
def test_a_flow_driven_by_its_source_streams_as_it_renders_and_inverts_exactly(frames_per_block):
    m = sourced()
    frames = 15
    mel = torch.randn(1, 10, frames, dtype=torch.float64)
    t = torch.arange(frames * 32, dtype=torch.float64)
    src = source_of((0.5 * torch.sin(2 * math.pi * 0.07 * t))[None], frames)
    assert m.takes_source and m.output_delay == 32
    with torch.no_grad():
        z = m.noise(mel, 0.6)
        ref = m.infer(mel, z=z, source=src)
        m.reset()
        per, k = m.per_frame, frames_per_block
        out = torch.cat([m.step(mel[:, :, i:i + k], z[:, :, i * per:(i + k) * per], src[:, :, i:i + k])
                         for i in range(0, frames, k)], dim=1)
        back, _ = m(ref, mel, src)
        bare = m.infer(mel, z=z)
        silent = m.infer(mel, z=z, source=torch.zeros_like(src))
    assert (out - ref).abs().max().item() < 1e-5
    assert (back - z).abs().max().item() < 1e-4
    assert (bare - ref).abs().max().item() > 1e-2            # it listens to its source
    assert (bare - silent).abs().max().item() == 0.0         # and without one hears a silent excitation


def test_a_flow_converted_to_take_a_source_renders_as_before_whatever_the_source():
    from livewave.flow_vocoder import with_source
    base = model(5).float()
    conv = with_source(base, 64, 6).eval()
    mel = torch.randn(1, 10, 9)
    src = source_of(0.3 * torch.randn(1, 9 * 32), 9)
    with torch.no_grad():
        z = base.noise(mel, 0.6)
        assert (conv.infer(mel, z=z, source=src) - base.infer(mel, z=z)).abs().max().item() == 0.0
    with pytest.raises(ValueError, match="takes a source already"):
        with_source(conv, 64)
    with pytest.raises(ValueError, match="takes no source"):
        base.infer(mel, z=z, source=src)
    with pytest.raises(ValueError, match="at least two hops"):
        FlowConfig(hop=32, n_group=8, source_n_fft=48).check()
    with pytest.raises(ValueError, match=r"source_n_fft must be a whole number >= 0 \(0: no source\), got -64"):
        FlowConfig(hop=32, n_group=8, source_n_fft=-64).check()
    with pytest.raises(ValueError, match="n_flows must be a positive integer, got 0"):
        FlowConfig(hop=32, n_group=8, n_flows=0).check()


def test_the_inverse_of_a_1x1_conv_is_kept_until_its_weight_changes():
    """A stream inverts every frame; ``W^-1`` is computed once, and again whenever ``W`` changes
    (an optimiser step, a loaded state, another dtype), while training takes it afresh so its
    gradient reaches ``W``."""
    from livewave.flow_vocoder import Invertible1x1
    conv = Invertible1x1(8)
    x = torch.randn(2, 8, 5)
    with torch.inference_mode():
        first = conv.inverse_weight()
        assert conv.inverse_weight() is first                    # kept
        assert torch.allclose(conv.inverse(conv(x)[0]), x, atol=1e-5)
    with torch.no_grad():
        conv.weight.add_(0.1 * torch.eye(8))                     # in place, as an optimiser steps
    assert conv.inverse_weight() is not first
    assert torch.allclose(conv.inverse_weight() @ conv.weight, torch.eye(8), atol=1e-5)
    other = Invertible1x1(8)
    conv.load_state_dict(other.state_dict())
    assert torch.allclose(conv.inverse_weight(), torch.linalg.inv(other.weight), atol=1e-6)
    conv.double()
    assert conv.inverse_weight().dtype == torch.float64
    conv.float()
    z = conv.inverse(torch.randn(2, 8, 5))                       # grad mode: afresh, differentiable
    z.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
