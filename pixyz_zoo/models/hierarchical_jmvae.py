r"""Hierarchical JMVAE with two stochastic layers (JMVAE paper, sec. 3.4, eq. 7-9, L = 2).

Generative model (eq. 7):

    p(x, w, z_1, z_2) = p(z_2) p(z_1|z_2) p(x|z_1) p(w|z_1),     p(z_2) = N(0, I)

Inference model, factorised as Gulrajani et al. (2017) (eq. 8):

    q(z_1, z_2|x, w) = q(z_1|x, w) q(z_2|x, w)

with one deterministic path: ``h_1 = f_1(x, w)`` gives ``z_1`` and ``h_2 = f_2(h_1)`` gives
``z_2`` (the paper's Fig. 2(b)). The body ``f_1`` is one module shared by the two encoders, so its
parameters are the same; inside one loss evaluation it runs once per batch
(:class:`SharedFeatures`), as the Gaussian encoders' parameters do. Sizes follow the paper's
MNIST setting: ``f_1`` is the JMVAE encoder body, ``f_2`` and the network of ``p(z_1|z_2)`` are
MLPs with the same hidden layers.

Loss: minus eq. (9) for L = 2, the KL terms weighted by the warm-up ``beta``:

    beta KL(q(z_2|x,w) || p(z_2)) + beta E_q(z_2|x,w)[KL(q(z_1|x,w) || p(z_1|z_2))]
        - E_q(z_1|x,w)[log p(x|z_1) + log p(w|z_1)]

Missing modalities (app. A.1-A.2): ``inference_for(given)`` returns the distribution of the top
latent ``z_2``: ``q(z_2|x,w)`` given everything, iterative sampling (eq. 6) for a subset, whose
chain alternates ``z_1 ~ q(z_1|x, w_n)`` and ``w_{n+1} ~ p(w|z_1)`` and ends with
``q(z_2|x, w_N)``. The zoo's ``complete_latents`` then draws ``z_1 ~ p(z_1|z_2)``, which is the
estimator of eq. (A.2). ``encode`` given every modality returns the means of both layers of the
full inference ``q(z_1|x,w) q(z_2|x,w)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb, Parameter
from torch import nn

from pixyz_zoo.distributions import MLP, GaussianEncoder, encoder_network, standard_normal
from pixyz_zoo.distributions.iterative_sampling import IterativeSampling
from pixyz_zoo.distributions.shared_parameters import shared_value
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models.base import ZooModel
from pixyz_zoo.models.jmvae import check_multimodal, modality_decoders, with_subset_inference


class SharedFeatures(nn.Module):
    """``h = body(inputs)``, computed once per input tensors within ``shared_parameters()``.

    The two encoders of the hierarchical JMVAE read the same deterministic features ``h_1``:
    wrapping the shared body in this module makes the second encoder reuse the first one's
    ``h_1`` in a loss evaluation (the same memo and lifetime as
    :mod:`pixyz_zoo.distributions.shared_parameters`); outside such a block it just runs the body.
    """

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return shared_value(("features", id(self)), inputs, partial(self.body, *inputs))


class FeatureHead(nn.Module):
    """``head(features(*inputs))``: a head on shared features (``nn.Sequential`` takes one input)."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(*inputs))


class HierarchicalJMVAE(ZooModel):
    """Hierarchical JMVAE (L = 2): ``p(z_2)p(z_1|z_2)prod_m p(m|z_1)``, ``q(z_1|x,w)q(z_2|x,w)``."""

    name = "hierarchical-jmvae"
    description = (
        "hierarchical JMVAE (Suzuki et al. 2017, eq. 7-9, L=2): p(z2)p(z1|z2)p(x|z1)p(w|z1), "
        "Gulrajani-style q(z1|x,w)q(z2|x,w); iterative sampling (eq. 6) for missing modalities"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        z2_dim: int | None = None,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        iterative_steps: int = 100,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = check_multimodal(modalities, self.name)
        hidden = list(hidden)
        if not hidden:
            raise ValueError("the hierarchical JMVAE needs at least one hidden layer for its features h_1")
        top = z_dim if z2_dim is None else int(z2_dim)
        width = hidden[-1]
        # h_1 = f_1(x, w): the JMVAE encoder body (every hidden layer, ReLU after the last one)
        body = SharedFeatures(
            FeatureHead(encoder_network(list(modalities.values()), width, arch, hidden[:-1]), nn.ReLU())
        )
        names = list(modalities)
        # q(z_1|x,w) from h_1; q(z_2|x,w) from h_2 = f_2(h_1)
        self.q1 = GaussianEncoder(FeatureHead(body, nn.Linear(width, 2 * z_dim)), names, var="z1", name="q")
        self.q2 = GaussianEncoder(FeatureHead(body, MLP(width, 2 * top, hidden)), names, var="z2", name="q")
        self.features = body
        # p(z_2) p(z_1|z_2) prod_m p(m|z_1)
        self.prior = standard_normal("z2", top, name="p")
        self.p_z1 = GaussianEncoder(MLP(top, 2 * z_dim, hidden), ["z2"], var="z1", name="p")
        self.decoders = modality_decoders(modalities, z_dim, arch, hidden, decoder_scale, latent="z1")
        self.iterative_steps = int(iterative_steps)
        self.beta = beta

        beta_ = Parameter("beta")
        reconstruction = None
        for decoder in self.decoders.values():
            reconstruction = LogProb(decoder) if reconstruction is None else reconstruction + LogProb(decoder)
        # -eq. (9), L = 2
        loss = (
            E(self.q1, -reconstruction)
            + beta_ * (E(self.q2, KullbackLeibler(self.q1, self.p_z1)) + KullbackLeibler(self.q2, self.prior))
        ).mean()

        generative: Distribution = self.p_z1 * self.prior
        for decoder in self.decoders.values():
            generative = decoder * generative
        super().__init__(
            loss,
            distributions=[*self.decoders.values(), self.p_z1, self.q1, self.q2],
            modalities=modalities,
            generative=generative,
            inference=self.q1 * self.q2,
            hyperparameters={"beta": beta},
            annealed={"beta"},
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                z_dim=z_dim,
                z2_dim=z2_dim,
                hidden=hidden,
                arch=arch,
                decoder_scale=decoder_scale,
                beta=beta,
                iterative_steps=int(iterative_steps),
            ),
        )

    def inference_for(self, given: Sequence[str]) -> Distribution:
        """The top latent's distribution: ``p(z_2)``, ``q(z_2|x,w)``, or iterative sampling (A.2)."""
        given = self._check_given(given)
        if not given:
            return self.prior
        if set(given) == set(self.modalities):
            return self.q2
        missing = {m: self.modalities[m].shape for m in self.modalities if m not in given}
        return IterativeSampling(
            self.q2, list(self.decoders.values()), missing, steps=self.iterative_steps, transition=self.q1
        )

    def __str__(self) -> str:
        return with_subset_inference(super().__str__(), self, [[m] for m in self.modalities])

    @torch.no_grad()
    def encode(
        self, batch: dict[str, torch.Tensor], given: Sequence[str] | None = None, sample: bool = False
    ) -> dict[str, torch.Tensor]:
        """Given every modality: both layers of ``q(z_1|x,w)q(z_2|x,w)`` (means or a sample);
        given a subset: the top latent ``z_2`` (see :meth:`inference_for`)."""
        given = self._check_given(self.modalities if given is None else given)
        if set(given) != set(self.modalities):
            return super().encode(batch, given, sample)
        self._check_given_batch(batch, given)
        self.distributions.eval()
        inputs = self._to_device({g: batch[g] for g in given})
        if sample:
            return self.inference.sample(inputs, return_all=False)
        return {"z1": self.q1.sample_mean(inputs), "z2": self.q2.sample_mean(inputs)}


__all__ = ["FeatureHead", "HierarchicalJMVAE", "SharedFeatures"]
