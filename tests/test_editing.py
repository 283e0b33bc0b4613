"""Attribute editing (JMVAE paper, sec. 4.6.4): names, bad names, extrapolation warnings, exact no-op.

The arithmetic ``x + x'_mean - x_mean`` itself is tested in ``test_celeba.py``.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from pixyz_zoo.datasets.attribute_shapes import ATTRIBUTE_NAMES, load_attribute_shapes
from pixyz_zoo.evaluation.editing import edit_attributes
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import JMVAEKL

NAMES = ("Male", "Bald", "Smiling")


class LinearPair:
    """generate: w = the first 3 pixels of x; x = w @ M; declares the attribute names."""

    def __init__(self, names: tuple[str, ...] = NAMES) -> None:
        self.m = torch.randn(3, 4)
        self.modalities = {
            "x": Modality("x", (1, 2, 2), "gaussian"),
            "w": Modality("w", (3,), "gaussian", labels=names),
        }

    def generate(self, batch, given, targets, sample_latent=True):
        if given == ["x"]:
            return {"w": batch["x"].flatten(1)[:, :3]}
        return {"x": (batch["w"] @ self.m).view(-1, 1, 2, 2)}


def test_attributes_by_name_match_indices():
    torch.manual_seed(0)
    model = LinearPair()
    x = torch.randn(4, 1, 2, 2)
    by_index = edit_attributes(model, {"x": x}, [2, 0], [1.0, -1.0])
    by_name = edit_attributes(model, {"x": x}, ["Smiling", "Male"], [1.0, -1.0])
    mixed = edit_attributes(model, {"x": x}, ["Smiling", 0], [1.0, -1.0])
    torch.testing.assert_close(by_name, by_index)
    torch.testing.assert_close(mixed, by_index)
    parts = edit_attributes(model, {"x": x}, "Bald", 1.0, return_parts=True)
    assert parts["w_edited"][:, 1].eq(1).all()
    torch.testing.assert_close(parts["w_edited"][:, [0, 2]], parts["w"][:, [0, 2]])


def test_unknown_attribute_name_lists_the_models_names():
    model = LinearPair()
    x = torch.randn(2, 1, 2, 2)
    with pytest.raises(KeyError, match=r"unknown attribute 'Blond'.*Male, Bald, Smiling"):
        edit_attributes(model, {"x": x}, "Blond", 1.0)
    unnamed = LinearPair(names=())
    with pytest.raises(KeyError, match="declares no attribute names.*give the column index"):
        edit_attributes(unnamed, {"x": x}, "Male", 1.0)


def test_values_beyond_the_trained_range_warn():
    model = LinearPair()
    x = torch.randn(2, 1, 2, 2)
    with pytest.warns(UserWarning, match=r"'Bald' = 2 lie outside \[-1, 1\].*extrapolates beyond training"):
        edit_attributes(model, {"x": x}, "Bald", 2.0)
    with pytest.warns(UserWarning, match=r"0 = -2 lie outside \[-1, 1\]"):
        edit_attributes(model, {"x": x}, [0, 1], [-2.0, 1.0])
    with pytest.warns(UserWarning, match=r"outside \[0, 1\]"):
        edit_attributes(model, {"x": x}, 0, -1.0, trained_range=(0.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edit_attributes(model, {"x": x}, [0, 1, 2], [1.0, -1.0, 0.3])  # inside: no warning
        edit_attributes(model, {"x": x}, 0, 2.0, trained_range=None)  # check turned off


def test_setting_the_current_value_returns_x_exactly():
    """x'_mean = x_mean (w' = w) gives x back bit for bit, with a real JMVAE-kl on attribute-shapes."""
    torch.manual_seed(0)
    data = load_attribute_shapes("test", n=16)
    model = JMVAEKL(data.modalities, z_dim=4, hidden=[32])
    batch = {"x": data.tensors["x"], "w": data.tensors["w"]}
    column = ATTRIBUTE_NAMES.index("Red")
    for value in (1.0, -1.0):
        rows = batch["w"][:, column] == value
        same = {k: v[rows] for k, v in batch.items()}
        out = edit_attributes(model, same, "Red", value, infer_attributes=False)
        assert torch.equal(out, same["x"])
    # and an actual edit changes exactly the rows whose attribute changed
    parts = edit_attributes(model, batch, "Red", 1.0, infer_attributes=False, return_parts=True)
    changed = batch["w"][:, column] != 1.0
    assert torch.equal(parts["edited"][~changed], batch["x"][~changed])
    assert not torch.isclose(parts["edited"][changed], batch["x"][changed]).all()
