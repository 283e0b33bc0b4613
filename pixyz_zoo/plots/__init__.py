"""Figures: image grids, comparison rows, categorical heat maps and graphical models.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state) and returns
it; :func:`save_figure` writes it to disk. On a headless machine with no backend chosen, the
non-interactive Agg backend is selected; a backend chosen through ``MPLBACKEND``, a Jupyter kernel
(inline backend) or a desktop session is left alone.
"""

from __future__ import annotations

import os
import sys

import matplotlib


def _headless() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


if (
    not os.environ.get("MPLBACKEND")
    and "ipykernel" not in sys.modules
    and "matplotlib.pyplot" not in sys.modules  # a backend may already be in use
    and _headless()
):
    matplotlib.use("Agg")


def _enable_inline_display() -> None:
    """In a Jupyter kernel on the inline backend, let returned figures display as images.

    The zoo builds figures without pyplot, and IPython only learns to render a bare ``Figure``
    once the inline backend is activated (``%matplotlib inline``), which otherwise waits for the
    first pyplot figure. A backend the user picked (``%matplotlib widget``, ...) is left alone.
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
        try:
            backend = matplotlib.get_backend(auto_select=False)
        except TypeError:  # matplotlib < 3.10
            backend = matplotlib.get_backend()
        if shell is not None and backend in ("inline", "module://matplotlib_inline.backend_inline"):
            shell.run_line_magic("matplotlib", "inline")
    except Exception:  # display is a convenience; never fail an import over it
        pass


if "ipykernel" in sys.modules:
    _enable_inline_display()

from pixyz_zoo.plots.curves import training_curve  # noqa: E402
from pixyz_zoo.plots.graphical_model import (  # noqa: E402
    draw_graphical_model,
    graphical_model_edges,
)
from pixyz_zoo.plots.grids import (  # noqa: E402
    comparison_grid,
    image_grid,
    sample_grid,
    save_figure,
    tile_images,
)
from pixyz_zoo.plots.latents import (  # noqa: E402
    curves,
    decision_regions,
    latent_grid,
    latent_pca_figure,
    latent_scatter,
    principal_components,
)

__all__ = [
    "comparison_grid",
    "curves",
    "decision_regions",
    "latent_grid",
    "latent_pca_figure",
    "latent_scatter",
    "principal_components",
    "draw_graphical_model",
    "graphical_model_edges",
    "image_grid",
    "sample_grid",
    "save_figure",
    "tile_images",
    "training_curve",
]

from pixyz_zoo.plots.traversals import kl_bar_chart, kl_order, latent_traversal  # noqa: E402

__all__ += ["kl_bar_chart", "kl_order", "latent_traversal"]

from pixyz_zoo.plots.multimodal import cross_modal_grid, decode_text, subset_grids  # noqa: E402

__all__ += ["cross_modal_grid", "decode_text", "subset_grids"]

from pixyz_zoo.plots.reports import coherence_heatmap, coherence_matrix, metric_bars  # noqa: E402

__all__ += ["coherence_heatmap", "coherence_matrix", "metric_bars"]

from pixyz_zoo.plots.distillation import (  # noqa: E402
    generations_by_model,
    inference_accuracy_figure,
    metrics_by_steps_figure,
)

__all__ += ["generations_by_model", "inference_accuracy_figure", "metrics_by_steps_figure"]

from pixyz_zoo.plots.factors import (  # noqa: E402
    factor_swap_grid,
    factor_swap_images,
    gradient_contributions_figure,
    missing_modality_grid,
    swapped_pairs,
)

__all__ += [
    "factor_swap_grid",
    "factor_swap_images",
    "gradient_contributions_figure",
    "missing_modality_grid",
    "swapped_pairs",
]
