"""Tests for pixyz_zoo.plots: image grids, heat maps, saving and graphical-model drawing."""

from __future__ import annotations

from pathlib import Path

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from pixyz.distributions import Bernoulli, Normal
from torch import nn

from pixyz_zoo.modalities import Modality
from pixyz_zoo.plots import (
    comparison_grid,
    draw_graphical_model,
    graphical_model_edges,
    image_grid,
    sample_grid,
    save_figure,
    tile_images,
)


# ----------------------------------------------------------------------------- tiny distributions
class Decoder(Bernoulli):
    """p(var | cond) with a linear network."""

    def __init__(self, var: str, cond: str, dim: int = 3, latent: int = 2) -> None:
        super().__init__(var=[var], cond_var=[cond], name="p")
        self.net = nn.Linear(latent, dim)
        self.cond = cond

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"probs": torch.sigmoid(self.net(inputs[self.cond]))}


class Encoder(Normal):
    """q(z | cond...) with a linear network."""

    def __init__(self, cond: list[str], var: str = "z") -> None:
        super().__init__(var=[var], cond_var=cond, name="q")
        self.net = nn.Linear(3 * len(cond), 2)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.net(torch.cat([inputs[name] for name in self.cond_var], dim=-1))
        return {"loc": h, "scale": torch.ones_like(h)}


def prior(var: str = "z") -> Normal:
    return Normal(loc=torch.zeros(2), scale=torch.ones(2), var=[var], features_shape=[2], name="p")


def texts_of(fig: Figure) -> dict[str, tuple[float, float]]:
    """Drawn text -> its data position, over all axes of ``fig``."""
    return {t.get_text(): t.get_position() for ax in fig.axes for t in ax.texts}


# ------------------------------------------------------------------------------ graphical model
def test_vae_edges_and_observed() -> None:
    p = Decoder("x", "z") * prior()
    q = Encoder(["x"])
    structure = graphical_model_edges(p, q)
    assert structure["generative"] == [("z", "x")]
    assert structure["inference"] == [("x", "z")]
    assert structure["observed"] == ["x"]
    assert structure["nodes"]["x"]["observed"] and not structure["nodes"]["z"]["observed"]
    assert structure["nodes"]["z"]["label"] == "$z$"
    assert structure["nodes"]["z"]["layer"] < structure["nodes"]["x"]["layer"]


def test_default_observed_without_inference_is_the_leaves() -> None:
    structure = graphical_model_edges(Decoder("x", "z") * prior())
    assert structure["inference"] == []
    assert structure["observed"] == ["x"]


def test_explicit_observed_and_unknown_name() -> None:
    p = Decoder("x", "z") * prior()
    assert graphical_model_edges(p, observed=["z", "x"])["observed"] == ["z", "x"]
    with pytest.raises(ValueError, match="not in the model"):
        graphical_model_edges(p, observed=["y"])
    with pytest.raises(TypeError, match="Pixyz distribution"):
        graphical_model_edges("p(x|z)p(z)")


def test_two_modality_jmvae_structure() -> None:
    p = Decoder("x", "z") * Decoder("w", "z") * prior()
    q = Encoder(["x", "w"])
    structure = graphical_model_edges(p, q)
    assert sorted(structure["generative"]) == [("z", "w"), ("z", "x")]
    assert sorted(structure["inference"]) == [("w", "z"), ("x", "z")]
    assert sorted(structure["observed"]) == ["w", "x"]
    nodes = structure["nodes"]
    assert nodes["x"]["layer"] == nodes["w"]["layer"] == nodes["z"]["layer"] + 1
    assert nodes["x"]["position"] != nodes["w"]["position"]
    # one theta per decoder (subscripted), one phi for the encoder, the fixed prior has none
    params = {(e["kind"], e["symbol"], tuple(e["children"])) for e in structure["parameters"]}
    assert params == {
        ("generative", r"$\theta_{x}$", ("x",)),
        ("generative", r"$\theta_{w}$", ("w",)),
        ("inference", r"$\phi$", ("z",)),
    }
    assert "p(w|z)p(x|z)p(z)" in structure["captions"][0]
    assert structure["captions"][1] == "q(z|x,w)"


def test_inference_as_list_of_encoders() -> None:
    p = Decoder("x", "z") * Decoder("w", "z") * prior()
    structure = graphical_model_edges(p, [Encoder(["x"]), Encoder(["w"])])
    assert sorted(structure["inference"]) == [("w", "z"), ("x", "z")]
    assert sorted(structure["observed"]) == ["w", "x"]
    assert len(structure["captions"]) == 3


def test_hierarchical_layers_drawn_top_to_bottom() -> None:
    p = Decoder("x", "z_1") * Decoder("z_1", "z_2", dim=2) * prior("z_2")
    q = Encoder(["x"], var="z_1") * Normal(
        loc="z_1", scale=torch.ones(2), var=["z_2"], cond_var=["z_1"], name="q"
    )
    structure = graphical_model_edges(p, q)
    assert structure["generative"] == [("z_2", "z_1"), ("z_1", "x")]
    assert sorted(structure["inference"]) == [("x", "z_1"), ("z_1", "z_2")]
    assert structure["observed"] == ["x"]
    layers = {name: node["layer"] for name, node in structure["nodes"].items()}
    assert layers == {"z_2": 0, "z_1": 1, "x": 2}

    fig = draw_graphical_model(p, q)
    drawn = texts_of(fig)
    y_z2, y_z1, y_x = drawn["$z_{2}$"][1], drawn["$z_{1}$"][1], drawn["$x$"][1]
    assert y_z2 > y_z1 > y_x


def test_conditional_input_counts_as_observed() -> None:
    # CVAE-like p(x|z,y)p(z): y is conditioned on, never generated.
    p = Normal(loc="z", scale=1.0, var=["x"], cond_var=["z", "y"]) * Normal(loc=0.0, scale=1.0, var=["z"])
    assert sorted(graphical_model_edges(p)["observed"]) == ["x", "y"]


def test_draw_marks_observed_and_saves_png(tmp_path: Path) -> None:
    p = Decoder("x", "z") * Decoder("w", "z") * prior()
    fig = draw_graphical_model(p, Encoder(["x", "w"]), show_parameters=True, title="JMVAE")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    circles = [patch for patch in ax.patches if isinstance(patch, Circle)]
    nodes = [c for c in circles if c.get_radius() > 0.2]
    dots = [c for c in circles if c.get_radius() <= 0.2]
    assert len(nodes) == 3 and len(dots) == 3
    shaded = sorted(c.center[1] for c in nodes if c.get_facecolor()[:3] != (1.0, 1.0, 1.0))
    white = [c.center[1] for c in nodes if c.get_facecolor()[:3] == (1.0, 1.0, 1.0)]
    assert len(shaded) == 2 and len(white) == 1 and white[0] > shaded[-1]  # z above x, w
    drawn = texts_of(fig)
    assert {"$x$", "$w$", "$z$", r"$\theta_{x}$", r"$\theta_{w}$", r"$\phi$"} <= set(drawn)
    dashed = [p for p in ax.patches if not isinstance(p, Circle) and p.get_linestyle() != "-"]
    assert len(dashed) == 2 + 1  # two inference edges + the phi edge

    path = save_figure(fig, tmp_path / "figures" / "dag.png")
    assert path.exists() and path.stat().st_size > 10_000


def test_caption_falls_back_to_plain_text() -> None:
    from pixyz_zoo.plots.graphical_model import _mathtext_or_plain

    assert _mathtext_or_plain("p(x|z)p(z)") == "$p(x|z)p(z)$"
    assert _mathtext_or_plain(r"p(x|\notacommand{z})") == r"p(x|\notacommand{z})"


# ------------------------------------------------------------------------------------- grids
def grid_array(fig: Figure):
    (ax,) = fig.axes
    (image,) = ax.images
    return image.get_array()


def test_image_grid_grey_tiles() -> None:
    images = torch.rand(10, 1, 8, 8)
    fig = image_grid(images, nrow=4, title="samples")
    assert isinstance(fig, Figure)
    array = grid_array(fig)
    # 3 rows x 4 columns of 8x8 tiles with 2-pixel padding
    assert array.shape == (3 * 10 + 2, 4 * 10 + 2)
    assert fig.axes[0].get_title() == "samples"


def test_image_grid_rgb_clamps_and_reshapes_flat_vectors() -> None:
    images = torch.randn(6, 3, 5, 7) * 3
    array = grid_array(image_grid(images, nrow=3))
    assert array.shape == (2 * 7 + 2, 3 * 9 + 2, 3)
    assert array.min() >= 0.0 and array.max() <= 1.0
    modality = Modality("x", (1, 8, 8), "bernoulli")
    flat = torch.rand(5, 64)
    assert grid_array(sample_grid(flat, modality, nrow=8)).shape == (12, 5 * 10 + 2)
    with pytest.raises(ValueError, match="C = 1"):
        image_grid(torch.rand(4, 2, 8, 8))


def test_tile_images_places_each_image() -> None:
    images = torch.zeros(3, 1, 2, 2)
    images[1] = 0.5
    grid = tile_images(images, nrow=3)
    assert grid.shape == (6, 14)
    assert grid[2, 2] == 0.0 and grid[2, 6] == 0.5 and grid[0, 0] == 1.0


def test_vector_heat_map_uses_labels_and_stays_wide() -> None:
    names = tuple(f"a{i}" for i in range(10))
    modality = Modality("w", (10,), "gaussian", labels=names)  # attribute vectors, not one label
    fig = image_grid(torch.rand(5, 10), modality)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(names)
    assert ax.images[0].get_array().shape == (5, 10)
    # more examples than entries: one column per example, so the figure is wide, not a strip
    fig = image_grid(torch.rand(64, 10), modality)
    assert fig.axes[0].images[0].get_array().shape == (10, 64)
    width, height = fig.get_size_inches()
    assert width > height
    with pytest.raises(ValueError, match="expected 10"):
        image_grid(torch.rand(2, 4), modality)


def test_label_samples_are_a_compact_grid_of_class_names() -> None:
    modality = Modality("y2", (2,), "categorical", labels=("1", "2"))
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).repeat(32, 1)  # 64 samples
    fig = image_grid(probs, modality, nrow=8, title="samples of y2")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (8, 8)  # one cell per sample, 8 per row
    assert [t.get_text() for t in ax.texts][:2] == ["1", "2"]
    assert ax.images[0].get_array()[0, 0] == pytest.approx(0.9)  # shaded by the class's probability
    width, height = fig.get_size_inches()
    assert 0.5 < width / height < 3  # not a 361 x 1693 strip
    # class indices (an integer tensor) give the class names too
    fig = image_grid(torch.tensor([1, 0, 1]), modality)
    assert [t.get_text() for t in fig.axes[0].texts] == ["2", "1", "2"]
    with pytest.raises(ValueError, match="expected 2"):
        image_grid(torch.rand(2, 4), modality)


def test_text_samples_and_reconstructions_are_decoded_strings() -> None:
    alphabet = tuple("abc ")
    modality = Modality("t", (3, 4), "categorical", labels=alphabet)
    words = torch.tensor([[0, 1, 2], [2, 2, 3], [3, 3, 3]])  # "abc", "cc", blank
    onehot = torch.nn.functional.one_hot(words, 4).float()
    fig = image_grid(onehot, modality, nrow=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["abc", "cc", "(blank)"]
    assert ax.images[0].get_array().shape == (2, 2)
    fig = comparison_grid({"data": onehot, "reconstruction": onehot.flip(0)}, modality=modality)
    rows = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert rows == [["abc", "cc", "(blank)"], ["(blank)", "cc", "abc"]]


def test_comparison_grid_rows() -> None:
    x = torch.rand(12, 1, 8, 8)
    fig = comparison_grid({"data": x, "reconstruction": x.flip(0)}, nrow=6, title="recon")
    image_axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_ylabel() for ax in image_axes] == ["data", "reconstruction"]
    for ax in image_axes:
        assert ax.images[0].get_array().shape == (10 + 2, 6 * 10 + 2)
    # mixed image / label rows (cross-modal generation), shortest row sets the width
    modality = Modality("y", (3,), "categorical", labels=("a", "b", "c"))
    fig = comparison_grid({"x": x[:4], "y": torch.eye(3)[[0, 1, 2, 0, 1]]}, modality={"y": modality})
    image_axes = [ax for ax in fig.axes if ax.images]
    assert image_axes[0].images[0].get_array().shape == (12, 4 * 10 + 2)
    assert image_axes[1].images[0].get_array().shape == (3, 4)  # classes x examples


def test_save_figure_creates_parents_and_closes(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    image_grid(torch.rand(4, 1, 8, 8), ax=ax)
    target = tmp_path / "a" / "b" / "grid"
    path = save_figure(fig, target)
    assert path == target.with_suffix(".png") and path.exists() and path.stat().st_size > 1000
    assert not plt.fignum_exists(fig.number)


def test_siblings_are_drawn_left_to_right_as_the_factorisation_names_them() -> None:
    p = Decoder("m", "z") * Decoder("s", "z") * Decoder("t", "z") * prior()
    structure = graphical_model_edges(p, Encoder(["m", "s", "t"]))
    caption = structure["captions"][0]
    assert caption == "p(t,s,m,z) = p(t|z)p(s|z)p(m|z)p(z)"
    assert p.prob_text == "p(m,z,s,t)"  # Pixyz's own order
    x = {name: node["position"][0] for name, node in structure["nodes"].items()}
    assert x["t"] < x["s"] < x["m"]


@pytest.mark.parametrize(
    "name", ["mfm", "mopoe", "hierarchical-jmvae", "jmvae-kl", "cvae", "iterative-multimodal"]
)
def test_no_edge_of_a_registered_model_passes_through_another_node(name) -> None:
    """MFM's inference edge t -> z_y was drawn as an arc through z_{a_s}, so that it read as an edge
    z_{a_s} -> z_y, and hierarchical JMVAE's s -> z_2 through the dot of phi_{z_1}; every edge now
    passes each node it does not join by more than a node's radius, and each parameter's dot."""
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.models import MODELS, build_model
    from pixyz_zoo.plots.graphical_model import _RADIUS, _arc_points

    data = load_dataset("trimodal-digits", "test")
    data = data.with_labels() if MODELS[name].needs_labels else data
    if name == "cvae":
        data = data.select(["m", "s"])
    model = build_model(name, data.modalities, hidden=[8], z_dim=2)
    observed = list(model.modalities)
    for show_parameters in (False, True):
        structure = graphical_model_edges(model.generative, model.inference, observed, show_parameters)
        nodes = structure["nodes"]
        assert len(structure["edges"]) == len(structure["generative"]) + len(structure["inference"])
        dots = [parameter["position"] for parameter in structure["parameters"]] if show_parameters else []
        for edge in structure["edges"]:
            ends = (edge["parent"], edge["child"])
            curve = _arc_points(nodes[ends[0]]["position"], nodes[ends[1]]["position"], edge["rad"])

            def nearest(at, curve=curve):
                return min(((x - at[0]) ** 2 + (y - at[1]) ** 2) ** 0.5 for x, y in curve)

            for other, node in nodes.items():
                if other not in ends:
                    assert nearest(node["position"]) > _RADIUS, (edge, other)
            if edge["kind"] == "inference":  # (a dot's own edge goes into its node)
                for dot in dots:
                    assert nearest(dot) > 0.1, (edge, dot)


def test_a_whole_batch_or_a_dict_of_lists_is_refused_naming_what_to_pass() -> None:
    """``image_grid(batch)`` failed with "float() argument must be a string or a real number, not
    'dict'"; ``training_curve({"train_loss": [...]})`` with "'str' object has no attribute 'get'"."""
    from pixyz_zoo.plots import training_curve

    batch = {"x": torch.rand(4, 1, 8, 8), "y": torch.rand(4, 10)}
    with pytest.raises(TypeError, match=r"got a batch \(a dict of \['x', 'y'\]\).*batch\['x'\]"):
        image_grid(batch)
    with pytest.raises(TypeError, match=r"list of one dict per epoch.*got dict with keys \['train_loss'\]"):
        training_curve({"train_loss": [1.0, 0.5]})
    history = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]
    assert isinstance(training_curve(history), Figure)


def test_a_model_or_a_dataset_where_values_are_drawn_is_refused_naming_what_to_pass(digits_train) -> None:
    """``sample_grid(model)`` failed with "float() argument must be a string or a real number, not
    'VAE'", ``image_grid(dataset)`` with "... not 'dict'", ``latent_scatter(model, data)`` with "latent
    plots need codes of shape (N, 2), got ()"."""
    from pixyz_zoo.models import VAE
    from pixyz_zoo.plots import latent_scatter, sample_grid

    model = VAE(digits_train.modalities, z_dim=2, hidden=[8])
    what = r"where values \(a tensor or an array\) are drawn: pass them, e\.g\. model\.sample\(16\)\['x'\]"
    with pytest.raises(TypeError, match=rf"^got a VAE {what}"):
        sample_grid(model)
    with pytest.raises(TypeError, match=rf"^got a MultimodalDataset {what}"):
        image_grid(digits_train)
    with pytest.raises(TypeError, match=rf"^got a VAE {what}"):
        latent_scatter(model, digits_train)
    codes = model.encode(digits_train.first(6))["z"]
    assert isinstance(latent_scatter(codes, digits_train.first(6)["y"]), Figure)
    from pixyz_zoo.plots import comparison_grid

    with pytest.raises(
        TypeError, match=r"comparison_grid draws labelled rows, a dict such as .* got MultimodalDataset"
    ):
        comparison_grid(digits_train)  # it failed with "'MultimodalDataset' object has no attribute 'values'"


def test_latent_plane_figures_name_a_latent_of_more_than_two_dimensions_and_their_own_arguments(
    digits_train,
) -> None:
    """``latent_grid`` of a 3-D latent said "latent 'z' has shape (100, 2)", of an unknown modality
    raised a bare KeyError 'q'; ``steps=0`` failed in image_grid ("empty batch") and ``nrow=0`` drew
    a figure."""
    from pixyz_zoo.models import VAE
    from pixyz_zoo.plots import decision_regions, latent_grid

    model = VAE(digits_train.modalities, z_dim=3, hidden=[8])
    with pytest.raises(ValueError, match=r"^latent_grid decodes points of the 2-D plane of 'z'.*z_dim=2"):
        latent_grid(model, "x")
    with pytest.raises(KeyError, match=r"'q' is not a modality of VAE; it has \['x'\]"):
        latent_grid(model, "q")
    with pytest.raises(KeyError, match=r"'w' is not a latent of VAE; it has \['z'\]"):
        latent_grid(model, "x", latent="w")
    plane = VAE(digits_train.modalities, z_dim=2, hidden=[8])
    with pytest.raises(ValueError, match=r"steps, the number of points per axis .* >= 2, got 0"):
        latent_grid(plane, "x", steps=0)
    half_width = r"extent, the half-width of the latent square drawn, must be a number > 0, got -1"
    with pytest.raises(ValueError, match=half_width):
        latent_grid(plane, "x", extent=-1)
    assert isinstance(latent_grid(plane, "x", steps=3), Figure)
    with pytest.raises(ValueError, match=r"need a categorical class label; 'x' is bernoulli"):
        decision_regions(plane, "x")
    with pytest.raises(ValueError, match=r"nrow, the number of images per row, must be an integer >= 1"):
        image_grid(torch.rand(4, 1, 8, 8), nrow=0)


def test_figures_of_one_row_per_model_refuse_a_model_alone() -> None:
    """``generations_by_model(model, ...)`` failed with "'MoPoE' object has no attribute 'values'"."""
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.models import MoPoE
    from pixyz_zoo.plots import generations_by_model, missing_modality_grid

    data = load_dataset("trimodal-digits", "test")
    model, batch = MoPoE(data.modalities, z_dim=2, hidden=[8]), data.first(3)
    for figure in (generations_by_model, missing_modality_grid):
        with pytest.raises(
            TypeError, match=r"one row per model: pass a dict of row label -> model, e\.g\. \{'MoPoE'"
        ):
            figure(model, batch, ["m"], "s", n=3)
        with pytest.raises(
            ValueError, match=r"n, the number of examples shown, must be an integer >= 1, got 0"
        ):
            figure({"a": model}, batch, ["m"], "s", n=0)
        with pytest.raises(TypeError, match=r"got MultimodalDataset.*dataset\.first\(n\)"):
            figure({"a": model}, data, ["m"], "s", n=3)
        assert isinstance(figure({"a": model}, batch, ["m"], "s", n=8), Figure)


def test_figures_of_metrics_by_model_refuse_one_models_metrics_alone() -> None:
    """``coherence_heatmap(evaluate_multimodal(...))`` failed with "'float' object is not iterable"."""
    from pixyz_zoo.plots import coherence_heatmap, metric_bars

    one_model = {"coherence[m->s]": 0.5, "coherence[s->m]": 0.25}
    for figure in (coherence_heatmap, metric_bars):
        with pytest.raises(
            TypeError, match=r"one dict of metrics per model.*wrap them, \{'model': metrics\}"
        ):
            figure(one_model)
        assert isinstance(figure({"model": one_model}), Figure)


def test_a_zoo_model_is_drawn_as_itself_and_a_folder_is_no_figure_file(digits_train, tmp_path) -> None:
    """``draw_graphical_model(vae)`` was refused ("must be a Pixyz distribution ..., got VAE"), and
    ``save_figure(fig, folder)`` wrote the sibling file FOLDER.png."""
    from pixyz_zoo.models import VAE

    model = VAE(digits_train.modalities, z_dim=2, hidden=[8])
    by_parts = graphical_model_edges(model.generative, model.inference, observed=list(model.modalities))
    assert graphical_model_edges(model) == by_parts
    assert graphical_model_edges(model, observed=[])["observed"] == []  # what is given is kept
    with pytest.raises(IsADirectoryError, match=r"is a folder: give the figure's file, e\.g\. .*figure\.png"):
        save_figure(draw_graphical_model(model), tmp_path)
    assert not tmp_path.with_suffix(".png").exists()
