"""One declaration per modality: its variable name, shape and likelihood family.

Models, metrics, plots and datasets all read a :class:`Modality` instead of re-deriving
shapes, so a batch ``{"x": images, "y": labels}`` is checked in one place.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from pixyz_zoo.checks import check_count

LIKELIHOODS = ("bernoulli", "categorical", "gaussian", "laplace")


@dataclass(frozen=True)
class Modality:
    """A named observed variable.

    Attributes:
        name: variable name used in batches and in the printed formulas (``"x"``).
        shape: shape of one example, without the batch dimension: ``(1, 28, 28)`` for an image,
            ``(10,)`` for a one-hot label, ``(8, 71)`` for a text of 8 one-hot characters (a
            categorical modality of shape ``(length, classes)``: one category per position).
        likelihood: family of the decoder ``p(name|z)``: one of ``LIKELIHOODS``.
        labels: optional names of the categories (categorical modalities) for plots and reports.
    """

    name: str
    shape: tuple[int, ...]
    likelihood: str
    labels: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"a modality's name is a string such as 'x', got {self.name!r}")
        if not self.name.isidentifier():
            raise ValueError(
                f"modality name {self.name!r} is not a valid variable name; use letters, digits "
                "and underscores (e.g. 'x', 'w', 'x_1')"
            )
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(
                f"modality {self.name!r}: unknown likelihood {self.likelihood!r}; "
                f"choose one of {', '.join(LIKELIHOODS)}"
            )
        shape = (self.shape,) if isinstance(self.shape, int) else self.shape  # Modality("x", 64, ...)
        try:
            sizes = tuple(check_count(size, "size") for size in shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"modality {self.name!r}: its shape is the sizes of one example, integers >= 1, such as "
                f"(1, 28, 28) or (10,); got {self.shape!r}"
            ) from None
        object.__setattr__(self, "shape", sizes)
        object.__setattr__(self, "labels", tuple(self.labels))
        entries = self.shape[-1] if self.shape else 1
        if self.labels and len(self.labels) != entries:
            raise ValueError(
                f"modality {self.name!r}: labels name the {entries} entries of its last dimension "
                f"(shape {self.shape}), got {len(self.labels)}: {list(self.labels)}"
            )
        if self.likelihood == "categorical" and len(self.shape) not in (1, 2):
            raise ValueError(
                f"modality {self.name!r}: a categorical modality is a one-hot vector of shape "
                f"(classes,) or a sequence of them of shape (length, classes), got shape {self.shape}"
            )

    @property
    def dim(self) -> int:
        """Number of scalar entries of one example."""
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def is_label(self) -> bool:
        """A single one-hot class label (categorical of shape ``(classes,)``)."""
        return self.likelihood == "categorical" and len(self.shape) == 1

    @property
    def kind(self) -> str:
        """What the modality is, in words: its likelihood, or a categorical one's form (for messages
        that say why it is not a class label)."""
        if self.is_label:
            return f"a one-hot class label of {self.shape[0]} classes"
        if self.is_sequence:
            return f"a sequence of {self.shape[0]} one-hot symbols of {self.shape[1]} classes"
        if self.likelihood == "categorical":
            return f"categorical of shape {self.shape}"
        return self.likelihood

    @property
    def is_sequence(self) -> bool:
        """A sequence of one-hot symbols, e.g. text (categorical of shape ``(length, classes)``)."""
        return self.likelihood == "categorical" and len(self.shape) == 2

    def check(self, value: torch.Tensor, values: bool = True) -> None:
        """Raise a clear ``ValueError`` when ``value`` is not a batch of this modality (``values=False``:
        its type and shape only, without reading the values: no host sync)."""
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"variable {self.name!r} must be a torch.Tensor, got {type(value).__name__}")
        if self.is_label and value.dim() == 1 and not value.is_floating_point():
            raise ValueError(
                f"variable {self.name!r} holds {len(value)} class indices; the label is one-hot, shape "
                f"(batch, {self.shape[0]}): pass "
                f"torch.nn.functional.one_hot({self.name}, {self.shape[0]}).float()"
            )
        if tuple(value.shape) == self.shape:
            raise ValueError(
                f"variable {self.name!r} has shape {tuple(value.shape)}, one example without the batch "
                f"dimension: a batch of it has shape (1, {', '.join(map(str, self.shape))}) "
                "(value.unsqueeze(0); dataset.first(n) gives the first n examples as one batch)"
            )
        if tuple(value.shape[1:]) != self.shape:
            raise ValueError(
                f"variable {self.name!r} has shape {tuple(value.shape)}, expected "
                f"(batch, {', '.join(map(str, self.shape))}); reshape the data or declare the "
                f"modality with shape {tuple(value.shape[1:])}"
            )
        if values and value.is_floating_point() and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"variable {self.name!r} contains {bad} NaN/inf values; clean or impute the data "
                "before training"
            )
        if values and self.likelihood == "bernoulli" and value.numel():
            low, high = (float(v) for v in torch.aminmax(value.float()))
            if low < 0 or high > 1:
                raise ValueError(
                    f"variable {self.name!r} is declared bernoulli, so its values are probabilities or "
                    f"binary pixels in [0, 1], but they lie in [{low:g}, {high:g}]: divide 8-bit pixels "
                    "by 255, or declare the modality 'gaussian' or 'laplace'"
                )


def variable_name(name: object, what: str = "var") -> str:
    """``name`` when it is one variable's name (a non-empty str), else a ``TypeError`` naming ``what``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what} is one variable's name, a string such as 'z', got {name!r}")
    return name


def variable_names(names: str | Iterable[str]) -> list[str]:
    """Variable names (modalities, latents) as a list; one name may be given alone (``"y1"`` is
    ``["y1"]``, not the list of its letters). The one reading of a ``given`` or ``targets`` argument
    and of a distribution's ``cond_var``."""
    names = [names] if isinstance(names, str) else list(names)
    wrong = [name for name in names if not isinstance(name, str) or not name]
    if wrong:
        raise TypeError(f"variable names are strings such as 'x' or 'z', got {wrong!r} in {names!r}")
    return names


def check_modalities(modalities: Any) -> dict[str, Modality]:
    """``modalities`` as a dict of :class:`Modality` by name, the argument every model is built on;
    anything else (the dataset itself, a dict of tensors) is refused, naming ``data.modalities``."""
    if isinstance(modalities, Mapping) and all(isinstance(m, Modality) for m in modalities.values()):
        return dict(modalities)
    if hasattr(modalities, "modalities"):
        raise TypeError(
            f"a model is built on the data's modalities, not on the {type(modalities).__name__} itself: "
            "pass its .modalities (e.g. train.modalities with train = load_dataset('digits', 'train'))"
        )
    got = (
        f"a dict holding {sorted({type(m).__name__ for m in modalities.values()})}"
        if isinstance(modalities, Mapping)
        else type(modalities).__name__
    )
    raise TypeError(
        f"modalities must be a dict of pixyz_zoo.Modality by name (a dataset's .modalities), got {got}"
    )


def check_declared_by_name(modalities: Mapping[str, Modality]) -> None:
    """Refuse a declaration keyed by another name than its own (``{"x": Modality("y", ...)}``): the
    data would hold ``x`` and describe ``y``."""
    renamed = {key: m.name for key, m in modalities.items() if key != m.name}
    if renamed:
        key, name = next(iter(renamed.items()))
        raise ValueError(
            f"modalities[{key!r}] declares a modality named {name!r}: key each declaration by its own "
            f"name, e.g. {{m.name: m for m in declarations}} (or Modality({key!r}, ...))"
        )


def check_batch_is_dict(batch: object, names: Iterable[str]) -> None:
    """Refuse a batch that is not a dict of tensors by variable name (a bare tensor)."""
    if not isinstance(batch, dict):
        hint = " (dataset.first(n) is a batch of its first n examples)" if hasattr(batch, "first") else ""
        raise TypeError(
            f"a batch must be a dict keyed by variable name, got {type(batch).__name__}; "
            f"e.g. {{{', '.join(repr(n) + ': tensor' for n in names)}}}{hint}"
        )


def check_batch(batch: dict[str, torch.Tensor], modalities: dict[str, Modality], values: bool = True) -> None:
    """Check that ``batch`` holds every declared modality with the declared shape (``values``: and
    finite values)."""
    check_batch_is_dict(batch, modalities)
    missing = [name for name in modalities if name not in batch]
    if missing:
        raise KeyError(
            f"batch is missing variable(s) {missing}; it has {sorted(batch)}. The model expects "
            f"{sorted(modalities)}: rename the keys or build the model on the dataset's modalities"
        )
    for name, modality in modalities.items():
        modality.check(batch[name], values=values)


def nonempty_subsets(names: Iterable[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``names``, by size, each in the order of ``names``.

    ``nonempty_subsets("mst")`` -> ``[(m,), (s,), (t,), (m, s), (m, t), (s, t), (m, s, t)]``.
    """
    names = list(dict.fromkeys(names))
    return [s for size in range(1, len(names) + 1) for s in itertools.combinations(names, size)]
