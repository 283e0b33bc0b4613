"""Data-parallel training through PyTorch's own engine: ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node=N -m pixyz_zoo train MODEL ...`` starts N processes with ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` in their environment; :func:`init_from_env` joins them into one process
group (gloo on the CPU, NCCL on CUDA with device ``cuda:LOCAL_RANK``). Every rank draws the same
global batch of ``N * batch_size`` examples and trains on its own contiguous share of it
(:func:`shard`); the gradients are averaged by DDP, so every rank holds the same parameters and an
N-process step on batch B per process is the 1-process step on batch N*B.

DDP wraps each loss a model differentiates (:meth:`ZooModel.parallel_losses`: the Pixyz loss over
``model.distributions``, and a discriminator's loss for the models that take a discriminator step)
in a :class:`LossModule` whose forward evaluates that loss, so the objective stays the expression
``print(model)`` shows and the optimiser steps stay the model's own.

What couples the examples of a batch (``ZooModel.batch_couplings``: a term estimated from the batch
as a whole, such as beta-TCVAE's minibatch-weighted sampling, FactorVAE's permuted latents and MFM's
MMD, and batch normalisation, such as JMVAE-GAN's discriminator's) is estimated over each process's
share, and the trainer says so (:func:`batch_estimate_note`): such a model's N-process step is the
mean of N steps on B examples each. Every other model's losses are means over examples
(``tests/test_batch_estimates.py`` checks both for every registered model). There is no
``SyncBatchNorm``, and DDP broadcasts rank 0's running statistics.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def launched() -> bool:
    """True in a process started by ``torchrun`` (its environment names a world of processes)."""
    return all(name in os.environ for name in ENV)


def launched_rank() -> int:
    """This process's rank as its launcher set it (``RANK``), 0 where none did: readable before the
    process group exists and after it is gone (:func:`rank` reads the group)."""
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0: the process that writes the run directory."""
    return rank() == 0


def init_from_env(device: str = "auto") -> str:
    """Join ``torchrun``'s process group when launched by it (else nothing); returns the device this
    process trains on: ``cuda:LOCAL_RANK`` with NCCL when ``device`` asks for CUDA (``auto`` with a
    GPU), else ``cpu`` with gloo."""
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if active():  # joined already (by an earlier run of this process, or by the caller)
        return f"cuda:{torch.cuda.current_device()}" if cuda else device
    if not launched():
        return device
    local_rank = int(os.environ["LOCAL_RANK"])
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device} was requested but PyTorch sees no CUDA device")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} has no GPU (this node has {torch.cuda.device_count()}); "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
        return f"cuda:{local_rank}"
    dist.init_process_group("gloo")
    return "cpu"


def destroy() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def shard(batch: dict[str, torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s contiguous share of a global batch (``torch.tensor_split``: equal shares when
    ``world`` divides the batch, else the first shares have one row more)."""
    return {name: torch.tensor_split(t, world)[rank] for name, t in batch.items()}


def batch_estimate_note(model: str, couplings: list[str], world: int, batch_size: int) -> str | None:
    """What data parallelism changes for a model whose training step couples the examples of a batch
    (``ZooModel.batch_couplings``: a term estimated from the batch as a whole, batch normalisation);
    None when nothing does or ``world`` is 1. Each process estimates them from its own share, so the
    step is the mean of ``world`` steps on ``batch_size`` examples, not one step on the global batch."""
    if not couplings or world < 2:
        return None
    return (
        f"{model}: {'; '.join(couplings)}: estimated over each process's {batch_size} examples, not over "
        f"the global batch of {world * batch_size}; the {world} processes train like the mean of {world} "
        f"one-process steps at batch {batch_size}, not like one process at batch {world * batch_size}"
    )


def weighted_mean(value: torch.Tensor, weight: float) -> torch.Tensor:
    """``sum(value * weight) / sum(weight)`` over the ranks, in float64 on ``value``'s device: an
    all-reduce, no host read (``value`` itself outside a group)."""
    value = value.detach().to(torch.float64)
    if not active():
        return value
    total = torch.stack([value * weight, value.new_tensor(weight)])
    dist.all_reduce(total)
    return total[0] / total[1]


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` outside a group)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


class LossModule(nn.Module):
    """The module DDP wraps: ``forward`` evaluates ``loss`` (a Pixyz loss's ``eval``, a
    discriminator's loss), whose gradients reach the parameters of ``holder``.

    The ranks agree on the loss being finite before any backward: when it is NaN/inf (or raised) on
    one rank, every rank gets a NaN loss, so the model's check stops all of them at the same step
    instead of leaving the others waiting in DDP's all-reduce. The agreement is an all-reduce of a
    device flag, not read on the host.
    """

    def __init__(self, holder: nn.Module, loss: Callable[..., Any]) -> None:
        super().__init__()
        self.holder = holder
        self.loss = loss

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        try:
            out = self.loss(*args, **kwargs)
        except BaseException:  # the other ranks learn that this one failed: it counts no finite loss
            device = next(self.holder.parameters()).device
            dist.all_reduce(torch.zeros(1, dtype=torch.float64, device=device))
            raise
        value = out[0] if isinstance(out, tuple) else out
        finite = torch.isfinite(value.detach()).all().to(torch.float64).reshape(1)
        dist.all_reduce(finite)  # the number of ranks whose loss is finite
        value = torch.where(finite[0] == world_size(), value, torch.full_like(value, torch.nan))
        return (value, *out[1:]) if isinstance(out, tuple) else value


def wrap_losses(model: Any, device: torch.device) -> None:
    """Make ``model`` evaluate each of its :meth:`parallel_losses` through DDP (gradients averaged
    over the ranks in the backward pass). A model whose training loss accumulates gradients while it
    is evaluated (``gradients_inside_loss``: DDP would not see those) evaluates it through
    :class:`LossModule` alone and averages its gradients after the backward pass itself."""
    device_ids = [device.index] if device.type == "cuda" else None
    for name, (holder, loss) in model.parallel_losses().items():
        module = LossModule(holder, loss)
        if name == "loss" and model.gradients_inside_loss:
            model.loss_evaluators[name] = module
            model.averaged_losses.add(name)
        else:
            model.loss_evaluators[name] = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def average_gradients(parameters: list[torch.Tensor]) -> None:
    """Average the gradients of ``parameters`` over the ranks (one all-reduce; a parameter without a
    gradient counts as a zero one). Nothing outside a process group."""
    if not active() or not parameters:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p, g in zip(parameters, grads, strict=True):
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        p.grad = g
        offset += g.numel()
