r"""Conditional baselines of the JMVAE paper (sec. 2 and 4.5.3, Table 1): CVAE and CMMA.

Each models one direction: the *target* modality ``t`` (default: the first image modality) given
the *condition* ``c`` (the other one). They need exactly two modalities; to generate in the other
direction, train a second model with ``target`` set to the other modality.

- CVAE (Kingma et al. 2014, M2-style conditioning; Sohn et al. 2015, eq. 4-5):

      p(t, z|c) = p(t|z, c) p(z),  p(z) = N(0, I),  q(z|t, c)
      loss = E_q(z|t,c)[-log p(t|z, c)] + beta KL(q(z|t, c) || p(z))

  ``inference_for([t, c])`` is ``q(z|t,c)``; ``inference_for([c])`` imputes ``t`` by iterative
  sampling (eq. 6) with the transition ``T(t'|t,c) = \int p(t'|z,c) q(z|t,c) dz``, started from
  ``t = 0``: "sample from the encoder with the missing input, as for JMVAE" (app. A.1).

- CMMA (Pandey & Dukkipati 2017, "Variational methods for conditional multimodal deep
  learning"):

      p(t, z|c) = p(t|z) p(z|c),  q(z|t, c)
      loss = E_q(z|t,c)[-log p(t|z)] + beta KL(q(z|t, c) || p(z|c))

  ``inference_for([c])`` is the conditional prior ``p(z|c)`` (app. A.1).

Neither model infers ``z`` from the target alone, nor generates the condition: both are errors
that name the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses import Parameter
from torch import nn

from pixyz_zoo.distributions import (
    GaussianEncoder,
    decoder_for,
    decoder_network,
    decoder_output_channels,
    encoder_network,
    standard_normal,
)
from pixyz_zoo.distributions.iterative_sampling import IterativeSampling
from pixyz_zoo.losses import negative_elbo
from pixyz_zoo.modalities import Modality, check_modalities
from pixyz_zoo.models.base import ZooModel, prior_draws
from pixyz_zoo.models.jmvae import with_subset_inference
from pixyz_zoo.models.vae import pick_image_modality


class ConcatInputs(nn.Module):
    """Flatten each input, concatenate them, apply ``network``: the decoder of ``p(t|z, c)``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat([t.flatten(1) for t in inputs], dim=1))


def split_target(
    modalities: dict[str, Modality], target: str | None, model: str
) -> tuple[Modality, Modality]:
    """``(target, condition)`` of a two-modality conditional model."""
    modalities = check_modalities(modalities)
    if len(modalities) != 2:
        raise ValueError(
            f"{model} models one modality given one other: it needs exactly 2 modalities, got "
            f"{sorted(modalities)}; select two of them or use a joint model (jmvae, mvae, ...)"
        )
    if target is not None and target not in modalities:
        raise KeyError(f"target={target!r} is not a modality of the data: choose one of {sorted(modalities)}")
    t = pick_image_modality(modalities, target)
    (c,) = [m for name, m in modalities.items() if name != t.name]
    return t, c


class ConditionalModel(ZooModel):
    """Shared surface of CVAE and CMMA: one generated ``target``, one observed ``condition``."""

    target: str
    condition: str
    q: Distribution
    iterative_steps: int

    def other_direction_hint(self) -> str:
        return (
            f"train a {self.name} in the other direction: build_model({self.name!r}, modalities, "
            f"target={self.condition!r}) (pixyz-zoo train {self.name} -o target={self.condition})"
        )

    def __str__(self) -> str:
        return with_subset_inference(super().__str__(), self, [[self.condition]])

    def default_targets(self) -> list[str]:
        return [self.target]

    def check_targets(self, targets: Sequence[str]) -> list[str]:
        targets = self._check_given(targets)
        if self.condition in targets:
            raise ValueError(
                f"{self.name} generates only {self.target!r}; {self.condition!r} is its condition "
                f"(p({self.target}|z,...) given {self.condition}). To generate {self.condition!r}, "
                + self.other_direction_hint()
            )
        return targets

    def inference_for(self, given: Sequence[str]) -> Distribution:
        given = self._check_given(given)
        if set(given) == {self.target, self.condition}:
            return self.q
        if list(given) == [self.condition]:
            return self.conditional_inference()
        if list(given) == [self.target]:
            raise ValueError(
                f"{self.name} models p({self.target}|{self.condition}) and cannot infer z from "
                f"{self.target!r} alone; give {self.condition!r} (or both), or " + self.other_direction_hint()
            )
        return self.prior_inference()

    def conditional_inference(self) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def prior_inference(self) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_latents(
        self,
        batch: dict[str, torch.Tensor] | None,
        given: Sequence[str],
        n_samples: int = 1,
        n: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """As the base class; with no modality given, ``z`` comes from the model's prior."""
        if self._check_given(given):
            return super().sample_latents(batch, given, n_samples, n)
        prior = self.prior_inference()
        self.distributions.eval()
        return prior.sample(batch_n=prior_draws(n, n_samples), return_all=False)

    def reconstruct(
        self, batch: dict[str, torch.Tensor], sample_latent: bool = False
    ) -> dict[str, torch.Tensor]:
        """The target decoded from ``q(z|t,c)`` (the condition is not generated)."""
        self._check_reconstructed_batch(batch, list(self.modalities), from_fewer=False)
        return self.generate(batch, given=list(self.modalities), sample_latent=sample_latent)


class CVAE(ConditionalModel):
    """CVAE ``p(t|z,c) p(z)`` with ``q(z|t,c)``; the condition feeds the decoder."""

    name = "cvae"
    description = (
        "CVAE (Kingma et al. 2014; Sohn et al. 2015), JMVAE paper's baseline: p(t|z,c)p(z), q(z|t,c); "
        "loss -E_q[log p(t|z,c)] + beta KL(q(z|t,c)||p(z))"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        target: str | None = None,
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        iterative_steps: int = 100,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        t, c = split_target(modalities, target, self.name)
        self.target, self.condition = t.name, c.name
        # q(z|t,c)
        self.q = GaussianEncoder(encoder_network([t, c], 2 * z_dim, arch, hidden), cond_var=[t.name, c.name])
        # p(t|z,c): a decoder of t on [z, flattened c]
        out = decoder_output_channels(t, decoder_scale)
        network = ConcatInputs(decoder_network(t, z_dim + c.dim, arch, hidden, out))
        self.p_t = decoder_for(t, network, cond_var=["z", c.name], name="p", scale=decoder_scale)
        self.prior = standard_normal("z", z_dim, name="p")
        self.iterative_steps = int(iterative_steps)
        self.beta = beta
        loss = negative_elbo(self.q, [self.p_t], self.prior, beta=Parameter("beta")).mean()
        super().__init__(
            loss,
            distributions=[self.p_t, self.q],
            modalities={t.name: t, c.name: c},
            generative=self.p_t * self.prior,
            inference=self.q,
            hyperparameters={"beta": beta},
            annealed={"beta"},
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                target=t.name,
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                beta=beta,
                iterative_steps=int(iterative_steps),
            ),
        )

    def conditional_inference(self) -> IterativeSampling:
        """``q(z|c)``: the target imputed by iterative sampling (eq. 6; app. A.1)."""
        missing = {self.target: self.modalities[self.target].shape}
        return IterativeSampling(self.q, [self.p_t], missing, steps=self.iterative_steps)

    def prior_inference(self) -> Distribution:
        return self.prior


class CMMA(ConditionalModel):
    """CMMA ``p(t|z) p(z|c)`` with ``q(z|t,c)``; the condition shapes the prior."""

    name = "cmma"
    description = (
        "CMMA (Pandey & Dukkipati 2017), JMVAE paper's baseline: p(t|z)p(z|c), q(z|t,c); "
        "loss -E_q[log p(t|z)] + beta KL(q(z|t,c)||p(z|c))"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        target: str | None = None,
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        t, c = split_target(modalities, target, self.name)
        self.target, self.condition = t.name, c.name
        # q(z|t,c)
        self.q = GaussianEncoder(encoder_network([t, c], 2 * z_dim, arch, hidden), cond_var=[t.name, c.name])
        # p(z|c): the conditional prior
        self.prior = GaussianEncoder(
            encoder_network([c], 2 * z_dim, arch, hidden), cond_var=[c.name], name="p"
        )
        # p(t|z)
        out = decoder_output_channels(t, decoder_scale)
        self.p_t = decoder_for(t, decoder_network(t, z_dim, arch, hidden, out), name="p", scale=decoder_scale)
        self.beta = beta
        loss = negative_elbo(self.q, [self.p_t], self.prior, beta=Parameter("beta")).mean()
        super().__init__(
            loss,
            distributions=[self.p_t, self.prior, self.q],
            modalities={t.name: t, c.name: c},
            generative=self.p_t * self.prior,
            inference=self.q,
            hyperparameters={"beta": beta},
            annealed={"beta"},
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                target=t.name,
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                beta=beta,
            ),
        )

    def conditional_inference(self) -> Distribution:
        """``p(z|c)``: CMMA's single-conditional inference (app. A.1)."""
        return self.prior

    def prior_inference(self) -> Distribution:
        raise ValueError(
            f"cmma's prior p(z|{self.condition}) needs {self.condition!r}: pass given=[{self.condition!r}] "
            "(and a batch holding it)"
        )


__all__ = ["CMMA", "CVAE", "ConcatInputs", "ConditionalModel"]
