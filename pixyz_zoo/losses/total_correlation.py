"""Minibatch-weighted sampling estimates of the aggregate posterior (Chen et al. 2018, sec. 4.1).

For a batch {x_1..x_M} drawn from a dataset of N examples and z_i ~ q(z|x_i):

    log q(z_i)           ~= logsumexp_j log q(z_i|x_j) - log(N M)
    log prod_d q(z_id)   ~= sum_d [ logsumexp_j log q(z_id|x_j) - log(N M) ]

With these, KL(q(z|x)||p(z)) averaged over the data splits into index-code mutual information
E[log q(z|x) - log q(z)], total correlation E[log q(z) - log prod_d q(z_d)] and dimension-wise KL
E[log prod_d q(z_d) - log p(z)] (beta-TCVAE, eq. 2). The dataset size N is a ``Parameter``
symbol fed through the batch.
"""

from __future__ import annotations

import math

import sympy
import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss
from torch import distributions as td


class _MinibatchMarginal(Loss):
    """Shared evaluation: log q(z_i_d | x_j) for every pair (i, j) of the batch."""

    def __init__(self, q: Distribution, dataset_size: str = "N") -> None:
        if len(q.var) != 1:
            raise ValueError("the minibatch-weighted estimate needs an encoder over one latent variable")
        super().__init__(input_var=[*q.input_var, q.var[0], dataset_size])
        self.q = q
        self.dataset_size = dataset_size

    def _pairwise(self, x_dict: dict) -> tuple[torch.Tensor, float]:
        z = x_dict[self.q.var[0]]  # (M, D)
        params = self.q.get_params({k: x_dict[k] for k in self.q.cond_var})
        pairwise = td.Normal(params["loc"].unsqueeze(0), params["scale"].unsqueeze(0)).log_prob(
            z.unsqueeze(1)
        )
        n = float(x_dict[self.dataset_size])
        return pairwise, math.log(n * z.shape[0])  # (M_i, M_j, D), log(N M)


class AggregatePosteriorLogProb(_MinibatchMarginal):
    """``log q(z)`` of the aggregate posterior q(z) = E_p(x)[q(z|x)], minibatch-weighted."""

    def forward(self, x_dict: dict, **kwargs):
        pairwise, log_nm = self._pairwise(x_dict)
        return torch.logsumexp(pairwise.sum(-1), dim=1) - log_nm, {}

    @property
    def _symbol(self):
        return sympy.Symbol(rf"\log \hat{{{self.q.name}}}_{{{self.dataset_size}}}({self.q.var[0]})")


class ProductOfMarginalsLogProb(_MinibatchMarginal):
    """``log prod_d q(z_d)``: the aggregate posterior with its dimensions made independent."""

    def forward(self, x_dict: dict, **kwargs):
        pairwise, log_nm = self._pairwise(x_dict)
        return (torch.logsumexp(pairwise, dim=1) - log_nm).sum(-1), {}

    @property
    def _symbol(self):
        var = self.q.var[0]
        return sympy.Symbol(rf"\log \prod_{{d}} \hat{{{self.q.name}}}_{{{self.dataset_size}}}({var}_{{d}})")
