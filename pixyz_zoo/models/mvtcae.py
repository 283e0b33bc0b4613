r"""MVTCAE (Hwang et al. 2021, "Multi-view representation learning via total correlation objective").

Generative model as in the JMVAE family, ``p(z) \prod_m p(m|z)``; inference by a product of the
modalities' Gaussian experts without a prior expert, ``q(z|S) \propto \prod_{m \in S}
\tilde{q}(z|m)`` for any subset ``S``. The objective comes from the total correlation of the
views and the latent (their sec. 3, final objective):

.. math::
    -\mathcal{L}(X) = \frac{M-\alpha}{M}\mathbb{E}_{q(z|X)}\left[-\log p(X|z)\right]
    + \beta\left[(1-\alpha) KL(q(z|X)||p(z)) + \frac{\alpha}{M}\sum_{m=1}^{M}
    KL(q(z|X)||\tilde{q}(z|x_m))\right]

``alpha`` and ``beta`` are ``Parameter`` symbols (``beta`` ramped during KL warm-up); the
defaults are alpha = 5/6 and beta = 2.5. ``likelihood_weights`` puts ``lambda_m`` on
``log p(m|z)`` inside ``log p(X|z)`` (default 1).
"""

from __future__ import annotations

from collections.abc import Sequence

from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, Parameter

from pixyz_zoo.distributions import ProductOfGaussianExperts
from pixyz_zoo.losses import sum_losses
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models.jmvae import (
    MultimodalVAE,
    check_likelihood_weights,
    weighted_log_likelihood,
)


class MVTCAE(MultimodalVAE):
    """MVTCAE: product of experts without the prior; reconstruction weighted by ``(M-alpha)/M``,
    ``beta`` times ``(1-alpha)`` KL to the prior plus ``alpha/M`` times the KLs to each expert."""

    name = "mvtcae"
    description = (
        "MVTCAE (Hwang et al. 2021): product of experts q(z|X) ∝ prod_m q~(z|m); total-correlation "
        "objective with weights alpha, beta"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        alpha: float = 5 / 6,
        beta: float = 2.5,
        likelihood_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = self.build_common(modalities, z_dim, hidden, arch, decoder_scale)
        weights = check_likelihood_weights(likelihood_weights, modalities)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha weighs two KL terms and must lie in [0, 1], got {alpha}")
        # q~(z|m) per modality; q(z|S) ∝ prod_{m in S} q~(z|m)
        self.build_experts(modalities, z_dim, arch, hidden)
        self.poe = ProductOfGaussianExperts(list(self.experts.values()), name="q")
        self.joint = self.poe.given(list(modalities))
        self.alpha, self.beta, self.likelihood_weights = alpha, beta, weights
        m = len(modalities)
        alpha_, beta_ = Parameter("alpha"), Parameter("beta")
        decoders = list(self.decoders.values())
        reconstruction = weighted_log_likelihood(decoders, weights)
        to_experts = sum_losses([KullbackLeibler(self.joint, expert) for expert in self.experts.values()])
        loss = (m - alpha_) / m * E(self.joint, -reconstruction) + beta_ * (
            (1 - alpha_) * KullbackLeibler(self.joint, self.prior) + alpha_ / m * to_experts
        )
        super().__init__(
            loss.mean(),
            distributions=[*decoders, *self.experts.values()],
            modalities=modalities,
            generative=self.generative_model(),
            inference=self.joint,
            hyperparameters={"alpha": alpha, "beta": beta},
            annealed={"beta"},
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                alpha=alpha,
                beta=beta,
                likelihood_weights=weights or None,
            ),
        )

    def subset_inference(self, given: list[str]) -> Distribution:
        return self.poe.given(given)


__all__ = ["MVTCAE"]
