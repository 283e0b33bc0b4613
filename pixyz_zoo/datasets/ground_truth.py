"""Ground-truth data: observations generated from known, discrete factors of variation.

Disentanglement metrics (Higgins et al. 2017, "beta-VAE: Learning basic visual concepts with a
constrained variational framework", section 3, and its successors) need more than a dataset of
images: they fix some factors, vary others and render the matching observations. The interface
below (the idea of disentanglement_lib's ground-truth data, written anew) is shared by those
metrics and by the datasets:

- ``factor_names`` / ``factor_sizes``: each factor takes the integer values ``0 .. size - 1``;
  every combination of factor values is one point of the *factor grid*;
- :meth:`GroundTruthData.sample_factors` draws factor combinations uniformly;
- :meth:`GroundTruthData.sample_observations_from_factors` renders (or looks up) the matching
  observations, a float tensor ``(n, C, H, W)`` in [0, 1];
- :meth:`GroundTruthData.to_dataset` freezes a seeded set of examples into a
  :class:`GroundTruthDataset`: a :class:`~pixyz_zoo.datasets.base.MultimodalDataset` with the
  single variable ``{"x": image}`` (models only read ``x``) whose factors are kept *beside* the
  tensors, as the integer array ``dataset.factors`` aligned with the examples, with the generator
  itself as ``dataset.ground_truth``. The factors are deliberately not a modality: no model
  should be able to condition on them by accident.

A factor combination's *index* in the grid is its mixed-radix number over ``factor_sizes`` with
the last factor varying fastest (the order of the dSprites file, Matthey et al. 2017).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import numpy as np
import torch

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.modalities import Modality

SPLITS = ("train", "test")
#: Grids up to this many combinations are split by one seeded permutation (disjoint train/test);
#: larger grids draw each split independently (with a split-specific seed, overlap possible).
MAX_PERMUTED_GRID = 50_000_000


def mixed_radix_strides(sizes: Sequence[int]) -> np.ndarray:
    """Strides of the mixed-radix index over ``sizes`` (last factor fastest)."""
    strides = np.ones(len(sizes), dtype=np.int64)
    for i in range(len(sizes) - 2, -1, -1):
        strides[i] = strides[i + 1] * int(sizes[i + 1])
    return strides


def split_grid_indices(num_combinations: int, n: int, split: str, seed: int = 0) -> np.ndarray:
    """Grid indices of the ``n`` examples of ``split``.

    For grids of at most ``MAX_PERMUTED_GRID`` combinations, one permutation of the grid is drawn
    from ``seed``: ``train`` is its first ``n`` entries and ``test`` its last ``n``, so the two
    splits never share a factor combination while ``n_train + n_test <= num_combinations``, and
    no combination repeats within a split. Larger grids draw each split independently with
    replacement, from the seed sequence ``(seed, 0)`` for train and ``(seed, 1)`` for test.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of examples must be a positive integer, got {n}")
    if num_combinations <= MAX_PERMUTED_GRID:
        if n > num_combinations:
            raise ValueError(
                f"asked for {n} distinct examples but the factor grid has only {num_combinations} "
                "combinations; ask for fewer"
            )
        order = np.random.default_rng(seed).permutation(num_combinations)
        return order[:n] if split == "train" else order[num_combinations - n :]
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    return rng.integers(0, num_combinations, size=n)


class GroundTruthData(abc.ABC):
    """Observations generated from known discrete factors (see the module docstring).

    Subclasses set the class attributes below and implement
    :meth:`sample_observations_from_factors`.

    Attributes:
        name: short name used for the datasets built from it.
        factor_names: one name per factor (``("shape", "scale", ...)``).
        factor_sizes: number of values of each factor; factor ``i`` takes ``0 .. size_i - 1``.
        observation_shape: shape of one observation, ``(C, H, W)``.
        likelihood: the family of the observation modality (``"bernoulli"`` for images in [0, 1]).
    """

    name: str = "ground-truth"
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    observation_shape: tuple[int, ...] = ()
    likelihood: str = "bernoulli"

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_combinations(self) -> int:
        """Size of the factor grid, the product of ``factor_sizes``."""
        return math.prod(self.factor_sizes)

    @property
    def modality(self) -> Modality:
        """The observation modality ``x`` (its shape and likelihood)."""
        return Modality("x", tuple(self.observation_shape), self.likelihood)

    def check_factors(self, factors: np.ndarray | Sequence[Sequence[int]] | torch.Tensor) -> np.ndarray:
        """``factors`` as an ``int64`` array ``(n, num_factors)``; a clear error when out of range."""
        if isinstance(factors, torch.Tensor):
            factors = factors.detach().cpu().numpy()
        array = np.asarray(factors)
        if array.ndim == 1 and array.shape[0] == self.num_factors:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != self.num_factors:
            raise ValueError(
                f"{self.name}: factors must have shape (n, {self.num_factors}) with columns "
                f"{self.factor_names}, got shape {array.shape}"
            )
        if array.size and not np.issubdtype(array.dtype, np.integer):
            if not np.array_equal(array, np.round(array)):
                raise ValueError(f"{self.name}: factors must be integer class indices, got {array.dtype}")
        array = array.astype(np.int64, copy=False)
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        bad = (array < 0) | (array >= sizes)
        if bad.any():
            column = int(np.nonzero(bad.any(axis=0))[0][0])
            values = array[:, column]
            raise ValueError(
                f"{self.name}: factor {self.factor_names[column]!r} takes values 0..{sizes[column] - 1}, "
                f"got values in {values.min()}..{values.max()}"
            )
        return array

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor combinations drawn uniformly and independently: ``int64 (n, num_factors)``."""
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return rng.integers(0, sizes, size=(int(n), self.num_factors), dtype=np.int64)

    @abc.abstractmethod
    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        """Observations ``(n, *observation_shape)`` float32 in [0, 1] for ``factors`` ``(n, k)``.

        ``rng`` serves generators with observation noise; the datasets here are deterministic.
        """

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
        """``n`` factor combinations and their observations."""
        factors = self.sample_factors(n, rng)
        return factors, self.sample_observations_from_factors(factors, rng)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """The physical value of each factor (``float64 (n, k)``); by default the class index."""
        return self.check_factors(factors).astype(np.float64)

    def factor_index(self, factors: np.ndarray) -> np.ndarray:
        """Mixed-radix grid index of each factor combination (last factor fastest)."""
        return self.check_factors(factors) @ mixed_radix_strides(self.factor_sizes)

    def factors_from_index(self, index: np.ndarray | int) -> np.ndarray:
        """The factor combinations ``(n, k)`` at grid indices ``index`` (inverse of :meth:`factor_index`)."""
        index = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if index.size and (index.min() < 0 or index.max() >= self.num_combinations):
            raise ValueError(
                f"{self.name}: grid indices must lie in 0..{self.num_combinations - 1}, "
                f"got {index.min()}..{index.max()}"
            )
        strides = mixed_radix_strides(self.factor_sizes)
        return (index[:, None] // strides) % np.asarray(self.factor_sizes, dtype=np.int64)

    def to_dataset(
        self,
        n: int,
        split: str = "train",
        seed: int = 0,
        binarize: str = "none",
        name: str | None = None,
    ) -> GroundTruthDataset:
        """A fixed, seeded set of ``n`` examples as a :class:`GroundTruthDataset`.

        The factor combinations are chosen by :func:`split_grid_indices`: with the same ``seed``,
        the train and test sets are disjoint parts of one permutation of the factor grid.
        ``binarize`` is passed to the dataset (``none`` keeps the rendered values).
        """
        index = split_grid_indices(self.num_combinations, n, split, seed)
        factors = self.factors_from_index(index)
        images = self.sample_observations_from_factors(factors, np.random.default_rng([seed, 2]))
        return GroundTruthDataset(name or self.name, images, factors, self, binarize=binarize, seed=seed)

    def __repr__(self) -> str:
        factors = ", ".join(f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes, strict=True))
        return f"{type(self).__name__}({factors}; x{list(self.observation_shape)}:{self.likelihood})"


class FactorsAsObservations(GroundTruthData):
    """Ground truth whose observation is the factor vector itself (float32, shape ``(k,)``).

    No rendering and no network: the reference case for checking and timing the disentanglement
    metrics (an identity representation of it is a perfectly disentangled code).
    """

    name = "factors"
    likelihood = "gaussian"

    def __init__(self, factor_sizes: Sequence[int], factor_names: Sequence[str] | None = None) -> None:
        self.factor_sizes = tuple(int(size) for size in factor_sizes)
        self.factor_names = (
            tuple(factor_names)
            if factor_names
            else tuple(f"factor{i}" for i in range(len(self.factor_sizes)))
        )
        self.observation_shape = (len(self.factor_sizes),)

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        return torch.as_tensor(self.check_factors(factors), dtype=torch.float32)


class GroundTruthDataset(MultimodalDataset):
    """A :class:`MultimodalDataset` ``{"x": image}`` that knows its examples' factors.

    Attributes:
        ground_truth: the :class:`GroundTruthData` that generated the examples.
        factors: ``int64 (n, num_factors)``; row ``i`` is the factor combination of example ``i``
            (kept outside ``tensors``: models read ``x`` only).
    """

    def __init__(
        self,
        name: str,
        images: torch.Tensor,
        factors: np.ndarray,
        ground_truth: GroundTruthData,
        binarize: str = "none",
        seed: int = 0,
    ) -> None:
        super().__init__(name, {"x": images}, {"x": ground_truth.modality}, binarize=binarize, seed=seed)
        factors = ground_truth.check_factors(factors)
        if len(factors) != len(images):
            raise ValueError(f"dataset {name!r}: {len(factors)} factor rows for {len(images)} images")
        self.ground_truth = ground_truth
        self.factors = factors

    def subset(self, indices: torch.Tensor | slice) -> GroundTruthDataset:
        """The selected examples, with their factors."""
        out = super().subset(indices)
        out.__class__ = type(self)
        rows = indices.cpu().numpy() if isinstance(indices, torch.Tensor) else indices
        out.factors = self.factors[rows]
        return out
