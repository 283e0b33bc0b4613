"""Which distribution of a model disagrees on a variable's shape.

A model assembled by hand fails at its first step with PyTorch's broadcasting error when one of its
distributions gives a variable another shape than the rest of the model does (a decoder whose network
outputs a flat vector for an image, a prior of another size than the encoder's latent): "The size of
tensor a (64) must match the size of tensor b (8) at non-singleton dimension 3". Here each variable's
per-example shape is drawn from every distribution that gives it and compared with the modalities';
a distribution whose network fails on what it is given (an encoder's MLP over an image without its
``Flatten``: "mat1 and mat2 shapes cannot be multiplied (800x8 and 64x32)") is named with the shapes
of its inputs.
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
    """Why the model's distributions cannot be evaluated together on ``batch`` (a distribution whose
    network fails on the shapes it is given, or a shape one of them gives a variable that the
    modality or another distribution gives otherwise), or None when they agree, or when the shapes
    cannot be drawn (the cause is then elsewhere)."""
    given = {name: batch[name] for name in modalities if name in batch}
    if len(given) != len(modalities):
        return None
    n = len(next(iter(given.values())))
    shapes = {name: (tuple(m.shape), f"the modality {name}") for name, m in modalities.items()}
    values: dict[str, torch.Tensor] = dict(given)
    try:
        for factor in factors(inference) + factors(generative):  # the priors first in each
            if not all(var in values for var in factor.cond_var):
                continue
            inputs = {var: values[var] for var in factor.cond_var}
            try:
                sample = factor.sample(inputs, return_all=False) if inputs else factor.sample(batch_n=n)
            except RuntimeError as error:
                if not _about_shapes(error):  # another dtype, device, memory: PyTorch's own words
                    return None
                return _cannot_evaluate(factor, inputs, shapes, modalities, error)
            for var, value in sample.items():
                got = tuple(value.shape[1:])
                want, source = shapes.setdefault(var, (got, factor.prob_text))
                if got != want:
                    return _message(factor, var, got, want, source, modalities.get(var))
                values.setdefault(var, value)
    except Exception:  # a diagnosis that fails itself: the original error is reported
        return None
    return None


def _about_shapes(error: RuntimeError) -> bool:
    """Whether PyTorch's error is about sizes ("mat1 and mat2 shapes cannot be multiplied", "The size
    of tensor a (64) must match", "weight of size [32, 1, 4, 4], expected input[...] to have 1
    channels"), not about dtypes, devices or memory."""
    text = str(error).lower()
    about_sizes = "shape" in text or "size" in text
    return about_sizes and not any(word in text for word in ("dtype", "device", "out of memory"))


def _cannot_evaluate(
    factor: Distribution,
    inputs: dict[str, torch.Tensor],
    shapes: dict[str, tuple[tuple, str]],
    modalities: dict[str, Modality],
    error: RuntimeError,
) -> str:
    """The message for a distribution whose network fails on the inputs the model gives it (an
    encoder's MLP over an image without its ``Flatten``, a network sized for another input)."""
    described = ", ".join(
        f"{var} of shape {shapes[var][0]} "
        + (f"({source})" if source.startswith("the modality") else f"(drawn from {source})")
        for var in inputs
        for source in [shapes[var][1]]
    )
    cause = str(error).splitlines()[0] if str(error) else type(error).__name__
    hint = "its network must take these shapes per example"
    images = [modalities[var] for var in inputs if var in modalities and len(modalities[var].shape) > 1]
    if images:
        hint += (
            f" (an MLP over the image {images[0].name} takes its {images[0].dim} values after "
            "torch.nn.Flatten(); encoder_network([modality], ...) builds one that fits)"
        )
    return f"{factor.prob_text} cannot be evaluated on {described}: {cause}; {hint}"


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
