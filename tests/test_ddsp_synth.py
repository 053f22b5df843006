"""The torch twin (ddsp_synth) against the Numba core (harmonic_noise) it must equal, sample for sample."""
import numpy as np
import pytest
import torch

from livewave.ddsp_synth import filtered_noise, harmonic_bank, harmonic_mask, synthesize
from livewave.generator import RESTART_FRESH, RESTART_NONE, Conditioning
from livewave.harmonic_noise import HarmonicNoiseCore, band_kernels, white_frames

H, NB, VOICES = 64, 16, 2
TOL = 1e-4
CALL_SIZES = (1, 17, 333, 64, 1000, 65, 7, 4097, 129, 250)   # odd sizes, none aligned to the hop


def drive_core(sr, seconds=1.0, seed=1, explicit_env=False, **core_kw):
    """Render ``VOICES`` fresh voices from sample 0 through ``HarmonicNoiseCore.render`` in calls
    of odd sizes, each call with a new f0 target (the core glides). Returns the core, its output
    and what the twin needs: per-sample glided f0, per-frame targets, the voices' white noise."""
    core = HarmonicNoiseCore(sr, VOICES, n_harmonics=H, n_bands=NB, **core_kw)
    hop = core.hop
    frames = int(np.ceil(seconds * sr / hop))
    n = frames * hop
    rng = np.random.default_rng(seed)
    # The call schedule, and the core's per-sample f0 glide replayed with its own formula.
    schedule, f0 = [], np.zeros((VOICES, n))
    pos, i, fc = 0, 0, None
    while pos < n:
        m = min(CALL_SIZES[i % len(CALL_SIZES)], n - pos)
        target = rng.uniform(70.0, 1000.0, VOICES)
        fc = target.copy() if fc is None else fc
        for v in range(VOICES):
            x, ft, coef = fc[v], target[v], core.f0_coef
            for s in range(m):
                x += (ft - x) * coef
                f0[v, pos + s] = x
            fc[v] = x
        schedule.append((pos, m, target))
        pos += m
        i += 1
    amp = rng.uniform(0.0, 0.02, (VOICES, frames, H))
    amp *= harmonic_mask(torch.from_numpy(f0[:, ::hop]), H, 0.5 * sr).numpy()   # some top harmonics silent
    mags = rng.uniform(0.0, 0.3, (VOICES, frames, NB))
    calls = []

    def targets(t, mask):
        calls.append(t)
        j = t // hop
        core.new_amp[mask] = amp[mask, j]
        core.new_mags[mask] = mags[mask, j]

    cond = Conditioning(VOICES, max(CALL_SIZES), 0)
    cond.active[:] = True
    cond.onset_time[:] = 0
    cond.env[:] = 0.0 if explicit_env else 1.0
    ones = np.ones((VOICES, max(CALL_SIZES)))
    out = np.zeros(n)
    for pos, m, target in schedule:
        cond.sample_time, cond.frames = pos, m
        cond.restart[:] = RESTART_FRESH if pos == 0 else RESTART_NONE
        cond.f0[:] = target
        core.render(cond, out[pos:pos + m], targets, env=ones if explicit_env else None)
    assert calls == [j * hop for j in range(frames)], "targets must run once per frame start"
    white = np.stack([white_frames(core.noise_seed(0, v), frames, hop) for v in range(VOICES)])
    return core, out, dict(f0=f0, amp=amp, mags=mags, white=white)


def twin(core, f0, amp, mags, white):
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
         dict(f0=f0, amp=amp, mags=mags, white=white).items()}
    y = synthesize(t["f0"], t["amp"], t["mags"], t["white"], torch.from_numpy(core.kernels),
                   core.sample_rate, core.hop)
    return y.sum(0).numpy()


@pytest.mark.parametrize("sr, kw", [
    (16000, {"explicit_env": True}),
    (48000, {"noise_top_hz": 8000.0, "noise_kernel_seconds": 0.002}),
])
def test_twin_equals_numba_core(sr, kw):
    core, out, d = drive_core(sr, **kw)
    assert out.shape[0] >= sr and np.abs(out).max() > 0.05
    y = twin(core, **d)
    err = np.abs(y - out).max()
    assert err <= TOL, f"{sr} Hz: twin differs from the core by {err:.3g}"
    # The comparison can fail: each of these slips is caught with a wide margin.
    prev_frame = np.concatenate([d["amp"][:, :1], d["amp"][:, :-1]], axis=1)
    late_phase = np.concatenate([np.zeros((VOICES, 1)), d["f0"][:, :-1]], axis=1)   # advanced after use
    next_noise = np.concatenate([d["white"][:, 1:], d["white"][:, :1]], axis=1)
    for name, slip in (("amp one frame late", {"amp": prev_frame}), ("phase advanced after use", {"f0": late_phase}),
                       ("noise one frame off", {"white": next_noise})):
        assert np.abs(twin(core, **{**d, **slip}) - out).max() > 30 * TOL, name


def test_core_taps_and_kernel_options():
    assert HarmonicNoiseCore(48000, 1).kernels.shape == (16, 65)                   # default rule
    assert HarmonicNoiseCore(48000, 1, noise_kernel_seconds=0.002).kernels.shape[1] == 97
    assert HarmonicNoiseCore(16000, 1, noise_kernel_seconds=1.0).kernels.shape[1] == 65   # hop + 1
    assert HarmonicNoiseCore(16000, 1, noise_kernel_seconds=1e-5).kernels.shape[1] == 3
    np.testing.assert_array_equal(band_kernels(48000, 16, 65), band_kernels(48000, 16, 65, top_hz=24000.0))


def test_white_frames_continue_the_stream():
    a = white_frames(12345, 6, 10)
    b = white_frames(12345, 2, 30)
    np.testing.assert_array_equal(a.ravel(), b.ravel())
    assert a.min() >= -1.0 and a.max() < 1.0 and abs(a.mean()) < 0.3


def _band_power(k, sr, n=1 << 14):
    p = np.abs(np.fft.rfft(k, n)) ** 2
    return np.fft.rfftfreq(n, 1.0 / sr), p


@pytest.mark.parametrize("sr", [16000, 48000])
def test_top_hz_bands_land_in_hz(sr):
    top, nb = 8000.0, 4
    taps = int(0.008 * sr) + 1                          # same duration at both rates
    kernels = band_kernels(sr, nb, taps, top_hz=top)
    width = top / nb
    for b in range(nb):
        f, p = _band_power(kernels[b], sr)
        lo, hi = b * width, min((b + 1) * width, sr / 2)
        inside = p[(f >= lo - 300) & (f <= hi + 300)].sum() / p.sum()
        centroid = (f * p).sum() / p.sum()
        assert inside > 0.97, (sr, b, inside)
        assert lo < centroid < hi, (sr, b, centroid)
    f, p = _band_power(kernels.sum(0), sr)
    assert p[f > top + 500].sum() < 1e-3 * p.sum()      # nothing above top_hz (48 kHz: 16 k of room)


def test_top_hz_means_the_same_hz_at_any_rate():
    resp = {}
    for sr in (16000, 48000):
        kernels = band_kernels(sr, 8, int(0.008 * sr) + 1, top_hz=7000.0)
        resp[sr] = np.abs(np.fft.rfft(kernels, sr, axis=1))[:, :7500]   # 1 Hz bins up to 7.5 kHz
    assert np.abs(resp[16000] - resp[48000]).max() < 0.02


def test_bands_above_nyquist_are_zero():
    k = band_kernels(16000, 4, 65, top_hz=24000.0)      # edges 0, 6k, 12k, 18k, 24k
    assert np.abs(k[0]).max() > 0.1 and np.abs(k[1]).max() > 0.01
    assert not k[2].any() and not k[3].any()


def _reference(f0, amp, mags, white, kernels, sr, hop):
    """The twin's semantics written out loop by loop (numpy, float64), for shapes the core
    never uses (taps > hop + 1: tails spill over several frames)."""
    b, frames, h = amp.shape
    n = frames * hop
    y = np.zeros((b, n + 4 * kernels.shape[1]))
    for i in range(b):
        ph = 0.0
        for s in range(n):
            j, w = divmod(s, hop)
            ph = (ph + f0[i, s] / sr) % 1.0
            a = amp[i, max(j - 1, 0)] + (amp[i, j] - amp[i, max(j - 1, 0)]) * (w / hop)
            y[i, s] += (a * np.sin(2 * np.pi * np.arange(1, h + 1) * ph)).sum()
        for j in range(frames):
            c = np.convolve(white[i, j], mags[i, j] @ kernels)
            y[i, j * hop:j * hop + len(c)] += c
    return y[:, :n]


def test_twin_matches_its_definition_with_long_tails():
    g = np.random.default_rng(3)
    b, frames, hop, h, nb, taps, sr = 2, 5, 4, 8, 3, 11, 1000
    f0 = g.uniform(10, 120, (b, frames * hop))
    amp, mags = g.uniform(0, 1, (b, frames, h)), g.uniform(0, 1, (b, frames, nb))
    white, kernels = g.uniform(-1, 1, (b, frames, hop)), g.normal(size=(nb, taps))
    ref = _reference(f0, amp, mags, white, kernels, sr, hop)
    t = [torch.from_numpy(a) for a in (f0, amp, mags, white, kernels)]
    got = synthesize(*t, sr, hop).numpy()
    assert np.abs(got - ref).max() < 1e-10


def test_gradients():
    g = torch.Generator().manual_seed(0)
    b, frames, hop, h, nb, taps, sr = 2, 3, 4, 4, 2, 7, 100
    f0 = (5 + 20 * torch.rand(b, frames * hop, generator=g, dtype=torch.float64)).requires_grad_()
    amp = torch.rand(b, frames, h, generator=g, dtype=torch.float64, requires_grad=True)
    mags = torch.rand(b, frames, nb, generator=g, dtype=torch.float64, requires_grad=True)
    white = torch.rand(b, frames, hop, generator=g, dtype=torch.float64) * 2 - 1
    kernels = torch.randn(nb, taps, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f, a, m: synthesize(f, a, m, white, kernels, sr, hop),
                                    (f0, amp, mags))


def test_float32_training_shapes_and_mask():
    b, frames, hop, sr = 3, 40, 64, 16000
    f0_frames = torch.tensor([[100.0], [3000.0], [7999.0]]).expand(b, frames)
    mask = harmonic_mask(f0_frames, 8, sr / 2)
    assert mask.shape == (b, frames, 8) and mask.dtype == torch.float32
    assert mask[0].all() and mask[1, :, :2].all() and not mask[1, :, 2:].any() and mask[2, :, 0].all()
    assert not mask[2, :, 1:].any()
    amp = torch.rand(b, frames, 8) * mask
    mags = torch.rand(b, frames, 4, requires_grad=True)
    f0 = f0_frames.repeat_interleave(hop, dim=1)
    amp.requires_grad_()
    y = synthesize(f0, amp, mags, torch.rand(b, frames, hop) * 2 - 1,
                   torch.from_numpy(band_kernels(sr, 4, 65)).float(), sr, hop)
    assert y.shape == (b, frames * hop) and y.dtype == torch.float32
    y.square().mean().backward()
    assert torch.isfinite(amp.grad).all() and amp.grad.abs().sum() > 0 and mags.grad.abs().sum() > 0
    h32 = harmonic_bank(f0, amp.detach(), sr, hop)
    h64 = harmonic_bank(f0.double(), amp.detach().double(), sr, hop)
    assert (h32.double() - h64).abs().max() < 1e-4      # float32 phase wrapped: no drift over 2.5 k samples
    n = filtered_noise(mags.detach(), torch.zeros(b, frames, hop), band_kernels(sr, 4, 65), hop)
    assert not n.any()


def test_noise_frames_are_the_filtered_white_noise_with_overlap_add():
    """``noise_frames`` against numpy: each voice's frames are its white noise convolved with the
    FIR its band magnitudes make, the convolution's tail carried into the next frames; voices
    outside the mask are untouched."""
    from livewave.harmonic_noise import noise_frames
    rng = np.random.default_rng(3)
    hop, voices, frames = 192, 3, 5
    kernels = band_kernels(48000, 8, 195)                   # longer than a hop: the tail spans frames
    taps = kernels.shape[1]
    state = np.array([11, 12, 13], np.uint64)
    white = white_frames(state[1], frames, hop)             # what voice 1 will draw
    mags = rng.random((frames, voices, 8))
    fir = np.zeros(taps)
    conv = np.zeros(hop + taps - 1)
    tail = np.zeros((voices, taps - 1))
    nbuf = np.zeros((voices, hop))
    mask = np.array([False, True, False])
    want = np.zeros(frames * hop + taps - 1)
    got = []
    for f in range(frames):
        noise_frames(mask, mags[f], kernels, state, np.zeros(hop), fir, conv, tail, nbuf, hop)
        got.append(nbuf[1].copy())
        want[f * hop:f * hop + hop + taps - 1] += np.convolve(white[f], mags[f, 1] @ kernels)
    np.testing.assert_allclose(np.concatenate(got), want[:frames * hop], rtol=0, atol=1e-12)
    assert not nbuf[0].any() and not nbuf[2].any() and state[0] == 11 and state[2] == 13
