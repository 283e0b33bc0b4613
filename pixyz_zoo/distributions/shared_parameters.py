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

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from functools import partial
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


def _memo_key(name: Hashable, inputs: tuple) -> tuple:
    return (name, *map(id, inputs))


def _params_slot(distribution: Any, params_dict: dict) -> tuple[Hashable, tuple]:
    """The name and inputs under which ``distribution.get_params(params_dict)`` is memoised."""
    names = sorted(params_dict)
    return ("params", id(distribution), *names), tuple(params_dict[name] for name in names)


def shared_value(name: Hashable, inputs: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, computed once per ``shared_parameters()`` block for the same ``name`` and
    ``inputs`` (by identity): a distribution's parameters, an expert's precision that every product
    of experts it joins would recompute, features two encoders share. Outside a block it is computed
    at each call."""
    if _active is None:
        return compute()
    key = _memo_key(name, inputs)
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
        name, inputs = _params_slot(distribution, params_dict)
        _active[_memo_key(name, inputs)] = (inputs, dict(params))


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
        if kwargs:
            return float32_parameters(super().get_params(params_dict, **kwargs))
        compute = partial(self._float32_parameters, params_dict)
        return dict(shared_value(*_params_slot(self, params_dict), compute))

    def _float32_parameters(self, params_dict: dict) -> dict:
        return float32_parameters(super().get_params(params_dict))
