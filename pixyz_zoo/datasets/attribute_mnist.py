"""Attribute MNIST: digits 1 and 2 drawn on the left or the right half of a wide canvas.

The dataset of the Pixyz JMVAE article (``004_2e0be400c726cd51.txt`` in the shared papers): an
image ``x`` with two attributes, the position ``y1`` (left / right) and the digit ``y2`` (1 / 2),
so 2 x 2 = 4 combinations. The article names the construction only by a figure; here it is:

- the source digits are the 1s and 2s of a digit dataset, in their original order;
- each one is pasted, unchanged, into the left or the right half of a zero canvas twice as wide
  as the digit (``1 x 28 x 56`` for MNIST, ``1 x 8 x 16`` for the 8x8 digits): the left half is
  columns ``[0, W)``, the right half columns ``[W, 2W)``; the other half stays exactly 0;
- the half is drawn per digit with a fair coin from ``torch.Generator().manual_seed(layout_seed
  + split offset)`` (``LAYOUT_SEED = 0``; train and test use different streams), whatever the
  training seed, so the dataset is the same for every run.

Modalities: ``x`` (Bernoulli image, grey levels in [0, 1], binarised as configured), ``y1``
(categorical, labels ``left``/``right``) and ``y2`` (categorical, labels ``1``/``2``). The
4-way label of the plots is :func:`combined_label` (``2 * position + digit``, names
``COMBINED_LABELS``), computed from ``y1`` and ``y2`` so that it follows any subset or batch.

Registered datasets:

- ``attribute-mnist``: built on ``mnist-10k`` (the real MNIST t10k files, split 8,000 / 2,000 with
  seed 0): 1,740 train / 427 test images;
- ``attribute-mnist-full``: built on the standard MNIST splits (60,000 / 10,000 source digits):
  12,700 train / 2,167 test images;
- ``attribute-digits``: built on the bundled 8x8 digits, offline: 293 train / 66 test.
"""

from __future__ import annotations

import os

import torch

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.modalities import Modality

POSITION_LABELS = ("left", "right")
DIGIT_LABELS = ("1", "2")
COMBINED_LABELS = tuple(f"{p} {d}" for p in POSITION_LABELS for d in DIGIT_LABELS)
SOURCE_DIGITS = (1, 2)
LAYOUT_SEED = 0
_SPLIT_OFFSET = {"train": 0, "test": 1}
POSITION = Modality("y1", (2,), "categorical", labels=POSITION_LABELS)
DIGIT = Modality("y2", (2,), "categorical", labels=DIGIT_LABELS)
#: the image of ``attribute-mnist``: a 28x28 MNIST digit on a 28x56 canvas
MNIST_CANVAS = Modality("x", (1, 28, 56), "bernoulli")


def place_on_canvas(images: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Paste ``(n, c, h, w)`` images into the left (0) or right (1) half of ``(n, c, h, 2w)`` zeros."""
    n, c, h, w = images.shape
    canvas = images.new_zeros(n, c, h, 2 * w)
    left = positions == 0
    canvas[left, :, :, :w] = images[left]
    canvas[~left, :, :, w:] = images[~left]
    return canvas


def combined_label(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The 4-way class ``2 * position + digit`` of each example (names in ``COMBINED_LABELS``)."""
    return 2 * batch["y1"].argmax(1) + batch["y2"].argmax(1)


def make_attribute_dataset(
    name: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    split: str,
    binarize: str = "dynamic",
    seed: int = 0,
    layout_seed: int = LAYOUT_SEED,
) -> MultimodalDataset:
    """Attribute dataset from source digit ``images`` ``(n, 1, h, w)`` and one-hot ``labels``.

    Keeps the digits in ``SOURCE_DIGITS`` and places each on a random half (see the module
    docstring); ``seed`` only seeds a ``fixed`` binarisation.
    """
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    digit = labels.argmax(1)
    keep = torch.zeros_like(digit, dtype=torch.bool)
    for d in SOURCE_DIGITS:
        keep |= digit == d
    images, digit = images[keep], digit[keep]
    generator = torch.Generator().manual_seed(layout_seed + _SPLIT_OFFSET[split])
    positions = torch.randint(0, 2, (len(images),), generator=generator)
    digit_index = torch.zeros_like(digit)
    for i, d in enumerate(SOURCE_DIGITS):
        digit_index[digit == d] = i
    x = place_on_canvas(images, positions)
    _, c, h, w = x.shape
    return MultimodalDataset(
        name,
        {
            "x": x,
            "y1": torch.nn.functional.one_hot(positions, 2).float(),
            "y2": torch.nn.functional.one_hot(digit_index, 2).float(),
        },
        {"x": Modality("x", (c, h, w), "bernoulli"), "y1": POSITION, "y2": DIGIT},
        binarize=binarize,
        seed=seed,
    )


def load_attribute_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
    layout_seed: int = LAYOUT_SEED,
) -> MultimodalDataset:
    """``attribute-mnist``: 1s and 2s of ``mnist-10k`` (the real t10k files) on a 1x28x56 canvas."""
    from pixyz_zoo.datasets.mnist import load_mnist_10k

    source = load_mnist_10k(split, root=root, binarize="none", download=download)
    return make_attribute_dataset(
        "attribute-mnist", source.tensors["x"], source.tensors["y"], split, binarize, seed, layout_seed
    )


def load_attribute_mnist_full(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
    layout_seed: int = LAYOUT_SEED,
) -> MultimodalDataset:
    """``attribute-mnist-full``: 1s and 2s of the standard MNIST splits on a 1x28x56 canvas."""
    from pixyz_zoo.datasets.mnist import load_mnist

    source = load_mnist(split, root=root, binarize="none", download=download)
    return make_attribute_dataset(
        "attribute-mnist-full", source.tensors["x"], source.tensors["y"], split, binarize, seed, layout_seed
    )


def load_attribute_digits(
    split: str = "train",
    binarize: str = "dynamic",
    seed: int = 0,
    layout_seed: int = LAYOUT_SEED,
    **_: object,
) -> MultimodalDataset:
    """``attribute-digits``: 1s and 2s of the bundled 8x8 digits on a 1x8x16 canvas (offline)."""
    from pixyz_zoo.datasets.digits import load_digits

    source = load_digits(split, binarize="none")
    return make_attribute_dataset(
        "attribute-digits", source.tensors["x"], source.tensors["y"], split, binarize, seed, layout_seed
    )
