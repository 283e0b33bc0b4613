"""The test objective term by term: which part of a model's loss its value comes from.

A zoo model's objective is a sum of Pixyz expressions (:func:`~pixyz_zoo.losses.terms.additive_terms`):
reconstruction and ``beta`` times a KL for the VAE, the ELBO and ``alpha`` times two KL terms for
JMVAE-kl, reconstruction, MMD and surrogate regressions for MFM. The test loss alone does not say
which one moves; :func:`objective_term_means` gives each term's mean over a test set.
"""

from __future__ import annotations

from typing import Any

import torch

from pixyz_zoo.datasets.base import MultimodalDataset

__all__ = ["objective_term_means"]


def objective_term_means(model: Any, data: MultimodalDataset, batch_size: int = 100) -> list[dict[str, Any]]:
    """Each term of ``model``'s test objective (``model.test_terms``) averaged over the examples of
    ``data``, as ``{"term": formula, "value": mean}`` in the expression's order.

    The terms of one batch are evaluated in order from one random state, so they draw what one
    evaluation of the whole test loss draws and add up to its value (up to float rounding); their
    sum over ``data`` is the test loss of ``data``.
    """
    means = model.test_term_means(data.batches(batch_size, generator=torch.Generator().manual_seed(0)))
    return [{"term": term.text, "value": mean} for term, mean in zip(model.test_terms, means, strict=True)]
