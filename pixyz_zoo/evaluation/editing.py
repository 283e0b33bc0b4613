"""Attribute editing by bidirectional generation (JMVAE paper, sec. 4.6.4 and Fig. 9).

For an image ``x`` without attributes, Suzuki & Matsuo:

1. generate its attributes ``w`` from ``x`` (the mean of ``p(w|z)``, ``z`` from ``q(z|x)``);
2. generate the mean face ``x_mean`` from ``w`` (``p(x|z_mean)``, ``z_mean`` the mean of
   ``q(z|w)``);
3. change the chosen attributes of ``w`` to get ``w'`` and generate ``x'_mean`` from it;
4. return ``x' = x + x'_mean - x_mean``: the image keeps its own details and moves by the
   difference the attribute change makes to the mean face.

Fig. 8 sets an attribute to 2 (or -2 for "Not ...") rather than 1, to exaggerate it: ``value`` is
any number, and one outside the range the attributes were trained on (``trained_range``, [-1, 1]
for attributes in {-1, 1}) gives a warning that it extrapolates. Attributes are chosen by column
index or by name (``model.modalities[attributes].labels``, e.g. ``"Male"`` on CelebA). Only
``model.generate(batch, given, targets, sample_latent)`` is used, so any two-modality zoo model
with unimodal inference (JMVAE-kl, JMVAE, ...) works.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch


@torch.no_grad()
def edit_attributes(
    model: Any,
    batch: dict[str, torch.Tensor],
    attribute_index: int | str | Sequence[int | str],
    value: float | Sequence[float],
    image: str = "x",
    attributes: str = "w",
    infer_attributes: bool = True,
    sample_latent: bool = False,
    clamp: tuple[float, float] | None = None,
    return_parts: bool = False,
    trained_range: tuple[float, float] | None = (-1.0, 1.0),
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Edited images ``x + x'_mean - x_mean`` (sec. 4.6.4).

    Args:
        model: anything with ``generate(batch, given, targets, sample_latent)``.
        batch: holds ``image`` (and ``attributes`` when ``infer_attributes=False``).
        attribute_index: the attribute(s) to set: columns of ``w``, or names from
            ``model.modalities[attributes].labels`` (e.g. ``"Smiling"``), or a list of either.
        value: their new value(s), e.g. 1 / -1, or 2 / -2 as in Fig. 8.
        infer_attributes: generate ``w`` from ``x`` as the paper does (True), or use the true
            attributes ``batch[attributes]`` (False).
        sample_latent: sample ``z`` instead of taking the mean of ``q`` (the paper uses means).
        clamp: optional ``(low, high)`` to clip the edited image to the data range, e.g. (-1, 1).
        return_parts: also return ``w``, ``w'``, ``x_mean`` and ``x'_mean`` in a dict.
        trained_range: ``(low, high)`` of the attribute values the model was trained on; a value
            outside it gives a warning (the model extrapolates). None: no check.

    Where ``w'`` equals ``w`` the image is returned unchanged, exactly (``x'_mean = x_mean``).
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
    chosen = [attribute_index] if isinstance(attribute_index, (int, str)) else list(attribute_index)
    indices = [_attribute_column(model, attributes, a) if isinstance(a, str) else a for a in chosen]
    values = [value] * len(indices) if isinstance(value, (int, float)) else list(value)
    if len(values) != len(indices):
        raise ValueError(f"{len(indices)} attribute indices but {len(values)} values")
    if trained_range is not None:
        low, high = trained_range
        outside = [(a, v) for a, v in zip(chosen, values, strict=True) if not low <= v <= high]
        if outside:
            listed = ", ".join(f"{a!r} = {v:g}" for a, v in outside)
            warnings.warn(
                f"edited attribute value(s) {listed} lie outside [{low:g}, {high:g}], the range the "
                "attributes were trained on: the edit extrapolates beyond training (as the JMVAE paper's "
                "2 / -2 do on purpose); pass trained_range=None to silence this",
                stacklevel=3,
            )
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
    difference = x_edited_mean - x_mean
    unchanged = (edited == w).all(dim=1)  # x'_mean = x_mean exactly, whatever the arithmetic's rounding
    difference[unchanged] = 0.0
    out = x + difference
    if clamp is not None:
        out = out.clamp(*clamp)
    if return_parts:
        return {"edited": out, "w": w, "w_edited": edited, "x_mean": x_mean, "x_edited_mean": x_edited_mean}
    return out


def _attribute_column(model: Any, attributes: str, name: str) -> int:
    """The column of the attribute called ``name`` in ``model.modalities[attributes].labels``."""
    modality = getattr(model, "modalities", {}).get(attributes)
    labels = tuple(modality.labels) if modality is not None else ()
    if not labels:
        raise KeyError(
            f"attribute {name!r} was given by name, but the model declares no attribute names for "
            f"{attributes!r} (its modality has no labels); give the column index instead"
        )
    if name not in labels:
        raise KeyError(
            f"unknown attribute {name!r}; the model's attributes {attributes!r} are: {', '.join(labels)}"
        )
    return labels.index(name)
