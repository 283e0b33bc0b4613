"""The Python API's arguments as a new user passes them: the dataset where its modalities belong, a
DataLoader or a batch where a dataset belongs, a tensor where a batch belongs. Each is refused with
what to pass instead (they failed deep inside with AttributeError, "dictionary update sequence
element #0 has length 3" or "Tensor.__contains__ only supports Tensor or scalar")."""

from __future__ import annotations

import pytest
import torch

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.evaluation import evaluate_log_likelihood
from pixyz_zoo.models import MODELS, VAE
from pixyz_zoo.training import Trainer


@pytest.fixture(scope="module")
def trimodal():
    return load_dataset("trimodal-digits", "test")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_refuses_a_dataset_in_place_of_its_modalities(name, trimodal):
    with pytest.raises(TypeError, match=r"not on the MultimodalDataset itself: pass its \.modalities"):
        MODELS[name](trimodal)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_refuses_tensors_in_place_of_modalities(name, trimodal):
    with pytest.raises(TypeError, match=r"modalities must be a dict of pixyz_zoo\.Modality.*\['Tensor'\]"):
        MODELS[name](trimodal.first(2))


@pytest.fixture
def vae(digits_train):
    return VAE(digits_train.modalities, z_dim=2, hidden=[8])


def test_the_trainer_refuses_a_dataloader(vae, digits_train):
    loader = torch.utils.data.DataLoader(digits_train.first(8)["x"])
    with pytest.raises(TypeError, match="train_data must be a MultimodalDataset, got DataLoader: load one"):
        Trainer(vae, loader, digits_train)
    with pytest.raises(TypeError, match="test_data must be a MultimodalDataset, got DataLoader"):
        Trainer(vae, digits_train, loader)


def test_the_evaluation_refuses_a_batch(vae, digits_train):
    with pytest.raises(TypeError, match="data must be a MultimodalDataset, got dict"):
        evaluate_log_likelihood(vae, digits_train.first(4), k=2)


def test_generation_refuses_a_tensor_in_place_of_a_batch(vae, digits_train):
    with pytest.raises(
        TypeError, match=r"a batch must be a dict keyed by variable name, got Tensor; e.g. \{'x'"
    ):
        vae.reconstruct(digits_train.first(4)["x"])
