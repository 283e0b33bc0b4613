"""MNIST / Fashion-MNIST loaders and the idx reader, on tiny files written in the real format.

Nothing here downloads; the real MNIST test split is read in place when it is at hand.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, load_dataset, mnist
from pixyz_zoo.datasets import idx as idx_module
from pixyz_zoo.datasets.idx import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    ChecksumError,
    check_md5,
    file_md5,
    load_idx,
    read_idx,
)

TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


def idx_bytes(array: np.ndarray) -> bytes:
    """The bytes of an idx file holding ``array`` (this test's own writer)."""
    array = np.ascontiguousarray(array)
    header = struct.pack(">BBBB", 0, 0, TYPE_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as an idx file, gzip-compressed when ``path`` ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    return images, labels


def write_fake(root: Path, folder: str, compress: bool = True, n_train: int = 12, n_test: int = 10):
    """Write a tiny dataset with the real file names into ``root/folder/raw``; return the arrays."""
    arrays = {}
    for names, n, seed in ((TRAIN, n_train, 1), (T10K, n_test, 2)):
        images, labels = fake_split(n, seed)
        for name, array in zip(names, (images, labels), strict=True):
            write_idx(root / folder / "raw" / (name if compress else name[:-3]), array)
        arrays[names[0][:4]] = (images, labels)
    return arrays["trai"], arrays["t10k"]


@pytest.fixture
def no_md5(monkeypatch):
    """The fake files are not the published ones: empty the md5 tables."""
    monkeypatch.setattr(mnist, "MNIST_MD5", {})
    monkeypatch.setattr(mnist, "FASHION_MNIST_MD5", {})


@pytest.fixture
def no_network(monkeypatch):
    """Make any use of torchvision's MNIST / FashionMNIST classes fail loudly."""
    import torchvision.datasets

    def refuse(*args, **kwargs):
        raise AssertionError("torchvision dataset class called: this would touch the network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", refuse)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", refuse)


# --------------------------------------------------------------------------- idx reader


@pytest.mark.parametrize("dtype", sorted(TYPE_CODES, key=str))
def test_read_idx_round_trip_all_types(tmp_path, dtype):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    out = read_idx(write_idx(tmp_path / "a-idx3.gz", array))
    assert out.shape == (2, 3, 5)
    assert out.dtype == dtype  # native byte order
    np.testing.assert_array_equal(out, array)


def test_read_idx_uncompressed_and_magic(tmp_path):
    images, labels = fake_split(4, 0)
    out = read_idx(write_idx(tmp_path / "x-idx3-ubyte", images), IMAGES_MAGIC)
    np.testing.assert_array_equal(out, images)
    out = read_idx(write_idx(tmp_path / "y-idx1-ubyte", labels), LABELS_MAGIC)
    np.testing.assert_array_equal(out, labels)


def test_wrong_magic(tmp_path):
    labels_path = write_idx(tmp_path / "y-idx1-ubyte.gz", fake_split(4, 0)[1])
    with pytest.raises(ValueError, match="magic number 2049.*expected 2051") as err:
        read_idx(labels_path, IMAGES_MAGIC)
    assert str(labels_path) in str(err.value)
    garbage = tmp_path / "garbage-idx3-ubyte"
    garbage.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match="not an idx header") as err:
        read_idx(garbage)
    assert str(garbage) in str(err.value)


def test_truncated_files(tmp_path):
    images = fake_split(5, 0)[0]
    full = idx_bytes(images)
    # uncompressed, cut inside the data
    cut = tmp_path / "cut-idx3-ubyte"
    cut.write_bytes(full[:-10])
    with pytest.raises(ValueError, match="10 bytes missing.*download it again") as err:
        read_idx(cut)
    assert str(cut) in str(err.value)
    # uncompressed, cut inside the header
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(full[:6])
    with pytest.raises(ValueError, match="header announces 3 dimensions"):
        read_idx(short)
    # trailing bytes
    long = tmp_path / "long-idx3-ubyte"
    long.write_bytes(full + b"\0\0")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(long)
    # gzip stream cut short
    gz = tmp_path / "cut-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(full)[:-30])
    with pytest.raises(ValueError, match="cannot decompress.*download it again") as err:
        read_idx(gz)
    assert str(gz) in str(err.value)
    # not gzip at all
    bad = tmp_path / "bad-idx3-ubyte.gz"
    bad.write_bytes(full)
    with pytest.raises(ValueError, match="cannot decompress.*replace it"):
        read_idx(bad)


def test_md5_helpers(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"pixyz")
    digest = file_md5(path)
    check_md5(path, digest)
    check_md5(path, digest.upper())
    with pytest.raises(ChecksumError) as err:
        check_md5(path, "0" * 32)
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert str(path) in message and digest in message and "0" * 32 in message


def test_load_idx_caches_on_path_and_mtime(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "a-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    calls = []
    real_read = idx_module.read_idx
    monkeypatch.setattr(idx_module, "read_idx", lambda *a: calls.append(a) or real_read(*a))
    first = load_idx(path, LABELS_MAGIC)
    second = load_idx(path, LABELS_MAGIC)
    assert first is second and len(calls) == 1
    assert not first.flags.writeable
    write_idx(path, np.arange(7, dtype=np.uint8))  # a new file: new size and mtime
    os.utime(path, ns=(1, 1))
    third = load_idx(path, LABELS_MAGIC)
    assert len(calls) == 2 and len(third) == 7


# --------------------------------------------------------------------------- loaders


def test_registered():
    assert {"mnist", "mnist-10k", "fashion-mnist"} <= set(DATASETS)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "uncompressed"])
def test_mnist_round_trip(tmp_path, no_md5, no_network, compress):
    (train_x, train_y), (test_x, test_y) = write_fake(tmp_path, "MNIST", compress=compress)
    for split, images, labels in (("train", train_x, train_y), ("test", test_x, test_y)):
        data = load_dataset("mnist", split, root=str(tmp_path), binarize="none")
        assert len(data) == len(images)
        assert data.modalities["x"].shape == (1, 28, 28)
        assert data.modalities["x"].likelihood == "bernoulli"
        assert data.modalities["y"].likelihood == "categorical"
        assert data.modalities["y"].labels == tuple(str(i) for i in range(10))
        item = data[3]
        assert item["x"].shape == (1, 28, 28) and item["x"].dtype == torch.float32
        assert item["y"].shape == (10,)
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        torch.testing.assert_close(data.tensors["x"], x)
        assert data.tensors["x"].min() >= 0 and data.tensors["x"].max() <= 1
        assert data.tensors["y"].sum(1).eq(1).all()
        np.testing.assert_array_equal(data.tensors["y"].argmax(1).numpy(), labels)


def test_fashion_mnist_round_trip_and_class_names(tmp_path, no_md5, no_network):
    _, (test_x, test_y) = write_fake(tmp_path, "FashionMNIST")
    data = load_dataset("fashion-mnist", "test", root=str(tmp_path), binarize="none")
    assert len(data) == len(test_x)
    labels = data.modalities["y"].labels
    assert len(labels) == 10 and labels[0] == "T-shirt/top" and labels[9] == "Ankle boot"
    np.testing.assert_array_equal(data.tensors["y"].argmax(1).numpy(), test_y)
    # the MNIST folder is another dataset
    with pytest.raises(FileNotFoundError, match="MNIST"):
        load_dataset("mnist", "test", root=str(tmp_path))


def test_mnist_10k_split_of_the_test_files(tmp_path, no_md5, no_network):
    _, (test_x, _) = write_fake(tmp_path, "MNIST", n_test=2500)
    for name in TRAIN:
        (tmp_path / "MNIST" / "raw" / name).unlink()
    train = load_dataset("mnist-10k", "train", root=str(tmp_path), binarize="none")
    test = load_dataset("mnist-10k", "test", root=str(tmp_path), binarize="none")
    assert (len(train), len(test)) == (500, 2000)
    both = torch.cat([train.tensors["x"], test.tensors["x"]]).flatten(1)
    everything = torch.from_numpy(test_x.astype(np.float32) / 255.0).flatten(1)
    # a partition of the t10k examples: the sorted rows coincide
    key = lambda t: t[np.lexsort(t.numpy().T[::-1])]  # noqa: E731
    torch.testing.assert_close(key(both), key(everything))
    again = load_dataset("mnist-10k", "test", root=str(tmp_path), binarize="none")
    torch.testing.assert_close(again.tensors["x"], test.tensors["x"])  # deterministic


def test_md5_mismatch(tmp_path, no_network, monkeypatch):
    write_fake(tmp_path, "MNIST")
    monkeypatch.setattr(mnist, "MNIST_MD5", {T10K[0]: "0" * 32})
    path = tmp_path / "MNIST" / "raw" / T10K[0]
    with pytest.raises(ValueError, match="md5") as err:
        load_dataset("mnist", "test", root=str(tmp_path))
    message = str(err.value)
    assert str(path) in message and "0" * 32 in message and file_md5(path) in message
    monkeypatch.setattr(mnist, "MNIST_MD5", {T10K[0]: file_md5(path)})
    assert len(load_dataset("mnist", "test", root=str(tmp_path))) == 10


def test_known_md5_tables():
    assert mnist.MNIST_MD5[T10K[0]] == "9fb629c4189551a2d022fa330f9573f3"
    assert mnist.MNIST_MD5[T10K[1]] == "ec29112dd5afa0611ce80d1b7f02629c"
    assert set(mnist.MNIST_MD5) == set(mnist.FASHION_MNIST_MD5) == set(T10K + TRAIN)


@pytest.mark.parametrize("name", ["mnist", "mnist-10k", "fashion-mnist"])
def test_missing_files_message(tmp_path, no_network, monkeypatch, name):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(name, "train")  # root from the environment variable
    message = str(err.value)
    folder = "FashionMNIST" if name == "fashion-mnist" else "MNIST"
    files = T10K if name == "mnist-10k" else TRAIN
    for file in files:
        assert str(tmp_path / folder / "raw" / file) in message
    assert DATA_ROOT_ENV in message and "--data-root" in message and "--download" in message
    assert str(tmp_path) in message


def test_download_false_never_calls_torchvision(tmp_path, no_md5, no_network):
    with pytest.raises(FileNotFoundError):
        load_dataset("mnist", "train", root=str(tmp_path), download=False)
    write_fake(tmp_path, "MNIST")
    assert len(load_dataset("mnist", "train", root=str(tmp_path), download=False)) == 12


def test_download_true_uses_torchvision_then_own_reader(tmp_path, no_md5, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeFashionMNIST:  # stands in for the network: writes the files torchvision would
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_fake(Path(root), "FashionMNIST")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    data = load_dataset("fashion-mnist", "train", root=str(tmp_path), download=True)
    assert calls == [(str(tmp_path), True, True)] and len(data) == 12
    load_dataset("fashion-mnist", "test", root=str(tmp_path), download=True)
    assert len(calls) == 1  # files present: no second download


def test_a_failed_download_leaves_no_empty_folder_behind(tmp_path, monkeypatch):
    """A failed `--download` left torchvision's empty FashionMNIST/raw folders (and the data root)."""
    import torchvision.datasets

    class OfflineFashionMNIST:  # makes its folders, as torchvision does, then finds no network
        def __init__(self, root, train, download):
            (Path(root) / "FashionMNIST" / "raw").mkdir(parents=True)
            raise OSError("Network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", OfflineFashionMNIST)
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match=r"downloading FashionMNIST into .* failed \(OSError: Network is"):
        load_dataset("fashion-mnist", "train", root=str(root), download=True)
    assert not root.exists()
    (root / "MNIST").mkdir(parents=True)  # a data root that was there stays, with what it holds
    with pytest.raises(RuntimeError):
        load_dataset("fashion-mnist", "train", root=str(root), download=True)
    assert sorted(p.name for p in root.iterdir()) == ["MNIST"]


def test_binarisation(tmp_path, no_md5, no_network):
    write_fake(tmp_path, "MNIST")
    dynamic = load_dataset("mnist", "train", root=str(tmp_path), binarize="dynamic")
    g = torch.Generator().manual_seed(0)
    epoch1 = next(dynamic.batches(12, generator=g))["x"]
    epoch2 = next(dynamic.batches(12, generator=g))["x"]
    assert set(epoch1.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(epoch1, epoch2)
    assert not torch.equal(dynamic[0]["x"], dynamic[0]["x"])
    fixed = load_dataset("mnist", "train", root=str(tmp_path), binarize="fixed", seed=3)
    first = next(fixed.batches(12))["x"]
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(first, next(fixed.batches(12))["x"])
    same_seed = load_dataset("mnist", "train", root=str(tmp_path), binarize="fixed", seed=3)
    assert torch.equal(first, same_seed.tensors["x"])


# --------------------------------------------------------------------------- real data


def shared_data_root() -> Path | None:
    """A data root holding the real MNIST t10k files: ``$PIXYZ_ZOO_DATA`` or ``../shared/data``."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    if os.environ.get(DATA_ROOT_ENV):
        candidates.insert(0, Path(os.environ[DATA_ROOT_ENV]))
    for root in candidates:
        if all((root / "MNIST" / "raw" / name).is_file() for name in T10K):
            return root
    return None


SHARED = shared_data_root()
needs_shared = pytest.mark.skipif(SHARED is None, reason="real MNIST t10k files not at hand")


@needs_shared
def test_real_files_match_known_md5():
    for name in T10K:
        assert file_md5(SHARED / "MNIST" / "raw" / name) == mnist.MNIST_MD5[name]


@needs_shared
def test_real_mnist_10k(no_network):
    train = load_dataset("mnist-10k", "train", root=str(SHARED), binarize="none")
    test = load_dataset("mnist-10k", "test", root=str(SHARED), binarize="none")
    assert (len(train), len(test)) == (8000, 2000)
    for data in (train, test):
        assert set(data.tensors["y"].argmax(1).tolist()) == set(range(10))
        x = data.tensors["x"]
        assert x.shape[1:] == (1, 28, 28)
        assert x.min() == 0 and x.max() == 1
        assert len(x.unique()) > 2  # grey levels, not binary
    counts = train.tensors["y"].sum(0) + test.tensors["y"].sum(0)
    assert counts.sum() == 10000 and counts.min() > 800


@needs_shared
def test_real_mnist_test_files_only(tmp_path, no_network):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in T10K:
        (raw / name).symlink_to(SHARED / "MNIST" / "raw" / name)
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("mnist", "train", root=str(tmp_path))
    message = str(err.value)
    assert str(raw / TRAIN[0]) in message and "mnist-10k" in message
    assert len(load_dataset("mnist", "test", root=str(tmp_path))) == 10000
