"""VAE (Kingma & Welling 2014), the lower bound of JMVAE paper eq. (1).

    p(x, z) = p(x|z) p(z),      p(z) = N(0, I)
    q(z|x)  = N(z; mu(x), diag sigma(x)^2)
    L(x)    = E_q(z|x)[log p(x|z)] - beta * KL(q(z|x) || p(z))

The loss minimised is ``-L(x)`` averaged over the batch. ``beta`` is a Parameter symbol: 1 at
evaluation, ramped 0 -> 1 during KL warm-up (Bowman et al. 2016; the JMVAE paper, sec. 4.3).
"""

from __future__ import annotations

from collections.abc import Sequence

from pixyz.distributions.distributions import Distribution
from pixyz.losses import Parameter
from pixyz.losses.losses import Loss

from pixyz_zoo.distributions import (
    GaussianEncoder,
    decoder_for,
    decoder_network,
    decoder_output_channels,
    encoder_network,
    standard_normal,
)
from pixyz_zoo.losses import negative_elbo
from pixyz_zoo.modalities import Modality, check_modalities
from pixyz_zoo.models.base import ZooModel


def pick_image_modality(modalities: dict[str, Modality], observed: str | None) -> Modality:
    """The modality named ``observed``, or the first image modality."""
    modalities = check_modalities(modalities)
    if observed is not None:
        if observed not in modalities:
            raise KeyError(f"observed={observed!r} is not a modality of the data: {sorted(modalities)}")
        return modalities[observed]
    if not modalities:
        raise ValueError(
            "the model needs a modality to observe and got none; pass the dataset's, e.g. "
            "VAE(train.modalities) with train = load_dataset('digits', 'train')"
        )
    for modality in modalities.values():
        if modality.is_image:
            return modality
    return next(iter(modalities.values()))


def vae_distributions(
    x: Modality,
    z_dim: int,
    hidden: Sequence[int],
    arch: str,
    decoder_scale: str | float | None,
    encoder_hidden: Sequence[int] | None = None,
) -> tuple[Distribution, Distribution, Distribution]:
    """The VAE's ``q(z|x)`` (Gaussian encoder), ``p(x|z)`` (the modality's likelihood family) and
    ``p(z) = N(0, I)``, built in this order (so one seed gives the same networks to every model
    that declares them here). ``encoder_hidden``: the encoder's sizes when not the decoder's."""
    q_hidden = hidden if encoder_hidden is None else encoder_hidden
    q = GaussianEncoder(encoder_network([x], 2 * z_dim, arch, q_hidden), cond_var=[x.name], name="q")
    out = decoder_output_channels(x, decoder_scale)
    p_x = decoder_for(x, decoder_network(x, z_dim, arch, hidden, out), name="p", scale=decoder_scale)
    prior = standard_normal("z", z_dim, name="p")
    return q, p_x, prior


class VAE(ZooModel):
    """Variational autoencoder ``p(x|z)p(z)`` with inference ``q(z|x)``."""

    name = "vae"
    description = "VAE (Kingma & Welling 2014): ELBO of JMVAE paper eq. (1), KL warm-up weight beta"

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: str | None = None,
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
        encoder_hidden: Sequence[int] | None = None,
    ) -> None:
        self.beta = beta
        self.build(
            modalities,
            observed,
            z_dim,
            hidden,
            arch,
            decoder_scale,
            lr,
            clip_grad_norm,
            encoder_hidden=encoder_hidden,
            beta=beta,
        )

    def build(
        self,
        modalities: dict[str, Modality],
        observed: str | None,
        z_dim: int,
        hidden: Sequence[int],
        arch: str,
        decoder_scale: str | float | None,
        lr: float,
        clip_grad_norm: float | None,
        encoder_hidden: Sequence[int] | None = None,
        **loss_options: object,
    ) -> None:
        """Declare ``q(z|x)``, ``p(x|z)``, ``p(z)`` and train them on :meth:`objective`.

        ``loss_options`` are the subclass's loss settings, recorded in the model's config.
        ``encoder_hidden``: the encoder's hidden sizes when they differ from the decoder's ``hidden``
        (e.g. an encoder-size sweep with one decoder; recorded in the config only when given).
        """
        x = pick_image_modality(modalities, observed)
        q, p_x, prior = vae_distributions(x, z_dim, hidden, arch, decoder_scale, encoder_hidden)
        self.q, self.p_x, self.prior = q, p_x, prior

        loss, hyperparameters, annealed = self.objective()
        super().__init__(
            loss,
            distributions=[p_x, q],
            modalities={x.name: x},
            generative=p_x * prior,
            inference=q,
            hyperparameters=hyperparameters,
            annealed=annealed,
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                observed=x.name,
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                **({} if encoder_hidden is None else {"encoder_hidden": list(encoder_hidden)}),
                **loss_options,
            ),
        )

    def objective(self) -> tuple[Loss, dict[str, float], set[str]]:
        """The loss over ``self.q``, ``self.p_x``, ``self.prior``, its symbols' values, the annealed ones.

        eq. (1): -ELBO = E_q[-log p(x|z)] + beta KL(q(z|x) || p(z)), beta warmed up from 0.
        """
        loss = negative_elbo(self.q, [self.p_x], self.prior, beta=Parameter("beta")).mean()
        return loss, {"beta": self.beta}, {"beta"}
