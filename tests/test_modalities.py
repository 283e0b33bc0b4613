import pytest
import torch

from pixyz_zoo.modalities import Modality, check_batch

X = Modality("x", (1, 8, 8), "bernoulli")
Y = Modality("y", (10,), "categorical")


def test_declaration_properties():
    assert X.dim == 64 and X.is_image
    assert Y.dim == 10 and not Y.is_image


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "1x", "shape": (3,), "likelihood": "gaussian"}, "not a valid variable name"),
        ({"name": "x", "shape": (3,), "likelihood": "poisson"}, "unknown likelihood"),
        ({"name": "y", "shape": (2, 5, 3), "likelihood": "categorical"}, "one-hot vector"),
        # a size of 0, a negative or a fractional one was taken (2.5 as 2)
        ({"name": "x", "shape": (0,), "likelihood": "gaussian"}, r"integers >= 1.*got \(0,\)"),
        ({"name": "x", "shape": (-1, 3), "likelihood": "gaussian"}, r"integers >= 1.*got \(-1, 3\)"),
        ({"name": "x", "shape": (2.5,), "likelihood": "gaussian"}, r"integers >= 1.*got \(2\.5,\)"),
        # labels for another number of classes than the shape's were taken
        (
            {"name": "y", "shape": (3,), "likelihood": "categorical", "labels": ("a", "b")},
            "labels name the 3",
        ),
    ],
)
def test_bad_declarations_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Modality(**kwargs)


def test_a_size_alone_is_a_one_dimensional_shape_and_a_name_must_be_a_string():
    """``Modality("x", 64, ...)`` failed with "'int' object is not iterable", a name 3 with
    "'int' object has no attribute 'isidentifier'"."""
    assert Modality("x", 64, "gaussian").shape == (64,)
    assert Modality("x", torch.Size([1, 8, 8]), "bernoulli") == X
    assert Modality("y", (2,), "categorical", ["a", "b"]).labels == ("a", "b")
    with pytest.raises(TypeError, match="a modality's name is a string such as 'x', got 3"):
        Modality(3, (2,), "gaussian")


def test_check_batch_names_missing_variable():
    with pytest.raises(KeyError, match=r"missing variable\(s\) \['y'\].*rename the keys"):
        check_batch({"x": torch.zeros(2, 1, 8, 8), "label": torch.zeros(2, 10)}, {"x": X, "y": Y})


def test_check_batch_names_wrong_shape():
    with pytest.raises(ValueError, match=r"'x' has shape \(2, 64\), expected \(batch, 1, 8, 8\)"):
        check_batch({"x": torch.zeros(2, 64)}, {"x": X})


def test_one_example_without_its_batch_dimension_is_named():
    with pytest.raises(
        ValueError,
        match=r"'x' has shape \(1, 8, 8\), one example without the batch dimension.*"
        r"\(1, 1, 8, 8\).*unsqueeze\(0\)",
    ):
        check_batch({"x": torch.zeros(1, 8, 8)}, {"x": X})


def test_class_indices_for_a_one_hot_label_are_named():
    with pytest.raises(ValueError, match=r"'y' holds 4 class indices.*one_hot\(y, 10\)\.float\(\)"):
        check_batch({"x": torch.zeros(4, 1, 8, 8), "y": torch.tensor([0, 3, 9, 1])}, {"x": X, "y": Y})


def test_check_batch_finds_nan():
    bad = torch.zeros(2, 1, 8, 8)
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="1 NaN/inf values"):
        check_batch({"x": bad}, {"x": X})


def test_check_batch_rejects_non_dict():
    with pytest.raises(TypeError, match="dict keyed by variable name"):
        check_batch([torch.zeros(2, 1, 8, 8)], {"x": X})
