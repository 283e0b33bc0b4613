"""The generated ``multimodal-sequences`` dataset: its construction, ground truth and errors."""

from __future__ import annotations

import math

import pytest
import torch

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)
from pixyz_zoo.datasets import DATASETS, load_dataset
from pixyz_zoo.datasets.sequences import (
    DEFAULT_DIMS,
    MultimodalSequences,
    load_multimodal_sequences,
    make_multimodal_sequences,
)


def nearest_mean_accuracy(train: MultimodalSequences, test: MultimodalSequences, m: str) -> float:
    """Accuracy of the nearest class mean of modality ``m``'s label-bearing steps."""
    steps = train.label_steps

    def features(d: MultimodalSequences) -> torch.Tensor:
        return d.tensors[m][:, steps].mean(1)

    means = torch.stack([features(train)[train.labels == k].mean(0) for k in range(len(train.classes))])
    guess = torch.cdist(features(test), means).argmin(1)
    return float((guess == test.labels).float().mean())


def test_registered_offline_with_the_declared_modalities():
    info = DATASETS["multimodal-sequences"]
    assert info.offline
    train, test = load_dataset("multimodal-sequences", "train"), load_dataset("multimodal-sequences", "test")
    assert (len(train), len(test)) == (2000, 500)
    assert list(train.modalities) == ["l", "a", "v", "y"]
    for m, d in DEFAULT_DIMS.items():
        assert train.modalities[m].shape == (12, d) and train.modalities[m].likelihood == "gaussian"
        assert train.styles[m].shape == (2000, 2)
    assert train.modalities["y"].is_label and train.modalities["y"].shape == (4,)
    assert train.classes == ("0", "1", "2", "3")
    assert torch.equal(train.tensors["y"].argmax(1), train.labels)
    assert train.informative_modality == "a" and train.data_modalities == ["l", "a", "v"]
    assert train.label_steps.tolist() == [False] * 3 + [True] * 6 + [False] * 3
    assert max(train.label_snr, key=train.label_snr.get) == "a"


def test_deterministic_given_seed_and_structure_shared_by_the_splits():
    a, b = make_multimodal_sequences(50, seed=3), make_multimodal_sequences(50, seed=3)
    c = make_multimodal_sequences(50, seed=4)
    test = make_multimodal_sequences(50, "test", seed=3)
    for m in ("l", "a", "v", "y"):
        assert torch.equal(a.tensors[m], b.tensors[m])
    assert not torch.equal(a.tensors["a"], c.tensors["a"])
    assert not torch.equal(a.tensors["a"], test.tensors["a"])  # other examples ...
    for m in DEFAULT_DIMS:  # ... of the same classes and style directions
        assert torch.equal(a.prototypes[m], test.prototypes[m])
        assert torch.equal(a.style_directions[m], test.style_directions[m])
        assert not torch.equal(a.prototypes[m], c.prototypes[m])


def test_the_construction_is_recovered_exactly_from_the_stored_ground_truth():
    """x - label - style is the noise: zero mean, standard deviation sigma, independent of the class."""
    d = make_multimodal_sequences(400, seed=1, noise=0.25)
    t = torch.arange(12, dtype=torch.float32)
    for j, m in enumerate(DEFAULT_DIMS):
        omega = 2 * math.pi * (j + 1) / 12
        wave = torch.stack([torch.cos(omega * t), torch.sin(omega * t)], 1)
        style = torch.einsum("nk,tk,kd->ntd", d.styles[m], wave, d.style_directions[m])
        label = (
            d.label_amplitude[m] * d.label_steps.float()[None, :, None] * d.prototypes[m][d.labels][:, None]
        )
        residual = d.tensors[m] - style - label
        assert abs(float(residual.std()) - 0.25) < 0.01
        assert float(residual.mean().abs()) < 0.01
        for k in range(4):  # the residual carries no class
            assert float(residual[d.labels == k].mean(0).abs().max()) < 0.15
    assert d.label_amplitude == {"l": 0.3, "a": 2.0, "v": 0.3}
    assert torch.allclose(d.prototypes["l"] @ d.prototypes["l"].T, torch.eye(4), atol=1e-5)  # d >= K


def test_the_informative_modality_classifies_best_and_only_on_the_label_steps():
    train = make_multimodal_sequences(600, seed=0, informative="v")
    test = make_multimodal_sequences(300, "test", seed=0, informative="v")
    acc = {m: nearest_mean_accuracy(train, test, m) for m in DEFAULT_DIMS}
    assert acc["v"] > 0.95 and acc["v"] > max(acc["l"], acc["a"]) + 0.2, acc
    # outside the label-bearing steps the class means of the informative modality coincide
    outside = train.tensors["v"][:, ~train.label_steps]
    means = torch.stack([outside[train.labels == k].mean(0) for k in range(4)])
    inside = train.tensors["v"][:, train.label_steps]
    means_in = torch.stack([inside[train.labels == k].mean(0) for k in range(4)])
    assert float(means.std(0).max()) < 0.2 and float(means_in.std(0).mean()) > 0.5


def test_options_names_and_subset_keep_the_ground_truth_aligned():
    d = make_multimodal_sequences(
        30, length=8, dims={"s0": 3, "s1": 2}, classes=3, informative="s1", label_steps=(0, 2)
    )
    assert d.modalities["s0"].shape == (8, 3) and d.modalities["y"].shape == (3,)
    assert d.label_steps.tolist() == [True, True] + [False] * 6
    sub = d.subset(slice(5, 10))
    assert isinstance(sub, MultimodalSequences) and len(sub) == 5
    assert torch.equal(sub.styles["s0"], d.styles["s0"][5:10]) and torch.equal(sub.labels, d.labels[5:10])
    assert sub.informative_modality == "s1"
    small = load_multimodal_sequences("test", n=7, informative="l")
    assert len(small) == 7 and small.informative_modality == "l"


@pytest.mark.parametrize(
    "options,message",
    [
        ({"informative": "x"}, "informative='x' is not a data modality; choose one of ['a', 'l', 'v']"),
        ({"strong": 0.2, "weak": 0.3}, "strong (0.2) must exceed weak (0.3)"),
        ({"noise": 0}, "noise must be > 0"),
        ({"weak": -1.0}, "weak must be >= 0"),
        ({"length": 1}, "length (T) must be an integer >= 2"),
        ({"classes": 1}, "classes (K) must be an integer >= 2"),
        ({"n": 0}, "n must be an integer >= 1"),
        ({"dims": {}}, "dims must map each data modality"),
        ({"dims": {"y": 3}}, "'y' is not allowed"),
        ({"dims": {"l": 0}}, "dims['l'] must be an integer >= 1"),
        ({"label_steps": (5, 20)}, "label_steps must be (start, stop) with 0 <= start < stop <= T = 12"),
        ({"label_steps": (3, 3)}, "label_steps must be (start, stop)"),
    ],
)
def test_bad_arguments_are_refused_clearly(options, message):
    kwargs = {"n": 10, **options}
    with pytest.raises(ValueError) as error:
        make_multimodal_sequences(**kwargs)
    assert message in str(error.value)


def test_loader_refuses_a_bad_split_or_binarisation():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_multimodal_sequences("valid")
    with pytest.raises(ValueError, match="binarize='sometimes' is not supported"):
        load_multimodal_sequences("train", binarize="sometimes")
