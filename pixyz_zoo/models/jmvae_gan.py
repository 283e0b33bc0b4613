r"""JMVAE-GAN: JMVAE-kl whose image decoder is also a GAN's generator (Suzuki & Matsuo, sec. 4.6.3).

The JMVAE paper trains JMVAE-kl on CelebA "together with a GAN's loss, regarding the network of
``p(x|z)`` as the generator, the same method as the VAE-GAN model" (sec. 4.6.3, following Larsen
et al. 2016, "Autoencoding beyond pixels using a learned similarity metric"), with the
discriminator ``C64R-C128BR-C256BR-C256BR-F-D1024R-D1S``
(:class:`~pixyz_zoo.distributions.celeba_networks.DiscriminatorNet`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb, Parameter
from pixyz.losses.losses import Loss

from pixyz_zoo.distributions.celeba_networks import CONV_CHANNELS, DISCRIMINATOR_HIDDEN, DiscriminatorNet
from pixyz_zoo.losses import sum_losses
from pixyz_zoo.losses.gan import AdversarialGeneratorLoss, FeatureLogLikelihood
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models.base import NonFiniteLossError, WithDiscriminator
from pixyz_zoo.models.jmvae import JMVAEKL, check_multimodal

#: Datasets of the zoo with one image modality beside other modalities (named in errors).
IMAGE_DATASETS = "attribute-shapes, celeba, digits, attribute-digits, mnist-10k or attribute-mnist"


def adversarial_image(modalities: dict[str, Modality], image: str | None, model: str) -> str:
    """The image modality the GAN generates: ``image``, or the data's only image modality."""
    images = [name for name, m in modalities.items() if m.is_image]
    if image is not None:
        if image not in modalities:
            raise KeyError(f"image={image!r} is not a modality; the data has {sorted(modalities)}")
        if image not in images:
            raise ValueError(
                f"image={image!r} has shape {modalities[image].shape}, not an image (channels, height, "
                f"width); the data's image modalities are {images or 'none'}"
            )
        return image
    if not images:
        shapes = {name: m.shape for name, m in modalities.items()}
        raise ValueError(
            f"{model} trains its image decoder p(x|z) as a GAN's generator, but the data has no image "
            f"modality (shapes {shapes}); use a dataset with an image and other modalities: "
            f"{IMAGE_DATASETS}"
        )
    if len(images) > 1:
        raise ValueError(
            f"{model} generates one image modality adversarially and the data has {len(images)}: "
            f"{images}; choose one with the option image (e.g. -o image={images[-1]})"
        )
    return images[0]


class JMVAEGAN(WithDiscriminator, JMVAEKL):
    r"""JMVAE-GAN: the negated JMVAE-kl bound (eq. 10) plus ``gamma`` times a GAN generator loss.

    Loss, per example: ``-L_JMkl(x,w) + gamma [-E_{sg[q](z|x,w)} log D(\bar{x}(z))
    - E_{p(z)} log D(\bar{x}(z))]``, where ``\bar{x}(z)`` is the image decoder's mean and ``D``
    the discriminator (:mod:`pixyz_zoo.losses.gan`): VAE-GAN's two kinds of fake (reconstructions
    from ``q(z|x,w)`` and decodes of prior samples), the non-saturating generator loss, no
    adversarial gradient to the encoder (``sg``: stop-gradient). ``gamma`` is a ``Parameter``
    symbol (not warmed up).

    ``reconstruction="pixel"`` (default): the JMVAE-kl bound unchanged, the image's pixel
    likelihood ``log p(x|z)`` in it. ``reconstruction="feature"``: VAE-GAN's learned similarity,
    ``log p(x|z)`` replaced by ``log N(Dis_l(x); Dis_l(\bar{x}(z)), I)`` on the discriminator's
    last convolutional features (Larsen et al. 2016, eq. 8); the other modalities keep theirs.

    Each training step is the model's Adam step on this loss (the discriminator fixed), then one
    Adam step of the discriminator (``discriminator_lr``, betas (0.5, 0.999) as DCGAN) on its
    cross-entropy: data labelled 1, both kinds of fake labelled 0. ``image`` names the modality
    generated adversarially (default: the data's only image modality). ``discriminator_channels``
    and ``discriminator_hidden`` default to the paper's widths.
    """

    name = "jmvae-gan"
    description = (
        "JMVAE-GAN (Suzuki et al. 2017, sec. 4.6.3; VAE-GAN, Larsen et al. 2016): JMVAE-kl plus gamma x "
        "a GAN's non-saturating generator loss on the image decoder; the discriminator takes its own step"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        alpha: float = 1.0,
        gamma: float = 1.0,
        reconstruction: Literal["pixel", "feature"] = "pixel",
        image: str | None = None,
        discriminator_channels: Sequence[int] = CONV_CHANNELS,
        discriminator_hidden: int = DISCRIMINATOR_HIDDEN,
        discriminator_lr: float = 1e-4,
        groups: list[list[str]] | None = None,
        likelihood_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        if reconstruction not in ("pixel", "feature"):
            raise ValueError(f"reconstruction must be 'pixel' or 'feature', got {reconstruction!r}")
        if discriminator_lr <= 0:
            raise ValueError(f"discriminator_lr must be > 0, got {discriminator_lr}")
        checked = check_multimodal(modalities, self.name)
        self.image = adversarial_image(checked, image, self.name)
        self.discriminator = DiscriminatorNet(
            checked[self.image].shape, discriminator_channels, discriminator_hidden
        )
        self.gamma, self.reconstruction = gamma, reconstruction
        self.gan_config = dict(
            gamma=gamma,
            reconstruction=reconstruction,
            image=image,
            discriminator_channels=[int(c) for c in discriminator_channels],
            discriminator_hidden=discriminator_hidden,
            discriminator_lr=discriminator_lr,
        )
        super().__init__(
            modalities,
            z_dim,
            hidden,
            arch,
            decoder_scale,
            beta,
            alpha,
            groups,
            likelihood_weights,
            lr,
            clip_grad_norm,
        )
        self.discriminator_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=discriminator_lr, betas=(0.5, 0.999), fused=True
        )
        self._reset_epoch_metrics()

    def joint_bound(self, weights: dict[str, float]) -> Loss:
        """eq. (5) negated; with ``reconstruction="feature"`` the image's term is VAE-GAN's likelihood
        on the discriminator's features (Larsen et al. 2016, eq. 8), the other modalities keep theirs."""
        if self.reconstruction == "pixel":
            return super().joint_bound(weights)
        self.feature_likelihood = FeatureLogLikelihood(self.decoders[self.image], self.discriminator)
        terms = []
        for name, decoder in self.decoders.items():
            term = self.feature_likelihood if name == self.image else LogProb(decoder)
            weight = weights.get(name, 1.0)
            terms.append(term if weight == 1.0 else weight * term)
        return E(self.q, -sum_losses(terms)) + Parameter("beta") * KullbackLeibler(self.q, self.prior)

    def extra_terms(self) -> tuple[Loss, dict[str, float], dict]:
        """``gamma`` times the generator's adversarial loss (:class:`AdversarialGeneratorLoss`)."""
        self.adversarial = AdversarialGeneratorLoss(
            self.q, self.decoders[self.image], self.prior, self.discriminator
        )
        return Parameter("gamma") * self.adversarial, {"gamma": self.gamma}, self.gan_config

    def __str__(self) -> str:
        """The JMVAE-kl printout plus the discriminator and the loss it is trained on."""
        x = rf"\bar{{{self.image}}}"
        section = (
            f"Discriminator (its own Adam step after each model step):\n  D({self.image}): "
            f"{self.discriminator.spec} (sigmoid of a logit)\n  its loss: -log D({self.image}) "
            f"- E_sg[q](z|...)[log(1 - D({x}(z)))] - E_p(z)[log(1 - D({x}(z)))]\n"
        )
        text = super().__str__()
        anchor = "Loss function:"
        return text.replace(anchor, section + anchor, 1) if anchor in text else text + section

    # ------------------------------------------------------------------ training
    def train(self, train_x_dict: dict | None = None, **kwargs) -> torch.Tensor:
        """One training step: the model's step (the discriminator fixed), then the discriminator's;
        no host sync (a NaN/inf loss skips the update on the device and shows in ``step_health``)."""
        x_dict = train_x_dict or {}
        loss = self.generator_step(x_dict, **kwargs)
        value = self.discriminator_update(x_dict, skip=self._skip)
        self.step_health = torch.cat([self.step_health[:2], value[None]])
        return loss

    def generator_step(self, x_dict: dict, **kwargs) -> torch.Tensor:
        """The model's Adam step on its loss, the discriminator's parameters fixed (no gradient)."""
        self.discriminator.train()
        self.discriminator.requires_grad_(False)
        try:
            return super().train(x_dict, **kwargs)
        finally:
            self.discriminator.requires_grad_(True)

    def discriminator_update(self, x_dict: dict, skip: torch.Tensor | None = None) -> torch.Tensor:
        """One Adam step of the discriminator on its loss (fresh fakes, no gradient to the model),
        without a host sync: when the loss is NaN/inf (or ``skip`` holds) no parameter or optimiser
        state changes. Returns the loss before the step, a device tensor; the epoch's sums stay on
        the device until :meth:`epoch_metrics`."""
        (_, generator_loss), value, bad = self.discriminator_backward_step(x_dict, skip)
        step = torch.stack([value, torch.as_tensor(generator_loss).detach().float(), torch.ones_like(value)])
        step = torch.where(bad, torch.zeros_like(step), step)  # a refused step does not count
        self._sums = step if self._sums is None else self._sums + step
        return value

    def discriminator_step(self, x_dict: dict) -> float:
        """:meth:`discriminator_update`, checked: returns the loss before the step as a float; a
        NaN/inf loss raises (no parameter changed)."""
        value = float(self.discriminator_update(x_dict))
        if not math.isfinite(value):
            raise NonFiniteLossError(f"the discriminator's loss is {value}")
        return value

    @contextmanager
    def testing(self) -> Iterator[None]:
        """The discriminator in evaluation mode too (its batch statistics untouched by a test loss)."""
        training = self.discriminator.training
        self.discriminator.eval()
        try:
            yield
        finally:
            self.discriminator.train(training)

    def _reset_epoch_metrics(self) -> None:
        #: the epoch's sums of the discriminator's loss, the generator's adversarial loss, and steps
        self._sums: torch.Tensor | None = None

    def epoch_metrics(self) -> dict[str, float]:
        """Means over the epoch's steps of the discriminator's loss (``3 ln 2`` at chance) and of
        the generator's adversarial loss on the same fakes, before the discriminator's step (read
        from the device once, here)."""
        if self._sums is None:
            return {}
        discriminator, generator, steps = self._sums.tolist()
        self._reset_epoch_metrics()
        if not steps:
            return {}
        return {"discriminator_loss": discriminator / steps, "generator_adversarial_loss": generator / steps}

    def discriminator_objective(self):
        """The discriminator's cross-entropy on data and both kinds of fake (and the generator's
        loss on the same fakes, reported in the epoch metrics)."""
        return self.adversarial.discriminator_terms


__all__ = ["JMVAEGAN", "adversarial_image"]
