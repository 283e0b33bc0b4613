"""CelebA loader on a tiny folder in the real format, the paper's CelebA networks, attribute editing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, load_dataset
from pixyz_zoo.datasets import celeba as celeba_module
from pixyz_zoo.datasets.celeba import cache_path, load_celeba, load_celeba_image, read_attributes
from pixyz_zoo.distributions import decoder_for, decoder_network, encoder_network
from pixyz_zoo.distributions.celeba_networks import (
    celeba_attribute_decoder_net,
    celeba_attribute_encoder_net,
    celeba_image_decoder_net,
    celeba_image_encoder_net,
    celeba_joint_encoder_net,
)
from pixyz_zoo.evaluation.editing import edit_attributes
from pixyz_zoo.modalities import Modality
from tests.fake_files import CELEBA_ATTRIBUTES as NAMES
from tests.fake_files import RED, face, write_celeba


@pytest.fixture
def no_network(monkeypatch):
    import torchvision.datasets

    def refuse(*args, **kwargs):
        raise AssertionError("torchvision's CelebA was called: this would touch the network")

    monkeypatch.setattr(torchvision.datasets, "CelebA", refuse)


def test_registered():
    assert "celeba" in DATASETS and not DATASETS["celeba"].offline


def test_load_splits_modalities_and_values(tmp_path, no_network):
    values, names = write_celeba(tmp_path, n=9)
    train = load_dataset("celeba", "train", root=str(tmp_path))
    test = load_dataset("celeba", "test", root=str(tmp_path))
    valid = load_celeba("valid", root=str(tmp_path))
    assert (len(train), len(valid), len(test)) == (3, 3, 3)
    x, w = train.modalities["x"], train.modalities["w"]
    assert (x.shape, x.likelihood) == ((3, 32, 32), "gaussian")
    assert (w.shape, w.likelihood) == ((len(NAMES),), "gaussian")
    assert w.labels == tuple(NAMES) and train.attribute_names == tuple(NAMES)
    assert train.subset(slice(0, 2)).attribute_names == tuple(NAMES)
    # partition i % 3: train = images 0, 3, 6; test = 2, 5, 8; attributes in the file's order
    torch.testing.assert_close(train.tensors["w"], torch.tensor(values[[0, 3, 6]], dtype=torch.float32))
    torch.testing.assert_close(test.tensors["w"], torch.tensor(values[[2, 5, 8]], dtype=torch.float32))
    assert set(test.tensors["w"].unique().tolist()) <= {-1.0, 1.0}
    # images in [-1, 1]; the centre crop keeps only the red box
    images = train.tensors["x"]
    assert images.min() >= -1 and images.max() <= 1
    red = torch.tensor(RED, dtype=torch.float32) / 127.5 - 1
    mean_colour = images.mean(dim=(0, 2, 3))
    torch.testing.assert_close(mean_colour, red, atol=0.05, rtol=0)
    assert (images - red[None, :, None, None]).abs().amax() < 0.25  # no blue edge anywhere
    batch = next(train.batches(2))
    assert batch["x"].shape == (2, 3, 32, 32) and batch["w"].shape == (2, len(NAMES))


def test_crop_without_the_crop_box_would_show_blue(tmp_path):
    """The check above can fail: the uncropped image's mean colour is far from red."""
    from PIL import Image

    path = tmp_path / "a.jpg"
    Image.fromarray(face()).save(path, quality=95, subsampling=0)
    cropped = load_celeba_image(path).float()
    whole = load_celeba_image(path, crop=10_000).float()  # crop = the shorter side: blue bands stay
    assert cropped.shape == whole.shape == (3, 32, 32)
    assert cropped[2].mean() < 40 and whole[2].mean() > 40
    small = tmp_path / "small.jpg"
    Image.fromarray(face(40, 48, crop=40)).save(small, quality=95, subsampling=0)
    assert load_celeba_image(small, size=16).shape == (3, 16, 16)
    assert load_celeba_image(small, size=16).float()[2].mean() < 40  # crop = shorter side (40)


def test_cache_is_built_once_and_reused(tmp_path, no_network, monkeypatch):
    write_celeba(tmp_path, n=6)
    first = load_celeba("train", root=str(tmp_path))
    assert cache_path(tmp_path).name == "celeba_32.pt" and cache_path(tmp_path).exists()
    assert not list((tmp_path / "celeba").glob("*.tmp"))
    payload = torch.load(cache_path(tmp_path), weights_only=True)
    assert payload["images"].dtype == torch.uint8 and payload["images"].shape == (6, 3, 32, 32)

    def refuse(*args, **kwargs):
        raise AssertionError("decoded a JPEG although the cache holds it")

    monkeypatch.setattr(celeba_module, "load_celeba_image", refuse)
    again = load_celeba("train", root=str(tmp_path))
    assert torch.equal(first.tensors["x"], again.tensors["x"])
    load_celeba("test", root=str(tmp_path))
    with pytest.raises(AssertionError, match="decoded a JPEG"):
        load_celeba("train", root=str(tmp_path), cache=False)
    monkeypatch.undo()
    # a different file list makes the cache stale: rebuilt with a warning
    write_celeba(tmp_path, n=7)
    with pytest.warns(UserWarning, match="rebuilding the CelebA cache"):
        assert len(load_celeba("train", root=str(tmp_path))) == 3
    assert torch.load(cache_path(tmp_path), weights_only=True)["images"].shape[0] == 7
    # cache=False writes nothing
    other = tmp_path / "other"
    write_celeba(other, n=3)
    assert len(load_celeba("train", root=str(other), cache=False)) == 1
    assert not cache_path(other).exists()


def test_missing_files_message(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("celeba", "train")
    message = str(err.value)
    for part in ("list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba"):
        assert str(tmp_path / "celeba" / part) in message
    assert DATA_ROOT_ENV in message and "--data-root" in message and "--download" in message


def test_download_uses_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCelebA:  # stands in for the network: writes the files torchvision would
        def __init__(self, root, split, target_type, download):
            calls.append((root, split, download))
            write_celeba(Path(root), n=3)

    monkeypatch.setattr(torchvision.datasets, "CelebA", FakeCelebA)
    assert len(load_dataset("celeba", "train", root=str(tmp_path), download=True)) == 1
    load_dataset("celeba", "test", root=str(tmp_path), download=True)
    assert calls == [(str(tmp_path), "all", True)]

    class Failing:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("quota exceeded")

    monkeypatch.setattr(torchvision.datasets, "CelebA", Failing)
    with pytest.raises(RuntimeError, match="quota exceeded.*by hand"):
        load_dataset("celeba", "train", root=str(tmp_path / "empty"), download=True)


def test_malformed_files(tmp_path, no_network):
    write_celeba(tmp_path, n=3)
    attr = tmp_path / "celeba" / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(["4", *lines[1:]]))
    with pytest.raises(ValueError, match="announces 4 images but 3"):
        read_attributes(attr)
    attr.write_text(
        "\n".join([*lines[:2], lines[2].replace("-1", " 0", 1).replace(" 1", " 0", 1), *lines[3:]])
    )
    with pytest.raises(ValueError, match="line 3: attribute values must be -1 or 1"):
        read_attributes(attr)
    attr.write_text("\n".join(lines))
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(ValueError, match="no partition for 2 image"):
        load_celeba("train", root=str(tmp_path), cache=False)
    write_celeba(tmp_path, n=3)
    (tmp_path / "celeba" / "img_align_celeba" / "000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000001.jpg is missing"):
        load_celeba("train", root=str(tmp_path), cache=False)


# --------------------------------------------------------------------------- networks (sec. 4.2.2)


def _layer_kinds(net: nn.Module) -> list[str]:
    names = {
        nn.Conv2d: "C",
        nn.ConvTranspose2d: "DC",
        nn.Linear: "D",
        nn.BatchNorm1d: "B",
        nn.BatchNorm2d: "B",
    }
    names.update({nn.ReLU: "R", nn.Tanh: "Tanh"})
    out = []
    for m in net.modules():
        kind = names.get(type(m))
        if kind in ("C", "DC", "D"):
            out.append(f"{kind}{m.out_channels if kind != 'D' else m.out_features}")
        elif kind:
            out.append(kind)
    return out


def test_network_shapes_and_layers():
    torch.manual_seed(0)
    x, w, z = torch.randn(4, 3, 32, 32), torch.randn(4, 40), torch.randn(4, 128)
    joint = celeba_joint_encoder_net()
    assert joint(x, w).shape == (4, 256)
    assert celeba_image_encoder_net()(x).shape == (4, 256)
    assert celeba_attribute_encoder_net()(w).shape == (4, 256)
    image = celeba_image_decoder_net()(z)
    attributes = celeba_attribute_decoder_net()(z)
    assert image.shape == (4, 3, 32, 32) and attributes.shape == (4, 40)
    assert image.abs().max() < 1 and attributes.abs().max() < 1  # tanh means
    # the paper's layer lists
    body = "C64 R C128 B R C256 B R C256 B R".split()
    assert _layer_kinds(joint.bodies[0]) == body
    assert _layer_kinds(joint.bodies[1]) == "D512 R D512 B R".split()
    assert _layer_kinds(joint.head) == "D1024 R D256".split()
    assert _layer_kinds(celeba_image_encoder_net()) == [*body, "D1024", "R", "D256"]
    assert _layer_kinds(celeba_attribute_encoder_net()) == "D512 R D512 B R D1024 R D256".split()
    assert _layer_kinds(celeba_image_decoder_net()) == "D4096 R DC256 B R DC128 B R DC64 B R DC3 Tanh".split()
    assert _layer_kinds(celeba_attribute_decoder_net()) == "D4096 R D512 B R D40 Tanh".split()
    # 64x64 images (sec. 4.1's resize) with the same layer list
    big = torch.randn(2, 3, 64, 64)
    assert celeba_image_encoder_net(8, (3, 64, 64))(big).shape == (2, 16)
    assert celeba_image_decoder_net(8, (3, 64, 64))(torch.randn(2, 8)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="multiple of 16"):
        celeba_image_encoder_net(8, (1, 28, 28))


def test_arch_celeba_through_the_shared_helpers():
    x = Modality("x", (3, 32, 32), "gaussian")
    w = Modality("w", (40,), "gaussian")
    net = encoder_network([w, x], 2 * 16, arch="celeba")
    assert net(torch.randn(3, 40), torch.randn(3, 3, 32, 32)).shape == (3, 32)
    assert encoder_network([x], 32, arch="celeba")(torch.randn(3, 3, 32, 32)).shape == (3, 32)
    decoder = decoder_network(x, 16, arch="celeba")
    assert _layer_kinds(decoder)[-1] == "Tanh"
    logits = decoder_network(Modality("y", (10,), "categorical"), 16, arch="celeba")
    assert _layer_kinds(logits)[-1] == "D10"  # logits: no tanh
    with pytest.raises(ValueError, match="fixed unit variance"):
        decoder_network(x, 16, arch="celeba", out_channels=2)
    with pytest.raises(ValueError, match="'celeba'"):
        encoder_network([x], 32, arch="resnet")
    # decoder_for with the default scale: the paper's N(x; tanh(f(z)), 1)
    p_x = decoder_for(x, decoder, cond_var=["z"])
    p_x.eval()
    params = p_x.get_params({"z": torch.randn(2, 16)})
    assert params["scale"].eq(1).all() and params["loc"].abs().max() < 1


def test_a_model_trains_with_the_celeba_preset():
    from pixyz_zoo.models import VAE

    torch.manual_seed(0)
    modalities = {"x": Modality("x", (3, 32, 32), "gaussian")}
    model = VAE(modalities, z_dim=8, arch="celeba")
    batch = {"x": torch.rand(4, 3, 32, 32) * 2 - 1}
    first = model.train_step(batch)
    assert np.isfinite(first)
    generated = model.generate(batch, given=["x"], targets=["x"])["x"]
    assert generated.shape == (4, 3, 32, 32) and generated.abs().max() < 1


# --------------------------------------------------------------------------- attribute editing


class LinearPair:
    """generate: w = the first 3 pixels of x; x = w @ M (reshaped). Records the calls."""

    def __init__(self) -> None:
        self.m = torch.randn(3, 2 * 2)
        self.calls = []

    def generate(self, batch, given, targets, sample_latent=True):
        self.calls.append((sorted(batch), list(given), list(targets), sample_latent))
        if given == ["x"]:
            return {"w": batch["x"].flatten(1)[:, :3]}
        return {"x": (batch["w"] @ self.m).view(-1, 1, 2, 2)}


def test_edit_attributes_arithmetic():
    torch.manual_seed(0)
    model = LinearPair()
    x = torch.randn(5, 1, 2, 2)
    with pytest.warns(UserWarning, match=r"value\(s\) 1 = 2 lie outside \[-1, 1\]"):
        edited = edit_attributes(model, {"x": x}, attribute_index=1, value=2.0)
    w = x.flatten(1)[:, :3]
    w_new = w.clone()
    w_new[:, 1] = 2.0
    expected = x + ((w_new - w) @ model.m).view(-1, 1, 2, 2)
    torch.testing.assert_close(edited, expected)
    assert model.calls[0] == (["x"], ["x"], ["w"], False)  # w from x, with means
    assert model.calls[1] == (["w"], ["w"], ["x"], False)  # the mean faces from w only
    # several attributes, the true attributes, clamping, the parts
    w_true = torch.randn(5, 3)
    with pytest.warns(UserWarning, match=r"value\(s\) 0 = -2 lie outside"):
        parts = edit_attributes(
            model, {"x": x, "w": w_true}, [0, 2], [-2.0, 1.0], infer_attributes=False, return_parts=True
        )
    assert parts["w_edited"][:, 0].eq(-2).all() and parts["w_edited"][:, 2].eq(1).all()
    torch.testing.assert_close(parts["w_edited"][:, 1], w_true[:, 1])
    torch.testing.assert_close(parts["edited"], x + parts["x_edited_mean"] - parts["x_mean"])
    torch.testing.assert_close(parts["x_mean"], (w_true @ model.m).view(-1, 1, 2, 2))
    with pytest.warns(UserWarning, match=r"value\(s\) 0 = 5 lie outside"):
        clamped = edit_attributes(model, {"x": x * 10}, 0, 5.0, clamp=(-1.0, 1.0))
    assert clamped.abs().max() <= 1
    # setting an attribute to the value it has leaves the image unchanged
    w_same = torch.cat([torch.full((5, 1), 0.5), torch.randn(5, 2)], 1)
    unchanged = edit_attributes(model, {"x": x, "w": w_same}, 0, 0.5, infer_attributes=False)
    torch.testing.assert_close(unchanged, x)
    with pytest.raises(IndexError, match="out of range for 3 attributes"):
        edit_attributes(model, {"x": x}, 3, 1.0)
    with pytest.raises(ValueError, match="2 attribute indices but 1 values"):
        edit_attributes(model, {"x": x}, [0, 1], [1.0])
