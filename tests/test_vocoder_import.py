"""``livewave import``: reference HiFi-GAN and MelGAN generator files give the same waveform in
livewave, stream exactly with the lookahead they declare, and hostile or mismatched files are
refused with the reason.

The reference generators are rebuilt here the way the reference code builds them (weight-normed
``torch.nn`` layers, the same module names), and their state dicts are saved as the reference
training scripts save them."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import weight_norm

from livewave.checkpoint import CheckpointError, load_generator
from livewave.reference_vocoders import (
    HiFiGANConfig,
    HiFiGANGenerator,
    LookaheadStreamer,
    MelGANReferenceConfig,
    MelGANReferenceGenerator,
    fold_weight_norm,
    receptive_field,
)
from livewave.vocoder_import import import_hifigan, import_melgan, read_torch_weights

TINY_V1 = {"resblock": "1", "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8], "upsample_initial_channel": 16,
           "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]], "num_mels": 80,
           "sampling_rate": 16000, "n_fft": 64, "hop_size": 16, "win_size": 64, "fmin": 0, "fmax": 8000}
TINY_V3 = {**TINY_V1, "resblock": "2", "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 2], [2, 6]]}


# -- the reference generators, built as the reference code builds them ------------------------------
class RefResBlock(nn.Module):
    def __init__(self, ch, k, dil, kind):
        super().__init__()
        pad = lambda d: (k * d - d) // 2  # noqa: E731
        if kind == "1":
            self.convs1 = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=pad(d))) for d in dil)
            self.convs2 = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, k, 1, dilation=1, padding=pad(1))) for _ in dil)
        else:
            self.convs = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=pad(d))) for d in dil)
        self.kind = kind

    def forward(self, x):
        if self.kind == "1":
            for c1, c2 in zip(self.convs1, self.convs2, strict=True):
                x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        else:
            for c in self.convs:
                x = c(F.leaky_relu(x, 0.1)) + x
        return x


class RefHiFiGAN(nn.Module):
    def __init__(self, h):
        super().__init__()
        c0 = h["upsample_initial_channel"]
        self.nk = len(h["resblock_kernel_sizes"])
        self.conv_pre = weight_norm(nn.Conv1d(80, c0, 7, 1, padding=3))
        self.ups = nn.ModuleList(weight_norm(nn.ConvTranspose1d(c0 // 2 ** i, c0 // 2 ** (i + 1), k, u,
                                                                padding=(k - u) // 2))
                                 for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"],
                                                                strict=True)))
        self.resblocks = nn.ModuleList(RefResBlock(c0 // 2 ** (i + 1), k, d, h["resblock"])
                                       for i in range(len(self.ups))
                                       for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"],
                                                       strict=True))
        self.conv_post = weight_norm(nn.Conv1d(c0 // 2 ** len(self.ups), 1, 7, 1, padding=3))

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = None
            for j in range(self.nk):
                y = self.resblocks[i * self.nk + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.nk
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


class RefMelGANBlock(nn.Module):
    def __init__(self, dim, dilation):
        super().__init__()
        self.block = nn.Sequential(nn.LeakyReLU(0.2), nn.ReflectionPad1d(dilation),
                                   weight_norm(nn.Conv1d(dim, dim, 3, dilation=dilation)), nn.LeakyReLU(0.2),
                                   weight_norm(nn.Conv1d(dim, dim, 1)))
        self.shortcut = weight_norm(nn.Conv1d(dim, dim, 1))

    def forward(self, x):
        return self.shortcut(x) + self.block(x)


class RefMelGAN(nn.Module):
    def __init__(self, input_size, ngf, n_residual_layers):
        super().__init__()
        mult = 16
        m = [nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(input_size, mult * ngf, 7))]
        for r in (8, 8, 2, 2):
            m += [nn.LeakyReLU(0.2), weight_norm(nn.ConvTranspose1d(mult * ngf, mult * ngf // 2, r * 2, stride=r,
                                                                    padding=r // 2 + r % 2, output_padding=r % 2))]
            m += [RefMelGANBlock(mult * ngf // 2, 3 ** j) for j in range(n_residual_layers)]
            mult //= 2
        m += [nn.LeakyReLU(0.2), nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(ngf, 1, 7)), nn.Tanh()]
        self.model = nn.Sequential(*m)

    def forward(self, x):
        return self.model(x)


def randomise(model, seed):
    """Weight-norm gains and directions that are not the init's (so folding is really tested)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if name.endswith("weight_g") else 0.15
            p.copy_(torch.randn(p.shape, generator=g) * scale + (0.5 if name.endswith("weight_g") else 0.0))
    return model.eval()


@pytest.fixture
def hifigan_files(tmp_path):
    def make(h, seed=0):
        ref = randomise(RefHiFiGAN(h), seed)
        torch.save({"generator": ref.state_dict()}, tmp_path / f"g_{seed:08d}")      # as train.py writes it
        (tmp_path / "config.json").write_text(json.dumps(h))
        return ref, tmp_path / f"g_{seed:08d}", tmp_path / "config.json"
    return make


@pytest.mark.parametrize("h", [TINY_V1, TINY_V3], ids=["v1-like", "v3-like"])
def test_a_hifigan_generator_file_plays_the_same_waveform(tmp_path, hifigan_files, h):
    ref, weights, config = hifigan_files(h)
    out = import_hifigan(weights, config, tmp_path / "hifi.safetensors")
    voc = load_generator(out)
    assert voc.info.family == "hifigan" and voc.info.sample_rate == 16000 and voc.info.hop == 16
    mel = torch.randn(1, 80, 40, generator=torch.Generator().manual_seed(1)) - 4
    with torch.no_grad():
        want = ref(mel)[0, 0].numpy()
    got = voc.offline(mel[0].T.numpy())
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_a_melgan_generator_state_dict_plays_the_same_waveform(tmp_path):
    ref = randomise(RefMelGAN(80, 4, 2), 3)
    torch.save(ref.state_dict(), tmp_path / "netG.pt")                                # as train.py writes it
    (tmp_path / "args.yml").write_text("n_mel_channels: 80\nngf: 4\nn_residual_layers: 2\nseq_len: 8192\n")
    out = import_melgan(tmp_path / "netG.pt", tmp_path / "mg.safetensors", args_yml=tmp_path / "args.yml")
    voc = load_generator(out)
    assert voc.info.family == "melgan_reference" and voc.mel_cfg["log10"] is True
    mel = torch.randn(1, 80, 30, generator=torch.Generator().manual_seed(2)) - 3
    with torch.no_grad():
        want = ref(mel)[0, 0].numpy()
    assert np.abs(voc.offline(mel[0].T.numpy()) - want).max() < 1e-5


@pytest.mark.parametrize("model_class, cfg", [
    (HiFiGANGenerator, HiFiGANConfig.from_dict(TINY_V1)), (HiFiGANGenerator, HiFiGANConfig.from_dict(TINY_V3)),
    (MelGANReferenceGenerator, MelGANReferenceConfig(ngf=4, n_residual_layers=2))], ids=["v1", "v3", "melgan"])
def test_streaming_with_the_declared_lookahead_equals_offline(model_class, cfg):
    """Split anywhere: blocks 1, 3 and 7 frames, and one frame at a time."""
    torch.manual_seed(0)
    model = model_class(cfg).eval()
    left, right = receptive_field(model_class, cfg)
    assert right > 0 and left > 0
    frames = 60
    mel = torch.randn(1, 80, frames)
    with torch.no_grad():
        want = model(mel)[0, 0]
        for chunk in (1, 3, 7):
            st = LookaheadStreamer(model, left, right, 80, cfg.hop)
            got = torch.cat([st.push(mel[:, :, i:i + chunk])[0, 0] for i in range(0, frames, chunk)])
            assert got.shape[0] == (frames - right) * cfg.hop           # block t waits for frame t + R
            assert (got - want[:got.shape[0]]).abs().max() < 1e-5
        # in float64: R frames give the offline output to rounding; one frame less does not (the
        # farthest frames reach the output faintly, so the difference is small, but it is there)
        m64, mel64 = model.double(), mel.double()
        want64 = m64(mel64)[0, 0]
        err = {}
        for r in (right, right - 1):
            st = LookaheadStreamer(m64, left, r, 80, cfg.hop)
            got = torch.cat([st.push(mel64[:, :, i:i + 1])[0, 0] for i in range(frames)])
            err[r] = float((got - want64[:got.shape[0]]).abs().max())
        print(f"{model_class.__name__}: L {left}, R {right}; float64 error with R: {err[right]:.1e}, "
              f"with R - 1: {err[right - 1]:.1e}")
        assert err[right] < 1e-12 and err[right - 1] > 100 * max(err[right], 1e-16)


def test_an_imported_vocoder_declares_its_latency_and_resynthesises(tmp_path, hifigan_files):
    import soundfile as sf
    _, weights, config = hifigan_files(TINY_V1)
    out = tmp_path / "hifi.safetensors"
    r = subprocess.run([sys.executable, "-m", "livewave", "import", "hifigan", str(weights), "--config", str(config),
                        "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "frames of lookahead" in r.stdout, r.stderr
    voc = load_generator(out)
    voc.prepare(48000, 256, 1)
    _, right = voc.info.card["receptive_field_frames"]
    # the delay line covers the lookahead; the centred frames add (n_fft - hop) / 2 at the model's rate
    assert voc.info.lookahead >= (right * 16 + 24) * 3
    sf.write(tmp_path / "in.wav", (0.3 * np.sin(np.arange(16000) * 0.05)).astype(np.float32), 16000)
    outs = []
    for block in ("31", "256"):
        r = subprocess.run([sys.executable, "-m", "livewave", "resynth", str(tmp_path / "in.wav"), "-o",
                            str(tmp_path / "o.wav"), "--model", str(out), "--block", block, "-q"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(sf.read(tmp_path / "o.wav", dtype="float32")[0])
    assert np.isfinite(outs[0]).all() and np.abs(outs[0]).max() > 1e-4
    assert np.abs(outs[0] - outs[1]).max() <= 1e-5


class Canary:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {CANARY}",))


CANARY = Path("/tmp/livewave-import-canary")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".safetensors"])
def test_a_file_that_needs_unpickling_is_refused_and_never_run(tmp_path, suffix):
    CANARY.unlink(missing_ok=True)
    bad = tmp_path / f"waveglow{suffix}"
    torch.save({"model": Canary(), "iteration": 3}, bad, pickle_protocol=2)
    # torch reads a .safetensors name as safetensors: that refusal names the format instead
    reason = "not a PyTorch weights file" if suffix == ".safetensors" else "arbitrary unpickling"
    with pytest.raises(CheckpointError, match=reason) as e:
        read_torch_weights(bad)
    assert suffix == ".safetensors" or "state_dict()" in str(e.value)
    with pytest.raises(CheckpointError):
        load_generator(bad)                                  # nor as a livewave checkpoint
    assert not CANARY.exists()
    whole = tmp_path / f"whole{suffix}"
    torch.save(RefMelGAN(80, 2, 1), whole)                    # a whole pickled module, as WaveGlow ships
    with pytest.raises(CheckpointError, match=reason):
        read_torch_weights(whole)
    assert not CANARY.exists()


def test_mismatched_and_broken_files_get_the_reason(tmp_path, hifigan_files):
    _, weights, config = hifigan_files(TINY_V1)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**TINY_V1, "upsample_initial_channel": 32}))
    with pytest.raises(CheckpointError, match="the config makes it"):
        import_hifigan(weights, wrong, tmp_path / "x.safetensors")
    v3 = tmp_path / "v3.json"
    v3.write_text(json.dumps(TINY_V3))
    with pytest.raises(CheckpointError, match="do not match the config's architecture"):
        import_hifigan(weights, v3, tmp_path / "x.safetensors")
    bad_cfg = tmp_path / "bad.json"
    bad_cfg.write_text(json.dumps({**TINY_V1, "hop_size": 256}))
    with pytest.raises(CheckpointError, match="hop"):
        import_hifigan(weights, bad_cfg, tmp_path / "x.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"\x00not torch" * 20)
    with pytest.raises(CheckpointError, match="not a PyTorch weights file"):
        read_torch_weights(tmp_path / "junk.pt")
    sd = torch.load(weights, weights_only=True)["generator"]
    sd["conv_pre.weight_v"][0, 0, 0] = float("nan")
    torch.save({"generator": sd}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        import_hifigan(tmp_path / "nan.pt", config, tmp_path / "x.safetensors")
    del sd["conv_pre.weight_g"]
    torch.save(sd, tmp_path / "half.pt")
    with pytest.raises(CheckpointError, match="incomplete"):
        import_hifigan(tmp_path / "half.pt", config, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_weight_norm_folds_in_both_of_torchs_layouts():
    from torch.nn.utils.parametrizations import weight_norm as param_weight_norm
    for wn in (weight_norm, param_weight_norm):
        torch.manual_seed(0)
        conv = wn(nn.ConvTranspose1d(6, 4, 5))
        with torch.no_grad():
            want = conv(torch.ones(1, 6, 9))
        plain = nn.ConvTranspose1d(6, 4, 5)
        plain.load_state_dict(fold_weight_norm(conv.state_dict()))
        with torch.no_grad():
            assert (plain(torch.ones(1, 6, 9)) - want).abs().max() < 1e-6
