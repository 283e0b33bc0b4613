"""``pixyz-zoo reproduce iterative-multimodal``: the smoke setting end to end (every measure, the
slides' tables, the report's sections, nothing retrained when run again), the hypotheses' and
orderings' statements on hand-made numbers both ways, and the figures' functions."""

from __future__ import annotations

import json
import math
import re

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import numpy as np
import pytest
import torch

from pixyz_zoo import plots
from pixyz_zoo.cli import main
from pixyz_zoo.datasets import load_dataset, mnist
from pixyz_zoo.datasets import multimodal_digits as md
from pixyz_zoo.evaluation.multimodal import train_modality_classifiers
from pixyz_zoo.experiments import ExperimentContext, experiment_names
from pixyz_zoo.experiments.iterative_multimodal import (
    COMPARED,
    DIRECTIONS,
    H1_METRICS,
    H2_DISTILLATION,
    H2_MECHANISM,
    H2_PERFORMANCE,
    SLIDE_TABLES,
    SUMMARY,
    VARIANTS,
    compare,
    gap_posteriors,
    hypotheses,
    settings,
    table_ordering,
    teacher_student_pairs,
    train_models,
    variant_findings,
    verdict,
)
from pixyz_zoo.models import build_model
from pixyz_zoo.models.jmvae import dimension_weights
from tests.fake_files import write_mnist_svhn

SECTIONS = (
    "## Figures",
    "## The slides' tables, side by side",
    "## Amortization gaps",
    "## The T ablation",
    "## The method's open choices",
    "## Findings",
    "## Every metric of the compared models",
    "## Settings",
)


@pytest.fixture(scope="module")
def fake_mnist_svhn(tmp_path_factory):
    """A data root with small MNIST and SVHN files in the published formats (random images): the
    smoke run below uses ``--dataset mnist-svhn-text`` (notebook 06's smoke run covers the default
    dataset)."""
    root = tmp_path_factory.mktemp("mnist-svhn-files")
    for split, per_class in (("train", 30), ("test", 10)):
        labels = np.tile(np.arange(10), per_class)
        write_mnist_svhn(root, split, labels, labels[::-1].copy())
    with pytest.MonkeyPatch.context() as patch:  # the fake files are not the published ones
        patch.setattr(mnist, "MNIST_MD5", {})
        patch.setattr(md, "SVHN_MD5", {})
        yield root


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, fake_mnist_svhn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("iterative-multimodal-smoke")
    command = ["reproduce", "iterative-multimodal", "--smoke", "--out", str(out), "--no-progress"]
    try:
        assert main([*command, "--dataset", "mnist-svhn-text", "--data-root", str(fake_mnist_svhn)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_smoke_run_measures_every_model_and_writes_the_report(smoke_run):
    out, results = smoke_run
    assert "iterative-multimodal" in experiment_names()
    assert results["setting"] == "smoke" and "figure_errors" not in results
    assert results["settings"]["dataset"] == "mnist-svhn-text"
    for key in ("metrics", "teacher_student_kl", "gaps", "errors", "rows", "summary"):
        assert set(results[key]) == set(COMPARED), key
    for label, metrics in results["metrics"].items():
        for key in ("coherence[s->m]", "fd[t->s]", "fd[s,t->m]", "fd[m,t->s]", "probe[m,s]", "cosine[t]"):
            assert not math.isnan(metrics[key]), (label, key)
    # the teacher-student KL: every modality for the Gaussian-teacher models, none for MoPoE
    kl = results["teacher_student_kl"]
    assert kl["MoPoE"] is None and "kl" in results["errors"]["MoPoE"]
    for label in ("JMVAE student", "MVTCAE", "Iterative student"):
        assert set(kl[label]) == {"m", "s", "t"} and all(v >= 0 for v in kl[label].values())
    # the gaps: the posteriors each model has, against the same q*(z|X)
    gaps = results["gaps"]
    names = ["m", "s", "t"]
    assert set(gaps["JMVAE student"]["posteriors"]) == {"joint", *names, *(f"{m} refined" for m in names)}
    assert set(gaps["Iterative student"]["posteriors"]) == {
        "joint",
        *names,
        *(f"{m} teacher start" for m in names),
        *(f"{m} refined" for m in names),
    }
    assert set(gaps["MVTCAE"]["posteriors"]) == {"joint", *names}
    assert gaps["MoPoE"] is None and "q*(z|X)" in results["errors"]["MoPoE"]["gaps"]
    for label in ("JMVAE student", "MVTCAE", "Iterative student"):
        g = gaps[label]
        assert g["examples"] == settings(ExperimentContext(out, "smoke"))["n_gaps"]
        for v in g["posteriors"].values():
            assert v["gap"] == pytest.approx(g["optimal"]["elbo"] - v["elbo"])
    # the slides' tables, their orderings and the hypotheses follow the measured rows
    assert set(results["orderings"]) == set(SLIDE_TABLES)
    assert results["hypotheses"] == json.loads(json.dumps(hypotheses(results["rows"])))
    assert results["rows"]["Iterative student"]["kl[m]"] == kl["Iterative student"]["m"]
    # the T ablation and the variants (the default at the same budget: T = refine_steps)
    assert results["ablation"]["steps"] == [0, 1]
    assert set(results["ablation"]["summary"]) == {"0", "1"}
    assert all(set(row) == set(SUMMARY) for row in results["ablation"]["summary"].values())
    assert results["variants"]["default"] == "iterative-T1"
    assert set(results["variants"]["summary"]) == {"iterative-T1", *VARIANTS}
    assert set(results["variants"]["findings"]) == set(VARIANTS)
    # the figures: the pictures, one grid per direction for the T ablation and for the models
    figures = results["figures"]
    for key in ("inference_accuracy", "probe", "fd", "coherence", "ablation"):
        assert (out / figures[key]).stat().st_size > 0, key
    for given, target in DIRECTIONS:
        assert (out / figures[f"ablation_{given}_to_{target}"]).exists()
        assert (out / figures[f"models_{given}_to_{target}"]).exists()
    # the report: its sections in order, the figures before the first table, the statements in it
    report = (out / "report.md").read_text()
    positions = [report.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    first_table = report.index("| model |")
    link = re.search(rf"!\[[^\]]+\]\({re.escape(figures['inference_accuracy'])}\)", report)
    assert link and link.start() < first_table
    for found in results["hypotheses"].values():
        assert found["sentence"] in report
    for table in SLIDE_TABLES.values():
        assert f"### Slide {table.slide}:" in report
    assert "not Inception FID" in report
    # a "|" inside a cell would split it: every table row has as many cells as its header
    for block in re.findall(r"((?:^\|.*\n)+)", report, flags=re.M):
        lines = block.strip().splitlines()
        cells = [len(re.split(r"(?<!\\)\|", line)) for line in lines]
        assert len(set(cells)) == 1, lines[0]


@pytest.mark.slow
def test_a_second_invocation_loads_the_runs_and_the_classifiers(smoke_run, fake_mnist_svhn):
    out, _ = smoke_run
    stamps = {p: p.stat().st_mtime_ns for p in sorted(out.glob("runs/*/checkpoint.pt"))}
    stamps.update({p: p.stat().st_mtime_ns for p in sorted((out / "classifiers").glob("*")) if p.is_file()})
    assert len([p for p in stamps if p.name == "checkpoint.pt"]) == len(COMPARED) + 2 + len(VARIANTS)
    # everything the experiment trains goes through these two calls, as the experiment makes them
    ctx = ExperimentContext(
        out, "smoke", data_root=str(fake_mnist_svhn), progress=False, dataset="mnist-svhn-text"
    )
    s = settings(ctx)
    train = load_dataset(s["dataset"], "train", root=ctx.data_root, seed=ctx.seed)
    train_modality_classifiers(train, cache_dir=out / "classifiers", epochs=s["classifier_epochs"], seed=0)
    compared, ablation, variants = train_models(ctx, s, dimension_weights(train.modalities))
    assert [m.name for m in compared.values()] == list(COMPARED.values())
    assert set(ablation) == {0, 1} and set(variants) == set(VARIANTS)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


# ---------------------------------------------------------------------- statements from numbers
def rows_where_iterative_is(better: bool) -> dict[str, dict[str, float]]:
    """Hand-made rows: the iterative student better (or worse) than MoPoE and JMVAE on every metric."""
    metrics = [*H1_METRICS, *H2_PERFORMANCE, *H2_DISTILLATION, *H2_MECHANISM]
    good = {key: (1.0 if lower else 2.0) for key, lower in metrics}
    bad = {key: (2.0 if lower else 1.0) for key, lower in metrics}
    iterative, others = (good, bad) if better else (bad, good)
    return {"MoPoE": dict(others), "JMVAE student": dict(others), "Iterative student": dict(iterative)}


@pytest.mark.parametrize("better", [True, False])
def test_hypotheses_follow_the_numbers_both_ways(better):
    found = hypotheses(rows_where_iterative_is(better))
    expected = "supported" if better else "not supported"
    assert found["H1"]["status"] == expected
    assert found["H2"]["status"] == expected and found["H2"]["mechanism"]["status"] == expected
    assert f"**{expected}**" in found["H1"]["sentence"] and f"**{expected}**" in found["H2"]["sentence"]
    assert len(found["H1"]["better" if better else "worse"]) == len(H1_METRICS)
    assert f"better on {len(H1_METRICS) if better else 0} of {len(H1_METRICS)}" in found["H1"]["sentence"]


def test_a_mixed_outcome_names_the_metrics_on_each_side():
    rows = rows_where_iterative_is(True)
    rows["Iterative student"]["probe[s]"] = 0.5  # below MoPoE's and JMVAE's 1.0
    rows["Iterative student"]["kl[t]"] = 3.0  # above JMVAE's 2.0
    rows["JMVAE student"]["gap[teacher]"] = math.nan  # not measured
    found = hypotheses(rows)
    assert found["H1"]["status"] == "partly supported"
    assert [e["metric"] for e in found["H1"]["worse"]] == ["probe[s]"]
    assert "worse on `probe[s]` (0.5 vs 1)" in found["H1"]["sentence"]
    h2 = found["H2"]
    assert h2["status"] == "partly supported"
    assert [e["metric"] for e in h2["distillation"]["worse"]] == ["kl[t]"]
    assert "higher on `kl[t]` (3 vs 2)" in h2["sentence"]
    assert h2["mechanism"]["missing"] == ["gap[teacher]"] and h2["mechanism"]["status"] == "supported"
    assert "not measured: gap[teacher]" in h2["sentence"]


def test_compare_and_verdict():
    rows = {"a": {"x": 1.0, "y": 1.0, "z": math.nan}, "b": {"x": 2.0, "y": 1.0, "z": 0.0}}
    found = compare(rows, "a", "b", [("x", True), ("y", False), ("z", False), ("w", True)])
    assert [e["metric"] for e in found["better"]] == ["x"]
    assert found["worse"] == [] and [e["metric"] for e in found["equal"]] == ["y"]  # a tie: neither
    assert found["missing"] == ["z", "w"]
    assert verdict([], []) == "not measured" and verdict([1], [2]) == "partly supported"


def test_table_ordering_says_whether_the_slides_order_holds():
    table = SLIDE_TABLES["fd"]  # slides: Iterative < JMVAE < MoPoE on every column (lower is better)
    as_slides = {m: dict(zip(table.columns, values, strict=True)) for m, values in table.values.items()}
    found = table_ordering(table, as_slides)
    assert found["held"] == found["measured"] == len(table.columns)
    reversed_rows = {m: {c: -v for c, v in row.items()} for m, row in as_slides.items()}
    found = table_ordering(table, reversed_rows)
    assert found["held"] == 0 and found["measured"] == len(table.columns)
    column = found["columns"]["fd[s->m]"]
    assert column["slides"] == ["Iterative student", "JMVAE student", "MoPoE"]
    assert column["here"] == ["MoPoE", "JMVAE student", "Iterative student"] and column["holds"] is False
    assert "holds in 0 of 4" in found["text"]
    del as_slides["MoPoE"]["fd[t->s]"]
    found = table_ordering(table, as_slides)
    assert found["columns"]["fd[t->s]"]["holds"] is None and found["measured"] == 3
    # higher is better for the probes: the slides' order of probe[s] puts MoPoE first
    probe = SLIDE_TABLES["probe"]
    assert table_ordering(probe, {})["columns"]["probe[s]"]["slides"][0] == "MoPoE"


def test_variant_findings_name_where_each_choice_is_better_or_worse():
    default = dict.fromkeys(SUMMARY, 1.0)
    better_fd = {**default, "FD (cross, mean)": 0.5, "probe (unimodal, mean)": 0.5}
    found = variant_findings({"iterative-T4": default, "iterative-reverse-kl": better_fd}, "iterative-T4")
    assert set(found) == {"iterative-reverse-kl"}
    entry = found["iterative-reverse-kl"]
    assert [e["metric"] for e in entry["better"]] == ["FD (cross, mean)"]
    assert "probe (unimodal, mean)" in [e["metric"] for e in entry["worse"]]
    assert (
        "KL(student || teacher)" in entry["sentence"] and "better on `FD (cross, mean)`" in entry["sentence"]
    )


# ---------------------------------------------------------------------- what is measured, figures
@pytest.fixture(scope="module")
def tiny_models():
    data = load_dataset("trimodal-digits", "test").subset(slice(0, 6))
    torch.manual_seed(0)
    models = {
        name: build_model(name, data.modalities, z_dim=2, hidden=[8], **extra)
        for name, extra in {
            "jmvae-kl": {},
            "mvtcae": {},
            "mopoe": {},
            "iterative-multimodal": {"refine_steps": 1, "update_hidden": [8]},
        }.items()
    }
    return data, models


def test_teacher_student_pairs_and_gap_posteriors_per_model(tiny_models):
    _, models = tiny_models
    jmvae, iterative = models["jmvae-kl"], models["iterative-multimodal"]
    assert teacher_student_pairs(models["mopoe"]) is None
    assert teacher_student_pairs(jmvae)["s"] == (jmvae.joint, jmvae.inference_for(["s"]))
    assert teacher_student_pairs(iterative)["t"] == (iterative.teacher_for("t"), iterative.students["t"])
    posteriors = gap_posteriors(jmvae, 3)
    assert posteriors["m refined"].steps == 3 and set(posteriors["m refined"].cond_var) == {"m", "s", "t"}
    posteriors = gap_posteriors(iterative, 3)
    assert posteriors["s teacher start"] is iterative.teacher_initial["s"]
    assert posteriors["s refined"] is iterative.teacher_for("s") and posteriors["joint"] is iterative.joint
    assert set(gap_posteriors(models["mopoe"], 1)) == {"m", "s", "t"}


def test_generations_by_model_draws_a_row_per_model(tiny_models):
    data, models = tiny_models
    batch = data.first(4)
    chosen = {"T=0": models["jmvae-kl"], "T=1": models["iterative-multimodal"]}
    fig = plots.generations_by_model(chosen, batch, ["t"], "m", n=3)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["t", "m (ground truth)", "T=0", "T=1"]
    by_name = plots.generations_by_model(chosen, batch, "t", "m", n=3)  # one modality named alone
    assert [ax.get_ylabel() for ax in by_name.axes] == labels
    with pytest.raises(ValueError, match="without the target 'm'"):
        plots.generations_by_model(chosen, batch, ["m"], "m")
    with pytest.raises(KeyError, match="unknown modality \\['x'\\]"):
        plots.generations_by_model(chosen, batch, ["x"], "m")


def test_inference_accuracy_and_steps_figures():
    panel = {
        "optimal": -10.0,
        "points": {"joint": ("joint", -11.0), "m start": ("from m", -15.0), "m refined": ("from m", -12.0)},
        "arrows": [("m start", "m refined", "refinement"), ("m refined", "gone", "distillation")],
    }
    panel["points"]["gone"] = ("from s", math.nan)  # not measured: no point, no arrow
    fig = plots.inference_accuracy_figure({"model": panel})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["joint", "from m"]
    assert [line.get_ydata()[0] for line in ax.lines if line.get_marker() == "o"] == [-11.0, -15.0, -12.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["refinement", "q*(z|X)"]
    fig = plots.metrics_by_steps_figure([0, 1, 16], {"a": [1.0, 2.0, 3.0], "b": [3.0, math.nan, 1.0]}, ["b"])
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [
        "a (higher is better)",
        "b (lower is better)",
    ]
    with pytest.raises(ValueError, match="one value per T"):
        plots.metrics_by_steps_figure([0, 1], {"a": [1.0]})


def test_measurements_are_kept_while_the_checkpoint_and_the_sizes_are_the_same(tmp_path, monkeypatch):
    from pixyz_zoo.experiments import iterative_multimodal as im

    calls = []
    monkeypatch.setattr(
        im, "measure_model", lambda *args, **kw: calls.append(1) or {"metrics": {"x": len(calls)}}
    )
    ctx = ExperimentContext(tmp_path, "smoke", progress=False)
    s = im.settings(ctx)
    checkpoint = tmp_path / "runs" / "mopoe" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    first = im.measure_run(ctx, s, "mopoe", None, None, None, {})
    assert im.measure_run(ctx, s, "mopoe", None, None, None, {}) == first and len(calls) == 1
    im.measure_run(ctx, {**s, "n_test": s["n_test"] + 1}, "mopoe", None, None, None, {})
    assert len(calls) == 2  # other sample sizes: measured again
    checkpoint.write_bytes(b"other weights")
    assert im.measure_run(ctx, s, "mopoe", None, None, None, {}) == {"metrics": {"x": 3}}
