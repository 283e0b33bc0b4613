"""Ground-truth datasets: the interface, procedural dSprites, the npz loader, coloured shapes.

The npz loader is tested on tiny files written here in the real dSprites format (same keys,
a small factor grid); nothing is downloaded.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, load_dataset
from pixyz_zoo.datasets import dsprites as dsprites_module
from pixyz_zoo.datasets.colored_shapes import ColoredShapes, hue_to_rgb, load_colored_shapes
from pixyz_zoo.datasets.dsprites import (
    BOUNDING_RADIUS,
    DSPRITES_DIR,
    DSPRITES_FILE,
    ELLIPSE_SEMI_AXES,
    SHAPE_NAMES,
    SHAPES,
    DSpritesNPZ,
    DSpritesRenderer,
    heart_polygon,
    heart_table,
    load_dsprites,
    load_dsprites_procedural,
    rasterize,
)
from pixyz_zoo.datasets.ground_truth import GroundTruthDataset, split_grid_indices

SQUARE, ELLIPSE, HEART = range(3)
SHAPE, SCALE, ORIENTATION, POS_X, POS_Y = range(5)


@pytest.fixture(scope="module")
def renderer() -> DSpritesRenderer:
    return DSpritesRenderer()


def render(renderer, rows) -> torch.Tensor:
    """Images ``(n, 64, 64)`` of factor rows ``(shape, scale, orientation, posX, posY)``."""
    return renderer.sample_observations_from_factors(np.array(rows))[:, 0]


def centroid(images: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` pixel centroid (column, row) of each image."""
    rows = torch.arange(images.shape[-2], dtype=torch.float32)[:, None]
    cols = torch.arange(images.shape[-1], dtype=torch.float32)[None, :]
    area = images.sum((-2, -1))
    return torch.stack([(images * cols).sum((-2, -1)) / area, (images * rows).sum((-2, -1)) / area], 1)


# ----------------------------------------------------------------------------------- the interface
@pytest.mark.parametrize("data", [DSpritesRenderer(), ColoredShapes()], ids=["dsprites", "colored"])
def test_sample_factors_range_and_sizes(data):
    factors = data.sample_factors(2000, np.random.default_rng(0))
    assert factors.shape == (2000, data.num_factors) and factors.dtype == np.int64
    assert data.num_factors == len(data.factor_names) == len(data.factor_sizes)
    assert (factors.min(0) == 0).all()
    assert factors.max(0).tolist() == [s - 1 for s in data.factor_sizes]


def test_declared_factor_grids():
    d = DSpritesRenderer()
    assert d.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert d.factor_sizes == (3, 6, 40, 32, 32) and d.num_combinations == 737_280
    assert d.observation_shape == (1, 64, 64)
    c = ColoredShapes()
    assert c.factor_sizes == (3, 8, 4, 8, 8) and c.observation_shape == (3, 32, 32)


def test_sampling_is_deterministic_given_the_seed(renderer):
    f1, x1 = renderer.sample(64, np.random.default_rng(7))
    f2, x2 = renderer.sample(64, np.random.default_rng(7))
    f3, _ = renderer.sample(64, np.random.default_rng(8))
    assert np.array_equal(f1, f2) and torch.equal(x1, x2)
    assert not np.array_equal(f1, f3)


def test_grid_index_round_trip_and_order(renderer):
    index = np.array([0, 1, 31, 32, 12_345, 737_279])
    factors = renderer.factors_from_index(index)
    assert np.array_equal(renderer.factor_index(factors), index)
    assert factors[1].tolist() == [0, 0, 0, 0, 1]  # last factor (posY) fastest
    assert factors[3].tolist() == [0, 0, 0, 1, 0]
    assert factors[-1].tolist() == [2, 5, 39, 31, 31]


def test_bad_factors_are_named(renderer):
    with pytest.raises(ValueError, match="'orientation' takes values 0..39"):
        renderer.sample_observations_from_factors(np.array([[0, 0, 40, 0, 0]]))
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        renderer.sample_observations_from_factors(np.zeros((2, 4), dtype=int))


def test_split_indices_are_disjoint_and_seeded():
    train = split_grid_indices(1000, 600, "train", seed=3)
    test = split_grid_indices(1000, 300, "test", seed=3)
    assert len(set(train)) == 600 and len(set(test)) == 300 and not set(train) & set(test)
    assert np.array_equal(train, split_grid_indices(1000, 600, "train", seed=3))
    assert not np.array_equal(train, split_grid_indices(1000, 600, "train", seed=4))
    with pytest.raises(ValueError, match="only 1000 combinations"):
        split_grid_indices(1000, 1001, "train")
    with pytest.raises(ValueError, match="split"):
        split_grid_indices(1000, 10, "valid")


# ---------------------------------------------------------------------------- procedural dSprites
def test_rendered_images_are_binary_and_inside_the_canvas(renderer):
    factors, x = renderer.sample(300, np.random.default_rng(0))
    assert x.shape == (300, 1, 64, 64) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0}
    area = x.sum((1, 2, 3))
    assert (area > 20).all()
    # The largest rotated square keeps its full area in the corners: nothing is clipped.
    corners = [[SQUARE, 5, 5, px, py] for px, py in itertools.product((0, 31), (0, 31))]
    areas = render(renderer, [[SQUARE, 5, 5, 16, 16], *corners]).sum((1, 2))
    assert (areas - areas[0]).abs().max() <= 0.02 * areas[0]


def test_pos_x_moves_right_and_pos_y_moves_down(renderer):
    for shape in range(3):
        xs = centroid(render(renderer, [[shape, 3, 7, p, 10] for p in (0, 8, 16, 24, 31)]))
        ys = centroid(render(renderer, [[shape, 3, 7, 10, p] for p in (0, 8, 16, 24, 31)]))
        assert (xs[1:, 0] > xs[:-1, 0] + 5).all() and (xs[:, 1] - xs[0, 1]).abs().max() < 0.5
        assert (ys[1:, 1] > ys[:-1, 1] + 5).all() and (ys[:, 0] - ys[0, 0]).abs().max() < 0.5
    # One posX step moves the sprite about one pixel (64 * (1 - 2 * 0.23) / 31).
    step = centroid(render(renderer, [[SQUARE, 5, 0, 10, 10], [SQUARE, 5, 0, 11, 10]]))
    assert 0.6 < float(step[1, 0] - step[0, 0]) < 1.6


def test_area_grows_with_scale(renderer):
    for shape in range(3):
        area = render(renderer, [[shape, s, 3, 16, 16] for s in range(6)]).sum((1, 2))
        assert (area[1:] > area[:-1]).all()
        assert 3.0 < float(area[-1] / area[0]) < 5.0  # area ~ scale^2, scale from 0.5 to 1


def test_rotation(renderer):
    # A quarter turn (10 of the 40 orientations) maps a square onto itself.
    square = render(renderer, [[SQUARE, 4, 0, 16, 16], [SQUARE, 4, 10, 16, 16]])
    assert (square[0] != square[1]).sum() <= 4
    # ... but not a heart; half a turn puts the heart's point on top.
    heart = render(renderer, [[HEART, 4, 0, 16, 16], [HEART, 4, 10, 16, 16], [HEART, 4, 20, 16, 16]])
    assert (heart[0] != heart[1]).sum() > 40
    assert abs(float(heart[1].sum() - heart[0].sum())) <= 0.03 * float(heart[0].sum())
    rows = torch.arange(64.0)
    lowest = [int(rows[h.any(1)].max()) for h in heart]
    tip = [float(h[r].sum()) for h, r in zip(heart, lowest, strict=True)]
    assert tip[0] < 4  # the heart's point at the bottom at orientation 0
    assert float(heart[2][lowest[2]].sum()) > tip[0]  # at half a turn the bottom is the lobes
    # Counter-clockwise on screen: an eighth of a turn tilts the ellipse up to the right.
    ellipse = render(renderer, [[ELLIPSE, 5, 5, 16, 16]])[0]
    r, c = ellipse.nonzero(as_tuple=True)
    dx, dy_up = c.float() - c.float().mean(), -(r.float() - r.float().mean())
    assert float((dx * dy_up).mean()) > 2.0


def test_shapes_differ(renderer):
    x = render(renderer, [[s, 5, 3, 16, 16] for s in range(3)]).flatten(1)
    for i, j in itertools.combinations(range(3), 2):
        assert (x[i] != x[j]).sum() > 20


def test_geometry_helpers():
    assert [s.name for s in SHAPES] == list(SHAPE_NAMES)
    assert np.hypot(*heart_polygon().T).max() < BOUNDING_RADIUS
    assert max(ELLIPSE_SEMI_AXES) < BOUNDING_RADIUS
    # The heart's lookup table has the polygon's area (shoelace formula).
    poly = heart_polygon()
    area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], 1)))
    table = heart_table()
    cell = (1.5 / table.shape[0]) ** 2
    assert abs(float(table.sum()) * cell - area) < 0.01 * area
    assert not table[0].any() and not table[-1].any() and not table[:, 0].any()
    # Point tests in the sprite frame agree with the definitions.
    p = torch.tensor([0.0, 0.45, 0.55, 0.59, 0.0, 0.0, 0.0])
    q = torch.tensor([0.0, 0.45, 0.0, 0.0, 0.29, 0.31, -0.45])
    assert SHAPES[SQUARE].contains(p, q).tolist() == [True, True, False, False, True, True, True]
    assert SHAPES[ELLIPSE].contains(p, q).tolist() == [True, False, True, True, True, False, False]
    assert SHAPES[HEART].contains(p, q)[:1].tolist() == [True]
    # The rasteriser handles mixed shapes in one batch like single-shape batches.
    ids = np.array([2, 0, 1, 2, 1])
    centres = np.full((5, 2), 0.5)
    mixed = rasterize(ids, centres, 0.3, 0.4, 32)
    alone = torch.cat([rasterize(ids[i : i + 1], centres[:1], 0.3, 0.4, 32) for i in range(5)])
    assert torch.equal(mixed, alone)


# ---------------------------------------------------------------------------------- to_dataset
def test_to_dataset_shapes_alignment_and_split(renderer):
    train = renderer.to_dataset(120, "train", seed=0)
    test = renderer.to_dataset(40, "test", seed=0)
    assert isinstance(train, GroundTruthDataset) and train.ground_truth is renderer
    assert len(train) == 120 and train.factors.shape == (120, 5)
    assert train.tensors["x"].shape == (120, 1, 64, 64) and train.binarize == "none"
    assert set(train.modalities) == {"x"} and train.modalities["x"].likelihood == "bernoulli"
    again = renderer.sample_observations_from_factors(train.factors)
    assert torch.equal(again, train.tensors["x"])
    assert not set(renderer.factor_index(train.factors)) & set(renderer.factor_index(test.factors))
    assert np.array_equal(renderer.to_dataset(120, "train", seed=0).factors, train.factors)
    batch = next(train.batches(16))
    assert set(batch) == {"x"} and batch["x"].shape == (16, 1, 64, 64)
    part = train.subset(torch.tensor([5, 2, 9]))
    assert np.array_equal(part.factors, train.factors[[5, 2, 9]])
    assert torch.equal(part.tensors["x"], train.tensors["x"][[5, 2, 9]])
    assert np.array_equal(train.subset(slice(3, 6)).factors, train.factors[3:6])


def test_procedural_dsprites_is_registered_offline(monkeypatch):
    assert DATASETS["dsprites-procedural"].offline and not DATASETS["dsprites"].offline
    assert DATASETS["colored-shapes"].offline
    monkeypatch.setattr(dsprites_module, "DSPRITES_TRAIN_SIZE", 50)
    monkeypatch.setattr(dsprites_module, "DSPRITES_TEST_SIZE", 20)
    train = load_dataset("dsprites-procedural", "train", binarize="dynamic")
    test = load_dataset("dsprites-procedural", "test")
    assert (len(train), len(test)) == (50, 20) and train.binarize == "none"
    assert train.factors.shape == (50, 5)
    assert np.array_equal(load_dsprites_procedural("train", n=50).factors, train.factors)


# ------------------------------------------------------------------------------- the npz loader
FAKE_SIZES = (1, 3, 2, 4, 3, 2)  # color, shape, scale, orientation, posX, posY


def write_fake_dsprites(
    folder: Path, compressed: bool = True, shuffle: bool = False, image_shape: tuple[int, int] = (12, 16)
) -> tuple[Path, dict]:
    """A tiny npz in the real dSprites format (same keys, a small factor grid, 12x16 images)."""
    classes = np.array(list(itertools.product(*[range(s) for s in FAKE_SIZES])), dtype=np.int64)
    if shuffle:
        classes = classes[::-1].copy()
    rng = np.random.default_rng(0)
    arrays = {
        "imgs": (rng.random((len(classes), *image_shape)) < 0.3).astype(np.uint8),
        "latents_classes": classes,
        "latents_values": classes * np.array([1.0, 1.0, 0.5, 0.1, 0.25, 0.5]) + [1, 1, 0.5, 0, 0, 0],
        "metadata": np.array({"latents_sizes": np.array(FAKE_SIZES)}, dtype=object),
    }
    path = folder / DSPRITES_DIR / DSPRITES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path, arrays


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
def test_npz_loader_reads_the_real_format(tmp_path, compressed):
    path, arrays = write_fake_dsprites(tmp_path, compressed)
    data = DSpritesNPZ(path)
    assert data.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert data.factor_sizes == FAKE_SIZES[1:] and data.observation_shape == (1, 12, 16)
    assert data.storage is None  # images are read on the first request only
    factors = data.factors_from_index(np.arange(data.num_combinations))
    images = data.sample_observations_from_factors(factors)
    assert data.storage == ("packed" if compressed else "memmap")
    assert np.array_equal(images[:, 0].numpy(), arrays["imgs"])
    picked = np.array([[2, 1, 3, 0, 1], [0, 0, 0, 2, 0]])
    row = [int(np.flatnonzero((arrays["latents_classes"][:, 1:] == f).all(1))[0]) for f in picked]
    assert np.array_equal(data.sample_observations_from_factors(picked)[:, 0].numpy(), arrays["imgs"][row])
    assert np.allclose(data.factor_values(picked), arrays["latents_values"][row][:, 1:])


def test_npz_dataset_through_the_registry(tmp_path, monkeypatch):
    write_fake_dsprites(tmp_path)
    monkeypatch.setattr(dsprites_module, "DSPRITES_TRAIN_SIZE", 100)
    monkeypatch.setattr(dsprites_module, "DSPRITES_TEST_SIZE", 40)
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    train = load_dataset("dsprites", "train")
    test = load_dataset("dsprites", "test", root=tmp_path)
    assert (len(train), len(test)) == (100, 40) and train.tensors["x"].shape == (100, 1, 12, 16)
    gt = train.ground_truth
    assert isinstance(gt, DSpritesNPZ) and test.ground_truth is gt  # opened once
    assert torch.equal(gt.sample_observations_from_factors(train.factors), train.tensors["x"])
    assert not set(gt.factor_index(train.factors)) & set(gt.factor_index(test.factors))
    assert len(load_dsprites("test", root=tmp_path, n=7)) == 7


def test_npz_loader_rejects_other_files(tmp_path):
    path, _ = write_fake_dsprites(tmp_path, shuffle=True)
    with pytest.raises(ValueError, match="not in the dSprites format"):
        DSpritesNPZ(path)
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="missing"):
        DSpritesNPZ(path)
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="download it again"):
        DSpritesNPZ(path)


def test_missing_file_message(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("dsprites", "train", root=tmp_path / "nowhere")
    message = str(info.value)
    expected = os.path.join("nowhere", DSPRITES_DIR, DSPRITES_FILE)
    for needle in (expected, "Data root in use", DATA_ROOT_ENV, "--data-root", "deepmind/dsprites-dataset"):
        assert needle in message
    assert "dsprites-procedural" in message


# ------------------------------------------------------------------------------- coloured shapes
def test_colored_shapes_basics():
    data = ColoredShapes()
    rows = [[SQUARE, 0, 3, 4, 4], [SQUARE, 4, 3, 4, 4], [HEART, 0, 3, 4, 4], [SQUARE, 0, 0, 4, 4]]
    x = data.sample_observations_from_factors(np.array(rows))
    assert x.shape == (4, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    masks = x.amax(1) > 0
    assert torch.equal(masks[0], masks[1])  # hue changes the colour only
    assert (masks[0] != masks[2]).sum() > 10 and masks[3].sum() < masks[0].sum()
    red, cyan = hue_to_rgb(np.array([0.0, 0.5]))
    assert red.tolist() == [1, 0, 0] and cyan.tolist() == [0, 1, 1]
    assert torch.allclose(x[1][:, masks[1]], torch.tensor(data.colors[4], dtype=torch.float32)[:, None])
    left_right = data.sample_observations_from_factors(np.array([[1, 2, 3, 0, 2], [1, 2, 3, 7, 2]]))
    moved = centroid(left_right.amax(1))
    assert moved[1, 0] > moved[0, 0] + 10


def test_colored_shapes_dataset():
    train = load_colored_shapes("train", n=150)
    test = load_colored_shapes("test", n=50)
    assert train.tensors["x"].shape == (150, 3, 32, 32) and train.modalities["x"].shape == (3, 32, 32)
    assert train.binarize == "none" and train.factors.shape == (150, 5)
    gt = train.ground_truth
    assert torch.equal(gt.sample_observations_from_factors(train.factors), train.tensors["x"])
    assert not set(gt.factor_index(train.factors)) & set(gt.factor_index(test.factors))
