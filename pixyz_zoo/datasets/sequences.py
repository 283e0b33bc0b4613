r"""``multimodal-sequences``: generated multimodal time series with a known label, known styles and
one modality made the most informative about the label on purpose.

It stands in for the multimodal sentiment data of Tsai et al. (ICLR 2019, "Learning Factorized
Multimodal Representations", sec. 3-4): data modalities named after their language, acoustic and
visual streams, ``l``, ``a`` and ``v`` (by default; any names can be given), each a sequence of
``T`` feature vectors, plus the class label as a categorical modality ``y``.

**Construction** (everything below is drawn from ``seed``; the structure is shared by both
splits, the examples differ). Example ``i`` has

- a class ``y_i`` uniform over ``{0, ..., K-1}`` (``labels``; ``classes`` are ``"0"``..``"K-1"``;
  modality ``y`` is its one-hot code, ``Modality("y", (K,), "categorical")``);
- per data modality ``m`` a style ``s_m,i in R^2 ~ N(0, I)``, independent of the class and of the
  other modalities' styles (``dataset.styles[m]``, shape ``(N, 2)``).

Modality ``m`` (dimension ``d_m``) at time ``t = 0..T-1`` is

    x_m,i[t] = alpha_m * g(t) * P_m[y_i]                                  (label)
             + s_m,i[0] cos(w_m t) u_m + s_m,i[1] sin(w_m t) v_m            (style)
             + sigma * eps_m,i[t],      eps ~ N(0, I_{d_m})                 (noise)

with ``g(t) = 1`` on the label-bearing steps ``start <= t < stop`` (default the middle half,
``[T // 4, 3 T // 4)``; ``dataset.label_steps`` is this boolean mask) and 0 elsewhere: the label
acts only there. ``P_m[k]`` (``dataset.prototypes[m]``, shape ``(K, d_m)``) are unit vectors,
orthonormal when ``d_m >= K`` (else independent random directions); ``u_m``, ``v_m`` are fixed
unit vectors (``dataset.style_directions[m]``, shape ``(2, d_m)``) and ``w_m = 2 pi (j + 1) / T``
for the ``j``-th modality (one and more oscillations over the sequence). The style thus sets the
amplitude and phase of a per-modality oscillation over the whole sequence, and the label a
class-specific offset during the label-bearing steps.

**The informative modality** (``informative``, default ``"a"``; ``dataset.informative_modality``)
has the label amplitude ``alpha = strong`` (default 2.0), every other data modality ``alpha =
weak`` (default 0.3), and the noise is the same everywhere (``sigma = noise``, default 0.5), so
the informative modality has the highest label signal-to-noise ratio: per label-bearing step,
``snr_m = alpha_m^2 / (d_m sigma^2)`` (the label's energy over the noise's;
``dataset.label_snr[m]``); ``strong > weak`` is required. With the defaults, a logistic regression
on one modality's flattened sequences (scikit-learn's ``LogisticRegression``, trained on the 2,000
train examples of seed 0, scored on the 500 test ones) classifies 100% of ``a``, 66% of ``l`` and
66% of ``v`` correctly (chance: 25%). Every data modality is declared
``Modality(m, (T, d_m), "gaussian")``: values are of order 1 (the zoo's Gaussian decoder has a
fixed unit scale by default).

Defaults: ``T = 12``, ``d = {"l": 6, "a": 4, "v": 5}``, ``K = 4``; 2,000 train / 500 test
examples. E.g. ``load_multimodal_sequences("train", informative="v", length=20)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from pixyz_zoo.datasets.base import BINARIZE_CHOICES, MultimodalDataset
from pixyz_zoo.datasets.multimodal_digits import stream
from pixyz_zoo.modalities import Modality

NAME = "multimodal-sequences"
DEFAULT_DIMS: dict[str, int] = {"l": 6, "a": 4, "v": 5}
DEFAULT_SIZES = {"train": 2000, "test": 500}
LABEL = "y"
STYLE_DIM = 2


class MultimodalSequences(MultimodalDataset):
    """A :class:`MultimodalDataset` whose ground truth (styles) follows ``subset()``."""

    styles: dict[str, torch.Tensor]

    def subset(self, indices: torch.Tensor | slice) -> MultimodalSequences:
        out = MultimodalSequences.__new__(MultimodalSequences)
        out.__dict__.update(super().subset(indices).__dict__)
        out.styles = {m: s[indices] for m, s in self.styles.items()}
        return out


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(name: str, value: Any, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _check_dims(dims: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(dims, Mapping) or not dims:
        raise ValueError(f"dims must map each data modality's name to its dimension, e.g. {DEFAULT_DIMS}")
    out = {}
    for name, d in dims.items():
        if not isinstance(name, str) or not name.isidentifier() or name == LABEL:
            raise ValueError(
                f"data modality name {name!r} is not allowed: use a variable name other than "
                f"{LABEL!r} (the label modality), e.g. 'l', 'a', 'v'"
            )
        out[name] = _positive_int(f"dims[{name!r}]", d)
    return out


def _unit_rows(rows: int, dim: int, generator: torch.Generator, orthonormal: bool) -> torch.Tensor:
    """``rows`` random unit vectors of ``R^dim`` (orthonormal when asked and ``rows <= dim``)."""
    a = torch.randn(dim, rows, generator=generator, dtype=torch.float64)
    if orthonormal and rows <= dim:
        q, r = torch.linalg.qr(a)
        return (q * torch.sign(torch.diagonal(r))).T.float()  # sign-fixed: a deterministic basis
    return (a / a.norm(dim=0)).T.float()


def make_multimodal_sequences(
    n: int,
    split: str = "train",
    seed: int = 0,
    length: int = 12,
    dims: Mapping[str, int] | None = None,
    classes: int = 4,
    informative: str = "a",
    strong: float = 2.0,
    weak: float = 0.3,
    noise: float = 0.5,
    label_steps: tuple[int, int] | None = None,
) -> MultimodalSequences:
    """``n`` examples of the ``split`` of ``multimodal-sequences`` (construction: module docstring).

    Args:
        length: ``T``, the number of time steps of every data modality.
        dims: data modality name -> feature dimension ``d_m`` (insertion order kept).
        classes: ``K``, the number of classes.
        informative: the data modality whose label amplitude is ``strong`` (the others: ``weak``).
        noise: ``sigma``, the standard deviation of the Gaussian noise of every entry.
        label_steps: ``(start, stop)``: the label acts on steps ``start <= t < stop`` (default
            ``(T // 4, 3 T // 4)``, at least one step).
    """
    n = _positive_int("n", n)
    length = _positive_int("length (T)", length, 2)
    classes = _positive_int("classes (K)", classes, 2)
    dims = _check_dims(DEFAULT_DIMS if dims is None else dims)
    if informative not in dims:
        raise ValueError(f"informative={informative!r} is not a data modality; choose one of {sorted(dims)}")
    strong = _number("strong", strong, positive=True)
    weak = _number("weak", weak, positive=False)
    if not strong > weak:
        raise ValueError(
            f"the informative modality must carry the strongest label signal: strong ({strong:g}) must "
            f"exceed weak ({weak:g})"
        )
    noise = _number("noise", noise, positive=True)
    if label_steps is None:
        label_steps = (length // 4, max(3 * length // 4, length // 4 + 1))
    if (
        not isinstance(label_steps, (tuple, list))
        or len(label_steps) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in label_steps)
        or not 0 <= label_steps[0] < label_steps[1] <= length
    ):
        raise ValueError(
            f"label_steps must be (start, stop) with 0 <= start < stop <= T = {length}, got {label_steps!r}"
        )

    structure = stream(seed, "train", f"{NAME}/structure")  # shared by both splits
    prototypes, directions = {}, {}
    for m, d in dims.items():
        prototypes[m] = _unit_rows(classes, d, structure, orthonormal=True)
        directions[m] = _unit_rows(STYLE_DIM, d, structure, orthonormal=False)

    g = stream(seed, split, f"{NAME}/examples")
    labels = torch.randint(0, classes, (n,), generator=g)
    steps = torch.arange(length, dtype=torch.float32)
    mask = torch.zeros(length, dtype=torch.bool)
    mask[label_steps[0] : label_steps[1]] = True
    tensors, modalities, styles, amplitudes = {}, {}, {}, {}
    for j, (m, d) in enumerate(dims.items()):
        alpha = strong if m == informative else weak
        style = torch.randn(n, STYLE_DIM, generator=g)
        omega = 2 * math.pi * (j + 1) / length
        wave = torch.stack([torch.cos(omega * steps), torch.sin(omega * steps)], 1)  # (T, 2)
        # (n, T, d): sum_k s[k] wave[t, k] direction[k]
        x = torch.einsum("nk,tk,kd->ntd", style, wave, directions[m])
        x += alpha * mask.float()[None, :, None] * prototypes[m][labels][:, None, :]
        x += noise * torch.randn(n, length, d, generator=g)
        tensors[m], styles[m], amplitudes[m] = x, style, alpha
        modalities[m] = Modality(m, (length, d), "gaussian")
    names = tuple(str(k) for k in range(classes))
    tensors[LABEL] = torch.nn.functional.one_hot(labels, classes).float()
    modalities[LABEL] = Modality(LABEL, (classes,), "categorical", labels=names)
    dataset = MultimodalSequences(NAME, tensors, modalities, labels=labels, classes=names)
    dataset.styles = styles
    dataset.informative_modality = informative
    dataset.data_modalities = list(dims)
    dataset.label_steps = mask
    dataset.prototypes = prototypes
    dataset.style_directions = directions
    dataset.label_amplitude = amplitudes
    dataset.noise = noise
    dataset.label_snr = {m: amplitudes[m] ** 2 / (dims[m] * noise**2) for m in dims}
    return dataset


def load_multimodal_sequences(
    split: str = "train",
    root: Any = None,
    binarize: str = "dynamic",
    seed: int = 0,
    download: bool = False,
    n: int | None = None,
    **options: Any,
) -> MultimodalSequences:
    """``multimodal-sequences`` (offline): ``n`` examples (default 2,000 train / 500 test).

    ``options`` go to :func:`make_multimodal_sequences` (``informative``, ``length``, ``dims``,
    ``classes``, ``strong``, ``weak``, ``noise``, ``label_steps``); ``root``, ``binarize`` and
    ``download`` do not apply (generated data, no Bernoulli modality).
    """
    if split not in DEFAULT_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if binarize not in BINARIZE_CHOICES:
        raise ValueError(f"binarize={binarize!r} is not supported; choose one of {BINARIZE_CHOICES}")
    return make_multimodal_sequences(DEFAULT_SIZES[split] if n is None else n, split, seed, **options)


__all__ = ["MultimodalSequences", "load_multimodal_sequences", "make_multimodal_sequences"]
