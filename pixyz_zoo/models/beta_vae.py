"""The beta-VAE family: one encoder/decoder/prior, four ways to weigh the KL term.

All share the VAE's distributions ``q(z|x)``, ``p(x|z)``, ``p(z) = N(0, I)`` and differ only in
the loss expression:

- beta-VAE (Higgins et al. 2017, eq. 4): ``-E_q[log p(x|z)] + beta KL(q(z|x)||p(z))``;
- annealed-capacity beta-VAE (Burgess et al. 2018, eq. 8): ``-E_q[log p(x|z)] + gamma |KL - C|``
  with the capacity ``C`` annealed linearly from 0 to ``capacity`` during warm-up;
- beta-TCVAE (Chen et al. 2018, eq. 4): ``-E_q[log p(x|z)] + alpha MI + beta TC + gamma dimKL``,
  the KL split by minibatch-weighted sampling (see ``pixyz_zoo.losses.total_correlation``);
- FactorVAE (Kim & Mnih 2018, eq. 2): the VAE bound plus ``gamma`` times a discriminator's
  density-ratio estimate of the total correlation (see ``pixyz_zoo.losses.adversarial``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb, Parameter
from torch import nn

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.losses.adversarial import AdversarialTotalCorrelation
from pixyz_zoo.losses.total_correlation import AggregatePosteriorLogProb, ProductOfMarginalsLogProb
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models.base import WithDiscriminator
from pixyz_zoo.models.vae import VAE


class BetaVAE(VAE):
    """beta-VAE: the VAE bound with the KL weighted by a constant ``beta`` (default 4)."""

    name = "beta-vae"
    description = "beta-VAE (Higgins et al. 2017, eq. 4): KL weighted by beta"

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: str | None = None,
        z_dim: int = 10,
        hidden: Sequence[int] = (1200, 1200),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 4.0,
        lr: float = 1e-4,
        clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__(modalities, observed, z_dim, hidden, arch, decoder_scale, beta, lr, clip_grad_norm)


class AnnealedVAE(VAE):
    """Capacity-annealed beta-VAE: pull the KL towards a capacity C that grows during warm-up."""

    name = "annealed-vae"
    description = "annealed-capacity beta-VAE (Burgess et al. 2018, eq. 8): gamma |KL - C|, C annealed"

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: str | None = None,
        z_dim: int = 10,
        hidden: Sequence[int] = (1200, 1200),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        gamma: float = 1000.0,
        capacity: float = 25.0,
        lr: float = 1e-4,
        clip_grad_norm: float | None = None,
    ) -> None:
        self.gamma, self.capacity = gamma, capacity
        self.build(
            modalities,
            observed,
            z_dim,
            hidden,
            arch,
            decoder_scale,
            lr,
            clip_grad_norm,
            gamma=gamma,
            capacity=capacity,
        )

    def objective(self):
        """eq. (8): E_q[-log p(x|z)] + gamma |KL(q(z|x) || p(z)) - C|, C annealed from 0."""
        q, p_x, prior = self.q, self.p_x, self.prior
        C, gamma = Parameter("C"), Parameter("gamma")
        loss = (E(q, -LogProb(p_x)) + gamma * (KullbackLeibler(q, prior) - C).abs()).mean()
        return loss, {"C": self.capacity, "gamma": self.gamma}, {"C"}


class BetaTCVAE(VAE):
    """beta-TCVAE: the KL split into mutual information, total correlation and dimension-wise KL."""

    name = "beta-tcvae"
    description = "beta-TCVAE (Chen et al. 2018, eq. 4): alpha MI + beta TC + gamma dim-wise KL, MWS"
    batch_estimate = "log q(z) and log prod_d q(z_d), minibatch-weighted over the batch (sec. 4.1)"

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: str | None = None,
        z_dim: int = 10,
        hidden: Sequence[int] = (1200, 1200),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        alpha: float = 1.0,
        beta: float = 6.0,
        gamma: float = 1.0,
        dataset_size: int | None = None,
        lr: float = 1e-4,
        clip_grad_norm: float | None = None,
    ) -> None:
        if dataset_size is not None and dataset_size < 1:
            raise ValueError(f"dataset_size is the number of training examples (>= 1), got {dataset_size}")
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.dataset_size = dataset_size
        self.build(
            modalities,
            observed,
            z_dim,
            hidden,
            arch,
            decoder_scale,
            lr,
            clip_grad_norm,
            alpha=alpha,
            beta=beta,
            gamma=gamma,
            dataset_size=dataset_size,
        )

    def objective(self):
        """eq. (4) with the minibatch-weighted estimates over a dataset of N examples.

        N is ``dataset_size``; when it is None the trainer's ``prepare`` sets it from the
        training data (and records it in the config, so a checkpoint rebuilds the same loss).
        """
        q, p_x, prior = self.q, self.p_x, self.prior
        log_qz = AggregatePosteriorLogProb(q, dataset_size="N")
        log_prod_qz = ProductOfMarginalsLogProb(q, dataset_size="N")
        mutual_information = LogProb(q) - log_qz
        total_correlation = log_qz - log_prod_qz
        dimension_wise_kl = log_prod_qz - LogProb(prior)
        self.terms = {
            "mutual_information": E(q, mutual_information).mean(),
            "total_correlation": E(q, total_correlation).mean(),
            "dimension_wise_kl": E(q, dimension_wise_kl).mean(),
        }
        alpha, beta, gamma = Parameter("alpha"), Parameter("beta"), Parameter("gamma")
        loss = E(
            q,
            -LogProb(p_x) + alpha * mutual_information + beta * total_correlation + gamma * dimension_wise_kl,
        ).mean()
        n = float(self.dataset_size) if self.dataset_size is not None else 1.0
        return loss, {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma, "N": n}, set()

    def prepare(self, train_data: MultimodalDataset) -> None:
        """The minibatch-weighted estimates need the dataset size N: the training set's size,
        unless ``dataset_size`` was given (e.g. a run on a subset that stands for a larger set)."""
        if self.dataset_size is None:
            self.dataset_size = len(train_data)
            self.config["dataset_size"] = self.dataset_size
        self.hyperparameters["N"] = float(self.dataset_size)


class FactorVAE(WithDiscriminator, VAE):
    """FactorVAE: the VAE bound plus gamma times a discriminator's estimate of total correlation.

    ``-E_q[log p(x|z)] + KL(q(z|x)||p(z)) + gamma E_q(z)[log D(z)/(1-D(z))]`` (Kim & Mnih 2018,
    eq. 2). Each training step also takes one Adam step of the discriminator (an MLP with
    ``discriminator_hidden`` LeakyReLU(0.2) layers, by default the paper's 6 layers of 1000 units
    (Kim & Mnih 2018, appendix), lr 1e-4, betas (0.5, 0.9) as in the paper). It has one
    logit output where the paper has two softmax outputs: the same classifier. The permuted
    samples come from the same minibatch (the paper draws a second one).
    """

    name = "factor-vae"
    description = "FactorVAE (Kim & Mnih 2018, eq. 2): gamma x adversarial total correlation"
    batch_estimate = "the discriminator's samples of prod_d q(z_d), each dimension permuted across the batch"

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: str | None = None,
        z_dim: int = 10,
        hidden: Sequence[int] = (1200, 1200),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        gamma: float = 35.0,
        discriminator_hidden: Sequence[int] = (1000,) * 6,
        lr: float = 1e-4,
        clip_grad_norm: float | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        last = z_dim
        for width in discriminator_hidden:
            layers += [nn.Linear(last, width), nn.LeakyReLU(0.2)]
            last = width
        self.discriminator = nn.Sequential(*layers, nn.Linear(last, 1))
        self.gamma = gamma
        self.build(
            modalities,
            observed,
            z_dim,
            hidden,
            arch,
            decoder_scale,
            lr,
            clip_grad_norm,
            gamma=gamma,
            discriminator_hidden=list(discriminator_hidden),
        )
        self.discriminator_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=1e-4, betas=(0.5, 0.9), fused=True
        )

    def objective(self):
        """eq. (2): -ELBO + gamma E_q(z)[log D(z) / (1 - D(z))]."""
        q, p_x, prior = self.q, self.p_x, self.prior
        self.total_correlation = AdversarialTotalCorrelation(q, self.discriminator)
        gamma = Parameter("gamma")
        loss = (E(q, -LogProb(p_x)) + KullbackLeibler(q, prior) + gamma * self.total_correlation).mean()
        return loss, {"gamma": self.gamma}, set()

    def train(self, train_x_dict: dict | None = None, **kwargs) -> torch.Tensor:
        """The VAE's step, then the discriminator's; both without a host sync: a NaN/inf discriminator
        loss (or a skipped VAE step) skips the discriminator's update on the device and shows in
        ``step_health``."""
        loss = super().train(train_x_dict, **kwargs)  # VAE step; D is not in its optimiser
        _, value, _ = self.discriminator_backward_step(train_x_dict or {}, skip=self._skip)
        self.step_health = torch.cat([self.step_health[:2], value[None]])
        return loss

    def discriminator_objective(self):
        """The discriminator's cross-entropy on q(z) samples and permuted samples."""
        return self.total_correlation.discriminator_loss
