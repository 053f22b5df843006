"""Checkpoints: one ``.safetensors`` file per model, config and model card as JSON metadata.

Loading validates everything before anything touches the running engine (format version,
family, metadata, tensor shapes and values) and names the file and the problem when it
refuses. No pickle is ever executed; other formats are refused with the reason.

Metadata keys (all strings, as safetensors requires):
- ``livewave_format``: format version (int as text); this build reads ``FORMAT_VERSIONS``.
- ``family``: the generator family (an entry point of ``livewave.generators``).
- ``config``: JSON object with the family's hyper-parameters.
- ``card``: JSON object, the model card (data, training, measured quality).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
FORMAT_VERSIONS = (1,)


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and why."""


def save_checkpoint(path, family: str, config: dict, card: dict | None = None,
                    tensors: dict[str, np.ndarray] | None = None) -> Path:
    """Write atomically: a temp file in the same folder, then rename (no half-written model)."""
    from safetensors.numpy import save_file
    path = Path(path)
    meta = {"livewave_format": str(FORMAT_VERSION), "family": family,
            "config": json.dumps(config, sort_keys=True), "card": json.dumps(card or {}, sort_keys=True)}
    tensors = {k: np.ascontiguousarray(v) for k, v in (tensors or {}).items()}
    if not tensors:
        tensors = {"_empty": np.zeros(0, np.float32)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def atomic_write(path, write) -> Path:
    """``write(temp_path)`` into a temp file beside ``path``, then rename it over ``path``:
    a reader (or a run killed mid-write) sees the old file or the new one, never half of one.
    Temp files are named ``PATH.NAME.*.tmp``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """-> (metadata with 'config'/'card' parsed, tensors). Raises CheckpointError."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise CheckpointError(f"{name}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".ckpt", ".bin", ".pkl"):
        raise CheckpointError(f"{name}: a PyTorch pickle file, not a livewave checkpoint; convert it with "
                              "'livewave import' (it is read with weights_only=True, never unpickled freely)")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise CheckpointError(f"{name}: truncated ({path.stat().st_size} bytes; a safetensors file "
                              "starts with an 8-byte header length)")
    header_len = int.from_bytes(head, "little")
    size = path.stat().st_size
    fits = header_len <= min(size - 8, 100 * 2 ** 20)
    if not fits and (head[:2] == b"PK" or (head[:1] == b"\x80" and 2 <= head[1] <= 5)):
        # NB: only when the length does not fit: a real header length may start with 0x80.
        raise CheckpointError(f"{name}: this is a pickle/zip (PyTorch) file renamed .safetensors; "
                              "it is refused, never unpickled")
    if not fits and header_len <= size - 8:
        raise CheckpointError(f"{name}: a {header_len}-byte header, over the 100 MB livewave reads (a model's "
                              "header is a few KB); refused unread")
    if not fits:
        raise CheckpointError(f"{name}: header length {header_len} bytes does not fit a {size}-byte file "
                              "(truncated or not a safetensors file)")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(f"{name}: not a readable safetensors file ({exc})") from None
    version = meta.get("livewave_format")
    if version is None:
        raise CheckpointError(f"{name}: safetensors file without livewave metadata "
                              "(no 'livewave_format'); was it written by livewave?")
    if not version.isdigit() or int(version) not in FORMAT_VERSIONS:
        raise CheckpointError(f"{name}: checkpoint format version {version!r}; this livewave reads "
                              f"versions {', '.join(map(str, FORMAT_VERSIONS))}")
    if not meta.get("family"):
        raise CheckpointError(f"{name}: metadata names no generator family")
    for key in ("config", "card"):
        try:
            meta[key] = json.loads(meta.get(key, "{}"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{name}: metadata {key!r} is not valid JSON ({exc})") from None
        if not isinstance(meta[key], dict):
            raise CheckpointError(f"{name}: metadata {key!r} must be a JSON object")
    tensors.pop("_empty", None)
    for k, t in tensors.items():
        if t.dtype.kind == "f" and not np.all(np.isfinite(t)):
            raise CheckpointError(f"{name}: tensor {k!r} contains NaN or Inf")
    return meta, tensors


BUILTIN = "builtin:default"     # not a file: the built-in default instrument


def load_generator(path):
    """Read, validate and build the generator a checkpoint describes (not yet prepared).
    ``BUILTIN`` names the built-in instrument (so a GUI can go back to it like to any model)."""
    from .generator import family_class
    if str(path) == BUILTIN:
        from .default_instrument import DefaultInstrument
        return DefaultInstrument()
    meta, tensors = read_checkpoint(path)
    family = meta["family"]
    try:
        cls = family_class(family)
    except LookupError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    builder = getattr(cls, "from_checkpoint", None)
    if builder is None:
        raise CheckpointError(f"{path}: family {family!r} cannot be loaded from a checkpoint")
    try:
        return builder(meta["config"], meta["card"], tensors)
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid {family} checkpoint: {exc}") from None


def finite_number(value, name: str, lo: float, hi: float) -> float:
    """Validate one config value (used by families' ``from_checkpoint``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(v) or not (lo <= v <= hi):
        raise ValueError(f"{name}={v} is outside {lo}..{hi}")
    return v
