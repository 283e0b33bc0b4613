"""Datasets: every dataset yields dicts keyed by variable name, described by modalities.

``load_dataset(name, split)`` is the one entry point; ``DATASETS`` lists what is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pixyz_zoo.checks import check_integer, unknown_name
from pixyz_zoo.datasets.base import (
    BINARIZE_CHOICES,
    DATA_ROOT_ENV,
    MultimodalDataset,
    resolve_data_root,
)
from pixyz_zoo.datasets.colored_shapes import load_colored_shapes
from pixyz_zoo.datasets.digits import DIGIT_LABEL, DIGIT_LABELS, load_digits
from pixyz_zoo.datasets.dsprites import DSPRITES_IMAGE, load_dsprites, load_dsprites_procedural
from pixyz_zoo.datasets.ground_truth import GroundTruthData, GroundTruthDataset
from pixyz_zoo.datasets.mnist import (
    FASHION_LABEL,
    IMAGE_28X28,
    load_fashion_mnist,
    load_mnist,
    load_mnist_10k,
)
from pixyz_zoo.modalities import Modality


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    ``modalities`` and ``classes`` declare, for a dataset read from files, what its loader returns
    without reading them (``classes``: the names of the examples' classes, ``labels``; None when
    they carry none), so that a run is checked against the dataset before its files are read or
    fetched. None where they come from the files (CelebA's attribute names, CUB's vocabulary), and
    for offline datasets (loading them needs no file).
    """

    name: str
    description: str
    loader: Callable[..., MultimodalDataset]
    offline: bool  # usable without any downloaded file
    modalities: tuple[Modality, ...] | None = None
    classes: tuple[str, ...] | None = None

    def without_examples(self) -> MultimodalDataset | None:
        """The dataset with its declared modalities and classes and no examples (no file read), or
        None when it declares none."""
        if self.modalities is None:
            return None
        return MultimodalDataset.without_examples(self.name, self.modalities, self.classes)


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str,
    description: str,
    offline: bool = False,
    modalities: tuple[Modality, ...] | None = None,
    classes: tuple[str, ...] | None = None,
):
    """Decorator registering ``loader(split, root, binarize, seed, download)`` under ``name``
    (``modalities``, ``classes``: what the loader returns, declared for a dataset read from files,
    see :class:`DatasetInfo`)."""

    def wrap(loader: Callable[..., MultimodalDataset]) -> Callable[..., MultimodalDataset]:
        DATASETS[name] = DatasetInfo(name, description, loader, offline, modalities, classes)
        return loader

    return wrap


register_dataset(
    "digits", "scikit-learn's bundled 8x8 digits (1,438 train / 359 test), offline", offline=True
)(load_digits)
register_dataset(
    "mnist",
    "MNIST 28x28 digits (60,000 train / 10,000 test) from <root>/MNIST/raw/",
    modalities=(IMAGE_28X28, DIGIT_LABEL),
)(load_mnist)
register_dataset(
    "mnist-10k",
    "the real MNIST test split (t10k files in <root>/MNIST/raw/) divided 8,000 train / 2,000 test (seed 0)",
    modalities=(IMAGE_28X28, DIGIT_LABEL),
)(load_mnist_10k)
register_dataset(
    "fashion-mnist",
    "Fashion-MNIST 28x28 clothing (60,000 train / 10,000 test) from <root>/FashionMNIST/raw/",
    modalities=(IMAGE_28X28, FASHION_LABEL),
)(load_fashion_mnist)
register_dataset(
    "dsprites",
    "dSprites 64x64 sprites (Matthey et al. 2017) from <root>/dsprites/"
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz: seeded disjoint subsets of the 737,280-image "
    "factor grid, 20,000 train / 2,000 test; .factors and .ground_truth attached",
    modalities=(DSPRITES_IMAGE,),
)(load_dsprites)
register_dataset(
    "dsprites-procedural",
    "procedurally rendered dSprites (same factor grid, approximate pixels), 20,000 train / "
    "2,000 test, offline; .factors and .ground_truth attached",
    offline=True,
)(load_dsprites_procedural)
register_dataset(
    "colored-shapes",
    "32x32 RGB shapes from shape 3 x hue 8 x scale 4 x posX 8 x posY 8, 5,000 train / 1,000 "
    "test, offline; .factors and .ground_truth attached",
    offline=True,
)(load_colored_shapes)


def load_dataset(
    name: str,
    split: str = "train",
    root: str | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
) -> MultimodalDataset:
    """Load split ``train`` or ``test`` of a registered dataset.

    Args:
        root: data root (default ``$PIXYZ_ZOO_DATA`` or ``./data``).
        binarize: ``dynamic``, ``fixed`` or ``none`` for Bernoulli image modalities.
        download: allow torchvision to download missing files (the only network access).
    """
    if name not in DATASETS:
        raise KeyError(unknown_name("dataset", name, DATASETS))
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    seed = check_integer(seed, "seed", 0)
    return DATASETS[name].loader(
        split=split, root=resolve_data_root(root), binarize=binarize, seed=seed, download=download
    )


__all__ = [
    "BINARIZE_CHOICES",
    "DATASETS",
    "DATA_ROOT_ENV",
    "DatasetInfo",
    "GroundTruthData",
    "GroundTruthDataset",
    "MultimodalDataset",
    "load_dataset",
    "register_dataset",
    "resolve_data_root",
]

# ---------------------------------------------------------------- attribute MNIST and CelebA
from pixyz_zoo.datasets.attribute_mnist import (  # noqa: E402
    DIGIT,
    MNIST_CANVAS,
    POSITION,
    load_attribute_digits,
    load_attribute_mnist,
    load_attribute_mnist_full,
)
from pixyz_zoo.datasets.attribute_shapes import load_attribute_shapes  # noqa: E402
from pixyz_zoo.datasets.celeba import load_celeba  # noqa: E402

register_dataset(
    "attribute-mnist",
    "MNIST 1s and 2s of mnist-10k (t10k files in <root>/MNIST/raw/) on the left or right half of "
    "a 1x28x56 canvas: x, position y1 (left/right), digit y2 (1/2); 1,740 train / 427 test",
    modalities=(MNIST_CANVAS, POSITION, DIGIT),
)(load_attribute_mnist)
register_dataset(
    "attribute-mnist-full",
    "attribute-mnist built on the standard MNIST splits (<root>/MNIST/raw/): 12,700 train / 2,167 test",
    modalities=(MNIST_CANVAS, POSITION, DIGIT),
)(load_attribute_mnist_full)
register_dataset(
    "attribute-digits",
    "the bundled 8x8 digits' 1s and 2s on the left or right half of a 1x8x16 canvas: x, y1 "
    "(left/right), y2 (1/2); 293 train / 66 test, offline",
    offline=True,
)(load_attribute_digits)
register_dataset(
    "celeba",
    "CelebA aligned faces x (3x32x32, centre crop 148, in [-1, 1]) with 40 attributes w in "
    "{-1, 1}, official partition 162,770 train / 19,962 test, from <root>/celeba/",
)(load_celeba)
register_dataset(
    "attribute-shapes",
    "CelebA-form stand-in: rendered scenes x (3x32x32, in [-1, 1]) with 16 named, partly correlated "
    "attributes w in {-1, 1} (shape, colour, size, position, tilt, stripes, background, ...); "
    "10,000 train / 2,000 test, offline",
    offline=True,
)(load_attribute_shapes)

# ---------------------------------------------------------------- CUB Image-Captions
from pixyz_zoo.datasets.cub import load_cub  # noqa: E402

register_dataset(
    "cub",
    "CUB Image-Captions (MMVAE): bird images x (3x64x64, [0, 1], laplace) with captions t (32 "
    "one-hot words, vocabulary from the train captions), 150 / 50 disjoint bird classes, one caption "
    "per image by default: 8,855 train / 2,933 test, from <root>/cub/",
)(load_cub)

# ---------------------------------------------------------------- multimodal digits (m, s, t; PolyMNIST)
from pixyz_zoo.datasets.multimodal_digits import (  # noqa: E402
    MNIST_DIGIT,
    STREET_DIGIT,
    TEXT,
    load_mnist_svhn_text,
    load_polydigits,
    load_polymnist_mnist,
    load_trimodal_digits,
    load_trimodal_mnist,
    polymnist_modality,
)

register_dataset(
    "mnist-svhn-text",
    "MNIST-SVHN-Text (Shi et al. 2019, Sutter et al. 2020): MNIST m (1x28x28), SVHN s (3x32x32, "
    "laplace), text t (8x71) of the same digit, paired per class by random permutations (1 repeat: "
    "56,068 train / 10,000 test; the papers' 20 repeats are 1.1M pairs, ~20 GB), from "
    "<root>/MNIST/raw/ and <root>/SVHN/{train,test}_32x32.mat",
    modalities=(MNIST_DIGIT, STREET_DIGIT, TEXT),
    classes=DIGIT_LABELS,
)(load_mnist_svhn_text)
register_dataset(
    "trimodal-mnist",
    "offline MNIST-SVHN-Text stand-in from mnist-10k (t10k files in <root>/MNIST/raw/): real m "
    "(1x28x28), s = another real digit of the class rendered SVHN-like (3x32x32, textured, "
    "laplace), text t (8x71); 8,000 train / 2,000 test",
    modalities=(MNIST_DIGIT, STREET_DIGIT, TEXT),
    classes=DIGIT_LABELS,
)(load_trimodal_mnist)
register_dataset(
    "trimodal-digits",
    "the same stand-in from the bundled 8x8 digits: m (1x8x8), s (3x32x32), t (8x71); 1,438 train / "
    "359 test, offline",
    offline=True,
)(load_trimodal_digits)
register_dataset(
    "polymnist",
    "PolyMNIST-style (Sutter et al. 2021) from mnist-10k (t10k files in <root>/MNIST/raw/): 5 "
    "modalities m0..m4 (3x28x28, laplace), each a different real digit of the class on its own "
    "texture; 8,000 train / 2,000 test",
    modalities=tuple(polymnist_modality(f"m{k}", 28) for k in range(5)),
    classes=DIGIT_LABELS,
)(load_polymnist_mnist)
register_dataset(
    "polydigits",
    "PolyMNIST-style from the bundled 8x8 digits: 5 modalities m0..m4 (3x8x8, laplace); 1,438 "
    "train / 359 test, offline",
    offline=True,
)(load_polydigits)

# ---------------------------------------------------------------- generated multimodal sequences
from pixyz_zoo.datasets.sequences import load_multimodal_sequences  # noqa: E402

register_dataset(
    "multimodal-sequences",
    "generated multimodal time series (Tsai et al. 2019's l, a, v streams): l (12x6), a (12x4), v "
    "(12x5), gaussian, and the class y (4); label on the middle steps, strongest in a (the "
    "informative modality); per-modality styles known (.styles); 2,000 train / 500 test, offline",
    offline=True,
)(load_multimodal_sequences)
