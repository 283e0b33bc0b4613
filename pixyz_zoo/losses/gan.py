r"""VAE-GAN's adversarial terms (Larsen et al. 2016, sec. 2.2-2.3) as Pixyz losses.

The decoder ``p(x|z)`` is also a GAN's generator. Its images are the decoder's means
``\bar{x}(z) = E_{p(x|z)}[x]`` (the JMVAE paper's image decoder is a Gaussian with fixed unit
variance, sec. 4.2.2, so its mean is the image it makes; a Bernoulli decoder gives its pixel
probabilities). As in VAE-GAN there are two kinds of fake images: reconstructions, decoded from
``z ~ q(z|x,w)``, and samples, decoded from ``z ~ p(z)``. A discriminator ``D`` (logit ``l``,
``D = sigmoid(l)``) tells them from the data:

- :class:`AdversarialGeneratorLoss`, the generator's term, per example:
  ``-log D(\bar{x}(z_q)) - log D(\bar{x}(z_p))`` with ``z_q ~ sg[q](z|x,w)``, ``z_p ~ p(z)``.
  It is the non-saturating form (Goodfellow et al. 2014, sec. 3) in place of
  ``log(1 - D(.))``, whose gradient vanishes while the discriminator wins. The encoder gets no
  adversarial gradient: ``z_q`` is drawn from ``sg[q]``, the encoder with its parameters
  detached (VAE-GAN trains the encoder on the prior and reconstruction terms only, Algorithm 1);
  the gradient reaches the decoder only.
- :meth:`AdversarialGeneratorLoss.discriminator_loss`, the discriminator's cross-entropy on the
  data (label 1) and both kinds of fake (label 0), three terms, each ``ln 2`` at chance.
- :class:`FeatureLogLikelihood`: VAE-GAN's feature-matching reconstruction (eq. 8), the image's
  log-likelihood taken as a unit-variance Gaussian on the discriminator's features
  ``log N(Dis_l(x); Dis_l(\bar{x}(z)), I)``.
"""

from __future__ import annotations

import math

import sympy
import torch
import torch.nn.functional as F
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss
from torch import nn

from pixyz_zoo.distributions.stop_gradient import StopGradient

__all__ = ["AdversarialGeneratorLoss", "FeatureLogLikelihood"]

#: The discriminator's loss at chance (D = 1/2 everywhere): ln 2 per term, three terms.
DISCRIMINATOR_LOSS_AT_CHANCE = 3 * math.log(2.0)


def _mean_image(decoder: Distribution, z: torch.Tensor) -> torch.Tensor:
    """``\\bar{x}(z)``: the decoder's mean, differentiable in its parameters."""
    return decoder.sample_mean({decoder.cond_var[0]: z})


def _image_symbol(decoder: Distribution) -> str:
    return rf"\bar{{{decoder.var[0]}}}({decoder.cond_var[0]})"


class AdversarialGeneratorLoss(Loss):
    r"""The generator's non-saturating adversarial loss, per example (see the module doc).

    ``-log D(\bar{x}(z_q)) - log D(\bar{x}(z_p))``, ``z_q ~ sg[q](z|x,w)``, ``z_p ~ p(z)``: one
    reconstruction and one prior sample per example of the batch. ``decoder`` is the image's
    ``p(x|z)``, ``q`` the inference distribution whose samples are reconstructed, ``prior`` ``p(z)``.
    """

    def __init__(
        self, q: Distribution, decoder: Distribution, prior: Distribution, discriminator: nn.Module
    ) -> None:
        super().__init__(input_var=list(q.cond_var))
        if decoder.cond_var != prior.var or len(prior.var) != 1:
            raise ValueError(
                f"the generator {decoder.prob_text} must be conditioned on the prior's variable alone "
                f"({prior.prob_text})"
            )
        self.q_stopped = StopGradient(q)  # sg[q]: no adversarial gradient to the encoder
        self.decoder = decoder
        self.prior = prior
        self.discriminator = discriminator
        self.image = decoder.var[0]
        self.latent = prior.var[0]

    def fakes(self, x_dict: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(\\bar{x}(z_q), \\bar{x}(z_p))``: a reconstruction and a prior sample per example."""
        inputs = {k: x_dict[k] for k in self.q_stopped.cond_var}
        z_q = self.q_stopped.sample(inputs, reparam=True, return_all=False)[self.latent]
        z_p = self.prior.sample(batch_n=len(z_q), return_all=False)[self.latent].to(z_q.device)
        return _mean_image(self.decoder, z_q), _mean_image(self.decoder, z_p)

    def forward(self, x_dict: dict, **kwargs):
        reconstructed, sampled = self.fakes(x_dict)
        # -log sigmoid(l) = softplus(-l): the non-saturating generator loss
        loss = F.softplus(-self.discriminator(reconstructed)) + F.softplus(-self.discriminator(sampled))
        return loss, {}

    def discriminator_terms(self, x_dict: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The discriminator's loss (graph to ``D`` only) and the generator's loss on the same
        fakes (detached), both batch means. The fakes are drawn afresh, without gradient."""
        real = x_dict[self.image]
        with torch.no_grad():
            reconstructed, sampled = self.fakes(x_dict)
        real_logit = self.discriminator(real)
        fake_logits = [self.discriminator(reconstructed), self.discriminator(sampled)]
        loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
        for logit in fake_logits:
            loss = loss + F.binary_cross_entropy_with_logits(logit, torch.zeros_like(logit))
        generator = sum(F.softplus(-logit.detach()).mean() for logit in fake_logits)
        return loss, generator

    def discriminator_loss(self, x_dict: dict) -> torch.Tensor:
        """``-log D(x) - log(1 - D(\\bar{x}(z_q))) - log(1 - D(\\bar{x}(z_p)))``, the batch mean:
        real images labelled 1, both kinds of fake labelled 0 (``3 ln 2`` at chance)."""
        return self.discriminator_terms(x_dict)[0]

    @property
    def _symbol(self):
        x, q, p = _image_symbol(self.decoder), self.q_stopped.prob_text, self.prior.prob_text
        return sympy.Symbol(
            rf"\left(- \mathbb{{E}}_{{{q}}} \left[\log D({x}) \right] - \mathbb{{E}}_{{{p}}} "
            rf"\left[\log D({x}) \right]\right)"
        )


class FeatureLogLikelihood(Loss):
    r"""``log N(Dis_l(x); Dis_l(\bar{x}(z)), I)`` per example (VAE-GAN, Larsen et al. 2016, eq. 8).

    ``discriminator.features`` is ``Dis_l``. The data and the reconstruction go through the
    discriminator in one batch, so that its batch normalisation treats both alike. The gradient
    reaches the decoder and, through ``z``, the encoder (this is the reconstruction term of the
    bound); the discriminator is not trained on it.
    """

    def __init__(self, decoder: Distribution, discriminator: nn.Module) -> None:
        super().__init__(input_var=[*decoder.var, *decoder.cond_var])
        self.decoder = decoder
        self.discriminator = discriminator
        self.image = decoder.var[0]

    def forward(self, x_dict: dict, **kwargs):
        x = x_dict[self.image]
        reconstructed = _mean_image(self.decoder, x_dict[self.decoder.cond_var[0]])
        real, fake = self.discriminator.features(torch.cat([x, reconstructed])).chunk(2)
        dim = real.shape[1]
        value = -0.5 * ((real - fake) ** 2).sum(1) - 0.5 * dim * math.log(2 * math.pi)
        return value, {}

    @property
    def _symbol(self):
        x = self.image
        return sympy.Symbol(
            rf"\log \mathcal{{N}}(\mathrm{{Dis}}_l({x}); \mathrm{{Dis}}_l({_image_symbol(self.decoder)}), I)"
        )
