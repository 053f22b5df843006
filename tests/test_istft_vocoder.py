"""The causal iSTFT GAN vocoder: streamed equals offline at any split, the engine family plays
it block-size independently and declares its hop of delay, and it trains (aligned one hop
behind its input) and resumes exactly."""
import numpy as np
import pytest
import torch
from test_vocoder_instrument import stream_through

from livewave.checkpoint import load_generator, read_checkpoint, save_checkpoint
from livewave.istft_vocoder import ISTFTConfig, ISTFTVocoder, integrated_from_absolute, source_advances
from livewave.vocoder_instrument import ISTFTVocoderInstrument


def tiny(n_fft=128, seed=0, phase="integrated"):
    torch.manual_seed(seed)
    return ISTFTVocoder(ISTFTConfig(n_mels=20, hop=64, n_fft=n_fft, channels=16, blocks=3, phase=phase)).eval()


@pytest.mark.parametrize("phase", ["integrated", "absolute"])
@pytest.mark.parametrize("n_fft", [128, 256])
def test_streaming_equals_offline_at_any_split(n_fft, phase):
    m = tiny(n_fft, phase=phase)
    with torch.no_grad():           # large advances: the running sum wraps many times
        m.head.bias[-(n_fft // 2 + 1):] += 40.0
    mel = torch.randn(2, 20, 61)
    with torch.no_grad():
        off = m(mel)
        assert off.shape == (2, 1, 61 * 64)
        for split in ([1] * 61, [5, 1, 17, 38], [61], [2, 0, 59]):
            m.reset()
            parts, i = [], 0
            for s in split:
                parts.append(m.step(mel[:, :, i:i + s]))
                i += s
            assert (torch.cat(parts, 2) - off).abs().max() < 1e-5


def _steady_tone_model(phase: str, f: float, sr: int = 22050) -> ISTFTVocoder:
    """A model whose every frame, whatever the mel, is the spectrum of a frame of a sinusoid at
    ``f``, with the phase advance of that sinusoid (the integrated head; an absolute head has
    no advance)."""
    c = ISTFTConfig(n_mels=20, hop=256, n_fft=512, channels=16, blocks=1, sample_rate=sr, phase=phase)
    m = ISTFTVocoder(c).eval()
    k = c.n_fft // 2 + 1
    spec = np.fft.rfft(0.3 * np.cos(2 * np.pi * f * np.arange(c.n_fft) / sr))
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias[:k] = torch.from_numpy(np.log(np.abs(spec) + 1e-9))
        m.head.bias[k:2 * k] = torch.from_numpy(np.angle(spec))
        if phase == "integrated":
            m.head.bias[2 * k:] = 2 * np.pi * f * c.hop / sr
    return m


def _peak_hz(y: np.ndarray, sr: int) -> float:
    seg = y[y.size // 4:].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    return float(np.fft.rfftfreq(seg.size, 1 / sr)[int(np.argmax(spec))])


@pytest.mark.parametrize("f", [440.0, 300.0, 1000.0])
def test_only_an_integrated_phase_can_hold_a_note_between_multiples_of_the_frame_rate(f):
    """A steady mel gives the same frame every hop. With the phase taken from the head alone
    (the first models), identical frames overlap-add to a signal of period ``hop``: its partials
    are multiples of sr / hop (86.1 Hz), so 440 Hz comes out at 430.7 Hz. With the advances
    integrated, the same frames play the tone in tune."""
    sr, mel = 22050, torch.zeros(1, 20, 200)
    with torch.no_grad():
        good = _steady_tone_model("integrated", f)(mel)[0, 0].numpy()
        bad = _steady_tone_model("absolute", f)(mel)[0, 0].numpy()
    frame_rate = sr / 256
    cents = lambda hz: abs(1200 * np.log2(hz / f))      # noqa: E731
    assert cents(_peak_hz(good, sr)) < 4.0
    assert abs(_peak_hz(bad, sr) / frame_rate - round(_peak_hz(bad, sr) / frame_rate)) < 0.02
    assert cents(_peak_hz(bad, sr)) > 30.0          # 440 Hz: 430.7 Hz, 37 cents flat


def test_the_advance_error_is_zero_for_the_right_advances_and_large_for_frozen_phases():
    """``advance_error`` against the audio a steady tone's mel came from: the integrated model
    that plays it in tune scores about 0; the absolute one (the same frame every hop) is far off;
    the measure is blind to the tone's starting phase."""
    sr, f, hop = 22050, 440.0, 256
    t = np.arange(40 * hop) / sr
    mel = torch.zeros(1, 20, 40)
    for start in (0.0, 1.3):
        audio = torch.from_numpy((0.3 * np.cos(2 * np.pi * f * t + start)).astype(np.float32))[None]
        with torch.no_grad():
            good = _steady_tone_model("integrated", f)
            bad = _steady_tone_model("absolute", f)
            e_good = float(good.advance_error(good.spectrum(mel)[1], audio))
            e_bad = float(bad.advance_error(bad.spectrum(mel)[1], audio))
        assert e_good < 1e-3 and e_bad > 0.1, (e_good, e_bad)


def test_source_advances_are_a_steady_partials_turn_per_hop_and_hear_nothing_later():
    c = ISTFTConfig()
    sr, f = 22050, 440.0
    t = np.arange(40 * c.hop) / sr
    audio = torch.from_numpy((0.3 * np.cos(2 * np.pi * f * t)).astype(np.float32))[None]
    adv = source_advances(audio, c)
    assert adv.shape == (1, c.n_fft // 2 + 1, 40)
    k = round(f * c.n_fft / sr)
    want = np.angle(np.exp(2j * np.pi * f * c.hop / sr))
    assert np.allclose(adv[0, k - 1:k + 2, 3:].numpy(), want, atol=1e-3)
    later = audio.clone()
    later[:, 21 * c.hop:] = 0.0                       # mel frame 20 ends at sample 21 * hop
    assert torch.equal(source_advances(later, c)[:, :, :21], adv[:, :, :21])
    assert not torch.equal(source_advances(later, c)[:, :, 21], adv[:, :, 21])
    # the model sums what it is given instead of its own; an absolute model takes none
    m = tiny()
    mel = torch.randn(1, 20, 12)
    given = torch.full((1, 65, 12), 0.5)
    with torch.no_grad():
        assert not torch.equal(m.spectrum(mel)[1], m.spectrum(mel, advance=given)[1])
        with pytest.raises(ValueError, match="absolute"):
            tiny(phase="absolute").spectrum(mel, advance=given)


def test_an_absolute_model_converts_to_an_integrated_one_that_renders_the_same():
    old = tiny(phase="absolute")
    new = integrated_from_absolute(old).eval()
    assert new.config.phase == "integrated"
    mel = torch.randn(1, 20, 40)
    with torch.no_grad():
        assert (new(mel) - old(mel)).abs().max() < 1e-6
    with pytest.raises(ValueError, match="already"):
        integrated_from_absolute(new)


def test_a_checkpoint_written_before_the_phase_option_loads_as_absolute(tmp_path):
    v = ISTFTVocoderInstrument(tiny(phase="absolute"), {"n_mels": 20, "hop": 64}, name="old")
    config, tensors = v.checkpoint_parts()
    config = {**config, "istft": {k: x for k, x in config["istft"].items() if k != "phase"}}
    path = save_checkpoint(tmp_path / "old.safetensors", "istft", config, {"instrument": "old"}, tensors)
    assert load_generator(path).model.config.phase == "absolute"
    with pytest.raises(ValueError, match="phase"):
        ISTFTConfig(phase="random").check()


def test_a_frame_only_reaches_the_samples_after_its_start():
    """Causal: changing frame t changes nothing before sample t * hop."""
    m = tiny()
    mel = torch.randn(1, 20, 30)
    other = mel.clone()
    other[:, :, 12:] += 1.0
    with torch.no_grad():
        a, b = m(mel)[0, 0], m(other)[0, 0]
    assert (a[:12 * 64] == b[:12 * 64]).all() and (a[12 * 64:] != b[12 * 64:]).any()


@pytest.mark.parametrize("phase,tolerance", [("source", 1e-6), ("integrated", 1e-3)])
def test_the_family_plays_block_size_independently_and_declares_its_hop_of_delay(tmp_path, phase, tolerance):
    """Blocks of 17 and of 256 (one model frame a call or two, as the resampler gives them
    evenly). The source phase runs the CPU kernel, frame by frame: the same samples. The
    integrated phase runs torch's step, whose sums over one frame or two round differently, and
    each frame's phase is the sum of all advances before it, so its rounding accumulates
    (measured 3e-4 of the peak after 0.5 s): held to 1e-3 of the peak."""
    v = ISTFTVocoderInstrument(tiny(phase=phase), {"n_mels": 20, "hop": 64}, name="tiny-istft")
    config, tensors = v.checkpoint_parts()
    path = save_checkpoint(tmp_path / "i.safetensors", "istft", config, {"instrument": "tiny"}, tensors)
    t = np.arange(24000) / 48000
    x = (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    a = stream_through(load_generator(path), x, 17)
    g = load_generator(path)
    b = stream_through(g, x, 256)
    assert (g.kernel is not None) == (phase == "source")
    peak = float(np.abs(a).max())
    assert np.isfinite(a).all() and peak > 1e-5
    assert np.abs(a - b).max() <= tolerance * max(1.0, peak)
    assert g.info.family == "istft" and g.info.lookahead == g.line.delay + round(64 * 48000 / 22050)


def two_tones(folder, sr: int = 22050) -> None:
    """Training data: 3 s sines at 220 and 330 Hz, as two files."""
    import soundfile as sf
    t = np.arange(3 * sr) / sr
    for i, f in enumerate((220.0, 330.0)):
        sf.write(str(folder / f"a{i}.wav"), (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)


def test_training_aligns_the_output_a_hop_late_and_resumes_exactly(tmp_path):
    from livewave.vocoder_training import VocoderTrainConfig, train_vocoder
    two_tones(tmp_path)
    cfg = dict(family="istft", batch=2, crop_frames=8, device="cpu", n_mels=20, istft_hop=64, istft_n_fft=128,
               istft_channels=16, istft_blocks=2, gan_start=2, checkpoint_every=2, learning_rate=1e-3, ema=0.9)
    train_vocoder(tmp_path, tmp_path / "a.safetensors", VocoderTrainConfig(steps=4, **cfg), progress=False)
    train_vocoder(tmp_path, tmp_path / "b.safetensors", VocoderTrainConfig(steps=2, **cfg), progress=False)
    train_vocoder(tmp_path, tmp_path / "b.safetensors", VocoderTrainConfig(steps=4, **cfg), progress=False)
    meta, ta = read_checkpoint(tmp_path / "a.safetensors")
    _, tb = read_checkpoint(tmp_path / "b.safetensors")
    assert meta["family"] == "istft" and meta["card"]["training"]["steps"] == 4
    assert all(np.array_equal(ta[k], tb[k]) for k in ta)          # the exported average resumes exactly too
    assert load_generator(tmp_path / "a.safetensors").content_delay == 64
    st = torch.load(tmp_path / "a.safetensors.train.pt", weights_only=True)
    assert meta["card"]["training"]["ema"] == 0.9
    assert all(np.allclose(ta[k], st["ema"][k].numpy()) for k in st["ema"])
    assert any(not np.allclose(ta[k], st["generator"][k].numpy()) for k in st["ema"])   # not the last step's


def test_a_hifigan_trained_here_learns_causal_frames_and_streams_with_its_lookahead_only(tmp_path):
    """``train hifigan``: the reference generator (V3 layout, narrowed) trained on livewave's
    causal frames; its checkpoint says so, so the engine adds its lookahead but not the
    centring delay of an imported one."""
    import soundfile as sf

    from livewave.vocoder_instrument import HiFiGANVocoder
    from livewave.vocoder_training import VocoderTrainConfig, train_vocoder
    sr = 22050
    t = np.arange(2 * sr) / sr
    sf.write(str(tmp_path / "a.wav"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    cfg = VocoderTrainConfig(family="hifigan", hifigan_version="v3", hifigan_channels=16, batch=1, crop_frames=8,
                             steps=2, gan_start=1, device="cpu", mel_weight=1.0, checkpoint_every=2)
    train_vocoder(tmp_path, tmp_path / "h.safetensors", cfg, progress=False)
    meta, _ = read_checkpoint(tmp_path / "h.safetensors")
    assert meta["family"] == "hifigan" and meta["config"]["frames"] == "causal"
    g = load_generator(tmp_path / "h.safetensors")
    assert isinstance(g, HiFiGANVocoder) and g.content_delay == 0 and g.lag_frames > 0
    x = (0.4 * np.sin(2 * np.pi * 330 * np.arange(12000) / 48000)).astype(np.float32)
    a = stream_through(g, x, 64)
    assert np.isfinite(a).all() and g.info.lookahead == g.line.delay


def test_torchrun_trains_a_vocoder_data_parallel(tmp_path):
    """Two ranks (gloo on CPU) through torchrun: rank 0 writes, the card counts the processes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import soundfile as sf
    sr = 22050
    t = np.arange(2 * sr) / sr
    sf.write(str(tmp_path / "a.wav"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "livewave", "train", "istft",
                        "--data", str(tmp_path), "--out", str(tmp_path / "i.safetensors"), "--steps", "2",
                        "--batch", "1", "--crop-frames", "8", "--channels", "16", "--blocks", "2", "--gan-start", "1",
                        "--device", "cpu", "-q"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    card = read_checkpoint(tmp_path / "i.safetensors")[0]["card"]
    assert card["training"]["processes"] == 2 and card["training"]["steps"] == 2
