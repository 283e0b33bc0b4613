"""One typed description of a run: the model and its options, the data, the training, the device.

A :class:`RunSpec` is what a run directory's ``config.json`` holds (:meth:`RunSpec.to_config`,
:meth:`RunSpec.from_config`), what ``pixyz-zoo train`` fills from its flags, what an experiment builds
(``ExperimentContext.fit``) and what a resume compares with the run (:func:`spec_differences`). It is
checked once, when it is constructed: a ``RunSpec`` that exists is a valid one.

Adding a setting means adding one field, with a default (so that the ``config.json`` of older runs
still loads), to the part it belongs to: :class:`ModelSpec`, :class:`DataSpec`, :class:`TrainSpec`
(whose fields are passed to ``Trainer`` by name), or :class:`RunSpec` itself. ``config.json``, the
resume comparison and its messages follow from the field; ``pixyz-zoo train`` fills it from the
argument whose ``dest`` is the setting's name. The field's metadata (:func:`setting`) may say how it is
checked, named and compared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from math import inf
from typing import Any, ClassVar

from pixyz_zoo.checks import unknown_name
from pixyz_zoo.datasets import BINARIZE_CHOICES, DATASETS, resolve_data_root
from pixyz_zoo.models import MODELS, model_options, validate_options
from pixyz_zoo.training import PRECISIONS

Check = Callable[[Any], "str | None"]


def setting(
    *,
    name: str | None = None,
    flag: str | None = None,
    check: Check | None = None,
    resume: bool = False,
    same: Callable[[Any, Any], bool] | None = None,
) -> dict[str, Any]:
    """Field metadata of a run setting.

    ``name``: the setting's name in messages and in ``pixyz-zoo train``'s arguments (default: the
    field's name); ``flag``: its command-line flag (default ``--NAME`` with dashes); ``check``: the
    problem with a value (a phrase such as ``"must be an integer >= 1, got 0"``) or None; ``resume``:
    True when a resume may change it (it is then not compared); ``same``: whether a stored and an
    asked value are the same setting (default: equal as JSON).
    """
    return {"name": name, "flag": flag, "check": check, "resume": resume, "same": same}


def _meta(f: dataclasses.Field, key: str) -> Any:
    return f.metadata.get(key)


def setting_name(f: dataclasses.Field) -> str:
    return _meta(f, "name") or f.name


def setting_flag(f: dataclasses.Field) -> str:
    return _meta(f, "flag") or f"--{setting_name(f).replace('_', '-')}"


def plain(value: Any) -> Any:
    """``value`` as config.json holds it (tuples as lists), so that stored and asked values compare."""
    return json.loads(json.dumps(value, default=str))


def integer_at_least(low: int, optional: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return f"must be an integer >= {low}, got {value!r}"
        return None

    return check


def _non_negative_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < inf:
        return f"must be a number >= 0, got {value!r}"
    return None


def _binarize(value: Any) -> str | None:
    if value not in BINARIZE_CHOICES:
        return f"must be one of {', '.join(BINARIZE_CHOICES)}, got {value!r}"
    return None


def precision_problem(value: Any) -> str | None:
    if value not in PRECISIONS:
        return f"must be one of {', '.join(PRECISIONS)}, got {value!r}"
    return None


def _same_root(stored: str | None, asked: str | None) -> bool:
    """Two data roots are the same when they name the same folder (None: the default root)."""
    return resolve_data_root(stored).resolve() == resolve_data_root(asked).resolve()


class _Part:
    """A part of a run description: its ``config.json`` section and the problems of its values."""

    def to_config(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, section: Mapping[str, Any], where: str) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(section) - names)
        if unknown:
            raise ValueError(
                f"{where} has unknown setting(s) {unknown} (known: {sorted(names)}); it was written by "
                "another version of pixyz-zoo or edited by hand"
            )
        return cls(**section)

    def problems(self) -> list[str]:
        found = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = _meta(f, "check")
            problem = check(getattr(self, f.name)) if check is not None else None
            if problem:
                found.append(f"{setting_name(f)} ({setting_flag(f)}) {problem}")
        return found


@dataclass(frozen=True, eq=False)
class ModelSpec(_Part):
    """A registered model (``pixyz-zoo list``) and its constructor options (those given; a trained
    run's ``config.json`` holds all of them, the model's defaults and what it took from the data).

    Options are kept as given (a tuple stays a tuple for the model's constructor) and compare as
    config.json holds them (``(16,) == [16]``).
    """

    name: str = field(metadata=setting(name="model", flag="MODEL"))
    options: dict[str, Any] = field(default_factory=dict, metadata=setting(flag="-o"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", dict(self.options or {}))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelSpec):
            return NotImplemented
        return self.name == other.name and plain(self.options) == plain(other.options)

    __hash__ = None  # type: ignore[assignment]  # options are a dict


@dataclass(frozen=True)
class DataSpec(_Part):
    """The dataset and which part of it the run reads."""

    dataset: str = "digits"
    #: dataset folder (None: ``$PIXYZ_ZOO_DATA`` or ``./data``)
    root: str | None = field(default=None, metadata=setting(name="data_root", same=_same_root))
    binarize: str = field(default="dynamic", metadata=setting(check=_binarize))
    #: let torchvision download missing files: a permission, not a property of the run
    download: bool = field(default=False, metadata=setting(resume=True))
    #: only the first that many examples of a split (None: all)
    train_examples: int | None = field(default=None, metadata=setting(check=integer_at_least(1, True)))
    test_examples: int | None = field(default=None, metadata=setting(check=integer_at_least(1, True)))
    #: only these modalities of the dataset (None: all)
    modalities: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.root is not None:
            object.__setattr__(self, "root", os.fspath(self.root))
        if self.modalities is not None:
            names = [self.modalities] if isinstance(self.modalities, str) else self.modalities
            object.__setattr__(self, "modalities", tuple(names))


@dataclass(frozen=True)
class TrainSpec(_Part):
    """The training loop's settings: each is a keyword argument of ``Trainer``."""

    epochs: int = field(default=10, metadata=setting(check=integer_at_least(1), resume=True))
    batch_size: int = field(default=100, metadata=setting(check=integer_at_least(1)))
    seed: int = field(default=0, metadata=setting(check=integer_at_least(0)))
    #: KL warm-up length in epochs (0: none)
    warmup_epochs: float = field(default=0.0, metadata=setting(check=_non_negative_number))
    #: processes training data-parallel (torchrun's world size; ``batch_size`` is per process): the
    #: run code records the processes running, and a resume needs as many
    world_size: int = field(
        default=1, metadata=setting(flag="torchrun --nproc_per_node", check=integer_at_least(1))
    )
    #: steps between reads of the training loss and health on the host (the numbers do not depend on it)
    check_every: int = field(default=50, metadata=setting(check=integer_at_least(1), resume=True))
    #: ``fp32``, or ``bf16``: each training step's forward pass and loss under bfloat16 autocast (the
    #: parameters, optimiser and test loss stay float32). A resume may change it: the checkpoint is the
    #: same either way, and each continuation records its precision (``config.json``'s ``resumed``)
    precision: str = field(default="fp32", metadata=setting(check=precision_problem, resume=True))


@dataclass(frozen=True)
class RunSpec:
    """One run: ``model`` (and options), ``data``, ``train``, ``device``; see the module's docstring.

    Constructing one checks it: model options (``TypeError``/``ValueError`` naming the option), the
    dataset (``KeyError``), then every other setting at once (one ``ValueError`` naming each
    problem and its flag). The device is resolved when the run starts (a run made on a GPU can be
    described, and resumed with ``device="cpu"``, where there is none).
    """

    model: ModelSpec
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    device: str = field(default="auto", metadata=setting(resume=True))

    PARTS: ClassVar[tuple[str, ...]] = ("model", "data", "train")

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            object.__setattr__(self, "model", ModelSpec(self.model))
        object.__setattr__(self, "device", str(self.device))
        if self.model.name not in MODELS:
            raise KeyError(unknown_name("model", self.model.name, MODELS))
        validate_options(self.model.name, self.model.options)
        if self.data.dataset not in DATASETS:
            raise KeyError(unknown_name("dataset", self.data.dataset, DATASETS))
        problems = self.train.problems() + self.data.problems()
        if problems:
            raise ValueError("; ".join(problems))

    # ------------------------------------------------------------------ construction
    @classmethod
    def part_type(cls, part: str) -> type:
        """The dataclass of ``part`` (``model``, ``data``, ``train``) in this kind of run description
        (a subclass may declare, say, ``train: MyTrainSpec = field(default_factory=MyTrainSpec)``)."""
        f = next(f for f in dataclasses.fields(cls) if f.name == part)
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory  # type: ignore[return-value]
        return typing.get_type_hints(cls)[part]

    @classmethod
    def settings(cls) -> dict[str, tuple[str | None, dataclasses.Field]]:
        """Every setting by name: the part holding it (None: the run itself) and its field."""
        found: dict[str, tuple[str | None, dataclasses.Field]] = {}
        for f in dataclasses.fields(cls):
            part = f.name if f.name in cls.PARTS else None
            for g in dataclasses.fields(cls.part_type(f.name)) if part else [f]:
                found[setting_name(g)] = (part, g)
        return found

    @classmethod
    def resume_settings(cls) -> list[str]:
        """The settings a resume may change (``resume=True`` in their metadata), by name."""
        return [name for name, (_, f) in cls.settings().items() if _meta(f, "resume")]

    @classmethod
    def from_settings(cls, model: str, **values: Any) -> RunSpec:
        """A run from flat settings by name (``options=``, ``dataset=``, ``data_root=``, ``epochs=``,
        ...), as ``train_run``'s keywords and the CLI's arguments name them; left out: the defaults."""
        return cls(model=ModelSpec(model)).replace(**values)

    def replace(self, **values: Any) -> RunSpec:
        """This run with the settings named in ``values`` (flat names, as :meth:`from_settings`) changed."""
        known = type(self).settings()
        unknown = sorted(set(values) - set(known) - {"options"})
        if unknown:
            raise TypeError(f"unknown run setting(s) {unknown}; the settings are {sorted(known)}")
        changes: dict[str, dict[str, Any]] = {part: {} for part in self.PARTS}
        own: dict[str, Any] = {}
        for key, value in values.items():
            part, f = known[key] if key != "options" else ("model", None)
            target = changes[part] if part else own
            target[f.name if f is not None else "options"] = value
        parts = {
            part: dataclasses.replace(getattr(self, part), **changes[part])
            for part in self.PARTS
            if changes[part]
        }
        return dataclasses.replace(self, **parts, **own)

    # ------------------------------------------------------------------ config.json
    def to_config(self) -> dict[str, Any]:
        """The run's ``config.json`` sections: ``model``, ``options``, ``data``, ``train``, then the run's
        own settings (``device``)."""
        own = {
            f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in self.PARTS
        }
        return {
            "model": self.model.name,
            "options": plain(self.model.options),
            "data": self.data.to_config(),
            "train": self.train.to_config(),
            **own,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RunSpec:
        """The run a ``config.json`` describes (its other entries, such as ``modalities``,
        ``environment`` and ``resumed``, are records of the run, not settings)."""
        own = {
            f.name: config[f.name]
            for f in dataclasses.fields(cls)
            if f.name not in cls.PARTS and f.name in config
        }
        return cls(
            model=cls.part_type("model")(config["model"], config.get("options") or {}),
            data=cls.part_type("data").from_config(config["data"], "config.json's data"),
            train=cls.part_type("train").from_config(config["train"], "config.json's train"),
            **own,
        )


@dataclass(frozen=True)
class Difference:
    """A setting asked for a run that differs from the run's: its name, flag and both values (as
    config.json holds them)."""

    setting: str
    flag: str
    stored: Any
    asked: Any


def spec_differences(stored: RunSpec, asked: RunSpec) -> list[Difference]:
    """The settings of ``asked`` that differ from the run ``stored``, field by field.

    Settings a resume may change (``resume=True`` in their metadata: epochs, device, download,
    check_every, precision) are not compared. Model options are compared for the options ``asked``
    names, against the run's options with the run's model's defaults filled in (an option left out is
    not asked); each is reported under its own name (flag ``-o``).
    """
    found: list[Difference] = []
    for name, (part, f) in type(asked).settings().items():
        if _meta(f, "resume") or (part == "model" and f.name == "options"):
            continue
        old, new = (getattr(getattr(s, part) if part else s, f.name, f.default) for s in (stored, asked))
        same = _meta(f, "same") or (lambda a, b: plain(a) == plain(b))
        if not same(old, new):
            found.append(Difference(name, setting_flag(f), plain(old), plain(new)))
    defaults = model_options(stored.model.name) if stored.model.name in MODELS else {}
    stored_options = {**defaults, **stored.model.options}
    for key, value in asked.model.options.items():
        if plain(stored_options.get(key)) != plain(value):
            found.append(Difference(key, "-o", plain(stored_options.get(key)), plain(value)))
    return found


__all__ = [
    "DataSpec",
    "Difference",
    "ModelSpec",
    "RunSpec",
    "TrainSpec",
    "integer_at_least",
    "plain",
    "setting",
    "spec_differences",
]
