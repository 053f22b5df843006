"""``livewave import hifigan|melgan``: checkpoints written by the reference implementations,
converted into livewave checkpoints (safetensors, config and card in the metadata).

- HiFi-GAN (github.com/jik876/hifi-gan): the generator file its training script writes
  (``g_XXXXXXXX``: a dict whose ``generator`` entry is the state dict; a bare state dict is taken
  too) and the config JSON beside it (V1, V2, V3 or your own): the generator's shape and its mel
  front-end (n_fft, hop, fmin, fmax, natural log).
- MelGAN (github.com/descriptinc/melgan-neurips): the generator state dict its training script
  writes (``netG.pt``) and the hyper-parameters (``args.yml``'s ``n_mel_channels``, ``ngf``,
  ``n_residual_layers``; its mel is log10 with n_fft 1024, hop 256, fmax none).

Files are opened with ``torch.load(weights_only=True)`` only: a file that needs arbitrary
unpickling (WaveGlow's published checkpoints pickle the whole model object, code and all) is
refused with the reason and what to do. A TorchScript archive holds code that ``torch.jit.load``
runs: it is refused unless the user says they trust it (``--trust-torchscript``), and then only
its weights are kept. Reading pickles at all needs torch's fixed ``weights_only`` loader (torch
2.10 or newer, ``MIN_TORCH``). Weight normalisation is folded into plain weights, every
name and shape is checked against the architecture the config makes, and the result must play
silence as silence and a tone as finite audio before it is written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, save_checkpoint

PICKLE_HELP = ("livewave opens model files with torch.load(weights_only=True) and never unpickles code. In "
               "the Python environment that made the file, save only the weights: "
               "torch.save(model.state_dict(), 'weights.pt') (for a WaveGlow checkpoint: "
               "torch.save(torch.load(path)['model'].state_dict(), 'weights.pt')), then import that file")


MIN_TORCH = (2, 10)


def _torch_version(torch) -> tuple[int, int]:
    parts = torch.__version__.split("+")[0].split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def is_torchscript(path) -> bool:
    """A zip whose entries include ``code/`` (what ``torch.jit.save`` writes)."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_torch_weights(path, trust_torchscript: bool = False) -> dict:
    """The tensors of a ``.pt``/``.pth``/``.ckpt`` file, by name (nested dicts flattened one level
    where the reference keeps them: ``generator``, ``state_dict``, ``model``). A TorchScript file
    only with ``trust_torchscript`` (its code runs to read it)."""
    import pickle

    import torch
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if _torch_version(torch) < MIN_TORCH:
        raise CheckpointError(f"{path}: reading PyTorch files safely needs torch {MIN_TORCH[0]}.{MIN_TORCH[1]} or "
                              f"newer (its fixed weights_only loader); this is torch {torch.__version__}")
    if is_torchscript(path):
        if not trust_torchscript:
            raise CheckpointError(f"{path}: a TorchScript archive. It holds code, which torch.jit.load runs to open "
                                  "it, so livewave refuses it unless you trust where it came from: then pass "
                                  "--trust-torchscript and only its weights are kept")
        try:
            obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as exc:
            raise CheckpointError(f"{path}: torch.jit.load could not open it ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from None
        return _state_dict(obj, path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the object it refused to build ("... unsupported GLOBAL posix.system ...");
        # anything else it could not read is a damaged file or another format
        why = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln]
        if not why:
            raise CheckpointError(f"{path}: not a PyTorch weights file torch.load can read (damaged, or another "
                                  "format)") from None
        raise CheckpointError(f"{path}: this file needs arbitrary unpickling to open ({why[0][:200]}). "
                              f"{PICKLE_HELP}") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a PyTorch weights file torch.load can read ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from None
    return _state_dict(obj, path)


def _state_dict(obj, path) -> dict:
    import torch
    if isinstance(obj, dict):
        for key in ("generator", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict (names to tensors) or a dict holding one under "
                              "'generator'; found something else")
    return obj


def _load_into(model, state: dict, path) -> None:
    import torch

    from .reference_vocoders import fold_weight_norm
    try:
        state = fold_weight_norm(state)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path}: the weights do not match the config's architecture: missing "
                              f"{missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected "
                              f"{extra[:4]}{'...' if len(extra) > 4 else ''}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: {k} is {tuple(state[k].shape)} in the file, the config makes it "
                                  f"{tuple(v.shape)} (is the config the one this model was trained with?)")
        if not torch.isfinite(state[k]).all():
            raise CheckpointError(f"{path}: {k} contains NaN or Inf")
    model.load_state_dict({k: v.float() for k, v in state.items()})


def _screen(vocoder, path) -> None:
    """Silence must come out near silence and a tone finite, through the model offline."""
    from .mel_analysis import analyse
    sr = vocoder.mcfg.sample_rate
    m = vocoder.mel_cfg
    kw = {k: m[k] for k in ("n_fft", "hop", "n_mels", "fmin", "fmax", "floor", "log10")}
    t = np.arange(sr // 2) / sr
    for name, x in (("silence", np.zeros(sr // 2, np.float32)),
                    ("a tone", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))):
        y = vocoder.offline(analyse(x, sr, **kw))
        if not np.isfinite(y).all():
            raise CheckpointError(f"{path}: the model renders {name} as NaN or Inf")


def import_hifigan(weights, config_json, out, name: str | None = None, trust_torchscript: bool = False) -> Path:
    from .reference_vocoders import HiFiGANConfig, HiFiGANGenerator
    from .vocoder_instrument import HiFiGANVocoder
    try:
        raw = json.loads(Path(config_json).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_json}: not a readable HiFi-GAN config JSON ({exc})") from None
    try:
        cfg = HiFiGANConfig.from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{config_json}: {exc}") from None
    model = HiFiGANGenerator(cfg)
    _load_into(model, read_torch_weights(weights, trust_torchscript), weights)
    mel = {"n_fft": cfg.n_fft, "hop": cfg.hop_size, "n_mels": cfg.num_mels, "fmin": float(cfg.fmin),
           "fmax": None if cfg.fmax is None else float(cfg.fmax), "floor": 1e-5, "log10": False}
    voc = HiFiGANVocoder(model.eval(), mel, name=name or Path(out).stem)
    return _write(voc, out, weights, {"source": "HiFi-GAN reference implementation", "weights": str(weights),
                                      "config": str(config_json)})


def import_melgan(weights, out, n_mels: int = 80, ngf: int = 32, n_residual_layers: int = 3,
                  sample_rate: int = 22050, args_yml=None, name: str | None = None,
                  trust_torchscript: bool = False) -> Path:
    from .reference_vocoders import MelGANReferenceConfig, MelGANReferenceGenerator
    from .vocoder_instrument import MelGANReferenceVocoder
    if args_yml is not None:
        vals = _read_args_yml(args_yml)
        n_mels = int(vals.get("n_mel_channels", n_mels))
        ngf = int(vals.get("ngf", ngf))
        n_residual_layers = int(vals.get("n_residual_layers", n_residual_layers))
    try:
        cfg = MelGANReferenceConfig(n_mel_channels=n_mels, ngf=ngf, n_residual_layers=n_residual_layers,
                                    sampling_rate=sample_rate).check()
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"MelGAN hyper-parameters: {exc}") from None
    model = MelGANReferenceGenerator(cfg)
    _load_into(model, read_torch_weights(weights, trust_torchscript), weights)
    mel = {"n_fft": cfg.n_fft, "hop": cfg.hop_length, "n_mels": n_mels, "fmin": 0.0, "fmax": None, "floor": 1e-5,
           "log10": True}
    voc = MelGANReferenceVocoder(model.eval(), mel, name=name or Path(out).stem)
    return _write(voc, out, weights, {"source": "MelGAN reference implementation", "weights": str(weights)})


def _read_args_yml(path) -> dict:
    """The flat ``key: value`` lines of the reference's args.yml (no YAML library needed)."""
    vals = {}
    try:
        for line in Path(path).read_text().splitlines():
            if ":" in line and not line.startswith((" ", "#", "-")):
                k, v = line.split(":", 1)
                vals[k.strip()] = v.strip()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from None
    return vals


def _write(voc, out, weights, source: dict) -> Path:
    _screen(voc, weights)
    config, tensors = voc.checkpoint_parts()
    card = {"instrument": voc.info.name, "family": voc.family, "sample_rate": voc.mcfg.sample_rate,
            "parameters": voc.model.parameter_count(), "imported": source,
            "receptive_field_frames": voc.info.card.get("receptive_field_frames"),
            "stream_lag_frames": voc.info.card.get("stream_lag_frames")}
    return save_checkpoint(out, voc.family, config, card, tensors)
