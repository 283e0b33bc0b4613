"""Image grids, comparison rows and categorical heat maps.

Figures are built as :class:`matplotlib.figure.Figure` objects directly, not through pyplot, so
nothing accumulates in pyplot's figure registry and a returned figure is displayed once in a
notebook. :func:`save_figure` writes a figure to disk.

How a batch of one modality is drawn is decided in one place, :func:`modality_kind`, from the
modality's declaration: images as tiles, text (categorical sequences, ``is_sequence``) as decoded
strings, single labels (``is_label``) as class names shaded by their probability, other vectors
as heat maps. :func:`image_grid`, :func:`comparison_grid` and the cross-modal figures of
:mod:`pixyz_zoo.plots.multimodal` all follow it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pixyz_zoo.checks import check_count
from pixyz_zoo.modalities import Modality

__all__ = [
    "comparison_grid",
    "decode_text",
    "image_grid",
    "modality_kind",
    "sample_grid",
    "save_figure",
    "tile_images",
]

_PAD = 2  # pixels between tiles
_PAD_VALUE = 1.0  # white separators


def _check_not_a_batch(values: object) -> None:
    """Refuse a whole batch (a dict by variable name) where one variable's values are drawn, and a
    model or a dataset (whose samples or examples are what is drawn)."""
    if not isinstance(values, (torch.Tensor, np.ndarray, list, tuple, dict)):
        raise TypeError(
            f"got a {type(values).__name__} where values (a tensor or an array) are drawn: pass them, "
            "e.g. model.sample(16)['x'] for a model's samples or data.first(16)['x'] for a dataset's "
            "examples"
        )
    if isinstance(values, dict):
        names = list(values)
        raise TypeError(
            f"got a batch (a dict of {names}) where one variable's values are drawn: pass one of them, "
            f"e.g. batch[{names[0]!r}] with modality=data.modalities[{names[0]!r}]"
            if names
            else "got an empty dict where one variable's values are drawn"
        )


def _to_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    _check_not_a_batch(values)
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float32).numpy()
    return np.asarray(values, dtype=np.float32)


def _as_images(images: torch.Tensor | np.ndarray, modality: Modality | None) -> np.ndarray:
    """Return a float array (N, C, H, W) with C in {1, 3}, clamped to [0, 1]."""
    array = _to_numpy(images)
    if modality is not None and modality.is_image and array.shape[1:] != modality.shape:
        if array.ndim >= 2 and math.prod(array.shape[1:]) == modality.dim:
            array = array.reshape((array.shape[0], *modality.shape))
        else:
            raise ValueError(
                f"images for modality {modality.name!r} have shape {array.shape}, expected "
                f"(N, {', '.join(map(str, modality.shape))})"
            )
    if array.ndim == 3:  # (N, H, W): grey images without a channel axis
        array = array[:, None]
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ValueError(
            f"image_grid expects images of shape (N, C, H, W) with C = 1 (grey) or 3 (RGB), got "
            f"{tuple(array.shape)}; pass the modality to reshape flat vectors"
        )
    if array.shape[0] == 0:
        raise ValueError("image_grid got an empty batch (N = 0)")
    return np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0)


def tile_images(images: torch.Tensor | np.ndarray, nrow: int = 8) -> np.ndarray:
    """Tile (N, C, H, W) images into one array: (rows*(H+pad)+pad, cols*(W+pad)+pad[, 3]).

    ``nrow`` is the number of images per row (as in ``torchvision.utils.make_grid``).
    """
    array = _as_images(images, None)
    n, channels, height, width = array.shape
    cols = min(check_count(nrow, "nrow, the number of images per row,"), n)
    rows = math.ceil(n / cols)
    grid = np.full(
        (channels, rows * (height + _PAD) + _PAD, cols * (width + _PAD) + _PAD),
        _PAD_VALUE,
        dtype=np.float32,
    )
    for index in range(n):
        r, c = divmod(index, cols)
        top = _PAD + r * (height + _PAD)
        left = _PAD + c * (width + _PAD)
        grid[:, top : top + height, left : left + width] = array[index]
    return grid[0] if channels == 1 else grid.transpose(1, 2, 0)


def _as_categorical(values: torch.Tensor | np.ndarray, modality: Modality | None) -> np.ndarray:
    """Return a (N, K) array of one-hot / probability vectors."""
    if isinstance(values, torch.Tensor) and not values.is_floating_point():
        if modality is None or values.dim() != 1:
            values = values.float()
        else:  # class indices -> one-hot
            values = torch.nn.functional.one_hot(values.long(), modality.dim).float()
    array = _to_numpy(values)
    if array.ndim == 1:
        array = array[None]
    if array.ndim > 2 and modality is not None and math.prod(array.shape[1:]) == modality.dim:
        array = array.reshape(array.shape[0], -1)  # a sequence of vectors (T, d): its T * d entries
    if array.ndim != 2:
        raise ValueError(
            f"a non-image modality is drawn as a heat map of vectors (N, K), got shape {tuple(array.shape)}"
        )
    if modality is not None and array.shape[1] != modality.dim:
        raise ValueError(
            f"vectors for modality {modality.name!r} have {array.shape[1]} entries, expected {modality.dim}"
        )
    return array


def modality_kind(values: torch.Tensor | np.ndarray, modality: Modality | None) -> str:
    """How a batch of ``modality`` is drawn: ``"image"``, ``"text"``, ``"label"`` or ``"heat"``.

    From the declaration: an image modality as image tiles, a categorical sequence (text) as
    decoded strings, a single categorical label as class names, any other vector as a heat map.
    Without a declaration, 3-D and 4-D arrays are images and everything else a heat map.
    """
    _check_not_a_batch(values)
    if modality is None:
        return "image" if _to_numpy(values).ndim in (3, 4) else "heat"
    if modality.is_image:
        return "image"
    if modality.is_sequence:
        return "text"
    if modality.is_label:
        return "label"
    return "heat"


def decode_text(values: torch.Tensor | np.ndarray, modality: Modality) -> list[str]:
    """One string per example: a sequence (N, length, symbols) decoded with ``modality.labels``
    (the most likely symbol at each position, a newline shown as ``↵``; symbol indices when there
    are no labels); a label (N, classes) as its most likely class name."""
    array = values.detach().cpu() if torch.is_tensor(values) else torch.as_tensor(np.asarray(values))
    if modality.is_label and not array.is_floating_point() and array.dim() == 1:
        array = torch.nn.functional.one_hot(array.long(), modality.dim)  # class indices
    expected = (modality.dim,) if modality.is_label else modality.shape
    if array.dim() != len(expected) + 1 or tuple(array.shape[1:]) != tuple(expected):
        raise ValueError(
            f"values of modality {modality.name!r} have shape {tuple(array.shape)}, expected "
            f"(N, {', '.join(map(str, expected))})"
        )
    index = array.argmax(-1)
    labels = tuple(modality.labels)
    if modality.is_label:
        return [labels[i] if len(labels) == array.shape[-1] else str(int(i)) for i in index.tolist()]
    if len(labels) == array.shape[-1]:
        return ["".join(labels[i] for i in row).rstrip().replace("\n", "↵") for row in index.tolist()]
    return [" ".join(str(i) for i in row) for row in index.tolist()]


BLANK = "(blank)"  # shown for a decoded text of spaces only (e.g. an untrained model's)


def _string_style(text: str) -> dict[str, str]:
    return {"family": "monospace", "color": "black"} if text else {"style": "italic", "color": "grey"}


def _draw_strings(ax: Axes, strings: list[str]) -> None:
    """One string per column, centred in one row (comparison and cross-modal rows)."""
    n = len(strings)
    for j, text in enumerate(strings):
        style = _string_style(text)
        ax.text((j + 0.5) / n, 0.5, text or BLANK, ha="center", va="center", fontsize="small", **style)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _no_frame(ax)


def _no_frame(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _string_grid(
    strings: list[str], shade: np.ndarray | None, nrow: int, ax: Axes | None
) -> tuple[Figure, Axes]:
    """``strings`` in a grid of ``nrow`` per row; cells shaded by ``shade`` (in [0, 1]) if given.

    The drawing of text samples and of label samples: each cell is one example, as an image
    tile is in an image grid, so 64 samples make an 8 x 8 grid, not a strip.
    """
    n = len(strings)
    cols = max(1, min(int(nrow), n))
    rows = math.ceil(n / cols)
    longest = max((len(t) for t in strings), default=1)
    cell_width = max(0.5, 0.09 * longest + 0.25)
    fig, ax = _new_axes(ax, min(max(cols * cell_width, 2.0), 16.0), min(max(0.32 * rows + 0.3, 1.0), 12.0))
    values = np.full((rows, cols), np.nan)
    if shade is not None:
        values.flat[:n] = np.clip(shade, 0.0, 1.0)
    else:
        values.flat[:n] = 0.0
    ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if shade is not None else 4.0, aspect="auto")
    for index, text in enumerate(strings):
        r, c = divmod(index, cols)
        style = _string_style(text)
        if shade is not None and shade[index] > 0.6:
            style["color"] = "white"
        ax.text(c, r, text or BLANK, ha="center", va="center", fontsize="small", **style)
    ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="both", length=0)
    _no_frame(ax)
    return fig, ax


def _new_axes(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(), ax
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _draw_heat_map(ax: Axes, array: np.ndarray, modality: Modality | None, examples_as_columns: bool) -> None:
    """Draw (N, K) vectors; examples as rows, or as columns (comparison grids, no colour bar)."""
    k = array.shape[1]
    is_categorical = modality is not None and modality.is_label
    colours = {"cmap": "Blues", "vmin": 0.0, "vmax": 1.0} if is_categorical else {"cmap": "viridis"}
    image = ax.imshow(array.T if examples_as_columns else array, aspect="auto", **colours)
    labels = tuple(modality.labels) if modality is not None else ()
    ticks = labels if len(labels) == k else [str(i) for i in range(k)]
    if examples_as_columns:
        ax.set_xticks([])
        ax.set_yticks(range(k), ticks, fontsize="small")
        return
    ax.set_xticks(range(k), ticks, rotation=90 if max(map(len, ticks)) > 3 else 0)
    ax.set_yticks([])
    if modality is not None:
        ax.set_xlabel(modality.name)
    ax.get_figure().colorbar(image, ax=ax, fraction=0.05, pad=0.02)


def _draw_tiles(ax: Axes, grid: np.ndarray, aspect: str = "equal") -> None:
    if grid.ndim == 2:
        ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=aspect)
    else:
        ax.imshow(grid, interpolation="nearest", aspect=aspect)
    _no_frame(ax)


def image_grid(
    images: torch.Tensor | np.ndarray,
    modality: Modality | None = None,
    nrow: int = 8,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw a batch as a grid and return the figure (``ax.figure`` when ``ax`` is given).

    Drawn as :func:`modality_kind` says. Images ``(N, C, H, W)`` (C = 1 grey, C = 3 RGB; values
    clamped to [0, 1]) are tiled ``nrow`` per row into one picture; flat vectors are reshaped to
    an image ``modality``'s shape. A text modality (``(N, length, symbols)``) is a grid of its
    decoded strings, ``nrow`` per row; a label modality (``(N, classes)`` probabilities, or class
    indices ``(N,)``) a grid of the most likely class names, each cell shaded by that class's
    probability. Other vectors (or 2-D input without a modality) are a heat map with the
    modality's ``labels`` as tick labels: one row per example, or one column per example when
    there are more examples than entries (so that many samples make a wide, not a tall, figure).
    """
    kind = modality_kind(images, modality)
    if kind in ("text", "label"):
        if kind == "label":
            array = _as_categorical(images, modality)
            shade = array.max(axis=1) / np.maximum(array.sum(axis=1), 1e-12)
        else:
            shade = None
        if len(images) == 0:
            raise ValueError("image_grid got an empty batch (N = 0)")
        fig, ax = _string_grid(decode_text(images, modality), shade, nrow, ax)
        if title:
            ax.set_title(title)
        return fig
    if kind == "image":
        grid = tile_images(_as_images(images, modality), nrow)
        height, width = grid.shape[:2]
        longest = max(height, width)
        inches_per_pixel = min(max(longest / 50.0, 4.0), 10.0) / longest
        fig, ax = _new_axes(
            ax,
            max(1.0, width * inches_per_pixel),
            max(1.0, height * inches_per_pixel) + 0.4 * bool(title),
        )
        _draw_tiles(ax, grid)
    else:
        array = _as_categorical(images, modality)
        n, k = array.shape
        if n > k:  # many examples: one column each, so the figure is wide rather than tall
            fig, ax = _new_axes(ax, min(2.0 + 0.15 * n, 14.0), min(1.0 + 0.2 * k, 10.0))
            _draw_heat_map(ax, array, modality, examples_as_columns=True)
            ax.set_xlabel(f"{n} examples")
        else:
            fig, ax = _new_axes(ax, min(2.0 + 0.45 * k, 14.0), min(1.2 + 0.3 * n, 14.0))
            _draw_heat_map(ax, array, modality, examples_as_columns=False)
    if title:
        ax.set_title(title)
    return fig


sample_grid = image_grid


def comparison_grid(
    rows: Mapping[str, torch.Tensor | np.ndarray],
    modality: Modality | Mapping[str, Modality] | None = None,
    nrow: int = 8,
    title: str | None = None,
) -> Figure:
    """Stack labelled rows, e.g. ``{"data": x, "reconstruction": x_hat}``, one row per entry.

    Each row shows its first ``nrow`` examples (images per row, as in :func:`image_grid`;
    fewer if a row is shorter): all rows show the same number, column j is example j in every
    row. ``modality`` is one declaration for every
    row or a dict keyed by row label, so an image row can sit above a label heat map
    (cross-modal generation). Rows are drawn as :func:`modality_kind` says: a text row shows
    each example's decoded string under its column; a label or vector row is a heat map with one
    column per example, one line per class.
    """
    if not isinstance(rows, Mapping):
        raise TypeError(
            "comparison_grid draws labelled rows, a dict such as {'data': batch['x'], 'reconstruction': "
            f"model.reconstruct(batch)['x']}}, got {type(rows).__name__}"
        )
    if not rows:
        raise ValueError("comparison_grid needs at least one row, e.g. {'data': x}")
    n = min(int(nrow), *(len(values) for values in rows.values()))
    if n <= 0:
        raise ValueError("comparison_grid got an empty row")

    def modality_of(label: str) -> Modality | None:
        if isinstance(modality, Mapping):
            return modality.get(label)
        return modality

    drawn: list[tuple[str, str, object, Modality | None]] = []
    for label, values in rows.items():
        row_modality = modality_of(label)
        kind = modality_kind(values, row_modality)
        if kind == "image":
            drawn.append(
                (label, kind, tile_images(_as_images(values[:n], row_modality), nrow=n), row_modality)
            )
        elif kind == "text":
            drawn.append((label, kind, decode_text(values[:n], row_modality), row_modality))
        else:  # labels and vectors: one column per example, one line per entry
            drawn.append((label, "heat", _as_categorical(values[:n], row_modality), row_modality))

    # Rows share one width (aspect "auto"), so the figure is sized to keep image tiles square.
    row_height = 1.0
    image_ratios = [grid.shape[1] / grid.shape[0] for _, kind, grid, _ in drawn if kind == "image"]
    longest = max((len(t) for _, kind, texts, _ in drawn if kind == "text" for t in texts), default=0)
    strip = row_height * (max(image_ratios) if image_ratios else 0.8 * n)
    strip = max(strip, 0.09 * longest * n)
    heights = [
        row_height if kind == "image" else 0.4 if kind == "text" else max(0.8, 0.13 * a.shape[1])
        for _, kind, a, _ in drawn
    ]
    fig = Figure(
        figsize=(min(strip + 2.0, 16.0), sum(heights) + 0.25 * len(drawn) + 0.5 * bool(title)),
        layout="constrained",
    )
    axes = fig.subplots(len(drawn), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (label, kind, array, row_modality) in zip(axes, drawn, strict=True):
        if kind == "image":
            _draw_tiles(ax, array, aspect="auto")
        elif kind == "text":
            _draw_strings(ax, array)
        else:
            _draw_heat_map(ax, array, row_modality, examples_as_columns=True)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` (PNG unless ``path`` names another format), create parent dirs, close it."""
    path = Path(path)
    if path.is_dir():  # it wrote a sibling file, FOLDER.png
        raise IsADirectoryError(f"{path} is a folder: give the figure's file, e.g. {path / 'figure.png'}")
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    if "matplotlib.pyplot" in sys.modules:  # figures made through pyplot are registered there
        sys.modules["matplotlib.pyplot"].close(fig)
    return path
