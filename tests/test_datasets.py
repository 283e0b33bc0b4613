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


# ------------------------------------------------------------- what a dataset read from files declares
DECLARED = sorted(name for name, info in DATASETS.items() if info.modalities is not None)


def test_every_dataset_read_from_files_declares_what_it_holds():
    """A run is checked against these declarations before the files are read (runs.check_model_fits_data);
    CelebA's attribute names and CUB's vocabulary come from the files, so they declare nothing."""
    undeclared = {name for name, info in DATASETS.items() if not info.offline and info.modalities is None}
    assert undeclared == {"celeba", "cub"}
    assert not [name for name, info in DATASETS.items() if info.offline and info.modalities is not None]
    empty = DATASETS["trimodal-mnist"].without_examples()
    assert len(empty) == 0 and list(empty.modalities) == ["m", "s", "t"]
    assert empty.with_labels().modalities["y"].labels == tuple("0123456789")
    mnist = DATASETS["mnist"].without_examples()  # its label is a modality already
    assert mnist.labels is None and mnist.with_labels() is mnist


def write_files(name: str, root, monkeypatch) -> None:
    """Files in the layout ``name`` reads (made-up pixels; the published md5 sums switched off)."""
    from pixyz_zoo.datasets import dsprites, mnist
    from pixyz_zoo.datasets import multimodal_digits as md
    from tests.fake_files import write_mnist_svhn
    from tests.test_datasets_mnist import write_fake
    from tests.test_ground_truth import write_fake_dsprites

    monkeypatch.setattr(mnist, "MNIST_MD5", {})
    monkeypatch.setattr(mnist, "FASHION_MNIST_MD5", {})
    monkeypatch.setattr(md, "SVHN_MD5", {})
    if name == "dsprites":
        write_fake_dsprites(root, image_shape=(64, 64))
        monkeypatch.setattr(dsprites, "DSPRITES_TEST_SIZE", 20)
    elif name == "fashion-mnist":
        write_fake(root, "FashionMNIST", n_train=20, n_test=20)
    elif name == "mnist-svhn-text":
        for split in ("train", "test"):
            labels = torch.arange(20) % 10
            write_mnist_svhn(root, split, labels.numpy(), labels.flip(0).numpy())
    else:  # the MNIST files and what is made of them
        write_fake(root, "MNIST", n_train=20, n_test=200)


@pytest.mark.parametrize("name", DECLARED)
def test_a_dataset_loads_as_it_declares(name, tmp_path, monkeypatch):
    write_files(name, tmp_path, monkeypatch)
    loaded = load_dataset(name, "test", root=str(tmp_path))
    declared = DATASETS[name].without_examples()
    assert loaded.modalities == declared.modalities  # names, order, shapes, likelihoods, labels
    assert loaded.classes == declared.classes
    assert (loaded.labels is None) == (declared.labels is None)


def test_an_example_by_its_position_and_a_clear_error_for_anything_else():
    data = load_dataset("digits", "test", binarize="none")
    n = len(data)
    for position in (-1, -n, 0, n - 1):
        assert torch.equal(data[position]["x"], data.tensors["x"][position]), position
    assert torch.equal(data[torch.tensor(3)]["y"], data.tensors["y"][3])  # a 0-d integer tensor
    assert sum(1 for _ in data) == n  # iteration ends at the last example
    for position in (n, -n - 1):
        with pytest.raises(IndexError, match=f"example {position} is out of range: .* holds {n} examples"):
            data[position]
    for several in (slice(0, 4), [0, 1], 1.0):
        with pytest.raises(TypeError, match=r"one example's position.*dataset\.first\(n\)"):
            data[several]


def test_a_dataset_of_numpy_float64_or_integers_trains_in_the_networks_dtype():
    """``torch.from_numpy`` of a float64 array (or integer counts) met the float32 networks:
    "mat1 and mat2 must have the same dtype, but got Double and Float"."""
    import numpy as np

    from pixyz_zoo.models import VAE
    from pixyz_zoo.training import Trainer

    gaussian = {"x": Modality("x", (5,), "gaussian")}
    for values in (torch.from_numpy(np.random.default_rng(0).random((40, 5))), torch.randint(0, 5, (40, 5))):
        data = MultimodalDataset("mine", {"x": values}, gaussian)
        assert data.tensors["x"].dtype == torch.float32
        assert torch.equal(data.tensors["x"], values.float())
        Trainer(VAE(data.modalities, z_dim=2, hidden=[8]), data, epochs=1, progress=False).fit()


def test_bernoulli_values_outside_the_unit_interval_are_refused():
    """8-bit pixels declared bernoulli trained on BCE against targets up to 255 (binarize="none"), or
    failed in torch.bernoulli with "Expected p_in >= 0 && p_in <= 1 to be true"."""
    pixels = torch.arange(40 * 16, dtype=torch.float32).reshape(40, 1, 4, 4) % 256
    for binarize in ("none", "dynamic"):
        with pytest.raises(ValueError, match=r"'x' is declared bernoulli.*lie in \[0, 255\]: divide 8-bit"):
            MultimodalDataset("mine", {"x": pixels}, {"x": Modality("x", (1, 4, 4), "bernoulli")}, binarize)
    data = MultimodalDataset("mine", {"x": pixels / 255}, {"x": Modality("x", (1, 4, 4), "bernoulli")})
    assert data.first(4)["x"].unique().tolist() in ([0.0, 1.0], [0.0], [1.0])


def test_class_indices_for_a_one_hot_label_are_named_by_the_dataset():
    labels = Modality("y", (3,), "categorical")
    with pytest.raises(ValueError, match=r"'y' holds 4 class indices.*one_hot\(y, 3\)\.float\(\)"):
        MultimodalDataset("mine", {"y": torch.tensor([0, 2, 1, 1])}, {"y": labels})


def test_dataset_arguments_a_newcomer_gets_wrong_are_refused_naming_the_fix():
    """``first(-1)`` returned every example but the last; ``load_dataset(seed="a")`` and ``seed=-1``
    were taken; ``select("m0")`` looked for the modalities 'm' and '0'; a declaration keyed by another
    name than its own made a dataset holding ``x`` that described ``y``."""
    data = load_dataset("polydigits", "test")
    with pytest.raises(
        ValueError, match=r"first\(n\): n, the number of examples, must be an integer >= 0, got -1"
    ):
        data.first(-1)
    assert len(data.first(0)["m0"]) == 0 and len(data.first(3)["m0"]) == 3
    for seed in ("a", -1, 2.5):
        with pytest.raises(ValueError, match=rf"seed must be an integer >= 0, got {seed!r}"):
            load_dataset("digits", seed=seed)
    assert list(data.select("m0").modalities) == ["m0"]
    x = Modality("x", (2,), "gaussian")
    with pytest.raises(
        ValueError, match=r"modalities\['y'\] declares a modality named 'x': key each declaration"
    ):
        MultimodalDataset("bad", {"y": torch.zeros(3, 2)}, {"y": x})
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0, got 'a'"):
        MultimodalDataset("bad", {"x": torch.zeros(3, 2)}, {"x": x}, seed="a")


def test_a_dataset_without_factors_and_a_seed_as_generator_are_named():
    """``data.ground_truth`` of a dataset without factors raised a bare AttributeError; a seed passed
    as the generator of ``batches`` failed inside torch.randperm."""
    data = load_dataset("trimodal-digits", "test")
    with pytest.raises(AttributeError, match=r"'trimodal-digits' has no ground_truth.*dsprites-procedural"):
        data.ground_truth  # noqa: B018
    assert not hasattr(data, "factors") and hasattr(load_dataset("colored-shapes", "test"), "ground_truth")
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator.*got int"):
        next(data.batches(10, shuffle=True, generator=0))
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 2\.5"):
        next(data.batches(2.5))
