"""CelebA (Liu et al. 2015): aligned face images ``x`` with 40 binary attributes ``w``.

The JMVAE paper (Suzuki & Matsuo, sec. 4.1-4.2) uses ``x`` in R^{32x32x3} and ``w`` in
{-1, 1}^40, both with Gaussian decoders of unit variance whose means go through a tanh. So:

- ``x``: shape ``(3, 32, 32)``, likelihood ``gaussian``, values scaled to [-1, 1]
  (``pixel / 127.5 - 1``). Preprocessing: a centred square crop of side 148 pixels (the aligned
  178x218 images give the box ``left=15, top=35, right=163, bottom=183``; images smaller than 148
  use their shorter side), then a bilinear (antialiased) resize to 32x32 with PIL. The paper
  crops around the face detected by OpenCV and keeps 191,899 images; the aligned images are
  already centred on the face, so the fixed centre crop stands in for the detector and keeps all
  202,599 images. (The paper's sec. 4.1 mentions a 64x64 resize; ``image_size=64`` gives it.)
- ``w``: shape ``(40,)``, likelihood ``gaussian``, values in {-1, 1} as in the attribute file.
  The 40 attribute names are the modality's ``labels`` (read by the plots as tick names) and
  the dataset's ``.attribute_names``.

Splits: the official ``list_eval_partition.txt``: ``train`` = partition 0 (162,770 images),
``test`` = partition 2 (19,962); ``load_celeba(split="valid")`` gives partition 1 (19,867). The
paper used a random 90/10 split instead, so its numbers are not exactly comparable.

Expected files (the layout torchvision's ``CelebA`` writes) under the data root::

    <root>/celeba/img_align_celeba/000001.jpg ... 202599.jpg
    <root>/celeba/list_attr_celeba.txt       line 1: count, line 2: 40 names, then
                                             "000001.jpg -1  1  1 ..." one line per image
    <root>/celeba/list_eval_partition.txt    "000001.jpg 0" (0 train, 1 valid, 2 test)

Decoding 202,599 JPEGs takes minutes, so the first load decodes every image once and writes the
preprocessed uint8 images, attributes and partition to ``<root>/celeba/celeba_32.pt`` (atomically;
``celeba_<size>.pt`` for other sizes), which later loads read with
``torch.load(weights_only=True)``; the cache is rebuilt when the file list, size or crop differ.
With ``cache=False`` only the requested split is decoded and nothing is written. A split is held
in memory as float32 (the train split: 162,770 x 3 x 32 x 32 x 4 bytes = 2.0 GB).
:func:`load_celeba_image` decodes one image on demand.

``download=True`` asks torchvision's ``CelebA`` to fetch the files (Google Drive; it needs the
``gdown`` package and often fails on the drive's download quota); otherwise nothing touches the
network.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixyz_zoo.datasets.base import (
    DATA_ROOT_ENV,
    MultimodalDataset,
    fetch_with_torchvision,
    resolve_data_root,
)
from pixyz_zoo.modalities import Modality

CELEBA_DIR = "celeba"
IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
CROP = 148
IMAGE_SIZE = 32
CACHE_FORMAT = 1
SPLITS = {"train": 0, "valid": 1, "test": 2}


@dataclass(frozen=True)
class CelebAIndex:
    """The two text files: file names, attributes ``(n, 40)`` in {-1, 1}, partition ``(n,)``."""

    filenames: list[str]
    attribute_names: tuple[str, ...]
    attributes: torch.Tensor  # int8
    partition: torch.Tensor  # uint8


def celeba_dir(root: str | os.PathLike) -> Path:
    return Path(root) / CELEBA_DIR


def _missing_message(root: Path, missing: list[Path]) -> str:
    env = os.environ.get(DATA_ROOT_ENV)
    env_note = f"currently {env!r}" if env else "currently unset"
    folder = celeba_dir(root)
    return "\n".join(
        [
            "dataset 'celeba' needs these files, which are missing:",
            *(f"  {path.absolute()}" for path in missing),
            f"Data root in use: {root} (absolute: {root.resolve()}).",
            f"Fix: put the aligned CelebA images in {folder / IMAGE_DIR}/ (000001.jpg ...) and "
            f"{ATTR_FILE}, {PARTITION_FILE} in {folder}/ (the files of the official CelebA site, "
            "'Align&Cropped Images' and 'Anno' / 'Eval'), or point the data root at a folder "
            f"holding {CELEBA_DIR}/ with `--data-root DIR` (root=... in Python) or the "
            f"{DATA_ROOT_ENV} environment variable ({env_note}). `--download` (download=True) "
            "tries torchvision's CelebA download (needs a network and the gdown package; Google "
            "Drive's quota often refuses it: then download the files by hand).",
        ]
    )


def _download(root: Path) -> None:
    import torchvision.datasets

    fetch_with_torchvision(
        lambda: torchvision.datasets.CelebA(str(root), split="all", target_type="attr", download=True),
        "CelebA",
        root,
        f"download the files by hand into {celeba_dir(root)} (see data/README.md)",
        folders=(celeba_dir(root), root),
    )


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line for line in (raw.strip() for raw in handle) if line]


def read_attributes(path: str | os.PathLike) -> tuple[list[str], tuple[str, ...], torch.Tensor]:
    """Parse ``list_attr_celeba.txt``: (file names, attribute names, int8 values in {-1, 1})."""
    path = Path(path)
    lines = _read_lines(path)
    if len(lines) < 2 or not lines[0].isdigit():
        raise ValueError(
            f"{path}: expected the image count on line 1 and the attribute names on line 2; "
            "is it the original list_attr_celeba.txt? Replace it with the dataset's file"
        )
    count = int(lines[0])
    names = tuple(lines[1].split())
    rows = lines[2:]
    if len(rows) != count:
        raise ValueError(
            f"{path}: line 1 announces {count} images but {len(rows)} lines follow; replace the file"
        )
    filenames: list[str] = []
    values = np.empty((count, len(names)), dtype=np.int8)
    for i, row in enumerate(rows):
        fields = row.split()
        if len(fields) != len(names) + 1:
            raise ValueError(
                f"{path}, line {i + 3}: {len(fields) - 1} values for {len(names)} attributes; "
                "replace the file"
            )
        filenames.append(fields[0])
        try:
            values[i] = [int(v) for v in fields[1:]]
        except ValueError:
            raise ValueError(
                f"{path}, line {i + 3}: attribute values must be -1 or 1, got {fields[1:]}"
            ) from None
    bad = ~np.isin(values, (-1, 1))
    if bad.any():
        line = int(np.argwhere(bad)[0, 0]) + 3
        raise ValueError(f"{path}, line {line}: attribute values must be -1 or 1; replace the file")
    return filenames, names, torch.from_numpy(values)


def read_partition(path: str | os.PathLike, filenames: list[str]) -> torch.Tensor:
    """Parse ``list_eval_partition.txt`` into the partition (0, 1, 2) of each of ``filenames``."""
    path = Path(path)
    table: dict[str, int] = {}
    for i, line in enumerate(_read_lines(path)):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(
                f"{path}, line {i + 1}: expected 'filename 0|1|2', got {line!r}; replace the file"
            )
        table[fields[0]] = int(fields[1])
    missing = [f for f in filenames if f not in table]
    if missing:
        raise ValueError(
            f"{path} has no partition for {len(missing)} image(s) of {ATTR_FILE} (e.g. {missing[0]}); "
            "the two files come from different versions: replace them"
        )
    return torch.tensor([table[f] for f in filenames], dtype=torch.uint8)


def read_index(root: str | os.PathLike, download: bool = False) -> CelebAIndex:
    """Read the attribute and partition files under ``root/celeba`` (clear error when missing)."""
    root = Path(root)
    folder = celeba_dir(root)
    needed = [folder / ATTR_FILE, folder / PARTITION_FILE, folder / IMAGE_DIR]
    if download and not all(p.exists() for p in needed):
        _download(root)
    missing = [p for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(_missing_message(root, missing))
    filenames, names, attributes = read_attributes(folder / ATTR_FILE)
    partition = read_partition(folder / PARTITION_FILE, filenames)
    return CelebAIndex(filenames, names, attributes, partition)


def load_celeba_image(path: str | os.PathLike, size: int = IMAGE_SIZE, crop: int = CROP) -> torch.Tensor:
    """One image as a ``(3, size, size)`` uint8 tensor: centred square crop of side
    ``min(crop, width, height)``, then an antialiased bilinear resize."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            side = min(crop, width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"CelebA image {path} is missing although {ATTR_FILE} lists it; restore the "
            f"{IMAGE_DIR} folder from the dataset's archive"
        ) from None
    except OSError as err:
        raise ValueError(f"cannot decode the CelebA image {path} ({err}); replace it") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def decode_images(
    folder: Path, filenames: list[str], size: int, crop: int, progress: bool = False
) -> torch.Tensor:
    """Decode ``filenames`` into an ``(n, 3, size, size)`` uint8 tensor."""
    from tqdm.auto import tqdm

    out = torch.empty(len(filenames), 3, size, size, dtype=torch.uint8)
    for i, name in enumerate(tqdm(filenames, disable=not progress, desc=f"CelebA {size}x{size}")):
        out[i] = load_celeba_image(folder / name, size, crop)
    return out


def cache_path(root: str | os.PathLike, size: int = IMAGE_SIZE) -> Path:
    return celeba_dir(root) / f"celeba_{size}.pt"


def _save_atomic(path: Path, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached_images(root: Path, index: CelebAIndex, size: int, crop: int, progress: bool) -> torch.Tensor:
    """Every image, preprocessed: read from the cache file, or decoded and written there."""
    path = cache_path(root, size)
    if path.exists():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if (
                payload.get("format") == CACHE_FORMAT
                and payload.get("size") == size
                and payload.get("crop") == crop
                and payload.get("filenames") == index.filenames
            ):
                return payload["images"]
            reason = "it was made for other files or settings"
        except Exception as err:  # a damaged cache is rebuilt
            reason = f"it cannot be read: {type(err).__name__}"
        warnings.warn(f"rebuilding the CelebA cache {path} ({reason})", stacklevel=3)
    images = decode_images(celeba_dir(root) / IMAGE_DIR, index.filenames, size, crop, progress)
    payload = {
        "format": CACHE_FORMAT,
        "size": size,
        "crop": crop,
        "filenames": index.filenames,
        "images": images,
    }
    try:
        _save_atomic(path, payload)
    except OSError as err:
        warnings.warn(
            f"could not write the CelebA cache {path} ({err}); images will be decoded again", stacklevel=3
        )
    return images


def load_celeba(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
    image_size: int = IMAGE_SIZE,
    crop: int = CROP,
    cache: bool = True,
    progress: bool = True,
) -> MultimodalDataset:
    """CelebA as ``{"x": (3, 32, 32) image in [-1, 1], "w": (40,) attributes in {-1, 1}}``.

    Args:
        split: ``train``, ``test`` or ``valid`` (the official partition).
        binarize, seed: unused (both modalities are Gaussian); accepted for the registry.
        image_size, crop: output side and centre-crop side (see the module docstring).
        cache: read / build ``<root>/celeba/celeba_<size>.pt`` (all images, decoded once).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    root = resolve_data_root(root)
    index = read_index(root, download)
    selected = (index.partition == SPLITS[split]).nonzero().flatten()
    if cache:
        images = _cached_images(root, index, image_size, crop, progress)[selected]
    else:
        names = [index.filenames[i] for i in selected.tolist()]
        images = decode_images(celeba_dir(root) / IMAGE_DIR, names, image_size, crop, progress)
    x = images.float().div_(127.5).sub_(1.0)
    w = index.attributes[selected].float()
    data = MultimodalDataset(
        "celeba",
        {"x": x, "w": w},
        {
            "x": Modality("x", (3, image_size, image_size), "gaussian"),
            "w": Modality("w", (len(index.attribute_names),), "gaussian", labels=index.attribute_names),
        },
        binarize=binarize,
        seed=seed,
    )
    data.attribute_names = index.attribute_names
    return data
