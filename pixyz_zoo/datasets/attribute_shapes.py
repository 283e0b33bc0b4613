"""Attribute shapes: an offline image-attribute dataset in CelebA's form (a stand-in for CelebA).

Each example is a procedurally rendered 32x32 RGB scene ``x`` and a vector ``w`` of 16 named
binary attributes that describe it, exactly as :func:`~pixyz_zoo.datasets.celeba.load_celeba`
gives faces and their 40 attributes: ``x`` of shape ``(3, 32, 32)``, likelihood ``gaussian``,
values in [-1, 1]; ``w`` of shape ``(16,)``, likelihood ``gaussian``, values in {-1, 1}, with the
attribute names as the modality's ``labels`` and the dataset's ``.attribute_names``. So every
CelebA code path (attribute conditioning, attribute editing, the per-attribute plots) runs
without the CelebA files.

What is rendered (sprites drawn with the dSprites rasteriser
:func:`pixyz_zoo.datasets.dsprites.rasterize`, hues as in
:mod:`pixyz_zoo.datasets.colored_shapes`), and the attribute that says so:

- ``Square`` / ``Ellipse`` / ``Heart``: the sprite's shape (exactly one is 1);
- ``Red`` / ``Green`` / ``Blue``: its hue; a yellow sprite has all three at -1 (at most one is 1);
- ``Large``: sprite unit 0.50-0.58 of the canvas (16-19 px squares), else 0.32-0.38 (10-12 px);
- ``Right``, ``Bottom``: the quadrant of its centre;
- ``Tilted``: turned by 45 degrees counter-clockwise (give or take 8 degrees; else by at most 8);
- ``Striped``: dark horizontal stripes (2 px on, 2 px off) across the sprite;
- ``Outlined``: a 1-pixel contour around the sprite, white on a dark background, black on a bright one;
- ``Bright_Background``: a light background (grey level 0.35-0.55), else dark (-0.75 to -0.55);
- ``Second_Object``: a small disc (radius 2.2-2.8 px, background-contrasting) in the opposite quadrant;
- ``Framed``: a magenta frame 2 pixels wide along the image border;
- ``Blurry``: the whole scene blurred (Gaussian, sigma 1 pixel) before the noise is added.

Marginal probabilities: each shape 1/3; ``Large``, ``Right``, ``Bottom`` 0.5; ``Tilted`` 0.3;
``Bright_Background`` 0.4; ``Second_Object`` 0.3; ``Framed`` 0.2; ``Blurry`` 0.15.

Correlations, as real attributes have them (CelebA: ``Bald`` only with ``Male``, ``Heavy_Makeup``
mostly with ``Wearing_Lipstick``); ``test_attribute_shapes.py`` measures them on the data:

- hearts are mostly red: ``P(Red | Heart) = 0.8`` (the other three hues 1/15 each), against
  ``P(Red | not Heart) = 0.25`` (the four hues uniform);
- hearts are never striped: ``P(Striped | Heart) = 0``, ``P(Striped | not Heart) = 0.4``;
- outlines go with bright backgrounds: ``P(Outlined | Bright_Background) = 0.7``, against
  ``P(Outlined | not Bright_Background) = 0.2``;
- the shape and the hue attributes are mutually exclusive groups (like CelebA's hair colours).

What is *not* an attribute (the "style" a model must take from the image itself, as faces vary
beyond their 40 attributes): the exact position inside the quadrant, the exact size inside its
class, a small rotation (up to 8 degrees either way), the hue (+-0.03 of the colour wheel) and
brightness (value 0.75-1) of the sprite, the stripes' phase, the background's grey level, a linear
gradient across it (amplitude up to 0.15, any direction) and its tint (+-0.05 per channel), the
size and place of the disc, and pixel noise (standard deviation 0.05; the result is clipped to
[-1, 1]).

Every attribute is visible: a small convolutional classifier trained on 8,000 training images
predicts each one on 1,000 test images with accuracy >= 0.965 (the shapes the hardest; measured by
``tests/test_attribute_shapes.py``).

Splits: 10,000 train / 2,000 test, drawn from seeds ``(SUBSET_SEED, split)`` whatever the training
seed, so runs with different seeds see the same data and the splits are disjoint draws; ``n=``
takes the first ``n`` examples of a split's stream (a prefix of the default split). Generation is
vectorised: both default splits load in 1.1-1.6 s on one core of a busy 2-core machine (measured with
``load_attribute_shapes``, ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.datasets.colored_shapes import hue_to_rgb
from pixyz_zoo.datasets.dsprites import SHAPE_NAMES, rasterize, split_size
from pixyz_zoo.modalities import Modality

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Square",
    "Ellipse",
    "Heart",
    "Red",
    "Green",
    "Blue",
    "Large",
    "Right",
    "Bottom",
    "Tilted",
    "Striped",
    "Outlined",
    "Bright_Background",
    "Second_Object",
    "Framed",
    "Blurry",
)
#: Three attributes whose change is clearly visible (the editing figures set them, as the JMVAE
#: paper sets Male, Bald and Smiling).
SHOWCASE_ATTRIBUTES: tuple[str, str, str] = ("Bright_Background", "Red", "Framed")

ATTRIBUTE_SHAPES_TRAIN_SIZE = 10_000
ATTRIBUTE_SHAPES_TEST_SIZE = 2_000
IMAGE_SIZE = 32
#: The splits are drawn from this seed (with the split's index), whatever the training seed.
SUBSET_SEED = 0
_SPLIT_INDEX = {"train": 0, "test": 1}

_A = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}
SHAPE_ATTRIBUTES = ("Square", "Ellipse", "Heart")
COLOR_ATTRIBUTES = ("Red", "Green", "Blue")
#: Hue (fraction of the colour wheel) of each colour; a sprite with no colour attribute is yellow.
HUES = {"Red": 0.0, "Green": 1.0 / 3.0, "Blue": 2.0 / 3.0, "Yellow": 1.0 / 6.0}
MARGINALS = {
    "Large": 0.5,
    "Right": 0.5,
    "Bottom": 0.5,
    "Tilted": 0.3,
    "Bright_Background": 0.4,
    "Second_Object": 0.3,
    "Framed": 0.2,
    "Blurry": 0.15,
}
P_RED_GIVEN_HEART = 0.8
P_STRIPED_GIVEN_NOT_HEART = 0.4
P_OUTLINED_GIVEN_BRIGHT = 0.7
P_OUTLINED_GIVEN_DARK = 0.2
FRAME_COLOR = (0.8, -0.8, 0.8)  # magenta, in [-1, 1]
FRAME_WIDTH = 2
NOISE_STD = 0.05
BLUR_SIGMA = 1.0
RENDER_BLOCK = 1000
STYLE_DIM = 16  # uniforms per example that set the style (see render_scenes)
ATTRIBUTE_UNIFORMS = 12  # uniforms per example that set the attributes (see sample_attributes)

assert tuple(SHAPE_NAMES) == ("square", "ellipse", "heart")  # the rasteriser's shape order


def sample_attributes(uniforms: np.ndarray) -> np.ndarray:
    """Attributes ``(n, 16)`` (bool) from uniforms ``(n, 12)`` in [0, 1), with the module's correlations."""
    u = np.asarray(uniforms, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != ATTRIBUTE_UNIFORMS:
        raise ValueError(f"expected uniforms of shape (n, {ATTRIBUTE_UNIFORMS}), got {u.shape}")
    n = len(u)
    out = np.zeros((n, len(ATTRIBUTE_NAMES)), dtype=bool)
    shape = np.minimum((u[:, 0] * 3).astype(np.int64), 2)
    heart = shape == 2
    out[np.arange(n), shape] = True  # Square, Ellipse, Heart are the first three columns
    # colour index: 0 red, 1 green, 2 blue, 3 yellow (no colour attribute)
    uniform_color = np.minimum((u[:, 1] * 4).astype(np.int64), 3)
    other = ((u[:, 1] - P_RED_GIVEN_HEART) / (1.0 - P_RED_GIVEN_HEART) * 3).astype(np.int64)
    heart_color = np.where(u[:, 1] < P_RED_GIVEN_HEART, 0, 1 + np.clip(other, 0, 2))
    color = np.where(heart, heart_color, uniform_color)
    for k, name in enumerate(COLOR_ATTRIBUTES):
        out[:, _A[name]] = color == k
    for k, (name, p) in enumerate(MARGINALS.items()):
        out[:, _A[name]] = u[:, 2 + k] < p
    out[:, _A["Striped"]] = ~heart & (u[:, 10] < P_STRIPED_GIVEN_NOT_HEART)
    p_outlined = np.where(out[:, _A["Bright_Background"]], P_OUTLINED_GIVEN_BRIGHT, P_OUTLINED_GIVEN_DARK)
    out[:, _A["Outlined"]] = u[:, 11] < p_outlined
    return out


def _blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur (5 taps, edges replicated) of ``(n, 3, H, W)`` images."""
    taps = torch.exp(-0.5 * (torch.arange(-2, 3, dtype=torch.float32) / sigma) ** 2)
    taps = (taps / taps.sum()).tolist()
    height, width = images.shape[-2:]
    padded = F.pad(images, (2, 2, 0, 0), mode="replicate")
    rows = sum(t * padded[..., k : k + width] for k, t in enumerate(taps))
    padded = F.pad(rows, (0, 0, 2, 2), mode="replicate")
    return sum(t * padded[..., k : k + height, :] for k, t in enumerate(taps))


def _dilate(masks: torch.Tensor) -> torch.Tensor:
    """Boolean ``(n, H, W)`` masks grown by one pixel (the 8 neighbours)."""
    height, width = masks.shape[-2:]
    padded = F.pad(masks, (1, 1, 1, 1))
    out = masks.clone()
    for i in range(3):
        for j in range(3):
            out |= padded[:, i : i + height, j : j + width]
    return out


def render_scenes(
    attributes: np.ndarray | torch.Tensor,
    style: np.ndarray | torch.Tensor,
    noise: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Images ``(n, 3, 32, 32)`` in [-1, 1] of the attributes ``(n, 16)`` (bool, or {-1, 1}).

    ``style`` ``(n, 16)`` uniforms in [0, 1) set everything the attributes leave open (see the
    module docstring): size in class (column 0), position in quadrant (1, 2), rotation (3), hue
    and value (4, 5), stripe phase (6), background level, gradient amplitude and direction (7, 8,
    9), tint (10-12), disc radius and position (13-15). ``noise``
    ``(n, 3, 32, 32)`` standard normal draws, scaled by ``NOISE_STD`` (None: no noise).
    """
    a = torch.as_tensor(np.asarray(attributes) if not torch.is_tensor(attributes) else attributes)
    a = a > 0
    s = torch.as_tensor(np.asarray(style) if not torch.is_tensor(style) else style).to(torch.float32)
    k = len(ATTRIBUTE_NAMES)
    if a.ndim != 2 or a.shape[1] != k or s.shape != (a.shape[0], STYLE_DIM):
        raise ValueError(
            f"expected attributes (n, {k}) and style (n, {STYLE_DIM}), "
            f"got {tuple(a.shape)} and {tuple(s.shape)}"
        )
    shapes = a[:, : len(SHAPE_ATTRIBUTES)]
    colors = a[:, [_A[c] for c in COLOR_ATTRIBUTES]]
    if not (shapes.sum(1) == 1).all() or (colors.sum(1) > 1).any():
        raise ValueError(
            f"each scene needs exactly one of {SHAPE_ATTRIBUTES} and at most one of {COLOR_ATTRIBUTES} "
            "(none: yellow); fix the attribute vectors"
        )
    n, side = a.shape[0], IMAGE_SIZE

    def col(name: str) -> torch.Tensor:
        return a[:, _A[name]]

    # the sprite: shape, size, position, rotation
    size = torch.where(col("Large"), 0.5 + 0.08 * s[:, 0], 0.32 + 0.06 * s[:, 0])
    cx = torch.where(col("Right"), 0.68, 0.22) + 0.1 * s[:, 1]
    cy = torch.where(col("Bottom"), 0.68, 0.22) + 0.1 * s[:, 2]
    angle = torch.where(col("Tilted"), math.pi / 4, 0.0) + math.radians(8) * (2 * s[:, 3] - 1)
    mask = rasterize(shapes.float().argmax(1), torch.stack([cx, cy], 1), size, angle, side, dtype=torch.bool)
    # its colour
    hue = torch.full((n,), HUES["Yellow"])
    for name in COLOR_ATTRIBUTES:
        hue = torch.where(col(name), HUES[name], hue)
    hue = (hue + 0.06 * (s[:, 4] - 0.5)) % 1.0
    rgb = torch.from_numpy(hue_to_rgb(hue.numpy()).astype(np.float32)) * (0.75 + 0.25 * s[:, 5:6])
    color = (2.0 * rgb - 1.0)[:, :, None, None]
    # the background: grey level, gradient, tint
    bright = col("Bright_Background")
    level = torch.where(bright, 0.35, -0.75) + 0.2 * s[:, 7]
    theta = 2.0 * math.pi * s[:, 9]
    amplitude = 0.15 * s[:, 8]
    grid = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) / (side / 2)
    gradient = amplitude[:, None, None] * (
        torch.cos(theta)[:, None, None] * grid[None, None, :]
        + torch.sin(theta)[:, None, None] * grid[None, :, None]
    )
    tint = 0.1 * (s[:, 10:13] - 0.5)
    image = (level[:, None, None] + gradient)[:, None] + tint[:, :, None, None]
    contrast = torch.where(bright, -0.9, 0.9)[:, None, None, None]
    # the second object (a disc in the quadrant opposite the sprite) and the outline, both in
    # the colour that contrasts with the background
    marks = torch.zeros(n, side, side, dtype=torch.bool)
    which = col("Second_Object").nonzero().squeeze(1)
    if len(which):
        centre = (torch.arange(side, dtype=torch.float32) + 0.5) / side
        sw = s[which]
        dx = torch.where(col("Right")[which], 0.2, 0.8) + 0.1 * (sw[:, 14] - 0.5)
        dy = torch.where(col("Bottom")[which], 0.2, 0.8) + 0.1 * (sw[:, 15] - 0.5)
        radius = (2.2 + 0.6 * sw[:, 13]) / side
        distance2 = (centre[None, None, :] - dx[:, None, None]) ** 2 + (
            centre[None, :, None] - dy[:, None, None]
        ) ** 2
        marks[which] = distance2 <= radius[:, None, None] ** 2
    which = col("Outlined").nonzero().squeeze(1)
    if len(which):
        marks[which] |= _dilate(mask[which]) & ~mask[which]
    image = torch.where(marks[:, None], contrast, image)
    # the sprite, striped or not
    phase = (s[:, 6] * 4).long().clamp(max=3)
    dark_rows = ((torch.arange(side)[None, :] + phase[:, None]) // 2) % 2 == 1
    stripes = (dark_rows & col("Striped")[:, None])[:, None, :, None]
    sprite = torch.where(stripes, -1.0 + 0.3 * (color + 1.0), color)
    image = torch.where(mask[:, None], sprite, image)
    # the frame
    which = col("Framed").nonzero().squeeze(1)
    if len(which):
        border = torch.ones(side, side, dtype=torch.bool)
        border[FRAME_WIDTH:-FRAME_WIDTH, FRAME_WIDTH:-FRAME_WIDTH] = False
        image[which] = torch.where(border, torch.tensor(FRAME_COLOR)[:, None, None], image[which])
    # blur, noise
    blurry = col("Blurry").nonzero().squeeze(1)
    if len(blurry):
        image[blurry] = _blur(image[blurry])
    if noise is not None:
        noise = torch.as_tensor(np.asarray(noise) if not torch.is_tensor(noise) else noise)
        image.add_(noise.to(torch.float32), alpha=NOISE_STD)
    return image.clamp_(-1.0, 1.0).contiguous()


def generate_attribute_shapes(n: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of ``split``: attributes ``(n, 16)`` (bool) and images ``(n, 3, 32, 32)``.

    Random streams seeded with ``(SUBSET_SEED, split index, stream)``: the attributes and the
    style drawn row by row, the noise by blocks of ``RENDER_BLOCK`` examples; so a smaller ``n``
    gives a prefix of a larger one. Rendered by blocks (fast: the temporaries stay small).
    """
    if split not in _SPLIT_INDEX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n < 1:
        raise ValueError(f"n must be a positive number of examples, got {n}")
    key = [SUBSET_SEED, _SPLIT_INDEX[split]]
    attributes = sample_attributes(np.random.default_rng([*key, 0]).random((n, ATTRIBUTE_UNIFORMS)))
    attributes = torch.from_numpy(attributes)
    style = torch.from_numpy(np.random.default_rng([*key, 1]).random((n, STYLE_DIM)))
    images = torch.empty(n, 3, IMAGE_SIZE, IMAGE_SIZE)
    generator = torch.Generator()
    for block, start in enumerate(range(0, n, RENDER_BLOCK)):
        stop = min(start + RENDER_BLOCK, n)
        # the noise of a block is always drawn whole, so that a prefix of the split is a prefix here too
        generator.manual_seed(int(np.random.SeedSequence([*key, 2, block]).generate_state(1)[0]))
        noise = torch.randn(RENDER_BLOCK, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)[: stop - start]
        images[start:stop] = render_scenes(attributes[start:stop], style[start:stop], noise)
    return attributes, images


def load_attribute_shapes(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "none",
    seed: int = 0,
    download: bool = False,
    n: int | None = None,
) -> MultimodalDataset:
    """Attribute shapes (offline): ``{"x": (3, 32, 32) in [-1, 1], "w": (16,) in {-1, 1}}``.

    10,000 train / 2,000 test, disjoint draws; ``n`` takes the first ``n`` of the split instead.
    ``root``, ``seed`` and ``download`` are ignored (the data are drawn from ``SUBSET_SEED``);
    ``binarize`` is checked and has no effect (both modalities are Gaussian).
    """
    size = split_size(split, n, ATTRIBUTE_SHAPES_TRAIN_SIZE, ATTRIBUTE_SHAPES_TEST_SIZE)
    attributes, x = generate_attribute_shapes(size, split)
    data = MultimodalDataset(
        "attribute-shapes",
        {"x": x, "w": attributes.float() * 2.0 - 1.0},
        {
            "x": Modality("x", (3, IMAGE_SIZE, IMAGE_SIZE), "gaussian"),
            "w": Modality("w", (len(ATTRIBUTE_NAMES),), "gaussian", labels=ATTRIBUTE_NAMES),
        },
        binarize=binarize,
        seed=seed,
    )
    data.attribute_names = ATTRIBUTE_NAMES
    return data
