"""Models, one module per paper family, and the registry that maps CLI names to them."""

from __future__ import annotations

import inspect
from typing import Any

from pixyz_zoo.modalities import Modality
from pixyz_zoo.models.base import ZooModel
from pixyz_zoo.models.beta_vae import AnnealedVAE, BetaTCVAE, BetaVAE, FactorVAE
from pixyz_zoo.models.conditional import CMMA, CVAE
from pixyz_zoo.models.hierarchical_jmvae import HierarchicalJMVAE
from pixyz_zoo.models.jmvae import JMVAE, JMVAEKL, MVAE, TELBO
from pixyz_zoo.models.mixtures import MMVAE, MoPoE
from pixyz_zoo.models.mvtcae import MVTCAE
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
        TELBO,
        MVAE,
        HierarchicalJMVAE,
        CVAE,
        CMMA,
        MMVAE,
        MoPoE,
        MVTCAE,
    )
}


def register_model(cls: type[ZooModel]) -> type[ZooModel]:
    """Class decorator: make ``cls`` available to ``build_model`` and the CLI as ``cls.name``."""
    MODELS[cls.name] = cls
    return cls


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
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_model(name: str, modalities: dict[str, Modality], **options: Any) -> ZooModel:
    """Build the registered model ``name`` on ``modalities`` with constructor ``options``."""
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"model {name!r} has no option(s) {unknown}; its options are {sorted(allowed)}")
    return get_model_class(name)(modalities, **options)


__all__ = [
    "CMMA",
    "CVAE",
    "JMVAE",
    "JMVAEKL",
    "MODELS",
    "MMVAE",
    "MVAE",
    "MVTCAE",
    "MoPoE",
    "TELBO",
    "VAE",
    "AnnealedVAE",
    "BetaTCVAE",
    "BetaVAE",
    "FactorVAE",
    "HierarchicalJMVAE",
    "ZooModel",
    "build_model",
    "get_model_class",
    "model_options",
    "register_model",
]
