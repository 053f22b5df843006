"""Training a DDSP instrument: ``livewave train ddsp --data DIR --out models/NAME.safetensors``.

Each step takes random crops ``[batch, frames]`` of the dataset's labels (f0 from the
MIDI or a pitch tracker, A-weighted loudness from the audio), runs the decoder over the
whole crop, plays its output through the differentiable twin of the live synthesiser
(``ddsp_synth.py``) and compares with the recorded audio by the multi-scale spectral
distance (``spectral_loss.py``).

- Deterministic with a seed: the weights start from ``seed``; each step's crops and noise
  come from a generator seeded by (seed, step, rank), so a resumed run continues exactly
  as an uninterrupted one would.
- Every ``checkpoint_every`` steps the training state (weights, optimiser, step) goes to
  ``OUT.train.pt`` and a playable checkpoint to ``OUT``, both written atomically; starting
  again with the same arguments resumes from the state file.
- ``init`` fine-tunes: the decoder starts from a trained DDSP checkpoint's weights (its sizes
  replace the options; the data must be at its sample rate and frame), with a fresh optimiser
  and schedule; the loudness calibration is fitted on the new data as always. Measured (README):
  on a viola, the shipped violin tuned for 60 steps is about where 300 steps from scratch get.
- CPU or CUDA (``device='auto'`` takes CUDA when present); several GPUs or machines with
  ``torchrun`` (PyTorch DDP): each rank takes its own crops, rank 0 writes the files.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

STATE_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch: int = 16
    crop_seconds: float = 1.0
    learning_rate: float = 2e-3
    final_lr_fraction: float = 0.1
    grad_clip: float = 3.0
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "auto"
    hidden: int = 128
    mlp: int = 96
    n_harmonics: int = 64
    n_bands: int = 32
    init: str = ""             # a trained DDSP checkpoint to start from (fine-tuning); "" = scratch

    def validate(self) -> TrainConfig:
        if not (1 <= self.steps <= 10_000_000):
            raise ValueError(f"steps={self.steps}: need 1..10000000")
        if not (1 <= self.batch <= 4096):
            raise ValueError(f"batch={self.batch}: need 1..4096")
        if not (0.05 <= self.crop_seconds <= 30.0):
            raise ValueError(f"crop_seconds={self.crop_seconds}: need 0.05..30")
        if not (0.0 < self.learning_rate < 1.0):
            raise ValueError(f"learning_rate={self.learning_rate}: need 0..1")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        return self


class CropSampler:
    """Random crops of the dataset, reproducible from (seed, step, rank)."""

    def __init__(self, clips: list[dict], hop: int, frames: int):
        self.hop = hop
        self.frames = frames
        self.clips = [c for c in clips if c["f0_hz"].shape[0] >= frames]
        if not self.clips:
            longest = max(c["f0_hz"].shape[0] for c in clips) * hop
            raise ValueError(f"no clip is as long as one crop ({frames * hop} samples; the longest has {longest})")
        lengths = np.array([c["f0_hz"].shape[0] - frames + 1 for c in self.clips], np.float64)
        self.p = lengths / lengths.sum()

    def batch(self, rng: np.random.Generator, n: int):
        f = self.frames
        f0 = np.zeros((n, f), np.float32)
        ld = np.zeros((n, f), np.float32)
        audio = np.zeros((n, f * self.hop), np.float32)
        for i in range(n):
            for _ in range(8):          # prefer crops with sound in them
                c = self.clips[rng.choice(len(self.clips), p=self.p)]
                s = int(rng.integers(0, c["f0_hz"].shape[0] - f + 1))
                if c["loudness_db"][s:s + f].max() > -60.0:
                    break
            f0[i] = c["f0_hz"][s:s + f]
            ld[i] = c["loudness_db"][s:s + f]
            audio[i] = c["audio"][s * self.hop:(s + f) * self.hop]
        return f0, ld, audio


def upsample_f0(f0, hop: int):
    """Frame f0 ``[B, F]`` (frame k at sample k*hop) -> per-sample ``[B, F*hop]``, linear."""
    import torch
    nxt = torch.cat([f0[:, 1:], f0[:, -1:]], dim=1)
    w = torch.arange(hop, dtype=f0.dtype, device=f0.device) / hop
    return (f0.unsqueeze(-1) + (nxt - f0).unsqueeze(-1) * w).reshape(f0.shape[0], -1)


class Progress:
    def __init__(self, total: int, start: int, stream=sys.stderr):
        self.total, self.start, self.stream = total, start, stream
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, step: int, loss: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < (0.2 if self.tty else 15.0):
            return
        self.last = now
        done = step - self.start
        rate = done / max(1e-9, now - self.t0)
        eta = (self.total - step) / max(rate, 1e-9)
        frac = step / self.total
        line = (f"train [{'#' * int(frac * 30):<30}] step {step}/{self.total}  loss {loss:.4f}  "
                f"{rate:5.2f} steps/s  ETA {eta / 60:6.1f} min")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if force and self.tty:
            self.stream.write("\n")
        self.stream.flush()


@contextlib.contextmanager
def deterministic_kernels(device):
    """On CUDA, torch's deterministic kernels where it has them (so one seed gives one set of
    weights, as on CPU), restored afterwards. Where an op has none torch warns and goes on."""
    import torch
    if device.type != "cuda":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def train_ddsp(data_dir, out_path, cfg: TrainConfig | None = None, name: str | None = None,
               log=print, progress: bool = True, stop_at: int | None = None) -> dict:
    """Train (or resume) and write a playable checkpoint to ``out_path``. -> summary dict.
    ``stop_at``: stop after that step as an interruption would (state saved; the schedule is
    still the one for ``cfg.steps``). After Ctrl-C the last periodic state is what resumes."""
    import torch

    from .checkpoint import atomic_write
    from .ddsp_calibration import fit_calibration
    from .ddsp_model import DDSPDecoder, DecoderConfig
    from .ddsp_synth import synthesize
    from .harmonic_noise import band_kernels
    from .soundfont_data import load_dataset
    from .spectral_loss import multiscale_spectral_distance

    cfg = (cfg or TrainConfig()).validate()
    out_path = Path(out_path)
    meta, clips = load_dataset(data_dir)
    sr, hop = int(meta["sample_rate"]), int(meta["hop"])
    from .distributed import finish, setup
    ranks = setup(cfg.device)
    world, rank, device, main = ranks.world, ranks.rank, ranks.device, ranks.main

    base, lineage = None, None
    if cfg.init:
        base, lineage = _fine_tune_base(cfg.init, sr, hop)
        d = base.dcfg
        cfg = replace(cfg, n_harmonics=d.n_harmonics, n_bands=d.n_bands, hidden=d.hidden, mlp=d.mlp)
    dcfg = DecoderConfig(n_harmonics=cfg.n_harmonics, n_bands=cfg.n_bands, hidden=cfg.hidden, mlp=cfg.mlp,
                         frame_seconds=hop / sr, sample_rate=sr).validate()
    taps = min(65, hop + 1)
    taps -= (taps + 1) % 2
    kernels = torch.from_numpy(band_kernels(sr, dcfg.n_bands, taps, top_hz=sr / 2)).float().to(device)
    calibration = fit_calibration(clips, sr, hop)
    frames = max(8, int(round(cfg.crop_seconds * sr / hop)))
    sampler = CropSampler(clips, hop, frames)

    torch.manual_seed(cfg.seed)
    model = DDSPDecoder(dcfg).to(device)
    if base is not None:
        model.load_state_dict(base.model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    state_path = out_path.with_name(out_path.name + ".train.pt")
    if main and out_path.parent.is_dir():    # temp files of a run killed while writing
        for stale in out_path.parent.glob(f"{out_path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
    ident = {"data": str(Path(data_dir).resolve()), "train": asdict(cfg), "decoder": dcfg.to_dict(), "world": world}
    for k in ("steps", "checkpoint_every", "device"):
        ident["train"].pop(k)
    if not cfg.init:                # NB: the identity runs had before fine-tuning existed
        ident["train"].pop("init")
    step, history, seconds = 0, [], 0.0
    if state_path.exists():
        st = torch.load(state_path, map_location=device, weights_only=True)
        if st.get("version") != STATE_VERSION or st.get("ident") != ident:
            raise ValueError(f"{state_path}: a training state for different data or settings; "
                             "delete it or choose another --out to start afresh")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, history, seconds = int(st["step"]), list(st["history"]), float(st["seconds"])
        if main:
            log(f"resuming {out_path} from step {step}")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def lr_at(s: int) -> float:
        frac = min(1.0, s / max(1, cfg.steps))
        lo = cfg.final_lr_fraction
        return cfg.learning_rate * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * frac)))

    def save(final: bool) -> None:
        if not main:
            return
        out_path.parent.mkdir(parents=True, exist_ok=True)
        state = {"version": STATE_VERSION, "ident": ident, "model": model.state_dict(), "opt": opt.state_dict(),
                 "step": step, "history": history, "seconds": seconds}
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))
        export_checkpoint(out_path, model, dcfg, calibration, meta, cfg, step, seconds, history,
                          name or out_path.stem, str(device), world, taps / sr, final, lineage)

    bar = Progress(cfg.steps, step) if (progress and main) else None
    ema = None
    t_start = time.perf_counter() - seconds
    model.train()
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    interrupted = False
    with deterministic_kernels(device):
        try:
            while step < end:
                rng = np.random.default_rng([cfg.seed, step, rank])
                f0, ld, audio = (torch.from_numpy(a).to(device) for a in sampler.batch(rng, cfg.batch))
                gen = torch.Generator(device=device).manual_seed(int(rng.integers(0, 2 ** 62)))
                white = torch.rand(cfg.batch, frames, hop, generator=gen, device=device) * 2.0 - 1.0
                for g in opt.param_groups:
                    g["lr"] = lr_at(step)
                amps, mags, _ = net(f0, ld)
                y = synthesize(upsample_f0(f0.double(), hop).float(), amps, mags, white, kernels, sr, hop)
                loss = multiscale_spectral_distance(y, audio)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                step += 1
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise FloatingPointError(f"loss became {lv} at step {step}; lower --lr (now {cfg.learning_rate})")
                ema = lv if ema is None else 0.98 * ema + 0.02 * lv
                if step % 10 == 0 or step == cfg.steps:
                    history.append([step, round(ema, 5)])
                seconds = time.perf_counter() - t_start
                if bar:
                    bar(step, ema, force=step == cfg.steps)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save(step == cfg.steps)
        except KeyboardInterrupt:
            interrupted = True
    if not interrupted and step < cfg.steps and step % cfg.checkpoint_every:
        save(False)          # a clean stop; after Ctrl-C the last periodic state stands (consistent)
    if (interrupted or step < cfg.steps) and main:
        log(f"stopped at step {step} of {cfg.steps}; the same command resumes from {state_path}")
    finish(ranks)
    return {"steps": step, "loss": ema if ema is not None else (history[-1][1] if history else None),
            "seconds": round(seconds, 3), "device": str(device), "out": str(out_path), "calibration": calibration}


def _fine_tune_base(init, sr: int, hop: int):
    """(the DDSP instrument ``init`` holds, its lineage for the card) for data at ``sr`` with
    frames of ``hop``; ValueError (``CheckpointError`` for an unreadable file) for another
    family or another rate or frame."""
    from .checkpoint import load_generator
    base = load_generator(init)
    family = getattr(getattr(base, "info", None), "family", "")
    if family != "ddsp":
        raise ValueError(f"{init}: a {family or 'built-in'} model; `livewave train ddsp --init` starts from a "
                         f"DDSP instrument")
    d = base.dcfg
    if d.sample_rate != sr or abs(d.frame_seconds - hop / sr) > 1e-9:
        raise ValueError(f"{init}: trained at {d.sample_rate} Hz with frames of {d.frame_seconds * 1e3:g} ms; the "
                         f"data is {sr} Hz with frames of {hop / sr * 1e3:g} ms (make the dataset with --rate "
                         f"{d.sample_rate})")
    card = base.info.card
    lineage = {"name": base.info.name, "steps": (card.get("training") or {}).get("steps"),
               "instrument": card.get("instrument"), "data": card.get("data")}
    return base, lineage


def export_checkpoint(path: Path, model, dcfg, calibration: dict, meta: dict, cfg: TrainConfig, step: int,
                      seconds: float, history: list, name: str, device: str, world: int,
                      noise_kernel_seconds: float, final: bool, lineage: dict | None = None) -> None:
    import torch

    from .checkpoint import save_checkpoint
    tensors = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
    n_params = sum(int(np.prod(v.shape)) for v in tensors.values())
    card = {
        "family": "ddsp", "instrument": meta.get("instrument", name),
        "data": {**{k: meta.get(k) for k in ("source", "program", "instrument", "minutes", "seed", "pitch_range",
                                             "soundfont", "sample_rate") if k in meta},
                 "render_scale": float(meta.get("render", {}).get("scale", 1.0))},
        "training": {"steps": step, "target_steps": cfg.steps, "complete": final, "batch": cfg.batch,
                     "crop_seconds": cfg.crop_seconds, "learning_rate": cfg.learning_rate, "seed": cfg.seed,
                     "device": device, "processes": world, "seconds": round(seconds, 3),
                     "final_loss": history[-1][1] if history else None,
                     "loss_curve": history[:: max(1, len(history) // 50)],
                     **({"init": cfg.init, "fine_tuned_from": lineage} if lineage else {})},
        "parameters": n_params,
        "sample_rate": dcfg.sample_rate,
        "note": f"band-limited to {dcfg.sample_rate // 2} Hz (its training rate's Nyquist) at any device rate",
    }
    config = {"name": name, "decoder": dcfg.to_dict(), "calibration": calibration,
              "noise_kernel_seconds": noise_kernel_seconds}
    save_checkpoint(path, "ddsp", config, card, tensors)


def update_card(path, quality: dict) -> None:
    """Add measured figures to a checkpoint's model card (rewrites the file atomically)."""
    from .checkpoint import read_checkpoint, save_checkpoint
    meta, tensors = read_checkpoint(path)
    card = dict(meta["card"])
    card["quality"] = quality
    save_checkpoint(path, meta["family"], meta["config"], card, tensors)


def recalibrate(path, data_dir) -> dict:
    """Refit a checkpoint's MIDI-to-loudness calibration on ``data_dir`` (weights untouched)."""
    from .checkpoint import read_checkpoint, save_checkpoint
    from .ddsp_calibration import fit_calibration
    from .soundfont_data import load_dataset
    meta, tensors = read_checkpoint(path)
    dmeta, clips = load_dataset(data_dir)
    cal = fit_calibration(clips, int(dmeta["sample_rate"]), int(dmeta["hop"]))
    save_checkpoint(path, meta["family"], {**meta["config"], "calibration": cal}, meta["card"], tensors)
    return cal
