"""The evidence lower bound as a Pixyz expression, shared by the VAE and the multimodal models.

    -L(x_1..x_M) = E_q(z|x)[ -sum_m log p(x_m|z) ] + beta * KL(q(z|x) || p(z))

With one decoder this is the VAE bound (JMVAE paper eq. 1); with one decoder per modality and a
joint encoder it is the JMVAE bound (eq. 5). ``beta`` is a number or a ``Parameter`` symbol.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import reduce

from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb
from pixyz.losses.losses import Loss


def sum_losses(terms: Sequence[Loss]) -> Loss:
    """``terms[0] + terms[1] + ...`` as one Pixyz expression (printed in that order)."""
    if not terms:
        raise ValueError("nothing to sum: give at least one loss term")
    return reduce(operator.add, terms)


def negative_elbo(
    q: Distribution, decoders: Sequence[Distribution], prior: Distribution, beta: Loss | float = 1.0
) -> Loss:
    """Per-example negative ELBO (apply ``.mean()`` for a training objective); ``decoders``: one
    decoder ``p(x|z)`` or a list of them."""
    if isinstance(decoders, Distribution):
        decoders = [decoders]
    if not decoders:
        raise ValueError("the ELBO needs at least one decoder p(x|z)")
    reconstruction = sum_losses([LogProb(decoder) for decoder in decoders])
    return E(q, -reconstruction) + beta * KullbackLeibler(q, prior)
