"""Figures of iterative amortized inference: the bound along the refinement steps, the gaps along an
encoder-size sweep, and a posterior's trajectory in a 2-D latent space."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

__all__ = ["encoder_sweep_figure", "refinement_curves_figure", "refinement_loop_figure", "trajectory_figure"]


def refinement_curves_figure(
    curves: Mapping[str, Sequence[float]],
    groups: Mapping[str, str] | None = None,
    ceilings: Mapping[str, float] | None = None,
    marks: Sequence[int] = (1, 2, 5, 16),
    title: str | None = None,
    trained_steps: int | None = None,
    trained_label: str = "training",
) -> Figure:
    """The bound after each refinement step ``t = 0..T``, one curve per entry of ``curves``.

    ``groups`` maps a curve to its model (curves of one model share a colour; a curve's label is
    its key); ``ceilings`` maps a model to its ``L[q*]``, drawn as a dashed line of that colour.
    The steps in ``marks`` get a marker; ``trained_steps``: a grey line at the ``T`` the refined
    models were trained with (labelled ``T = ... (trained_label)``).
    """
    groups = dict(groups or {label: label for label in curves})
    models = list(dict.fromkeys([*groups.values(), *(ceilings or {})]))
    colours = {m: f"C{i}" for i, m in enumerate(models)}
    styles = ["-", "--", ":", "-."]
    seen: dict[str, int] = {}
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for label, values in curves.items():
        model = groups.get(label, label)
        style = styles[seen.get(model, 0) % len(styles)]
        seen[model] = seen.get(model, 0) + 1
        steps = np.arange(len(values))
        marked = [t for t in (0, *marks) if t < len(values)]
        ax.plot(steps, values, style, color=colours[model], label=label, markevery=marked, marker="o")
    for model, value in (ceilings or {}).items():
        ax.axhline(value, color=colours[model], linestyle=(0, (1, 3)), linewidth=1.5, label=f"{model}: L[q*]")
    if trained_steps is not None:
        ax.axvline(trained_steps, color="grey", linewidth=1, label=f"T = {trained_steps} ({trained_label})")
    ax.set_xlabel("refinement step t")
    ax.set_ylabel("test ELBO after t steps (nats per example)")
    ax.set_title(title or "The bound along the refinement, with q* as each model's ceiling")
    ax.legend(fontsize="small", loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def encoder_sweep_figure(
    parameters: Sequence[int],
    gaps: Mapping[str, Sequence[float]],
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Each gap (e.g. amortization, approximation) against the encoder's parameter count (log scale)."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, values in gaps.items():
        ax.plot(parameters, values, marker="o", label=name)
    if labels is not None:
        for x, label in zip(parameters, labels, strict=True):
            ax.annotate(
                label,
                (x, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize="small",
            )
    ax.set_xscale("log")
    ax.set_xlabel("encoder parameters (log scale; the decoder is the same)")
    ax.set_ylabel("gap (nats per example)")
    ax.set_title(title or "Inference gaps against the encoder's size")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def trajectory_figure(
    grid: Mapping[str, np.ndarray],
    trajectories: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    optimum: tuple[Sequence[float], Sequence[float]] | None = None,
    title: str | None = None,
) -> Figure:
    """Trajectories of a 2-D Gaussian posterior's mean over the refinement steps, over the exact
    posterior ``p(z|x)`` on a grid.

    ``grid``: ``{"z1": (n,), "z2": (n,), "log_joint": (n, n)}`` (``log p(x, z)`` at ``(z1[j], z2[i])``);
    ``trajectories``: label -> ``[(loc_t, scale_t)]``; the first and last steps get their one-sigma
    ellipse. ``optimum``: ``q*``'s ``(loc, scale)``, drawn as a black ellipse.
    """
    z1, z2, log_joint = (np.asarray(grid[k]) for k in ("z1", "z2", "log_joint"))
    posterior = np.exp(log_joint - log_joint.max())
    fig = Figure(figsize=(6.2, 5.4), layout="constrained")
    ax = fig.add_subplot()
    ax.contourf(z1, z2, posterior, levels=12, cmap="Greys", alpha=0.7)
    for i, (label, steps) in enumerate(trajectories.items()):
        colour = f"C{i}"
        locs = np.array([np.asarray(loc, dtype=float) for loc, _ in steps])
        ax.plot(
            locs[:, 0],
            locs[:, 1],
            "-o",
            color=colour,
            markersize=3,
            label=f"{label} ({len(steps) - 1} steps)",
        )
        for t, style in ((0, ":"), (len(steps) - 1, "-")):
            loc, scale = (np.asarray(v, dtype=float) for v in steps[t])
            ax.add_patch(
                Ellipse(
                    loc, 2 * scale[0], 2 * scale[1], fill=False, color=colour, linestyle=style, linewidth=1.5
                )
            )
        ax.annotate("t=0", locs[0], xytext=(4, 4), textcoords="offset points", color=colour, fontsize="small")
    if optimum is not None:
        loc, scale = (np.asarray(v, dtype=float) for v in optimum)
        ax.add_patch(Ellipse(loc, 2 * scale[0], 2 * scale[1], fill=False, color="black", linewidth=1.5))
        ax.plot(*loc, "k*", markersize=10, label="q* (per-example optimum)")
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title or "One posterior refined step by step (grey: the exact p(z|x))")
    ax.legend(fontsize="small")
    return fig


def refinement_loop_figure() -> Figure:
    """The idea of iterative amortized inference as a diagram (after the slides' pictures): the
    encoder proposes ``lambda_0``; the decoder's generation error gives ``grad_lambda F``; an update
    moves ``lambda`` and the loop repeats ``T`` times (left). Right: the amortised ``q`` below the
    per-example optimum ``q*`` (the amortization gap), which the refinement narrows."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = Figure(figsize=(11, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2.3, 1])
    for ax in (left, right):
        ax.set_axis_off()
    left.set(xlim=(0, 11), ylim=(0, 4.2))

    def box(ax, x, y, text, colour="white", w=1.7, h=0.8):
        ax.add_patch(
            FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.08", fc=colour, ec="black")
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=10)

    def arrow(ax, a, b, text="", colour="black", rad=0.0, offset=(0, 0.2)):
        ax.add_patch(
            FancyArrowPatch(
                a,
                b,
                arrowstyle="-|>",
                mutation_scale=14,
                color=colour,
                connectionstyle=f"arc3,rad={rad}",
                linewidth=1.4,
            )
        )
        if text:
            mid = ((a[0] + b[0]) / 2 + offset[0], (a[1] + b[1]) / 2 + offset[1])
            ax.text(*mid, text, ha="center", va="center", fontsize=9, color=colour)

    box(left, 0.9, 2.8, "$x$", "#eef")
    box(left, 3.1, 2.8, "$q_\\phi(z|x)$\nencoder", "#efe")
    box(left, 5.5, 2.8, "$\\lambda_t = (\\mu_t, \\sigma_t)$", "#ffe", w=2.2)
    box(left, 8.0, 2.8, "$z \\sim q_{\\lambda_t}$\n$p_\\theta(x|z)$", "#fee")
    box(left, 10.1, 2.8, "$x'$", "#eef", w=1.0)
    box(
        left,
        8.0,
        0.8,
        "$\\nabla_\\lambda \\mathcal{F}(\\lambda_t)$\n$\\mathcal{F} = -$ELBO",
        "#fee",
        w=2.2,
        h=0.9,
    )
    box(left, 3.9, 0.8, "update $f$\nlearned / Adam", "#ffe", w=2.0, h=0.9)
    arrow(left, (1.75, 2.8), (2.2, 2.8))
    arrow(left, (3.95, 2.8), (4.35, 2.8), "$\\lambda_0$")
    arrow(left, (6.65, 2.8), (7.1, 2.8))
    arrow(left, (8.85, 2.8), (9.55, 2.8), "1: generate")
    arrow(left, (10.1, 2.35), (9.15, 0.95), "error vs $x$", colour="firebrick", offset=(0.55, 0.2))
    arrow(left, (6.85, 0.8), (4.95, 0.8), "2: gradient", colour="firebrick")
    arrow(left, (3.9, 1.3), (5.1, 2.35), "3: $\\lambda_{t+1}$", colour="firebrick", offset=(-0.45, 0.1))
    left.text(
        5.5,
        4.0,
        "repeated T times; the decoder is not changed by the refinement",
        ha="center",
        fontsize=9,
        style="italic",
    )

    right.set(xlim=(0, 3), ylim=(0, 4.2))
    for y, text, colour in (
        (3.5, "$q^*(z|x)$: per-example optimum", "black"),
        (2.3, "$q_T(z|x)$: refined", "C0"),
        (1.0, "$q_\\phi(z|x)$: amortised", "C1"),
    ):
        right.plot([0.2, 1.0], [y, y], color=colour, linewidth=3)
        right.text(1.1, y, text, va="center", fontsize=9)
    right.annotate("", (0.6, 3.45), (0.6, 1.05), arrowprops={"arrowstyle": "<->", "color": "grey"})
    right.text(0.05, 2.9, "amortization\ngap", fontsize=8, color="grey", rotation=90, va="center")
    right.set_title("bound (ELBO)", fontsize=10)
    return fig
