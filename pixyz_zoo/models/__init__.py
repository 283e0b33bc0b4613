"""Models, one module per paper family, and the registry that maps CLI names to them."""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pixyz_zoo.checks import unknown_name
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models.base import ZooModel
from pixyz_zoo.models.beta_vae import AnnealedVAE, BetaTCVAE, BetaVAE, FactorVAE
from pixyz_zoo.models.conditional import CMMA, CVAE
from pixyz_zoo.models.distilled import DistilledMultimodalVAE
from pixyz_zoo.models.hierarchical_jmvae import HierarchicalJMVAE
from pixyz_zoo.models.iterative import IterativeVAE, RefinedVAE
from pixyz_zoo.models.jmvae import JMVAE, JMVAEKL, MVAE, TELBO
from pixyz_zoo.models.jmvae_gan import JMVAEGAN
from pixyz_zoo.models.mfm import MFM
from pixyz_zoo.models.mixtures import MMVAE, MoPoE
from pixyz_zoo.models.mvtcae import MVTCAE
from pixyz_zoo.models.translation import Translation
from pixyz_zoo.models.vae import VAE

MODELS: dict[str, type[ZooModel]] = {
    cls.name: cls
    for cls in (
        VAE,
        BetaVAE,
        AnnealedVAE,
        BetaTCVAE,
        FactorVAE,
        JMVAE,
        JMVAEKL,
        JMVAEGAN,
        TELBO,
        MVAE,
        HierarchicalJMVAE,
        CVAE,
        CMMA,
        MMVAE,
        MoPoE,
        MVTCAE,
        IterativeVAE,
        RefinedVAE,
        DistilledMultimodalVAE,
        MFM,
        Translation,
    )
}


def register_model(cls: type[ZooModel]) -> type[ZooModel]:
    """Class decorator: make ``cls`` available to ``build_model`` and the CLI as ``cls.name``."""
    MODELS[cls.name] = cls
    _checks_its_options(cls)
    return cls


def _checks_its_options(cls: type[ZooModel]) -> None:
    """Make ``cls(modalities, **options)`` check its options as :func:`build_model` does (a model built
    directly took ``z_dim=2.5`` or ``hidden=32`` and failed inside torch). Only the class built
    checks them: a subclass of one's own, with options of its own, is built as it is written."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: ZooModel, *args: Any, **kwargs: Any) -> None:
        if type(self) is cls:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:
                validate_options(cls.name, kwargs)  # names an unknown option and the model's options
                raise
            validate_options(cls.name, dict(list(bound.arguments.items())[2:]))  # after self, modalities
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]


def model_options(name: str) -> dict[str, Any]:
    """The constructor options of a registered model and their defaults."""
    signature = inspect.signature(get_model_class(name).__init__)
    return {
        p.name: p.default
        for p in list(signature.parameters.values())[2:]
        if p.kind is p.POSITIONAL_OR_KEYWORD
    }


def get_model_class(name: str) -> type[ZooModel]:
    if name not in MODELS:
        raise KeyError(unknown_name("model", name, MODELS))
    return MODELS[name]


#: Lower bounds that annotations cannot say, by option name: (bound, whether the bound is allowed).
#: Without an entry, an ``int`` (a size, a dimension, a count) is >= 1 and a ``float`` (a weight)
#: is >= 0; both must be finite.
OPTION_BOUNDS: dict[str, tuple[float, bool]] = {
    "lr": (0.0, False),
    "clip_grad_norm": (0.0, False),
    "decoder_scale": (0.0, False),
    "refine_steps": (0, True),
    "refine_lr": (0.0, False),
    "mmd_bandwidth": (0.0, False),
}
#: The strings a ``str`` option accepts, by option name (other ``str`` options take any string; a
#: constructor may instead annotate an option with ``typing.Literal`` of its choices).
OPTION_CHOICES: dict[str, tuple[str, ...]] = {
    "arch": ("mlp", "conv", "celeba"),
    "decoder_scale": ("learned", "per-example"),
    "init": ("encoder", "prior"),
    "refine_rule": ("adam", "sgd"),
}
_DEFAULT_BOUNDS: dict[type, tuple[float, bool]] = {int: (1, True), float: (0.0, True)}


def option_types(name: str) -> dict[str, Any]:
    """The annotated type of each constructor option of model ``name`` (``Any`` where unknown)."""
    init = get_model_class(name).__init__
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an annotation that does not resolve: check that option's name only
        hints = {}
    return {key: hints.get(key, Any) for key in model_options(name)}


def _bound(option: str, kind: type) -> tuple[float, bool]:
    return OPTION_BOUNDS.get(option, _DEFAULT_BOUNDS[kind])


def _conforms(value: Any, hint: Any, option: str) -> bool:
    """Whether ``value`` is of type ``hint`` (and in the option's range / choices)."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:  # the constructor names its choices
        return isinstance(value, str) and value in args
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg, option) for arg in args)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float) if hint is float else int):
            return False
        low, inclusive = _bound(option, hint)
        return math.isfinite(value) and (value >= low if inclusive else value > low)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str) and (option not in OPTION_CHOICES or value in OPTION_CHOICES[option])
    if origin in (list, tuple, Sequence, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return all(_conforms(v, item, option) for v in value)
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, dict):
            return False
        key, item = args if len(args) == 2 else (Any, Any)
        return all(_conforms(k, key, option) and _conforms(v, item, option) for k, v in value.items())
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a typing construct this check does not know: let the constructor decide


def describe_type(hint: Any, option: str = "") -> str:
    """``hint`` in words, with the option's range or choices: ``an int >= 1``, ``a list of ints >= 1``."""
    parts = _alternatives(hint, option, plural=False)
    return ", ".join(parts[:-1]) + f" or {parts[-1]}" if len(parts) > 1 else parts[0]


def _alternatives(hint: Any, option: str, plural: bool) -> list[str]:
    if hint is Any:
        return ["values" if plural else "any value"]
    if hint is None or hint is type(None):
        return ["None"]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return [repr(choice) for choice in args]
    if origin in (typing.Union, types.UnionType):
        return [part for arg in args for part in _alternatives(arg, option, plural)]
    if hint in (int, float):
        low, inclusive = _bound(option, hint)
        word = {int: ("an int", "ints"), float: ("a number", "numbers")}[hint][plural]
        return [f"{word} {'>=' if inclusive else '>'} {low:g}"]
    if hint is str:
        if option in OPTION_CHOICES:
            return [repr(choice) for choice in OPTION_CHOICES[option]]
        return ["strings" if plural else "a string"]
    if hint is bool:
        return ["True", "False"]
    if origin in (list, tuple, Sequence, typing.Sequence):
        items = " or ".join(_alternatives(args[0] if args else Any, option, plural=True))
        return [f"{'lists' if plural else 'a list'} of {items}"]
    if origin in (dict, Mapping, typing.Mapping):
        key, item = args if len(args) == 2 else (Any, Any)
        keys = " or ".join(_alternatives(key, "", plural=True))
        items = " or ".join(_alternatives(item, option, plural=True))
        return [f"{'dicts' if plural else 'a dict'} from {keys} to {items}"]
    return [getattr(hint, "__name__", str(hint))]


def validate_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check constructor ``options`` of model ``name`` against its annotated types and ranges.

    Raises ``TypeError`` for an unknown option and ``ValueError`` naming the option, the value
    and the expected type for a bad value, before anything is built, loaded or written.
    """
    types_ = option_types(name)
    unknown = sorted(set(options) - set(types_))
    if unknown:
        raise TypeError(f"model {name!r} has no option(s) {unknown}; its options are {sorted(types_)}")
    problems = []
    for key, value in options.items():
        if not _conforms(value, types_[key], key):
            expected = describe_type(types_[key], key)
            if isinstance(value, str) and value[:1] in "[({":
                expected += f"; {value!r} is not a well-formed Python literal: check its brackets"
            problems.append(f"{key}={value!r} (expected {expected})")
    if problems:
        raise ValueError(f"model {name!r}: invalid option value(s): {'; '.join(problems)}")
    return dict(options)


def build_model(name: str, modalities: dict[str, Modality], **options: Any) -> ZooModel:
    """Build the registered model ``name`` on ``modalities`` with constructor ``options`` (checked by
    the class itself, see :func:`_checks_its_options`)."""
    return get_model_class(name)(modalities, **options)


for _cls in MODELS.values():
    _checks_its_options(_cls)


__all__ = [
    "CMMA",
    "CVAE",
    "JMVAE",
    "JMVAEKL",
    "JMVAEGAN",
    "MODELS",
    "MMVAE",
    "MVAE",
    "MFM",
    "MVTCAE",
    "MoPoE",
    "TELBO",
    "Translation",
    "VAE",
    "AnnealedVAE",
    "BetaTCVAE",
    "BetaVAE",
    "FactorVAE",
    "HierarchicalJMVAE",
    "DistilledMultimodalVAE",
    "IterativeVAE",
    "RefinedVAE",
    "ZooModel",
    "build_model",
    "describe_type",
    "get_model_class",
    "model_options",
    "option_types",
    "register_model",
    "validate_options",
]
