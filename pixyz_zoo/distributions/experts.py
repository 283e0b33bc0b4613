"""Experts combined into one posterior: a product (MVAE) and a mixture (MMVAE) of experts.

Both classes replace Pixyz's ``ProductOfNormal`` / ``MixtureOfNormal``, which respectively keep
an id-keyed parameter cache, have no log-density and fix the prior expert to N(0, I), and compute
``logsumexp(w_k * log q_k)`` instead of ``log sum_k w_k q_k``.

Subsets of experts. Both distributions evaluate on whatever experts are *available*: an expert is
available when all its conditioning variables are keys of the input dict. Pixyz losses, however,
check that every ``cond_var`` of a distribution is in the batch, and Pixyz graphs (``p * q``) need
all of them too, so to use a subset inside a loss take a view with ``.given([...])``: it shares the
experts (same modules, same parameters) and its ``cond_var`` and printed text name only the subset,
e.g. ``q(z|x)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from pixyz.distributions import Normal
from pixyz.distributions.distributions import Distribution
from torch import distributions as td
from torch import nn

from pixyz_zoo.checks import reraise_explained
from pixyz_zoo.distributions.shared_parameters import SharedParameters, shared_value

__all__ = ["MixtureOfExperts", "ProductOfGaussianExperts", "only_expert"]


def only_expert(distribution: Distribution) -> Distribution:
    """The one expert of a mixture of one expert (MoPoE's ``q(z|m)``, ``\\tilde{q}(z|m)``: a Gaussian),
    else ``distribution`` itself."""
    if isinstance(distribution, MixtureOfExperts) and len(distribution.experts) == 1:
        return distribution.experts[0]
    return distribution


def _check_experts(experts: Sequence[Distribution], kind: str) -> tuple[list[str], list[str]]:
    """Return ``(var, cond_var)`` shared by ``experts``, the cond vars united in order."""
    experts = list(experts)
    if len(experts) == 0:
        raise ValueError(f"{kind} needs at least one expert, got an empty list.")
    for expert in experts:
        if not isinstance(expert, Distribution):
            raise TypeError(
                f"{kind} experts must be Pixyz distributions, e.g. GaussianEncoder(network, "
                f"cond_var=['x']) from pixyz_zoo.distributions; got a {type(expert).__name__}."
            )
    var = list(experts[0].var)
    if len(var) != 1:
        raise ValueError(f"{kind} experts must be over one variable, got {experts[0].prob_text}.")
    cond_var: list[str] = []
    for expert in experts:
        if list(expert.var) != var:
            raise ValueError(
                f"{kind} experts must all be over the same variable {var}, but "
                f"{expert.prob_text} is over {list(expert.var)}."
            )
        for name in expert.cond_var:
            if name not in cond_var:
                cond_var.append(name)
    return var, cond_var


def _select(experts: Sequence[Distribution], subset: Sequence[str], kind: str) -> list[int]:
    """Indices of the experts whose cond vars all lie in ``subset``.

    An expert conditioned partly inside and partly outside ``subset`` is an error, as is a name in
    ``subset`` that no expert is conditioned on.
    """
    subset = list(subset)
    known = {name for expert in experts for name in expert.cond_var}
    unknown = [name for name in subset if name not in known]
    if unknown:
        raise ValueError(
            f"{kind}.given({subset}): {unknown} are not conditioning variables of any expert "
            f"(known: {sorted(known)})."
        )
    chosen = []
    for i, expert in enumerate(experts):
        inside = [name for name in expert.cond_var if name in subset]
        if inside and len(inside) != len(expert.cond_var):
            raise ValueError(
                f"{kind}.given({subset}): expert {expert.prob_text} is conditioned on "
                f"{list(expert.cond_var)}; give all of them or none."
            )
        if len(inside) == len(expert.cond_var):
            chosen.append(i)
    return chosen


def _sizes_disagree(owner: str, var: str, named: list[tuple[str, torch.Tensor]]) -> str | None:
    """When combining the experts' tensors failed: each expert's size of ``var`` if they differ (an
    expert built for another latent size), else None (another cause)."""
    sizes = {text: tuple(tensor.shape[-1:]) for text, tensor in named}
    if len(set(sizes.values())) < 2:
        return None
    listed = ", ".join(f"{text} {size}" for text, size in sizes.items())
    return (
        f"the experts of {owner} give {var} different sizes per example: {listed}; build every "
        f"expert (and a prior expert) for one size of {var}"
    )


def _stack(owner: Distribution, tensors: list[torch.Tensor], experts: list[Distribution]) -> torch.Tensor:
    """The experts' tensors stacked along a new first axis (broadcast to one shape); their texts
    are formed only when that fails (not on every training step)."""
    try:
        return torch.stack(torch.broadcast_tensors(*tensors))
    except RuntimeError as error:
        named = [(expert.prob_text, tensor) for expert, tensor in zip(experts, tensors, strict=True)]
        reraise_explained(error, _sizes_disagree(owner.prob_text, owner.var[0], named))


def _available(experts: Sequence[Distribution], x_dict: dict) -> list[int]:
    """Indices of the experts whose conditioning variables are all in ``x_dict``."""
    return [i for i, e in enumerate(experts) if all(name in x_dict for name in e.cond_var)]


def _precision(params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """An expert's precision ``1 / sigma^2`` and precision-weighted mean ``mu / sigma^2``."""
    precision = params["scale"].pow(-2)
    return precision, precision * params["loc"]


def _product(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The product's mean and scale from its experts' parameters (each expert's precision shared)."""
    precision = None
    weighted_loc = None
    for part in parts:
        prec_i, term = shared_value("precision", (part["scale"], part["loc"]), partial(_precision, part))
        precision = prec_i if precision is None else precision + prec_i
        weighted_loc = term if weighted_loc is None else weighted_loc + term
    return {"loc": weighted_loc / precision, "scale": precision.rsqrt()}


def _inputs(expert: Distribution, x_dict: dict) -> dict:
    return {name: x_dict[name] for name in expert.cond_var}


class ProductOfGaussianExperts(SharedParameters, Normal):
    r"""Product of Gaussian experts, MVAE (Wu & Goodman 2018, Sec. 2 / Eq. 4 and App. A).

    .. math::
        q(z|x_1..x_N) \propto p(z) \prod_{i \in \text{available}} q(z|x_i),\qquad
        T = \sum_i \sigma_i^{-2},\quad \mu = T^{-1} \sum_i \sigma_i^{-2} \mu_i,\quad
        \sigma = T^{-1/2}

    (element-wise over features), where the sum runs over the prior expert, when given, and the
    experts whose conditioning variables are in the input. The prior expert is used exactly as
    given (any loc/scale, possibly learnt); ``prior=None`` means no prior expert.

    Parameters are recomputed on every call (no stale cache), so they follow the experts' weights
    after an optimiser step; within one loss evaluation (``shared_parameters()``) they are combined
    once and shared by the terms that use them, like the experts' own parameters.
    Being a Pixyz :class:`~pixyz.distributions.Normal`, it samples with
    ``reparam=True``, has ``get_log_prob`` / ``log_prob()``, and works in an analytic
    ``KullbackLeibler``.

    Parameters
    ----------
    experts:
        Pixyz ``Normal`` distributions over the same single variable, e.g. ``q(z|x)``, ``q(z|w)``.
    prior:
        Optional ``Normal`` over the same variable with no conditioning variables.
    name:
        Name printed in ``prob_text``.
    subset:
        Keep only the experts conditioned on these variables (see :meth:`given`).
    """

    def __init__(
        self,
        experts: Sequence[Distribution],
        prior: Distribution | None = None,
        name: str = "q",
        subset: Sequence[str] | None = None,
    ) -> None:
        experts = list(experts)
        var, _ = _check_experts(experts, "ProductOfGaussianExperts")
        for expert in experts:
            if expert.distribution_name != "Normal":
                raise ValueError(
                    f"ProductOfGaussianExperts needs Normal experts, got {expert.prob_text} "
                    f"({expert.distribution_name or type(expert).__name__})."
                )
        if prior is not None:
            if prior.distribution_name != "Normal":
                raise ValueError(f"The prior expert must be a Normal, got {prior.prob_text}.")
            if list(prior.var) != var or len(prior.cond_var) != 0:
                raise ValueError(
                    f"The prior expert must be over {var} with no conditioning variables, "
                    f"got {prior.prob_text}."
                )
        if subset is not None:
            experts = [experts[i] for i in _select(experts, subset, "ProductOfGaussianExperts")]
            if not experts and prior is None:
                raise ValueError(
                    f"ProductOfGaussianExperts.given({list(subset)}) selects no expert and there "
                    "is no prior expert: nothing to multiply."
                )
        cond_var: list[str] = []
        for expert in experts:
            cond_var += [name for name in expert.cond_var if name not in cond_var]

        features_shape = experts[0].features_shape if experts else prior.features_shape
        super().__init__(var=var, cond_var=cond_var, name=name, features_shape=features_shape)
        self.experts = nn.ModuleList(experts)
        self.prior = prior

    @property
    def distribution_torch_class(self):
        return partial(td.Normal, validate_args=False)  # precisions of positive scales

    def given(self, cond_vars: Sequence[str]) -> ProductOfGaussianExperts:
        """A view using only the experts conditioned on ``cond_vars`` (plus the prior expert).

        The view shares the expert modules; its ``cond_var`` is the subset, so it prints and
        evaluates as e.g. ``q(z|x)`` in Pixyz losses.
        """
        return ProductOfGaussianExperts(
            list(self.experts), prior=self.prior, name=self._name, subset=list(cond_vars)
        )

    def get_params(self, params_dict: dict | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """Precision-weighted combination of the available experts (and the prior expert)."""
        params_dict = {} if params_dict is None else params_dict
        chosen = _available(self.experts, params_dict)
        if not chosen and self.prior is None:
            raise ValueError(
                f"{self.prob_text}: no expert is available and there is no prior expert. "
                f"Give at least one of {self.cond_var} (got {sorted(params_dict)})."
            )
        parts = [self.prior.get_params({}, **kwargs)] if self.prior is not None else []
        for i in chosen:
            expert = self.experts[i]
            parts.append(expert.get_params(_inputs(expert, params_dict), **kwargs))

        try:
            if kwargs:
                return _product(parts)
            # the same experts' parameters give the same product: the KL and the sampling of one loss share it
            inputs = tuple(tensor for part in parts for tensor in (part["scale"], part["loc"]))
            return dict(shared_value("product of experts", inputs, partial(_product, parts)))
        except RuntimeError as error:
            texts = ([self.prior.prob_text] if self.prior is not None else []) + [
                self.experts[i].prob_text for i in chosen
            ]
            named = [(text, part["loc"]) for text, part in zip(texts, parts, strict=True)]
            reraise_explained(error, _sizes_disagree(self.prob_text, self.var[0], named))

    def _get_input_dict(self, input, var=None) -> dict:
        # Pixyz's version refuses a dict missing some cond var; a PoE takes any subset.
        if isinstance(input, dict):
            var = self.input_var if var is None else var
            return {name: input[name] for name in var if name in input}
        return super()._get_input_dict(input, var)

    @property
    def prob_factorized_text(self) -> str:
        texts = [self.prior.prob_text] if self.prior is not None else []
        texts += [expert.prob_text for expert in self.experts]
        return "".join(texts)

    @property
    def prob_joint_factorized_and_text(self) -> str:
        factorized = self.prob_factorized_text
        if factorized == self.prob_text:
            return self.prob_text
        return f"{self.prob_text} \\propto {factorized}"


class MixtureOfExperts(Distribution):
    r"""Mixture of unimodal experts, MMVAE (Shi et al. 2019, Sec. 3, Eq. 4).

    .. math::
        q(z|x_1..x_M) = \sum_m w_m\, q(z|x_m), \qquad w_m = 1/M \text{ by default}

    over the experts whose conditioning variables are in the input, weights renormalised.

    * ``get_log_prob`` is :math:`\log \sum_m w_m q_m(z|x_m)`, computed as a ``logsumexp`` of
      :math:`\log w_m + \log q_m(z|x_m)` (each summed over features). A mixture's density does not
      factorise over features, so ``sum_features=False`` is refused.
    * ``sample`` draws one component per example (a categorical draw with the weights, independent
      for every batch and ``sample_shape`` entry) and returns that component's sample, which is
      reparameterised when ``reparam=True``: gradients reach the chosen expert only. The choice
      itself is not differentiated. :meth:`sample_stratified` returns one sample per component, as
      in the paper's stratified estimator.

    Parameters
    ----------
    experts:
        Pixyz distributions over the same single variable with a reparameterised sampler.
    weights:
        Mixture weights (non-negative, normalised here); uniform when ``None``.
    name:
        Name printed in ``prob_text``.
    event_dims:
        Number of trailing dimensions of a sample that form one draw (1 for vector latents): the
        component is chosen per entry of the dimensions before them.
    subset:
        Keep only the experts conditioned on these variables (see :meth:`given`).
    """

    def __init__(
        self,
        experts: Sequence[Distribution],
        weights: Sequence[float] | torch.Tensor | None = None,
        name: str = "q",
        event_dims: int = 1,
        subset: Sequence[str] | None = None,
    ) -> None:
        experts = list(experts)
        var, _ = _check_experts(experts, "MixtureOfExperts")
        if weights is None:
            w = torch.full((len(experts),), 1.0 / len(experts))
        else:
            w = torch.as_tensor(weights, dtype=torch.get_default_dtype()).detach().clone()
            if w.shape != (len(experts),):
                raise ValueError(
                    f"MixtureOfExperts: {len(experts)} experts but weights of shape "
                    f"{tuple(w.shape)}; give one weight per expert."
                )
            if (w < 0).any() or not torch.isfinite(w).all() or w.sum() <= 0:
                raise ValueError(f"MixtureOfExperts weights must be >= 0 with a positive sum: {w}.")
        if subset is not None:
            chosen = _select(experts, subset, "MixtureOfExperts")
            if not chosen:
                raise ValueError(f"MixtureOfExperts.given({list(subset)}) selects no expert.")
            experts = [experts[i] for i in chosen]
            w = w[chosen]
        if w.sum() <= 0:
            raise ValueError("MixtureOfExperts: the selected experts all have weight 0.")
        _, cond_var = _check_experts(experts, "MixtureOfExperts")
        super().__init__(var=var, cond_var=cond_var, name=name, features_shape=experts[0].features_shape)
        self.experts = nn.ModuleList(experts)
        self.register_buffer("weights", w / w.sum())
        self._positive = tuple(bool(v > 0) for v in w)  # on the host: no device read per step
        self.event_dims = int(event_dims)

    @property
    def distribution_name(self) -> str:
        return "MixtureOfExperts"

    @property
    def has_reparam(self) -> bool:
        return all(expert.has_reparam for expert in self.experts)

    def given(self, cond_vars: Sequence[str]) -> MixtureOfExperts:
        """A view (shared expert modules) over the experts conditioned on ``cond_vars``."""
        return MixtureOfExperts(
            list(self.experts),
            weights=self.weights,
            name=self._name,
            event_dims=self.event_dims,
            subset=list(cond_vars),
        )

    def _components(self, x_dict: dict) -> tuple[list[int], torch.Tensor]:
        """Available experts and their renormalised weights."""
        if not isinstance(x_dict, dict):
            x_dict = super()._get_input_dict(x_dict)
        chosen = _available(self.experts, x_dict)
        if not chosen:
            raise ValueError(
                f"{self.prob_text}: no expert is available. Give all the conditioning variables "
                f"of at least one expert, among {self.cond_var} (got {sorted(x_dict)})."
            )
        if not any(self._positive[i] for i in chosen):
            raise ValueError(f"{self.prob_text}: the available experts all have weight 0.")
        w = self.weights[chosen]
        return chosen, w / w.sum()

    def get_params(self, params_dict: dict | None = None, **kwargs) -> dict:
        """``{"weights": (K,), "components": [params of each available expert]}``."""
        params_dict = {} if params_dict is None else params_dict
        chosen, w = self._components(params_dict)
        components = [
            self.experts[i].get_params(_inputs(self.experts[i], params_dict), **kwargs) for i in chosen
        ]
        return {"weights": w, "components": components}

    def sample_stratified(
        self,
        x_dict: dict,
        sample_shape: Sequence[int] = (),
        reparam: bool = True,
        batch_n: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample from each available component: ``(samples (K, ...), weights (K,))``."""
        chosen, w = self._components(x_dict)
        samples = [
            self.experts[i].sample(
                _inputs(self.experts[i], x_dict),
                batch_n=batch_n,
                sample_shape=torch.Size(sample_shape),
                return_all=False,
                reparam=reparam,
            )[self.var[0]]
            for i in chosen
        ]
        return _stack(self, samples, [self.experts[i] for i in chosen]), w

    def sample(
        self,
        x_dict: dict | None = None,
        batch_n: int | None = None,
        sample_shape: Sequence[int] = (),
        return_all: bool = True,
        reparam: bool = False,
        sample_mean: bool = False,
        **kwargs,
    ) -> dict:
        x_dict = {} if x_dict is None else x_dict
        if not isinstance(x_dict, dict):
            x_dict = super()._get_input_dict(x_dict)
        if sample_mean:
            mean = self.sample_mean(x_dict)
            if len(sample_shape) > 0:
                mean = mean.expand(torch.Size(sample_shape) + mean.shape)
            z = mean
        else:
            zs, w = self.sample_stratified(x_dict, sample_shape, reparam=reparam, batch_n=batch_n)
            batch_shape = zs.shape[1 : zs.dim() - self.event_dims]
            index = torch.multinomial(w, batch_shape.numel(), replacement=True)
            index = index.reshape((1,) + batch_shape + (1,) * self.event_dims)
            z = torch.gather(zs, 0, index.expand((1,) + zs.shape[1:])).squeeze(0)
        output = {self.var[0]: z}
        if return_all:
            result = dict(x_dict)
            result.update(output)
            return result
        return output

    def get_log_prob(
        self, x_dict: dict, sum_features: bool = True, feature_dims=None, **kwargs
    ) -> torch.Tensor:
        if not sum_features:
            raise ValueError(
                f"log {self.prob_text} does not factorise over features: a mixture's "
                "log-density is only defined summed over them (sum_features=True)."
            )
        if self.var[0] not in x_dict:
            raise ValueError(f"log {self.prob_text} needs '{self.var[0]}' in the input dict.")
        chosen, w = self._components(x_dict)
        log_probs = []
        for i in chosen:
            expert = self.experts[i]
            inputs = _inputs(expert, x_dict)
            inputs[self.var[0]] = x_dict[self.var[0]]
            log_probs.append(expert.get_log_prob(inputs, sum_features=True, feature_dims=feature_dims))
        stacked = torch.stack(torch.broadcast_tensors(*log_probs))
        log_w = w.log().reshape((-1,) + (1,) * (stacked.dim() - 1))
        return torch.logsumexp(stacked + log_w, dim=0)

    def sample_mean(self, x_dict: dict | None = None) -> torch.Tensor:
        """Mixture mean :math:`\\sum_m w_m \\mathbb{E}[q_m]`."""
        x_dict = {} if x_dict is None else x_dict
        chosen, w = self._components(x_dict)
        experts = [self.experts[i] for i in chosen]
        means = _stack(self, [expert.sample_mean(_inputs(expert, x_dict)) for expert in experts], experts)
        return (w.reshape((-1,) + (1,) * (means.dim() - 1)) * means).sum(0)

    def sample_variance(self, x_dict: dict | None = None) -> torch.Tensor:
        """Mixture variance :math:`\\sum_m w_m (\\sigma_m^2 + \\mu_m^2) - \\mu^2`."""
        x_dict = {} if x_dict is None else x_dict
        chosen, w = self._components(x_dict)
        experts = [self.experts[i] for i in chosen]
        means, variances = [], []
        for expert in experts:
            inputs = _inputs(expert, x_dict)
            means.append(expert.sample_mean(inputs))
            variances.append(expert.sample_variance(inputs))
        means_t = _stack(self, means, experts)
        var_t = _stack(self, variances, experts)
        w = w.reshape((-1,) + (1,) * (means_t.dim() - 1))
        mean = (w * means_t).sum(0)
        return (w * (var_t + means_t.pow(2))).sum(0) - mean.pow(2)

    def get_entropy(self, x_dict=None, sum_features=True, feature_dims=None):
        raise NotImplementedError(
            f"The entropy of the mixture {self.prob_text} has no closed form; estimate it with "
            "samples, e.g. -E[log q] via Expectation(q, -q.log_prob())."
        )

    @property
    def prob_factorized_text(self) -> str:
        texts = [expert.prob_text for expert in self.experts]
        k = len(texts)
        if k == 1:
            return texts[0]
        if torch.allclose(self.weights, torch.full_like(self.weights, 1.0 / k)):
            return f"\\frac{{1}}{{{k}}}\\left({' + '.join(texts)}\\right)"
        return " + ".join(f"{float(w):.3g}{t}" for w, t in zip(self.weights, texts, strict=True))

    @property
    def prob_joint_factorized_and_text(self) -> str:
        factorized = self.prob_factorized_text
        if factorized == self.prob_text:
            return self.prob_text
        return f"{self.prob_text} = {factorized}"
