"""Attribute editing by bidirectional generation (JMVAE paper, sec. 4.6.4 and Fig. 9).

For an image ``x`` without attributes, Suzuki & Matsuo:

1. generate its attributes ``w`` from ``x`` (the mean of ``p(w|z)``, ``z`` from ``q(z|x)``);
2. generate the mean face ``x_mean`` from ``w`` (``p(x|z_mean)``, ``z_mean`` the mean of
   ``q(z|w)``);
3. change the chosen attributes of ``w`` to get ``w'`` and generate ``x'_mean`` from it;
4. return ``x' = x + x'_mean - x_mean``: the image keeps its own details and moves by the
   difference the attribute change makes to the mean face.

Fig. 8 sets an attribute to 2 (or -2 for "Not ...") rather than 1, to exaggerate it: ``value`` is
any number. Only ``model.generate(batch, given, targets, sample_latent)`` is used, so any
two-modality zoo model with unimodal inference (JMVAE-kl, JMVAE, ...) works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


@torch.no_grad()
def edit_attributes(
    model: Any,
    batch: dict[str, torch.Tensor],
    attribute_index: int | Sequence[int],
    value: float | Sequence[float],
    image: str = "x",
    attributes: str = "w",
    infer_attributes: bool = True,
    sample_latent: bool = False,
    clamp: tuple[float, float] | None = None,
    return_parts: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Edited images ``x + x'_mean - x_mean`` (sec. 4.6.4).

    Args:
        model: anything with ``generate(batch, given, targets, sample_latent)``.
        batch: holds ``image`` (and ``attributes`` when ``infer_attributes=False``).
        attribute_index: the attribute(s) (columns of ``w``) to set.
        value: their new value(s), e.g. 1 / -1, or 2 / -2 as in Fig. 8.
        infer_attributes: generate ``w`` from ``x`` as the paper does (True), or use the true
            attributes ``batch[attributes]`` (False).
        sample_latent: sample ``z`` instead of taking the mean of ``q`` (the paper uses means).
        clamp: optional ``(low, high)`` to clip the edited image to the data range, e.g. (-1, 1).
        return_parts: also return ``w``, ``w'``, ``x_mean`` and ``x'_mean`` in a dict.
    """
    x = batch[image]
    if infer_attributes:
        w = model.generate({image: x}, given=[image], targets=[attributes], sample_latent=sample_latent)[
            attributes
        ]
    else:
        if attributes not in batch:
            raise KeyError(
                f"infer_attributes=False needs the attributes {attributes!r} in the batch: {sorted(batch)}"
            )
        w = batch[attributes]
    w = w.to(x.device).float()
    indices = [attribute_index] if isinstance(attribute_index, int) else list(attribute_index)
    values = [value] * len(indices) if isinstance(value, (int, float)) else list(value)
    if len(values) != len(indices):
        raise ValueError(f"{len(indices)} attribute indices but {len(values)} values")
    for i in indices:
        if not -w.shape[1] <= i < w.shape[1]:
            raise IndexError(f"attribute index {i} is out of range for {w.shape[1]} attributes")
    edited = w.clone()
    for i, v in zip(indices, values, strict=True):
        edited[:, i] = v
    both = torch.cat([w, edited])
    means = model.generate(
        {attributes: both}, given=[attributes], targets=[image], sample_latent=sample_latent
    )
    x_mean, x_edited_mean = means[image].to(x.device).chunk(2)
    out = x + x_edited_mean - x_mean
    if clamp is not None:
        out = out.clamp(*clamp)
    if return_parts:
        return {"edited": out, "w": w, "w_edited": edited, "x_mean": x_mean, "x_edited_mean": x_edited_mean}
    return out
