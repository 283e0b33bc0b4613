"""Priors over latent variables."""

from __future__ import annotations

import torch
from pixyz.distributions import Normal


def standard_normal(var: str = "z", dim: int = 64, name: str = "p") -> Normal:
    """``p(z) = N(z; 0, I)`` over a ``dim``-dimensional latent."""
    return Normal(loc=torch.tensor(0.0), scale=torch.tensor(1.0), var=[var], features_shape=[dim], name=name)
