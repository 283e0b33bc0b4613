"""Figures of multimodal iterative amortized inference with distilled students (Oshima, Suzuki &
Matsuo, slides 21-27 and 53-58): the "accuracy of inference" ladder drawn from measured bounds,
generations of several models (or several T) under the ground truth, and metrics against T."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from pixyz_zoo.plots.multimodal import _models_and_views, _row, _rows_figure

__all__ = ["generations_by_model", "inference_accuracy_figure", "metrics_by_steps_figure"]


def generations_by_model(
    models: Mapping[str, Any],
    batch: dict[str, torch.Tensor],
    given: Sequence[str],
    target: str,
    n: int = 8,
    sample_latent: bool = True,
    title: str | None = None,
) -> Figure:
    """The inputs ``given``, the ground-truth ``target`` of the same examples, then one row of
    ``target`` generated from ``given`` per model (slides 53-58: one row per T).

    ``models``: row label -> a multimodal zoo model (they share the modalities); column ``j`` is
    example ``j`` of ``batch``. Each row is drawn as :func:`~pixyz_zoo.plots.cross_modal_grid`
    draws its rows (images as tiles, text as strings).
    """
    given, modalities, n = _models_and_views(models, batch, given, target, n, "generations_by_model")
    given = [m for m in modalities if m in given]
    inputs = {m: batch[m][:n] for m in given}
    rows = [(m, *_row(inputs[m], modalities[m], n)) for m in given]
    rows.append((f"{target} (ground truth)", *_row(batch[target][:n], modalities[target], n)))
    for label, model in models.items():
        generated = model.generate(inputs, given=given, targets=[target], sample_latent=sample_latent)
        rows.append((label, *_row(generated[target], modalities[target], n)))
    return _rows_figure(rows, n, title or f"{','.join(given)} -> {target}")


def metrics_by_steps_figure(
    steps: Sequence[int],
    metrics: Mapping[str, Sequence[float]],
    lower_is_better: Iterable[str] = (),
    ncols: int = 3,
    title: str | None = None,
) -> Figure:
    """One panel per metric, its value against the number of refinement steps ``T`` (symmetric-log
    axis, so ``T = 0`` has a place); a NaN value leaves a hole. Panel titles say which way is better."""
    if not metrics:
        raise ValueError("metrics_by_steps_figure needs at least one metric")
    bad = {name: len(values) for name, values in metrics.items() if len(values) != len(steps)}
    if bad:
        raise ValueError(f"every metric needs one value per T ({len(steps)} steps); got {bad}")
    lower = set(lower_is_better)
    ncols = max(1, min(ncols, len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.8 * nrows + 0.4 * bool(title)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    x = np.asarray(steps, dtype=float)
    for ax, (name, values) in zip(axes.flat, metrics.items(), strict=False):
        y = np.asarray([math.nan if v is None else float(v) for v in values])
        ax.plot(x, y, marker="o")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xticks(x, [str(int(t)) for t in steps])
        ax.set_xlabel("T (refinement steps in training)")
        ax.set_title(f"{name} ({'lower' if name in lower else 'higher'} is better)", fontsize="medium")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def inference_accuracy_figure(
    panels: Mapping[str, Mapping[str, Any]],
    title: str | None = None,
) -> Figure:
    """The slides' "accuracy of inference" picture (slides 21-27), drawn from measured bounds.

    One panel per model. ``panels[name]``: ``{"optimal": L[q*], "points": {label: (column, elbo)},
    "arrows": [(from_label, to_label, kind)]}``: the bound ``L(X)`` of every modality under each
    posterior (higher is a more accurate inference), placed in its column (e.g. ``"joint"``,
    ``"from m"``), ``q*``'s bound as a dashed line on top, and arrows between points, one colour
    and legend entry per ``kind`` (e.g. ``"refinement"``, ``"distillation"``). A point whose bound
    is NaN is left out, with its arrows.
    """
    if not panels:
        raise ValueError("inference_accuracy_figure needs at least one panel")
    kinds = list(dict.fromkeys(kind for panel in panels.values() for *_, kind in panel.get("arrows", ())))
    colours = {kind: f"C{i + 1}" for i, kind in enumerate(kinds)}
    fig = Figure(figsize=(6.5 * len(panels), 5.4 + 0.4 * bool(title)), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, panel) in zip(axes, panels.items(), strict=True):
        points = {
            label: (column, float(value))
            for label, (column, value) in panel["points"].items()
            if value is not None and not math.isnan(float(value))
        }
        columns = list(dict.fromkeys(column for column, _ in points.values()))
        where: dict[str, tuple[float, float]] = {}
        for index, column in enumerate(columns):
            labels = [label for label, (c, _) in points.items() if c == column]
            offsets = np.linspace(-0.25, 0.25, len(labels)) if len(labels) > 1 else [0.0]
            for offset, label in zip(offsets, labels, strict=True):
                where[label] = (index + float(offset), points[label][1])
        for label, (x, y) in where.items():
            ax.plot(x, y, "o", color="C0", zorder=3)
            ax.annotate(label, (x, y), xytext=(5, -2), textcoords="offset points", fontsize="x-small")
        drawn = []
        for start, end, kind in panel.get("arrows", ()):
            if start in where and end in where:
                drawn.append(kind)
                ax.annotate(
                    "",
                    xy=where[end],
                    xytext=where[start],
                    arrowprops={
                        "arrowstyle": "->",
                        "color": colours[kind],
                        "lw": 1.2,
                        "shrinkA": 4,
                        "shrinkB": 4,
                    },
                )
        for kind in dict.fromkeys(drawn):
            ax.plot([], [], color=colours[kind], label=kind)
        optimal = panel.get("optimal")
        if optimal is not None and not math.isnan(float(optimal)):
            ax.axhline(float(optimal), color="black", linestyle="--", linewidth=1.2, label="q*(z|X)")
        ax.set_xticks(range(len(columns)), columns)
        ax.set_xlim(-0.5, len(columns) - 0.1)
        ax.set_ylabel("ELBO of all modalities L(X) (nats per example)")
        ax.set_title(name, fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    fig.suptitle(title or "Accuracy of inference: the bound L(X) of each posterior (higher is better)")
    return fig
