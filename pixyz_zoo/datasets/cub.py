"""CUB Image-Captions (Shi et al. 2019, MMVAE): bird images ``x`` paired with captions ``t``.

The MMVAE paper's dataset, also used by later multimodal-VAE papers: the bird photographs of
CUB-200-2011 (Wah et al. 2011) at 64x64 with the ten single-sentence captions per image collected
by Reed et al. (2016), split by class as Reed et al.'s zero-shot split: the 150 "trainval" classes
(8,855 images) train, the 50 "test" classes (2,933 images) test, so the two splits share no bird
species.

Files
-----
The layout of the cleaned-up copy distributed with the MMVAE reference code (``iffsid/mmvae``,
README "CUB Image-Caption": ``http://www.robots.ox.ac.uk/~yshi/mmdgm/datasets/cub.zip``, unzipped
so that it gives ``data/cub``). Under the zoo's data root::

    <root>/cub/text_trainvalclasses.txt   10 captions per train image, one per line
    <root>/cub/text_testclasses.txt       10 captions per test image, one per line
    <root>/cub/train/002.Laysan_Albatross/*.jpg ... 200.Common_Yellowthroat/*.jpg
    <root>/cub/test/001.Black_footed_Albatross/*.jpg ... 197.Marsh_Wren/*.jpg

Images are listed as torchvision's ``ImageFolder`` lists them (class folders sorted by name,
files sorted by path inside each; extensions ``.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff
.webp``), which is how the reference code reads them; captions ``10 i`` to ``10 i + 9`` of the
split's text file belong to image ``i`` (the reference pairs caption ``k`` with image ``k // 10``).
Nothing is ever downloaded: ``download=True`` only changes the missing-file message.

Conventions (those of the reference ``CUBSentences`` in ``src/datasets.py``)
---------------------------------------------------------------------------
- Tokens: the reference runs NLTK's ``sent_tokenize`` over the whole file and ``word_tokenize``
  on each sentence. NLTK is not a dependency here: every line is one caption, split by
  :func:`tokenize` into words (hyphenated words and decimals kept whole), the clitics
  ``'s 'm 'd 'll 're 've n't`` and single punctuation marks, which matches ``word_tokenize`` on
  these lower-case one-sentence captions. Case is kept as in the file (the captions are lower-case).
- Vocabulary: built from all the training captions only (also when loading ``test``): the
  special tokens ``<exc>``, ``<pad>``, ``<eos>`` (indices 0, 1, 2), then every word occurring
  *more than* three times (the reference's ``occ > min_occ`` with ``min_occ=3``; here
  ``min_count=4``, i.e. at least four occurrences) in order of first appearance in the file.
  The reference code reports 1,590 entries. Words outside it become ``<exc>``.
- Length: 32 positions. A caption keeps its first 31 tokens, then ``<eos>``, then ``<pad>`` up to
  32, so every caption has exactly one ``<eos>`` (longer captions are truncated).
- Images: RGB, resized to 64x64 (bilinear) when they are not already, values in [0, 1] (the
  reference's ``Resize([64, 64])`` + ``ToTensor``); MMVAE's image decoder is a Laplace.

Modalities and examples
-----------------------
``x``: ``(3, 64, 64)``, likelihood ``laplace``. ``t``: ``(32, V)`` one-hot, likelihood
``categorical``, ``labels`` = the vocabulary (``decode_caption`` turns a one-hot or a predicted
distribution back into words). ``labels`` of the dataset: the bird class, indexing
``classes`` = the sorted class folders of ``train/`` and ``test/`` together (with the standard
files the 200 CUB classes, label = folder number - 1, the same indices in both splits; a split
folder that is absent contributes no class).

``caption_index`` picks the examples: an integer ``k`` in 0..9 gives one example per image with its
``k``-th caption (default 0); ``"all"`` gives ten examples per image (image-major: example ``j`` is
image ``j // 10`` with caption ``j % 10``, the reference's pairing). ``max_examples`` keeps a seeded
random subset (``seed``) of that many examples, in their original order; only their images are
decoded.

Memory (computed, float32): an example holds 3*64*64*4 = 49,152 bytes of image and 32*V*4 bytes
of caption, 203,520 bytes for V = 1,590, so 252,672 bytes in all. Defaults (``caption_index=0``):
train 8,855 examples = 0.44 GB images + 1.80 GB captions = 2.24 GB; test 2,933 examples = 0.14 +
0.60 = 0.74 GB. ``caption_index="all"``: train 88,550 examples = 4.35 + 18.0 = 22.4 GB, test 29,330
= 7.4 GB; use ``max_examples`` (e.g. 20,000 examples = 5.1 GB) on smaller machines.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from pixyz_zoo.datasets.base import DATA_ROOT_ENV, MultimodalDataset, resolve_data_root
from pixyz_zoo.modalities import Modality

CUB_DIR = "cub"
CAPTION_FILES = {"train": "text_trainvalclasses.txt", "test": "text_testclasses.txt"}
CAPTIONS_PER_IMAGE = 10
MAX_LENGTH = 32
MIN_COUNT = 4
IMAGE_SIZE = 64
EXC, PAD, EOS = "<exc>", "<pad>", "<eos>"
SPECIAL_TOKENS = (EXC, PAD, EOS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DOWNLOAD_URL = "http://www.robots.ox.ac.uk/~yshi/mmdgm/datasets/cub.zip"

_TOKEN = re.compile(
    r"\w+(?=n't\b)"  # "do" of "don't"
    r"|n't\b"
    r"|'(?:s|m|d|ll|re|ve)\b"  # clitics: "it's" -> "it", "'s"
    r"|\w+(?:[-.]\w+)*"  # words, hyphenated words, decimals
    r"|\S",  # any other character on its own (punctuation)
    re.IGNORECASE,
)


def cub_dir(root: str | os.PathLike) -> Path:
    return Path(root) / CUB_DIR


# ----------------------------------------------------------------------------------- captions


def tokenize(caption: str) -> list[str]:
    """Split one caption into tokens the way NLTK's ``word_tokenize`` splits these captions."""
    return _TOKEN.findall(caption)


def read_captions(path: str | os.PathLike) -> list[str]:
    """The captions of a text file: one per non-empty line, in file order."""
    with open(path, encoding="utf-8") as handle:
        return [line for line in (raw.strip() for raw in handle) if line]


def build_vocabulary(captions: Iterable[Sequence[str]], min_count: int = MIN_COUNT) -> tuple[str, ...]:
    """``<exc>, <pad>, <eos>``, then the tokens occurring at least ``min_count`` times, in order of
    first appearance."""
    counts: Counter[str] = Counter()
    for tokens in captions:
        counts.update(tokens)  # a Counter keeps first-insertion order
    words = [w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS]
    return (*SPECIAL_TOKENS, *words)


def encode_caption(
    tokens: Sequence[str], word_index: dict[str, int], max_length: int = MAX_LENGTH
) -> torch.Tensor:
    """Token indices of length ``max_length``: the first ``max_length - 1`` tokens (unknown ones as
    ``<exc>``), ``<eos>``, then ``<pad>``."""
    return torch.tensor(_encode(tokens, word_index, max_length), dtype=torch.long)


def _encode(tokens: Sequence[str], word_index: dict[str, int], max_length: int) -> list[int]:
    kept = [*tokens[: max_length - 1], EOS]
    kept += [PAD] * (max_length - len(kept))
    exc = word_index[EXC]
    return [word_index.get(w, exc) for w in kept]


def _vocabulary(vocabulary: Sequence[str] | Modality) -> Sequence[str]:
    words = vocabulary.labels if isinstance(vocabulary, Modality) else vocabulary
    if not words:
        raise ValueError("decoding a caption needs the vocabulary (the caption modality's labels)")
    return words


def decode_caption(
    caption: torch.Tensor, vocabulary: Sequence[str] | Modality, strip: bool = True
) -> list[str]:
    """The words of one caption.

    Args:
        caption: ``(length, V)`` one-hot, probabilities or logits (the argmax is read), or
            ``(length,)`` token indices.
        vocabulary: the vocabulary (``dataset.vocabulary``) or the caption modality.
        strip: stop before the first ``<eos>`` and drop ``<pad>`` (``<exc>`` stays).
    """
    words = _vocabulary(vocabulary)
    caption = torch.as_tensor(caption).detach().cpu()
    if caption.is_floating_point():
        if caption.dim() != 2 or caption.shape[1] != len(words):
            raise ValueError(
                f"a caption must have shape (length, {len(words)}) (one score per vocabulary word), "
                f"got {tuple(caption.shape)}; use decode_captions for a batch"
            )
        caption = caption.argmax(-1)
    elif caption.dim() != 1:
        raise ValueError(f"token indices must have shape (length,), got {tuple(caption.shape)}")
    out = [words[i] for i in caption.tolist()]
    if strip:
        if EOS in out:
            out = out[: out.index(EOS)]
        out = [w for w in out if w != PAD]
    return out


def decode_captions(
    captions: torch.Tensor, vocabulary: Sequence[str] | Modality, strip: bool = True
) -> list[list[str]]:
    """:func:`decode_caption` of every caption of a batch ``(batch, length, V)`` or ``(batch, length)``."""
    return [decode_caption(c, vocabulary, strip) for c in captions]


# ------------------------------------------------------------------------------------- images


def list_images(folder: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Image files under ``folder``'s class folders in ``ImageFolder`` order, and their class folder."""
    folder = Path(folder)
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    paths: list[Path] = []
    owners: list[str] = []
    for name in classes:
        for dirpath, _, files in sorted(os.walk(folder / name, followlinks=True)):
            for file in sorted(files):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(Path(dirpath) / file)
                    owners.append(name)
    return paths, owners


def load_cub_image(path: str | os.PathLike, size: int = IMAGE_SIZE) -> torch.Tensor:
    """One image as a ``(3, size, size)`` uint8 tensor (RGB, bilinear resize if needed)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"CUB image {path} disappeared while loading; restore the image folders"
        ) from None
    except OSError as err:
        raise ValueError(f"cannot decode the CUB image {path} ({err}); replace it") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _decode_images(paths: Sequence[Path], size: int, progress: bool) -> torch.Tensor:
    from tqdm.auto import tqdm

    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for i, path in enumerate(tqdm(paths, disable=not progress, desc=f"CUB images {size}x{size}")):
        out[i] = load_cub_image(path, size)
    return out


# ------------------------------------------------------------------------------------- loader


def _missing_message(root: Path, missing: list[Path], download: bool) -> str:
    env = os.environ.get(DATA_ROOT_ENV)
    env_note = f"currently {env!r}" if env else "currently unset"
    folder = cub_dir(root)
    lines = [
        "dataset 'cub' needs these files, which are missing:",
        *(f"  {path.absolute()}" for path in missing),
        f"Data root in use: {root} (absolute: {root.resolve()}).",
        f"Fix: download the MMVAE authors' CUB Image-Captions archive ({DOWNLOAD_URL}, linked from "
        "the README of github.com/iffsid/mmvae) and unzip it so that "
        f"{folder} holds {CAPTION_FILES['train']}, {CAPTION_FILES['test']} and the image folders "
        "train/ and test/ (one sub-folder per bird class, e.g. train/002.Laysan_Albatross/*.jpg), "
        f"or point the data root at a folder holding {CUB_DIR}/ with `--data-root DIR` (root=... "
        f"in Python) or the {DATA_ROOT_ENV} environment variable ({env_note}).",
    ]
    if download:
        lines.append("`--download` cannot fetch CUB: the zoo does not download this dataset; do it by hand.")
    return "\n".join(lines)


def _check_files(root: Path, split: str, download: bool) -> None:
    folder = cub_dir(root)
    needed = [folder / CAPTION_FILES["train"], folder / CAPTION_FILES[split], folder / split]
    missing = [p for p in dict.fromkeys(needed) if not p.exists()]
    if missing:
        raise FileNotFoundError(_missing_message(root, missing, download))


def _class_folders(folder: Path) -> list[str]:
    names: set[str] = set()
    for split in CAPTION_FILES:
        if (folder / split).is_dir():
            names.update(entry.name for entry in os.scandir(folder / split) if entry.is_dir())
    return sorted(names)


def _select(n: int, caption_index: int | str, max_examples: int | None, seed: int) -> torch.Tensor:
    """Indices into the split's ``n * 10`` (image-major) captions of the examples kept."""
    if caption_index == "all":
        chosen = torch.arange(n * CAPTIONS_PER_IMAGE)
    elif (
        isinstance(caption_index, int)
        and not isinstance(caption_index, bool)
        and (0 <= caption_index < CAPTIONS_PER_IMAGE)
    ):
        chosen = torch.arange(n) * CAPTIONS_PER_IMAGE + caption_index
    else:
        raise ValueError(
            f"caption_index must be an integer from 0 to {CAPTIONS_PER_IMAGE - 1} (one caption per "
            f"image) or 'all' (ten examples per image), got {caption_index!r}"
        )
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be a positive integer or None, got {max_examples}")
        if max_examples < len(chosen):
            keep = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))
            chosen = chosen[keep[:max_examples].sort().values]
    return chosen


def load_cub(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
    caption_index: int | str = 0,
    max_examples: int | None = None,
    image_size: int = IMAGE_SIZE,
    max_length: int = MAX_LENGTH,
    min_count: int = MIN_COUNT,
    progress: bool = True,
) -> MultimodalDataset:
    """CUB Image-Captions as ``{"x": (3, 64, 64) image in [0, 1], "t": (32, V) one-hot caption}``.

    Args:
        split: ``train`` (the 150 trainval classes) or ``test`` (the 50 test classes).
        binarize: unused (no Bernoulli modality); accepted for the registry.
        seed: seed of the ``max_examples`` subset.
        download: nothing is downloaded; missing files raise ``FileNotFoundError`` either way.
        caption_index: ``0``..``9`` (one example per image, with that caption) or ``"all"``.
        max_examples: keep a seeded random subset of this many examples (see the module docstring).
        image_size, max_length, min_count: image side, caption length with ``<eos>``, and the
            fewest occurrences in the training captions that puts a word in the vocabulary.

    The dataset also has ``.vocabulary`` (tuple of tokens, the ``t`` modality's labels) and
    ``.decode_caption(onehot) -> list[str]``; ``.labels`` / ``.classes`` give the bird class.
    """
    if split not in CAPTION_FILES:
        raise ValueError(f"split must be one of {sorted(CAPTION_FILES)}, got {split!r}")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 (a word and <eos>), got {max_length}")
    root = resolve_data_root(root)
    _check_files(root, split, download)
    folder = cub_dir(root)

    train_captions = [tokenize(c) for c in read_captions(folder / CAPTION_FILES["train"])]
    vocabulary = build_vocabulary(train_captions, min_count)
    word_index = {w: i for i, w in enumerate(vocabulary)}
    if split == "train":
        captions = train_captions
    else:
        captions = [tokenize(c) for c in read_captions(folder / CAPTION_FILES[split])]

    paths, owners = list_images(folder / split)
    if not paths:
        raise FileNotFoundError(
            f"{folder / split} holds no images (expected class folders such as "
            f"{split}/001.Black_footed_Albatross/*.jpg); restore it from the CUB archive ({DOWNLOAD_URL})"
        )
    if len(captions) != CAPTIONS_PER_IMAGE * len(paths):
        raise ValueError(
            f"{folder / CAPTION_FILES[split]} has {len(captions)} captions but {folder / split} has "
            f"{len(paths)} images: {CAPTIONS_PER_IMAGE} captions per image "
            f"({CAPTIONS_PER_IMAGE * len(paths)}) are expected, one per line in image order; the text "
            "file and the image folders come from "
            "different copies: replace them with the archive's"
        )

    chosen = _select(len(paths), caption_index, max_examples, seed)
    image_of = chosen // CAPTIONS_PER_IMAGE
    needed, position = torch.unique(image_of, return_inverse=True)
    images = _decode_images([paths[i] for i in needed.tolist()], image_size, progress)
    x = images.float().div_(255.0)
    if len(needed) != len(chosen):  # an image shared by several examples
        x = x[position]

    tokens = torch.tensor(
        [_encode(captions[i], word_index, max_length) for i in chosen.tolist()], dtype=torch.long
    ).view(len(chosen), max_length)
    t = torch.zeros(len(chosen), max_length, len(vocabulary))
    t.scatter_(2, tokens.unsqueeze(-1), 1.0)

    classes = _class_folders(folder)
    class_index = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([class_index[owners[i]] for i in image_of.tolist()], dtype=torch.long)

    data = MultimodalDataset(
        "cub",
        {"x": x, "t": t},
        {
            "x": Modality("x", (3, image_size, image_size), "laplace"),
            "t": Modality("t", (max_length, len(vocabulary)), "categorical", labels=vocabulary),
        },
        binarize=binarize,
        seed=seed,
        labels=labels,
        classes=tuple(classes),
    )
    data.vocabulary = vocabulary
    data.decode_caption = partial(decode_caption, vocabulary=vocabulary)
    return data
