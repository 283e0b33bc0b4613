"""Figures of factorised multimodal representations (Tsai et al. 2019, "Learning Factorized
Multimodal Representations", MFM).

- :func:`factor_swap_images` / :func:`factor_swap_grid`: generation that swaps factors (as the
  paper generates SVHN and MNIST digits): a modality decoded from the label factor ``f_y`` of one
  example and the modality-specific generative factor ``f_a^m`` of another. ``vary="label"``
  fixes ``z_a^m`` per row and varies the label factor along it; ``vary="style"`` fixes the label
  factor per row and varies ``z_a^m`` along it;
- :func:`missing_modality_grid`: a missing modality generated from the observed ones by several
  models (surrogate inference, a translation baseline), beside the ground truth and reference rows
  such as the mean image;
- :func:`gradient_contributions_figure`: the interpretation of sec. 4 of the paper: the
  information-based ratio per modality (bars) and the gradient-based contribution of the
  discriminative factor to each generated modality over time (lines).

The factor figures use only the MFM surface (``infer_latents``, ``factor_features``,
``decode_features``, ``discriminative_latent``, ``style_latent``), so any model that exposes it can
be drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from pixyz_zoo.modalities import Modality
from pixyz_zoo.plots.grids import _as_images, _draw_tiles, tile_images
from pixyz_zoo.plots.multimodal import _models_and_views, _row, _rows_figure

__all__ = [
    "factor_swap_grid",
    "factor_swap_images",
    "swapped_pairs",
    "gradient_contributions_figure",
    "missing_modality_grid",
]

VARY = ("label", "style")


def _style_latent(model: Any, modality: str) -> str:
    """The modality-specific generative latent of ``modality``; a clear error when the model has none
    apart from its discriminative factor."""
    data = list(getattr(model, "data_modalities", ()))
    if modality not in data:
        raise KeyError(f"{modality!r} is not a data modality of the model; it has {data}")
    try:
        style = model.style_latent(modality)
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"the model has no generative factor of {modality!r} apart from its label factor ({error}); "
            "factor swapping needs separate discriminative and generative factors (MFM or ME)"
        ) from None
    if style is None or style == model.discriminative_latent:
        raise ValueError(
            f"the model has no generative factor of {modality!r} apart from its label factor "
            f"{model.discriminative_latent!r}; factor swapping needs separate discriminative and "
            "generative factors (MFM or ME)"
        )
    return style


@torch.no_grad()
def swapped_pairs(
    model: Any,
    style_batch: Mapping[str, torch.Tensor],
    label_batch: Mapping[str, torch.Tensor],
    modality: str,
) -> torch.Tensor:
    """``out[i]``: ``modality`` decoded from the label factor of example ``i`` of ``label_batch`` and
    the generative factor ``z_a^modality`` of example ``i`` of ``style_batch`` (the mean of
    ``p(x_m | f_y, f_a^m)``); both batches hold the same number of examples and every data modality
    of the model (the factors are inferred from all of them)."""
    style_latent = _style_latent(model, modality)
    label_latent = model.discriminative_latent
    model.distributions.eval()
    style = model.factor_features(model.infer_latents(dict(style_batch)))
    label = model.factor_features(model.infer_latents(dict(label_batch)))
    if len(style[style_latent]) != len(label[label_latent]):
        raise ValueError(
            f"swapped_pairs pairs example i of each batch: got {len(style[style_latent])} style and "
            f"{len(label[label_latent])} label examples; use factor_swap_images for every combination"
        )
    features = {style_latent: style[style_latent], label_latent: label[label_latent]}
    return model.decode_features(features, modality).detach().cpu()


def factor_swap_images(
    model: Any,
    style_batch: Mapping[str, torch.Tensor],
    label_batch: Mapping[str, torch.Tensor],
    modality: str,
) -> torch.Tensor:
    """``out[i, j]``: ``modality`` decoded from the label factor of example ``j`` of ``label_batch``
    and the generative factor ``z_a^modality`` of example ``i`` of ``style_batch`` (the mean of
    ``p(x_m | f_y, f_a^m)``); shape ``(styles, labels, *modality.shape)``: every combination, so keep
    the batches small (a grid); :func:`swapped_pairs` decodes pairs.

    Both batches hold every data modality of the model (the factors are inferred from all of them).
    """
    rows = len(next(iter(style_batch.values())))
    columns = len(next(iter(label_batch.values())))
    styles = {k: v.repeat_interleave(columns, dim=0) for k, v in style_batch.items()}  # row-major:
    labels = {k: v.repeat(rows, *([1] * (v.dim() - 1))) for k, v in label_batch.items()}  # i*C + j
    decoded = swapped_pairs(model, styles, labels, modality)
    return decoded.reshape(rows, columns, *decoded.shape[1:])


def factor_swap_grid(
    model: Any,
    style_batch: Mapping[str, torch.Tensor],
    label_batch: Mapping[str, torch.Tensor],
    modality: str,
    vary: str = "label",
    title: str | None = None,
) -> Figure:
    """One picture of :func:`factor_swap_images` with the source images on the margins.

    ``vary="label"``: one row per example of ``style_batch`` (its ``z_a^m`` fixed along the row, the
    source in the left column), one column per example of ``label_batch`` (the label factor varies
    along the row, the source in the top row). ``vary="style"``: transposed, one row per label
    source (the label factor fixed along the row) and one column per style source.
    """
    if vary not in VARY:
        raise ValueError(f"vary must be one of {VARY}, got {vary!r}")
    spec: Modality = model.modalities[modality] if modality in model.modalities else None
    if spec is None or not spec.is_image:
        raise ValueError(f"factor_swap_grid draws image modalities; {modality!r} is {spec}")
    images = factor_swap_images(model, style_batch, label_batch, modality)  # (styles, labels, ...)
    rows_src, cols_src = style_batch[modality].cpu(), label_batch[modality].cpu()
    if vary == "style":
        images = images.transpose(0, 1)
        rows_src, cols_src = cols_src, rows_src
    n_rows, n_cols = images.shape[:2]
    blank = torch.ones(1, *spec.shape)
    cells = [blank, cols_src.float()]
    for i in range(n_rows):
        cells += [rows_src[i : i + 1].float(), images[i].float()]
    grid = tile_images(_as_images(torch.cat(cells), spec), nrow=n_cols + 1)
    height, width = grid.shape[:2]
    scale = min(max(max(height, width) / 60.0, 4.0), 12.0) / max(height, width)
    fig = Figure(
        figsize=(max(2.0, width * scale) + 0.6, max(2.0, height * scale) + 0.9), layout="constrained"
    )
    ax = fig.subplots()
    _draw_tiles(ax, grid)
    style_name = f"z_a^{modality}"
    if vary == "label":
        ax.set_xlabel(f"label factor z_y from the top row (varies along a row; {n_cols} sources)")
        ax.set_ylabel(f"{style_name} from the left column\n(fixed along a row)")
    else:
        ax.set_xlabel(f"{style_name} from the top row (varies along a row; {n_cols} sources)")
        ax.set_ylabel("label factor z_y from the left column\n(fixed along a row)")
    default = (
        f"{modality}: fix {style_name}, vary the label factor"
        if vary == "label"
        else f"{modality}: fix the label factor, vary {style_name}"
    )
    ax.set_title(title or default)
    return fig


@torch.no_grad()
def missing_modality_grid(
    models: Mapping[str, Any],
    batch: Mapping[str, torch.Tensor],
    given: Sequence[str],
    target: str,
    references: Mapping[str, torch.Tensor] | None = None,
    n: int = 8,
    title: str | None = None,
) -> Figure:
    """The observed ``given`` views, the ground-truth ``target``, then one row of ``target``
    generated from ``given`` per model (``model.generate(..., sample_latent=False)``: MFM's surrogate
    inference, a translation baseline), then one row per reference (``name -> one example``, e.g. the
    training mean image, repeated in every column). Column ``j`` is example ``j`` of ``batch``."""
    given, modalities, n = _models_and_views(models, batch, given, target, n, "missing_modality_grid")
    inputs = {m: batch[m][:n] for m in given}
    rows = [(f"{m} (observed)", *_row(inputs[m], modalities[m], n)) for m in given]
    rows.append((f"{target} (missing: truth)", *_row(batch[target][:n], modalities[target], n)))
    for label, model in models.items():
        generated = model.generate(inputs, given=list(given), targets=[target], sample_latent=False)
        rows.append((label, *_row(generated[target], modalities[target], n)))
    for label, example in (references or {}).items():
        example = torch.as_tensor(example).reshape(1, *modalities[target].shape)
        rows.append((label, *_row(example.repeat(n, *([1] * (example.dim() - 1))), modalities[target], n)))
    return _rows_figure(rows, n, title or f"{target} missing, generated from {','.join(given)}")


def _series(values: Any) -> np.ndarray:
    """A contribution series as a 1-D array over time (a 2-D array is averaged over its first axis)."""
    array = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values, dtype=float)
    array = np.asarray(array, dtype=float)
    if array.ndim == 2:
        array = array.mean(axis=0)
    if array.ndim != 1:
        raise ValueError(f"a contribution over time is a sequence (T,) or (N, T), got shape {array.shape}")
    return array


def gradient_contributions_figure(
    contributions: Mapping[str, Any],
    ratios: Mapping[str, float] | None = None,
    informative: str | None = None,
    highlight: Sequence[bool] | None = None,
    title: str | None = None,
    ylabel: str = "||d x_hat_m[t] / d f_y||",
) -> Figure:
    """The paper's interpretation (sec. 4): right, the gradient-based contribution of the label factor
    to each generated modality at each time step (``contributions[m]``: (T,) or (N, T), averaged over
    N); left (when ``ratios`` is given), the information-based ratio of each modality. The modality
    made most informative by construction (``informative``) is marked in both panels; the time steps
    where ``highlight`` is true (e.g. those where the label acts, by construction) are shaded;
    ``ylabel`` names the contribution (e.g. with respect to the whitened factor)."""
    if not contributions:
        raise ValueError("gradient_contributions_figure needs the contributions of at least one modality")
    series = {m: _series(v) for m, v in contributions.items()}
    panels = 2 if ratios else 1
    fig = Figure(figsize=(4.2 * panels + 1.5, 3.4 + 0.3 * bool(title)), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False, width_ratios=[1, 2] if panels == 2 else None)[0]
    colours = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys([*series, *(ratios or {})]))}

    def name(m: str) -> str:
        return f"{m} (informative by construction)" if m == informative else m

    if ratios:
        ax = axes[0]
        keys = list(ratios)
        values = [float(ratios[m]) for m in keys]
        bars = ax.bar(
            range(len(keys)), [0.0 if math.isnan(v) else v for v in values], color=[colours[m] for m in keys]
        )
        for bar, m, v in zip(bars, keys, values, strict=True):
            bar.set_hatch("//" if m == informative else "")
            ax.annotate(
                "n/a" if math.isnan(v) else f"{v:.3g}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize="small",
            )
        ax.set_xticks(range(len(keys)), [f"{m}*" if m == informative else m for m in keys])
        ax.set_title("information-based ratio per modality", fontsize="medium")
        if informative is not None:
            ax.set_xlabel("* informative by construction")
    ax = axes[-1]
    for m, y in series.items():
        ax.plot(
            np.arange(1, len(y) + 1),
            y,
            marker="o",
            ms=3,
            color=colours[m],
            label=name(m),
            lw=2.5 if m == informative else 1.2,
        )
    if highlight is not None:
        for t, on in enumerate(highlight, start=1):
            if on:
                ax.axvspan(t - 0.5, t + 0.5, color="0.9", zorder=0, lw=0)
        ax.plot([], [], color="0.85", lw=6, label="steps where the label acts")
    ax.set_xlabel("time step t")
    ax.set_ylabel(ylabel)
    ax.set_title("gradient-based contribution of the label factor over time", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig
