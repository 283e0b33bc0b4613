"""Latent traversals, KL bar charts and the per-dimension KL they are sorted by."""

from __future__ import annotations

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from pixyz.losses import KullbackLeibler

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.evaluation import gaussian_kl_per_dimension, kl_per_dimension
from pixyz_zoo.models import BetaVAE
from pixyz_zoo.plots import kl_bar_chart, kl_order, latent_traversal

Z = 4


@pytest.fixture(scope="module")
def model(digits_train):
    torch.manual_seed(0)
    return BetaVAE(digits_train.modalities, z_dim=Z, hidden=[32])


@pytest.fixture(scope="module")
def batch(digits_train):
    return digits_train.first(16)


def labels(ax, axis: str) -> list[str]:
    ticks = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [t.get_text() for t in ticks]


# ----------------------------------------------------------------------------- kl_per_dimension
def test_kl_per_dimension_is_the_closed_form_averaged_over_the_data(model, batch):
    params = model.q.get_params({"x": batch["x"]})
    mu, sigma = params["loc"].detach(), params["scale"].detach()
    expected = (0.5 * (mu**2 + sigma**2 - 1) - torch.log(sigma)).mean(0).double().numpy()
    kl = kl_per_dimension(model, batch, batch_size=5)  # batches of 5, 5, 5, 1
    assert kl.shape == (Z,)
    np.testing.assert_allclose(kl, expected, rtol=1e-5, atol=1e-6)
    # its sum is the KL term of the model's loss
    with torch.no_grad():
        total = float(KullbackLeibler(model.q, model.prior).mean().eval({"x": batch["x"]}))
    assert kl.sum() == pytest.approx(total, rel=1e-4)


def test_kl_per_dimension_takes_datasets_dicts_and_tensors(model):
    subset = load_dataset("digits", "train", binarize="none").subset(slice(0, 40))
    from_dataset = kl_per_dimension(model, subset, batch_size=16)
    from_dict = kl_per_dimension(model, {"x": subset.tensors["x"]})
    from_tensor = kl_per_dimension(model, subset.tensors["x"], batch_size=7)
    from_batches = kl_per_dimension(model, list(subset.batches(10)))
    for other in (from_dict, from_tensor, from_batches):
        np.testing.assert_allclose(other, from_dataset, rtol=1e-5, atol=1e-6)


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert float(gaussian_kl_per_dimension(torch.zeros(1), torch.ones(1))) == pytest.approx(0.0, abs=1e-7)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(torch.tensor(1.5), torch.tensor(0.3)), torch.distributions.Normal(0.0, 1.0)
    )
    assert float(gaussian_kl_per_dimension(torch.tensor(1.5), torch.tensor(0.3))) == pytest.approx(
        float(reference), rel=1e-6
    )


def test_kl_per_dimension_errors(model, batch):
    with pytest.raises(KeyError, match="no variable 'x'"):
        kl_per_dimension(model, {"w": batch["x"]})
    with pytest.raises(ValueError, match="no data"):
        kl_per_dimension(model, [])
    with pytest.raises(TypeError, match="dataset, a batch dict"):
        kl_per_dimension(model, 3.0)


# ----------------------------------------------------------------------------- traversals
def test_rows_are_latents_sorted_by_decreasing_kl_with_labels(model, batch):
    kl = np.array([0.1, 2.0, 0.5, 1.0])
    fig = latent_traversal(model, batch, kl=kl, steps=5)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert fig.traversal_order == [1, 3, 2, 0]
    assert labels(ax, "y") == ["z1  KL 2.00", "z3  KL 1.00", "z2  KL 0.50", "z0  KL 0.10"]
    assert labels(ax, "x") == ["-3", "-1.5", "0", "+1.5", "+3"]
    image = ax.get_images()[0].get_array()
    # 4 rows and 5 columns of 8x8 tiles with 2-pixel separators
    assert image.shape[:2] == (4 * (8 + 2) + 2, 5 * (8 + 2) + 2)


def test_max_latents_keeps_the_most_informative_rows(model, batch):
    fig = latent_traversal(model, batch, kl=[0.1, 2.0, 0.5, 1.0], steps=3, limit=2.0, max_latents=2)
    assert fig.traversal_order == [1, 3]
    assert labels(fig.axes[0], "x") == ["-2", "0", "+2"]
    assert fig.axes[0].get_images()[0].get_array().shape[0] == 2 * 10 + 2


def test_each_row_varies_one_latent_around_the_posterior_mean(model, batch, monkeypatch):
    seen = {}
    decode = model.decode

    def recording_decode(latents, targets, conditions=None):
        seen["z"] = latents["z"].clone()
        return decode(latents, targets, conditions)

    monkeypatch.setattr(model, "decode", recording_decode)
    steps = 4
    mean = model.encode({"x": batch["x"][2:3]})["z"][0]
    for relative in (False, True):
        fig = latent_traversal(
            model, batch, kl=[0.1, 2.0, 0.5, 1.0], steps=steps, example=2, relative=relative
        )
        codes = seen["z"]
        assert codes.shape == (Z * steps, Z)
        values = torch.linspace(-3.0, 3.0, steps)
        for row, dim in enumerate(fig.traversal_order):
            block = codes[row * steps : (row + 1) * steps]
            expected = values + (mean[dim] if relative else 0.0)
            assert torch.allclose(block[:, dim], expected, atol=1e-6)
            others = [d for d in range(Z) if d != dim]
            assert torch.allclose(block[:, others], mean[others].expand(steps, -1), atol=1e-6)


def test_default_kl_is_measured_on_the_example_batch(model, batch):
    fig = latent_traversal(model, batch, steps=2)
    kl = kl_per_dimension(model, batch)
    assert fig.traversal_order == list(kl_order(kl))
    assert labels(fig.axes[0], "y")[0] == f"z{int(np.argmax(kl))}  KL {kl.max():.2f}"


def test_traversal_errors(model, batch):
    with pytest.raises(ValueError, match="3 values but the latent 'z' has 4"):
        latent_traversal(model, batch, kl=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="steps must be >= 2"):
        latent_traversal(model, batch, steps=1)
    with pytest.raises(IndexError, match="example=16"):
        latent_traversal(model, batch, example=16)
    with pytest.raises(KeyError, match="no modality 'y'"):
        latent_traversal(model, batch, variable="y")


# ----------------------------------------------------------------------------- KL bars
def test_kl_bar_chart_sorts_bars_and_labels_dimensions():
    kl = np.array([0.2, 3.0, 0.0, 1.5])
    fig = kl_bar_chart(kl, title="KL")
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [3.0, 1.5, 0.2, 0.0]
    assert labels(ax, "x") == ["z1", "z3", "z0", "z2"]
    assert "4.70" in ax.get_xlabel()  # the total KL
    assert ax.get_title() == "KL"


def test_kl_order_is_stable_and_checks_its_input():
    assert list(kl_order([1.0, 2.0, 1.0])) == [1, 0, 2]
    with pytest.raises(ValueError, match="non-empty vector"):
        kl_order([])


def test_kl_per_dimension_of_a_mixture_of_one_expert_is_that_experts():
    """MoPoE's ``q(z|m)`` is a mixture of one expert, ``\\tilde{q}(z|m)``: it was refused as "not a
    Gaussian's loc and scale"; its KL per dimension is its one Gaussian expert's."""
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.models import build_model

    data = load_dataset("trimodal-digits", "test", binarize="fixed").subset(slice(0, 40))
    model = build_model("mopoe", data.modalities, z_dim=3, hidden=[8])
    params = model.experts["m"].get_params({"m": data.first(40)["m"]})
    expected = gaussian_kl_per_dimension(params["loc"], params["scale"]).mean(0).detach().double()
    measured = kl_per_dimension(model, data, variable="m", batch_size=16)
    assert measured.shape == (3,)
    assert torch.allclose(torch.from_numpy(measured), expected, rtol=1e-5, atol=1e-7)


def test_kl_per_dimension_and_traversals_infer_from_the_models_one_modality_by_default():
    """The default ``variable="x"`` failed on a VAE of another modality ("VAE infers ['z'] only from
    ['m'], not from ['x']") and on every multimodal model ("unknown modality ['x']")."""
    from pixyz_zoo.models import build_model

    data = load_dataset("trimodal-digits", "test", binarize="fixed").subset(slice(0, 20))
    vae = build_model("vae", data.modalities, z_dim=3, hidden=[8], observed="s")
    assert np.array_equal(kl_per_dimension(vae, data), kl_per_dimension(vae, data, variable="s"))
    mopoe = build_model("mopoe", data.modalities, z_dim=3, hidden=[8])
    with pytest.raises(ValueError, match=r"MoPoE infers from \['m', 's', 't'\]: name the one modality"):
        kl_per_dimension(mopoe, data)
    # and so does the traversal (its default "x" was refused: "the model has no modality 'x'")
    assert isinstance(latent_traversal(vae, data.first(4)), Figure)
    assert isinstance(latent_traversal(mopoe, data.first(4), variable="m"), Figure)
    with pytest.raises(ValueError, match=r"MoPoE infers from \['m', 's', 't'\]: name the one modality"):
        latent_traversal(mopoe, data.first(4))
