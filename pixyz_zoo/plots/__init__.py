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

__all__ = [
    "comparison_grid",
    "draw_graphical_model",
    "graphical_model_edges",
    "image_grid",
    "sample_grid",
    "save_figure",
    "tile_images",
]
