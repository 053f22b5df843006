"""The MDCT (livewave/mdct.py) and the flow vocoder whose squeeze it is (``squeeze="mdct"``):
orthogonal over a stream, the same samples streamed at any split, a flow on its coefficients
exactly invertible with its log-determinant the Jacobian's, streamed as it renders offline,
and played by the engine's flow family at any block size with its latency declared."""
import math

import numpy as np
import pytest
import torch

from livewave.flow_vocoder import FlowConfig, FlowVocoder, with_source
from livewave.mdct import MDCT

H = 32


def test_the_mdct_is_orthogonal_over_a_stream_and_inverts_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 20 * H, generator=g, dtype=torch.float64)
    x[:, :H] = 0.0                       # silence before and after: the stream whole
    x[:, -2 * H:] = 0.0
    m = MDCT(H).double()
    c = m.analyse(x)                     # 19 frames, covering every sample
    assert c.shape == (2, H, 19)
    assert torch.allclose(c.pow(2).sum(), x.pow(2).sum(), rtol=1e-6)        # Parseval: orthogonal
    back = m.synthesise(c)
    assert (back[:, :19 * H] - x[:, :19 * H]).abs().max().item() < 1e-6


@pytest.mark.parametrize("split", [[1, 2, 3], [5], [2, 7, 1]])
def test_the_mdct_streams_as_it_runs_offline(split):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16 * H, generator=g, dtype=torch.float64)
    m = MDCT(H).double()
    whole = m.analyse(torch.nn.functional.pad(x, (H, 0)))      # silence before the first frame
    frames, t = [], 0
    while t < 16:
        for k in split:
            k = min(k, 16 - t)
            if k:
                frames.append(m.analyse_step(x[:, t * H:(t + k) * H]))
                t += k
    assert (torch.cat(frames, dim=2) - whole).abs().max().item() < 1e-12
    out, t = [], 0
    while t < 16:
        for k in split:
            k = min(k, 16 - t)
            if k:
                out.append(m.synthesise_step(whole[:, :, t:t + k]))
                t += k
    # the frames' inverse: the stream from one hop before frame 0's end, the input back (a hop late)
    streamed = torch.cat(out, dim=1)
    assert (streamed[:, H:] - x[:, :15 * H]).abs().max().item() < 1e-6     # (the basis is float32)
    assert streamed[:, :H].abs().max().item() < 1e-6               # (the silence before it)


def mdct_flow(seed: int = 0, source: bool = False) -> FlowVocoder:
    torch.manual_seed(seed)
    m = FlowVocoder(FlowConfig(n_mels=10, hop=H, n_group=H, n_flows=4, n_early_every=2, n_early_size=4, wn_layers=2,
                               wn_channels=8, sample_rate=8000, source_n_fft=2 * H if source else 0, squeeze="mdct",
                               prior_channels=16, source_channels=4, mel_n_fft=4 * H if source else 0))
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():                # a trained-looking flow, not the identity it starts as
        for name, p in m.named_parameters():
            if ".end." in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return m.eval().double()


def source_of(x: torch.Tensor, frames: int) -> torch.Tensor:
    from livewave.source_phase import source_spectrum
    return source_spectrum(x, 2 * H, H)[:, :, :frames]


@pytest.mark.parametrize("source", [False, True])
def test_audio_to_z_to_audio_is_exact(source):
    m = mdct_flow(1, source)
    frames = 12
    mel = torch.randn(2, 10, frames, dtype=torch.float64)
    x = 0.3 * torch.randn(2, (frames + 1) * H, dtype=torch.float64)       # one hop before frame 0's own
    src = source_of(0.3 * torch.randn(2, frames * H, dtype=torch.float64), frames) if source else None
    with torch.no_grad():
        z, _ = m(x, mel, src)
        assert z.shape == (2, H, frames)
        back = m.infer(mel, z=z, source=src)
    # the frames' inverse is final from frame 0's second half on (its first needs a frame before it)
    assert (back[:, H:] - x[:, H:frames * H]).abs().max().item() < 1e-6
    assert m.output_delay == (2 * H if source else H) and m.audio_lead == H


def wild(m: FlowVocoder, scale: float, seed: int) -> FlowVocoder:
    """``m`` with its output layers' weights drawn at ``scale`` (a run gone wrong)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if ".end." in name:
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


@pytest.mark.parametrize("scale", [3.0, 40.0])
def test_the_couplings_log_scales_are_bounded_and_the_standard_deviation_floored(scale):
    """Wild weights (a diverging run's): every coupling's log s stays within COUPLING_BOUND and the
    Gaussian's log s within LOG_S_FLOOR..LOG_S_CEIL and its mean within exp(+-mean_bound) of
    the excitation at the mel's level, so no frame's density spikes (an unbounded run's loss
    jumped to 2.5e32 in one step); at the milder scale, where the bounds already act, the flow
    still inverts within #5's 1e-4 (6e-6: the floor's e^9 magnifies rounding)."""
    from livewave.flow_vocoder import COUPLING_BOUND, LOG_S_CEIL, LOG_S_FLOOR
    m = wild(mdct_flow(3, source=True), scale, 4)
    frames = 6
    mel = torch.randn(1, 10, frames, dtype=torch.float64)
    src = source_of(0.3 * torch.randn(1, frames * H, dtype=torch.float64), frames)
    with torch.no_grad():
        cond, e = m._condition(mel, False, src)
        mu, prior_log_s = m.prior.run(cond, e, False, mel)
        lo, hi = (e.abs() * m.prior.level(mel) * math.exp(k * m.config.mean_bound) for k in (-1, 1))
        assert (mu.abs() <= hi * (1 + 1e-9)).all() and (mu.abs() >= lo * (1 - 1e-9)).all()  # the mel level, +-mean_bound
        assert prior_log_s.min().item() == LOG_S_FLOOR      # the weights ask for less and more: the bounds hold
        assert prior_log_s.max().item() == LOG_S_CEIL
        seen = []
        for wn in m.couplings:
            log_s, _ = wn.run(torch.randn(1, wn.start.in_channels, frames, dtype=torch.float64), cond, False)
            seen.append(log_s.abs().max().item())
        assert COUPLING_BOUND * 0.9 < max(seen) <= COUPLING_BOUND
        if scale < 10:
            x = 0.3 * torch.randn(1, (frames + 1) * H, dtype=torch.float64)
            z, logdet = m(x, mel, src)
            back = m.infer(mel, z=z, source=src)
            assert torch.isfinite(z).all() and torch.isfinite(logdet).all()
            assert (back[:, H:] - x[:, H:frames * H]).abs().max().item() < 1e-4     # (#5's bound; 6e-6 here)


def test_the_log_determinant_is_the_jacobians():
    """Of the flow on the coefficients (the MDCT itself is orthogonal: the test above)."""
    m = mdct_flow(2)
    frames = 3
    mel = torch.randn(1, 10, frames, dtype=torch.float64)
    c = 0.3 * torch.randn(1, H, frames, dtype=torch.float64)
    dummy = torch.zeros(1, (frames + 1) * H, dtype=torch.float64)
    analyse = m.mdct.analyse
    try:
        m.mdct.analyse = lambda _a, cc=c: cc
        with torch.no_grad():
            _, logdet = m(dummy, mel)

        def f(flat):
            m.mdct.analyse = lambda _a: flat.reshape(1, H, frames)
            return m(dummy, mel)[0].reshape(-1)
        jac = torch.autograd.functional.jacobian(f, c.reshape(-1))
    finally:
        m.mdct.analyse = analyse
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-6)


@pytest.mark.parametrize("source", [False, True])
@pytest.mark.parametrize("frames_per_block", [1, 2, 5])
def test_streamed_sampling_equals_offline_for_the_same_noise(source, frames_per_block):
    m = mdct_flow(3, source)
    frames = 15
    mel = torch.randn(1, 10, frames, dtype=torch.float64)
    t = torch.arange(frames * H, dtype=torch.float64)
    src = source_of((0.5 * torch.sin(2 * math.pi * 0.07 * t))[None], frames) if source else None
    with torch.no_grad():
        z = m.noise(mel, 0.6)
        ref = m.infer(mel, z=z, source=src)
        m.reset()
        k = frames_per_block
        out = torch.cat([m.step(mel[:, :, i:i + k], z[:, :, i:i + k], None if src is None else src[:, :, i:i + k])
                         for i in range(0, frames, k)], dim=1)
    assert out.shape == ref.shape == (1, frames * H)
    assert (out - ref).abs().max().item() < 1e-9
    if source:
        with torch.no_grad():
            bare = m.infer(mel, z=z)
        assert (bare - ref).abs().max().item() > 1e-3      # it listens to its source


def test_sigma_sets_the_output_energy():
    m = mdct_flow(4)
    mel = torch.randn(1, 10, 40, dtype=torch.float64)
    base = m.noise(mel, 1.0, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        rms = [m.infer(mel, z=s * base).pow(2).mean().sqrt().item() for s in (0.0, 0.3, 0.6, 1.0)]
    assert rms == sorted(rms) and rms[3] > 1.5 * rms[1], rms


def test_bad_mdct_configs_are_refused():
    with pytest.raises(ValueError, match="n_group = hop"):
        FlowConfig(hop=32, n_group=8, squeeze="mdct").check()
    with pytest.raises(ValueError, match="squeeze 'wavelet'"):
        FlowConfig(hop=32, n_group=8, squeeze="wavelet").check()
    with pytest.raises(ValueError, match="trained with its source"):
        with_source(mdct_flow(5).float(), 2 * H)


def test_the_engine_plays_an_mdct_flow_the_same_at_any_block_size_with_its_latency():
    """Driven by audio in (torch's step: the Numba kernel computes the squeeze into groups only):
    the same at blocks of 17 and 256; a click is loudest in the output at the declared latency."""
    from test_vocoder_instrument import stream_through

    from livewave.vocoder_instrument import FlowVocoderInstrument

    def make():
        torch.manual_seed(6)
        m = FlowVocoder(FlowConfig(n_mels=20, hop=64, n_group=64, n_flows=4, n_early_every=2, n_early_size=8,
                                   wn_layers=2, wn_channels=8, sample_rate=22050, source_n_fft=128, squeeze="mdct",
                                   prior_channels=16, source_channels=4, mel_n_fft=256))
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
        return FlowVocoderInstrument(m, {"n_mels": 20, "hop": 64, "n_fft": 256}, name="tiny-mdct-flow")

    t = np.arange(24000) / 48000
    x = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    v = make()
    a = stream_through(v, x, 17)
    assert type(v.kernel).__name__ == "MDCTFlowKernel"        # the whole step in Numba
    b = stream_through(make(), x, 256)
    assert np.isfinite(a).all() and np.abs(a).max() > 1e-4
    # (float32 through torch's step; this untrained model peaks at 2.2, so 1e-5 of its peak: measured 0.86e-5)
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))
    click = np.zeros(24000, np.float32)
    k = 9000
    click[k:k + 40] = 0.8
    quiet, loud = make(), make()
    diff = np.abs(stream_through(quiet, np.zeros_like(click), 64) - stream_through(loud, click, 64))
    first = int(np.flatnonzero(diff > 1e-7)[0])
    peak = int(np.argmax(diff))
    hop = 64 * 48000 / 22050
    print(f"declared {loud.info.lookahead}; the output changes {first - k} samples after the click, most at "
          f"{peak - k} (hop {hop:.0f})")
    # where the click lands is the declared latency; the answer begins up to three hops before it
    # (measured 522 and 124 against 521): frame t's coefficients span two hops of output, and its
    # mel frame, which heard the click, four hops of input
    assert abs(peak - k - loud.info.lookahead) <= hop
    assert 0 <= first - k and loud.info.lookahead - (first - k) <= 3 * hop


def test_the_source_comes_back_from_its_spectra_and_whitens_in_the_mdcts_frames():
    from livewave.source_excitation import MDCT_SILENT, WHITEN_HALF_WIDTH, SourceSignal, whiten_frames
    from livewave.source_phase import source_spectrum
    x = torch.randn(1, 40 * H, generator=torch.Generator().manual_seed(8))
    sig = SourceSignal(2 * H, H)
    y = sig(source_spectrum(x, 2 * H, H))
    assert sig.delay == H and (y[:, H:] - x[:, :-H]).abs().max().item() < 1e-5
    # a frame whose level falls by 40 dB across it and holds a partial: the smooth envelope is
    # gone, each coefficient's sign and its ratio to its near neighbours kept
    k = 64
    level = 10.0 ** (-2.0 * torch.arange(k) / k)
    c = level * torch.randn(k, generator=torch.Generator().manual_seed(9))
    c[30] = 8.0 * level[30]
    c = torch.stack((c, torch.full((k,), MDCT_SILENT / 2)), dim=1)[None]          # [1, k, 2]
    e = whiten_frames(c)[0]
    assert torch.equal(torch.sign(e[:, 0]), torch.sign(c[0, :, 0]))
    rms = lambda v: float(v.pow(2).mean().sqrt())  # noqa: E731
    assert rms(c[0, :16, 0]) / rms(c[0, -16:, 0]) > 20 and 0.5 < rms(e[:16, 0]) / rms(e[-16:, 0]) < 2
    w = WHITEN_HALF_WIDTH
    for i in [i for i in range(w, k - w - 1) if abs(i - 30) > w + 1]:
        # neighbours share nearly the same envelope (where the partial is not at its edge): their ratio holds
        assert e[i, 0] / e[i + 1, 0] == pytest.approx(float(c[0, i, 0] / c[0, i + 1, 0]), rel=0.35)
    assert e[30, 0] > 2.0                   # the partial stands over its valley
    assert e[:, 1].abs().max().item() == 0.0                            # a silent frame: nothing
    assert whiten_frames(torch.tensor([[[1.0], [0.0], [0.0], [0.0], [0.0], [0.0], [0.0], [0.0], [0.0], [0.0],
                                        [0.0], [2e-3]]]))[0, 11, 0] == pytest.approx(2.0 * 0.8)   # the floor
    assert abs(whiten_frames(torch.tensor([[[1.0], [1e-6]]]))[0, 1, 0]) < 1e-8    # far under it: gone
    # frame by frame, so it streams: frames whitened apart are the frames whitened together
    f = torch.randn(2, H, 7, generator=torch.Generator().manual_seed(10))
    assert torch.equal(torch.cat((whiten_frames(f[:, :, :3]), whiten_frames(f[:, :, 3:])), dim=2), whiten_frames(f))


def test_the_gaussians_mean_takes_its_level_from_the_mel_so_a_new_flow_copies_a_held_tone():
    """With ``mel_n_fft`` the Gaussian's mean is the whitened source given back the mel's level
    (``mdct_envelope``): a flow that has learnt nothing yet (its couplings the identity, its
    correction 0) plays a held tone back in tune, clean and at its level at sigma 0, at the
    trainer's sizes (22.05 kHz, hop 256, 80 mels of a 1024-point FFT). A flow whose gain is its
    network's alone starts at the whitened excitation's level, whatever the tone's."""
    from livewave.held_note import harmonic_tone, peak_cents, spur_db
    from livewave.mel_analysis import analyse
    from livewave.source_phase import source_spectrum

    sr, hop = 22050, 256
    cfg = dict(n_mels=80, hop=hop, n_group=hop, n_flows=2, n_early_every=4, n_early_size=32, wn_layers=1,
               wn_channels=8, sample_rate=sr, source_n_fft=2 * hop, squeeze="mdct", prior_channels=8)
    levels = {}
    for n_fft in (1024, 0):
        m = FlowVocoder(FlowConfig(**cfg, mel_n_fft=n_fft)).eval()
        for f0 in (110.0, 300.0, 1000.0):
            for amp in (1.0, 0.05):
                x = amp * harmonic_tone(f0, sr)
                mel = torch.from_numpy(np.ascontiguousarray(analyse(x, sr, n_fft=1024, hop=hop, n_mels=80).T[None]))
                with torch.no_grad():
                    y = m.infer(mel, z=torch.zeros(m.noise_shape(mel)),
                                source=source_spectrum(torch.from_numpy(x)[None], 2 * hop, hop)[:, :, :mel.shape[2]])
                y = y[0].numpy()[m.output_delay:]
                levels[n_fft, f0, amp] = float(np.sqrt(np.mean(y[sr:] ** 2)) / np.sqrt(np.mean(x[sr:] ** 2)))
                if n_fft:
                    assert abs(peak_cents(y, f0, sr)) < 1.0 and spur_db(y, f0, sr) < -20.0
    for f0 in (110.0, 300.0, 1000.0):
        for amp in (1.0, 0.05):
            assert 0.6 < levels[1024, f0, amp] < 1.6, levels
        assert levels[0, f0, 0.05] > 10 * levels[0, f0, 1.0] * 0.05       # the level not the input's


def test_a_flow_reading_the_mels_level_refuses_another_mel_analysis():
    from livewave.vocoder_instrument import FlowVocoderInstrument
    with pytest.raises(ValueError, match="mel_n_fft .* needs squeeze 'mdct' and a source"):
        FlowConfig(hop=32, n_group=32, squeeze="mdct", mel_n_fft=128).check()
    with pytest.raises(ValueError, match="mel_n_fft must be a whole number >= 0"):
        FlowConfig(hop=32, n_group=32, squeeze="mdct", source_n_fft=64, mel_n_fft=-1).check()
    for bad in (0.0, -1.0, 7.0, "0.5", True):
        with pytest.raises(ValueError, match="mean_bound must be a number in"):
            FlowConfig(hop=32, n_group=32, squeeze="mdct", source_n_fft=64, mel_n_fft=128, mean_bound=bad).check()
    saved = FlowConfig(hop=32, n_group=32, squeeze="mdct", source_n_fft=64, mel_n_fft=128).to_dict()
    assert FlowConfig.from_dict(saved).mean_bound == 0.5
    saved.pop("mean_bound")            # a flow saved before the bound was a field was trained with 3
    assert FlowConfig.from_dict(saved).mean_bound == 3.0
    m = mdct_flow(0, source=True)
    FlowVocoderInstrument(m, {"n_mels": 10, "hop": H, "n_fft": 4 * H})
    for bad in ({"n_fft": 8 * H}, {"n_fft": 4 * H, "log10": True}, {"n_fft": 4 * H, "fmin": 40.0}):
        with pytest.raises(ValueError, match="its Gaussian reads mel frames of n_fft 128"):
            FlowVocoderInstrument(m, {"n_mels": 10, "hop": H, **bad}, name="x")


def test_the_gaussians_own_likelihood_is_the_flows_while_the_couplings_are_the_identity():
    """``prior_negative_log_likelihood`` (the trainer's ``prior_weight`` term) is a Gaussian
    density of the coefficients: for a flow whose couplings have learnt nothing (the identity)
    and whose 1x1 convolutions are rotations, it is the whole flow's NLL; once the couplings
    act, the two differ."""
    m = FlowVocoder(FlowConfig(n_mels=10, hop=H, n_group=H, n_flows=4, n_early_every=2, n_early_size=4, wn_layers=2,
                               wn_channels=8, sample_rate=8000, source_n_fft=2 * H, squeeze="mdct", prior_channels=16,
                               source_channels=4, mel_n_fft=4 * H)).double().eval()
    frames = 12
    g = torch.Generator().manual_seed(4)
    x = 0.3 * torch.randn(2, (frames + 1) * H, generator=g, dtype=torch.float64)
    mel = -2.0 + 0.5 * torch.randn(2, 10, frames, generator=g, dtype=torch.float64)
    src = source_of(x[:, H:], frames)
    with torch.no_grad():
        whole, prior = m.negative_log_likelihood(x, mel, source=src), m.prior_negative_log_likelihood(x, mel, src)
        assert abs(float(whole - prior)) < 1e-6 * abs(float(whole))    # (the 1x1 rotations are float32's)
        trained = wild(m, 1.0, 9)
        assert abs(float(trained.negative_log_likelihood(x, mel, source=src)
                         - trained.prior_negative_log_likelihood(x, mel, src))) > 1e-3
    with pytest.raises(ValueError, match="only a flow whose squeeze is the MDCT"):
        FlowVocoder(FlowConfig(n_mels=10, hop=H, n_group=8)).prior_negative_log_likelihood(x, mel)
