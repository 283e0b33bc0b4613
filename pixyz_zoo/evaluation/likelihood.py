"""Log-likelihood estimates: the ELBO and the importance-weighted bound (IWAE, Burda et al. 2016).

For K samples z_k ~ q(z|x), with log-weights log w_k = log p(x, z_k) - log q(z_k|x):

    ELBO     = E_q[log w]                       estimated by mean_k log w_k
    IWAE_K   = E[log (1/K) sum_k w_k]  <= log p(x)  estimated by logsumexp_k(log w_k) - log K

IWAE_1 = ELBO and IWAE_K increases with K towards log p(x). Samples are drawn in batches (the
data batch repeated ``chunk`` times), not in a Python loop over samples, and chunked so that at
most ``max_rows`` rows go through the networks at once. Works for any zoo model: the joint is
``model.generative`` and the proposal ``model.inference_for(given)``.

The likelihood of a subset ``S`` of the modalities (``observed=S``, the other modalities
marginalised out of the joint; Wu & Goodman 2018 and Shi et al. 2019 report such marginal test
likelihoods) uses the log-weights ``log p(z) + sum_{m in S} log p(m|z) - log q(z|x_S)``, with the
proposal ``q(z|x_S)`` the model's inference from that subset (``given=S``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pixyz.distributions.distributions import Distribution

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.models.base import ZooModel


@torch.no_grad()
def log_weights(
    model: ZooModel,
    batch: dict[str, torch.Tensor],
    k: int,
    given: Sequence[str] | None = None,
    max_rows: int = 20000,
    observed: Sequence[str] | None = None,
    proposal: Distribution | None = None,
) -> torch.Tensor:
    """Log importance weights ``log p(x_O, z_k) - log q(z_k|x_G)``, shape (k, batch).

    ``given`` (G) are the modalities the proposal is inferred from and ``observed`` (O) those
    whose likelihood enters the joint (both default to every modality); the other modalities are
    marginalised out of ``model.generative``, so ``given = observed = S`` estimates ``log p(x_S)``.
    ``proposal`` replaces the model's inference (e.g. a refined or per-example optimised
    Gaussian); its conditioning variables are read from ``batch``.
    """
    given = list(model.modalities if given is None else given)
    model.distributions.eval()
    if proposal is not None:
        q, given = proposal, list(proposal.cond_var)
    else:  # all modalities: the full inference model (every latent of a hierarchical model)
        q = model.inference if set(given) == set(model.modalities) else model.inference_for(given)
    joint = model.generative
    factors = None  # None: the whole joint; else the factors left after marginalising
    if observed is not None:
        unknown = [m for m in observed if m not in model.modalities]
        if unknown:
            raise KeyError(f"unknown modality {unknown}; this model has {sorted(model.modalities)}")
        hidden = [m for m in model.modalities_in_generative() if m not in observed]
        if hidden:
            factors = _marginal_factors(joint, hidden)
    kept = [joint] if factors is None else factors
    needed = {v for d in kept for v in (*d.var, *d.cond_var)} | set(given)
    observed_values = {n: batch[n] for n in [*model.modalities, *given] if n in needed or n in batch}
    observed = model._to_device(observed_values)  # a conditional model's condition too
    n = len(next(iter(observed.values())))
    chunk = max(1, min(k, max_rows // max(n, 1)))
    out = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        repeated = {name: v.repeat(c, *([1] * (v.dim() - 1))) for name, v in observed.items()}
        samples = q.sample({g: repeated[g] for g in given}, return_all=False)
        values = {**repeated, **samples}
        log_p = sum(d.get_log_prob(values) for d in kept)
        log_w = log_p - q.get_log_prob(values)
        out.append(log_w.view(c, n))
    return torch.cat(out, dim=0)


def _marginal_factors(joint: Distribution, hidden: Sequence[str]) -> list[Distribution]:
    """The factors of ``joint`` left when the leaf variables ``hidden`` are integrated out."""
    factors = [f.dist for f in joint.graph.factors()]
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
    to :func:`log_weights` (``given = observed = S``: the bounds on ``log p(x_S)``).
    """
    from pixyz_zoo.progress import tqdm

    if k < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {k}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    elbo_sum = iwae_sum = 0.0
    count = 0
    batches = data.batches(batch_size, generator=generator)
    for batch in tqdm(
        batches, total=data.num_batches(batch_size), disable=not progress, desc="log-likelihood"
    ):
        log_w = log_weights(model, batch, k, given=given, max_rows=max_rows, observed=observed)
        elbo_sum += float(elbo_estimate(log_w).sum())
        iwae_sum += float(iwae_bound(log_w).sum())
        count += log_w.shape[1]
    return {"elbo": elbo_sum / count, f"iwae_{k}": iwae_sum / count, "examples": count}
