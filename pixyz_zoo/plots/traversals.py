"""Latent traversals and per-dimension KL bar charts (Higgins et al. 2017, figs. 1-2 and 7).

A traversal shows what each latent dimension encodes: start from the posterior mean of one
example, change one dimension over a range of values while the others stay fixed, and decode.
Rows are sorted by each dimension's average KL to the prior (see
:func:`pixyz_zoo.evaluation.kl_per_dimension`), so the informative dimensions come first and
the collapsed ones (KL near 0, whose rows do not change) come last, as in Burgess et al. (2018),
fig. 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from pixyz_zoo.checks import check_count
from pixyz_zoo.plots.grids import _PAD, _draw_tiles, tile_images

__all__ = ["kl_bar_chart", "kl_order", "latent_traversal"]


def kl_order(kl: Sequence[float] | np.ndarray) -> np.ndarray:
    """Dimension indices sorted by decreasing KL (ties keep their index order)."""
    kl = np.asarray(kl, dtype=np.float64)
    if kl.ndim != 1 or kl.size == 0:
        raise ValueError(
            f"kl must be a non-empty vector (one value per latent dimension), got shape {kl.shape}"
        )
    return np.argsort(-kl, kind="stable")


def _examples(example_batch: Any, variable: str) -> torch.Tensor:
    if isinstance(example_batch, dict):
        if variable not in example_batch:
            raise KeyError(f"the example batch has no variable {variable!r}; it has {sorted(example_batch)}")
        example_batch = example_batch[variable]
    if not torch.is_tensor(example_batch):
        raise TypeError(
            f"example_batch must be a dict of tensors or a tensor, got {type(example_batch).__name__}"
        )
    if len(example_batch) == 0:
        raise ValueError("example_batch is empty")
    return example_batch


def _number(value: float) -> str:
    """``+1.5``, ``-0.75``, ``+3``: signed, at most two decimals, no trailing zeros."""
    text = f"{value:+.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("+0", "-0") else text


@torch.no_grad()
def latent_traversal(
    model: Any,
    example_batch: dict[str, torch.Tensor] | torch.Tensor,
    kl: Sequence[float] | np.ndarray | None = None,
    limit: float = 3.0,
    steps: int = 9,
    max_latents: int | None = None,
    variable: str | None = None,
    latent: str = "z",
    example: int = 0,
    relative: bool = False,
    title: str | None = None,
) -> Figure:
    """Decoded traversals of each latent dimension, one row per dimension, sorted by KL.

    The code of example ``example`` of ``example_batch`` is its posterior mean
    ``E_q[z|variable]`` (``model.encode``; ``variable``: by default the one modality the model infers
    from). Row ``d`` sets dimension ``d`` to ``steps`` values
    evenly spaced in ``[-limit, limit]`` (in units of the prior's standard deviation, as in
    Higgins et al. 2017; ``relative=True``: ``mean_d + [-limit, limit]``) with every other
    dimension at its posterior mean, and shows ``model.decode`` of each code (decoder means).
    Rows are sorted by decreasing ``kl`` (default: :func:`~pixyz_zoo.evaluation.kl_per_dimension`
    over ``example_batch``) and labelled with the dimension's index and its KL in nats;
    ``max_latents`` keeps the first rows only. The column labels give the values.
    """
    from pixyz_zoo.evaluation.latents import inferred_from, kl_per_dimension

    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    variable = inferred_from(model, variable, latent)
    modality = model.modalities.get(variable)
    if modality is None:
        raise KeyError(f"the model has no modality {variable!r}; it has {sorted(model.modalities)}")
    if not modality.is_image:
        raise ValueError(f"latent_traversal draws image modalities; {variable!r} has shape {modality.shape}")
    x = _examples(example_batch, variable)
    if not 0 <= example < len(x):
        raise IndexError(f"example={example} but the batch has {len(x)} examples")
    base = model.encode({variable: x[example : example + 1]}, given=[variable])[latent]
    base = base.flatten(1)
    z_dim = base.shape[1]
    if kl is None:
        kl = kl_per_dimension(model, {variable: x}, variable=variable, latent=latent)
    kl = np.asarray(kl, dtype=np.float64)
    if kl.shape != (z_dim,):
        raise ValueError(f"kl has {kl.size} values but the latent {latent!r} has {z_dim} dimensions")
    order = kl_order(kl)
    if max_latents is not None:
        order = order[: check_count(max_latents, "max_latents")]

    values = torch.linspace(-limit, limit, steps, device=base.device)
    codes = base.repeat(len(order) * steps, 1)
    for row, dim in enumerate(order):
        shift = base[0, dim] if relative else 0.0
        codes[row * steps : (row + 1) * steps, dim] = values + shift
    images = model.decode({latent: codes}, [variable])[variable].cpu()
    grid = tile_images(images, nrow=steps)

    height, width = modality.shape[1:]
    rows = len(order)
    tile = 0.55 if max(height, width) <= 32 else 0.75  # inches per image
    fig = Figure(figsize=(1.6 + tile * steps, 0.5 * bool(title) + 0.6 + tile * rows), layout="constrained")
    ax = fig.add_subplot()
    _draw_tiles(ax, grid)
    row_centres = [_PAD + r * (height + _PAD) + (height - 1) / 2 for r in range(rows)]
    col_centres = [_PAD + c * (width + _PAD) + (width - 1) / 2 for c in range(steps)]
    ax.set_yticks(row_centres, [f"z{int(d)}  KL {kl[d]:.2f}" for d in order], fontsize="small")
    ax.set_xticks(col_centres, [_number(v) for v in values.tolist()])
    ax.tick_params(axis="x", labelsize="x-small", length=0)
    ax.tick_params(axis="y", length=0)
    what = "offset from the posterior mean" if relative else "value"
    ax.set_xlabel(f"{what} of the traversed latent (the others at the posterior mean)", fontsize="small")
    if title:
        ax.set_title(title)
    fig.traversal_order = [int(d) for d in order]  # type: ignore[attr-defined]
    return fig


def kl_bar_chart(kl: Sequence[float] | np.ndarray, title: str | None = None) -> Figure:
    """Bars of the average ``KL(q(z_d|x) || N(0, 1))`` per latent dimension, largest first.

    Each bar is labelled ``z<d>`` (its dimension index); the total KL is given in the axis label.
    """
    kl = np.asarray(kl, dtype=np.float64)
    order = kl_order(kl)
    fig = Figure(figsize=(max(3.0, 1.5 + 0.4 * kl.size), 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(kl.size), kl[order], color="tab:blue")
    ax.set_xticks(range(kl.size), [f"z{int(d)}" for d in order], fontsize="small")
    ax.set_ylabel("KL (nats)")
    ax.set_xlabel(f"latent dimension (total KL {kl.sum():.2f} nats)")
    ax.set_ylim(bottom=0.0)
    if title:
        ax.set_title(title)
    fig.kl_order = [int(d) for d in order]  # type: ignore[attr-defined]
    return fig
