"""Summary figures of the experiments' reports: what a reader takes in at a glance before the tables.

- :func:`coherence_heatmap`: coherence of each target modality generated from each given subset
  (Shi et al. 2019; Sutter et al. 2021, Table 2 in picture form), one panel per model;
- :func:`metric_bars`: the headline metrics of several models, one panel per metric, one bar per
  model, the value written on each bar (optionally a reference value, e.g. the paper's, as a mark).

Both take the plain dictionaries the experiments write to ``results.json``, so a report's figures
can be drawn again from a recorded run without its models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from pixyz_zoo.checks import check_count

__all__ = ["coherence_heatmap", "coherence_matrix", "metric_bars"]

_PREFIX = "coherence["


def _parse_coherence_key(key: str) -> tuple[str, str] | None:
    """``"coherence[m,s->t]"`` -> ``("m,s", "t")``; None for other keys (``coherence[mean]``)."""
    if not (key.startswith(_PREFIX) and key.endswith("]") and "->" in key):
        return None
    given, target = key[len(_PREFIX) : -1].split("->", 1)
    return (given, target) if given and target else None


def coherence_matrix(
    metrics: Mapping[str, float],
    modalities: Sequence[str] | None = None,
    subsets: Sequence[Sequence[str]] | None = None,
) -> tuple[list[str], list[str], np.ndarray]:
    """``(subsets, targets, values)``: ``values[i, j]`` is ``metrics["coherence[S_i->t_j]"]`` (NaN
    where it was not measured).

    ``metrics`` holds keys as :func:`pixyz_zoo.evaluation.multimodal.evaluate_multimodal` writes
    them. ``modalities`` (the targets, in order) and ``subsets`` (the given subsets, as lists of
    names) default to those found in the keys: modalities in order of first appearance, subsets by
    size and then in that order.
    """
    pairs = [p for p in (_parse_coherence_key(k) for k in metrics) if p is not None]
    if not pairs and subsets is None:
        raise ValueError(
            "no coherence[S->t] values in the metrics; pass the dict that evaluate_multimodal returns "
            f"(got keys {sorted(metrics)[:6]}...)"
        )
    if modalities is None:
        found: list[str] = []
        for given, target in pairs:
            for name in [*given.split(","), target]:
                if name not in found:
                    found.append(name)
        modalities = found
    targets = list(modalities)
    if subsets is None:
        keys = {given for given, _ in pairs}
        rank = {name: i for i, name in enumerate(targets)}
        ordered = sorted(keys, key=lambda s: (s.count(","), [rank.get(n, len(rank)) for n in s.split(",")]))
        rows = ordered
    else:
        if any(isinstance(s, str) for s in subsets):
            raise TypeError("subsets must be lists of modality names, e.g. [['m'], ['m', 's']]")
        rows = [",".join(s) for s in subsets]
    values = np.full((len(rows), len(targets)), np.nan)
    for i, given in enumerate(rows):
        for j, target in enumerate(targets):
            value = metrics.get(f"coherence[{given}->{target}]")
            if value is not None:
                values[i, j] = float(value)
    return rows, targets, values


def _check_metrics_by_model(rows: Any, what: str) -> None:
    """``rows`` maps model labels to their metrics; one model's metrics alone (a dict of numbers,
    as ``evaluate_multimodal`` returns them) are refused, naming the dict to wrap them in."""
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError(f"{what} needs the metrics of at least one model, {{'label': metrics}}")
    flat = [label for label, metrics in rows.items() if not isinstance(metrics, Mapping)]
    if flat:
        raise TypeError(
            f"{what} takes one dict of metrics per model, {{'MoPoE': metrics, ...}}; got numbers under "
            f"{flat[:3]} (one model's metrics?): wrap them, {{'model': metrics}}"
        )


def coherence_heatmap(
    results: Mapping[str, Mapping[str, float]],
    modalities: Sequence[str] | None = None,
    title: str | None = None,
    chance: float | None = None,
    digits: int = 2,
) -> Figure:
    """Heat maps of coherence, given subset (rows) x generated target (columns), one panel per model.

    ``results`` maps a model's name to its metrics (``{"coherence[m,s->t]": 0.93, ...}``). Every
    panel shares the colour scale [0, 1]; each cell shows its value with ``digits`` decimals; a
    cell whose target is among the given modalities (a reconstruction, not a cross-modal
    generation) is outlined in red; unmeasured cells are left blank. ``chance`` (e.g. 0.1 for ten classes)
    is noted under the colour bar.
    """
    _check_metrics_by_model(results, "coherence_heatmap")
    matrices = {name: coherence_matrix(metrics, modalities) for name, metrics in results.items()}
    rows, targets, _ = next(iter(matrices.values()))
    if modalities is None:  # every panel on the rows / columns of the first model
        matrices = {
            name: coherence_matrix(metrics, targets, [r.split(",") for r in rows])
            for name, metrics in results.items()
        }
    n = len(matrices)
    ncols = min(n, 5)
    nrows = math.ceil(n / ncols)
    cell = 0.55
    width = ncols * (0.9 + cell * len(targets)) + 1.6
    height = nrows * (0.7 + 0.36 * len(rows)) + 0.5 * bool(title) + 0.3
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for index, (ax, (name, (_, _, values))) in enumerate(zip(axes.flat, matrices.items(), strict=False)):
        image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        for i, given in enumerate(rows):
            for j, target in enumerate(targets):
                value = values[i, j]
                if math.isnan(value):
                    continue
                ax.text(
                    j,
                    i,
                    f"{value:.{digits}f}",
                    ha="center",
                    va="center",
                    fontsize="x-small",
                    color="black" if value > 0.6 else "white",
                )
                if target in given.split(","):
                    ax.add_patch(
                        Rectangle((j - 0.44, i - 0.44), 0.88, 0.88, fill=False, edgecolor="red", lw=1.5)
                    )
        ax.set_xticks(range(len(targets)), targets)
        ax.set_yticks(range(len(rows)), [f"{{{r}}}" for r in rows] if index % ncols == 0 else [])
        ax.tick_params(length=0)
        ax.set_xlabel("generated")
        if index % ncols == 0:
            ax.set_ylabel("given")
        ax.set_title(name, fontsize="medium")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    label = "coherence (red outline: target given)"
    if chance is not None:
        label += f"; chance {chance:g}"
    fig.colorbar(image, ax=axes, shrink=0.9, label=label)
    if title:
        fig.suptitle(title)
    return fig


def _finite(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def metric_bars(
    rows: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    lower_is_better: Iterable[str] = (),
    higher_is_better: Iterable[str] | None = None,
    log_scale: Iterable[str] = (),
    reference: Mapping[str, Mapping[str, float]] | None = None,
    reference_label: str = "paper",
    ncols: int = 4,
    digits: int = 3,
    title: str | None = None,
) -> Figure:
    """Horizontal bars of ``rows[model][metric]``: one panel per metric, one bar per model.

    ``metrics`` picks and orders the panels (default: the keys of the first row), ``labels`` names
    them; each panel title says whether lower (``lower_is_better``) or higher is better (the
    ``higher_is_better`` metrics; default: every other one, pass a list to leave the rest without
    a direction), panels in ``log_scale`` have a logarithmic axis. Each bar carries its value
    (``digits`` decimals, integers as integers); a missing or NaN value is written "n/a" with no
    bar. ``reference[model][metric]`` (e.g. the
    paper's number) is drawn as a black mark on that model's bar.
    """
    _check_metrics_by_model(rows, "metric_bars")
    models = list(rows)
    metrics = list(metrics) if metrics is not None else list(next(iter(rows.values())))
    if not metrics:
        raise ValueError("metric_bars needs at least one metric")
    unknown = [m for m in metrics if not any(m in r for r in rows.values())]
    if unknown:
        raise KeyError(f"no model has the metric(s) {unknown}; they have {sorted(next(iter(rows.values())))}")
    ncols = check_count(ncols, "ncols")
    labels = dict(labels or {})
    lower = set(lower_is_better)
    higher = None if higher_is_better is None else set(higher_is_better)
    logs = set(log_scale)
    ncols = min(ncols, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    longest = max(len(m) for m in models)
    fig = Figure(
        figsize=(0.9 + 0.065 * longest + 2.7 * ncols, nrows * (0.55 + 0.3 * len(models)) + 0.4 * bool(title)),
        layout="constrained",
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    colours = [f"C{i % 10}" for i in range(len(models))]
    positions = np.arange(len(models))
    for index, metric in enumerate(metrics):
        ax = axes.flat[index]
        log = metric in logs
        raw = [rows[m].get(metric) for m in models]
        values = np.array([_finite(v) for v in raw])
        drawn = ~np.isnan(values) & ((values > 0) if log else True)
        bars = ax.barh(positions, np.where(drawn, values, 1.0 if log else 0.0), color=colours, height=0.7)
        for bar, visible in zip(bars, drawn, strict=True):
            bar.set_visible(bool(visible))
        marks = [
            (y, _finite((reference or {}).get(m, {}).get(metric)))
            for y, m in zip(positions, models, strict=True)
        ]
        marks = [(y, v) for y, v in marks if not math.isnan(v) and (v > 0 or not log)]
        finite = np.concatenate([values[drawn], [v for _, v in marks]])
        if log:
            ax.set_xscale("log")
            low, high = (float(finite.min()) / 2, float(finite.max()) * 4) if finite.size else (0.1, 10.0)
        else:
            low = min(0.0, float(finite.min())) if finite.size else 0.0
            high = max(0.0, float(finite.max())) if finite.size else 1.0
            span = (high - low) or 1.0
            low, high = low - 0.35 * span * (low < 0), high + 0.35 * span * (high > 0 or low == 0)
            ax.axvline(0.0, color="grey", lw=0.6)
        ax.set_xlim(low, high)
        for y, value, visible, given in zip(positions, values, drawn, raw, strict=True):
            text = (
                "n/a"
                if math.isnan(value)
                else str(given)
                if isinstance(given, int)
                else f"{value:.{digits}f}"
            )
            x = value if visible else (low if log else 0.0)
            ax.text(
                x,
                y,
                f" {text} ",
                ha="right" if x < 0 else "left",
                va="center",
                fontsize="x-small",
                bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5},
            )
        if marks:
            ax.scatter(
                [v for _, v in marks],
                [y for y, _ in marks],
                marker="|",
                s=160,
                color="black",
                zorder=4,
            )
        if metric in lower:
            notes = ["lower is better"]
        elif higher is None or metric in higher:
            notes = ["higher is better"]
        else:
            notes = []
        notes += ["log scale"] if log else []
        note = f"\n({', '.join(notes)})" if notes else ""
        ax.set_title(f"{labels.get(metric, metric)}{note}", fontsize="small")
        ax.tick_params(axis="x", labelsize="x-small")
    axes[0, 0].set_yticks(positions, models)
    axes[0, 0].invert_yaxis()
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    if any(ax.collections for ax in axes.flat):
        fig.legend(
            handles=[Line2D([], [], color="black", marker="|", ls="", markersize=12)],
            labels=[f"{reference_label} (black mark)"],
            loc="outside lower center",
            fontsize="small",
            frameon=False,
        )
    if title:
        fig.suptitle(title)
    return fig
