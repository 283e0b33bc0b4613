"""Training curves from a trainer's per-epoch history."""

from __future__ import annotations

from matplotlib.figure import Figure


def training_curve(history: list[dict[str, float]], title: str | None = None) -> Figure:
    """Train and test loss per epoch."""
    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    if all("test_loss" in r for r in history):
        ax.plot(epochs, [r["test_loss"] for r in history], marker="s", label="test loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per example)")
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
