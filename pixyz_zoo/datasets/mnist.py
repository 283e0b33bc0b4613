"""MNIST and Fashion-MNIST: 28x28 grey images with 10 classes, read from idx files.

Files are expected under the data root (``--data-root``, ``$PIXYZ_ZOO_DATA`` or ``./data``)::

    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

Uncompressed copies (the same names without ``.gz``) are read when the ``.gz`` is absent. The
md5 of each ``.gz`` file whose name is in the dataset's table (``MNIST_MD5``,
``FASHION_MNIST_MD5``) is checked; uncompressed copies are not checked (the known sums are those
of the published ``.gz`` files).

Datasets:

- ``mnist``: the standard 60,000 train / 10,000 test digits.
- ``mnist-10k``: only the real MNIST *test* split (the two ``t10k`` files), divided by a fixed
  permutation (seed 0) into 8,000 train / 2,000 test. It exists for machines that hold only the
  t10k files; its numbers are not comparable with papers' MNIST numbers.
- ``fashion-mnist``: the standard 60,000 / 10,000 Fashion-MNIST clothing images.

Nothing is downloaded unless ``download=True`` (``--download``), which asks torchvision to fetch
the files into the data root; they are then read with this project's idx reader.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pixyz_zoo.datasets.base import (
    DATA_ROOT_ENV,
    MultimodalDataset,
    fetch_with_torchvision,
    resolve_data_root,
)
from pixyz_zoo.datasets.digits import DIGIT_LABEL, split_indices
from pixyz_zoo.datasets.idx import IMAGES_MAGIC, LABELS_MAGIC, find_idx_file, load_idx
from pixyz_zoo.modalities import Modality

IMAGE_28X28 = Modality("x", (1, 28, 28), "bernoulli")
FASHION_MNIST_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_LABEL = Modality("y", (10,), "categorical", labels=FASHION_MNIST_LABELS)

#: split -> (images file, labels file), for both MNIST and Fashion-MNIST.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: Known md5 of the published files. The t10k sums were checked against real copies; the train
#: sums are the documented ones.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83fd310",
}
MNIST_DIR = "MNIST"
FASHION_MNIST_DIR = "FashionMNIST"
MNIST_10K_TEST = 2000


def raw_dir(root: str | os.PathLike, folder: str) -> Path:
    """Where the idx files of ``folder`` (``MNIST``, ``FashionMNIST``) live: ``root/folder/raw``."""
    return Path(root) / folder / "raw"


def _missing_message(dataset: str, split: str, root: Path, missing: list[Path], folder: str) -> str:
    env = os.environ.get(DATA_ROOT_ENV)
    env_note = f"currently {env!r}" if env else "currently unset"
    lines = [
        f"dataset {dataset!r} ({split} split) needs these files, which are missing:",
        *(f"  {path.absolute()}" for path in missing),
        "(uncompressed copies, the same names without '.gz', are accepted too).",
        f"Data root in use: {root} (absolute: {root.resolve()}).",
        f"Fix: put the files in {raw_dir(root, folder)}, or point the data root at a folder that "
        f"holds {folder}/raw/ with the `--data-root DIR` option (root=... in Python) or the "
        f"{DATA_ROOT_ENV} environment variable ({env_note}), or pass `--download` "
        "(download=True) to fetch them with torchvision (needs a network).",
    ]
    if dataset == "mnist" and split == "train":
        lines.append(
            "Only the MNIST test files (t10k-*) at hand? The dataset 'mnist-10k' splits them "
            "8,000 train / 2,000 test."
        )
    return "\n".join(lines)


def _download(torchvision_class: str, root: Path, train: bool) -> None:
    """Fetch the files with torchvision into ``root/<folder>/raw`` (the only network access)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, torchvision_class)
    folder = root / torchvision_class  # where torchvision puts them
    fetch_with_torchvision(
        lambda: cls(str(root), train=train, download=True),
        torchvision_class,
        root,
        "check the network, or copy the idx files there by hand",
        folders=(folder / "raw", folder, root),
    )


def read_split(
    dataset: str,
    folder: str,
    split: str,
    root: Path,
    md5s: dict[str, str],
    download: bool = False,
    torchvision_class: str = "MNIST",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(n, 1, 28, 28)`` in [0, 1] and one-hot labels ``(n, 10)`` of one split's files."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = raw_dir(root, folder)
    names = SPLIT_FILES[split]
    found = [find_idx_file(directory, name) for name in names]
    if download and None in found:
        _download(torchvision_class, root, train=split == "train")
        found = [find_idx_file(directory, name) for name in names]
    if None in found:
        missing = [directory / name for name, path in zip(names, found, strict=True) if path is None]
        raise FileNotFoundError(_missing_message(dataset, split, root, missing, folder))
    images_path, labels_path = found
    images = load_idx(images_path, IMAGES_MAGIC, md5s.get(images_path.name))
    labels = load_idx(labels_path, LABELS_MAGIC, md5s.get(labels_path.name))
    if images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: images of size {images.shape[1:]}, expected 28x28; is it the right "
            "file? Replace it with the dataset's original file"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels; the two files come from different splits or versions: replace them"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{labels_path}: labels range over {labels.min()}..{labels.max()}, expected 0..9; "
            "replace the file"
        )
    x = torch.from_numpy(images.astype(np.float32)[:, None] / np.float32(255.0))
    y = torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), 10).float()
    return x, y


def load_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
) -> MultimodalDataset:
    """MNIST (60,000 train / 10,000 test) as ``{"x": (1, 28, 28) image, "y": one-hot label}``."""
    root = resolve_data_root(root)
    x, y = read_split("mnist", MNIST_DIR, split, root, MNIST_MD5, download, "MNIST")
    return MultimodalDataset(
        "mnist",
        {"x": x, "y": y},
        {"x": IMAGE_28X28, "y": DIGIT_LABEL},
        binarize=binarize,
        seed=seed,
    )


def load_mnist_10k(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
) -> MultimodalDataset:
    """The real MNIST test split (t10k files) divided 8,000 train / 2,000 test (seed 0)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = resolve_data_root(root)
    x, y = read_split("mnist-10k", MNIST_DIR, "test", root, MNIST_MD5, download, "MNIST")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    idx = split_indices(order, MNIST_10K_TEST, split)
    return MultimodalDataset(
        "mnist-10k",
        {"x": x[idx], "y": y[idx]},
        {"x": IMAGE_28X28, "y": DIGIT_LABEL},
        binarize=binarize,
        seed=seed,
    )


def load_fashion_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
) -> MultimodalDataset:
    """Fashion-MNIST (60,000 / 10,000) as ``{"x": (1, 28, 28) image, "y": one-hot label}``."""
    root = resolve_data_root(root)
    x, y = read_split(
        "fashion-mnist", FASHION_MNIST_DIR, split, root, FASHION_MNIST_MD5, download, "FashionMNIST"
    )
    return MultimodalDataset(
        "fashion-mnist",
        {"x": x, "y": y},
        {"x": IMAGE_28X28, "y": FASHION_LABEL},
        binarize=binarize,
        seed=seed,
    )
