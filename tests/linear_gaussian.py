"""A linear-Gaussian VAE whose posterior and evidence are known in closed form (test helper).

    p(z) = N(0, I),  p(x|z) = N(x; W z + b, sigma^2 I),  W with orthogonal columns

so the exact posterior N(mu(x), S) has a diagonal covariance ``S = (I + W^T W / sigma^2)^-1``
(it lies in the zoo's diagonal Gaussian family: the approximation gap is 0) and
``log p(x) = log N(x; b, W W^T + sigma^2 I)``. The zoo model is the plain ``VAE`` with linear
networks (``hidden=[]``) and a fixed-scale Gaussian decoder whose weights are set to ``W, b``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import VAE, build_model


@dataclass
class LinearGaussian:
    model: VAE
    W: torch.Tensor
    b: torch.Tensor
    sigma: float

    def sample(self, n: int, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.W.shape[1], generator=g)
        return z @ self.W.T + self.b + self.sigma * torch.randn(n, self.W.shape[0], generator=g)

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(self.W.shape[0])
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.W.shape[1]
        cov = torch.linalg.inv(torch.eye(k) + self.W.T @ self.W / self.sigma**2)
        return (x - self.b) @ self.W @ cov / self.sigma**2, cov.diagonal().sqrt().expand(len(x), k)

    def elbo(self, x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The ELBO of N(loc, diag scale^2) in closed form, per example."""
        mean = loc @ self.W.T + self.b
        expected = torch.distributions.Normal(mean, self.sigma).log_prob(x).sum(1)
        expected = expected - 0.5 / self.sigma**2 * (scale**2 @ (self.W**2).T).sum(1)
        kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(1)
        return expected - kl

    def dataset(self, n: int, seed: int = 1) -> MultimodalDataset:
        return MultimodalDataset("linear-gaussian", {"x": self.sample(n, seed)}, self.model.modalities)


def linear_gaussian(
    d: int = 6, k: int = 2, sigma: float = 0.5, seed: int = 0, model: str = "vae", **options
) -> LinearGaussian:
    torch.manual_seed(seed)
    modalities = {"x": Modality("x", (d,), "gaussian")}
    model_ = build_model(model, modalities, z_dim=k, hidden=[], decoder_scale=sigma, **options)
    (linear,) = [m for m in model_.p_x.modules() if isinstance(m, nn.Linear)]
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=g))
    W = q * torch.linspace(2.0, 0.7, k)
    b = 0.3 * torch.randn(d, generator=g)
    with torch.no_grad():
        linear.weight.copy_(W)
        linear.bias.copy_(b)
    return LinearGaussian(model_, W, b, sigma)
