"""Training curves from a trainer's per-epoch history."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def training_curve(history: list[dict[str, Any]], title: str | None = None) -> Figure:
    """Train and test loss per epoch."""
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.add_subplot()
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
    return fig
