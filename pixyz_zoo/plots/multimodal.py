"""Cross-modal generation figures for multimodal models (as in Shi et al. 2019, Fig. 3-4, and
Sutter et al. 2021, Fig. 3): the inputs of a subset of modalities, then what the model generates
for each target modality from them.

Images are drawn as images (grey or RGB), text modalities (categorical sequences) as strings
decoded with the modality's ``labels`` (the most likely symbol at each position), single labels
as class names, other vectors as heat maps. Only ``model.modalities`` and ``model.generate`` are
used, so every multimodal zoo model can be drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from pixyz_zoo.checks import check_count
from pixyz_zoo.modalities import Modality, check_batch_is_dict, nonempty_subsets, variable_names
from pixyz_zoo.plots.grids import (
    _as_categorical,
    _as_images,
    _draw_heat_map,
    _draw_strings,
    _draw_tiles,
    decode_text,
    modality_kind,
    tile_images,
)

__all__ = ["cross_modal_grid", "decode_text", "subset_grids"]


def _models_and_views(
    models: Any, batch: Any, given: Sequence[str], target: str, n: int, what: str
) -> tuple[list[str], dict[str, Modality], int]:
    """The checked arguments of a figure with one row per model of ``target`` generated from
    ``given``: ``given`` as a list, the models' modalities and the number of columns (at most
    ``n``, at most the batch's size)."""
    given = variable_names(given)
    if not isinstance(models, Mapping):
        raise TypeError(
            f"{what} draws one row per model: pass a dict of row label -> model, e.g. "
            f"{{'{type(models).__name__}': model}}; got {type(models).__name__}"
        )
    if not models:
        raise ValueError(f"{what} needs at least one model")
    if not given or target in given:
        raise ValueError(f"given must be a non-empty list of modalities without the target {target!r}")
    check_batch_is_dict(batch, [*given, target])
    modalities: dict[str, Modality] = {}
    for model in models.values():
        modalities.update({k: v for k, v in model.modalities.items() if k not in modalities})
    unknown = [m for m in [*given, target] if m not in modalities or m not in batch]
    if unknown:
        raise KeyError(
            f"unknown modality {unknown}: the batch and the models must both have it; the models have "
            f"{sorted(modalities)}, the batch {sorted(batch)}"
        )
    n = min(check_count(n, "n, the number of examples shown,"), *(len(batch[m]) for m in [*given, target]))
    if n < 1:
        raise ValueError(f"{what} got an empty batch")
    return given, modalities, n


def _row(values: torch.Tensor, modality: Modality, n: int) -> tuple[str, Any]:
    """How to draw a row of ``n`` examples: ``("image", tiles)``, ``("text", strings)`` or
    ``("heat", vectors)``."""
    values = values[:n]
    kind = modality_kind(values, modality)
    if kind == "image":
        return "image", tile_images(_as_images(values, modality), nrow=n)
    if kind in ("text", "label"):  # a label row shows class names, as a text row shows strings
        return "text", decode_text(values, modality)
    return "heat", _as_categorical(values.reshape(len(values), -1), None)


def cross_modal_grid(
    model: Any,
    batch: dict[str, torch.Tensor],
    given: Sequence[str],
    targets: Sequence[str] | None = None,
    n: int = 8,
    sample_latent: bool = True,
    title: str | None = None,
) -> Figure:
    """One figure: a row of real inputs per modality in ``given``, then one row per target
    (default: every modality) generated from them; column ``j`` is example ``j`` of ``batch``."""
    given = variable_names(given)
    targets = None if targets is None else variable_names(targets)
    modalities: dict[str, Modality] = dict(model.modalities)
    unknown = [m for m in [*given, *(targets or [])] if m not in modalities]
    if unknown:
        raise KeyError(f"unknown modality {unknown}; the model has {sorted(modalities)}")
    given = [m for m in modalities if m in given]
    targets = list(modalities) if targets is None else list(targets)
    if not given or not targets:
        raise ValueError("cross_modal_grid needs at least one given and one target modality")
    n = min(int(n), *(len(batch[g]) for g in given))
    if n < 1:
        raise ValueError("cross_modal_grid got an empty batch")
    inputs = {g: batch[g][:n] for g in given}
    generated = model.generate(inputs, given=given, targets=targets, sample_latent=sample_latent)
    rows = [(f"{g}", *_row(inputs[g], modalities[g], n)) for g in given]
    rows += [(f"{t} | {','.join(given)}", *_row(generated[t], modalities[t], n)) for t in targets]
    return _rows_figure(rows, n, title or f"generated from {', '.join(given)}", title_room=bool(title))


def _rows_figure(rows: list[tuple[str, str, Any]], n: int, title: str, title_room: bool = True) -> Figure:
    """One figure of labelled rows ``(label, kind, content)`` of :func:`_row`, ``n`` examples each
    (``title_room``: half an inch more height for the title)."""
    heights = [1.0 if kind == "image" else 0.4 if kind == "text" else 0.9 for _, kind, _ in rows]
    longest = max(
        (len(s) for _, kind, strings in rows if kind == "text" for s in strings),
        default=1,
    )
    width = min(max(1.0 * n, 0.1 * longest * n) + 2.0, 18.0)
    fig = Figure(figsize=(width, sum(heights) + 0.25 * len(rows) + 0.5 * title_room), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (label, kind, content) in zip(axes, rows, strict=True):
        if kind == "image":
            _draw_tiles(ax, content, aspect="auto")
        elif kind == "text":
            _draw_strings(ax, content)
        else:
            _draw_heat_map(ax, content, None, examples_as_columns=True)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig


def subset_grids(
    model: Any,
    batch: dict[str, torch.Tensor],
    n: int = 8,
    subsets: Sequence[Sequence[str]] | None = None,
    sample_latent: bool = True,
) -> dict[tuple[str, ...], Figure]:
    """One :func:`cross_modal_grid` per subset (default: every non-empty subset of the model's
    modalities, by size), each generating every modality; keyed by the subset."""
    names = list(model.modalities)
    if subsets is None:
        subsets = nonempty_subsets(names)
    return {
        tuple(subset): cross_modal_grid(model, batch, list(subset), None, n, sample_latent)
        for subset in subsets
    }
