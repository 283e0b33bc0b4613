"""Gaussian encoders ``q(z|x)``, ``q(z|x,w)``: diagonal normals whose network is an argument."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from pixyz.distributions import Normal
from torch import distributions as td
from torch import nn

from pixyz_zoo.checks import check_non_negative
from pixyz_zoo.distributions.shared_parameters import SharedParameters
from pixyz_zoo.modalities import variable_name, variable_names


class GaussianEncoder(SharedParameters, Normal):
    """``q(z|x_1, ..., x_n) = N(z; mu(x), diag(sigma(x)^2))`` (Kingma & Welling 2014, eq. 9-10).

    Args:
        network: maps the conditioning tensors (in ``cond_var`` order) to ``2 * z_dim`` features:
            the first half is the mean, the second half goes through a softplus to the scale.
        cond_var: conditioning variable names, e.g. ``["x"]`` or ``["x", "w"]``.
        var: the latent variable name.
        name: the distribution's name in printed formulas.
        min_scale: floor added to the scale for numerical stability.
    """

    def __init__(
        self,
        network: nn.Module,
        cond_var: Sequence[str],
        var: str = "z",
        name: str = "q",
        min_scale: float = 1e-4,
    ) -> None:
        super().__init__(var=[variable_name(var)], cond_var=variable_names(cond_var), name=name)
        self.network = network
        self.min_scale = check_non_negative(min_scale, "min_scale, the floor added to the scale,")

    @property
    def distribution_torch_class(self):
        # the softplus scale is positive by construction: skip torch's per-call argument checks
        return partial(td.Normal, validate_args=False)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.network(*(inputs[name] for name in self.cond_var))
        if h.shape[-1] % 2:
            raise ValueError(
                f"the network of {self.prob_text} gives {h.shape[-1]} features per example; it must give "
                f"2 * the size of {self.var[0]} (the mean, then the scale before its softplus): an even "
                "number"
            )
        loc, raw_scale = h.chunk(2, dim=-1)
        return {"loc": loc, "scale": F.softplus(raw_scale) + self.min_scale}
