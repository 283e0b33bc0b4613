"""Training curves from a trainer's per-epoch history."""

from __future__ import annotations

import math
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def training_curve(history: list[dict[str, Any]], title: str | None = None) -> Figure:
    """Train and test loss per epoch; beside them, when the history holds them and there are several,
    each term of the test objective per epoch (``T1..Tn``: the numbering of the run's report), on a
    symmetric log scale (terms of different sizes and signs).

    ``history``: one dict per epoch with ``epoch`` and ``train_loss`` (and ``test_loss``,
    ``test_terms``), as :meth:`~pixyz_zoo.training.Trainer.fit` returns it and a run's
    ``history.json`` holds it."""
    if isinstance(history, dict) or any(not isinstance(r, dict) or "train_loss" not in r for r in history):
        keys = f" with keys {sorted(history)}" if isinstance(history, dict) else ""
        raise TypeError(
            "training_curve draws a history: a list of one dict per epoch with 'epoch' and 'train_loss' "
            "(and 'test_loss'), as Trainer.fit() returns it and a run's history.json holds it; got "
            f"{type(history).__name__}{keys}"
        )
    terms: list[list[float]] = [r.get("test_terms") or [] for r in history]
    n = len(terms[0]) if terms else 0
    by_term = n > 1 and all(len(t) == n for t in terms)
    fig = Figure(figsize=(10, 3.2) if by_term else (5, 3.2), layout="constrained")
    ax = fig.add_subplot(1, 2 if by_term else 1, 1)
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    if all("test_loss" in r for r in history):
        ax.plot(epochs, [r["test_loss"] for r in history], marker="s", label="test loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (nats per example)")
    ax.legend()
    if title:
        ax.set_title(title)
    if by_term:
        ax = fig.add_subplot(1, 2, 2)
        colors = colormaps["tab10" if n <= 10 else "tab20"].colors  # type: ignore[attr-defined]
        for i in range(n):
            values = [t[i] for t in terms]
            ax.plot(epochs, values, marker=".", color=colors[i % len(colors)], label=f"T{i + 1}")
        largest = max(abs(v) for t in terms for v in t) or 1.0
        # linear within a decade of 1/100 of the largest term, logarithmic beyond
        ax.set_yscale("symlog", linthresh=10.0 ** math.floor(math.log10(largest / 100)))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("test objective term by term (see the report)", fontsize="medium")
        ax.legend(fontsize="small", ncol=2 if n > 12 else 1, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig
