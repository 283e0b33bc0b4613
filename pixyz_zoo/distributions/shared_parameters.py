"""Compute each distribution's parameters once per loss evaluation.

With Pixyz's parameter cache off (it outlives optimiser steps and goes stale), a loss such as
``E(q, -log p(x|z)) + KL(q(z|x)||p(z))`` runs the encoder twice on the same batch: once to
sample ``z`` and once for the KL. Inside ``with shared_parameters():`` the zoo's distributions
remember ``get_params`` results keyed on the identity of their input tensors, for that block
only, so each network runs once per step and nothing is reused across steps.

``get_params`` is also where the zoo's networks' outputs become distribution parameters: under
mixed precision (``torch.autocast`` with bfloat16, the trainer's ``precision="bf16"``) they are cast
back to float32 there, so that log-probabilities and KL terms are computed and summed in float32.

The mixin also does what Pixyz's ``DistributionBase`` does in ``get_params``, ``set_dist`` and
``get_log_prob`` without the per-call work a training step repeats for nothing: the wrapper of
Pixyz's parameter cache (off in the zoo), a walk over every submodule's buffers to find the constant
parameters, a new torch distribution for parameters it was already built from (within a block), and
feature dimensions built with ``torch.arange`` and read back one by one. The results are the same
tensors, to the bit (``tests/test_distributions.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from pixyz.distributions.distributions import DistributionBase
from pixyz.utils import get_dict_values

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


def feature_sum(values: torch.Tensor, feature_dims: Sequence[int] | None = None) -> torch.Tensor:
    """Pixyz's ``sum_samples``: the sum over ``feature_dims``, by default every dimension but the
    first, with the dimensions as Python integers (the same sum, no host reads)."""
    if feature_dims is not None:
        return torch.sum(values, dim=list(feature_dims)) if len(feature_dims) else values
    if values.dim() == 1:
        return values
    return values.sum(dim=tuple(range(1, values.dim()))) if values.dim() else values.sum()


_PIXYZ_METHODS: dict[tuple[type, str], bool] = {}


def _inherits_pixyz(cls: type, method: str) -> bool:
    """Whether ``cls`` takes ``method`` from Pixyz's ``DistributionBase`` (no class between the
    mixin and it in the MRO defines its own), so that the mixin's equivalent may stand in for it."""
    key = (cls, method)
    found = _PIXYZ_METHODS.get(key)
    if found is None:
        mro = cls.__mro__
        after = mro[mro.index(SharedParameters) + 1 :]
        owner = next((c for c in after if method in c.__dict__), None)
        found = _PIXYZ_METHODS[key] = owner is DistributionBase
    return found


class SharedParameters:
    """Mixin for Pixyz distributions: ``get_params`` memoised inside ``shared_parameters()``, and
    float32 (see :func:`float32_parameters`); ``get_params``, ``set_dist`` and ``get_log_prob``
    without Pixyz's per-call overhead (see the module's docstring)."""

    replace_params_dict: dict[str, list[str]]
    params_keys: list[str]
    _buffers: dict[str, torch.Tensor | None]
    _cond_var: list[str]
    _var: list[str]

    def get_params(self, params_dict: dict | None = None, **kwargs: Any) -> dict:
        params_dict = params_dict or {}
        if kwargs:
            return float32_parameters(super().get_params(params_dict, **kwargs))
        compute = partial(self._float32_parameters, params_dict)
        return dict(shared_value(*_params_slot(self, params_dict), compute))

    def _float32_parameters(self, params_dict: dict) -> dict:
        if _inherits_pixyz(type(self), "get_params"):
            return float32_parameters(self._network_parameters(params_dict))
        return float32_parameters(super().get_params(params_dict))  # type: ignore[misc]

    def _network_parameters(self, params_dict: dict) -> dict:
        """``DistributionBase.get_params``: the network's outputs, the parameters given as variables
        and the constant parameters (the distribution's own buffers; a submodule's never match)."""
        replaced = {}
        for key, value in params_dict.items():
            for replaced_key in self.replace_params_dict.get(key, ()):
                replaced[replaced_key] = value
        variables = {key: value for key, value in params_dict.items() if key not in self.replace_params_dict}
        outputs = self(**variables)  # type: ignore[operator]
        outputs.update(replaced)
        buffers = self._buffers
        outputs.update({key: buffers[key] for key in self.params_keys if buffers.get(key) is not None})
        return outputs

    def set_dist(self, x_dict: dict | None = None, batch_n: int | None = None, **kwargs: Any) -> None:
        """``DistributionBase.set_dist``; inside ``shared_parameters()`` the torch distribution built
        from the same parameter tensors is built once (the KL and the sampling of one loss share it)."""
        if batch_n is not None or kwargs or not _inherits_pixyz(type(self), "set_dist"):
            return super().set_dist(x_dict or {}, batch_n=batch_n, **kwargs)  # type: ignore[misc]
        params = self.get_params(x_dict or {})
        if set(self.params_keys) != set(params):
            raise ValueError(
                f"{type(self)} class requires following parameters: {set(self.params_keys)}\n"
                f"but got {set(params.keys())}"
            )
        names = sorted(params)
        build = partial(self._torch_distribution, params)
        dist = shared_value(("dist", id(self), *names), tuple(params[name] for name in names), build)
        self.__dict__["_dist"] = dist  # what ``self._dist = dist`` stores, without nn.Module's lookups
        return None

    def _torch_distribution(self, params: dict) -> Any:
        return self.distribution_torch_class(**params)  # type: ignore[attr-defined]

    def get_log_prob(
        self,
        x_dict: dict,
        sum_features: bool = True,
        feature_dims: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``DistributionBase.get_log_prob``, summed over the features by :meth:`summed_log_prob`."""
        if not _inherits_pixyz(type(self), "get_log_prob"):
            return super().get_log_prob(  # type: ignore[misc]
                x_dict, sum_features=sum_features, feature_dims=feature_dims, **kwargs
            )
        self.set_dist(get_dict_values(x_dict, self._cond_var, return_dict=True))
        targets = get_dict_values(x_dict, self._var)
        if len(targets) == 0:
            raise ValueError(f"x_dict has no value of the stochastic variable. x_dict: {x_dict}")
        if not sum_features:
            return self.dist.log_prob(*targets)  # type: ignore[attr-defined]
        return self.summed_log_prob(targets[0], feature_dims)

    def summed_log_prob(self, value: torch.Tensor, feature_dims: Sequence[int] | None = None) -> torch.Tensor:
        """The log-density of ``value`` under the distribution set last, summed over ``feature_dims``
        (default: all but the first); a subclass may sum before an element-wise negation."""
        return feature_sum(self.dist.log_prob(value), feature_dims)  # type: ignore[attr-defined]
