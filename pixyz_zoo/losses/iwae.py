r"""The stratified importance-weighted bound of a mixture of experts (MMVAE, Shi et al. 2019).

For modalities :math:`X = (x_1..x_M)` and the mixture :math:`q(z|X) = \frac{1}{M}\sum_m q(z|x_m)`,
Shi et al.'s stratified IWAE (their eq. 4, "L_IWAE^MoE") draws K samples from *each* component
and weighs them by the whole mixture's density:

.. math::
    \mathcal{L}(X) = \frac{1}{M}\sum_{m=1}^{M} \mathbb{E}_{z^{1:K} \sim q(z|x_m)}\left[
    \log \frac{1}{K}\sum_{k=1}^{K} \frac{p(z^k, X)}{q(z^k|X)} \right]

With K = 1 it is the stratified ELBO with the mixture's density in the weight. Gradients are the
plain reparameterised ones (the DReG estimator of their sec. 3.2 is not implemented).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sympy
import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss

from pixyz_zoo.checks import check_count
from pixyz_zoo.distributions.experts import MixtureOfExperts


def _repeat(value: torch.Tensor, k: int) -> torch.Tensor:
    """Rows repeated sample-major: row ``s * B + b`` is example ``b``."""
    return value.repeat(k, *([1] * (value.dim() - 1)))


class StratifiedIWAE(Loss):
    """``-L`` above, per example: the negative stratified IWAE bound with ``k`` samples per expert.

    Args:
        mixture: ``q(z|X)``, a :class:`MixtureOfExperts` whose components are sampled in turn.
        prior: ``p(z)``.
        decoders: ``p(x_m|z)`` for every modality; ``p(z, X) = p(z) prod_m p(x_m|z)``.
        k: importance samples per component.
        weights: optional ``lambda_m`` on ``log p(x_m|z)`` in the weight (Shi et al.'s likelihood
            rescaling; default 1).
    """

    def __init__(
        self,
        mixture: MixtureOfExperts,
        prior: Distribution,
        decoders: Sequence[Distribution],
        k: int = 1,
        weights: dict[str, float] | None = None,
    ) -> None:
        k = check_count(k, "the number of importance samples k")
        observed = [d.var[0] for d in decoders]
        super().__init__(input_var=observed)
        self.mixture, self.prior, self.decoders, self.k = mixture, prior, list(decoders), int(k)
        self.weights = {d.var[0]: float((weights or {}).get(d.var[0], 1.0)) for d in decoders}

    def log_joint(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """``log p(z) + sum_m lambda_m log p(x_m|z)``."""
        total = self.prior.get_log_prob(values)
        for decoder in self.decoders:
            total = total + self.weights[decoder.var[0]] * decoder.get_log_prob(values)
        return total

    def forward(self, x_dict: dict, **kwargs) -> tuple[torch.Tensor, dict]:
        batch = len(x_dict[self.input_var[0]])
        repeated = {name: _repeat(x_dict[name], self.k) for name in self.input_var}
        bounds = []
        for expert in self.mixture.experts:
            z = expert.sample({c: repeated[c] for c in expert.cond_var}, reparam=True, return_all=False)
            values = {**repeated, **z}
            log_w = self.log_joint(values) - self.mixture.get_log_prob(values)
            bounds.append(torch.logsumexp(log_w.view(self.k, batch), dim=0) - math.log(self.k))
        weights = self.mixture.weights.reshape(-1, 1)
        return -(weights * torch.stack(bounds)).sum(0), {}

    @property
    def _symbol(self) -> sympy.Symbol:
        (z,) = self.mixture.var
        observed = ",".join(self.input_var)
        experts = self.mixture.experts
        components = ",".join(e.prob_text for e in experts)
        k = self.k
        average = rf"\frac{{1}}{{{len(experts)}}}\sum_{{\tilde{{q}} \in \{{{components}\}}}}"
        weighted = any(w != 1.0 for w in self.weights.values())
        joint = (
            rf"p({z}^{{i}})\prod_{{m}} p(m|{z}^{{i}})^{{\lambda_m}}"
            if weighted
            else rf"p({z}^{{i}},{observed})"
        )
        ratio = rf"\frac{{{joint}}}{{{self.mixture.name}({z}^{{i}}|{observed})}}"
        inner = rf"\log \frac{{1}}{{{k}}}\sum_{{i=1}}^{{{k}}} {ratio}"
        return sympy.Symbol(
            rf"-{average} \mathbb{{E}}_{{{z}^{{1:{k}}} \sim \tilde{{q}}}}\left[{inner}\right]"
        )
