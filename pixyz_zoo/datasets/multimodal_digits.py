"""Multimodal digit datasets: MNIST-SVHN-Text, offline trimodal stand-ins, PolyMNIST-style sets.

Every dataset here shows one digit class through several modalities; the class is the dataset's
``labels`` (names ``"0"``..``"9"``), which no model sees.

**Text** (Sutter et al. 2020, "Multimodal generative learning utilizing Jensen-Shannon
divergence"; 2021, "Generalized multimodal ELBO"): the digit's English word (``"zero"`` ..
``"nine"``) written into a sequence of ``TEXT_LENGTH = 8`` characters padded with spaces, at an
offset drawn uniformly from ``{0, ..., 8 - 1 - len(word)}`` (the reference code's
``random.randint(0, len_seq - 1 - len(text))``: the last position is always a space), one-hot
over ``ALPHABET``, the 71 characters of the reference code's ``alphabet.json`` (lowercase
letters, digits, 33 punctuation marks with ``-`` listed twice, space and newline; a character is
encoded at its first occurrence). Modality ``t``: ``Modality("t", (8, 71), "categorical")``
whose ``labels`` are the alphabet's characters, so plots can decode it.

**mnist-svhn-text** (:func:`load_mnist_svhn_text`): real MNIST ``m`` (1x28x28, Bernoulli, grey
levels in [0, 1]), real SVHN ``s`` (3x32x32 in [0, 1], Laplace) and the text ``t``. Pairs are
made as in Shi et al. 2019's ``make-mnist-svhn-idx.py`` (reused by Sutter et al.): for each
class, the first ``n = min(#MNIST, #SVHN, 10,000)`` indices of that class in each set are matched
by two independent random permutations, ``repeats`` times (Shi et al. use 30, Sutter et al. 20).
The pairs are then shuffled once (the same set of pairs, in random rather than class order). With
the standard splits one repeat gives 56,068 train / 10,000 test pairs; the papers' 20 repeats
give 1,121,360 train pairs, about 19.8 GB as float32 (m 784 + s 3,072 + t 568 values per
pair), hence the registered default ``repeats=1``. Pairing, shuffle and text offsets come from
``seed`` (train and test use different streams).

**trimodal-mnist / trimodal-digits** (:func:`load_trimodal`), offline stand-ins with the same
modality names for machines without SVHN, built from *real* digits of one source split
(``mnist-10k``: the real MNIST t10k files split 8,000 / 2,000; ``digits``: scikit-learn's bundled
8x8 digits, 1,438 / 359). One example per source image:

- ``m``: the source image itself (Bernoulli, 1x28x28 or 1x8x8);
- ``s``: a *different* image of the same class from the same split (never the same index, drawn
  uniformly among the others), made SVHN-like by :func:`street_view_digits`: bilinear resampling
  to 32x32 with a small random affine jitter (zoom, rotation up to 12 degrees, shift), painted in
  a random digit colour over a random background colour with a procedural texture (smoothed
  colour noise plus faint stripes at a random angle and frequency), half of the time a fragment
  of a random neighbouring digit at the left or right edge (as in SVHN's house-number crops), and
  luminance grain (sd 0.03). Before the grain, contrast is ensured: either the digit is dark
  (channels <= 0.25) on a light background (base channels >= 0.6, textured >= 0.45) or light
  (>= 0.75) on a dark one (<= 0.4, textured <= 0.55), so every channel differs by at least 0.2.
  3x32x32 in [0, 1], Laplace;
- ``t``: the text of the class.

**polymnist / polydigits** (:func:`load_polymnist`, after Sutter et al. 2021's PolyMNIST):
``n_modalities`` image modalities ``m0``..``m{N-1}``, each 3xHxW in [0, 1] (Laplace). Modality
``m0`` shows the source image, each other modality a different real image of the same class
(all N distinct, drawn from the same split). Modality ``k`` has its own background: a fixed
texture canvas three times the image size (family ``k mod 5`` of blobs, stripes, checks, rings,
cells, in a two-colour palette from ``PALETTE_SIDES[k mod 8]``; fixed by ``TEXTURE_SEED``, the
same for every example, split and seed), cropped at a random offset per example; the digit
inverts the crop's colours where it has ink (``x = crop (1 - a) + (1 - crop) a``, as PolyMNIST
does). Every palette channel stays in [0, 0.35] or [0.65, 1] (one colour near the extreme, one
near the band's inner edge, so the texture is visible), so ink and background differ by at least
0.3 per channel.

Everything is built in memory with vectorised torch ops in a fraction of a second, deterministic
given ``seed``; nothing is cached on disk.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pixyz_zoo.datasets.base import (
    DATA_ROOT_ENV,
    MultimodalDataset,
    fetch_with_torchvision,
    resolve_data_root,
)
from pixyz_zoo.datasets.digits import DIGIT_LABELS
from pixyz_zoo.modalities import Modality

# ----------------------------------------------------------------------------------------- text

#: Sutter et al.'s alphabet.json (mmjsd / MoPoE reference code) joined into one string: 71
#: characters, "-" listed twice (a character is encoded at its first occurrence).
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"\\/|_@#$%^&*~`+-=<>()[]{} \n"
TEXT_LENGTH = 8
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEXT = Modality("t", (TEXT_LENGTH, len(ALPHABET)), "categorical", labels=tuple(ALPHABET))


def encode_text(
    words: Sequence[str],
    offsets: Sequence[int] | torch.Tensor | None = None,
    length: int = TEXT_LENGTH,
    alphabet: str = ALPHABET,
) -> torch.Tensor:
    """One-hot ``(N, length, len(alphabet))`` of ``words`` written at ``offsets`` in spaces.

    Each character is encoded at its first position in ``alphabet`` (as the reference code's
    ``str.find``). ``offsets`` defaults to 0 for every word.
    """
    if " " not in alphabet:
        raise ValueError("the alphabet needs a space character to pad the text")
    n = len(words)
    offsets = torch.zeros(n, dtype=torch.long) if offsets is None else torch.as_tensor(offsets).long()
    if offsets.shape != (n,):
        raise ValueError(f"need one offset per word: {n} words, offsets of shape {tuple(offsets.shape)}")
    index = torch.full((n, length), alphabet.index(" "), dtype=torch.long)
    groups: dict[str, list[int]] = {}
    for i, word in enumerate(words):
        groups.setdefault(word, []).append(i)
    for word, members in groups.items():
        rows = torch.tensor(members)
        start = offsets[rows]
        if len(word) > length or start.min() < 0 or (start + len(word)).max() > length:
            raise ValueError(
                f"word {word!r} at offsets {start.min()}..{start.max()} does not fit in {length} characters"
            )
        for k, char in enumerate(word):
            code = alphabet.find(char)
            if code < 0:
                raise ValueError(f"character {char!r} of {word!r} is not in the alphabet")
            index[rows, start + k] = code
    return F.one_hot(index, len(alphabet)).float()


def decode_text(onehot_or_probs: torch.Tensor, alphabet: str = ALPHABET) -> list[str]:
    """The strings of a batch ``(N, length, len(alphabet))`` (or of one ``(length, len(alphabet))``).

    Each position is decoded as its argmax, so one-hot codes and decoder probabilities both work.
    """
    x = torch.as_tensor(onehot_or_probs)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[-1] != len(alphabet):
        raise ValueError(
            f"expected (batch, length, {len(alphabet)}) scores over the alphabet, got {tuple(x.shape)}"
        )
    return ["".join(alphabet[i] for i in row) for row in x.argmax(-1).tolist()]


def digit_text(
    labels: torch.Tensor,
    generator: torch.Generator | None = None,
    length: int = TEXT_LENGTH,
    alphabet: str = ALPHABET,
) -> torch.Tensor:
    """The one-hot text of each digit class in ``labels``, at offsets uniform in ``{0..length-1-len}``."""
    labels = torch.as_tensor(labels).long()
    word_length = torch.tensor([len(w) for w in DIGIT_WORDS])[labels]
    if length <= max(len(w) for w in DIGIT_WORDS):
        raise ValueError(f"text length {length} is too short for the digit words (needs at least 6)")
    offsets = (torch.rand(len(labels), generator=generator) * (length - word_length)).long()
    return encode_text([DIGIT_WORDS[i] for i in labels.tolist()], offsets, length, alphabet)


# ------------------------------------------------------------------------------------ helpers

_SPLIT_INDEX = {"train": 0, "test": 1}


def _check_split(split: str) -> None:
    if split not in _SPLIT_INDEX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def stream(seed: int, split: str, purpose: str) -> torch.Generator:
    """An independent random stream for (``seed``, ``split``, ``purpose``)."""
    _check_split(split)
    entropy = [int(seed) & 0xFFFFFFFF, _SPLIT_INDEX[split], zlib.crc32(purpose.encode())]
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def same_class_partners(labels: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, k)`` indices: for each example, ``k`` distinct *other* examples of its class.

    Drawn uniformly (without replacement) among the other examples of the class.
    """
    labels = torch.as_tensor(labels).long()
    out = torch.empty(len(labels), k, dtype=torch.long)
    if k == 0:
        return out
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().squeeze(1)
        n_c = len(members)
        if n_c - 1 < k:
            raise ValueError(
                f"class {c} has {n_c} example(s) in this split: cannot pick {k} other example(s) of "
                "the same class; use fewer modalities or a larger split"
            )
        # offsets in 1..n_c-1 from each example's own position: never the example itself
        offsets = torch.randint(1, n_c, (n_c, k), generator=generator)
        while k > 1:
            ordered = offsets.sort(1).values
            dup = (ordered[:, 1:] == ordered[:, :-1]).any(1)
            if not dup.any():
                break
            offsets[dup] = torch.randint(1, n_c, (int(dup.sum()), k), generator=generator)
        position = torch.arange(n_c)[:, None]
        out[members] = members[(position + offsets) % n_c]
    return out


def _uniform(n: int, low: float, high: float, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, *shape, generator=generator)


def _warp(
    images: torch.Tensor,
    size: int,
    zoom: torch.Tensor,
    angle: torch.Tensor,
    shift: torch.Tensor,
) -> torch.Tensor:
    """Bilinear resampling of ``(n, 1, h, w)`` to ``size`` x ``size``, zoomed, rotated and shifted.

    ``shift`` ``(n, 2)`` is in output coordinates (2 = the image width). Identity parameters sample
    the points of ``F.interpolate(mode="bilinear", align_corners=False)``, with zeros (not the edge
    pixels) outside the image.
    """
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    a = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (n, 2, 2)
    theta = torch.cat([a, -(a @ shift.unsqueeze(2))], 2)  # output -> input coordinates
    # the grid of F.affine_grid(theta, ..., align_corners=False), as one batched matmul
    centres = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    base = torch.stack(
        [centres[None, :].expand(size, size), centres[:, None].expand(size, size), torch.ones(size, size)], -1
    ).reshape(1, size * size, 3)
    grid = (base @ theta.transpose(1, 2)).view(len(images), size, size, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _smooth_noise(n: int, channels: int, coarse: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, channels, size, size)`` noise in [0, 1]: a ``coarse`` x ``coarse`` uniform grid, bilinearly
    interpolated (as a separable matrix product, much faster than ``F.interpolate`` on the CPU)."""
    weights = F.interpolate(torch.eye(coarse)[:, None, :], size=size, mode="linear", align_corners=True)
    weights = weights[:, 0].T.contiguous()  # (size, coarse)
    return weights @ torch.rand(n, channels, coarse, coarse, generator=generator) @ weights.T


# ------------------------------------------------------------------------------- SVHN-like s

#: zoom of the source digit in the 32x32 frame, per source (MNIST has a 4-pixel margin, the
#: bundled 8x8 digits none).
ZOOM = {"mnist-10k": (0.95, 1.15), "mnist": (0.95, 1.15), "digits": (0.68, 0.82)}


def street_view_digits(
    images: torch.Tensor,
    generator: torch.Generator,
    neighbours: torch.Tensor | None = None,
    size: int = 32,
    zoom: tuple[float, float] = (0.95, 1.15),
) -> torch.Tensor:
    """SVHN-like ``(n, 3, size, size)`` renderings in [0, 1] of grey digits ``(n, 1, h, w)``.

    See the module docstring: jittered bilinear resampling, random digit and background colours
    with guaranteed contrast, textured background, optional neighbour fragments (``neighbours``,
    same shape as ``images``, shown at a random edge for half of the examples), pixel noise.
    """
    n, g = len(images), generator
    images = images.float()
    angle = _uniform(n, -12.0, 12.0, g) * math.pi / 180
    alpha = _warp(images, size, _uniform(n, *zoom, g), angle, _uniform(n, -0.08, 0.08, g, 2))
    dark_digit = torch.rand(n, 1, 1, 1, generator=g) < 0.5
    background = torch.where(dark_digit, _uniform(n, 0.6, 1.0, g, 3, 1, 1), _uniform(n, 0.0, 0.4, g, 3, 1, 1))
    ink = torch.where(dark_digit, _uniform(n, 0.0, 0.25, g, 3, 1, 1), _uniform(n, 0.75, 1.0, g, 3, 1, 1))
    # texture: smoothed colour noise (amplitude 0.08) + faint stripes (amplitude up to 0.07)
    canvas = _smooth_noise(n, 3, 5, size, g).sub_(0.5).mul_(0.16).add_(background)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    theta = _uniform(n, 0.0, math.pi, g, 1, 1)
    frequency = _uniform(n, 1.5, 5.0, g, 1, 1)
    phase = _uniform(n, 0.0, 2 * math.pi, g, 1, 1)
    wave = coords[:, None] * torch.cos(theta) + coords[None, :] * torch.sin(theta)
    wave = wave.mul_(2 * math.pi * frequency).add_(phase).sin_().mul_(_uniform(n, 0.0, 0.07, g, 1, 1))
    canvas += wave.unsqueeze(1)
    if neighbours is not None:
        side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        shift = torch.stack([side * _uniform(n, 1.25, 1.5, g), _uniform(n, -0.1, 0.1, g)], 1)
        fragment = _warp(neighbours.float(), size, _uniform(n, *zoom, g), torch.zeros(n), shift)
        fragment *= torch.rand(n, 1, 1, 1, generator=g) < 0.5
        canvas += fragment * (ink - canvas)
    canvas += alpha * (ink - canvas)
    grain = torch.rand(n, 1, size, size, generator=g).sub_(0.5).mul_(0.1)  # luminance grain, sd 0.03
    return canvas.add_(grain).clamp_(0, 1)


# ------------------------------------------------------------------------------------ sources

SOURCES = ("mnist-10k", "mnist", "digits")


def load_source(
    source: str, split: str, root: str | os.PathLike | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images ``(n, 1, h, w)`` in [0, 1] and class indices of one split of a source digit set."""
    _check_split(split)
    if source == "mnist-10k":
        from pixyz_zoo.datasets.mnist import load_mnist_10k

        data = load_mnist_10k(split, root=root, binarize="none", download=download)
    elif source == "mnist":
        from pixyz_zoo.datasets.mnist import load_mnist

        data = load_mnist(split, root=root, binarize="none", download=download)
    elif source == "digits":
        from pixyz_zoo.datasets.digits import load_digits

        data = load_digits(split, binarize="none")
    else:
        raise ValueError(f"unknown source {source!r}; choose one of {SOURCES}")
    return data.tensors["x"], data.tensors["y"].argmax(1)


# ----------------------------------------------------------------------------------- trimodal

TRIMODAL_NAMES = {"mnist-10k": "trimodal-mnist", "mnist": "trimodal-mnist-full", "digits": "trimodal-digits"}
STREET_DIGIT = Modality("s", (3, 32, 32), "laplace")


def load_trimodal(
    source: str = "mnist-10k",
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
) -> MultimodalDataset:
    """Offline MNIST-SVHN-Text stand-in from real digits (module docstring; Sutter et al. 2020).

    ``source``: ``"mnist-10k"`` (``trimodal-mnist``, 8,000 / 2,000, reads
    ``<root>/MNIST/raw/t10k-*``), ``"digits"`` (``trimodal-digits``, 1,438 / 359, no files) or
    ``"mnist"`` (the standard 60,000 / 10,000 MNIST files). Modalities ``m`` (the real image,
    Bernoulli), ``s`` (3x32x32 SVHN-like rendering of another image of the class, Laplace) and
    ``t`` (text). ``.source_index`` maps ``m``/``s`` to their rows in the source split (aligned
    with the examples as loaded; ``subset()`` does not slice it).
    """
    _check_split(split)
    images, labels = load_source(source, split, root, download)
    g = stream(seed, split, f"trimodal/{source}")
    partner = same_class_partners(labels, 1, g)[:, 0]
    neighbour = torch.randint(0, len(images), (len(images),), generator=g)
    s = street_view_digits(images[partner], g, images[neighbour], 32, ZOOM[source])
    t = digit_text(labels, g)
    m = Modality("m", tuple(images.shape[1:]), "bernoulli")
    dataset = MultimodalDataset(
        TRIMODAL_NAMES[source],
        {"m": images, "s": s, "t": t},
        {"m": m, "s": STREET_DIGIT, "t": TEXT},
        binarize=binarize,
        seed=seed,
        labels=labels,
        classes=DIGIT_LABELS,
    )
    dataset.source_index = {"m": torch.arange(len(images)), "s": partner}
    return dataset


def load_trimodal_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
) -> MultimodalDataset:
    """``trimodal-mnist``: :func:`load_trimodal` on ``mnist-10k`` (real MNIST t10k files)."""
    return load_trimodal("mnist-10k", split, root, binarize, seed, download)


def load_trimodal_digits(
    split: str = "train", binarize: str = "dynamic", seed: int = 0, **_: object
) -> MultimodalDataset:
    """``trimodal-digits``: :func:`load_trimodal` on the bundled 8x8 digits (offline)."""
    return load_trimodal("digits", split, None, binarize, seed, False)


# ---------------------------------------------------------------------------------- polymnist

TEXTURE_SEED = 0
TEXTURE_FAMILIES = ("blobs", "stripes", "checks", "rings", "cells")
#: per channel, whether modality k's palette is light (1) or dark (0); cycled over k.
PALETTE_SIDES = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1), (0, 0, 0))
POLY_NAMES = {"mnist-10k": "polymnist", "mnist": "polymnist-full", "digits": "polydigits"}
CANVAS_FACTOR = 3


def modality_texture(k: int, height: int, width: int, texture_seed: int = TEXTURE_SEED) -> torch.Tensor:
    """The fixed background canvas ``(3, 3 height, 3 width)`` of PolyMNIST-style modality ``k``."""
    state = np.random.SeedSequence([texture_seed, k]).generate_state(1, np.uint32)
    g = torch.Generator().manual_seed(int(state[0]))
    hc, wc = CANVAS_FACTOR * height, CANVAS_FACTOR * width
    u = (torch.arange(hc, dtype=torch.float32) + 0.5)[:, None] / height  # in image heights
    v = (torch.arange(wc, dtype=torch.float32) + 0.5)[None, :] / height

    def rand(low: float = 0.0, high: float = 1.0) -> float:
        return low + (high - low) * float(torch.rand((), generator=g))

    family = TEXTURE_FAMILIES[k % len(TEXTURE_FAMILIES)]
    if family == "blobs":
        coarse = torch.rand(1, 1, 2 * CANVAS_FACTOR + 2, 2 * CANVAS_FACTOR + 2, generator=g)
        p = F.interpolate(coarse, size=(hc, wc), mode="bicubic", align_corners=True)[0, 0]
    elif family == "stripes":
        angle, f = rand(0, math.pi), rand(1.2, 2.2)
        p = torch.sin(2 * math.pi * f * (u * math.cos(angle) + v * math.sin(angle)) + rand(0, 6.3))
    elif family == "checks":
        f = rand(0.8, 1.6)
        p = torch.sin(2 * math.pi * f * u + rand(0, 6.3)) * torch.sin(2 * math.pi * f * v + rand(0, 6.3))
    elif family == "rings":
        cu, cv, f = rand(0, CANVAS_FACTOR), rand(0, CANVAS_FACTOR * width / height), rand(1.0, 2.0)
        p = torch.sin(2 * math.pi * f * torch.sqrt((u - cu) ** 2 + (v - cv) ** 2))
    else:  # cells: distance to the nearest of random points (Worley noise)
        points = torch.rand(2 * CANVAS_FACTOR**2, 2, generator=g) * torch.tensor([hc, wc]) / height
        d = torch.sqrt((u[..., None] - points[:, 0]) ** 2 + (v[..., None] - points[:, 1]) ** 2)
        p = d.min(-1).values
    p = (p - p.min()) / (p.max() - p.min()).clamp_min(1e-6)
    side = torch.tensor(PALETTE_SIDES[k % len(PALETTE_SIDES)], dtype=torch.float32)
    # per channel one value near the extreme and one near the inner edge of its band, in a random
    # order: dark channels in [0, 0.1] and [0.25, 0.35], light ones mirrored in [0.65, 1]
    extreme, inner = 0.1 * torch.rand(3, generator=g), 0.25 + 0.1 * torch.rand(3, generator=g)
    swap = torch.rand(3, generator=g) < 0.5
    colours = torch.stack([torch.where(swap, inner, extreme), torch.where(swap, extreme, inner)])
    colours = torch.where(side.bool(), 1 - colours, colours)
    return colours[0, :, None, None] * (1 - p) + colours[1, :, None, None] * p


def load_polymnist(
    source: str = "mnist-10k",
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
    n_modalities: int = 5,
    size: int | None = None,
) -> MultimodalDataset:
    """PolyMNIST-style data (Sutter et al. 2021): ``n_modalities`` textured views of one class.

    Modalities ``m0``..``m{N-1}``, each ``(3, size, size)`` in [0, 1] (Laplace; ``size`` defaults
    to the source's, 28 for MNIST and 8 for the bundled digits), each a different real image of
    the example's class on modality ``k``'s own texture (module docstring). E.g.
    ``load_polymnist("digits", "train", n_modalities=3)``. ``.source_index`` maps each modality
    to its rows in the source split (not sliced by ``subset()``).
    """
    _check_split(split)
    if n_modalities < 1:
        raise ValueError(f"n_modalities must be at least 1, got {n_modalities}")
    images, labels = load_source(source, split, root, download)
    size = size or images.shape[-1]
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    g = stream(seed, split, f"polymnist/{source}")
    n = len(images)
    chosen = torch.cat([torch.arange(n)[:, None], same_class_partners(labels, n_modalities - 1, g)], 1)
    tensors, modalities, sources = {}, {}, {}
    offset_range = (CANVAS_FACTOR - 1) * size + 1
    within = torch.arange(size)
    for k in range(n_modalities):
        flat = modality_texture(k, size, size).reshape(3, -1)
        top = torch.randint(0, offset_range, (n,), generator=g)
        left = torch.randint(0, offset_range, (n,), generator=g)
        pixel = (top[:, None, None] + within[:, None]) * (CANVAS_FACTOR * size) + left[:, None, None] + within
        pixel = pixel.reshape(n, -1)
        crop = torch.stack([flat[c][pixel] for c in range(3)], 1).view(n, 3, size, size)
        name = f"m{k}"
        # invert the crop's colours where the digit has ink: crop (1 - a) + (1 - crop) a
        tensors[name] = torch.addcmul(crop, images[chosen[:, k]], 1 - 2 * crop)
        modalities[name] = polymnist_modality(name, size)
        sources[name] = chosen[:, k]
    name = POLY_NAMES[source] if n_modalities == 5 else f"{POLY_NAMES[source]}-{n_modalities}"
    dataset = MultimodalDataset(
        name, tensors, modalities, binarize=binarize, seed=seed, labels=labels, classes=DIGIT_LABELS
    )
    dataset.source_index = sources
    return dataset


def polymnist_modality(name: str, size: int) -> Modality:
    """One PolyMNIST modality: a ``(3, size, size)`` image in [0, 1], Laplace likelihood."""
    return Modality(name, (3, size, size), "laplace")


def load_polymnist_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
) -> MultimodalDataset:
    """``polymnist``: 5 modalities of 3x28x28 from ``mnist-10k`` (real MNIST t10k files)."""
    return load_polymnist("mnist-10k", split, root, binarize, seed, download)


def load_polydigits(
    split: str = "train", binarize: str = "dynamic", seed: int = 0, **_: object
) -> MultimodalDataset:
    """``polydigits``: 5 modalities of 3x8x8 from the bundled 8x8 digits (offline)."""
    return load_polymnist("digits", split, None, binarize, seed, False)


# ---------------------------------------------------------------------------- MNIST-SVHN-Text

SVHN_DIR = "SVHN"
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
#: md5 of torchvision's downloads (its ``SVHN.split_list``).
SVHN_MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
}
MAX_PER_CLASS = 10_000
PAPER_REPEATS = 20  # Sutter et al.'s data_multiplications (Shi et al.'s script: 30)
MNIST_DIGIT = Modality("m", (1, 28, 28), "bernoulli")


def pair_by_class(
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    repeats: int,
    generator: torch.Generator,
    max_per_class: int = MAX_PER_CLASS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shi et al. 2019's pairing: per class, the first ``n = min(#a, #b, max)`` indices of each
    set matched by two independent random permutations, ``repeats`` times."""
    out_a, out_b = [], []
    for c in torch.unique(labels_a).tolist():
        idx_a = (labels_a == c).nonzero().squeeze(1)
        idx_b = (labels_b == c).nonzero().squeeze(1)
        n = min(len(idx_a), len(idx_b), max_per_class)
        idx_a, idx_b = idx_a[:n], idx_b[:n]
        for _ in range(repeats):
            out_a.append(idx_a[torch.randperm(n, generator=generator)])
            out_b.append(idx_b[torch.randperm(n, generator=generator)])
    if not out_a:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(out_a), torch.cat(out_b)


def read_svhn(path: str | os.PathLike, md5: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``(n, 3, 32, 32)`` and class indices (label 10 means 0) of an SVHN ``.mat``."""
    import scipy.io

    from pixyz_zoo.datasets.idx import check_md5

    if md5 is not None:
        check_md5(path, md5)
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises several types for a bad file
        raise ValueError(
            f"{path}: not a readable .mat file ({err}); delete it and download it again"
        ) from err
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected the keys 'X' and 'y' of SVHN's cropped-digit format")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise ValueError(
            f"{path}: 'X' has shape {x.shape} for {len(y)} labels, expected (32, 32, 3, {len(y)})"
        )
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise ValueError(f"{path}: labels range over {y.min()}..{y.max()}, expected 1..10")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, torch.from_numpy(y % 10)


def _missing_message(split: str, root: Path, missing: list[Path]) -> str:
    env = os.environ.get(DATA_ROOT_ENV)
    env_note = f"currently {env!r}" if env else "currently unset"
    return "\n".join(
        [
            f"dataset 'mnist-svhn-text' ({split} split) needs these files, which are missing:",
            *(f"  {path.absolute()}" for path in missing),
            "(MNIST idx files may also be uncompressed, the same names without '.gz').",
            f"Data root in use: {root} (absolute: {root.resolve()}).",
            "Fix: put MNIST's idx files in <root>/MNIST/raw/ and SVHN's cropped digits in "
            "torchvision's format in <root>/SVHN/ (train_32x32.mat, test_32x32.mat), or pass "
            "`--download` (download=True) to fetch them with torchvision (needs a network): "
            "torchvision.datasets.MNIST(root, download=True) and "
            f"torchvision.datasets.SVHN(root/'SVHN', split='{split}', download=True). Point the data "
            f"root elsewhere with `--data-root DIR` (root=...) or {DATA_ROOT_ENV} ({env_note}).",
            "No SVHN at hand? 'trimodal-mnist' (MNIST t10k files only) and 'trimodal-digits' (no "
            "files) have the same modalities m, s, t.",
        ]
    )


def _download_svhn(root: Path, split: str) -> None:
    import torchvision.datasets

    fetch_with_torchvision(
        lambda: torchvision.datasets.SVHN(str(root / SVHN_DIR), split=split, download=True),
        f"SVHN ({split})",
        root / SVHN_DIR,
        "check the network, or copy the .mat file there by hand",
        folders=(root / SVHN_DIR, root),
    )


def load_mnist_svhn_text(
    split: str = "train",
    root: str | os.PathLike | None = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
    repeats: int = 1,
) -> MultimodalDataset:
    """MNIST-SVHN-Text (Shi et al. 2019; Sutter et al. 2020, 2021): ``m``, ``s``, ``t`` of one digit.

    Reads ``<root>/MNIST/raw/{train,t10k}-*-ubyte.gz`` and ``<root>/SVHN/{train,test}_32x32.mat``.
    ``repeats`` permutation rounds per class (papers: 20, i.e. 1,121,360 train pairs, ~19.8 GB as
    float32; default 1: 56,068 train / 10,000 test pairs). ``.source_index`` maps ``m``/``s`` to
    the rows of the MNIST split and of the SVHN file.
    """
    from pixyz_zoo.datasets import mnist
    from pixyz_zoo.datasets.idx import find_idx_file

    _check_split(split)
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    root = resolve_data_root(root)
    mnist_dir = mnist.raw_dir(root, mnist.MNIST_DIR)
    mnist_names = mnist.SPLIT_FILES[split]
    svhn_path = root / SVHN_DIR / SVHN_FILES[split]

    def missing() -> list[Path]:
        out = [mnist_dir / name for name in mnist_names if find_idx_file(mnist_dir, name) is None]
        return out + ([] if svhn_path.is_file() else [svhn_path])

    absent = missing()
    if absent and download:
        if any(path.parent == mnist_dir for path in absent):
            mnist._download("MNIST", root, train=split == "train")
        if svhn_path in absent:
            _download_svhn(root, split)
        absent = missing()
    if absent:
        raise FileNotFoundError(_missing_message(split, root, absent))
    x_m, y_m = mnist.read_split(
        "mnist-svhn-text", mnist.MNIST_DIR, split, root, mnist.MNIST_MD5, False, "MNIST"
    )
    labels_m = y_m.argmax(1)
    x_s, labels_s = read_svhn(svhn_path, SVHN_MD5.get(svhn_path.name))
    g = stream(seed, split, "mnist-svhn-text")
    idx_m, idx_s = pair_by_class(labels_m, labels_s, int(repeats), g)
    order = torch.randperm(len(idx_m), generator=g)
    idx_m, idx_s = idx_m[order], idx_s[order]
    labels = labels_m[idx_m]
    dataset = MultimodalDataset(
        "mnist-svhn-text",
        {"m": x_m[idx_m], "s": x_s[idx_s].float().div_(255.0), "t": digit_text(labels, g)},
        {"m": MNIST_DIGIT, "s": STREET_DIGIT, "t": TEXT},
        binarize=binarize,
        seed=seed,
        labels=labels,
        classes=DIGIT_LABELS,
    )
    dataset.source_index = {"m": idx_m, "s": idx_s}
    return dataset
