"""scikit-learn's bundled 8x8 handwritten digits: the offline default dataset.

1,797 real digits (UCI optdigits test set), grey levels 0-16 scaled to [0, 1]. A fixed
permutation (seed 0) holds out 20% (359 digits) as the test split.
"""

from __future__ import annotations

import torch

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.modalities import Modality

DIGIT_LABELS = tuple(str(i) for i in range(10))
IMAGE_8X8 = Modality("x", (1, 8, 8), "bernoulli")
DIGIT_LABEL = Modality("y", (10,), "categorical", labels=DIGIT_LABELS)
TEST_FRACTION = 0.2


def load_digits(split: str = "train", binarize: str = "dynamic", seed: int = 0, **_: object):
    """Load the bundled digits as ``{"x": (1, 8, 8) image, "y": one-hot label}``."""
    from sklearn.datasets import load_digits as sk_load_digits

    data = sk_load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.nn.functional.one_hot(torch.tensor(data.target), 10).float()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = int(round(TEST_FRACTION * len(images)))
    idx = split_indices(order, n_test, split)
    return MultimodalDataset(
        "digits",
        {"x": images[idx], "y": labels[idx]},
        {"x": IMAGE_8X8, "y": DIGIT_LABEL},
        binarize=binarize,
        seed=seed,
    )


def split_indices(order: torch.Tensor, n_test: int, split: str) -> torch.Tensor:
    """Train = all but the last ``n_test`` of ``order``, test = the last ``n_test``."""
    if split == "train":
        return order[: len(order) - n_test]
    if split == "test":
        return order[len(order) - n_test :]
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
