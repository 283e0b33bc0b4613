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

__all__ = ["StopGradient", "StraightThroughRefinement"]


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


class StraightThroughRefinement(SharedParameters, Normal):
    r"""A refined Gaussian ``q_T`` whose parameters pass gradients straight to its start.

    Value: :math:`\lambda_T` of ``refined``. Gradient: to whatever :math:`\lambda_T` itself depends
    on (a learned update's last step) and, taking :math:`\partial\lambda_T/\partial\lambda_0` as the
    identity, to the encoder that gave :math:`\lambda_0`:
    :math:`\lambda_T + \lambda_0 - \mathrm{sg}[\lambda_0]`. Gradient-step refinements keep no graph
    across their steps, so without this a loss on :math:`\lambda_T` would reach nothing.
    """

    def __init__(self, refined: Distribution) -> None:
        require_gaussian(refined, "the refined distribution")
        super().__init__(var=list(refined.var), cond_var=list(refined.cond_var), name=refined.name)
        object.__setattr__(self, "target", refined)

    @property
    def distribution_torch_class(self):
        return partial(td.Normal, validate_args=False)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        params = self.target.get_params(inputs)
        start = self.target.initial
        # a fresh pass of the start encoder: the refinement has already used (and freed) its graph
        fresh = start.forward(**{k: inputs[k] for k in start.cond_var})
        return {key: params[key] + fresh[key] - fresh[key].detach() for key in ("loc", "scale")}
