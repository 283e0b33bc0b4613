"""Fake raw files in the published formats (test helper): MNIST idx files and SVHN ``.mat`` files
holding random images whose first pixel encodes the label, so tests can check the pairing; a tiny
CelebA folder (JPEGs, attribute and partition files)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from pixyz_zoo.datasets import multimodal_digits as md


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file (uint8) holding ``array``, gzip-compressed (the MNIST format)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def marked(labels: np.ndarray, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random uint8 images whose first pixel encodes the label (``20 * label + 10``)."""
    images = np.random.default_rng(seed).integers(0, 256, size=(len(labels), *shape), dtype=np.uint8)
    images.reshape(len(labels), -1)[:, 0] = 20 * labels + 10
    return images


def write_mnist_svhn(
    root: Path, split: str, labels_m: np.ndarray, labels_s: np.ndarray
) -> dict[str, np.ndarray]:
    """MNIST's ``MNIST/raw`` idx files and SVHN's ``SVHN/*_32x32.mat`` for ``split`` under ``root``
    (what ``mnist-svhn-text`` reads); returns the labels and the SVHN images (n, 3, 32, 32)."""
    import scipy.io

    prefix = {"train": "train", "test": "t10k"}[split]
    labels_m = np.asarray(labels_m, dtype=np.uint8)
    labels_s = np.asarray(labels_s, dtype=np.uint8)
    write_idx(root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte.gz", marked(labels_m, (28, 28), 1))
    write_idx(root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte.gz", labels_m)
    images_s = marked(labels_s, (3, 32, 32), 2)  # (n, channel, row, column)
    (root / "SVHN").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        root / "SVHN" / md.SVHN_FILES[split],
        {"X": images_s.transpose(2, 3, 1, 0), "y": np.where(labels_s == 0, 10, labels_s)[:, None]},  # 0 is 10
    )
    return {"labels_m": labels_m, "labels_s": labels_s, "images_s": images_s}


# ---------------------------------------------------------------------- CelebA
CELEBA_ATTRIBUTES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Bald", "Eyeglasses", "Male", "Smiling"]
RED, BLUE = (220, 20, 20), (20, 20, 220)


def face(width: int = 178, height: int = 218, crop: int = 148) -> np.ndarray:
    """Red inside the centred crop box, blue outside it."""
    array = np.empty((height, width, 3), dtype=np.uint8)
    array[:] = BLUE
    side = min(crop, width, height)
    left, top = (width - side) // 2, (height - side) // 2
    array[top : top + side, left : left + side] = RED
    return array


def write_celeba(
    root: Path, n: int = 9, partition: list[int] | None = None, sizes=None
) -> tuple[np.ndarray, list[str]]:
    """A tiny CelebA folder: ``n`` JPEGs, the attribute and partition files."""
    from PIL import Image

    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    values = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    partition = partition or [i % 3 for i in range(n)]
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        width, height = sizes[i] if sizes else (178, 218)
        Image.fromarray(face(width, height)).save(
            folder / "img_align_celeba" / name, quality=95, subsampling=0
        )
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES)]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, values, strict=True)]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (folder / "list_eval_partition.txt").write_text(
        "\n".join(f"{name} {p}" for name, p in zip(names, partition, strict=True)) + "\n"
    )
    return values, names
