"""Pictures of a 2-D latent space: scatter by label, decision regions of ``p(w|z)``, decoded grid.

These are the JMVAE paper's Fig. 5 (latents from ``q(z|x,w)`` and ``q(z|w)`` coloured by digit),
the attribute-MNIST walkthrough's plots (decision boundaries of ``p(w|z)`` over the latent
plane, images decoded on a lattice of latent points) and Fig. 8(b) (higher-dimensional latents of
``q(z|w)`` on their first two principal components).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pixyz_zoo.checks import check_integer, check_positive
from pixyz_zoo.plots.grids import _as_images, _check_not_a_batch, _draw_tiles, _new_axes, tile_images


def _two_dimensional(codes: torch.Tensor | np.ndarray) -> np.ndarray:
    _check_not_a_batch(codes)
    array = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"latent plots need codes of shape (N, 2), got {array.shape}; train with z_dim=2 "
            "or project the codes to two dimensions first"
        )
    return array


def _class_indices(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    _check_not_a_batch(labels)
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return array.argmax(-1) if array.ndim == 2 else array.astype(int)


def latent_scatter(
    codes: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    label_names: Sequence[str] = (),
    title: str | None = None,
    ax: Axes | None = None,
    extent: float | None = None,
) -> Figure:
    """Scatter 2-D latent codes coloured by class (one-hot or indices); returns the figure."""
    points = _two_dimensional(codes)
    classes = _class_indices(labels)
    if len(classes) != len(points):
        raise ValueError(f"{len(points)} codes but {len(classes)} labels")
    fig, ax = _new_axes(ax, 4.6, 4.0)
    cmap = "tab10" if classes.max(initial=0) < 10 else "tab20"
    scatter = ax.scatter(points[:, 0], points[:, 1], c=classes, cmap=cmap, s=6, alpha=0.7, vmin=0)
    present = np.unique(classes)
    names = [label_names[c] if c < len(label_names) else str(c) for c in present]
    handles = [
        ax.scatter([], [], color=scatter.cmap(scatter.norm(c)), s=20, label=name)
        for c, name in zip(present, names, strict=True)
    ]
    ax.legend(handles=handles, fontsize="small", loc="upper right", markerscale=1.0, ncol=2)
    if extent is not None:
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title)
    return fig


def _lattice(extent: float, steps: int, name: str = "steps") -> tuple[np.ndarray, torch.Tensor]:
    steps = check_integer(steps, f"{name}, the number of points per axis of the latent plane,", 2)
    check_positive(extent, "extent, the half-width of the latent square drawn,")
    axis = np.linspace(-extent, extent, steps)
    z1, z2 = np.meshgrid(axis, axis[::-1])  # top row = largest z_2
    return axis, torch.tensor(np.stack([z1.ravel(), z2.ravel()], axis=1), dtype=torch.float32)


def _plane_target(model: Any, target: str, latent: str) -> Any:
    """The declaration of ``target``, once it and ``latent`` are known to be the model's."""
    if target not in model.modalities:
        raise KeyError(
            f"{target!r} is not a modality of {type(model).__name__}; it has {sorted(model.modalities)}"
        )
    if latent not in getattr(model, "latents", [latent]):
        raise KeyError(f"{latent!r} is not a latent of {type(model).__name__}; it has {model.latents}")
    return model.modalities[target]


def _decode_plane(model: Any, grid: torch.Tensor, target: str, latent: str, what: str) -> torch.Tensor:
    """``p(target|z)``'s means on the points ``grid`` (N, 2) of the latent plane; a latent of more
    than two dimensions is refused, naming what to use instead."""
    try:
        return model.decode({latent: grid.to(model.device)}, [target])[target]
    except ValueError as error:  # the latent's shape: names and target are checked above
        raise ValueError(
            f"{what} decodes points of the 2-D plane of {latent!r}, but {error}. Train the model "
            "with z_dim=2 (-o z_dim=2), or draw a latent_traversal for more dimensions"
        ) from error


def decision_regions(
    model: Any,
    target: str,
    extent: float = 3.0,
    resolution: int = 150,
    latent: str = "z",
    codes: torch.Tensor | np.ndarray | None = None,
    labels: torch.Tensor | np.ndarray | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The class of ``argmax p(target|z)`` over a square of the 2-D latent plane, with optional
    points on top: the decision boundaries of a categorical decoder."""
    modality = _plane_target(model, target, latent)
    if not modality.is_label:
        raise ValueError(f"decision regions need a categorical class label; {target!r} is {modality.kind}")
    axis, grid = _lattice(extent, resolution, "resolution")
    decoded = _decode_plane(model, grid, target, latent, "decision_regions")
    classes = decoded.argmax(-1).cpu().numpy().reshape(resolution, resolution)
    fig, ax = _new_axes(ax, 4.6, 4.0)
    k = modality.shape[0]
    ax.imshow(
        classes,
        extent=(-extent, extent, -extent, extent),
        cmap="tab10" if k <= 10 else "tab20",
        vmin=0,
        vmax=9 if k <= 10 else 19,
        alpha=0.35,
        interpolation="nearest",
    )
    ax.contour(axis, axis[::-1], classes, levels=np.arange(k) + 0.5, colors="k", linewidths=0.6)
    if codes is not None and labels is not None:
        latent_scatter(codes, labels, modality.labels, ax=ax)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_title(title or f"argmax p({target}|z)")
    return fig


def latent_grid(
    model: Any,
    target: str,
    extent: float = 3.0,
    steps: int = 10,
    latent: str = "z",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Images decoded by ``p(target|z)`` on a ``steps x steps`` lattice of the 2-D latent plane
    (left to right: z_1 from -extent to extent; top to bottom: z_2 from extent to -extent)."""
    modality = _plane_target(model, target, latent)
    if not modality.is_image:
        raise ValueError(
            f"a decoded latent grid needs an image modality; {target!r} has shape {modality.shape}"
        )
    _, grid = _lattice(extent, steps)
    images = _decode_plane(model, grid, target, latent, "latent_grid").cpu()
    tiles = tile_images(_as_images(images, modality), nrow=steps)
    fig, ax = _new_axes(ax, 5.0, 5.0)
    _draw_tiles(ax, tiles)
    ax.set_title(title or f"mean of p({target}|z) on a latent grid, |z| <= {extent:g}")
    return fig


def curves(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    flat: Mapping[str, float] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    log_x: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Lines ``series[name]`` against ``x`` and dashed horizontal lines ``flat[name]``
    (the JMVAE paper's Fig. 4: likelihood against iterative-sampling steps, JMVAE-kl flat)."""
    fig, ax = _new_axes(ax, 5.2, 3.4)
    for name, values in series.items():
        ax.plot(x, values, marker="o", label=name)
    for name, value in (flat or {}).items():
        ax.axhline(value, linestyle="--", color="k", linewidth=1.0, label=name)
    if log_x:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def principal_components(points: torch.Tensor) -> np.ndarray:
    """``points`` (N, D) centred and projected on their first two principal directions (the right
    singular vectors of the centred matrix), shape (N, 2); each direction's sign is the SVD's."""
    centred = points - points.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ v[:2].T).numpy()


def _tab10(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def latent_pca_figure(rows: Mapping[str, Mapping[str, torch.Tensor]], title: str) -> Figure:
    """The JMVAE paper's Fig. 8(b): the latents ``rows[label]["z"]`` (first row the mean ``z_mean``,
    the others its variations) of every label on the first two principal components of all of them;
    large marks are the means, small ones the variations."""
    labels = list(rows)
    points = torch.cat([rows[label]["z"] for label in labels])
    projected = principal_components(points)
    fig = Figure(figsize=(5.0, 4.2), layout="constrained")
    ax = fig.subplots()
    start = 0
    colours = _tab10(len(labels))
    for label, colour in zip(labels, colours, strict=True):
        n = len(rows[label]["z"])
        part = projected[start : start + n]
        ax.scatter(part[1:, 0], part[1:, 1], s=8, alpha=0.6, color=colour, label=label)
        ax.scatter(part[:1, 0], part[:1, 1], s=90, color=colour, edgecolors="k", marker="*")
        start += n
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.legend(fontsize="small")
    ax.set_title(title)
    return fig


__all__ = [
    "curves",
    "decision_regions",
    "latent_grid",
    "latent_pca_figure",
    "latent_scatter",
    "principal_components",
]
