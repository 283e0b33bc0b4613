"""Per-dimension statistics of a model's latent code.

The KL term of the ELBO of a model with a factorised Gaussian posterior and the prior
``N(0, I)`` splits into one term per latent dimension (Kingma & Welling 2014, appendix B):

    KL(q(z|x) || N(0, I)) = sum_d KL(q(z_d|x) || N(0, 1)),
    KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1) / 2 - log s.

Averaged over a dataset, a dimension's KL is the information (in nats) it carries about ``x``
at most; dimensions whose KL stays near 0 are unused ("collapsed"). Higgins et al. (2017,
beta-VAE, figs. 2 and 7) and Burgess et al. (2018, fig. 2) sort latent traversals by this
quantity, as :func:`pixyz_zoo.plots.latent_traversal` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from pixyz_zoo.checks import check_count
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions.experts import only_expert


def gaussian_kl_per_dimension(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``KL(N(loc, scale^2) || N(0, 1))`` elementwise: ``(loc^2 + scale^2 - 1) / 2 - log scale``."""
    return 0.5 * (loc.pow(2) + scale.pow(2) - 1.0) - torch.log(scale)


def _batches(data: Any, variable: str, batch_size: int) -> Iterator[torch.Tensor]:
    """Tensors of ``variable`` from a dataset, a batch dict, a tensor or an iterable of dicts."""
    if isinstance(data, MultimodalDataset):
        if variable not in data.modalities:
            raise KeyError(
                f"dataset {data.name!r} has no variable {variable!r}; it has {sorted(data.modalities)}"
            )
        for batch in data.batches(batch_size):
            yield batch[variable]
        return
    if isinstance(data, dict):
        if variable not in data:
            raise KeyError(f"the batch has no variable {variable!r}; it has {sorted(data)}")
        data = data[variable]
    if torch.is_tensor(data):
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]
        return
    if isinstance(data, Iterable):
        for batch in data:
            yield from _batches(batch, variable, batch_size)
        return
    raise TypeError(
        f"kl_per_dimension takes a dataset, a batch dict, a tensor or an iterable of batch dicts, "
        f"got {type(data).__name__}"
    )


def inferred_from(model: Any, variable: str | None, latent: str = "z") -> str:
    """``variable``, or when it is None the one modality the model infers ``latent`` from; a model
    that infers from several (a multimodal one) needs it named."""
    if variable is not None:
        return variable
    observed = list(model.inference.cond_var)
    if len(observed) != 1:
        raise ValueError(
            f"{type(model).__name__} infers from {observed}: name the one modality to infer {latent!r} "
            "from, variable= one of them"
        )
    return observed[0]


@torch.no_grad()
def kl_per_dimension(
    model: Any, data: Any, batch_size: int = 256, variable: str | None = None, latent: str = "z"
) -> np.ndarray:
    """Average ``KL(q(z_d|x) || N(0, 1))`` per latent dimension over ``data`` (nats), ``(z_dim,)``.

    ``q`` is ``model.inference_for([variable])``, which must be a diagonal Gaussian over
    ``latent`` (its parameters ``loc`` and ``scale``); multimodal models infer from ``variable``
    alone. ``variable`` defaults to the one modality the model infers from (a multimodal model
    needs it named). ``data`` is a dataset, a batch dict ``{variable: tensor}``, a tensor, or an
    iterable of batch dicts. The sum of the result is the average KL term of the ELBO when the
    prior is ``N(0, I)``.
    """
    batch_size = check_count(batch_size, "batch_size")
    variable = inferred_from(model, variable, latent)
    q = only_expert(model.inference_for([variable]))  # MoPoE's q(z|m): its one Gaussian expert
    if list(q.var) != [latent]:
        raise ValueError(
            f"the inference distribution of {type(model).__name__} is over {list(q.var)}; "
            f"kl_per_dimension needs one Gaussian latent {latent!r} (pass latent=...)"
        )
    model.distributions.eval()
    device = model.device
    total: torch.Tensor | None = None
    count = 0
    for x in _batches(data, variable, batch_size):
        params = q.get_params({variable: x.to(device)})
        if "loc" not in params or "scale" not in params:
            raise ValueError(
                f"q({latent}|{variable}) has parameters {sorted(params)}, not a Gaussian's loc and "
                "scale; the per-dimension KL to N(0, 1) is defined here for Gaussian posteriors only"
            )
        kl = gaussian_kl_per_dimension(params["loc"], params["scale"]).flatten(1).sum(0)
        total = kl if total is None else total + kl
        count += len(x)
    if total is None:
        raise ValueError("kl_per_dimension got no data")
    return (total / count).double().cpu().numpy()


__all__ = ["gaussian_kl_per_dimension", "inferred_from", "kl_per_dimension"]
