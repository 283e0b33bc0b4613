"""Every registered model, built with tiny float64 networks on the first small dataset it accepts."""

from __future__ import annotations

import torch

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.models import MODELS, build_model, model_options

TINY = {"hidden": [16], "z_dim": 2, "style_dim": 2}
DATASETS = ("digits", "trimodal-digits")


def built(name: str, datasets: tuple[str, ...] = DATASETS):
    """``name`` with tiny float64 networks on the first of ``datasets`` it accepts, and that dataset
    (its test split, binarised once)."""
    for dataset in datasets:
        data = load_dataset(dataset, "test", binarize="fixed")
        if MODELS[name].needs_labels:
            data = data.with_labels()
        options = {k: v for k, v in TINY.items() if k in model_options(name)}
        if "target" in model_options(name):
            options["target"] = next(iter(data.modalities))
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # float64: rounding far below what the tests compare
        try:
            return build_model(name, data.modalities, **options), data
        except (ValueError, KeyError):
            continue
        finally:
            torch.set_default_dtype(default)
    raise AssertionError(f"{name} accepts none of {datasets}")
