"""2-D latent pictures: scatter by label, decision regions of p(w|z), decoded grid, curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pixyz_zoo  # noqa: F401, I001
from pixyz_zoo import plots
from pixyz_zoo.modalities import Modality


class HalfPlaneModel:
    """p(w|z) puts class 0 where z_1 < 0 and class 1 elsewhere; p(x|z) is a flat image of z_2."""

    modalities = {
        "x": Modality("x", (1, 4, 4), "bernoulli"),
        "w": Modality("w", (2,), "categorical", labels=("left", "right")),
    }
    device = torch.device("cpu")

    def decode(self, latents, targets):
        z = latents["z"]
        out = {}
        if "w" in targets:
            out["w"] = torch.stack([(z[:, 0] < 0).float(), (z[:, 0] >= 0).float()], dim=1)
        if "x" in targets:
            out["x"] = torch.sigmoid(z[:, 1]).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
        return out


def test_scatter_draws_every_point_with_its_class():
    codes = np.random.default_rng(0).normal(size=(50, 2))
    labels = np.arange(50) % 3
    fig = plots.latent_scatter(codes, labels, label_names=("a", "b", "c"), title="t")
    ax = fig.axes[0]
    offsets = ax.collections[0].get_offsets()
    assert np.allclose(offsets, codes)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="shape \\(N, 2\\)"):
        plots.latent_scatter(np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="5 codes but 4 labels"):
        plots.latent_scatter(np.zeros((5, 2)), np.zeros(4))


def test_decision_regions_follow_the_decoder():
    fig = plots.decision_regions(HalfPlaneModel(), "w", extent=2.0, resolution=40)
    classes = fig.axes[0].images[0].get_array()
    assert classes.shape == (40, 40)
    assert (classes[:, :20] == 0).all() and (classes[:, 20:] == 1).all()
    with pytest.raises(ValueError, match="categorical"):
        plots.decision_regions(HalfPlaneModel(), "x")


def test_latent_grid_puts_large_z2_on_top():
    fig = plots.latent_grid(HalfPlaneModel(), "x", extent=3.0, steps=5)
    tiles = np.asarray(fig.axes[0].images[0].get_array())
    top, bottom = tiles[: tiles.shape[0] // 5].mean(), tiles[-tiles.shape[0] // 5 :].mean()
    assert top > bottom
    with pytest.raises(ValueError, match="image modality"):
        plots.latent_grid(HalfPlaneModel(), "w")


def test_curves_draw_series_and_flat_lines():
    fig = plots.curves([0, 1, 10], {"JMVAE": [-3.0, -2.0, -1.0]}, flat={"JMVAE-kl": -0.5}, log_x=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert np.allclose(ax.lines[0].get_ydata(), [-3.0, -2.0, -1.0])


def test_pca_figure_projects_on_the_principal_components():
    from pixyz_zoo.plots.latents import latent_pca_figure, principal_components

    generator = torch.Generator().manual_seed(0)
    # 8-D latents spread mostly along two directions, three labels of 1 mean + 5 variations each
    basis = torch.linalg.qr(torch.randn(8, 8, generator=generator))[0]
    scales = torch.tensor([5.0, 2.0, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05])
    rows = {
        label: {"z": (torch.randn(6, 8, generator=generator) * scales) @ basis.T + 1.0}
        for label in ("a", "b", "c")
    }
    points = torch.cat([row["z"] for row in rows.values()]).double()

    # numpy's PCA: eigenvectors of the covariance, largest eigenvalues first, up to sign
    centred = points.numpy() - points.numpy().mean(0)
    values, vectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    expected = centred @ vectors[:, np.argsort(values)[::-1][:2]]
    projected = principal_components(points)
    assert projected.shape == (18, 2)
    signs = np.sign((projected * expected).sum(0))
    np.testing.assert_allclose(projected, expected * signs, atol=1e-9)

    fig = latent_pca_figure(rows, "Fig. 8(b)")
    ax = fig.axes[0]
    assert ax.get_title() == "Fig. 8(b)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    drawn = principal_components(torch.cat([row["z"] for row in rows.values()]))
    # per label: its 5 variations (small marks), then its mean (the first row, a large star)
    assert len(ax.collections) == 6
    for i in range(3):
        variations, mean = ax.collections[2 * i].get_offsets(), ax.collections[2 * i + 1].get_offsets()
        np.testing.assert_allclose(variations, drawn[6 * i + 1 : 6 * i + 6], rtol=1e-6)
        np.testing.assert_allclose(mean, drawn[6 * i : 6 * i + 1], rtol=1e-6)
        assert mean.shape == (1, 2) and variations.shape == (5, 2)
