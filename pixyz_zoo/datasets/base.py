"""The dataset interface: every dataset yields dicts keyed by variable name.

A :class:`MultimodalDataset` holds its tensors in memory together with the
:class:`~pixyz_zoo.modalities.Modality` declarations that describe them. Image modalities with
a Bernoulli likelihood are binarised as the papers do: ``dynamic`` (a fresh Bernoulli draw of the
grey levels every time a batch is made), ``fixed`` (one draw, made once from a seed) or ``none``
(grey levels in [0, 1] used as Bernoulli targets).

A dataset's tensors may be moved to a GPU (:meth:`MultimodalDataset.to`): its batches are then
indexed and binarised there. The order of the examples is still drawn on the CPU, from the same
generator as on the CPU; the binarisation draws come from a device generator seeded by one draw of
that CPU generator per pass (:func:`device_generator`), so a resumed run draws the same batches.
"""

from __future__ import annotations

import contextlib
import copy
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pixyz_zoo.checks import check_integer
from pixyz_zoo.modalities import (
    Modality,
    check_batch,
    check_declared_by_name,
    check_modalities,
    variable_names,
)

BINARIZE_CHOICES = ("dynamic", "fixed", "none")
DATA_ROOT_ENV = "PIXYZ_ZOO_DATA"


def device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator for random draws on ``device`` that follows ``generator``: ``generator`` itself when
    it is on ``device`` (or is None: the device's default generator), else a new generator on
    ``device`` seeded by one draw of ``generator`` (so that restoring ``generator``'s state restores
    the draws)."""
    if generator is None:
        return None
    device, own = torch.device(device), generator.device
    if own.type == device.type and own.index in (None, device.index):
        return generator
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$PIXYZ_ZOO_DATA``, else ``./data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return Path("data")


def fetch_with_torchvision(
    fetch: Callable[[], object], what: str, into: Path, by_hand: str, folders: Sequence[Path] = ()
) -> None:
    """Run a torchvision download, ``fetch`` (the only network access). A failure is a
    ``RuntimeError`` naming ``what``, ``into`` and how to place the files ``by_hand``, and leaves
    none of ``folders`` (e.g. ``root/FashionMNIST/raw``, ``root/FashionMNIST``, ``root``) that the
    attempt created behind empty."""
    created = [folder for folder in folders if not folder.exists()]
    try:
        fetch()
    except BaseException as err:  # network errors come in many types; Ctrl-C cleans up too
        for folder in sorted(created, key=lambda path: len(path.parts), reverse=True):
            with contextlib.suppress(OSError):  # only an empty folder goes
                folder.rmdir()
        if not isinstance(err, Exception):
            raise
        raise RuntimeError(
            f"downloading {what} into {into} with torchvision failed ({type(err).__name__}: {err}); {by_hand}"
        ) from err


class MultimodalDataset(Dataset):
    """In-memory dataset of named tensors described by modalities.

    Args:
        name: dataset name (as registered).
        tensors: one tensor per variable, all with the same first dimension, stored in torch's
            default dtype (float32 unless changed), the networks' (integers or NumPy's float64 are
            converted). Bernoulli modalities hold grey levels or binary values in [0, 1].
        modalities: the declaration of each variable in ``tensors``.
        binarize: ``dynamic``, ``fixed`` or ``none`` (see module docstring).
        seed: seed of the fixed binarisation draw.
        labels: optional class index of each example that no model sees (e.g. the digit shown
            by every modality of MNIST-SVHN-Text), for classifiers, coherence and latent probes.
        classes: names of those classes.
    """

    def __init__(
        self,
        name: str,
        tensors: dict[str, torch.Tensor],
        modalities: dict[str, Modality],
        binarize: str = "dynamic",
        seed: int = 0,
        labels: torch.Tensor | None = None,
        classes: tuple[str, ...] = (),
    ) -> None:
        if binarize not in BINARIZE_CHOICES:
            raise ValueError(f"binarize={binarize!r} is not supported; choose one of {BINARIZE_CHOICES}")
        seed = check_integer(seed, "seed", 0)
        modalities = check_modalities(modalities)
        if set(tensors) != set(modalities):
            raise ValueError(
                f"dataset {name!r}: tensors {sorted(tensors)} and modalities "
                f"{sorted(modalities)} must name the same variables"
            )
        check_declared_by_name(modalities)
        sizes = {n: len(t) for n, t in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"dataset {name!r}: variables have different lengths {sizes}")
        check_batch(tensors, modalities)  # before the conversion: class indices are named as such
        # in the dtype the networks' parameters are made in (float32 unless torch's default is changed):
        # NumPy's float64 or integer arrays would meet float32 weights ("mat1 and mat2 must have the
        # same dtype")
        dtype = torch.get_default_dtype()
        tensors = {n: t.to(dtype) for n, t in tensors.items()}
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long)
            if labels.shape != (len(next(iter(tensors.values()))),):
                raise ValueError(
                    f"dataset {name!r}: labels must hold one class index per example, got shape "
                    f"{tuple(labels.shape)} for {sizes} examples"
                )
        self.labels = labels
        self.classes = tuple(classes)
        self.name = name
        self.modalities = dict(modalities)
        self.binarize = binarize
        self.tensors = dict(tensors)
        self._binarized = {n for n, m in modalities.items() if m.is_image and m.likelihood == "bernoulli"}
        if binarize == "fixed":
            g = torch.Generator().manual_seed(seed)
            for n in self._binarized:
                self.tensors[n] = torch.bernoulli(self.tensors[n], generator=g)

    @classmethod
    def without_examples(
        cls, name: str, modalities: Iterable[Modality], classes: tuple[str, ...] | None = None
    ) -> MultimodalDataset:
        """A dataset ``name`` with these modalities and no examples; ``classes``: the names of its
        examples' classes (``labels``), None when its examples carry none. It describes a dataset
        whose files are not read (what a model built on it would read), see
        :meth:`~pixyz_zoo.datasets.DatasetInfo.without_examples`."""
        modalities = {m.name: m for m in modalities}
        tensors = {n: torch.empty(0, *m.shape) for n, m in modalities.items()}
        labels = None if classes is None else torch.empty(0, dtype=torch.long)
        return cls(name, tensors, modalities, labels=labels, classes=classes or ())

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    @property
    def device(self) -> torch.device:
        """Where the tensors are (the CPU unless :meth:`to` moved them)."""
        return next(iter(self.tensors.values())).device

    @property
    def nbytes(self) -> int:
        """The size of the tensors in bytes."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def to(self, device: torch.device | str) -> MultimodalDataset:
        """This dataset with its tensors (and labels) on ``device``: itself when they are there already,
        else a copy (same modalities, binarisation and examples; a ``fixed`` binarisation is kept)."""
        tensors = {n: t.to(device) for n, t in self.tensors.items()}
        labels = self.labels.to(device) if self.labels is not None else None
        if all(tensors[n] is t for n, t in self.tensors.items()) and labels is self.labels:
            return self
        out = copy.copy(self)
        out.tensors, out.labels = tensors, labels
        return out

    def __repr__(self) -> str:
        mods = ", ".join(f"{m.name}{list(m.shape)}:{m.likelihood}" for m in self.modalities.values())
        return f"{type(self).__name__}({self.name!r}, n={len(self)}, {mods}, binarize={self.binarize})"

    def _finish(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict:
        if self.binarize == "dynamic":
            for n in self._binarized:
                batch[n] = torch.bernoulli(batch[n], generator=generator)
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Example ``index`` (negative counts from the end), each modality without a batch dimension."""
        if isinstance(index, str):
            raise TypeError(
                f"dataset[{index!r}]: a dataset is not a batch; where a batch belongs pass "
                f"dataset.first(n) (its first n examples as one batch); dataset.tensors[{index!r}] holds "
                "every example of the variable"
            )
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(
                f"a dataset is indexed by one example's position, got {type(index).__name__}: for several "
                "examples use dataset.first(n) (the first n as one batch), dataset.subset(indices) (a "
                "dataset of them) or dataset.batches(batch_size)"
            ) from None
        n = len(self)
        if not -n <= position < n:
            raise IndexError(f"example {position} is out of range: dataset {self.name!r} holds {n} examples")
        position %= n
        item = {name: t[position : position + 1] for name, t in self.tensors.items()}
        return {name: t[0] for name, t in self._finish(item, None).items()}

    def __getattr__(self, name: str) -> Any:
        """Only called for what the dataset lacks: ``ground_truth`` and ``factors`` of a dataset
        generated without known factors are named as such."""
        if name in ("ground_truth", "factors"):
            raise AttributeError(
                f"dataset {self.__dict__.get('name')!r} has no {name}: its examples come with no known "
                "generative factors. The disentanglement metrics need a dataset that has them "
                "(dsprites-procedural, colored-shapes, dsprites)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Iterate over minibatch dicts, on the dataset's device (see :meth:`to`).

        ``generator`` (a CPU generator) draws the order and, on the CPU, the binarisation; on another
        device the binarisation draws from :func:`device_generator`.
        """
        batch_size = check_integer(batch_size, "batch_size", 1)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator, e.g. torch.Generator().manual_seed(seed); got "
                f"{type(generator).__name__}"
            )
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        device = self.device
        if device.type != "cpu":  # one copy of the order per pass; the batches are indexed on the device
            order = order.to(device)
            generator = device_generator(generator, device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            batch = {name: t[idx] for name, t in self.tensors.items()}
            yield self._finish(batch, generator)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def subset(self, indices: torch.Tensor | slice) -> MultimodalDataset:
        """A dataset of the selected examples (same modalities, same binarisation)."""
        out = MultimodalDataset.__new__(MultimodalDataset)
        out.__dict__.update(self.__dict__)
        out.tensors = {n: t[indices] for n, t in self.tensors.items()}
        if self.labels is not None:
            out.labels = self.labels[indices]
        return out

    def with_labels(self, name: str = "y") -> MultimodalDataset:
        """This dataset plus its class ``labels`` as a one-hot categorical modality ``name``.

        The modality has one category per class (``classes`` names them; without names, one per
        index up to the largest label of this split). A dataset that already has a one-hot label
        modality ``name`` is returned as it is. Models that predict the class (MFM) need it.
        """
        if name in self.modalities:
            if self.modalities[name].is_label:
                return self
            raise ValueError(
                f"dataset {self.name!r} already has a modality {name!r} that is not a one-hot label "
                f"({self.modalities[name].likelihood}, shape {self.modalities[name].shape}); choose "
                "another name for the label modality"
            )
        if self.labels is None:
            raise ValueError(
                f"dataset {self.name!r} has no class labels (its modalities are {sorted(self.modalities)} "
                "and it holds no labels): use a dataset whose examples carry a class"
            )
        classes = self.classes or tuple(str(i) for i in range(int(self.labels.max()) + 1))
        out = copy.copy(self)
        out.tensors = {**self.tensors, name: F.one_hot(self.labels, len(classes)).float()}
        out.modalities = {**self.modalities, name: Modality(name, (len(classes),), "categorical", classes)}
        return out

    def select(self, names: Iterable[str]) -> MultimodalDataset:
        """The same examples with only the modalities ``names`` (in that order); ``labels`` are kept."""
        names = list(dict.fromkeys(variable_names(names)))
        unknown = [n for n in names if n not in self.modalities]
        if unknown:
            raise KeyError(f"dataset {self.name!r} has no modality {unknown}; it has {list(self.modalities)}")
        if not names:
            raise ValueError(
                f"select at least one of the modalities {list(self.modalities)} of {self.name!r}"
            )
        out = copy.copy(self)
        out.tensors = {n: self.tensors[n] for n in names}
        out.modalities = {n: self.modalities[n] for n in names}
        out._binarized = {n for n in self._binarized if n in names}
        return out

    def first(self, n: int) -> dict[str, torch.Tensor]:
        """The first ``n`` examples as one batch (binarised as configured, dynamic with seed 0)."""
        n = check_integer(n, "first(n): n, the number of examples,", 0)  # -1 would drop the last one
        batch = {name: t[:n] for name, t in self.tensors.items()}
        return self._finish(batch, device_generator(torch.Generator().manual_seed(0), self.device))


def check_dataset(data: object, what: str = "data") -> MultimodalDataset:
    """``data`` when it is a :class:`MultimodalDataset` (what the trainer and the evaluations draw
    their batches from); anything else (a DataLoader, a batch) is refused, naming how to make one."""
    if isinstance(data, MultimodalDataset):
        return data
    raise TypeError(
        f"{what} must be a MultimodalDataset, got {type(data).__name__}: load one with "
        "load_dataset(name, split), or wrap tensors with their declarations as "
        "MultimodalDataset(name, {'x': images}, {'x': Modality('x', shape, 'bernoulli')})"
    )
