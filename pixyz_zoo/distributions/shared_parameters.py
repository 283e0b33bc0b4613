"""Compute each distribution's parameters once per loss evaluation.

With Pixyz's parameter cache off (it outlives optimiser steps and goes stale), a loss such as
``E(q, -log p(x|z)) + KL(q(z|x)||p(z))`` runs the encoder twice on the same batch: once to
sample ``z`` and once for the KL. Inside ``with shared_parameters():`` the zoo's distributions
remember ``get_params`` results keyed on the identity of their input tensors, for that block
only, so each network runs once per step and nothing is reused across steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


class SharedParameters:
    """Mixin for Pixyz distributions: ``get_params`` memoised inside ``shared_parameters()``."""

    def get_params(self, params_dict: dict | None = None, **kwargs: Any) -> dict:
        params_dict = params_dict or {}
        if _active is None or kwargs:
            return super().get_params(params_dict, **kwargs)
        key = (id(self), *sorted((name, id(value)) for name, value in params_dict.items()))
        hit = _active.get(key)
        if hit is None:
            # keep the inputs alive so that their ids cannot be reused within the block
            hit = (tuple(params_dict.values()), super().get_params(params_dict))
            _active[key] = hit
        return dict(hit[1])
