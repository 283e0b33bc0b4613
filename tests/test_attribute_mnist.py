"""Attribute MNIST (position x digit), offline on the 8x8 digits and on real/fake MNIST files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, load_dataset, mnist
from pixyz_zoo.datasets.attribute_mnist import (
    COMBINED_LABELS,
    combined_label,
    make_attribute_dataset,
    place_on_canvas,
)
from tests.fake_files import write_idx


def check_layout(data, source_images: torch.Tensor | None = None) -> None:
    """The ink is on the stated half, the other half is blank, the digit label is 1 or 2."""
    x = data.tensors["x"]
    width = x.shape[-1] // 2
    left, right = x[..., :width], x[..., width:]
    position = data.tensors["y1"].argmax(1)
    assert data.tensors["y1"].sum(1).eq(1).all() and data.tensors["y2"].sum(1).eq(1).all()
    on_left = position == 0
    assert left[~on_left].eq(0).all() and right[on_left].eq(0).all()
    assert left[on_left].flatten(1).sum(1).gt(0).all() and right[~on_left].flatten(1).sum(1).gt(0).all()
    assert 0 < on_left.float().mean() < 1  # both positions occur
    if source_images is not None:
        pasted = torch.where(on_left[:, None, None, None], left, right)
        torch.testing.assert_close(pasted, source_images)


def test_registered():
    assert {"attribute-mnist", "attribute-mnist-full", "attribute-digits"} <= set(DATASETS)
    assert DATASETS["attribute-digits"].offline and not DATASETS["attribute-mnist"].offline


def test_attribute_digits_layout_and_labels():
    source = load_dataset("digits", "test", binarize="none")
    keep = torch.isin(source.tensors["y"].argmax(1), torch.tensor([1, 2]))
    data = load_dataset("attribute-digits", "test", binarize="none")
    assert len(data) == int(keep.sum()) > 50
    assert data.modalities["x"].shape == (1, 8, 16) and data.modalities["x"].likelihood == "bernoulli"
    assert data.modalities["y1"].labels == ("left", "right") and data.modalities["y2"].labels == ("1", "2")
    assert data.modalities["y1"].likelihood == data.modalities["y2"].likelihood == "categorical"
    check_layout(data, source.tensors["x"][keep])
    digit = source.tensors["y"][keep].argmax(1)
    torch.testing.assert_close(data.tensors["y2"].argmax(1), digit - 1)
    item = data[0]
    assert item["x"].shape == (1, 8, 16) and item["y1"].shape == (2,)
    assert len(load_dataset("attribute-digits", "train")) > 250


def test_determinism_and_layout_seed():
    a = load_dataset("attribute-digits", "train", binarize="none", seed=0)
    b = load_dataset("attribute-digits", "train", binarize="none", seed=7)  # the training seed: same data
    for name in ("x", "y1", "y2"):
        assert torch.equal(a.tensors[name], b.tensors[name])
    from pixyz_zoo.datasets.attribute_mnist import load_attribute_digits

    c = load_attribute_digits("train", binarize="none", layout_seed=1)
    assert not torch.equal(a.tensors["y1"], c.tensors["y1"])
    assert torch.equal(a.tensors["y2"], c.tensors["y2"])
    check_layout(c)
    fixed = load_dataset("attribute-digits", "train", binarize="fixed")
    assert set(fixed.tensors["x"].unique().tolist()) == {0.0, 1.0}


def test_place_on_canvas_and_combined_label():
    images = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3) + 1
    canvas = place_on_canvas(images, torch.tensor([0, 1]))
    assert canvas.shape == (2, 1, 2, 6)
    assert torch.equal(canvas[0, ..., :3], images[0]) and canvas[0, ..., 3:].eq(0).all()
    assert torch.equal(canvas[1, ..., 3:], images[1]) and canvas[1, ..., :3].eq(0).all()
    eye = torch.eye(2)
    batch = {"y1": eye[[0, 0, 1, 1]], "y2": eye[[0, 1, 0, 1]]}
    assert combined_label(batch).tolist() == [0, 1, 2, 3]
    assert COMBINED_LABELS == ("left 1", "left 2", "right 1", "right 2")


def test_other_digits_are_dropped():
    eye = torch.eye(10)
    images = torch.rand(6, 1, 4, 4) * 0.9 + 0.1  # grey levels in [0.1, 1]: ink everywhere
    data = make_attribute_dataset("toy", images, eye[[0, 1, 2, 3, 2, 1]], "train", binarize="none")
    assert len(data) == 4
    assert data.tensors["y2"].argmax(1).tolist() == [0, 1, 1, 0]
    with pytest.raises(ValueError, match="split"):
        make_attribute_dataset("toy", images, eye[:6], "valid")


# --------------------------------------------------------------------------- MNIST files


def test_attribute_mnist_on_fake_files(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MNIST_MD5", {})
    rng = np.random.default_rng(0)
    n = 40
    images = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)  # ink everywhere
    labels = (np.arange(n) % 4).astype(np.uint8)  # digits 0, 1, 2, 3
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", labels)
    monkeypatch.setattr(mnist, "MNIST_10K_TEST", 8)
    train = load_dataset("attribute-mnist", "train", root=str(tmp_path), binarize="none")
    test = load_dataset("attribute-mnist", "test", root=str(tmp_path), binarize="none")
    assert len(train) + len(test) == 20  # the 1s and 2s of the 40 digits
    assert train.modalities["x"].shape == (1, 28, 56)
    for data in (train, test):
        check_layout(data)
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_dataset("attribute-mnist-full", "train", root=str(tmp_path))


def shared_root() -> Path | None:
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    if os.environ.get(DATA_ROOT_ENV):
        candidates.insert(0, Path(os.environ[DATA_ROOT_ENV]))
    for root in candidates:
        if (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file():
            return root
    return None


@pytest.mark.skipif(shared_root() is None, reason="real MNIST t10k files not at hand")
def test_real_attribute_mnist():
    root = str(shared_root())
    source = load_dataset("mnist-10k", "test", root=root, binarize="none")
    keep = torch.isin(source.tensors["y"].argmax(1), torch.tensor([1, 2]))
    data = load_dataset("attribute-mnist", "test", root=root, binarize="none")
    assert len(data) == int(keep.sum()) == 427
    check_layout(data, source.tensors["x"][keep])
    assert len(load_dataset("attribute-mnist", "train", root=root)) == 1740
    counts = torch.bincount(combined_label(data.tensors), minlength=4)
    assert counts.min() > 70  # all four position x digit combinations are well represented
