"""Which distribution of a model disagrees on a variable's shape.

A model assembled by hand fails at its first step with PyTorch's broadcasting error when one of its
distributions gives a variable another shape than the rest of the model does (a decoder whose network
outputs a flat vector for an image, a prior of another size than the encoder's latent): "The size of
tensor a (64) must match the size of tensor b (8) at non-singleton dimension 3". Here each variable's
per-example shape is drawn from every distribution that gives it and compared with the modalities'.
"""

from __future__ import annotations

from typing import Any

import torch
from pixyz.distributions import Distribution

from pixyz_zoo.modalities import Modality


def factors(distribution: Distribution) -> list[Distribution]:
    """The atomic distributions of ``distribution``, roots first (itself when it has no graph)."""
    graph = getattr(distribution, "graph", None)
    return [f.dist for f in graph.factors(sorted=True)] if hasattr(graph, "factors") else [distribution]


@torch.no_grad()
def shape_mismatch(
    modalities: dict[str, Modality],
    generative: Distribution,
    inference: Distribution,
    batch: dict[str, Any],
) -> str | None:
    """Why the model's distributions cannot be evaluated together on ``batch`` (a shape one of them
    gives a variable that the modality or another distribution gives otherwise), or None when they
    agree, or when the shapes cannot be drawn (the cause is then elsewhere)."""
    given = {name: batch[name] for name in modalities if name in batch}
    if len(given) != len(modalities):
        return None
    n = len(next(iter(given.values())))
    shapes = {name: (tuple(m.shape), f"the modality {name}") for name, m in modalities.items()}
    values: dict[str, torch.Tensor] = dict(given)
    try:
        drawn = inference.sample(given, return_all=False)
        for var, value in drawn.items():
            shapes[var] = (tuple(value.shape[1:]), inference.prob_text)
        values |= drawn
        for factor in factors(generative):  # the priors first
            if not all(var in values for var in factor.cond_var):
                continue
            inputs = {var: values[var] for var in factor.cond_var}
            sample = factor.sample(inputs, return_all=False) if inputs else factor.sample(batch_n=n)
            for var, value in sample.items():
                got = tuple(value.shape[1:])
                want, source = shapes.setdefault(var, (got, factor.prob_text))
                if got != want:
                    return _message(factor, var, got, want, source, modalities.get(var))
                values.setdefault(var, value)
    except Exception:  # a diagnosis that fails itself: the original error is reported
        return None
    return None


def _message(
    factor: Distribution, var: str, got: tuple, want: tuple, source: str, modality: Modality | None
) -> str:
    problem = f"{factor.prob_text} gives {var} of shape {got} per example, but {source} gives {want}"
    if modality is not None:
        return (
            f"{problem}: its network must output the modality's shape; end it with "
            f"torch.nn.Unflatten(1, {want}), or build it with decoder_network(modality, ...)"
        )
    return f"{problem}: give {var} one size in every distribution of the model"


__all__ = ["factors", "shape_mismatch"]
