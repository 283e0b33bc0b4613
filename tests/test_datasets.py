import pytest
import torch

from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, MultimodalDataset, load_dataset, resolve_data_root
from pixyz_zoo.modalities import Modality


def test_digits_is_real_and_split_without_overlap():
    train, test = (
        load_dataset("digits", "train", binarize="none"),
        load_dataset("digits", "test", binarize="none"),
    )
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert (
        train.tensors["x"].shape[1:] == (1, 8, 8)
        and 0 <= train.tensors["x"].min() <= train.tensors["x"].max() <= 1
    )
    flat_train = {tuple(v.flatten().tolist()) for v in train.tensors["x"]}
    overlap = sum(tuple(v.flatten().tolist()) in flat_train for v in test.tensors["x"])
    assert overlap < 5  # a handful of digits are pixel-identical in the original data
    assert set(train.tensors["y"].argmax(1).tolist()) == set(range(10))
    assert train.modalities["y"].labels == tuple("0123456789")


def test_binarisation_modes():
    dynamic = load_dataset("digits", binarize="dynamic")
    g = torch.Generator().manual_seed(0)
    first = next(dynamic.batches(64, generator=g))["x"]
    second = next(dynamic.batches(64, generator=g))["x"]
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    fixed = load_dataset("digits", binarize="fixed", seed=3)
    a, b = next(fixed.batches(64))["x"], next(fixed.batches(64))["x"]
    assert set(a.unique().tolist()) == {0.0, 1.0} and torch.equal(a, b)
    assert torch.equal(a, next(load_dataset("digits", binarize="fixed", seed=3).batches(64))["x"])
    grey = next(load_dataset("digits", binarize="none").batches(64))["x"]
    assert ((grey > 0) & (grey < 1)).any()
    with pytest.raises(ValueError, match="binarize='sometimes' is not supported"):
        load_dataset("digits", binarize="sometimes")


def test_batches_cover_the_data_once_and_shuffle():
    data = load_dataset("digits", binarize="none")
    seen = torch.cat([b["y"].argmax(1) for b in data.batches(100)])
    assert len(seen) == len(data) and torch.equal(seen, data.tensors["y"].argmax(1))
    shuffled = torch.cat(
        [b["y"].argmax(1) for b in data.batches(100, shuffle=True, generator=torch.Generator())]
    )
    assert not torch.equal(shuffled, seen) and torch.equal(shuffled.sort().values, seen.sort().values)
    assert data.num_batches(100) == 15 and data.num_batches(100, drop_last=True) == 14
    item = data[3]
    assert set(item) == {"x", "y"} and item["x"].shape == (1, 8, 8)


def test_dataset_declaration_errors():
    x = Modality("x", (2,), "gaussian")
    with pytest.raises(ValueError, match="must name the same variables"):
        MultimodalDataset("bad", {"x": torch.zeros(3, 2)}, {"x": x, "y": x})
    with pytest.raises(ValueError, match="NaN/inf"):
        MultimodalDataset("bad", {"x": torch.tensor([[0.0, float("nan")]])}, {"x": x})
    with pytest.raises(KeyError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_dataset("digits", "valid")


def test_data_root_setting(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert str(resolve_data_root()) == "data"
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert resolve_data_root("elsewhere").name == "elsewhere"
    assert DATASETS["digits"].offline and not DATASETS["mnist"].offline
