"""Data-parallel training under ``torchrun`` for the trainers whose steps are not one module's
forward (a GAN's two networks, a flow's likelihood, MIDI-to-mel's gather): each rank draws its
own batch, and after every backward the gradients are averaged over the ranks with one
``all_reduce`` per parameter, so every rank takes the same optimiser step on the same weights
(they start equal: the same seed, or the same resumed state). Rank 0 writes the files.

``torchrun --standalone --nproc_per_node=N -m livewave train ...``: gloo on CPUs, NCCL on GPUs
(rank r on ``cuda:LOCAL_RANK``). Without torchrun everything here is a no-op (world of 1).
Threading: the training process's main thread.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranks:
    world: int
    rank: int
    device: object

    @property
    def main(self) -> bool:
        return self.rank == 0

    def seed(self, *parts: int) -> list[int]:
        """A batch seed: ``parts`` alone in a single process (so its runs stay as they were),
        with the rank appended under torchrun."""
        return [*parts] if self.world == 1 else [*parts, self.rank]


def pick_device(name: str, local_rank: int = 0):
    """``auto`` is CUDA when torch sees a GPU; plain ``cuda`` under torchrun is this rank's GPU."""
    import torch
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    return torch.device(name)


def setup(device_name: str) -> Ranks:
    """The process group (when torchrun started us) and this rank's device."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(device_name, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Ranks(world, rank, device)


def average_gradients(parameters, ranks: Ranks) -> None:
    """Every parameter's gradient becomes the mean over the ranks (None counts as zeros)."""
    if ranks.world == 1:
        return
    import torch
    import torch.distributed as dist
    for p in parameters:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(ranks.world)


def rank0_says(flag: bool, ranks: Ranks) -> bool:
    """Rank 0's ``flag`` on every rank (a decision each rank's own clock would make a step apart,
    such as a time budget running out, taken once for all)."""
    if ranks.world == 1:
        return flag
    import torch
    import torch.distributed as dist
    t = torch.tensor([1.0 if flag else 0.0], device=ranks.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def finish(ranks: Ranks) -> None:
    """Wait for every rank, then tear the process group down while the interpreter is whole.
    Left to interpreter shutdown, gloo's worker threads can still hold tensors whose release
    needs the GIL, and the process aborts (``terminate called without an active exception``,
    SIGABRT) after the work is done: seen on a 2-rank CPU run in CI."""
    if ranks.world > 1:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
