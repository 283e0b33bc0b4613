"""Priors over latent variables."""

from __future__ import annotations

from functools import partial

import torch
from pixyz.distributions import Normal
from torch import distributions as td

from pixyz_zoo.checks import check_count
from pixyz_zoo.distributions.shared_parameters import SharedParameters
from pixyz_zoo.modalities import variable_name


class _TorchStandardNormal(td.Normal):
    """``torch.distributions.Normal`` with location 0 and scale 1 (what :class:`StandardNormal` builds)."""


def _fits_into(shape: torch.Size, target: torch.Size) -> bool:
    """Whether ``shape`` broadcasts to ``target`` (``torch.broadcast_shapes(shape, target) == target``)."""
    return len(shape) <= len(target) and all(
        size in (1, wanted) for size, wanted in zip(reversed(shape), reversed(target), strict=False)
    )


@td.register_kl(td.Normal, _TorchStandardNormal)
def _kl_normal_standard_normal(p: td.Normal, q: _TorchStandardNormal) -> torch.Tensor:
    """torch's ``_kl_normal_normal`` with ``q = N(0, 1)``, without its division by a scale of 1 and
    subtraction of a location of 0, which change no number: the same values and gradients, to the bit."""
    if not _fits_into(q.batch_shape, p.batch_shape):  # q would widen p's batch: torch's own function
        return td.kl._kl_normal_normal(p, q)
    var_ratio = p.scale.pow(2)
    t1 = p.loc.pow(2)
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


class StandardNormal(SharedParameters, Normal):
    """``p(z) = N(z; 0, I)``: Pixyz's ``Normal`` with the constant parameters 0 and 1, through the zoo's
    mixin (within one loss evaluation its parameters and torch distribution are built once, and its
    log-density is summed without host reads: :mod:`pixyz_zoo.distributions.shared_parameters`) and
    with torch's Gaussian KL written for it (:func:`_kl_normal_standard_normal`)."""

    def __init__(self, var: str = "z", dim: int = 64, name: str = "p") -> None:
        if isinstance(var, int) and not isinstance(var, bool):
            raise TypeError(
                f"the first argument is the latent's name, a string such as 'z', got {var!r}; its size is "
                f"the second: standard_normal('z', {var})"
            )
        var, dim = variable_name(var), check_count(dim, "dim (the latent's size)")
        super().__init__(
            loc=torch.tensor(0.0), scale=torch.tensor(1.0), var=[var], features_shape=[dim], name=name
        )

    @property
    def distribution_torch_class(self):
        return partial(_TorchStandardNormal, validate_args=False)  # 0 and 1, checked by construction


def standard_normal(var: str = "z", dim: int = 64, name: str = "p") -> Normal:
    """``p(z) = N(z; 0, I)`` over a ``dim``-dimensional latent."""
    return StandardNormal(var, dim, name)
