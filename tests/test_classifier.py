"""The zoo's classifiers and the cross-modal accuracy, on the bundled digits."""

from __future__ import annotations

import pytest
import torch

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.evaluation import classifier as classifier_module
from pixyz_zoo.evaluation.classifier import (
    ModalityClassifier,
    classifier_path,
    cross_modal_accuracy,
    train_classifier,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", binarize="none"), load_dataset("digits", "test", binarize="none")


@pytest.fixture(scope="module")
def mlp(digits):
    return train_classifier(digits[0], "x", "y", epochs=10, seed=0, device="cpu")


class Oracle:
    """A "model" that generates the true other modality: looked up from the real data."""

    def __init__(self, data, prototypes: dict[int, torch.Tensor]) -> None:
        self.label_of = {
            x.numpy().tobytes(): y for x, y in zip(data.tensors["x"], data.tensors["y"], strict=True)
        }
        self.prototypes = prototypes  # class index -> an image of that class

    def generate(self, batch, given, targets, sample_latent=True):
        assert set(batch) == set(given)  # only the given modalities are handed over
        if given == ["x"] and targets == ["y"]:
            return {"y": torch.stack([self.label_of[x.numpy().tobytes()] for x in batch["x"]])}
        if given == ["y"] and targets == ["x"]:
            return {"x": torch.stack([self.prototypes[int(c)] for c in batch["y"].argmax(1)])}
        raise AssertionError(f"unexpected call {given} -> {targets}")


class RandomModel:
    def generate(self, batch, given, targets, sample_latent=True):
        n = len(next(iter(batch.values())))
        (target,) = targets
        if target == "y":
            return {"y": torch.nn.functional.one_hot(torch.randint(10, (n,)), 10).float()}
        return {"x": torch.rand(n, 1, 8, 8)}


def test_classifier_learns_digits_quickly(digits, mlp):
    train, test = digits
    conv = train_classifier(train, "x", "y", epochs=8, arch="conv", seed=0, device="cpu")
    assert isinstance(mlp, ModalityClassifier) and mlp.input == "x" and mlp.label == "y"
    assert mlp.classes == tuple(str(i) for i in range(10))
    assert mlp.accuracy(test) > 0.85
    assert conv.accuracy(test) > 0.85
    predicted = mlp.predict(test.tensors["x"][:7])
    assert predicted.shape == (7,) and predicted.dtype == torch.long
    # an untrained classifier is near chance: the accuracy measures something
    assert train_classifier(train, "x", "y", epochs=0, device="cpu").accuracy(test) < 0.4


def test_training_is_deterministic_and_leaves_global_rng_alone(digits):
    train = digits[0].subset(slice(0, 300))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = train_classifier(train, epochs=2, seed=5, device="cpu")
    assert torch.equal(torch.rand(3), expected)
    b = train_classifier(train, epochs=2, seed=5, device="cpu")
    c = train_classifier(train, epochs=2, seed=6, device="cpu")
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


def test_cache_trains_once(digits, tmp_path, monkeypatch):
    train, test = digits
    train = train.subset(slice(0, 400))
    first = train_classifier(train, epochs=3, seed=0, cache_dir=tmp_path, device="cpu")
    files = list(tmp_path.glob("classifier-digits-x-y-*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def refuse(*args, **kwargs):
        raise AssertionError("trained again although the classifier is cached")

    monkeypatch.setattr(classifier_module, "_fit", refuse)
    again = train_classifier(train, epochs=3, seed=0, cache_dir=tmp_path, device="cpu")
    for p1, p2 in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(p1, p2)
    assert again.accuracy(test) == first.accuracy(test)
    # another setting, or other data under the same name, is another file
    with pytest.raises(AssertionError, match="trained again"):
        train_classifier(train, epochs=4, seed=0, cache_dir=tmp_path, device="cpu")
    with pytest.raises(AssertionError, match="trained again"):
        train_classifier(digits[0].subset(slice(0, 401)), epochs=3, seed=0, cache_dir=tmp_path, device="cpu")
    monkeypatch.undo()
    # a damaged file is trained again, with a warning, and replaced
    files[0].write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="ignoring the cached classifier"):
        repaired = train_classifier(train, epochs=3, seed=0, cache_dir=tmp_path, device="cpu")
    for p1, p2 in zip(first.parameters(), repaired.parameters(), strict=True):
        assert torch.equal(p1, p2)
    torch.load(files[0], weights_only=True)


def test_cache_file_name(tmp_path):
    path = classifier_path(tmp_path, "attribute mnist/10k", "x", "y2", {"a": 1})
    assert path.parent == tmp_path and path.name.startswith("classifier-attribute_mnist_10k-x-y2-")
    assert path != classifier_path(tmp_path, "attribute mnist/10k", "x", "y2", {"a": 2})


def test_oracle_scores_one_and_random_near_chance(digits, mlp):
    train, test = digits
    # prototypes: for each class, a real test image the classifier gets right
    predicted = mlp.predict(test.tensors["x"])
    truth = test.tensors["y"].argmax(1)
    prototypes = {c: test.tensors["x"][(predicted == c) & (truth == c)][0] for c in range(10)}
    oracle = Oracle(test, prototypes)
    assert cross_modal_accuracy(oracle, test, ["x"], "y") == 1.0
    assert cross_modal_accuracy(oracle, test, ["y"], "x", classifier=mlp) == 1.0
    chance = cross_modal_accuracy(RandomModel(), test, ["x"], "y")
    assert 0.03 < chance < 0.2
    assert cross_modal_accuracy(RandomModel(), test, ["y"], "x", classifier=mlp) < 0.35


def test_truth_comes_from_the_label_modality(digits, mlp):
    """A generator returning the prototype of the *next* class scores 0, not 1."""
    test = digits[1]
    predicted = mlp.predict(test.tensors["x"])
    truth = test.tensors["y"].argmax(1)
    prototypes = {(c + 1) % 10: test.tensors["x"][(predicted == c) & (truth == c)][0] for c in range(10)}
    assert cross_modal_accuracy(Oracle(test, prototypes), test, ["y"], "x", classifier=mlp) == 0.0


def test_errors(digits, mlp):
    train, test = digits
    with pytest.raises(ValueError, match="pass a classifier"):
        cross_modal_accuracy(RandomModel(), test, ["y"], "x")
    with pytest.raises(KeyError, match=r"given modality \['w'\]"):
        cross_modal_accuracy(RandomModel(), test, ["w"], "x", classifier=mlp)
    accuracies = []
    for given in ("y", ["y"]):  # one modality may be named alone, as model.generate takes it
        torch.manual_seed(0)
        accuracies.append(cross_modal_accuracy(RandomModel(), test, given, "x", classifier=mlp))
    assert accuracies[0] == accuracies[1]
    with pytest.raises(ValueError, match="'x' is bernoulli, not one class label"):
        train_classifier(train, input="y", label="x", epochs=0)
    with pytest.raises(KeyError, match="not a modality of the dataset 'digits'"):
        train_classifier(train, input="x", label="w", epochs=0)
    with pytest.raises(ValueError, match="arch='conv' needs an image"):
        train_classifier(train, input="y", label="y", arch="conv", epochs=0)
    with pytest.raises(ValueError, match="shape"):
        mlp.predict(torch.zeros(3, 1, 28, 28))


def test_a_missing_label_modality_points_to_the_datasets_class_labels():
    """``train_classifier(trimodal, "m")`` said only "'y' is not a modality": the digit of
    MNIST-SVHN-Text-like data is ``data.labels``, which ``label=None`` trains on."""
    data = load_dataset("trimodal-digits", "test").subset(slice(0, 20))
    with pytest.raises(KeyError, match=r"'y' is not a modality.*class labels \(data\.labels\): label=None"):
        train_classifier(data, "m", epochs=0)
    assert train_classifier(data, "m", label=None, epochs=0, device="cpu").classes


def test_a_text_modality_is_named_a_sequence_not_one_class_label():
    """Text is categorical too; the message said "'t' is categorical, not categorical"."""
    test = load_dataset("trimodal-digits", "test").subset(slice(0, 10))
    named = r"'t' is a sequence of 8 one-hot symbols of 71 classes, not one class label"
    with pytest.raises(ValueError, match=named + ": pass a classifier"):
        cross_modal_accuracy(RandomModel(), test, ["m"], "t")
    with pytest.raises(ValueError, match=named):
        train_classifier(test, input="m", label="t", epochs=0)
