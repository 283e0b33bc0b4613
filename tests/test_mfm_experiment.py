"""``pixyz-zoo reproduce mfm``: the smoke setting end to end through the CLI (every table, figure and
section, nothing retrained when run again), the findings' statements on hand-made numbers both ways,
and the figures of ``plots.factors``."""

from __future__ import annotations

import json
import math
import re

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from pixyz_zoo import plots
from pixyz_zoo.cli import main
from pixyz_zoo.datasets import MultimodalDataset
from pixyz_zoo.experiments import ExperimentContext, experiment_names
from pixyz_zoo.experiments.mfm import (
    NO_RECONSTRUCTION,
    ORDERINGS,
    VARIANTS,
    accuracy,
    classifiers_for,
    compare_metric,
    findings_from_results,
    interpretation_findings,
    load_data,
    mean_image_error,
    missing_findings,
    one_per_class,
    ordering_findings,
    paired_findings,
    reconstruction_error,
    settings,
    status,
    swap_findings,
    train_models,
)
from pixyz_zoo.modalities import Modality

SECTIONS = (
    "## 1. Paired digits: unimodal and multimodal classification",
    "### Factor swapping",
    "## 2. Ablations",
    "## 3. Missing modalities",
    "## 4. Time series and interpretation",
    "## Findings",
    "## Settings",
)
#: the runs of the experiment (run directories under OUT/runs)
RUNS = {*VARIANTS, "MB-m", "MB-s", "translation-s-to-m", "translation-m-to-s", "MFM-lstm"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("mfm-smoke")
    try:
        assert main(["reproduce", "mfm", "--smoke", "--out", str(out), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_smoke_run_measures_every_part_and_writes_the_report(smoke_run):
    out, results = smoke_run
    assert "mfm" in experiment_names()
    assert results["setting"] == "smoke" and "figure_errors" not in results
    assert {p.name for p in (out / "runs").iterdir()} == RUNS
    # the image runs read m and s of the trimodal dataset (the run code adds the label y), MB one of them
    read = {
        p.name: json.loads((p / "config.json").read_text())["data"].get("modalities")
        for p in (out / "runs").iterdir()
    }
    assert read["MFM"] == read["MA"] == read["translation-s-to-m"] == ["m", "s"]
    assert read["MB-m"] == ["m"] and read["MB-s"] == ["s"] and read["MFM-lstm"] is None
    for key in ("settings", "paired", "ablation", "missing", "sequences", "errors", "figures", "measure"):
        assert key in results, key
    names = results["modalities"]
    assert names == ["m", "s"] and results["settings"]["dataset"] == "trimodal-digits"
    # 1. UM / MM accuracies of MFM and of the discriminative network, reconstruction, swapping
    table = results["paired"]["table"]
    assert set(table) == {"MFM", "discriminative"}
    for row in table.values():
        assert set(row) == {"UM[m]", "UM[s]", "MM"} and all(0 <= v <= 1 for v in row.values())
    assert table["MFM"]["MM"] == results["ablation"]["rows"]["MFM"]["accuracy"]
    assert table["discriminative"]["MM"] == results["ablation"]["rows"]["MB"]["accuracy"]
    assert set(results["paired"]["reconstruction"]) == set(names)
    for m in names:
        swap = results["paired"]["swap"][m]
        assert 0 <= swap["label"] <= 1 and 0 <= swap["style"] <= 1 and swap["pairs"] > 0
    # 2. the ablations: every variant, "-" (None) and its reason where there is no decoder
    rows = results["ablation"]["rows"]
    assert list(rows) == list(VARIANTS)
    for label, row in rows.items():
        decoders = VARIANTS[label]["generative_factor"] != "none"
        assert (row["reconstruction"] is not None) is decoders, label
        assert all(row[f"accuracy[{m}]"] is not None for m in names), label
    assert results["errors"]["MA reconstruction"] == NO_RECONSTRUCTION
    assert list(results["ablation"]["orderings"]) == [f"{a} > {b}" for a, b, _, _ in ORDERINGS]
    assert results["ablation"]["orderings"] == json.loads(json.dumps(ordering_findings(rows)))
    # 3. missing modalities: MFM, translation, discriminative and the mean image for each
    missing = results["missing"]["rows"]
    assert set(missing) == set(names)
    for m, row in missing.items():
        for key in ("accuracy", "discriminative", "reconstruction", "translation", "mean image"):
            assert math.isfinite(row[key]), (m, key)
    assert missing["m"]["discriminative"] == table["discriminative"]["UM[s]"]
    # 4. the sequences: accuracy, both interpretations, whether they find the informative modality
    sequences = results["sequences"]
    assert sequences["informative"] in sequences["modalities"]
    assert set(sequences["ratios"]) == set(sequences["modalities"]) == set(sequences["contributions"])
    length = len(next(iter(sequences["contributions_over_time"].values())))
    assert len(sequences["label_steps"]) == length
    assert set(sequences["findings"]) == {"information-based ratio", "gradient-based contribution", "timing"}
    # the figures, each file written
    expected = {"accuracy", "ablation", "reconstructions", "contributions"}
    expected |= {f"{kind}_{m}" for kind in ("swap_label", "swap_style", "missing") for m in names}
    assert set(results["figures"]) == expected
    for path in results["figures"].values():
        assert (out / path).stat().st_size > 0
    # the report: its sections in order, every table, every finding, every figure linked
    report = (out / "report.md").read_text()
    positions = [report.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    for header in (
        "| model | UM: m (MNIST) alone",
        "| model | what it is | accuracy (MM)",
        "| missing | observed",
    ):
        assert header in report
    assert "| modality | information-based ratio" in report
    # every finding is computed from the recorded numbers: recomputed from results.json, it is the same
    recomputed = findings_from_results(results)
    assert len(recomputed) == 3 + 2 + len(ORDERINGS) + 3 + 3
    stored = [
        *results["paired"]["findings"].values(),
        *results["paired"]["swap_findings"].values(),
        *results["ablation"]["orderings"].values(),
        *results["missing"]["findings"].values(),
        *sequences["findings"].values(),
    ]
    assert [f["sentence"] for f in recomputed.values()] == [f["sentence"] for f in stored]
    for found in recomputed.values():
        assert found["sentence"] in report
    for path in results["figures"].values():
        assert f"]({path})" in report
    assert f"MA, MB: reconstruction `-`: {NO_RECONSTRUCTION}" in report
    for block in re.findall(r"((?:^\|.*\n)+)", report, flags=re.M):  # as many cells as the header
        lines = block.strip().splitlines()
        assert len({len(re.split(r"(?<!\\)\|", line)) for line in lines}) == 1, lines[0]


@pytest.mark.slow
def test_a_second_invocation_retrains_nothing(smoke_run):
    out, _ = smoke_run
    stamps = {p: p.stat().st_mtime_ns for p in sorted(out.glob("runs/*/checkpoint.pt"))}
    stamps.update({p: p.stat().st_mtime_ns for p in sorted((out / "classifiers").glob("*")) if p.is_file()})
    assert len([p for p in stamps if p.name == "checkpoint.pt"]) == len(RUNS)
    # everything the experiment trains goes through these calls, as the experiment makes them
    ctx = ExperimentContext(out, "smoke", progress=False)
    s = settings(ctx)
    data = load_data(ctx, s)
    classifiers_for(ctx, s, data["train"], data["test"])
    models = train_models(ctx, s)
    assert models["MFM"].config["generative_factor"] == "per-modality"
    assert models["MFM"].data_modalities == ["m", "s"] and models["MB[m]"].data_modalities == ["m"]
    assert models["MFM-lstm"].config["arch"] == "lstm"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


# ---------------------------------------------------------------------- data and measures
class Oracle:
    """Predicts the label of each example from a fixed table and generates ``x`` as a constant."""

    label = "y"

    def __init__(self, labels: torch.Tensor, value: float) -> None:
        self.labels, self.value = labels, value

    def generate(self, batch, given=(), targets=None, sample_latent=True):
        rows = len(batch["x"])
        out = {}
        for t in targets:
            if t == "y":
                index = batch["index"].long().reshape(-1)
                out[t] = torch.nn.functional.one_hot(self.labels[index], 3).float()
            else:
                out[t] = torch.full((rows, 1, 2, 2), self.value)
        return out


def test_accuracy_and_reconstruction_error_on_known_answers():
    labels = torch.tensor([0, 1, 2, 1, 0])
    x = torch.zeros(5, 1, 2, 2)
    x[:, 0, 0, 0] = 1.0  # one pixel of four is 1
    index = torch.arange(5).float().reshape(5, 1)
    modalities = {"x": Modality("x", (1, 2, 2), "gaussian"), "index": Modality("index", (1,), "gaussian")}
    data = MultimodalDataset(
        "toy", {"x": x, "index": index}, modalities, labels=labels, classes=("a", "b", "c")
    )
    wrong = labels.clone()
    wrong[:2] = 2  # two of five wrong
    assert accuracy(Oracle(labels, 0.0), data, ["x"], n=5, size=2) == 1.0
    assert accuracy(Oracle(wrong, 0.0), data, ["x"], n=5, size=2) == pytest.approx(0.6)
    assert accuracy(Oracle(wrong, 0.0), data, ["x"], n=2, size=2) == 0.0  # the first n examples only
    # constant 0: error 1/4 per pixel on average; constant 0.5: 0.25 everywhere
    assert reconstruction_error(Oracle(labels, 0.0), data, data, ["index"], "x", 5, 2) == pytest.approx(0.25)
    assert reconstruction_error(Oracle(labels, 0.5), data, data, ["index"], "x", 5, 3) == pytest.approx(0.25)
    assert mean_image_error(data, data, "x", 5) == pytest.approx(0.0)
    unlabelled = MultimodalDataset("toy", {"x": x, "index": index}, modalities)
    with pytest.raises(ValueError, match="no labels"):
        accuracy(Oracle(labels, 0.0), unlabelled, ["x"], n=5)


# ---------------------------------------------------------------------- a stand-in with MFM's surface
class Factored:
    """The MFM surface on 1x2x2 images whose pixels say which examples' factors made them.

    ``z_y`` of an example is its ``m``'s first pixel, ``z_a^m`` its second one; decoding puts
    ``f_y`` in the first pixel and ``f_a^m`` in the second, so a swapped image names its sources."""

    data_modalities = ["m"]
    discriminative_latent = "z_y"
    label = "y"

    def __init__(self, style: str = "z_a_m") -> None:
        self.modalities = {"m": Modality("m", (1, 2, 2), "gaussian"), "y": Modality("y", (3,), "categorical")}
        self.distributions = nn.ModuleList()
        self._style = style

    def style_latent(self, m: str) -> str:
        return self._style

    def infer_latents(self, batch, given=None):
        x = batch["m"].reshape(len(batch["m"]), -1)
        return {"z_y": x[:, :1], self._style: x[:, 1:2]}

    def factor_features(self, latents):
        return dict(latents)

    def decode_features(self, features, target):
        out = torch.zeros(len(features["z_y"]), 4)
        out[:, 0], out[:, 1] = features["z_y"][:, 0], features[self._style][:, 0]
        return out.reshape(-1, 1, 2, 2)

    def generate(self, batch, given=(), targets=None, sample_latent=True):
        x = batch[given[0]] if given[0] == "m" else torch.zeros(len(batch[given[0]]), 1, 2, 2)
        return {t: x * 0.5 for t in targets}


def images(values):
    """Images of ``Factored`` whose label and style pixels are the given pairs."""
    x = torch.zeros(len(values), 4)
    x[:, :2] = torch.tensor(values, dtype=torch.float32)
    return x.reshape(-1, 1, 2, 2)


def test_factor_swap_images_decode_the_label_of_one_example_with_the_style_of_another():
    styles = {"m": images([[0.1, 0.2], [0.3, 0.4]])}
    labels = {"m": images([[0.5, 0.6], [0.7, 0.8], [0.9, 1.0]])}
    out = plots.factor_swap_images(Factored(), styles, labels, "m")
    assert out.shape == (2, 3, 1, 2, 2)
    for i, style in enumerate((0.2, 0.4)):
        for j, label in enumerate((0.5, 0.7, 0.9)):
            assert out[i, j, 0, 0, 0].item() == pytest.approx(label)  # the label factor of column j
            assert out[i, j, 0, 0, 1].item() == pytest.approx(style)  # the style factor of row i


def test_swapped_pairs_decode_the_label_and_style_of_paired_examples():
    styles = {"m": images([[0.1, 0.2], [0.3, 0.4]])}
    labels = {"m": images([[0.5, 0.6], [0.7, 0.8]])}
    out = plots.swapped_pairs(Factored(), styles, labels, "m")
    assert out.shape == (2, 1, 2, 2)
    assert out[:, 0, 0, 0].tolist() == pytest.approx([0.5, 0.7]) and out[
        :, 0, 0, 1
    ].tolist() == pytest.approx([0.2, 0.4])
    with pytest.raises(ValueError, match="pairs example i"):
        plots.swapped_pairs(Factored(), styles, {"m": images([[0.5, 0.6]])}, "m")


def test_factor_swap_grid_draws_both_orientations_and_refuses_models_without_style_factors():
    styles = {"m": images([[0.1, 0.2], [0.3, 0.4]])}
    labels = {"m": images([[0.5, 0.6], [0.7, 0.8], [0.9, 1.0]])}
    by_label = plots.factor_swap_grid(Factored(), styles, labels, "m", vary="label")
    by_style = plots.factor_swap_grid(Factored(), styles, labels, "m", vary="style")
    shape = by_label.axes[0].images[0].get_array().shape
    # (1 + rows) x (1 + columns) tiles of 2 pixels with 2-pixel separators
    assert shape == (2 + 3 * 4, 2 + 4 * 4) and by_style.axes[0].images[0].get_array().shape == (
        2 + 4 * 4,
        2 + 3 * 4,
    )
    assert "vary the label factor" in by_label.axes[0].get_title()
    assert "fix the label factor" in by_style.axes[0].get_title()
    with pytest.raises(ValueError, match="vary must be one of"):
        plots.factor_swap_grid(Factored(), styles, labels, "m", vary="both")
    with pytest.raises(ValueError, match="no generative factor"):
        plots.factor_swap_images(Factored(style="z_y"), styles, labels, "m")
    with pytest.raises(KeyError, match="not a data modality"):
        plots.factor_swap_images(Factored(), styles, labels, "y")


def test_missing_modality_grid_has_a_row_per_model_and_reference():
    batch = {"m": images([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]), "s": images([[0.0, 0.0]] * 3)}
    model = Factored()
    model.modalities = {**model.modalities, "s": Modality("s", (1, 2, 2), "gaussian")}
    fig = plots.missing_modality_grid(
        {"surrogate": model, "translation": model},
        batch,
        ["s"],
        "m",
        references={"mean": torch.ones(1, 2, 2)},
        n=2,
    )
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["s (observed)", "m (missing: truth)", "surrogate", "translation", "mean"]
    with pytest.raises(ValueError, match="without the target"):
        plots.missing_modality_grid({"a": model}, batch, ["m"], "m")
    by_name = plots.missing_modality_grid({"a": model}, batch, "s", "m", n=2)  # one modality alone
    assert [ax.get_ylabel() for ax in by_name.axes] == ["s (observed)", "m (missing: truth)", "a"]


def test_gradient_contributions_figure_draws_a_line_per_modality_and_marks_the_informative_one():
    fig = plots.gradient_contributions_figure(
        {"a": torch.ones(5, 4), "b": [0.1, 0.2, 0.3, 0.4]}, ratios={"a": 0.9, "b": 0.1}, informative="a"
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    lines = fig.axes[1].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[1.0] * 4, pytest.approx([0.1, 0.2, 0.3, 0.4])]
    assert "informative by construction" in lines[0].get_label()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a*", "b"]
    shaded = plots.gradient_contributions_figure({"a": [1.0, 2.0, 3.0]}, highlight=[False, True, True])
    spans = [p.get_x() for p in shaded.axes[0].patches]  # one shaded span per highlighted step
    assert (
        spans == pytest.approx([1.5, 2.5])
        and "label acts" in shaded.axes[0].get_legend().texts[-1].get_text()
    )
    only_lines = plots.gradient_contributions_figure({"a": [1.0, 2.0]})
    assert len(only_lines.axes) == 1
    with pytest.raises(ValueError, match="sequence"):
        plots.gradient_contributions_figure({"a": torch.ones(2, 3, 4)})


# ---------------------------------------------------------------------- statements from numbers
def rows_as_in_the_paper(as_paper: bool) -> dict[str, dict[str, float | None]]:
    """Hand-made ablation rows where every ordering of the paper holds (or is reversed)."""
    rank = {"MA": 1, "MB": 2, "MC": 3, "MD": 4, "ME": 5, "MFM": 6}  # MD > MC, MB > MA, ..., MFM > ME
    rows = {}
    for label, r in rank.items():
        r = r if as_paper else -r
        decoders = VARIANTS[label]["generative_factor"] != "none"
        rows[label] = {"accuracy": 0.5 + 0.01 * r, "reconstruction": (0.1 - 0.001 * r) if decoders else None}
    return rows


@pytest.mark.parametrize("as_paper", [True, False])
def test_orderings_follow_the_numbers_both_ways(as_paper):
    found = ordering_findings(rows_as_in_the_paper(as_paper))
    assert list(found) == [f"{a} > {b}" for a, b, _, _ in ORDERINGS]
    expected = "holds" if as_paper else "does not hold"
    for key, entry in found.items():
        assert entry["status"] == expected, key
        assert f"**{expected}**" in entry["sentence"]
    # reconstruction is compared where both models reconstruct: ME > MD and MFM > ME
    assert set(found["ME > MD"]["metrics"]) == {"accuracy", "reconstruction"}
    assert set(found["MB > MA"]["metrics"]) == {"accuracy"}
    assert found["MFM > ME"]["metrics"]["reconstruction"]["holds"] is as_paper


def test_an_ordering_holds_in_part_and_a_missing_number_is_not_measured():
    rows = rows_as_in_the_paper(True)
    rows["MFM"]["reconstruction"] = 0.5  # worse than ME's
    rows["MC"]["accuracy"] = math.nan
    found = ordering_findings(rows)
    assert found["MFM > ME"]["status"] == "holds in part"
    assert "reconstruction (lower is better) 0.5 for MFM" in found["MFM > ME"]["sentence"]
    assert found["MD > MC"]["status"] == "not measured" and found["MC > MA"]["status"] == "not measured"
    rows["MD"]["accuracy"] = rows["MC"]["accuracy"] = 0.7  # a tie is not better
    assert ordering_findings(rows)["MD > MC"]["status"] == "does not hold"


def test_compare_metric_and_status():
    assert compare_metric(2.0, 1.0, False) is True and compare_metric(2.0, 1.0, True) is False
    assert compare_metric(1.0, 1.0, False) is False and compare_metric(None, 1.0, False) is None
    assert status([True, None]) == "holds" and status([None]) == "not measured"
    assert status([True, False]) == "holds in part" and status([False]) == "does not hold"


@pytest.mark.parametrize("as_paper", [True, False])
def test_paired_findings_both_ways(as_paper):
    good = {"UM[m]": 0.9, "UM[s]": 0.8, "MM": 0.95}
    bad = {"UM[m]": 0.7, "UM[s]": 0.6, "MM": 0.5}
    table = {"MFM": good if as_paper else bad, "discriminative": bad if as_paper else good}
    found = paired_findings(table, ["m", "s"])
    assert found["MFM > discriminative"]["status"] == ("holds" if as_paper else "does not hold")
    assert found["MM > UM (MFM)"]["status"] == ("holds" if as_paper else "does not hold")
    assert found["MM > UM (discriminative)"]["status"] == ("does not hold" if as_paper else "holds")
    assert (
        "MM 0.95 against UM[m] 0.9, UM[s] 0.8"
        in found[f"MM > UM ({'MFM' if as_paper else 'discriminative'})"]["sentence"]
    )


@pytest.mark.parametrize("carries", [True, False])
def test_swap_findings_both_ways(carries):
    value = {"label": 0.8, "style": 0.1} if carries else {"label": 0.1, "style": 0.8}
    found = swap_findings({"m": {**value, "pairs": 10, "chance": 0.1}})
    assert found["m"]["status"] == ("holds" if carries else "does not hold")
    assert "10 pairs" in found["m"]["sentence"]


@pytest.mark.parametrize("better", [True, False])
def test_missing_findings_both_ways(better):
    row_good = {"observed": "s", "accuracy": 0.9, "discriminative": 0.8, "reconstruction": 0.01}
    row_bad = {"observed": "s", "accuracy": 0.7, "discriminative": 0.8, "reconstruction": 0.2}
    row = {**(row_good if better else row_bad), "translation": 0.05, "mean image": 0.1}
    other = {"observed": "m", "accuracy": 0.5, "discriminative": 0.5, "reconstruction": None}
    found = missing_findings({"m": row, "s": other}, full_accuracy=0.95)
    assert found["m"]["status"] == ("holds" if better else "does not hold")
    assert found["s"]["checks"]["reconstruction below the translation baseline"] is None
    assert found["s"]["checks"]["accuracy at least the discriminative baseline's"] is True  # a tie counts
    assert found["most costly"]["modality"] == "s"  # 0.95 -> 0.5
    assert found["most costly"]["drops"]["m"] == pytest.approx(0.95 - row["accuracy"])


@pytest.mark.parametrize("informative", ["a", "b"])
def test_interpretation_findings_name_the_top_modality(informative):
    found = interpretation_findings({"a": 0.9, "b": 0.1}, {"a": 2.0, "b": 1.0, "c": math.nan}, informative)
    for entry in found.values():
        assert entry["top"] == "a" and entry["found"] is (informative == "a")
        assert ("**found**" if informative == "a" else "**not found**") in entry["sentence"]
    assert interpretation_findings({}, {}, "a")["gradient-based contribution"]["found"] is None


def test_one_per_class_picks_the_first_example_of_each_class():
    labels = torch.tensor([2, 0, 2, 1, 0])
    assert one_per_class(labels, 3) == [1, 3, 0]
    assert one_per_class(labels, 3, start=2) == [4, 3, 2]
    assert one_per_class(labels, 4) == [1, 3, 0]  # class 3 has no example
