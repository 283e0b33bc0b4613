"""Log-likelihood estimates: the ELBO and the importance-weighted bound (IWAE, Burda et al. 2016).

For K samples z_k ~ q(z|x), with log-weights log w_k = log p(x, z_k) - log q(z_k|x):

    ELBO     = E_q[log w]                       estimated by mean_k log w_k
    IWAE_K   = E[log (1/K) sum_k w_k]  <= log p(x)  estimated by logsumexp_k(log w_k) - log K

IWAE_1 = ELBO and IWAE_K increases with K towards log p(x). Samples are drawn in batches (the
data batch repeated ``chunk`` times), not in a Python loop over samples, and chunked so that at
most ``max_rows`` rows go through the networks at once. Works for any zoo model: the joint is
``model.generative`` and the proposal ``model.inference_for(observed)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.models.base import ZooModel


@torch.no_grad()
def log_weights(
    model: ZooModel,
    batch: dict[str, torch.Tensor],
    k: int,
    given: Sequence[str] | None = None,
    max_rows: int = 20000,
) -> torch.Tensor:
    """Log importance weights ``log p(x, z_k) - log q(z_k|x)``, shape (k, batch)."""
    given = list(model.modalities if given is None else given)
    model.distributions.eval()
    # all modalities: the full inference model (every latent of a hierarchical model)
    q = model.inference if set(given) == set(model.modalities) else model.inference_for(given)
    observed = {n: batch[n] for n in model.modalities}  # a conditional model's condition too
    observed = model._to_device(observed)
    n = len(next(iter(observed.values())))
    chunk = max(1, min(k, max_rows // max(n, 1)))
    out = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        repeated = {name: v.repeat(c, *([1] * (v.dim() - 1))) for name, v in observed.items()}
        samples = q.sample({g: repeated[g] for g in given}, return_all=False)
        values = {**repeated, **samples}
        log_w = model.generative.get_log_prob(values) - q.get_log_prob(values)
        out.append(log_w.view(c, n))
    return torch.cat(out, dim=0)


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
) -> dict[str, float]:
    """Average test ELBO and IWAE_k bound (nats per example) over ``data``.

    Both come from the same ``k`` samples per example; the data's binarisation is drawn with
    ``seed`` so repeated evaluations see the same test set.
    """
    from tqdm.auto import tqdm

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
        log_w = log_weights(model, batch, k, max_rows=max_rows)
        elbo_sum += float(elbo_estimate(log_w).sum())
        iwae_sum += float(iwae_bound(log_w).sum())
        count += log_w.shape[1]
    return {"elbo": elbo_sum / count, f"iwae_{k}": iwae_sum / count, "examples": count}
