r"""Mixture-based multimodal VAEs: MMVAE (mixture of experts) and MoPoE (mixture of products).

Both keep the generative model of the JMVAE family, ``p(z) \prod_m p(m|z)`` with ``p(z) = N(0, I)``
and one decoder per modality, and one Gaussian expert ``\tilde{q}(z|m)`` per modality. They differ
in how the experts are combined and in the objective:

- ``mmvae`` (Shi et al. 2019, "Variational mixture-of-experts autoencoders for multi-modal deep
  generative models", sec. 3): ``q(z|X) = \frac{1}{M}\sum_m \tilde{q}(z|m)``, trained on the
  stratified IWAE bound (their eq. 4) with ``k`` importance samples per expert and plain
  reparameterised gradients (not the DReG estimator): :class:`~pixyz_zoo.losses.iwae.StratifiedIWAE`.
  Given a subset ``S``, ``q(z|S)`` is the mixture of the experts of ``S``.
- ``mopoe`` (Sutter et al. 2021, "Generalized multimodal ELBO", sec. 3): one product of experts per
  non-empty subset, ``\tilde{q}(z|S) \propto \prod_{m \in S} \tilde{q}(z|m)`` (no prior expert),
  mixed uniformly, ``q(z|X) = \frac{1}{2^M-1}\sum_S \tilde{q}(z|S)``. The objective is their
  MoPoE-ELBO as they optimise it: the reconstruction term under ``z`` drawn from the mixture (one
  subset per example), and the mixture's KL replaced by its upper bound, the weighted sum of the
  subsets' KLs (Jensen): ``E_{q(z|X)}[-\sum_m \log p(m|z)] + \beta \frac{1}{2^M-1}\sum_S
  KL(\tilde{q}(z|S)||p(z))``. Given a subset ``S``, ``q(z|S)`` is the mixture over the subsets
  of ``S``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, Parameter

from pixyz_zoo.distributions import MixtureOfExperts, ProductOfGaussianExperts
from pixyz_zoo.losses import sum_losses
from pixyz_zoo.losses.iwae import StratifiedIWAE
from pixyz_zoo.modalities import Modality, nonempty_subsets
from pixyz_zoo.models.jmvae import (
    EXPERT_NAME,
    MultimodalVAE,
    check_likelihood_weights,
    weighted_log_likelihood,
)


class _Experts(MultimodalVAE):
    """One Gaussian expert ``\\tilde{q}(z|m)`` per modality, over the JMVAE generative model."""

    def trained_distributions(self) -> list[Distribution]:
        return [*self.decoders.values(), *self.experts.values()]

    def printed_subsets(self) -> list[list[str]]:
        """Every strict subset up to three modalities, the single modalities beyond."""
        order = list(self.modalities)
        if len(order) > 3:
            return [[m] for m in order]
        return [list(s) for s in nonempty_subsets(order) if len(s) < len(order)]


class MMVAE(_Experts):
    """MMVAE: ``q(z|X) = 1/M sum_m q~(z|m)`` trained on the stratified IWAE (Shi et al. 2019, eq. 4).

    ``k`` importance samples per expert (Shi et al. use 30 with the DReG estimator; here the
    gradients are the plain reparameterised ones). The prior is ``N(0, I)`` and the experts are
    Gaussian (Shi et al. use Laplace distributions; the objective is the same).
    """

    name = "mmvae"
    description = (
        "MMVAE (Shi et al. 2019): mixture of unimodal experts q(z|X) = 1/M sum_m q~(z|m), stratified "
        "IWAE objective (eq. 4) with k samples per expert"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        k: int = 10,
        likelihood_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = self.build_common(modalities, z_dim, hidden, arch, decoder_scale)
        weights = check_likelihood_weights(likelihood_weights, modalities)
        self.build_experts(modalities, z_dim, arch, hidden)
        # q(z|X) = 1/M sum_m q~(z|m)
        self.mixture = MixtureOfExperts(list(self.experts.values()), name="q")
        self.joint = self.mixture
        self.k, self.likelihood_weights = int(k), weights
        loss = StratifiedIWAE(self.mixture, self.prior, list(self.decoders.values()), self.k, weights).mean()
        super().__init__(
            loss,
            distributions=self.trained_distributions(),
            modalities=modalities,
            generative=self.generative_model(),
            inference=self.mixture,
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                k=self.k,
                likelihood_weights=weights or None,
            ),
        )

    def subset_inference(self, given: list[str]) -> Distribution:
        return self.mixture.given(given)


class MoPoE(_Experts):
    """MoPoE: ``q(z|X) = 1/(2^M-1) sum_S q~(z|S)`` with ``q~(z|S) ∝ prod_{m in S} q~(z|m)``.

    Loss (Sutter et al. 2021, the MoPoE-ELBO with the mixture's KL bounded by Jensen):
    ``E_q(z|X)[-sum_m log p(m|z)] + beta 1/(2^M-1) sum_S KL(q~(z|S)||p(z))``; ``z`` is drawn from
    the mixture, one subset per example, so the decoders run once per step.
    """

    name = "mopoe"
    description = (
        "MoPoE (Sutter et al. 2021): mixture over every non-empty subset of products of experts; "
        "MoPoE-ELBO with the KL of the mixture bounded by the subsets' mean KL"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        likelihood_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = self.build_common(modalities, z_dim, hidden, arch, decoder_scale)
        weights = check_likelihood_weights(likelihood_weights, modalities)
        self.build_experts(modalities, z_dim, arch, hidden)
        # q~(z|S) ∝ prod_{m in S} q~(z|m) for every non-empty subset S (a single expert as is)
        self.poe = ProductOfGaussianExperts(list(self.experts.values()), name=EXPERT_NAME)
        self.subset_experts = {
            s: self.experts[s[0]] if len(s) == 1 else self.poe.given(list(s))
            for s in nonempty_subsets(modalities)
        }
        # q(z|X) = 1/(2^M - 1) sum_S q~(z|S)
        self.mixture = MixtureOfExperts(list(self.subset_experts.values()), name="q")
        self.joint = self.mixture
        self.beta, self.likelihood_weights = beta, weights
        reconstruction = weighted_log_likelihood(list(self.decoders.values()), weights)
        subsets_kl = sum_losses([KullbackLeibler(q_s, self.prior) for q_s in self.subset_experts.values()])
        loss = E(self.mixture, -reconstruction) + Parameter("beta") * subsets_kl / len(self.subset_experts)
        super().__init__(
            loss.mean(),
            distributions=self.trained_distributions(),
            modalities=modalities,
            generative=self.generative_model(),
            inference=self.mixture,
            hyperparameters={"beta": beta},
            annealed={"beta"},
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                beta=beta,
                likelihood_weights=weights or None,
            ),
        )

    def subset_inference(self, given: list[str]) -> Distribution:
        """The mixture over the subsets of ``given`` of their products of experts."""
        return MixtureOfExperts(
            [q_s for s, q_s in self.subset_experts.items() if set(s) <= set(given)], name="q"
        )


__all__ = ["MMVAE", "MoPoE"]
