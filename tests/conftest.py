"""Shared fixtures. ``import pixyz_zoo`` comes first: it turns Pixyz's parameter cache off."""

from __future__ import annotations

import os

import pytest
import torch

import pixyz_zoo  # noqa: F401, I001
from pixyz_zoo.datasets import load_dataset

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # ``pytest -n N`` runs N worker processes, one per core: a second torch thread each (and in the
    # notebook kernels and subprocesses they start) would only oversubscribe the cores
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_train():
    return load_dataset("digits", "train")


@pytest.fixture(scope="session")
def digits_test():
    return load_dataset("digits", "test")


@pytest.fixture
def tiny_options() -> dict:
    """Small networks so that unit tests run in a second."""
    return {"z_dim": 4, "hidden": [32]}
