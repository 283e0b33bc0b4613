"""Coloured shapes: a second, small ground-truth dataset, so metrics are not tuned to dSprites.

32x32 RGB images of one sprite on a black background, rendered procedurally with the dSprites
rasteriser (:func:`pixyz_zoo.datasets.dsprites.rasterize`), from five factors:

- shape (3): square, ellipse, heart (as in dSprites, Matthey et al. 2017);
- hue (8): ``k / 8`` of the colour wheel at full saturation and value (red, orange, ...);
- scale (4): linearly spaced in [0.5, 1];
- posX (8), posY (8): linearly spaced in [0, 1] (right and *down* as they grow).

No rotation. 6,144 combinations. Likelihood: ``bernoulli`` with the colour levels in [0, 1] as
targets (as disentanglement_lib does for colour images, cf. Higgins et al. 2017); the images are
never binarised (``binarize`` is ignored): a Bernoulli draw would destroy the colours, which are a
factor. Registered as ``colored-shapes`` (offline): 5,000 train / 1,000 test, disjoint subsets
of the grid drawn with seed 0 whatever the training seed.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from pixyz_zoo.datasets.dsprites import SHAPE_NAMES, render_sprites, split_size
from pixyz_zoo.datasets.ground_truth import GroundTruthData, GroundTruthDataset

COLORED_SHAPES_TRAIN_SIZE = 5_000
COLORED_SHAPES_TEST_SIZE = 1_000
SUBSET_SEED = 0


def hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """RGB ``(n, 3)`` in [0, 1] of hues in [0, 1) at full saturation and value."""
    h6 = 6.0 * np.asarray(hue, dtype=np.float64)[..., None]
    rgb = np.abs(h6 - np.array([3.0, 2.0, 4.0])) * np.array([1.0, -1.0, -1.0]) + np.array([-1.0, 2.0, 2.0])
    return np.clip(rgb, 0.0, 1.0)


class ColoredShapes(GroundTruthData):
    """32x32 RGB sprites from (shape, hue, scale, posX, posY); see the module docstring.

    One sprite unit is ``sprite_size = 0.4`` of the canvas times the scale (a square of 13 px at
    scale 1); the centre is at ``margin + pos * (1 - 2 margin)`` with ``margin = 0.25``.
    Deterministic: ``rng`` is not used.
    """

    name = "colored-shapes"
    factor_names = ("shape", "hue", "scale", "posX", "posY")
    factor_sizes = (len(SHAPE_NAMES), 8, 4, 8, 8)
    observation_shape = (3, 32, 32)
    likelihood = "bernoulli"

    sprite_size = 0.4
    margin = 0.25
    hues = np.arange(8) / 8.0
    scales = np.linspace(0.5, 1.0, 4)
    positions = np.linspace(0.0, 1.0, 8)

    @property
    def colors(self) -> np.ndarray:
        """RGB ``(8, 3)`` of the hue values."""
        return hue_to_rgb(self.hues)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """``(shape index, hue, scale, posX, posY)`` per row."""
        f = self.check_factors(factors)
        return np.stack(
            [
                f[:, 0].astype(np.float64),
                self.hues[f[:, 1]],
                self.scales[f[:, 2]],
                self.positions[f[:, 3]],
                self.positions[f[:, 4]],
            ],
            axis=1,
        )

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        f = self.check_factors(factors)
        masks = render_sprites(
            f[:, 0],
            self.positions[f[:, 3]],
            self.positions[f[:, 4]],
            self.sprite_size * self.scales[f[:, 2]],
            0.0,
            self.margin,
            self.observation_shape[1:],
        )
        colors = torch.from_numpy(self.colors[f[:, 1]].astype(np.float32))
        return masks[:, None] * colors[:, :, None, None]


def load_colored_shapes(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "none",
    seed: int = 0,
    download: bool = False,
    n: int | None = None,
) -> GroundTruthDataset:
    """Coloured shapes (offline): 5,000 train / 1,000 test, disjoint; ``n`` overrides the size.

    ``root``, ``binarize``, ``seed`` and ``download`` are ignored (see the module docstring).
    """
    size = split_size(split, n, COLORED_SHAPES_TRAIN_SIZE, COLORED_SHAPES_TEST_SIZE)
    return ColoredShapes().to_dataset(size, split, seed=SUBSET_SEED, binarize="none")
