"""Total correlation by the density-ratio trick (FactorVAE, Kim & Mnih 2018, sec. 3).

    TC(z) = KL(q(z) || prod_d q(z_d)) ~= E_q(z)[ log D(z) / (1 - D(z)) ] = E_q(z)[ logit D(z) ]

A discriminator D tells samples of q(z) from samples of prod_d q(z_d), drawn by permuting each
latent dimension across the batch (Kim & Mnih, Algorithm 1). The VAE minimises the estimate; the
discriminator is trained separately on ``discriminator_loss``.
"""

from __future__ import annotations

import sympy
import torch
import torch.nn.functional as F
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss
from torch import nn


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample of prod_d q(z_d): each dimension shuffled independently across the batch."""
    n = z.shape[0]
    index = torch.stack([torch.randperm(n, generator=generator, device="cpu") for _ in range(z.shape[1])], 1)
    return torch.gather(z, 0, index.to(z.device))


class AdversarialTotalCorrelation(Loss):
    """``E_q(z)[log D(z) / (1 - D(z))]`` per example, with ``z ~ q(z|x)`` reparameterised."""

    def __init__(self, q: Distribution, discriminator: nn.Module) -> None:
        super().__init__(input_var=list(q.input_var))
        self.q = q
        self.discriminator = discriminator

    def forward(self, x_dict: dict, **kwargs):
        z = self.q.sample({k: x_dict[k] for k in self.q.cond_var}, reparam=True, return_all=False)
        return self.discriminator(z[self.q.var[0]]).squeeze(-1), {}

    def discriminator_loss(self, x_dict: dict) -> torch.Tensor:
        """Cross-entropy of D on q(z) samples (label 1) and permuted samples (label 0)."""
        with torch.no_grad():
            z = self.q.sample({k: x_dict[k] for k in self.q.cond_var}, return_all=False)[self.q.var[0]]
        real, permuted = self.discriminator(z).squeeze(-1), self.discriminator(permute_dims(z)).squeeze(-1)
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(permuted, torch.zeros_like(permuted))

    @property
    def _symbol(self):
        z = self.q.var[0]
        return sympy.Symbol(
            rf"\mathbb{{E}}_{{{self.q.name}({z})}} \left[\log \frac{{D({z})}}{{1 - D({z})}} \right]"
        )
