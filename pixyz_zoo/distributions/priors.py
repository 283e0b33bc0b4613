"""Priors over latent variables."""

from __future__ import annotations

import torch
from pixyz.distributions import Normal

from pixyz_zoo.distributions.shared_parameters import SharedParameters


class StandardNormal(SharedParameters, Normal):
    """Pixyz's ``Normal`` with constant parameters, through the zoo's mixin: within one loss
    evaluation its parameters and torch distribution are built once, and its log-density is summed
    without host reads (:mod:`pixyz_zoo.distributions.shared_parameters`)."""


def standard_normal(var: str = "z", dim: int = 64, name: str = "p") -> Normal:
    """``p(z) = N(z; 0, I)`` over a ``dim``-dimensional latent."""
    return StandardNormal(
        loc=torch.tensor(0.0), scale=torch.tensor(1.0), var=[var], features_shape=[dim], name=name
    )
