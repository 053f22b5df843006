"""The flow vocoder's CPU kernel (``flow_vocoder_kernel``) computes what ``FlowVocoder.step``
does, at any grouping of frames into calls, and the instrument runs it instead of torch on the
render side, sounding the same (start-up compiling it: tests/test_preload.py)."""
import numpy as np
import pytest
import torch

from livewave.config import EngineConfig
from livewave.engine import Engine
from livewave.flow_vocoder import FlowConfig, FlowVocoder
from livewave.flow_vocoder_kernel import FlowKernel, MDCTFlowKernel
from livewave.generator import Conditioning
from livewave.source_phase import source_spectrum
from livewave.vocoder_instrument import FlowVocoderInstrument

CASES = {
    # a source's excitation, early outputs every 2 steps, 3 dilations
    "source": dict(n_mels=16, hop=64, n_group=8, n_flows=6, n_early_every=2, n_early_size=2, wn_layers=3,
                   wn_channels=16, source_n_fft=128, source_channels=8, sample_rate=16000),
    # the mel alone, wider groups, a kernel of 5, one WaveNet layer
    "mel": dict(n_mels=12, hop=64, n_group=16, n_flows=3, n_early_every=4, n_early_size=2, wn_layers=1,
                wn_channels=12, wn_kernel=5, sample_rate=8000),
    # the shape of the flows trained here (groups of 32, 8 steps, 6-layer WaveNets), narrower
    "trained": dict(n_mels=80, hop=256, n_group=32, n_flows=8, n_early_every=4, n_early_size=8, wn_layers=6,
                    wn_channels=24, source_n_fft=512, source_channels=32),
}


def random_model(name: str) -> FlowVocoder:
    torch.manual_seed(5)
    m = FlowVocoder(FlowConfig(**CASES[name]))
    with torch.no_grad():            # the ends away from zero (a fresh flow is the identity)
        for wn in m.couplings:
            wn.end.weight.normal_(0.0, 0.05)
            wn.end.bias.normal_(0.0, 0.05)
    return m.eval()


def inputs(m: FlowVocoder, frames: int, seed: int = 0):
    """mel ``[T, n_mels]``, noise ``[T, n_group, per]`` at sigma 0.6, source ``[T, bins]`` or None."""
    g = torch.Generator().manual_seed(seed)
    c = m.config
    mel = (torch.randn(frames, c.n_mels, generator=g) - 3.0).numpy()
    z = (0.6 * torch.randn(frames, c.n_group, m.per_frame, generator=g)).numpy()
    src = None
    if m.takes_source:
        t = torch.arange(frames * c.hop) / c.sample_rate
        audio = 0.3 * torch.sin(2 * np.pi * 220 * t) + 0.05 * torch.randn(frames * c.hop, generator=g)
        src = np.ascontiguousarray(source_spectrum(audio[None], c.source_n_fft, c.hop)[0, :, :frames].T.numpy())
    return mel, z, src


def torch_stream(m: FlowVocoder, mel, z, src, per_call: int) -> np.ndarray:
    m.reset()
    out = []
    with torch.inference_mode():
        for i in range(0, mel.shape[0], per_call):
            zz = torch.from_numpy(z[i:i + per_call]).permute(1, 0, 2).reshape(1, m.config.n_group, -1)
            s = None if src is None else torch.from_numpy(src[i:i + per_call].T[None].copy())
            out.append(m.step(torch.from_numpy(mel[i:i + per_call].T[None].copy()), zz, s)[0].numpy())
    return np.concatenate(out)


def kernel_stream(kern: FlowKernel, mel, z, src, sizes) -> np.ndarray:
    out, i = [], 0
    for n in sizes:
        s = None if src is None else src[i:i + n]
        out.append(kern.step(mel[i:i + n], np.ascontiguousarray(z[i:i + n]), s).copy())
        i += n
    return np.concatenate(out)


def close(a: np.ndarray, b: np.ndarray) -> None:
    peak = float(np.abs(a).max())
    assert peak > 1e-2 and a.shape == b.shape
    err = float(np.abs(a - b).max())
    assert err <= 1e-5 * max(1.0, peak), f"kernel against torch: max difference {err:.3g} at a peak of {peak:.3g}"


@pytest.mark.parametrize("name", list(CASES))
def test_the_kernel_computes_what_the_torch_step_does(name):
    """15 frames through torch's step (4 a call) and the kernel (1, 3, 2, 4, 1, 4 a call)."""
    m = random_model(name)
    mel, z, src = inputs(m, 15)
    ref = torch_stream(m, mel, z, src, 4)
    close(ref, kernel_stream(FlowKernel(m, 4), mel, z, src, (1, 3, 2, 4, 1, 4)))
    if m.takes_source:              # the mel alone: a silent excitation
        close(torch_stream(m, mel, z, None, 4), kernel_stream(FlowKernel(m, 4), mel, z, None, (2, 4, 4, 4, 1)))


def test_a_nan_frame_does_not_stick_after_a_reset():
    m = random_model("source")
    mel, z, src = inputs(m, 8)
    bad = mel.copy()
    bad[1, 2] = np.nan
    kern = FlowKernel(m, 4)
    assert not np.isfinite(kern.step(bad[:4], z[:4], src[:4])).all()
    kern.reset()
    assert np.array_equal(kernel_stream(kern, mel, z, src, (4, 4)), kernel_stream(FlowKernel(m, 4), mel, z, src, (4, 4)))


def test_bad_calls_are_clear_errors():
    m = random_model("mel")
    kern = FlowKernel(m, 2)
    mel, z, _ = inputs(m, 3)
    with pytest.raises(ValueError, match="at most 2"):
        kern.step(mel, z)
    with pytest.raises(ValueError, match="noise"):
        kern.step(mel[:2], z[:1])
    with pytest.raises(ValueError, match="no bins"):
        kern.step(mel[:2], z[:2], np.zeros((2, 33), np.complex64))


def instrument(name: str) -> FlowVocoderInstrument:
    c = CASES[name]
    return FlowVocoderInstrument(random_model(name), {"n_fft": 4 * c["hop"], "hop": c["hop"], "n_mels": c["n_mels"]})


def play(gen, monkeypatch, kernels: bool, sigma: float = 0.1) -> np.ndarray:
    """A 220 Hz tone at 48 kHz through the engine from audio in, blocks of 64 (a random flow is
    noise at about sigma's level: kept under the output guard's bound)."""
    monkeypatch.setenv("LIVEWAVE_CPU_KERNELS", "1" if kernels else "0")
    eng = Engine(EngineConfig(sample_rate=48000, max_block=256, input_channels=1), gen).prepare()
    assert (gen.kernel is not None) == kernels
    eng.set_control("sigma", sigma)
    t = np.arange(24000) / 48000
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1.0, t * 8)).astype(np.float32)[:, None]
    out = np.zeros((x.shape[0], 2), np.float32)
    for i in range(0, x.shape[0], 64):
        eng.render(out[i:i + 64], x[i:i + 64])
    assert eng.stats.generator_faults == 0
    return out


@pytest.mark.parametrize("name", ["source", "mel"])
def test_the_instrument_sounds_the_same_with_its_kernel_and_with_torch(name, monkeypatch):
    """The same noise, drawn frame by frame from the instrument's seeded generator either way."""
    a = play(instrument(name), monkeypatch, True)
    b = play(instrument(name), monkeypatch, False)
    peak = float(np.abs(a).max())
    assert peak > 0.01
    err = float(np.abs(a - b).max())
    assert err <= 2e-5 * max(1.0, peak), f"kernel against torch: max difference {err:.3g} at a peak of {peak:.3g}"
    quieter = play(instrument(name), monkeypatch, True, sigma=0.0)      # the control reaches the kernel
    assert not np.allclose(quieter, a)


def test_audio_in_on_cpu_runs_the_kernel_not_torch(monkeypatch):
    v = instrument("source")
    v.prepare(48000, 256, 1, "cpu")
    assert v.kernel is not None

    def boom(*a, **k):
        raise AssertionError("torch's flow step ran on the render side")
    monkeypatch.setattr(FlowVocoder, "step", boom)
    cond = Conditioning(1, 256, len(v.info.controls), 1)
    cond.controls[:] = v.default_controls()
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(24000) / 48000)).astype(np.float32)
    out = np.zeros(x.size, np.float32)
    for i in range(0, x.size, 64):
        cond.frames, cond.audio_in_offset = 64, 0
        cond.audio_in[:64, 0] = x[i:i + 64]
        v.render(cond, out[i:i + 64])
    assert np.isfinite(out).all() and np.abs(out[12000:]).max() > 1e-3


def test_a_flow_played_from_midi_sounds_the_same_with_its_kernel_and_with_torch(monkeypatch):
    """A MIDI-to-mel network sounding through a flow driven by its notes' harmonic reference (the
    host's source spectra, ``synthesize_frames``): a chord struck and one note released."""
    from livewave.midi_to_mel import MidiToMel, MidiToMelConfig
    from livewave.midi_to_mel_instrument import MidiToMelInstrument
    from livewave.vocoder_instrument import tiny_flow_instrument

    def render(kernels: bool) -> np.ndarray:
        monkeypatch.setenv("LIVEWAVE_CPU_KERNELS", "1" if kernels else "0")
        torch.manual_seed(2)
        net = MidiToMel(MidiToMelConfig(sample_rate=8000, n_fft=128, hop=32, n_mels=8, hidden=8, layers=3))
        torch.manual_seed(3)
        voc = tiny_flow_instrument()
        with torch.no_grad():
            for wn in voc.model.couplings:
                wn.end.weight.normal_(0.0, 0.05)
        gen = MidiToMelInstrument(net, voc)
        eng = Engine(EngineConfig(sample_rate=48000, max_block=256), gen).prepare()
        assert (voc.kernel is not None) == kernels
        eng.set_control("sigma", 0.2)
        for i, note in enumerate((60, 64, 67)):
            eng.push_event(100 + 40 * i, 0x90, note, 100)
        eng.push_event(12000, 0x80, 64, 0)
        out = np.zeros((24000, 2), np.float32)
        for i in range(0, out.shape[0], 64):
            eng.render(out[i:i + 64])
        assert eng.stats.generator_faults == 0
        return out
    a, b = render(True), render(False)
    peak = float(np.abs(a).max())
    assert peak > 1e-3
    err = float(np.abs(a - b).max())
    assert err <= 2e-5 * max(1.0, peak), f"kernel against torch: max difference {err:.3g} at a peak of {peak:.3g}"


MDCT = dict(n_mels=16, hop=64, n_group=64, n_flows=6, n_early_every=4, n_early_size=16, wn_layers=3, wn_channels=16,
            source_n_fft=128, source_channels=8, sample_rate=16000, squeeze="mdct", prior_channels=16, mel_n_fft=256)
MDCT_CASES = {
    "source, the mel's envelope": {},                    # the shape of the shipped flow-fluidr3, smaller
    "source, a free gain": {"mel_n_fft": 0},              # GaussianPrior without the envelope: no "alone" head
    "the mel alone": {"source_n_fft": 0, "mel_n_fft": 0},     # no excitation, no envelope
}


def mdct_model(scale: float = 0.3, case: str = "source, the mel's envelope") -> FlowVocoder:
    """A random MDCT flow: its couplings' ends and its Gaussian's away from zero (at 0.3, some
    log s past the couplings' bound, so the kernel's tanh is exercised)."""
    torch.manual_seed(7)
    m = FlowVocoder(FlowConfig(**{**MDCT, **MDCT_CASES[case]}))
    with torch.no_grad():
        for wn in m.couplings:
            wn.end.weight.normal_(0.0, scale)
            wn.end.bias.normal_(0.0, scale)
        m.prior.end.weight.normal_(0.0, 0.05)
        if m.prior.alone is not None:
            m.prior.alone.weight.normal_(0.0, 0.05)
            m.prior.alone.bias.normal_(0.0, 0.5)
    return m.eval()


@pytest.mark.parametrize("case", list(MDCT_CASES))
def test_an_mdct_flows_kernel_computes_what_torch_does(case):
    """15 frames through torch's step (4 a call) and through ``MDCTFlowKernel`` (1, 3, 2, 4, 1, 4
    a call), with a source (the tone goes silent for 3 frames: the Gaussian's silent head) and
    from the mel alone."""
    m = mdct_model(case=case)
    mel, z, src = inputs(m, 15)
    assert max(float(wn.end.bias.detach().abs().max()) for wn in m.couplings) > 0.5
    if src is not None:
        src[6:9] = 0.0
    for s in (src, None) if src is not None else (None,):
        close(torch_stream(m, mel, z, s, 4), kernel_stream(MDCTFlowKernel(m, 4), mel, z, s, (1, 3, 2, 4, 1, 4)))


def test_an_mdct_flows_kernel_refuses_bad_calls_and_recovers_from_nan():
    m = mdct_model()
    kern = MDCTFlowKernel(m, 4)
    mel, z, src = inputs(m, 8)
    with pytest.raises(ValueError, match="at most 4"):
        kern.step(mel[:5], z[:5], src[:5])
    with pytest.raises(ValueError, match="noise"):
        kern.step(mel[:2], z[:1], src[:2])
    with pytest.raises(ValueError, match="taking 65 bins"):
        kern.step(mel[:2], z[:2], np.zeros((2, 33), np.complex64))
    with pytest.raises(ValueError, match="MDCTFlowKernel"):
        FlowKernel(m, 2)
    with pytest.raises(ValueError, match="FlowKernel"):
        MDCTFlowKernel(random_model("source"), 2)
    bad = mel.copy()
    bad[1, 2] = np.nan
    assert not np.isfinite(kern.step(bad[:4], z[:4], src[:4])).all()
    kern.reset()
    assert np.array_equal(kernel_stream(kern, mel, z, src, (4, 4)), kernel_stream(MDCTFlowKernel(m, 4), mel, z, src, (4, 4)))


def test_an_mdct_flow_instrument_runs_its_kernel_and_sounds_as_torch(monkeypatch):
    """From audio in through the engine: the same stream with the kernel and with torch alone."""
    def inst():
        return FlowVocoderInstrument(mdct_model(0.05), {"n_fft": 256, "hop": 64, "n_mels": 16})
    with_kernel = inst()
    a = play(with_kernel, monkeypatch, True)
    assert isinstance(with_kernel.kernel, MDCTFlowKernel)
    b = play(inst(), monkeypatch, False)
    peak = float(np.abs(a).max())
    assert peak > 0.01
    err = float(np.abs(a - b).max())
    # two float32 paths: against the same model in float64 on this tone's frames (16 kHz, peak
    # 0.88), the kernel was 0.84e-5 off and torch's float32 step 1.27e-5; here they differ by 2.5e-5
    assert err <= 4e-5 * max(1.0, peak), f"kernel against torch: max difference {err:.3g} at a peak of {peak:.3g}"
    assert not np.allclose(play(inst(), monkeypatch, True, sigma=0.0), a)      # the control reaches it
