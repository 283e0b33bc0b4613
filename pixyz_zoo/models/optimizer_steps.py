"""The optimiser's part of a training step: the gradients' norm, and an Adam step that a device flag
can skip without a host sync.

``ZooModel`` trains with fused Adam. ``torch.optim.Adam.step`` reaches the fused kernel through
Python work a training step repeats for nothing: a profiler record, the step hooks, gathering the
state of every parameter, grouping the tensors by device and dtype. Once the optimiser's state
exists, :func:`masked_step` gives the same kernel the same tensors and hyperparameters itself (the
same parameters and state, to the bit: ``tests/test_optimizer_steps.py``). Whatever it does not
cover (another optimiser, a hook, a learning-rate scheduler, AMSGrad, a first step) goes through
``optimizer.step()``.
"""

from __future__ import annotations

import torch
from torch import optim
from torch.optim import optimizer as torch_optimizer


def total_norm(gradients: list[torch.Tensor]) -> torch.Tensor:
    """The gradients' total L2 norm, a tensor on their device: ``torch.nn.utils.get_total_norm``'s
    value to the bit (the norm of the per-tensor norms). Gradients of one device and dtype, the
    zoo's case, skip its grouping by device and dtype and take one ``torch._foreach_norm``."""
    first = gradients[0]
    if any(g.device != first.device or g.dtype != first.dtype for g in gradients):
        return torch.nn.utils.get_total_norm(gradients, foreach=True)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(gradients, 2.0)), 2.0)


def fused_adam(optimizer: optim.Optimizer) -> None:
    """Make an Adam optimiser fused (after loading a state saved by an unfused one): its step counts
    move to the parameters' device, where :func:`masked_step` can leave them unchanged."""
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, None
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "step" in state:
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)


def zero_gradients(optimizer: optim.Optimizer) -> None:
    """``optimizer.zero_grad()``: every gradient of its parameters set to None (directly, without the
    profiler record, where the optimiser does not define its own ``zero_grad``)."""
    if type(optimizer).zero_grad is not optim.Optimizer.zero_grad or "zero_grad" in optimizer.__dict__:
        optimizer.zero_grad()
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def masked_step(optimizer: optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()``, except where the device flag ``skip`` is true: then no parameter, moment
    or step count changes. Fused Adam takes the flag as ``found_inf`` (as ``torch.amp.GradScaler``
    feeds it) and skips on the device, with no host sync. An unfused Adam put in place of the model's
    is made fused; another optimiser steps unless the flag, read on the host, holds (a sync)."""
    if not all(group.get("fused") for group in optimizer.param_groups):
        if not isinstance(optimizer, optim.Adam | optim.AdamW):
            if not bool(skip):
                optimizer.step()
            return
        fused_adam(optimizer)
    found_inf = skip.to(torch.float32)
    if _direct_fused_adam(optimizer, found_inf):
        return
    optimizer.found_inf = found_inf  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]


def _direct_fused_adam(optimizer: optim.Optimizer, found_inf: torch.Tensor) -> bool:
    """What ``optimizer.step()`` does for a fused Adam whose state exists: per parameter group, the
    step counts plus one, ``torch._fused_adam_`` on the parameters that have a gradient, and the
    counts minus ``found_inf``. Returns False, having changed nothing, where it does not apply."""
    if (
        type(optimizer) is not optim.Adam
        or "step" in optimizer.__dict__  # wrapped, e.g. by a learning-rate scheduler
        or optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or torch_optimizer._global_optimizer_pre_hooks
        or torch_optimizer._global_optimizer_post_hooks
        or not hasattr(torch, "_fused_adam_")
    ):
        return False
    steps = []
    for group in optimizer.param_groups:
        if (
            group["amsgrad"]
            or group["maximize"]
            or group["capturable"]
            or group["differentiable"]
            or group.get("decoupled_weight_decay")
            or isinstance(group["lr"], torch.Tensor)
            or any(isinstance(beta, torch.Tensor) for beta in group["betas"])
        ):
            return False
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        states = [optimizer.state.get(p) for p in params]
        first = params[0]
        if first.device != found_inf.device or any(
            not state
            or p.device != first.device
            or p.dtype != first.dtype
            or p.is_complex()
            or p.grad.is_sparse  # type: ignore[union-attr]
            for p, state in zip(params, states, strict=True)
        ):
            return False
        steps.append((group, params, states))
    with torch.no_grad():
        for group, params, states in steps:
            counts = [state["step"] for state in states]
            beta1, beta2 = group["betas"]
            torch._foreach_add_(counts, 1)
            torch._fused_adam_(
                params,
                [p.grad for p in params],
                [state["exp_avg"] for state in states],
                [state["exp_avg_sq"] for state in states],
                [],
                counts,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=found_inf,
            )
            torch._foreach_sub_(counts, [found_inf] * len(counts))
    return True
