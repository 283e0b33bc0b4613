"""Multimodal digit datasets: text, MNIST-SVHN-Text (tiny files in the real formats), trimodal
stand-ins and PolyMNIST-style sets. Nothing downloads; the real MNIST t10k files are read in place
when at hand (skipped otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)
from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, load_dataset, mnist
from pixyz_zoo.datasets import multimodal_digits as md
from pixyz_zoo.datasets.multimodal_digits import (
    ALPHABET,
    DIGIT_WORDS,
    TEXT_LENGTH,
    decode_text,
    digit_text,
    encode_text,
    load_mnist_svhn_text,
    load_polymnist,
    load_trimodal,
    pair_by_class,
    same_class_partners,
    stream,
    street_view_digits,
)
from tests.fake_files import write_mnist_svhn

NAMES = ("mnist-svhn-text", "trimodal-mnist", "trimodal-digits", "polymnist", "polydigits")


def words_of(text: torch.Tensor) -> list[str]:
    return [s.strip() for s in decode_text(text)]


# ------------------------------------------------------------------------------------- text


def test_alphabet_is_the_reference_one():
    assert len(ALPHABET) == 71 and TEXT_LENGTH == 8
    assert ALPHABET.startswith("abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"\\/|_@#$%^&*~`+-=<>")
    assert ALPHABET.endswith("()[]{} \n") and ALPHABET.count("-") == 2
    assert md.TEXT.shape == (8, 71) and md.TEXT.likelihood == "categorical" and md.TEXT.is_sequence
    assert md.TEXT.labels == tuple(ALPHABET) and md.TEXT.name == "t"


def test_encode_decode_round_trip():
    words = ["three", "one", "a-b", "x"]
    onehot = encode_text(words, [2, 0, 5, 7])
    assert onehot.shape == (4, TEXT_LENGTH, len(ALPHABET))
    assert torch.equal(onehot.sum(-1), torch.ones(4, TEXT_LENGTH))
    assert decode_text(onehot) == ["  three ", "one     ", "     a-b", "       x"]
    assert onehot[2, 6].argmax() == ALPHABET.index("-")  # first occurrence of the repeated "-"
    probs = torch.softmax(onehot * 5 + 0.1 * torch.randn(onehot.shape), -1)
    assert decode_text(probs) == decode_text(onehot)
    assert decode_text(onehot[1]) == ["one     "]
    assert decode_text(encode_text(["seven"])) == ["seven   "]
    short = encode_text(["ab"], [1], length=4, alphabet="ab ")
    assert short.shape == (1, 4, 3) and decode_text(short, "ab ") == [" ab "]
    with pytest.raises(ValueError, match="does not fit"):
        encode_text(["three"], [4])
    with pytest.raises(ValueError, match="not in the alphabet"):
        encode_text(["Three"], [0])
    with pytest.raises(ValueError, match="scores over the alphabet"):
        decode_text(torch.zeros(2, 8, 5))


def test_digit_text_offsets_follow_the_reference():
    labels = torch.arange(10).repeat(200)
    text = digit_text(labels, torch.Generator().manual_seed(0))
    strings = decode_text(text)
    assert [s.strip() for s in strings] == [DIGIT_WORDS[i] for i in labels.tolist()]
    assert all(s[-1] == " " for s in strings)  # offsets in 0..length-1-len(word), as the reference
    starts = {w: set() for w in DIGIT_WORDS}
    for s in strings:
        starts[s.strip()].add(len(s) - len(s.lstrip()))
    for w, seen in starts.items():
        assert seen == set(range(TEXT_LENGTH - len(w))), w
    again = digit_text(labels, torch.Generator().manual_seed(0))
    assert torch.equal(text, again)


# --------------------------------------------------------------------------- building blocks


def test_same_class_partners():
    labels = torch.tensor([0, 1, 0, 1, 0, 2, 2, 0, 1, 2, 0])
    g = torch.Generator().manual_seed(0)
    partners = same_class_partners(labels, 2, g)
    assert partners.shape == (11, 2)
    own = torch.arange(11)[:, None]
    assert (labels[partners] == labels[:, None]).all()
    assert (partners != own).all() and (partners[:, 0] != partners[:, 1]).all()
    with pytest.raises(ValueError, match="class 1 has 3 example"):
        same_class_partners(labels, 3, g)
    many = same_class_partners(torch.zeros(50, dtype=torch.long), 1, g)[:, 0]
    assert len(many.unique()) > 20  # drawn among the others, not a fixed shift


def test_pair_by_class():
    labels_a = torch.tensor([0, 0, 0, 1, 1, 2])
    labels_b = torch.tensor([1, 0, 0, 1, 1, 1, 0, 0])
    a, b = pair_by_class(labels_a, labels_b, 3, torch.Generator().manual_seed(0))
    assert len(a) == len(b) == 3 * (3 + 2)  # class 2 has no partner in b
    assert torch.equal(labels_a[a], labels_b[b])
    # the first n of each class in each set, as Shi et al.'s script
    assert set(b[labels_b[b] == 0].tolist()) == {1, 2, 6} and set(a[labels_a[a] == 1].tolist()) == {3, 4}
    a2, _ = pair_by_class(labels_a, labels_b, 3, torch.Generator().manual_seed(0), max_per_class=1)
    assert len(a2) == 3 * 2


def test_street_view_digits_contrast_and_shape():
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 9:19, 9:19] = 1.0
    out = street_view_digits(images, torch.Generator().manual_seed(0), images.flip(0))
    assert out.shape == (64, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    inside = out[:, :, 13:19, 13:19].mean((2, 3))
    border = out[:, :, 12:20, 1:3].mean((2, 3))  # left edge rows away from the centre block
    assert (inside - border).abs().min() > 0.15  # every channel of every example: digit visible
    assert out.std(0).mean() > 0.1  # colours vary across examples


def test_stream_is_deterministic_and_split_specific():
    draw = lambda *a: torch.rand(3, generator=stream(*a))  # noqa: E731
    assert torch.equal(draw(0, "train", "x"), draw(0, "train", "x"))
    assert not torch.equal(draw(0, "train", "x"), draw(0, "test", "x"))
    assert not torch.equal(draw(0, "train", "x"), draw(1, "train", "x"))
    assert not torch.equal(draw(0, "train", "x"), draw(0, "train", "y"))


# ------------------------------------------------------------------------ registered datasets


def test_registered():
    assert set(NAMES) <= set(DATASETS)
    assert DATASETS["trimodal-digits"].offline and DATASETS["polydigits"].offline
    assert not any(DATASETS[n].offline for n in ("mnist-svhn-text", "trimodal-mnist", "polymnist"))
    for name in NAMES:
        assert "train" in DATASETS[name].description and "test" in DATASETS[name].description


def check_trimodal(data, m_shape: tuple[int, ...], source_images: torch.Tensor, source_labels: torch.Tensor):
    mods = data.modalities
    assert list(mods) == ["m", "s", "t"]
    assert mods["m"].shape == m_shape and mods["m"].likelihood == "bernoulli"
    assert mods["s"].shape == (3, 32, 32) and mods["s"].likelihood == "laplace"
    assert mods["t"].shape == (8, 71) and mods["t"].likelihood == "categorical"
    assert data.classes == tuple(str(i) for i in range(10))
    labels = data.labels
    assert labels.dtype == torch.long and len(labels) == len(data)
    assert torch.equal(data.tensors["m"], source_images) and torch.equal(labels, source_labels)
    src = data.source_index
    assert (src["s"] != src["m"]).all()  # s shows another real digit, never m's own image
    assert torch.equal(source_labels[src["s"]], labels)  # ... of the same class
    assert words_of(data.tensors["t"]) == [DIGIT_WORDS[i] for i in labels.tolist()]
    s = data.tensors["s"]
    assert s.min() >= 0 and s.max() <= 1 and s.std() > 0.1
    assert set(labels.tolist()) == set(range(10))


def rendered_from(data, own: bool = False) -> float:
    """Mean |correlation| of s's grey levels with the upsampled source digit (or m's own image)."""
    images = data.tensors["m"] if own else data.tensors["m"][data.source_index["s"]]
    a = F.interpolate(images, size=(32, 32), mode="bilinear").flatten(1)
    b = data.tensors["s"].mean(1).flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)).abs().mean())


def test_trimodal_digits():
    from pixyz_zoo.datasets.digits import load_digits

    for split, size in (("train", 1438), ("test", 359)):
        source = load_digits(split, binarize="none")
        data = load_dataset("trimodal-digits", split, binarize="none")
        assert len(data) == size
        check_trimodal(data, (1, 8, 8), source.tensors["x"], source.tensors["y"].argmax(1))
        assert rendered_from(data) > rendered_from(data, own=True) + 0.05
    item = data[0]
    assert item["m"].shape == (1, 8, 8) and item["s"].shape == (3, 32, 32) and item["t"].shape == (8, 71)
    batch = next(load_dataset("trimodal-digits", "test").batches(16))  # dynamic binarisation of m only
    assert set(batch["m"].unique().tolist()) <= {0.0, 1.0} and len(batch["s"].unique()) > 2
    assert data.subset(slice(0, 5)).labels.shape == (5,)


def test_trimodal_determinism_and_seeds():
    a = load_dataset("trimodal-digits", "train", binarize="none", seed=0)
    b = load_dataset("trimodal-digits", "train", binarize="none", seed=0)
    c = load_dataset("trimodal-digits", "train", binarize="none", seed=1)
    for name in ("m", "s", "t"):
        assert torch.equal(a.tensors[name], b.tensors[name])
    assert torch.equal(a.tensors["m"], c.tensors["m"])  # m is the source itself
    assert not torch.equal(a.tensors["s"], c.tensors["s"]) and not torch.equal(a.tensors["t"], c.tensors["t"])
    assert not torch.equal(a.source_index["s"], c.source_index["s"])


def test_polydigits():
    from pixyz_zoo.datasets.digits import load_digits

    source = load_digits("test", binarize="none")
    images, labels = source.tensors["x"], source.tensors["y"].argmax(1)
    data = load_dataset("polydigits", "test")
    assert len(data) == 359 and torch.equal(data.labels, labels)
    assert list(data.modalities) == [f"m{k}" for k in range(5)]
    for k, mod in enumerate(data.modalities.values()):
        assert mod.name == f"m{k}" and mod.shape == (3, 8, 8) and mod.likelihood == "laplace"
    chosen = torch.stack([data.source_index[f"m{k}"] for k in range(5)], 1)
    assert torch.equal(chosen[:, 0], torch.arange(len(data)))
    assert (labels[chosen] == labels[:, None]).all()  # every modality shows the example's class
    assert all(len(set(row)) == 5 for row in chosen.tolist())  # ... as five different real digits
    x0 = data.tensors["m0"]
    assert x0.min() >= 0 and x0.max() <= 1
    # background pixels (no ink) keep the palette bands; full ink inverts them
    blank = (images == 0).expand_as(x0)
    assert ((x0[blank] <= 0.35 + 1e-6) | (x0[blank] >= 0.65 - 1e-6)).all()
    full = (images == 1).expand_as(x0)
    assert full.any() and ((x0[full] <= 0.35 + 1e-6) | (x0[full] >= 0.65 - 1e-6)).all()
    # each modality has its own background colour family
    colours = torch.stack([data.tensors[f"m{k}"].mean((0, 2, 3)) for k in range(5)])
    assert torch.cdist(colours, colours).add(torch.eye(5)).min() > 0.1


def test_polymnist_options_and_determinism():
    three = load_polymnist("digits", "train", n_modalities=3)
    assert list(three.modalities) == ["m0", "m1", "m2"] and len(three) == 1438
    again = load_polymnist("digits", "train", n_modalities=3)
    other = load_polymnist("digits", "train", n_modalities=3, seed=1)
    for name in three.modalities:
        assert torch.equal(three.tensors[name], again.tensors[name])
        assert not torch.equal(three.tensors[name], other.tensors[name])
    big = load_polymnist("digits", "test", size=16, n_modalities=2)
    assert big.modalities["m1"].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="n_modalities"):
        load_polymnist("digits", "test", n_modalities=0)
    with pytest.raises(ValueError, match="unknown source"):
        load_trimodal("svhn", "test")


# ----------------------------------------------------------- MNIST-SVHN-Text on tiny real-format files


def write_tiny_mnist_svhn(root: Path, split: str = "train") -> dict[str, np.ndarray]:
    labels_m = np.array([3, 1, 0, 3, 3, 1, 2, 0, 9, 3, 1, 0])
    labels_s = np.array([1, 3, 0, 0, 3, 5, 1, 1, 0, 2, 3])
    return write_mnist_svhn(root, split, labels_m, labels_s)


@pytest.fixture
def no_md5(monkeypatch):
    """The tiny files are not the published ones: empty the md5 tables."""
    monkeypatch.setattr(mnist, "MNIST_MD5", {})
    monkeypatch.setattr(md, "SVHN_MD5", {})


@pytest.fixture
def no_network(monkeypatch):
    import torchvision.datasets

    def refuse(*args, **kwargs):
        raise AssertionError("torchvision dataset class called: this would touch the network")

    for name in ("MNIST", "SVHN"):
        monkeypatch.setattr(torchvision.datasets, name, refuse)


def test_mnist_svhn_text_tiny_files(tmp_path, no_md5, no_network):
    arrays = write_tiny_mnist_svhn(tmp_path, "train")
    data = load_dataset("mnist-svhn-text", "train", root=str(tmp_path), binarize="none")
    # per class min(#MNIST, #SVHN): 0: 3/3, 1: 3/3, 2: 1/1, 3: 4/3, 9: 1/0 (no SVHN 9), 5: no MNIST
    assert len(data) == 3 + 3 + 1 + 3
    mods = data.modalities
    assert mods["m"].shape == (1, 28, 28) and mods["m"].likelihood == "bernoulli"
    assert mods["s"].shape == (3, 32, 32) and mods["s"].likelihood == "laplace"
    assert mods["t"].shape == (8, 71) and mods["t"].labels == tuple(ALPHABET)
    m, s, t = data.tensors["m"], data.tensors["s"], data.tensors["t"]
    assert 0 <= float(m.min()) and float(m.max()) <= 1 and 0 <= float(s.min()) and float(s.max()) <= 1
    digit_m = (m.flatten(1)[:, 0] * 255 - 10).round() / 20
    digit_s = (s.flatten(1)[:, 0] * 255 - 10).round() / 20
    digit_t = torch.tensor([DIGIT_WORDS.index(w) for w in words_of(t)])
    assert torch.equal(digit_m.long(), data.labels) and torch.equal(digit_s.long(), data.labels)
    assert torch.equal(digit_t, data.labels) and data.classes == tuple(str(i) for i in range(10))
    svhn = torch.from_numpy(arrays["images_s"]).float() / 255
    torch.testing.assert_close(s, svhn[data.source_index["s"]])
    assert torch.equal(torch.from_numpy(arrays["labels_m"]).long()[data.source_index["m"]], data.labels)
    # every MNIST/SVHN index of a class is used once per repeat
    doubled = load_mnist_svhn_text("train", root=tmp_path, binarize="none", repeats=2)
    assert len(doubled) == 2 * len(data)
    counts = torch.bincount(data.labels, minlength=10)
    assert torch.equal(torch.bincount(doubled.labels, minlength=10), 2 * counts)
    # deterministic given the seed, different across seeds
    same = load_dataset("mnist-svhn-text", "train", root=str(tmp_path), binarize="none")
    for name in ("m", "s", "t"):
        assert torch.equal(same.tensors[name], data.tensors[name])
    other = [load_mnist_svhn_text("train", tmp_path, "none", seed=k) for k in (1, 2)]
    assert any(not torch.equal(o.tensors["s"], data.tensors["s"]) for o in other)
    assert any(not torch.equal(o.tensors["t"], data.tensors["t"]) for o in other)
    with pytest.raises(ValueError, match="repeats"):
        load_mnist_svhn_text("train", tmp_path, repeats=0)


def test_mnist_svhn_text_missing_files(tmp_path, no_md5, no_network):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("mnist-svhn-text", "test", root=str(tmp_path))
    message = str(err.value)
    for path in (
        tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz",
        tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz",
        tmp_path / "SVHN" / "test_32x32.mat",
    ):
        assert str(path) in message
    assert "SVHN(root/'SVHN'" in message and "download" in message and "trimodal-mnist" in message
    write_tiny_mnist_svhn(tmp_path, "train")
    (tmp_path / "SVHN" / "train_32x32.mat").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_mnist_svhn_text("train", root=tmp_path)
    assert str(tmp_path / "SVHN" / "train_32x32.mat") in str(err.value)
    assert "train-images" not in str(err.value)
    with pytest.raises(RuntimeError, match="downloading SVHN"):
        load_mnist_svhn_text("train", root=tmp_path, download=True)  # torchvision refused here


def test_mnist_svhn_text_download_goes_through_torchvision(tmp_path, no_md5, monkeypatch):
    import torchvision.datasets

    write_tiny_mnist_svhn(tmp_path / "source", "test")
    write_tiny_mnist_svhn(tmp_path, "test")
    (tmp_path / "SVHN" / "test_32x32.mat").unlink()
    calls = []

    def fake_svhn(root, split, download):
        calls.append((Path(root), split, download))
        source = tmp_path / "source" / "SVHN" / "test_32x32.mat"
        (Path(root) / "test_32x32.mat").write_bytes(source.read_bytes())

    monkeypatch.setattr(torchvision.datasets, "SVHN", fake_svhn)
    data = load_mnist_svhn_text("test", root=tmp_path, download=True)
    assert calls == [(tmp_path / "SVHN", "test", True)] and len(data) == 10


def test_read_svhn_rejects_bad_files(tmp_path):
    import scipy.io

    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(ValueError, match="expected \\(32, 32, 3, 2\\)"):
        md.read_svhn(path)
    path.write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="not a readable .mat"):
        md.read_svhn(path)


# --------------------------------------------------------------------------- real MNIST t10k


def shared_data_root() -> Path | None:
    """A data root holding the real MNIST t10k files: ``$PIXYZ_ZOO_DATA`` or ``../shared/data``."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    if os.environ.get(DATA_ROOT_ENV):
        candidates.insert(0, Path(os.environ[DATA_ROOT_ENV]))
    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    for root in candidates:
        if all((root / "MNIST" / "raw" / name).is_file() for name in names):
            return root
    return None


SHARED = shared_data_root()
needs_shared = pytest.mark.skipif(SHARED is None, reason="real MNIST t10k files not at hand")


@needs_shared
def test_real_trimodal_mnist(no_network):
    root = str(SHARED)
    source = load_dataset("mnist-10k", "test", root=root, binarize="none")
    data = load_dataset("trimodal-mnist", "test", root=root, binarize="none")
    assert len(data) == 2000
    check_trimodal(data, (1, 28, 28), source.tensors["x"], source.tensors["y"].argmax(1))
    # s is rendered from its own source digit, not from m's image: it correlates more with it
    assert rendered_from(data) > rendered_from(data, own=True) + 0.2
    assert len(load_dataset("trimodal-mnist", "train", root=root)) == 8000


@needs_shared
def test_real_polymnist(no_network):
    data = load_dataset("polymnist", "test", root=str(SHARED))
    assert len(data) == 2000 and list(data.modalities) == [f"m{k}" for k in range(5)]
    assert all(m.shape == (3, 28, 28) and m.likelihood == "laplace" for m in data.modalities.values())
    chosen = torch.stack([data.source_index[f"m{k}"] for k in range(5)], 1)
    assert (data.labels[chosen] == data.labels[:, None]).all()
    assert all(len(set(row)) == 5 for row in chosen.tolist())
