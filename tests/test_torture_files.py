"""Torture: hostile model files.

- A pickle that would create a canary file if unpickled, as .pt, .pth, .ckpt and renamed
  .safetensors, through every door (loading a checkpoint, ``livewave import``, ``livewave
  play``): never executed, a clear refusal, no fallback to ``weights_only=False``.
- A TorchScript archive: refused unless the user trusts it (``--trust-torchscript``); trusted,
  only its weights are kept, and they play as the original module did.
- Truncated safetensors, overlapping data offsets, a header over 100 MB, tensor shapes that do
  not match the config: a clean error within 1 s, and the process's peak memory grows by less
  than twice the file's size (measured in a fresh process per file).
"""
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from livewave.checkpoint import CheckpointError, load_generator, save_checkpoint

pytestmark = pytest.mark.torture
ROOT = Path(__file__).resolve().parents[1]
CANARY = Path("/tmp/livewave-torture-canary")


class Canary:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {CANARY}",))


def _lw(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "livewave", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".safetensors"])
def test_a_canary_pickle_never_runs_through_any_door(tmp_path, suffix):
    CANARY.unlink(missing_ok=True)
    bad = tmp_path / f"model{suffix}"
    torch.save({"generator": Canary()}, bad)
    with pytest.raises(CheckpointError):
        load_generator(bad)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
                               "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 7, 11],
                               "resblock_dilation_sizes": [[1, 3, 5]] * 3}))
    for args in (("import", "hifigan", bad, "--config", cfg, "-o", tmp_path / "x.safetensors"),
                 ("import", "melgan", bad, "-o", tmp_path / "y.safetensors"),
                 ("render", next(ROOT.glob("livewave/data/*.mid")), "--model", bad, "-o", tmp_path / "z.wav")):
        r = _lw(*args)
        assert r.returncode != 0 and bad.name in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not CANARY.exists(), "the pickle ran"


def test_torchscript_is_refused_unless_trusted(tmp_path):
    from livewave.reference_vocoders import MelGANReferenceConfig, MelGANReferenceGenerator
    torch.manual_seed(0)
    model = MelGANReferenceGenerator(MelGANReferenceConfig(ngf=8, n_residual_layers=1)).eval()
    ts = tmp_path / "melgan.ts.pt"
    torch.jit.trace(model, torch.randn(1, 80, 10)).save(str(ts))
    r = _lw("import", "melgan", ts, "--ngf", 8, "--n-residual-layers", 1, "-o", tmp_path / "m.safetensors")
    assert r.returncode != 0 and "TorchScript" in r.stderr and "--trust-torchscript" in r.stderr, r.stderr
    assert not (tmp_path / "m.safetensors").exists()
    r = _lw("import", "melgan", ts, "--ngf", 8, "--n-residual-layers", 1, "--trust-torchscript",
            "-o", tmp_path / "m.safetensors")
    assert r.returncode == 0, r.stderr
    voc = load_generator(tmp_path / "m.safetensors")
    mel = torch.randn(1, 80, 12) - 3
    with torch.no_grad():
        want = model(mel)[0, 0].numpy()
    assert np.abs(voc.offline(mel[0].T.numpy()) - want).max() < 1e-5


def _safetensors(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def _hostile(tmp_path: Path) -> dict[str, Path]:
    good = save_checkpoint(tmp_path / "good.safetensors", "default", {"breath": 0.3},
                           tensors={"w": np.ones(1024, np.float32)})
    raw = good.read_bytes()
    meta = {"livewave_format": "1", "family": "default", "config": "{}", "card": "{}"}
    files = {}
    files["truncated"] = tmp_path / "truncated.safetensors"
    files["truncated"].write_bytes(raw[:len(raw) - 100])
    files["overlapping offsets"] = tmp_path / "overlap.safetensors"
    files["overlapping offsets"].write_bytes(_safetensors(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}, "__metadata__": meta}, bytes(24)))
    files["a shape past the data"] = tmp_path / "shape.safetensors"
    files["a shape past the data"].write_bytes(_safetensors(
        {"a": {"dtype": "F32", "shape": [1_000_000_000], "data_offsets": [0, 16]}, "__metadata__": meta}, bytes(16)))
    big = tmp_path / "huge_header.safetensors"
    n = 101 * 2 ** 20
    with open(big, "wb") as f:
        f.write(struct.pack("<Q", n))
        f.write(b"{" + b" " * (n - 2) + b"}")
    files["a 101 MB header"] = big
    # a real model whose tensor shapes no longer match its config
    from safetensors.numpy import load_file, save_file

    from livewave.checkpoint import read_checkpoint
    violin = next(ROOT.glob("models/*.safetensors"))
    m, _ = read_checkpoint(violin)
    tensors = load_file(str(violin))
    k = max(tensors, key=lambda name: tensors[name].size)
    tensors[k] = tensors[k].reshape(-1)[:-1].copy()
    shape = tmp_path / "mismatch.safetensors"
    with open(violin, "rb") as f:
        hlen = struct.unpack("<Q", f.read(8))[0]
        stored_meta = json.loads(f.read(hlen))["__metadata__"]
    save_file(tensors, str(shape), metadata=stored_meta)
    files["shapes that do not match the config"] = shape
    return files


def test_damaged_and_oversized_files_fail_fast_and_small(tmp_path):
    """One fresh process loads each file in turn (smallest first): the time of each refusal, and
    how far the process's peak memory (its high-water mark) rose during it."""
    files = _hostile(tmp_path)
    order = sorted(files, key=lambda k: files[k].stat().st_size)
    probe = (
        "import json, resource, sys, time\n"
        "from livewave.checkpoint import CheckpointError, load_generator\n"
        "import livewave.generator as g; g.preload_families()\n"
        "for path in sys.argv[1:]:\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    t0 = time.perf_counter()\n"
        "    try:\n"
        "        load_generator(path); msg = None\n"
        "    except CheckpointError as e:\n"
        "        msg = str(e)\n"
        "    print(json.dumps({'path': path, 'refused': msg, 'seconds': time.perf_counter() - t0,\n"
        "                      'grew': (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024}))\n")
    r = subprocess.run([sys.executable, "-c", probe, *(str(files[k]) for k in order)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(order), r.stderr[-2000:]
    for what, res in zip(order, results, strict=True):
        path = files[what]
        size = path.stat().st_size
        print(f"{what} ({size} B): refused in {res['seconds'] * 1e3:.0f} ms, peak memory +{res['grew'] / 1e6:.1f} MB: "
              f"{(res['refused'] or 'LOADED')[:160]}")
        assert res["refused"] and path.name in res["refused"], f"{what}: {res}"
        assert res["seconds"] < 1.0, f"{what}: {res['seconds']:.2f} s"
        assert res["grew"] < max(2 * size, 1 << 20), f"{what}: memory grew by {res['grew']} B for a {size}-byte file"


def test_a_torch_without_the_fixed_weights_only_loader_is_refused(tmp_path, monkeypatch):
    from livewave.vocoder_import import MIN_TORCH, _torch_version, read_torch_weights
    assert _torch_version(torch) >= MIN_TORCH
    p = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, p)
    assert set(read_torch_weights(p)) == {"w"}
    monkeypatch.setattr(torch, "__version__", "2.9.1+cpu")
    with pytest.raises(CheckpointError, match="2.10 or newer"):
        read_torch_weights(p)
