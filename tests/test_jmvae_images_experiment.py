"""``pixyz-zoo reproduce jmvae-images``: the smoke setting end to end through the CLI (Table 2, Fig. 7,
8, 9, sharpness, findings, report), nothing retrained when run again, CelebA's files through the same
code, the findings decided by the numbers both ways, and a dataset the experiment refuses."""

from __future__ import annotations

import copy
import json
import math

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import pytest
import torch

from pixyz_zoo.cli import main
from pixyz_zoo.experiments import ExperimentContext, experiment_names
from pixyz_zoo.experiments.jmvae import COLUMNS
from pixyz_zoo.experiments.jmvae_images import (
    CELEBA_SHOWCASE,
    PAPER_TABLE_2,
    attribute_edits,
    findings,
    findings_from_results,
    prepare,
    settings,
    train_models,
)
from tests.fake_files import write_celeba

RUNS = {"cvae-x", "cvae-w", "cmma-x", "cmma-w", "jmvae", "jmvae-kl", "hierarchical-jmvae", "jmvae-gan"}
FIGURES = {
    "summary",
    "fig7",
    "fig8a_jmvae-gan",
    "fig8a_jmvae-kl",
    "fig8b_jmvae-gan",
    "fig8b_jmvae-kl",
    "fig9_jmvae-gan",
    "fig9_jmvae-kl",
    "discriminator_loss",
}


def _run(argv: list[str]) -> int:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("jmvae-images-smoke")
    assert _run(["reproduce", "jmvae-images", "--smoke", "--out", str(out), "--no-progress"]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_smoke_run_measures_every_part_and_writes_the_report(smoke_run):
    out, results = smoke_run
    assert "jmvae-images" in experiment_names()
    assert results["setting"] == "smoke" and "figure_errors" not in results
    s = results["settings"]
    assert s["dataset"] == "attribute-shapes" and results["modalities"] == ["x", "w"]
    assert {p.name for p in (out / "runs").iterdir()} == RUNS
    # Table 2: five models, four conditionals each, finite; the paper's numbers beside them
    table = results["table_2"]
    assert set(table) == set(PAPER_TABLE_2)
    for row in table.values():
        assert set(row) == set(COLUMNS) and all(math.isfinite(v) for v in row.values())
    assert results["paper_table_2"] == PAPER_TABLE_2
    # Fig. 7: one value per number of steps; the Table's iterative sampling is reused, not re-measured
    sweep = results["step_sweep"]
    assert sweep["steps"] == s["step_sweep"] and s["iterative_steps"] in sweep["steps"]
    for name in ("JMVAE", "Hierarchical JMVAE"):
        values = sweep[name]["single_x"]
        assert len(values) == len(sweep["steps"])
        assert values[sweep["steps"].index(s["iterative_steps"])] == table[name]["single_x"]
    # Fig. 8: the edits of the showcase attributes, "Not" the first one
    showcase = results["showcase_attributes"]
    assert list(results["figure_8"]["edits"]) == ["Base", *showcase, f"Not {showcase[0]}"]
    assert set(results["figure_8"]["base"]) <= {-1.0, 1.0} and results["figure_8"]["zeta"] == 0.6
    # sharpness and the discriminator's loss per epoch, from the run's history
    assert set(results["sharpness"]) == {"JMVAE-GAN", "JMVAE-kl", "real test images"}
    assert all(v > 0 for v in results["sharpness"].values())
    history = results["discriminator_loss"]
    assert len(history) == s["epochs"] and all(math.isfinite(v) for v in history)
    # figures, each written and linked from the report; the summary first
    assert set(results["figures"]) == FIGURES
    report = (out / "report.md").read_text()
    for path in results["figures"].values():
        assert (out / path).stat().st_size > 0 and f"]({path})" in report
    assert report.index(results["figures"]["summary"]) < report.index("## Table 2")
    assert "not comparable in value" in report
    # the findings: recomputed from results.json they are the same, and each is in the report
    recomputed = findings_from_results(results)
    assert list(recomputed) == list(results["findings"])
    for key, finding in recomputed.items():
        assert finding["sentence"] == results["findings"][key]["sentence"]
        assert finding["sentence"] in report
        assert ("does NOT hold here" in finding["sentence"]) is (not finding["holds"])


def test_a_second_invocation_retrains_nothing(smoke_run):
    out, _ = smoke_run
    stamps = {p: p.stat().st_mtime_ns for p in sorted(out.glob("runs/*/checkpoint.pt"))}
    assert len(stamps) == len(RUNS)
    ctx = ExperimentContext(out, "smoke", progress=False)
    s, test, x, w, _ = prepare(ctx)
    models = train_models(ctx, s, x, w)
    assert models["JMVAE-GAN"].name == "jmvae-gan" and models["CVAE (x|w)"].config["target"] == "x"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_findings_follow_the_numbers_both_ways():
    table = copy.deepcopy(PAPER_TABLE_2)  # the paper's CelebA numbers: (a) and (b) hold
    sweep = {"steps": [1, 5, 40], "JMVAE": {"single_x": [-6000.0, -20000.0, -48763.0]}}
    sharp = {"JMVAE-GAN": 0.3, "JMVAE-kl": 0.1, "real test images": 0.4}
    found = findings(table, sweep, sharp)
    assert all(f["holds"] for f in found.values())
    # (a) and (b): JMVAE as good as JMVAE-kl
    table["JMVAE"]["single_x"] = -6900.0
    found = findings(table, sweep, sharp)
    assert not found["a_jmvae_single_x_collapses"]["holds"]
    assert not found["b_jmvae_kl_and_hierarchical_avoid_it"]["holds"]
    # (b) fails when only the hierarchical model is close to JMVAE
    table = copy.deepcopy(PAPER_TABLE_2)
    table["Hierarchical JMVAE"]["single_x"] = -47000.0
    found = findings(table, sweep, sharp)
    assert found["a_jmvae_single_x_collapses"]["holds"]
    assert not found["b_jmvae_kl_and_hierarchical_avoid_it"]["holds"]
    # (c): below JMVAE-kl at N = 1, or rising with the steps
    below = {"steps": [1, 40], "JMVAE": {"single_x": [-7000.0, -48763.0]}}
    rising = {"steps": [1, 40], "JMVAE": {"single_x": [-6000.0, -5000.0]}}
    key = "c_iterative_sampling_one_above_then_falls"
    assert not findings(PAPER_TABLE_2, below, sharp)[key]["holds"]
    assert not findings(PAPER_TABLE_2, rising, sharp)[key]["holds"]
    assert findings(PAPER_TABLE_2, rising, sharp)[key]["above_jmvae_kl_at_one_step"]
    # (d): JMVAE-GAN blurrier than JMVAE-kl
    blurry = {**sharp, "JMVAE-GAN": 0.05}
    assert not findings(PAPER_TABLE_2, sweep, blurry)["d_jmvae_gan_sharper_than_jmvae_kl"]["holds"]
    assert (
        "does NOT hold"
        in findings(PAPER_TABLE_2, sweep, blurry)["d_jmvae_gan_sharper_than_jmvae_kl"]["sentence"]
    )


def test_settings_and_edits():
    edits = attribute_edits(CELEBA_SHOWCASE)
    assert edits == {
        "Base": {},
        "Male": {"Male": 2.0},
        "Bald": {"Bald": 2.0},
        "Smiling": {"Smiling": 2.0},
        "Not Male": {"Male": -2.0},
    }
    full = settings(ExperimentContext("unused", "full"))
    assert full["model_options"] == {"arch": "celeba"} and full["z_dim"] == 128
    assert full["iterative_steps"] == 40 and full["n_samples"] == 10 and full["step_sweep"][-1] == 40
    assert full["warmup_epochs"] == pytest.approx(0.4 * full["epochs"])  # the paper's 20 of 50 epochs


def test_celeba_files_run_through_the_same_code(tmp_path):
    root, out = tmp_path / "data", tmp_path / "out"
    write_celeba(root, n=12)
    argv = ["reproduce", "jmvae-images", "--smoke", "--dataset", "celeba", "--data-root", str(root)]
    assert _run([*argv, "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["dataset"] == "celeba" and "figure_errors" not in results
    assert results["showcase_attributes"] == list(CELEBA_SHOWCASE)
    assert list(results["figure_8"]["edits"]) == ["Base", "Male", "Bald", "Smiling", "Not Male"]
    assert results["settings"]["train_examples"] == 4  # every training image of the 12 files
    assert len(results["figure_8"]["base"]) == 6  # the files' six attributes
    assert "not comparable in value" not in (out / "report.md").read_text()


def test_a_dataset_the_experiment_does_not_take_is_refused(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["reproduce", "jmvae-images", "--smoke", "--dataset", "digits", "--out", str(out)]) == 1
    assert "accepts attribute-shapes, celeba" in capsys.readouterr().err
    assert not out.exists()
