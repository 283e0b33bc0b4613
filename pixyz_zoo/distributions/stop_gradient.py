r"""``sg[q]``: a Gaussian with the parameters of ``q`` and no gradient through them (a fixed target).

Distillation trains a student towards a teacher without moving the teacher: in
``KL(sg[q_T](z|X) || q_s(z|x_m))`` only the student ``q_s`` receives gradients. ``sg`` is the
stop-gradient operator; the printed name shows it.
"""

from __future__ import annotations

from functools import partial

import torch
from pixyz.distributions import Normal
from pixyz.distributions.distributions import Distribution
from torch import distributions as td

from pixyz_zoo.distributions.refinement import require_gaussian
from pixyz_zoo.distributions.shared_parameters import SharedParameters

__all__ = ["StopGradient"]


class StopGradient(SharedParameters, Normal):
    """``sg[q]``: ``q``'s (diagonal Gaussian) parameters, detached from the graph."""

    def __init__(self, distribution: Distribution) -> None:
        require_gaussian(distribution, "the distribution whose gradient is stopped,")
        super().__init__(
            var=list(distribution.var),
            cond_var=list(distribution.cond_var),
            name=rf"\mathrm{{sg}}[{distribution.name}]",
        )
        # a reference, not a submodule: the target's parameters belong to the model elsewhere
        object.__setattr__(self, "target", distribution)

    @property
    def distribution_torch_class(self):
        return partial(td.Normal, validate_args=False)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        params = self.target.get_params(inputs)
        return {"loc": params["loc"].detach(), "scale": params["scale"].detach()}
