r"""The JMVAE family: one latent ``z`` shared by every modality, ``p(z) \prod_m p(m|z)``.

All four models share the generative model of the JMVAE paper (Suzuki & Matsuo, "Deep
generative models for bi-directional generation between different modalities", IPSJ journal,
sec. 3.2): ``z ~ p(z) = N(0, I)`` and one decoder per modality ``p(m|z)`` of the
modality's likelihood family (eq. 3-4). They differ in how ``z`` is inferred from a subset of the
modalities and in the loss:

- ``jmvae`` (eq. 5): a joint encoder ``q(z|x,w)``; a missing modality is imputed by iterative
  sampling (sec. 3.3, eq. 6);
- ``jmvae-kl`` (eq. 10): plus unimodal encoders ``q(z|x)``, ``q(z|w)`` pulled towards the joint
  one by ``alpha [KL(q(z|x,w)||q(z|x)) + KL(q(z|x,w)||q(z|w))]``;
- ``telbo`` (Vedantam et al. 2018, "Generative models of visually grounded imagination", the
  triple ELBO): the same encoders, each trained by its own ELBO through the shared decoders;
- ``mvae`` (Wu & Goodman 2018, "Multimodal generative models for scalable weakly-supervised
  learning", eq. 4 and sec. 3): ``q(z|subset) ∝ p(z) \prod_{m \in subset} \tilde{q}(z|m)``, a
  product of Gaussian experts, trained on the ELBO of all modalities plus one per modality.

The KL terms against the prior carry the warm-up weight ``beta`` (a ``Parameter`` symbol, ramped
0 -> 1 during KL warm-up as in the paper's sec. 4.3). Every model works on any dict of two or
more modalities.

Groups (``jmvae-kl``, ``telbo``). ``groups`` partitions the modalities into the subsets that get
their own inference distribution (default: each modality alone). A group of one modality ``m``
gets a unimodal encoder ``q(z|m)``; a group of several gets one expert ``\tilde{q}(z|m)`` per
modality combined with the prior expert, ``q(z|y_1,y_2) ∝ p(z)\tilde{q}(z|y_1)\tilde{q}(z|y_2)``
(the attribute-MNIST JMVAE/TELBO of the Pixyz article). Inference from ``given``:

- all modalities: the joint encoder ``q(z|x,w)``;
- exactly the modalities of one group: that group's distribution;
- any other subset: the product of the per-modality experts/encoders of ``given``, with the prior
  expert included when ``given`` touches a multi-modality group (whose experts were trained as
  factors next to ``p(z)``), without it otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb, Parameter
from pixyz.losses.losses import Loss

from pixyz_zoo.distributions import (
    GaussianEncoder,
    ProductOfGaussianExperts,
    decoder_for,
    decoder_network,
    decoder_output_channels,
    encoder_network,
    standard_normal,
)
from pixyz_zoo.distributions.iterative_sampling import IterativeSampling
from pixyz_zoo.losses import negative_elbo, sum_losses
from pixyz_zoo.modalities import Modality, check_modalities
from pixyz_zoo.models.base import ZooModel

EXPERT_NAME = r"\tilde{q}"


# ---------------------------------------------------------------------- shared building blocks
def check_multimodal(modalities: dict[str, Modality], model: str) -> dict[str, Modality]:
    """The modalities, refusing fewer than two."""
    modalities = check_modalities(modalities)
    if len(modalities) < 2:
        raise ValueError(
            f"{model} models two or more modalities jointly, got {sorted(modalities)}; use a dataset "
            "with several modalities (e.g. digits: image x and label y) or the single-modality 'vae'"
        )
    return modalities


def modality_decoders(
    modalities: dict[str, Modality],
    z_dim: int,
    arch: str,
    hidden: Sequence[int],
    decoder_scale: str | float | None,
    latent: str = "z",
) -> dict[str, Distribution]:
    """One decoder ``p(m|z)`` per modality, of the modality's likelihood family (eq. 3-4)."""
    return {
        name: decoder_for(
            m,
            decoder_network(m, z_dim, arch, hidden, decoder_output_channels(m, decoder_scale)),
            cond_var=[latent],
            name="p",
            scale=decoder_scale,
        )
        for name, m in modalities.items()
    }


def gaussian_encoder(
    modalities: Sequence[Modality],
    z_dim: int,
    arch: str,
    hidden: Sequence[int],
    name: str = "q",
    var: str = "z",
) -> GaussianEncoder:
    """``q(z|m_1..m_k)``: ``encoder_network`` over the given modalities (eq. 2)."""
    return GaussianEncoder(
        encoder_network(list(modalities), 2 * z_dim, arch, hidden),
        cond_var=[m.name for m in modalities],
        var=var,
        name=name,
    )


def check_likelihood_weights(
    weights: dict[str, float] | None, modalities: dict[str, Modality]
) -> dict[str, float]:
    """The per-modality likelihood weights ``lambda_m`` as floats, refusing unknown names."""
    weights = {k: float(v) for k, v in (weights or {}).items()}
    unknown = sorted(set(weights) - set(modalities))
    if unknown:
        raise KeyError(
            f"likelihood_weights name unknown modalities {unknown}; the data has {sorted(modalities)}"
        )
    return weights


def dimension_weights(modalities: dict[str, Modality]) -> dict[str, float]:
    """``lambda_m = max_k D_k / D_m``: every modality weighs as much as the largest one (the
    likelihood rescaling of Shi et al. 2019 and Sutter et al. 2021 on MNIST-SVHN-Text)."""
    largest = max(m.dim for m in modalities.values())
    return {name: largest / m.dim for name, m in modalities.items()}


def weighted_log_likelihood(
    decoders: Sequence[Distribution], weights: dict[str, float] | None = None
) -> Loss:
    """``sum_m lambda_m log p(m|z)`` as a Pixyz expression (weights default to 1)."""
    if not decoders:
        raise ValueError("the likelihood needs at least one decoder p(m|z)")
    weights = weights or {}
    terms = []
    for decoder in decoders:
        weight = float(weights.get(decoder.var[0], 1.0))
        terms.append(LogProb(decoder) if weight == 1.0 else weight * LogProb(decoder))
    return sum_losses(terms)


def weighted_negative_elbo(
    q: Distribution,
    decoders: Sequence[Distribution],
    prior: Distribution,
    beta: Loss | float,
    weights: dict[str, float] | None = None,
) -> Loss:
    """``E_q[-sum_m lambda_m log p(m|z)] + beta KL(q||p(z))`` per example (weights default to 1)."""
    weights = weights or {}
    if all(weights.get(d.var[0], 1.0) == 1.0 for d in decoders):
        return negative_elbo(q, decoders, prior, beta=beta)
    return E(q, -weighted_log_likelihood(decoders, weights)) + beta * KullbackLeibler(q, prior)


def with_subset_inference(text: str, model: ZooModel, subsets: Sequence[Sequence[str]]) -> str:
    """``text`` (a model's printout) with the inference distribution of each subset inserted."""
    lines = [model.inference_for(s).prob_joint_factorized_and_text for s in subsets]
    section = "Inference from subsets of the modalities:\n" + "".join(f"  {line}\n" for line in lines)
    for anchor in ("Hyperparameters (fed through the batch):", "Distributions (for training):"):
        if anchor in text:
            return text.replace(anchor, section + anchor, 1)
    return text + section  # pragma: no cover - every zoo model prints its distributions


class MultimodalVAE(ZooModel):
    """Common surface of the one-latent multimodal models: decoders, prior, subset dispatch.

    Subclasses set ``self.joint`` (the inference distribution given every modality) and implement
    :meth:`subset_inference` for strict, non-empty subsets.
    """

    decoders: dict[str, Distribution]
    joint: Distribution
    prior: Distribution
    iterative_steps: int

    def build_common(
        self,
        modalities: dict[str, Modality],
        z_dim: int,
        hidden: Sequence[int],
        arch: str,
        decoder_scale: str | float | None,
    ) -> dict[str, Modality]:
        """Check the modalities, declare ``p(m|z)`` for each and ``p(z) = N(0, I)``."""
        modalities = check_multimodal(modalities, self.name)
        self.decoders = modality_decoders(modalities, z_dim, arch, hidden, decoder_scale)
        self.prior = standard_normal("z", z_dim, name="p")
        return modalities

    def build_experts(
        self, modalities: dict[str, Modality], z_dim: int, arch: str, hidden: Sequence[int]
    ) -> dict[str, Distribution]:
        """One Gaussian expert ``\\tilde{q}(z|m)`` per modality (products and mixtures combine them)."""
        self.experts = {
            m: gaussian_encoder([modalities[m]], z_dim, arch, hidden, name=EXPERT_NAME) for m in modalities
        }
        return self.experts

    def generative_model(self) -> Distribution:
        """``p(z) \\prod_m p(m|z)``."""
        joint = self.prior
        for decoder in self.decoders.values():
            joint = decoder * joint
        return joint

    def inference_for(self, given: Sequence[str]) -> Distribution:
        """``p(z)`` for no modality, the joint inference for all, :meth:`subset_inference` otherwise."""
        given = self._check_given(given)
        if not given:
            return self.prior
        if set(given) == set(self.modalities):
            return self.joint
        return self.subset_inference([m for m in self.modalities if m in given])

    def subset_inference(self, given: list[str]) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def printed_subsets(self) -> list[list[str]]:
        """The subsets whose inference ``print(model)`` spells out (default: each modality)."""
        return [[m] for m in self.modalities]

    def __str__(self) -> str:
        """The base printout plus the inference from subsets of the modalities."""
        return with_subset_inference(super().__str__(), self, self.printed_subsets())

    def iterative_sampling(self, given: Sequence[str]) -> IterativeSampling:
        """``q(z|given)``: the missing modalities imputed by ``iterative_steps`` steps of eq. (6)."""
        missing = {m: self.modalities[m].shape for m in self.modalities if m not in given}
        return IterativeSampling(
            self.joint, list(self.decoders.values()), missing, steps=self.iterative_steps
        )


# ---------------------------------------------------------------------- JMVAE
class JMVAE(MultimodalVAE):
    """JMVAE: joint encoder ``q(z|x,w)``, decoders ``p(x|z) p(w|z)``, prior ``p(z)``.

    Loss: ``-L_JM`` of eq. (5), ``E_q(z|x,w)[-sum_m log p(m|z)] + beta KL(q(z|x,w)||p(z))``.
    A strict subset of the modalities is handled by iterative sampling (sec. 3.3, eq. 6) with
    ``iterative_steps`` transitions (100 in the paper's Table 1), the missing ones started at 0.
    """

    name = "jmvae"
    description = (
        "JMVAE (Suzuki et al. 2017, eq. 5): joint encoder q(z|x,w); missing modalities imputed by "
        "iterative sampling (eq. 6)"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        iterative_steps: int = 100,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = self.build_common(modalities, z_dim, hidden, arch, decoder_scale)
        # q(z|x,w): one network over every modality
        self.q = gaussian_encoder(list(modalities.values()), z_dim, arch, hidden)
        self.joint = self.q
        self.iterative_steps = int(iterative_steps)
        self.beta = beta
        decoders = list(self.decoders.values())
        # -eq. (5): reconstruction of every modality + beta KL(q(z|x,w) || p(z))
        loss = negative_elbo(self.q, decoders, self.prior, beta=Parameter("beta")).mean()
        super().__init__(
            loss,
            distributions=[*decoders, self.q],
            modalities=modalities,
            generative=self.generative_model(),
            inference=self.q,
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
                iterative_steps=int(iterative_steps),
            ),
        )

    def subset_inference(self, given: list[str]) -> Distribution:
        return self.iterative_sampling(given)


# ---------------------------------------------------------------------- JMVAE-kl and TELBO
def check_groups(modalities: dict[str, Modality], groups: Sequence[Sequence[str]] | None) -> list[list[str]]:
    """The groups as lists in modality order; they must partition the modalities."""
    if groups is None:
        return [[m] for m in modalities]
    groups = [list(g) for g in groups]
    seen: list[str] = []
    for group in groups:
        if not group:
            raise ValueError("groups must not contain an empty group")
        unknown = [m for m in group if m not in modalities]
        if unknown:
            raise KeyError(f"groups name unknown modalities {unknown}; the data has {sorted(modalities)}")
        seen += group
    repeated = sorted({m for m in seen if seen.count(m) > 1})
    left_out = [m for m in modalities if m not in seen]
    if repeated or left_out:
        raise ValueError(
            f"groups must put every modality in exactly one group (repeated: {repeated}, left out: "
            f"{left_out}); e.g. groups=[['x'], ['y1', 'y2']]"
        )
    order = list(modalities)
    return sorted(([m for m in order if m in g] for g in groups), key=lambda g: order.index(g[0]))


class _GroupedInference(MultimodalVAE):
    """Joint encoder plus one inference distribution per group of modalities (see module doc)."""

    def build_groups(
        self,
        modalities: dict[str, Modality],
        groups: list[list[str]],
        z_dim: int,
        arch: str,
        hidden: Sequence[int],
    ) -> None:
        """Declare ``q(z|x,w)``, the per-modality encoders/experts and the group distributions."""
        self.q = gaussian_encoder(list(modalities.values()), z_dim, arch, hidden)
        self.joint = self.q
        self.groups = groups
        self.experts: dict[str, Distribution] = {}
        self.group_inference: dict[tuple[str, ...], Distribution] = {}
        self.with_prior_expert: set[str] = set()
        for group in groups:
            if len(group) == 1:  # q(z|m): a unimodal encoder
                (m,) = group
                self.experts[m] = gaussian_encoder([modalities[m]], z_dim, arch, hidden)
                self.group_inference[(m,)] = self.experts[m]
            else:  # q(z|y_1..y_k) ∝ p(z) prod_i q~(z|y_i)
                for m in group:
                    self.experts[m] = gaussian_encoder([modalities[m]], z_dim, arch, hidden, name=EXPERT_NAME)
                    self.with_prior_expert.add(m)
                self.group_inference[tuple(group)] = ProductOfGaussianExperts(
                    [self.experts[m] for m in group], prior=self.prior, name="q"
                )

    def trained_distributions(self) -> list[Distribution]:
        products = [d for g, d in self.group_inference.items() if len(g) > 1]
        return [*self.decoders.values(), self.q, *self.experts.values(), *products]

    def subset_inference(self, given: list[str]) -> Distribution:
        """The group's distribution, or the product of the experts of ``given`` (module doc)."""
        key = tuple(given)
        if key in self.group_inference:
            return self.group_inference[key]
        prior = self.prior if any(m in self.with_prior_expert for m in given) else None
        experts = [self.experts[m] for m in given]
        if prior is None and len(experts) == 1:  # pragma: no cover - a singleton is its own group
            return experts[0]
        return ProductOfGaussianExperts(experts, prior=prior, name="q")

    def printed_subsets(self) -> list[list[str]]:
        multi = [list(g) for g in self.group_inference if len(g) > 1]
        return [*multi, *([m] for m in self.modalities)]

    def group_config(self) -> list[list[str]] | None:
        singletons = all(len(g) == 1 for g in self.groups)
        return None if singletons else [list(g) for g in self.groups]


class JMVAEKL(_GroupedInference):
    """JMVAE-kl: eq. (5) plus ``alpha`` times the KL from the joint to each group's inference.

    Loss: ``E_q(z|x,w)[-sum_m log p(m|z)] + beta KL(q(z|x,w)||p(z))
    + alpha [KL(q(z|x,w)||q(z|x)) + KL(q(z|x,w)||q(z|w))]`` (eq. 10 negated; one KL per group).
    ``alpha`` is a ``Parameter`` symbol, 1 by default as in the journal's eq. (10) (the arXiv
    version weighs the two KLs by alpha); it is not warmed up.
    """

    name = "jmvae-kl"
    description = (
        "JMVAE-kl (Suzuki et al. 2017, eq. 10): JMVAE plus alpha KL(q(z|x,w)||q(z|x)) + "
        "alpha KL(q(z|x,w)||q(z|w)); unimodal encoders, no iterative sampling"
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
        groups: list[list[str]] | None = None,
        likelihood_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = self.build_common(modalities, z_dim, hidden, arch, decoder_scale)
        weights = check_likelihood_weights(likelihood_weights, modalities)
        self.build_groups(modalities, check_groups(modalities, groups), z_dim, arch, hidden)
        self.beta, self.alpha, self.likelihood_weights = beta, alpha, weights
        to_groups = sum_losses(
            [KullbackLeibler(self.q, q_group) for q_group in self.group_inference.values()]
        )
        loss = self.joint_bound(weights) + Parameter("alpha") * to_groups
        extra, extra_hyperparameters, extra_config = self.extra_terms()
        if extra is not None:
            loss = loss + extra
        super().__init__(
            loss.mean(),
            distributions=self.trained_distributions(),
            modalities=modalities,
            generative=self.generative_model(),
            inference=self.q,
            hyperparameters={"beta": beta, "alpha": alpha, **extra_hyperparameters},
            annealed={"beta"},
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                z_dim=z_dim,
                hidden=list(hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                beta=beta,
                alpha=alpha,
                **extra_config,
                groups=self.group_config(),
                likelihood_weights=weights or None,
            ),
        )

    def joint_bound(self, weights: dict[str, float]) -> Loss:
        """eq. (5) negated: ``E_q(z|x,w)[-sum_m lambda_m log p(m|z)] + beta KL(q(z|x,w)||p(z))``."""
        return weighted_negative_elbo(
            self.q, list(self.decoders.values()), self.prior, Parameter("beta"), weights
        )

    def extra_terms(self) -> tuple[Loss | None, dict[str, float], dict]:
        """Terms a variant adds to eq. (10) (none here), with their hyperparameters and options."""
        return None, {}, {}


class TELBO(_GroupedInference):
    """TELBO (Vedantam et al. 2018): the ELBO of all modalities plus one ELBO per group.

    Loss: ``-ELBO(x,w; q(z|x,w)) - ELBO(x; q(z|x)) - ELBO(w; q(z|w))``, where
    ``ELBO(S; q) = E_q[sum_{m in S} lambda_m log p(m|z)] - beta KL(q||p(z))`` and the decoders are
    shared by all terms (and trained by all of them). ``likelihood_weights`` gives the optional
    per-modality ``lambda_m`` (default 1), applied to ``log p(m|z)`` in every ELBO where ``m``
    appears; Vedantam et al. up-weight the low-dimensional attribute likelihood this way.
    """

    name = "telbo"
    description = (
        "TELBO (Vedantam et al. 2018, triple ELBO): ELBO(x,w; q(z|x,w)) + ELBO(x; q(z|x)) + "
        "ELBO(w; q(z|w)) with shared decoders"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        groups: list[list[str]] | None = None,
        likelihood_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = self.build_common(modalities, z_dim, hidden, arch, decoder_scale)
        weights = check_likelihood_weights(likelihood_weights, modalities)
        self.build_groups(modalities, check_groups(modalities, groups), z_dim, arch, hidden)
        self.beta, self.likelihood_weights = beta, weights
        beta_ = Parameter("beta")
        loss = weighted_negative_elbo(self.q, list(self.decoders.values()), self.prior, beta_, weights)
        for group, q_group in self.group_inference.items():
            decoders = [self.decoders[m] for m in group]
            loss = loss + weighted_negative_elbo(q_group, decoders, self.prior, beta_, weights)
        super().__init__(
            loss.mean(),
            distributions=self.trained_distributions(),
            modalities=modalities,
            generative=self.generative_model(),
            inference=self.q,
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
                groups=self.group_config(),
                likelihood_weights=weights or None,
            ),
        )


# ---------------------------------------------------------------------- MVAE
class MVAE(MultimodalVAE):
    """MVAE: ``q(z|S) ∝ p(z) prod_{m in S} q~(z|m)`` for any subset ``S`` (Wu & Goodman 2018, eq. 4).

    Loss: ``-ELBO(all modalities) - sum_m ELBO(m)`` with each ELBO's posterior the product of
    experts of its subset (the sub-sampled training objective of the paper's sec. 3, with the
    full and the unimodal subsets). ``subsets`` adds the ELBOs of further fixed subsets (e.g.
    ``[["x", "y"]]`` among three modalities). The paper also adds ``k`` subsets drawn at random at
    every step; they are not included, so that the printed expression is the objective optimised
    (with two modalities the two coincide: there is no other subset).
    """

    name = "mvae"
    description = (
        "MVAE (Wu & Goodman 2018, eq. 4): product of Gaussian experts with the prior expert; "
        "ELBO(all) + sum_m ELBO(m)"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 64,
        hidden: Sequence[int] = (512, 512),
        arch: str = "mlp",
        decoder_scale: str | float | None = None,
        beta: float = 1.0,
        subsets: list[list[str]] | None = None,
        likelihood_weights: dict[str, float] | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = self.build_common(modalities, z_dim, hidden, arch, decoder_scale)
        weights = check_likelihood_weights(likelihood_weights, modalities)
        order = list(modalities)
        extra: list[list[str]] = []
        for subset in subsets or []:
            unknown = [m for m in subset if m not in modalities]
            if unknown:
                raise KeyError(
                    f"subsets name unknown modalities {unknown}; the data has {sorted(modalities)}"
                )
            chosen = [m for m in order if m in subset]
            if len(chosen) < 2 or len(chosen) == len(order):
                raise ValueError(
                    f"subset {list(subset)}: the full set and single modalities are always in the MVAE loss; "
                    "extra subsets have at least two and not all modalities"
                )
            if chosen not in extra:
                extra.append(chosen)
        # q~(z|m): one Gaussian expert per modality; q(z|S) ∝ p(z) prod_{m in S} q~(z|m)
        self.build_experts(modalities, z_dim, arch, hidden)
        self.poe = ProductOfGaussianExperts(list(self.experts.values()), prior=self.prior, name="q")
        self.joint = self.poe.given(order)
        self.beta, self.subsets, self.likelihood_weights = beta, extra, weights
        beta_ = Parameter("beta")
        loss = weighted_negative_elbo(self.joint, list(self.decoders.values()), self.prior, beta_, weights)
        for subset in [*([m] for m in order), *extra]:
            q_subset = self.poe.given(subset)
            decoders = [self.decoders[m] for m in subset]
            loss = loss + weighted_negative_elbo(q_subset, decoders, self.prior, beta_, weights)
        super().__init__(
            loss.mean(),
            distributions=[*self.decoders.values(), *self.experts.values()],
            modalities=modalities,
            generative=self.generative_model(),
            inference=self.joint,
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
                subsets=extra or None,
                likelihood_weights=weights or None,
            ),
        )

    def subset_inference(self, given: list[str]) -> Distribution:
        return self.poe.given(given)

    def printed_subsets(self) -> list[list[str]]:
        return [*self.subsets, *([m] for m in self.modalities)]


__all__ = [
    "JMVAE",
    "JMVAEKL",
    "MVAE",
    "TELBO",
    "MultimodalVAE",
    "check_groups",
    "check_likelihood_weights",
    "dimension_weights",
    "modality_decoders",
    "with_subset_inference",
]
