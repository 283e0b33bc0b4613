r"""VAEs whose inference is refined by inference gradients.

``iterative-vae`` (Marino, Yue & Mandt 2018): the amortised ``q(z|x)`` (or the prior) gives
:math:`\lambda_0`; a learned gated update network moves it ``T`` times using
:math:`\nabla_\lambda` of the negative ELBO (:class:`~pixyz_zoo.distributions.LearnedUpdate`).
Training: :class:`~pixyz_zoo.losses.IterativeInferenceLoss`, the average of the negative ELBO
over steps ``0..T`` for the inference networks (gradients stopped between steps), the final
step's for the decoder. ``T = 0`` is the VAE.

``refined-vae``: the VAE trained as usual, with its posterior refined at test time by ``T``
gradient steps (Adam or SGD on :math:`(\mu, \log\sigma)`; SA-VAE's inner loop, Kim et al. 2018),
so every evaluation (ELBO, IWAE, reconstructions) uses ``q_T(z|x)``. ``refine_train=True`` also
trains the decoder on the refined bound and the encoder on its own (Kim et al.'s "VAE + SVI").

    p(x, z) = p(x|z) p(z),   q_T(z|x) = N(z; mu_T, diag sigma_T^2)
    F(lambda) = E_{q_lambda(z|mu_z,sigma_z)}[-log p(x|z)] + KL(q_lambda || p(z))
"""

from __future__ import annotations

from collections.abc import Sequence

from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb
from pixyz.losses.losses import Loss

from pixyz_zoo.checks import check_count
from pixyz_zoo.distributions.refinement import (
    GaussianFromParameters,
    GradientStep,
    LearnedUpdate,
    RefinedGaussian,
    UpdateRule,
    check_steps,
)
from pixyz_zoo.distributions.text import loss_text
from pixyz_zoo.losses import sum_losses
from pixyz_zoo.losses.iterative import IterativeInferenceLoss
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models.base import ZooModel
from pixyz_zoo.models.vae import VAE, pick_image_modality, vae_distributions

__all__ = [
    "IterativeVAE",
    "RefinedVAE",
    "refined_negative_elbo",
    "refined_posterior",
    "refined_test_loss",
    "with_refinement_text",
]


def refined_negative_elbo(
    posterior: GaussianFromParameters, decoders: Sequence[Distribution], prior: Distribution, samples: int = 1
) -> Loss:
    """``F(lambda)``: the per-example negative ELBO over ``q_lambda`` (the refinement loss)."""
    reconstruction = sum_losses([LogProb(d) for d in decoders])
    return E(posterior, -reconstruction, sample_shape=(samples,)) + KullbackLeibler(posterior, prior)


def refined_posterior(
    initial: Distribution,
    p_x: Distribution,
    prior: Distribution,
    steps: int,
    rule: UpdateRule,
    samples: int = 1,
) -> RefinedGaussian:
    """``q_T(z|x)``: ``initial``'s parameters refined ``steps`` times by ``rule`` along the gradient
    of the negative ELBO ``F(lambda)`` of ``p(x|z)p(z)``."""
    posterior = GaussianFromParameters("z")
    objective = refined_negative_elbo(posterior, [p_x], prior, int(samples))
    return RefinedGaussian(initial, objective, steps, rule, posterior)


def refined_test_loss(refined: RefinedGaussian, p_x: Distribution, prior: Distribution) -> Loss:
    """The test loss under the refined posterior: ``E_{q_T}[-log p(x|z)] + KL(q_T || p(z))``."""
    return (E(refined, -LogProb(p_x)) + KullbackLeibler(refined, prior)).mean()


def with_refinement_text(text: str, refined: RefinedGaussian, training: str) -> str:
    """``print(model)``'s text with the refinement and the training rule after the inference model."""
    marker = "Distributions (for training):"
    block = "Refinement:\n" + "\n".join("  " + line for line in refined.refinement_text.splitlines())
    block += f"\n  {training}\n"
    return text.replace(marker, block + marker, 1)


class IterativeVAE(ZooModel):
    """VAE with iterative amortized inference: ``q(z|x)`` refined by a learned update network."""

    name = "iterative-vae"
    gradients_inside_loss = True  # the refinement's backward passes train the initial encoder
    description = (
        "Iterative amortized inference (Marino et al. 2018): q(z|x) refined T times by a learned gated "
        "update of (lambda, grad_lambda -ELBO)"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: str | None = None,
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        refine_steps: int = 5,
        init: str = "encoder",
        update_hidden: Sequence[int] = (256, 256),
        samples: int = 1,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        check_steps(refine_steps)
        if init not in ("encoder", "prior"):
            raise ValueError(f"unknown init {init!r}; choose 'encoder' (amortised q(z|x)) or 'prior' (p(z))")
        check_count(samples, "samples")
        x = pick_image_modality(modalities, observed)
        # the VAE's distributions (same construction order: a seed gives the same networks)
        q, p_x, prior = vae_distributions(x, z_dim, hidden, arch, decoder_scale)
        rule = LearnedUpdate(z_dim, update_hidden)
        initial = q if init == "encoder" else prior
        refined = refined_posterior(initial, p_x, prior, refine_steps, rule, samples)
        self.q, self.p_x, self.prior, self.refined, self.rule = q, p_x, prior, refined, rule

        super().__init__(
            IterativeInferenceLoss(refined),
            distributions=[p_x, refined],
            modalities={x.name: x},
            generative=p_x * prior,
            inference=refined,
            test_loss=refined_test_loss(refined, p_x, prior),
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                observed=x.name,
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                refine_steps=refine_steps,
                init=init,
                update_hidden=list(update_hidden),
                samples=int(samples),
            ),
        )

    def __str__(self) -> str:
        training = (
            "training: inference networks on the mean over t of F(lambda_t), gradients stopped between "
            "steps; decoder on F(lambda_T); test loss: " + loss_text(self.test_loss_cls)
        )
        return with_refinement_text(super().__str__(), self.refined, training)


class RefinedVAE(VAE):
    """The VAE with its posterior refined by gradient steps on the ELBO (at test time by default)."""

    name = "refined-vae"
    description = (
        "VAE whose q(z|x) is refined by T gradient steps (Adam/SGD) on the ELBO at evaluation "
        "(SA-VAE's inner loop); refine_train also trains the decoder on the refined bound"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        observed: str | None = None,
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        refine_steps: int = 5,
        refine_rule: str = "adam",
        refine_lr: float = 0.01,
        refine_train: bool = False,
        samples: int = 1,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        check_steps(refine_steps)
        check_count(samples, "samples")
        self.beta = beta
        self.refine_settings = dict(
            refine_steps=refine_steps,
            refine_rule=refine_rule,
            refine_lr=refine_lr,
            refine_train=bool(refine_train),
            samples=int(samples),
        )
        self.rule = GradientStep(lr=refine_lr, method=refine_rule)
        self.build(
            modalities,
            observed,
            z_dim,
            hidden,
            arch,
            decoder_scale,
            lr,
            clip_grad_norm,
            beta=beta,
            **self.refine_settings,
        )
        self.inference = self.refined
        self.test_loss_cls = refined_test_loss(self.refined, self.p_x, self.prior)

    def objective(self):
        """The VAE's objective (with ``refine_train``: :class:`IterativeInferenceLoss`); builds ``q_T``."""
        settings = self.refine_settings
        self.refined = refined_posterior(
            self.q, self.p_x, self.prior, settings["refine_steps"], self.rule, settings["samples"]
        )
        if settings["refine_train"]:
            return IterativeInferenceLoss(self.refined), {}, set()
        return super().objective()

    def __str__(self) -> str:
        if self.refine_settings["refine_train"]:
            training = "training: encoder on F(lambda_0)/(T+1), decoder on F(lambda_T) (VAE + SVI)"
        else:
            training = "training: the VAE's loss below (q(z|x) unrefined); refinement at evaluation"
        training += "; test loss: " + loss_text(self.test_loss_cls)
        return with_refinement_text(super().__str__(), self.refined, training)
