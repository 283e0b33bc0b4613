"""Compute each distribution's parameters once per loss evaluation.

With Pixyz's parameter cache off (it outlives optimiser steps and goes stale), a loss such as
``E(q, -log p(x|z)) + KL(q(z|x)||p(z))`` runs the encoder twice on the same batch: once to
sample ``z`` and once for the KL. Inside ``with shared_parameters():`` the zoo's distributions
remember ``get_params`` results keyed on the identity of their input tensors, for that block
only, so each network runs once per step and nothing is reused across steps.

``get_params`` is also where the zoo's networks' outputs become distribution parameters: under
mixed precision (``torch.autocast`` with bfloat16, the trainer's ``precision="bf16"``) they are cast
back to float32 there, so that log-probabilities and KL terms are computed and summed in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

_active: dict[tuple, tuple[Any, dict]] | None = None


@contextmanager
def shared_parameters() -> Iterator[None]:
    """Share ``get_params`` results between the terms of one loss evaluation."""
    global _active
    previous, _active = _active, {}
    try:
        yield
    finally:
        _active = previous


def _key(distribution: Any, params_dict: dict) -> tuple:
    return (id(distribution), *sorted((name, id(value)) for name, value in params_dict.items()))


def shared_value(name: str, inputs: tuple[torch.Tensor, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``, computed once per ``shared_parameters()`` block for the same ``inputs`` (by
    identity): e.g. an expert's precision, which every product of experts it joins would recompute.
    Outside a block it is computed at each call."""
    if _active is None:
        return compute()
    key = (name, *map(id, inputs))
    hit = _active.get(key)
    if hit is None:
        hit = (inputs, compute())  # the inputs are kept alive: their ids are not reused in the block
        _active[key] = hit
    return hit[1]


def remember_parameters(distribution: Any, params_dict: dict, params: dict) -> None:
    """Record ``params`` as ``distribution.get_params(params_dict)`` for the current block.

    For a loss that computes a distribution's parameters by another route (the iterative
    inference loss runs a refinement itself) and wants the other terms to reuse them. Outside a
    ``shared_parameters()`` block it does nothing.
    """
    if _active is not None:
        _active[_key(distribution, params_dict)] = (tuple(params_dict.values()), dict(params))


_LOW_PRECISION = (torch.bfloat16, torch.float16)


def float32_parameters(params: dict) -> dict:
    """``params`` with low-precision tensors (a network's output under autocast) cast to float32;
    float32 and float64 tensors are passed as they are (the same objects)."""
    return {
        name: value.float() if isinstance(value, torch.Tensor) and value.dtype in _LOW_PRECISION else value
        for name, value in params.items()
    }


class SharedParameters:
    """Mixin for Pixyz distributions: ``get_params`` memoised inside ``shared_parameters()``, and
    float32 (see :func:`float32_parameters`)."""

    def get_params(self, params_dict: dict | None = None, **kwargs: Any) -> dict:
        params_dict = params_dict or {}
        if _active is None or kwargs:
            return float32_parameters(super().get_params(params_dict, **kwargs))
        key = _key(self, params_dict)
        hit = _active.get(key)
        if hit is None:
            # keep the inputs alive so that their ids cannot be reused within the block
            hit = (tuple(params_dict.values()), float32_parameters(super().get_params(params_dict)))
            _active[key] = hit
        return dict(hit[1])
