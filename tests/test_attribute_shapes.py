"""The attribute-shapes stand-in for CelebA: form, determinism, correlations, and that the
attributes are what the images show (a small classifier predicts them on held-out images)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from pixyz_zoo.datasets import DATASETS, load_dataset
from pixyz_zoo.datasets.attribute_shapes import (
    ATTRIBUTE_NAMES,
    SHOWCASE_ATTRIBUTES,
    STYLE_DIM,
    generate_attribute_shapes,
    load_attribute_shapes,
    render_scenes,
    sample_attributes,
)


def column(w: torch.Tensor, name: str) -> torch.Tensor:
    return w[:, ATTRIBUTE_NAMES.index(name)] > 0


def test_form_is_celebas():
    start = time.perf_counter()
    train, test = load_dataset("attribute-shapes", "train"), load_dataset("attribute-shapes", "test")
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"generating both splits took {elapsed:.1f} s"  # ~1 s on one core
    assert DATASETS["attribute-shapes"].offline
    assert (len(train), len(test)) == (10_000, 2_000)
    assert 12 <= len(ATTRIBUTE_NAMES) <= 20 and len(set(ATTRIBUTE_NAMES)) == len(ATTRIBUTE_NAMES)
    assert all(name.replace("_", "").isalpha() and name[0].isupper() for name in ATTRIBUTE_NAMES)
    assert len(SHOWCASE_ATTRIBUTES) == 3 and set(SHOWCASE_ATTRIBUTES) <= set(ATTRIBUTE_NAMES)
    for data in (train, test):
        x, w = data.tensors["x"], data.tensors["w"]
        assert data.name == "attribute-shapes"
        assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32
        assert -1.0 <= x.min() and x.max() <= 1.0 and x.min() < -0.9 and x.max() > 0.9
        assert w.shape[1:] == (len(ATTRIBUTE_NAMES),) and w.dtype == torch.float32
        assert set(w.unique().tolist()) == {-1.0, 1.0}
        assert data.modalities["x"].shape == (3, 32, 32) and data.modalities["x"].likelihood == "gaussian"
        assert data.modalities["w"].likelihood == "gaussian"
        assert data.modalities["w"].labels == ATTRIBUTE_NAMES == data.attribute_names
        # every attribute takes both values, none is (almost) constant
        rate = (w > 0).float().mean(0)
        assert (rate > 0.1).all() and (rate < 0.9).all(), dict(
            zip(ATTRIBUTE_NAMES, rate.tolist(), strict=True)
        )


def test_deterministic_prefix_and_disjoint_splits():
    a, b = load_attribute_shapes("train", n=300), load_attribute_shapes("train", n=300, seed=7)
    assert torch.equal(a.tensors["x"], b.tensors["x"]) and torch.equal(a.tensors["w"], b.tensors["w"])
    longer = load_attribute_shapes("train", n=1200)  # crosses a noise block: still a prefix
    assert torch.equal(longer.tensors["x"][:300], a.tensors["x"])
    assert torch.equal(longer.tensors["w"][:300], a.tensors["w"])
    train, test = generate_attribute_shapes(2000, "train")[1], generate_attribute_shapes(2000, "test")[1]
    flat_train = {row.numpy().tobytes() for row in train.flatten(1)}
    assert not any(row.numpy().tobytes() in flat_train for row in test.flatten(1))
    assert not torch.equal(train[:5], test[:5])
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_attribute_shapes("valid")
    with pytest.raises(ValueError, match="n must be a positive number"):
        load_attribute_shapes("train", n=0)


def test_correlations_as_documented():
    w = load_attribute_shapes("train").tensors["w"]
    heart, red = column(w, "Heart"), column(w, "Red")
    striped, outlined, bright = column(w, "Striped"), column(w, "Outlined"), column(w, "Bright_Background")
    assert red[heart].float().mean() == pytest.approx(0.8, abs=0.03)
    assert red[~heart].float().mean() == pytest.approx(0.25, abs=0.03)
    assert not striped[heart].any()
    assert striped[~heart].float().mean() == pytest.approx(0.4, abs=0.03)
    assert outlined[bright].float().mean() == pytest.approx(0.7, abs=0.03)
    assert outlined[~bright].float().mean() == pytest.approx(0.2, abs=0.03)
    shapes = torch.stack([column(w, s) for s in ("Square", "Ellipse", "Heart")], 1)
    colors = torch.stack([column(w, c) for c in ("Red", "Green", "Blue")], 1)
    assert shapes.sum(1).eq(1).all() and colors.sum(1).le(1).all()
    # the other attributes are drawn independently: e.g. Large and Right are uncorrelated
    corr = np.corrcoef(column(w, "Large").numpy(), column(w, "Right").numpy())[0, 1]
    assert abs(corr) < 0.05


def test_each_attribute_changes_the_image_and_style_is_not_an_attribute():
    u = np.random.default_rng(1).random((64, 12))
    attributes = torch.from_numpy(sample_attributes(u))
    style = torch.rand(64, STYLE_DIM, generator=torch.Generator().manual_seed(2))
    base = render_scenes(attributes, style)
    for name in ATTRIBUTE_NAMES[6:]:  # the binary ones outside the shape and colour groups
        flipped = attributes.clone()
        k = ATTRIBUTE_NAMES.index(name)
        flipped[:, k] = ~flipped[:, k]
        changed = (render_scenes(flipped, style) - base).abs().flatten(1).amax(1)
        assert (changed > 0.2).all(), name
    # the same attributes with another style give another image (a style the attributes do not fix)
    restyled = render_scenes(attributes, torch.rand(64, STYLE_DIM))
    assert ((restyled - base).abs().flatten(1).mean(1) > 0.01).all()
    bad = attributes.clone()
    bad[0, :3] = True  # three shapes at once
    with pytest.raises(ValueError, match="exactly one of"):
        render_scenes(bad, style)


def small_cnn(outputs: int) -> nn.Module:
    def block(i: int, o: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, stride, 1), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(
        *block(3, 8, 1),
        nn.MaxPool2d(2),
        *block(8, 32, 2),
        *block(32, 64, 2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, outputs),
    )


@pytest.mark.slow  # ~14 s on one core
def test_a_classifier_reads_every_attribute_off_held_out_images():
    """The attributes are what the images show: a small CNN trained on 8,000 training images
    predicts each attribute of 1,000 test images almost perfectly (measured: every attribute
    >= 0.965, the shapes the hardest; drawing one attribute independently of the image, e.g. the
    frame, drops it to its base rate and fails this test)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, test = load_attribute_shapes("train", n=8000), load_attribute_shapes("test", n=1000)
        x, y = train.tensors["x"], (train.tensors["w"] > 0).float()
        net = small_cnn(len(ATTRIBUTE_NAMES))
        epochs, batch_size = 5, 128
        optimizer = torch.optim.Adam(net.parameters(), 1e-2)
        steps = epochs * ((len(x) + batch_size - 1) // batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-2, total_steps=steps)
        generator = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=generator).split(batch_size):
                loss = nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        net.eval()
        with torch.no_grad():
            predicted = net(test.tensors["x"]) > 0
    finally:
        torch.set_num_threads(threads)
    accuracy = (predicted == (test.tensors["w"] > 0)).float().mean(0)
    report = {name: round(a, 3) for name, a in zip(ATTRIBUTE_NAMES, accuracy.tolist(), strict=True)}
    print("held-out accuracy per attribute:", report)
    assert (accuracy >= 0.95).all(), report
