r"""Surrogate inference by regression on stopped targets (MFM, Tsai et al. 2019, sec. 2.3, eq. 5).

With modalities missing, the factors that the observed subset :math:`S` cannot compute itself are
regressed from :math:`X_S` by a surrogate encoder :math:`\hat{q}(z|X_S)` onto the codes the full
data gives, held fixed (stop-gradient): per example,

.. math::
    \left\lVert \hat{E}_S(X_S) - \mathrm{sg}\left[E(X)\right] \right\rVert^2

summed over the regressed latents. The full-data encoders receive no gradient from it, so adding
it to the training loss trains the surrogate without changing the model it imitates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss

__all__ = ["SurrogateRegression"]


class SurrogateRegression(Loss):
    """``||q^(z|X_S) - sg[q(z|X)]||^2`` per example, summed over the latents of ``surrogate``.

    Args:
        surrogate: a deterministic encoder of the latents to regress from the observed modalities.
        targets: the full-data encoders of those latents (one latent each); their codes are detached.
    """

    def __init__(self, surrogate: Distribution, targets: Sequence[Distribution]) -> None:
        targets = list(targets)
        given = [v for t in targets for v in t.var]
        if sorted(given) != sorted(surrogate.var):
            raise ValueError(
                f"{surrogate.prob_text} regresses {list(surrogate.var)}, but the targets give {given}"
            )
        inputs = list(dict.fromkeys([*surrogate.input_var, *(v for t in targets for v in t.input_var)]))
        super().__init__(input_var=inputs)
        self.surrogate, self.targets = surrogate, targets

    def forward(self, x_dict: dict, **kwargs) -> tuple[torch.Tensor, dict]:
        codes = self.surrogate.sample({k: x_dict[k] for k in self.surrogate.input_var}, return_all=False)
        total = 0.0
        for target in self.targets:
            wanted = target.sample({k: x_dict[k] for k in target.input_var}, return_all=False)
            for var, value in wanted.items():
                total = total + (codes[var] - value.detach()).pow(2).flatten(1).sum(1)
        return total, {}

    @property
    def _symbol(self) -> sympy.Symbol:
        target = "".join(t.prob_text for t in self.targets)
        return sympy.Symbol(
            rf"\left\| {self.surrogate.prob_text} - \mathrm{{sg}}\left[{target}\right] \right\|^2"
        )
