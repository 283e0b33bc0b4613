r"""MFM, the Multimodal Factorization Model (Tsai, Liang, Zadeh, Morency & Salakhutdinov, "Learning
Factorized Multimodal Representations", ICLR 2019).

**Generative model (sec. 2.1, eq. 1).** Data modalities :math:`X = (x_1..x_M)` and a label
:math:`y` share one *multimodal discriminative factor* :math:`z_y`; each modality has its own
*modality-specific generative factor* :math:`z_{a_m}`; all factors are independent
:math:`\mathcal{N}(0, I)`:

.. math::
    p(X, y, Z) = p(y|z_y) \prod_{m=1}^{M} p(x_m|z_y, z_{a_m}) \; p(z_y) \prod_{m=1}^{M} p(z_{a_m})

Each factor goes through its own feature network, :math:`f = \mathrm{MLP}(z)`; the decoder of
:math:`x_m` is :math:`F_m(f_y, f_{a_m})` (the zoo's decoder of the modality's likelihood family)
and the label is predicted from :math:`f_y` alone.

**Inference (sec. 2.2, eq. 3).** Deterministic encoders, as in a Wasserstein autoencoder: the
discriminative factor reads every modality, each generative factor only its own,
:math:`q(z_y|X) \prod_m q(z_{a_m}|x_m)`, each a point mass
(:class:`~pixyz_zoo.distributions.deterministic.DeterministicEncoder`).

**Objective (eq. 4).** The joint-distribution Wasserstein distance relaxed to reconstruction, the
discriminative loss and an MMD penalty per factor, as one Pixyz expression:

.. math::
    \mathbb{E}_{q(Z|X)}\Big[-\sum_m \lambda_m \log p(x_m|z_y, z_{a_m}) - \lambda_y \log p(y|z_y)\Big]
    + \lambda_{\mathrm{MMD}} \sum_{z \in Z} \mathrm{MMD}^2\left[q(z) \| p(z)\right]

with the biased MMD estimator and the authors' kernel (:mod:`pixyz_zoo.losses.mmd`) and, by
default, :math:`\lambda_m = 1/D_m` (each modality's log-likelihood averaged over its :math:`D_m`
features; ``likelihood_weights``).

**Surrogate inference (sec. 2.3, eq. 5).** For every proper non-empty subset :math:`S` of the
data modalities, a surrogate encoder :math:`\hat{q}(Z_{\bar S}|X_S)` regresses the factors that
:math:`S` cannot compute itself (:math:`z_y`, and :math:`z_{a_m}` for :math:`m \notin S`) onto the
full-data codes, held fixed: :math:`\lVert \hat{E}_S(X_S) - \mathrm{sg}[E(X)]\rVert^2`
(:class:`~pixyz_zoo.losses.surrogate.SurrogateRegression`), added to the same loss. Inference from
``S`` is then :math:`\prod_{m \in S} q(z_{a_m}|x_m)\,\hat{q}(z_y, z_{a_{\bar S}}|X_S)`, so the zoo's
one generation path (``generate(batch, given, targets)``) fills any missing modality and predicts
the label (class probabilities) from any subset.

**Ablations (sec. 4, the models MA..ME).** ``discriminative_factor`` and ``generative_factor``
give the paper's variants with the same code: MA = per-modality + none, MB = multimodal + none
(a purely discriminative network), MC = per-modality + shared, MD = multimodal + shared (one
factor per modality, or one multimodal factor, generates and predicts), ME = multimodal +
multimodal (one multimodal generative factor :math:`z_a` beside :math:`z_y`), MFM = multimodal +
per-modality. Without a generative factor there is no reconstruction term.

**Sequences (the authors' model).** ``arch="lstm"``: every data modality is a sequence ``(T, d)``
of one common length; per-modality LSTM encoders, an LSTM over the modalities concatenated at each
time step for :math:`z_y`, LSTM decoders fed :math:`(f_y, f_{a_m})` at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import LogProb
from pixyz.losses.losses import Loss
from torch import nn

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions import (
    MLP,
    CategoricalDecoder,
    decoder_for,
    decoder_network,
    decoder_output_channels,
    encoder_network,
    standard_normal,
)
from pixyz_zoo.distributions.deterministic import DeterministicEncoder, FactorDecoderNet, factor_feature_net
from pixyz_zoo.distributions.sequence_networks import SequenceDecoderNet, SequenceEncoderNet, sequence_length
from pixyz_zoo.losses import sum_losses
from pixyz_zoo.losses.mmd import MaximumMeanDiscrepancy
from pixyz_zoo.losses.surrogate import SurrogateRegression
from pixyz_zoo.modalities import Modality, check_modalities, nonempty_subsets, variable_names
from pixyz_zoo.models.base import ZooModel
from pixyz_zoo.models.jmvae import check_likelihood_weights, with_subset_inference

__all__ = ["ABLATIONS", "MFM"]

#: The paper's ablation models as (discriminative_factor, generative_factor).
ABLATIONS: dict[str, tuple[str, str]] = {
    "MA": ("per-modality", "none"),
    "MB": ("multimodal", "none"),
    "MC": ("per-modality", "shared"),
    "MD": ("multimodal", "shared"),
    "ME": ("multimodal", "multimodal"),
    "MFM": ("multimodal", "per-modality"),
}
SURROGATE_NAME = r"\hat{q}"


def _check_modalities(modalities: dict[str, Modality], label: str) -> list[str]:
    """The data modalities (every modality but the label), refusing a missing or non-label ``label``."""
    if label not in modalities:
        raise ValueError(
            f"MFM predicts a class label: the data needs a one-hot label modality {label!r}, and it has "
            f"only {sorted(modalities)}. Add it from the dataset's class labels (dataset.with_labels("
            f"{label!r}); the run code does this for datasets with labels) or name the label modality "
            "with the option label=..."
        )
    if not modalities[label].is_label:
        m = modalities[label]
        raise ValueError(
            f"MFM's label {label!r} must be a one-hot class label (categorical of shape (classes,)), got "
            f"{m.likelihood} of shape {m.shape}; choose the label modality with the option label=..."
        )
    data = [name for name in modalities if name != label]
    if not data:
        raise ValueError(f"MFM needs at least one data modality besides the label {label!r}")
    return data


class MFM(ZooModel):
    """MFM: multimodal discriminative factor, modality-specific generative factors (module doc).

    Options: ``z_dim`` (each discriminative factor), ``style_dim`` (each generative factor),
    ``hidden`` (network widths; the factor features have width ``hidden[-1]``), ``arch``
    (``mlp``, ``conv`` for images, ``lstm`` for sequences), ``decoder_scale``, ``label`` (the label
    modality), ``discriminative_factor`` / ``generative_factor`` (the ablations), the loss weights
    ``likelihood_weights`` (``lambda_m`` per data modality: ``"per-dimension"``, the default, is
    ``1 / D_m``, so each modality's term is its log-likelihood averaged over its ``D_m`` features and
    a large image does not swamp the label; ``None`` is 1 for each; or a dict), ``label_weight``
    (``lambda_y``), ``mmd_weight`` (``lambda_MMD``) and ``mmd_bandwidth`` (kernel bandwidth; default
    the factor's dimension), ``surrogate`` (train the surrogate encoders of eq. 5).
    """

    name = "mfm"
    description = (
        "MFM (Tsai et al. 2019): multimodal discriminative factor z_y and modality-specific generative "
        "factors z_a (eq. 1), deterministic encoders (eq. 3), reconstruction + label + MMD objective "
        "(eq. 4), surrogate inference for missing modalities (eq. 5)"
    )
    needs_labels = True
    batch_estimate = "the MMD between the batch's codes and as many prior samples (eq. 4)"
    likelihood_not_applicable = (
        "MFM's encoders are deterministic (a Wasserstein autoencoder): q(z|X) is a point mass without a "
        "density, so the ELBO and the importance-weighted bound do not apply; see the label accuracy "
        "and reconstruction errors instead"
    )

    def __init__(
        self,
        modalities: dict[str, Modality],
        z_dim: int = 32,
        style_dim: int = 32,
        hidden: Sequence[int] = (512, 512),
        arch: Literal["mlp", "conv", "lstm"] = "mlp",
        decoder_scale: str | float | None = None,
        label: str = "y",
        discriminative_factor: Literal["multimodal", "per-modality"] = "multimodal",
        generative_factor: Literal["per-modality", "multimodal", "shared", "none"] = "per-modality",
        likelihood_weights: dict[str, float] | Literal["per-dimension"] | None = "per-dimension",
        label_weight: float = 1.0,
        mmd_weight: float = 1.0,
        mmd_bandwidth: float | None = None,
        surrogate: bool = True,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
    ) -> None:
        modalities = check_modalities(modalities)
        self.label = label
        self.data_modalities = _check_modalities(modalities, label)
        if discriminative_factor not in ("multimodal", "per-modality"):
            raise ValueError(
                f"discriminative_factor must be 'multimodal' or 'per-modality', got {discriminative_factor!r}"
            )
        if generative_factor not in ("per-modality", "multimodal", "shared", "none"):
            raise ValueError(
                "generative_factor must be 'per-modality', 'multimodal', 'shared' or 'none', got "
                f"{generative_factor!r}"
            )
        if not hidden:
            raise ValueError(
                "hidden must give at least one width (the factor features have width hidden[-1])"
            )
        if arch not in ("mlp", "conv", "lstm"):
            raise ValueError(f"unknown architecture {arch!r}; choose 'mlp', 'conv' or 'lstm'")
        per_dimension = likelihood_weights == "per-dimension"
        if isinstance(likelihood_weights, str) and not per_dimension:
            raise ValueError(
                f"likelihood_weights must be 'per-dimension', None or a dict, got {likelihood_weights!r}"
            )
        weights = {} if per_dimension else check_likelihood_weights(likelihood_weights, modalities)
        if label in weights:
            raise ValueError(
                f"likelihood_weights weigh the data modalities; the label {label!r} has its own weight: "
                "use label_weight"
            )
        data = [modalities[m] for m in self.data_modalities]
        if arch == "lstm":
            sequence_length(data)  # every data modality a sequence (T, d), one T for all
        self.discriminative_factor, self.generative_factor = discriminative_factor, generative_factor
        self.arch, self.hidden = arch, [int(h) for h in hidden]
        width = self.hidden[-1]

        # ------------------------------------------------------------ the factors and their inputs
        # latent -> the data modalities it is inferred from (eq. 3)
        self.latent_inputs: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        if discriminative_factor == "multimodal":
            self.discriminative_latents = [f"z_{label}"]
            self.latent_inputs[f"z_{label}"] = list(self.data_modalities)
        else:
            self.discriminative_latents = [f"z_{{{label}_{m}}}" for m in self.data_modalities]
            for m, z in zip(self.data_modalities, self.discriminative_latents, strict=True):
                self.latent_inputs[z] = [m]
        sizes.update({z: int(z_dim) for z in self.discriminative_latents})
        # data modality -> the latents its decoder reads (eq. 1)
        self.reads: dict[str, list[str]] = {}
        self._style: dict[str, str] = {}
        for m in self.data_modalities:
            own = self._discriminative_of(m)
            if generative_factor == "per-modality":
                self._style[m] = f"z_{{a_{m}}}"
                self.latent_inputs[self._style[m]] = [m]
            elif generative_factor == "multimodal":
                self._style[m] = "z_a"
                self.latent_inputs["z_a"] = list(self.data_modalities)
            elif generative_factor == "shared":
                self._style[m] = own
            if generative_factor != "none":
                self.reads[m] = list(dict.fromkeys([own, self._style[m]]))
        sizes.update({z: int(style_dim) for z in self.latent_inputs if z not in sizes})
        self.latent_sizes = sizes

        # ------------------------------------------------------------ generative model (eq. 1)
        # p(z) = N(0, I) for every factor
        self.priors = {z: standard_normal(z, sizes[z], name="p") for z in self.latent_inputs}
        # f = MLP(z) for every factor, shared by every decoder that reads it
        self.feature_nets = nn.ModuleDict(
            {self._key(z): factor_feature_net(sizes[z], width) for z in self.latent_inputs}
        )
        # p(x_m | z_y, z_a^m) = F_m(f_y, f_a^m), the likelihood family of x_m
        self.decoders: dict[str, Distribution] = {}
        for m, latents in self.reads.items():
            modality = modalities[m]
            head = self._decoder_head(
                modality, len(latents) * width, decoder_output_channels(modality, decoder_scale)
            )
            network = FactorDecoderNet([self.feature_nets[self._key(z)] for z in latents], head)
            self.decoders[m] = decoder_for(modality, network, cond_var=latents, name="p", scale=decoder_scale)
        # p(y | z_y): the label from the discriminative factor(s) alone
        n_classes = modalities[label].shape[0]
        head = MLP(len(self.discriminative_latents) * width, n_classes, [width])
        network = FactorDecoderNet(
            [self.feature_nets[self._key(z)] for z in self.discriminative_latents], head
        )
        self.decoders[label] = CategoricalDecoder(
            network, label, cond_var=self.discriminative_latents, name="p"
        )
        # multiplied from the priors up: printed p(x_1|..)..p(x_M|..)p(y|z_y)p(z_y)p(z_a^1)..p(z_a^M)
        generative = _product([*reversed(self.priors.values()), *reversed(self.decoders.values())])

        # ------------------------------------------------------------ inference (eq. 3)
        # deterministic encoders: z_y = E_y(x_1..x_M), z_a^m = E_m(x_m)
        self.encoders = {
            z: DeterministicEncoder(self._encoder_net([modalities[m] for m in inputs], sizes[z]), inputs, z)
            for z, inputs in self.latent_inputs.items()
        }
        inference = _product(list(self.encoders.values()))

        # ------------------------------------------------------------ surrogate inference (eq. 5)
        self.surrogate = bool(surrogate)
        self.surrogates: dict[tuple[str, ...], DeterministicEncoder] = {}
        if self.surrogate:
            for subset in nonempty_subsets(self.data_modalities)[:-1]:  # every proper non-empty subset
                missing = self._missing_latents(subset)
                network = self._encoder_net([modalities[m] for m in subset], sum(sizes[z] for z in missing))
                self.surrogates[subset] = DeterministicEncoder(
                    network, list(subset), missing, [sizes[z] for z in missing], name=SURROGATE_NAME
                )

        # ------------------------------------------------------------ objective (eq. 4)
        likelihood: list[Loss] = []
        for m, decoder in self.decoders.items():
            if m != label and per_dimension:  # lambda_m = 1 / D_m: the mean over the features
                likelihood.append(LogProb(decoder) / modalities[m].dim)
                continue
            weight = float(label_weight) if m == label else weights.get(m, 1.0)
            if weight:
                likelihood.append(LogProb(decoder) if weight == 1.0 else weight * LogProb(decoder))
        if not likelihood:
            raise ValueError(
                "the objective has no likelihood term: give label_weight > 0 or a generative factor"
            )
        loss = E(inference, -sum_losses(likelihood))
        if mmd_weight:
            mmd = sum_losses(
                [
                    MaximumMeanDiscrepancy(self.encoders[z], self.priors[z], mmd_bandwidth)
                    for z in self.encoders
                ]
            )
            loss = loss + (mmd if mmd_weight == 1.0 else float(mmd_weight) * mmd)
        if self.surrogates:
            loss = loss + sum_losses(
                [
                    SurrogateRegression(q_hat, [self.encoders[z] for z in q_hat.var])
                    for q_hat in self.surrogates.values()
                ]
            )
        if per_dimension:
            weights = {m: 1.0 / modalities[m].dim for m in self.data_modalities}
        self.likelihood_weights, self.label_weight, self.mmd_weight = weights, label_weight, mmd_weight
        super().__init__(
            loss.mean(),
            distributions=[*self.encoders.values(), *self.decoders.values(), *self.surrogates.values()],
            modalities=modalities,
            generative=generative,
            inference=inference,
            lr=lr,
            clip_grad_norm=clip_grad_norm,
            config=dict(
                z_dim=int(z_dim),
                style_dim=int(style_dim),
                hidden=list(self.hidden),
                arch=arch,
                decoder_scale=decoder_scale,
                label=label,
                discriminative_factor=discriminative_factor,
                generative_factor=generative_factor,
                likelihood_weights="per-dimension" if per_dimension else weights or None,
                label_weight=label_weight,
                mmd_weight=mmd_weight,
                mmd_bandwidth=mmd_bandwidth,
                surrogate=self.surrogate,
            ),
        )
        self.latents = list(self.latent_inputs)

    # ------------------------------------------------------------------ networks
    @staticmethod
    def _key(latent: str) -> str:
        """A module name for a latent (no dots or braces)."""
        return "".join(c if c.isalnum() or c == "_" else "_" for c in latent)

    def _encoder_net(self, inputs: list[Modality], out_dim: int) -> nn.Module:
        if self.arch == "lstm":
            return SequenceEncoderNet([m.shape[1] for m in inputs], out_dim, self.hidden[-1])
        return encoder_network(inputs, out_dim, self.arch, self.hidden)

    def _decoder_head(self, modality: Modality, in_dim: int, out_channels: int) -> nn.Module:
        if self.arch == "lstm":
            length, dim = modality.shape
            return SequenceDecoderNet(in_dim, length, dim, self.hidden[-1], out_channels)
        return decoder_network(modality, in_dim, self.arch, self.hidden, out_channels)

    def _discriminative_of(self, m: str) -> str:
        return self.discriminative_latents[
            0 if len(self.discriminative_latents) == 1 else self.data_modalities.index(m)
        ]

    def _missing_latents(self, subset: Sequence[str]) -> list[str]:
        """The latents whose full-data encoders read a modality outside ``subset``."""
        return [z for z, inputs in self.latent_inputs.items() if not set(inputs) <= set(subset)]

    # ------------------------------------------------------------------ the factors by role
    @property
    def discriminative_latent(self) -> str:
        """The multimodal discriminative factor ``z_y`` (one per modality: see ``discriminative_latents``)."""
        if len(self.discriminative_latents) != 1:
            raise ValueError(
                f"with discriminative_factor='per-modality' there is one discriminative factor per modality, "
                f"{self.discriminative_latents}: use model.discriminative_latents"
            )
        return self.discriminative_latents[0]

    def style_latent(self, m: str) -> str:
        """The generative factor from which (with the discriminative one) modality ``m`` is generated."""
        if m not in self.data_modalities:
            raise KeyError(f"{m!r} is not a data modality of this model: {self.data_modalities}")
        if self.generative_factor == "none":
            raise ValueError("with generative_factor='none' the model has no generative factor")
        return self._style[m]

    # ------------------------------------------------------------------ inference
    def _observed(self, given: Sequence[str] | None) -> list[str]:
        """``given`` in the order of the data modalities, refusing the label and unknown names."""
        if given is None:
            return list(self.data_modalities)
        given = list(given)
        if self.label in given:
            raise ValueError(
                f"MFM predicts the label {self.label!r} from the data modalities, never from it: infer from "
                f"a subset of {self.data_modalities} and generate {self.label!r} (class probabilities)"
            )
        self._check_given(given)
        if not given:
            raise ValueError(
                "inferring the factors needs at least one data modality; without any, they come from the "
                "prior (model.sample(n))"
            )
        return [m for m in self.data_modalities if m in given]

    def surrogate_for(self, given: Sequence[str]) -> DeterministicEncoder:
        """``\\hat{q}(missing factors | given)`` for a proper subset of the data modalities (eq. 5)."""
        key = tuple(self._observed(given))
        if not self.surrogate:
            raise ValueError(
                f"this MFM was built with surrogate=False: it infers its factors only from all of "
                f"{self.data_modalities}, not from {list(key)}; build it with surrogate=True"
            )
        return self.surrogates[key]

    def inference_for(self, given: Sequence[str]) -> Distribution:
        """The encoders of ``given``: all data modalities -> ``q(Z|X)``; a proper subset -> the encoders it
        feeds times its surrogate ``\\hat{q}`` (eq. 5); none -> the priors."""
        if not list(given):
            return _product(list(self.priors.values()))
        given = self._observed(given)
        if len(given) == len(self.data_modalities):
            return self.inference
        own = [q for z, q in self.encoders.items() if set(self.latent_inputs[z]) <= set(given)]
        return _product([*own, self.surrogate_for(given)])

    def infer_latents(
        self, batch: dict[str, torch.Tensor], given: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The codes of every factor from ``given`` (default: all data modalities), differentiable.

        From a proper subset, the factors it cannot compute come from its surrogate encoder (eq. 5).
        """
        given = self._observed(given)
        self._check_given_batch(batch, given)
        inputs = self._to_device({g: batch[g] for g in given})
        codes: dict[str, torch.Tensor] = {}
        for z, q in self.encoders.items():
            if set(self.latent_inputs[z]) <= set(given):
                codes.update(q.get_params({c: inputs[c] for c in q.cond_var}))
        if len(given) < len(self.data_modalities):
            q_hat = self.surrogate_for(given)
            codes.update(q_hat.get_params({c: inputs[c] for c in q_hat.cond_var}))
        return {z: codes[z] for z in self.latent_inputs}

    def factor_features(self, latents: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``f = MLP(z)`` for every latent of ``latents`` (same keys), differentiable."""
        unknown = [z for z in latents if z not in self.latent_inputs]
        if unknown:
            raise KeyError(f"{unknown} are not factors of this model: {list(self.latent_inputs)}")
        return {z: self.feature_nets[self._key(z)](self._as_input(value)) for z, value in latents.items()}

    def decode_features(self, features: dict[str, torch.Tensor], target: str) -> torch.Tensor:
        """The mean of ``p(target | features)`` (class probabilities for the label), differentiable."""
        if target not in self.decoders:
            if target in self.modalities:
                raise ValueError(
                    f"{target!r} is not generated with generative_factor={self.generative_factor!r}"
                )
            raise KeyError(f"unknown modality {target!r}; this model generates {list(self.decoders)}")
        decoder = self.decoders[target]
        missing = [z for z in decoder.cond_var if z not in features]
        if missing:
            raise KeyError(
                f"{decoder.prob_text} reads the features of {decoder.cond_var}; {missing} are missing"
            )
        with decoder.network.reading_features():
            params = decoder.forward(**{z: features[z] for z in decoder.cond_var})
        return decoder.distribution_torch_class(**params).mean

    # ------------------------------------------------------------------ the zoo's surface
    @torch.no_grad()
    def encode(
        self, batch: dict[str, torch.Tensor], given: Sequence[str] | None = None, sample: bool = False
    ) -> dict[str, torch.Tensor]:
        """The codes inferred from ``given`` (default: all data modalities); they are deterministic."""
        self.distributions.eval()
        return self.infer_latents(batch, given)

    def sample_latents(
        self,
        batch: dict[str, torch.Tensor] | None,
        given: Sequence[str],
        n_samples: int = 1,
        n: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The codes from ``given`` (repeated ``n_samples`` times), or prior samples when none is given."""
        if list(given):
            latents = self.encode(batch if batch is not None else {}, given)
            return {z: v.repeat(n_samples, *([1] * (v.dim() - 1))) for z, v in latents.items()}
        return super().sample_latents(batch, given, n_samples=n_samples, n=n)

    @torch.no_grad()
    def decode(
        self,
        latents: dict[str, torch.Tensor],
        targets: Sequence[str] | None = None,
        conditions: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Means of ``p(target | factors)``: decoder means, the label's class probabilities (default:
        every generated modality and the label)."""
        self.distributions.eval()
        features = self.factor_features(latents)
        targets = self.default_targets() if targets is None else variable_names(targets)
        return {t: self.decode_features(features, t) for t in targets}

    def default_targets(self) -> list[str]:
        """Every generated modality and the label (MA, MB generate the label only)."""
        return list(self.decoders)

    def reconstruct(
        self, batch: dict[str, torch.Tensor], sample_latent: bool = False
    ) -> dict[str, torch.Tensor]:
        """Every generated modality, and the predicted label, from all data modalities."""
        self._check_reconstructed_batch(batch, self.data_modalities)
        return self.generate(batch, given=self.data_modalities, sample_latent=sample_latent)

    @torch.no_grad()
    def test_metrics(self, data: MultimodalDataset, batch_size: int = 100) -> dict[str, float]:
        """Label accuracy from all data modalities and from each one alone (surrogate inference), and
        the squared reconstruction error per example of each generated data modality."""
        subsets = [self.data_modalities]
        if self.surrogate and len(self.data_modalities) > 1:
            subsets += [[m] for m in self.data_modalities]
        generated = [m for m in self.data_modalities if m in self.decoders]
        correct = dict.fromkeys(map(tuple, subsets), 0)
        squared = dict.fromkeys(generated, 0.0)
        count = 0
        for batch in data.batches(batch_size, generator=torch.Generator().manual_seed(0)):
            target = batch[self.label].argmax(-1)
            for subset in subsets:
                probs = self.generate(batch, given=subset, targets=[self.label])[self.label]
                correct[tuple(subset)] += int((probs.argmax(-1).cpu() == target).sum())
            recon = self.generate(batch, given=self.data_modalities, targets=generated)
            for m in generated:
                squared[m] += float((recon[m].cpu() - batch[m]).pow(2).flatten(1).sum(1).sum())
            count += len(target)
        metrics = {"label_accuracy": correct[tuple(self.data_modalities)] / count}
        for subset in subsets[1:]:
            metrics[f"label_accuracy_from_{subset[0]}"] = correct[tuple(subset)] / count
        metrics.update({f"reconstruction_squared_error_{m}": squared[m] / count for m in generated})
        return metrics

    def __str__(self) -> str:
        """The base printout plus the surrogate inference from each proper subset (eq. 5)."""
        text = super().__str__()
        if not self.surrogates:
            return text
        shown = [list(s) for s in self.surrogates if len(self.data_modalities) <= 3 or len(s) == 1]
        return with_subset_inference(text, self, shown).replace(
            "Inference from subsets of the modalities:",
            "Surrogate inference from subsets of the modalities (eq. 5):",
        )


def _product(distributions: Sequence[Distribution]) -> Distribution:
    """``d_1 * d_2 * ...`` as one Pixyz distribution (the first alone when there is one)."""
    joint = distributions[0]
    for d in distributions[1:]:
        joint = joint * d
    return joint
