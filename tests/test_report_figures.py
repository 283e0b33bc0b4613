"""The reports' summary figures: the coherence heat map and the bars of headline metrics show
exactly the numbers they are given."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from pixyz_zoo import plots
from pixyz_zoo.plots.reports import coherence_heatmap, coherence_matrix, metric_bars

SUBSETS = ["m", "s", "m,s"]
TARGETS = ["m", "s"]


def _metrics(offset: float) -> dict[str, float]:
    """Distinct coherence values per (subset, target), plus keys the heat map must ignore."""
    values = {
        f"coherence[{given}->{target}]": round(offset + 0.1 * i + 0.01 * j, 3)
        for i, given in enumerate(SUBSETS)
        for j, target in enumerate(TARGETS)
    }
    return {**values, "coherence[mean]": 0.5, "joint_coherence": 0.2, "fd[m->s]": 12.0}


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_title()]


def test_coherence_matrix_reads_every_subset_and_target_in_order():
    metrics = _metrics(0.0)
    del metrics["coherence[s->m]"]
    rows, targets, values = coherence_matrix(dict(reversed(list(metrics.items()))))
    assert rows == ["m", "s", "m,s"] and targets == ["m", "s"]  # by size, then modality order
    assert values[2, 1] == metrics["coherence[m,s->s]"]
    assert math.isnan(values[1, 0])
    rows, targets, values = coherence_matrix(metrics, modalities=["s"], subsets=[["m", "s"]])
    assert (rows, targets, values.tolist()) == (["m,s"], ["s"], [[metrics["coherence[m,s->s]"]]])
    with pytest.raises(ValueError, match="no coherence"):
        coherence_matrix({"fd[m->s]": 1.0})
    with pytest.raises(TypeError, match="lists of modality names"):
        coherence_matrix(metrics, subsets=["m"])


def test_coherence_heatmap_cells_are_the_coherence_numbers():
    results = {"A": _metrics(0.0), "B": _metrics(0.5)}
    del results["B"]["coherence[s->m]"]  # not measured: a blank cell
    fig = coherence_heatmap(results, chance=0.1, title="coherence")
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["A", "B"]
    for ax, (name, metrics) in zip(panels, results.items(), strict=True):
        shown = ax.images[0].get_array()
        assert [t.get_text() for t in ax.get_xticklabels()] == TARGETS
        texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
        for i, given in enumerate(SUBSETS):
            for j, target in enumerate(TARGETS):
                key = f"coherence[{given}->{target}]"
                if key in metrics:
                    assert shown[i, j] == pytest.approx(metrics[key]), (name, key)
                    assert texts[(i, j)] == f"{metrics[key]:.2f}"
                else:
                    assert np.ma.is_masked(shown[i, j]) and (i, j) not in texts
        outlined = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
        # a reconstruction (target among the given) is outlined: m->m, s->s, m,s->m, m,s->s
        assert len(outlined) == 4
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["{m}", "{s}", "{m,s}"]
    assert "chance 0.1" in fig.axes[-1].get_ylabel()  # the colour bar
    assert plots.coherence_heatmap is coherence_heatmap


def test_metric_bars_draw_the_values_and_references():
    rows = {
        "A": {"acc": 0.9, "loss": 120.0, "dims": 7},
        "B": {"acc": 0.4, "loss": 2400.0, "dims": 3},
        "C": {"acc": math.nan, "loss": 300.0},
    }
    fig = metric_bars(
        rows,
        ["acc", "loss", "dims"],
        labels={"acc": "accuracy"},
        lower_is_better=["loss"],
        higher_is_better=["acc"],
        log_scale=["loss"],
        reference={"A": {"acc": 0.95}, "B": {"acc": 0.5}},
        ncols=2,
    )
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == [
        "accuracy\n(higher is better)",
        "loss\n(lower is better, log scale)",
        "dims",
    ]
    for ax, metric in zip(panels, ["acc", "loss", "dims"], strict=True):
        bars = [p for p in ax.patches if p.get_visible()]
        expected = [rows[m].get(metric, math.nan) for m in rows]
        assert [b.get_width() for b in bars] == [v for v in expected if not math.isnan(v)]
        texts = [t.get_text().strip() for t in ax.texts]
        written = ["n/a" if math.isnan(v) else str(v) if metric == "dims" else f"{v:.3f}" for v in expected]
        assert texts == written
    assert panels[1].get_xscale() == "log" and panels[0].get_xscale() == "linear"
    marks = panels[0].collections[0].get_offsets()
    assert marks[:, 0].tolist() == [0.95, 0.5] and marks[:, 1].tolist() == [0, 1]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["A", "B", "C"]
    with pytest.raises(KeyError, match="no model has the metric"):
        metric_bars(rows, ["nope"])
    with pytest.raises(ValueError, match="at least one model"):
        metric_bars({})
