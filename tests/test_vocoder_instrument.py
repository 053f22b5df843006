"""The MelGAN family driven by audio in: the output does not depend on the block size, and
the declared lookahead is the delay line's."""

import numpy as np
import pytest
import torch
from shipped import shipped

from livewave.generator import Conditioning
from livewave.melgan import MelGANConfig, MelGANGenerator
from livewave.vocoder_instrument import MelGANVocoder


def take(block: int, x: np.ndarray) -> np.ndarray:
    torch.manual_seed(0)
    g = MelGANGenerator(MelGANConfig(n_mels=20, ngf=4, ratios=(4, 4, 2, 2), sample_rate=22050))
    v = MelGANVocoder(g, {"n_mels": 20, "hop": 64})
    out = stream_through(v, x, block)
    assert v.line.underflows == 0 and v.info.lookahead == v.line.delay > 0
    return out


def stream_through(v, x: np.ndarray, block: int, controls=None) -> np.ndarray:
    """``x`` through an audio-driven generator at 48 kHz, ``block`` samples per call."""
    v.prepare(48000, 512, 1)
    cond = Conditioning(1, 512, len(v.info.controls), 1)
    cond.controls[:] = v.default_controls() if controls is None else controls
    out = np.zeros(x.size, np.float32)
    for i in range(0, x.size, block):
        n = min(block, x.size - i)
        cond.frames, cond.audio_in_offset = n, 0
        cond.audio_in[:n, 0] = x[i:i + n]
        v.render(cond, out[i:i + n])
    return out


def test_the_output_does_not_depend_on_the_block_size():
    t = np.arange(48000) / 48000
    x = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    x[1000] = np.nan                                     # bad input: silence there, not a crash
    a, b = take(17, x), take(256, x)
    assert np.isfinite(a).all() and np.abs(a).max() > 1e-4
    assert np.allclose(a, b, atol=1e-6)


# -- the vocoder as an engine family: checkpoint, load, resynth ---------------------------------
def tiny_vocoder_checkpoint(path, **cfg):
    from livewave.checkpoint import save_checkpoint
    torch.manual_seed(1)
    g = MelGANGenerator(MelGANConfig(n_mels=20, ngf=4, ratios=(4, 4, 2, 2), sample_rate=22050, **cfg))
    v = MelGANVocoder(g, {"n_mels": 20, "hop": 64}, name="tiny")
    config, tensors = v.checkpoint_parts()
    save_checkpoint(path, "melgan", config, {"note": "random weights (test)"}, tensors)
    return path


def test_a_vocoder_checkpoint_loads_as_an_engine_family(tmp_path):
    from livewave.checkpoint import load_generator
    from livewave.config import EngineConfig
    from livewave.engine import Engine
    gen = load_generator(tiny_vocoder_checkpoint(tmp_path / "v.safetensors"))
    assert isinstance(gen, MelGANVocoder) and gen.info.conditioning == "audio"
    eng = Engine(EngineConfig(sample_rate=48000, max_block=1024, input_channels=1), gen).prepare()
    assert eng.latency_samples == eng.post.latency + gen.info.lookahead
    x = np.zeros((256, 1), np.float32)
    x[:, 0] = 0.3 * np.sin(np.arange(256) * 0.1)
    out = np.zeros((256, 2), np.float32)
    for _ in range(40):
        eng.render(out, x)
    assert np.isfinite(out).all() and np.abs(out).max() > 1e-5


def test_a_checkpoint_whose_weights_do_not_match_its_config_is_refused(tmp_path):
    import json

    from safetensors.numpy import load_file, save_file

    from livewave.checkpoint import CheckpointError, load_generator
    p = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    from safetensors import safe_open
    with safe_open(str(p), "np") as f:
        meta = f.metadata()
    cfg = json.loads(meta["config"])
    cfg["melgan"]["ngf"] = 8                         # the weights are ngf=4
    meta["config"] = json.dumps(cfg)
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(p)), str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match="do not match the config"):
        load_generator(bad)
    cfg["melgan"]["ngf"] = 4
    cfg["mel"]["n_mels"] = 80                        # mel bands the generator does not take
    meta["config"] = json.dumps(cfg)
    save_file(load_file(str(p)), str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match="mel bands 80"):
        load_generator(bad)


def _resynth(tmp_path, model, inp, *extra):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "livewave", "resynth", str(inp), "-o", str(tmp_path / "out.wav"),
                           "--model", str(model), "-q", *extra], capture_output=True, text=True, timeout=300)


def test_resynth_any_rate_and_channels_same_at_any_block(tmp_path):
    import soundfile as sf
    model = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    t = np.arange(44100) / 44100
    x = np.stack([0.5 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 440 * t)], 1).astype(np.float32)
    x[500, 0] = np.nan
    sf.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")          # stereo, 44.1 kHz, a NaN
    outs = []
    for block in ("17", "512"):
        r = _resynth(tmp_path, model, tmp_path / "in.wav", "--block", block)
        assert r.returncode == 0, r.stderr
        assert "NaN or Inf" in r.stderr and "latency compensated" in r.stdout
        y, sr = sf.read(tmp_path / "out.wav", dtype="float32")
        assert sr == 22050 and abs(y.shape[0] - 22050) <= 1          # the model's rate, the input's length
        outs.append(y)
    assert np.isfinite(outs[0]).all() and np.abs(outs[0]).max() > 1e-4
    assert np.abs(outs[0] - outs[1]).max() <= 1e-5        # frames batched differently: float rounding only
    r = _resynth(tmp_path, model, tmp_path / "in.wav", "--rate", "48000")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "out.wav").samplerate == 48000


def test_resynth_bad_input_gets_one_clear_line(tmp_path):
    model = tiny_vocoder_checkpoint(tmp_path / "v.safetensors")
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00junk" * 10)
    r = _resynth(tmp_path, model, tmp_path / "junk.wav")
    assert r.returncode == 2 and "not an audio file" in r.stderr, r.stderr
    ddsp = shipped("ddsp")[0]
    import soundfile as sf
    sf.write(tmp_path / "in.wav", np.zeros(1000, np.float32), 16000)
    r = _resynth(tmp_path, ddsp, tmp_path / "in.wav")
    assert r.returncode == 2 and "needs a model driven by audio" in r.stderr, r.stderr


# -- the flow vocoder as an engine family --------------------------------------------------------
def tiny_flow():
    from livewave.flow_vocoder import FlowConfig, FlowVocoder
    from livewave.vocoder_instrument import FlowVocoderInstrument
    torch.manual_seed(2)
    m = FlowVocoder(FlowConfig(n_mels=20, hop=64, n_group=8, n_flows=4, n_early_every=2, n_early_size=2,
                               wn_layers=2, wn_channels=8, sample_rate=22050))
    return FlowVocoderInstrument(m, {"n_mels": 20, "hop": 64}, name="tiny-flow")


def flow_take(block: int, x: np.ndarray, sigma: float = 0.6) -> np.ndarray:
    return stream_through(tiny_flow(), x, block, [0.0, sigma])


def test_the_flow_vocoder_plays_the_same_at_any_block_size_and_sigma_sets_its_energy():
    t = np.arange(24000) / 48000
    x = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    a, b = flow_take(17, x), flow_take(256, x)
    assert np.isfinite(a).all() and np.abs(a).max() > 1e-4
    assert np.abs(a - b).max() <= 1e-5
    v = tiny_flow()
    assert [c.name for c in v.info.controls] == ["input_gain", "sigma"] and v.info.controls[1].default == 0.6
    quiet, loud = flow_take(256, x, 0.1), flow_take(256, x, 1.0)
    assert np.sqrt(np.mean(loud[12000:] ** 2)) > 1.5 * np.sqrt(np.mean(quiet[12000:] ** 2))


def test_a_flow_checkpoint_loads_and_resynthesises(tmp_path):
    import soundfile as sf

    from livewave.checkpoint import load_generator, save_checkpoint
    v = tiny_flow()
    config, tensors = v.checkpoint_parts()
    save_checkpoint(tmp_path / "f.safetensors", "flow", config, {}, tensors)
    g = load_generator(tmp_path / "f.safetensors")
    assert g.info.family == "flow" and g.info.conditioning == "audio"
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(np.arange(16000) * 0.07)).astype(np.float32), 16000)
    r = _resynth(tmp_path, tmp_path / "f.safetensors", tmp_path / "in.wav", "--block", "100")
    assert r.returncode == 0, r.stderr
    y, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == 22050 and np.isfinite(y).all() and np.abs(y).max() > 1e-4


@pytest.mark.parametrize("family", ["melgan", "flow", "hifigan"])
def test_the_declared_latency_is_when_the_input_reaches_the_output(family):
    """A click into the input at sample k first changes the output (against the same run on
    silence) about ``lookahead`` samples later, within a model hop. A non-causal model's answer
    starts its lookahead (R frames) earlier: its receptive field reaches R frames back from
    where the click lands, which is what its declared latency waits for."""
    from test_vocoder_import import TINY_V1

    from livewave.reference_vocoders import HiFiGANConfig, HiFiGANGenerator
    from livewave.vocoder_instrument import HiFiGANVocoder

    def make():
        if family == "melgan":
            torch.manual_seed(1)
            return MelGANVocoder(MelGANGenerator(MelGANConfig(n_mels=20, ngf=4, ratios=(4, 4, 2, 2),
                                                               sample_rate=22050)), {"n_mels": 20, "hop": 64})
        if family == "flow":
            v = tiny_flow()
            g = torch.Generator().manual_seed(3)
            with torch.no_grad():          # WaveGlow zeroes each coupling's last layer: untrained, the mel is unused
                for p in v.model.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=g))
            return v
        torch.manual_seed(1)
        return HiFiGANVocoder(HiFiGANGenerator(HiFiGANConfig.from_dict({**TINY_V1, "sampling_rate": 22050})),
                              {"n_fft": 64, "hop": 16, "n_mels": 80, "fmax": 8000.0})

    x = np.zeros(24000, np.float32)
    k = 9000
    x[k:k + 40] = 0.8
    quiet, click = make(), make()
    a = stream_through(quiet, np.zeros_like(x), 64)
    b = stream_through(click, x, 64)
    first = int(np.flatnonzero(np.abs(a - b) > 1e-7)[0])
    hop = click.info.hop * 48000 / click.info.sample_rate
    # the cached streamer knows its lag to the sample; it pays out whole hops, so up to a hop later
    reach = getattr(click.streamer, "lag_samples", click.lag_frames * click.info.hop) * 48000 / click.info.sample_rate \
        if family == "hifigan" else click.lag_frames * hop
    print(f"{family}: declared {click.info.lookahead}, lookahead frames {click.lag_frames}; the output changes "
          f"{first - k} samples after the click (hop {hop:.0f})")
    assert click.info.lookahead - reach - hop <= first - k <= click.info.lookahead - reach + hop
