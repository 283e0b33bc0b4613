"""The evidence lower bound as a Pixyz expression, shared by the VAE and the multimodal models.

    -L(x_1..x_M) = E_q(z|x)[ -sum_m log p(x_m|z) ] + beta * KL(q(z|x) || p(z))

With one decoder this is the VAE bound (JMVAE paper eq. 1); with one decoder per modality and a
joint encoder it is the JMVAE bound (eq. 5). ``beta`` is a number or a ``Parameter`` symbol.
"""

from __future__ import annotations

from collections.abc import Sequence

from pixyz.distributions.distributions import Distribution
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb
from pixyz.losses.losses import Loss


def negative_elbo(
    q: Distribution, decoders: Sequence[Distribution], prior: Distribution, beta: Loss | float = 1.0
) -> Loss:
    """Per-example negative ELBO (apply ``.mean()`` for a training objective)."""
    if not decoders:
        raise ValueError("the ELBO needs at least one decoder p(x|z)")
    reconstruction = LogProb(decoders[0])
    for decoder in decoders[1:]:
        reconstruction = reconstruction + LogProb(decoder)
    return E(q, -reconstruction) + beta * KullbackLeibler(q, prior)
