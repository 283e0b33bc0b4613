"""Log-likelihood estimates: the ELBO and the importance-weighted bound (IWAE, Burda et al. 2016).

For K samples z_k ~ q(z|x), with log-weights log w_k = log p(x, z_k) - log q(z_k|x):

    ELBO     = E_q[log w]                       estimated by mean_k log w_k
    IWAE_K   = E[log (1/K) sum_k w_k]  <= log p(x)  estimated by logsumexp_k(log w_k) - log K

IWAE_1 = ELBO and IWAE_K increases with K towards log p(x). Works for any zoo model: the joint is
``model.generative`` and the proposal ``model.inference_for(given)``.

Cost. Whatever does not depend on the sample is computed once per data batch: the parameters of
an encoder, of a product of experts or of a mixture's components (one network pass per example,
not per sample); the K samples are then drawn at once from those parameters, and the decoders
and the prior score them in chunks of at most ``max_rows`` rows (the data batch repeated), so
IWAE_K costs one encoder pass plus K decoder passes per example.

One imputation per sample. A proposal whose parameters are themselves random, such as iterative
sampling (JMVAE eq. 6: ``q(z|x) = q(z|x, w_N)`` with ``w_N`` imputed by a Markov chain), is used
as the extended proposal ``r(w_N|x) q(z|x, w_N)``: each sample gets its own chain, and the sample
and its density ``q(z|x, w_N)`` come from that one chain. The weight ``p(x, z) / q(z|x, w_N)`` is
then unbiased for ``p(x)`` (its expectation over ``w_N`` and ``z`` is ``p(x)``), so both bounds
hold. (Scoring a sample drawn under one imputation with the density of another, fresh
imputation is not an importance weight at all; it can exceed ``log p(x)``.)

Latents the proposal does not give. A hierarchical model inferring only its top latent from a
subset (``q(z_2|x)``) has the others drawn from the generative model, ``z_1 ~ p(z_1|z_2)``, which
is part of the proposal and cancels from the weight: ``log w = log p(z_2) + log p(x|z_1) -
log q(z_2|x)`` (the JMVAE paper's eq. A.2 estimator).

The likelihood of a subset ``S`` of the modalities (``observed=S``, the other modalities
marginalised out of the joint; Wu & Goodman 2018 and Shi et al. 2019 report such marginal test
likelihoods) uses the log-weights ``log p(z) + sum_{m in S} log p(m|z) - log q(z|x_S)``, with the
proposal ``q(z|x_S)`` the model's inference from that subset (``given=S``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from pixyz.distributions.distributions import Distribution
from torch import distributions as td

from pixyz_zoo.checks import check_count
from pixyz_zoo.datasets.base import MultimodalDataset, check_dataset
from pixyz_zoo.distributions.experts import MixtureOfExperts
from pixyz_zoo.distributions.shared_parameters import shared_parameters
from pixyz_zoo.modalities import variable_names
from pixyz_zoo.models.base import ZooModel

__all__ = ["elbo_estimate", "evaluate_log_likelihood", "iwae_bound", "log_weights"]


def _repeat(value: torch.Tensor, times: int) -> torch.Tensor:
    """``times`` copies of a batch stacked sample-major: row ``s * n + b`` is example ``b``."""
    return value.repeat(times, *([1] * (value.dim() - 1)))


def _torch_distribution(dist: Distribution, inputs: dict[str, torch.Tensor]) -> td.Distribution | None:
    """The torch distribution of ``dist`` given ``inputs`` (None: not expressible as one).

    A mixture of experts becomes ``MixtureSameFamily`` over its available Gaussian components
    (the mixture's density, ``log sum_m w_m q_m``); other distributions use their
    ``distribution_torch_class`` and ``get_params``, evaluated once.
    """
    if isinstance(dist, MixtureOfExperts):
        chosen, weights = dist._components(inputs)
        parts = []
        for i in chosen:
            expert = dist.experts[i]
            parts.append(_torch_distribution(expert, {v: inputs[v] for v in expert.cond_var}))
        if any(not isinstance(part, td.Normal) for part in parts):
            return None
        loc = torch.stack(torch.broadcast_tensors(*(part.loc for part in parts)), dim=1)  # (n, M, ...)
        scale = torch.stack(torch.broadcast_tensors(*(part.scale for part in parts)), dim=1)
        mixing = td.Categorical(probs=weights.to(loc.dtype).expand(loc.shape[0], -1), validate_args=False)
        components = td.Independent(td.Normal(loc, scale, validate_args=False), loc.dim() - 2)
        return td.MixtureSameFamily(mixing, components, validate_args=False)
    try:
        torch_class, keys = dist.distribution_torch_class, set(dist.params_keys)
    except (NotImplementedError, AttributeError):
        return None
    params = dist.get_params(inputs)
    if set(params) != keys:
        return None
    return torch_class(**params)


class _Factor:
    """One factor of the proposal: samples and their log-density from one set of parameters.

    The parameters are computed once per data batch when they depend only on the observed
    modalities and are not random; else once per chunk of samples, on the chunk's rows (a random
    proposal such as iterative sampling: one chain per sample), and the sample and its density are
    both taken from them.
    """

    def __init__(self, dist: Distribution, observed: dict[str, torch.Tensor], n: int) -> None:
        self.dist, self.n, self.var = dist, n, dist.var[0]
        self.random = bool(getattr(dist, "random_parameters", False))
        self.fixed = None
        if not self.random and all(v in observed for v in dist.cond_var):
            self.fixed = self._torch({v: observed[v] for v in dist.cond_var}, n)

    def _torch(self, inputs: dict[str, torch.Tensor], rows: int) -> td.Distribution | None:
        if isinstance(self.dist, MixtureOfExperts):
            with shared_parameters():  # experts shared by several products of a mixture run once
                torch_dist = _torch_distribution(self.dist, inputs)
        else:  # no memo: a random proposal's chain would keep every imputation alive in it
            torch_dist = _torch_distribution(self.dist, inputs)
        if torch_dist is None:
            return None
        shape = torch_dist.batch_shape
        if len(shape) == 0:
            return torch_dist.expand(torch.Size([rows]))
        if shape[0] != rows:  # a prior's parameters: one row for all
            return torch_dist.expand(torch.Size([rows]) + (shape[1:] if shape[0] == 1 else shape))
        return torch_dist

    def sample(self, values: dict[str, torch.Tensor], c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``c`` samples per example (rows sample-major) and their log-density, shape (c * n,)."""
        rows = c * self.n
        if self.fixed is not None:
            z = self.fixed.sample((c,))  # (c, n, ...): the parameters of n rows, c draws each
            log_q = self.fixed.log_prob(z)
            return z.reshape(rows, *z.shape[2:]), log_q.reshape(rows, -1).sum(dim=1)
        inputs = {v: values[v] for v in self.dist.cond_var}
        torch_dist = self._torch(inputs, rows)
        if torch_dist is not None:
            z = torch_dist.sample()
            return z, torch_dist.log_prob(z).reshape(rows, -1).sum(dim=1)
        if self.random:
            raise NotImplementedError(
                f"{self.dist.prob_text} has random parameters and no torch distribution: its samples "
                "cannot be scored under the parameters that drew them"
            )
        with shared_parameters():  # deterministic parameters: the same in both calls
            z = self.dist.sample(inputs, return_all=False)[self.var]
            return z, self.dist.get_log_prob({**inputs, self.var: z}).reshape(rows)


def _proposal_factors(q: Distribution) -> list[Distribution]:
    graph = getattr(q, "graph", None)
    if graph is None:
        return [q]
    return [factor.dist for factor in graph.factors(sorted=True)]


@torch.no_grad()
def log_weights(
    model: ZooModel,
    batch: dict[str, torch.Tensor],
    k: int,
    given: Sequence[str] | None = None,
    max_rows: int = 20000,
    observed: Sequence[str] | None = None,
    on_chunk: Callable[[int], Any] | None = None,
    proposal: Distribution | None = None,
) -> torch.Tensor:
    """Log importance weights ``log p(x_O, z_k) - log q(z_k|x_G)``, shape (k, batch).

    ``given`` (G) are the modalities the proposal is inferred from and ``observed`` (O) those
    whose likelihood enters the joint (both default to every modality); the other modalities are
    marginalised out of ``model.generative``, so ``given = observed = S`` estimates ``log p(x_S)``.
    ``on_chunk(rows)`` is called after each chunk with its number of rows (samples x examples).
    ``proposal`` replaces the model's inference (e.g. a refined or per-example optimised
    Gaussian); its conditioning variables are read from ``batch``.
    """
    reason = getattr(model, "likelihood_not_applicable", None)
    if reason and proposal is None:
        raise ValueError(f"no likelihood bound for {type(model).__name__}: {reason}")
    given = variable_names(model.modalities if given is None else given)
    if observed is not None:
        observed = variable_names(observed)
        if not observed:
            raise ValueError(
                "observed=[] names no modality: there is no likelihood of nothing to bound. Name the "
                f"modalities whose likelihood to bound (e.g. observed={list(model.modalities)[:1]}), or "
                "leave observed out for all of them"
            )
    model.distributions.eval()
    if proposal is not None:
        q, given = proposal, list(proposal.cond_var)
    else:  # all modalities: the full inference model (every latent of a hierarchical model)
        q = model.inference if set(given) == set(model.modalities) else model.inference_for(given)
    joint = model.generative
    factors = [f.dist for f in joint.graph.factors(sorted=True)]
    if observed is not None:
        unknown = [m for m in observed if m not in model.modalities]
        if unknown:
            raise KeyError(f"unknown modality {unknown}; this model has {sorted(model.modalities)}")
        hidden = [m for m in model.modalities_in_generative() if m not in observed]
        if hidden:
            factors = _marginal_factors(joint, hidden)
    q_factors = _proposal_factors(q)
    proposed = {d.var[0] for d in q_factors}
    # latents the proposal does not give: drawn from their factors of the joint, which then cancel
    completed = [d for d in factors if d.var[0] not in model.modalities and d.var[0] not in proposed]
    scored = [d for d in factors if d not in completed]
    needed = {v for d in factors for v in (*d.var, *d.cond_var)} | {v for d in q_factors for v in d.cond_var}
    values_in = {
        name: batch[name] for name in [*model.modalities, *given] if name in needed and name in batch
    }
    missing = sorted((needed & set(model.modalities)) - set(values_in))
    if missing:
        raise KeyError(f"the batch lacks {missing}, which the log-weights need; it has {sorted(batch)}")
    values_in = model._to_device(values_in)  # a conditional model's condition too
    n = len(next(iter(values_in.values())))
    given_values = {g: values_in[g] for g in given}
    samplers = [_Factor(d, given_values, n) for d in q_factors]
    chunk = max(1, min(k, max_rows // max(n, 1)))
    repeated = {name: _repeat(v, chunk) for name, v in values_in.items()}  # once: every chunk reads it
    out = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        values = {name: v[: c * n] for name, v in repeated.items()}  # sample-major: c copies
        log_q = torch.zeros(c * n, device=model.device)
        for sampler in samplers:
            z, log_q_z = sampler.sample(values, c)
            values[sampler.var] = z
            log_q = log_q + log_q_z
        for d in completed:
            values.update(d.sample({v: values[v] for v in d.cond_var}, return_all=False))
        log_p = sum(d.get_log_prob(values) for d in scored)
        out.append((log_p - log_q).view(c, n))
        if on_chunk is not None:
            on_chunk(c * n)
    return torch.cat(out, dim=0)


def _marginal_factors(joint: Distribution, hidden: Sequence[str]) -> list[Distribution]:
    """The factors of ``joint`` left when the leaf variables ``hidden`` are integrated out."""
    factors = [f.dist for f in joint.graph.factors(sorted=True)]
    kept = [d for d in factors if not set(d.var) & set(hidden)]
    for d in kept:
        parents = sorted(set(d.cond_var) & set(hidden))
        if parents:
            raise ValueError(
                f"cannot marginalise {parents} out of {joint.prob_text}: {d.prob_text} depends on them; "
                "observe them too"
            )
    return kept


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``logsumexp_k log w_k - log K`` per example from log-weights of shape (K, batch)."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def elbo_estimate(log_w: torch.Tensor) -> torch.Tensor:
    """Monte Carlo ELBO per example: the mean of the log-weights over samples."""
    return log_w.mean(dim=0)


def evaluation_batches(
    data: MultimodalDataset, batch_size: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    """The test batches of every evaluation: in order, the binarisation and the sampling seeded with
    ``seed``, so that repeated evaluations (and different measures) see the same test set."""
    check_dataset(data)
    torch.manual_seed(seed)
    return data.batches(batch_size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def evaluate_log_likelihood(
    model: ZooModel,
    data: MultimodalDataset,
    k: int = 1000,
    batch_size: int = 100,
    seed: int = 0,
    max_rows: int = 20000,
    progress: bool = False,
    given: Sequence[str] | None = None,
    observed: Sequence[str] | None = None,
) -> dict[str, float]:
    """Average test ELBO and IWAE_k bound (nats per example) over ``data``.

    Both come from the same ``k`` samples per example; the data's binarisation is drawn with
    ``seed`` so repeated evaluations see the same test set. ``given`` and ``observed`` are passed
    to :func:`log_weights` (``given = observed = S``: the bounds on ``log p(x_S)``). ``progress``
    shows a bar over the ``len(data) * k`` importance samples, moving after every chunk.
    """
    from pixyz_zoo.progress import tqdm

    k = check_count(k, "the number of importance samples k")
    observed = variable_names(observed) if observed is not None else None
    batches = evaluation_batches(data, batch_size, seed)
    elbo_sum = iwae_sum = 0.0
    count = 0
    desc = f"IWAE-{k}" + (f" of {','.join(observed)}" if observed is not None else "")
    with tqdm(
        total=len(data) * k, disable=not progress, desc=desc, unit="sample", unit_scale=True, leave=False
    ) as bar:
        for batch in batches:
            log_w = log_weights(
                model, batch, k, given=given, max_rows=max_rows, observed=observed, on_chunk=bar.update
            )
            elbo_sum += float(elbo_estimate(log_w).sum())
            iwae_sum += float(iwae_bound(log_w).sum())
            count += log_w.shape[1]
    return {"elbo": elbo_sum / count, f"iwae_{k}": iwae_sum / count, "examples": count}
