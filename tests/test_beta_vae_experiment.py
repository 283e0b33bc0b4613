"""``pixyz-zoo reproduce beta-vae``: the quick setting end to end, and a trained beta-VAE beating
a random encoder on the disentanglement metrics."""

from __future__ import annotations

import json
import math
import re
import time

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import numpy as np
import pytest
import torch

from pixyz_zoo.cli import main
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.evaluation import compute_all, representation_from_model
from pixyz_zoo.experiments.beta_vae import DATASETS, METRIC_NAMES, METRICS, metrics_figure, sweep_trend
from pixyz_zoo.models import build_model
from pixyz_zoo.training import Trainer

NETWORK = {"z_dim": 10, "hidden": [256, 256], "lr": 5e-4}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a CPU shared with other jobs, two spinning threads per process cost
    many times more CPU time than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("beta-vae-quick")
    argv = ["reproduce", "beta-vae", "--quick", "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    assert main(argv) in (0, None)
    first = time.perf_counter() - start
    checkpoints = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoint.pt")}
    start = time.perf_counter()
    assert main(argv) in (0, None)
    second = time.perf_counter() - start
    return out, first, second, checkpoints


@pytest.mark.slow
def test_quick_report_has_every_model_and_metric(quick_run):
    out, _, _, _ = quick_run
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert results["setting"] == "quick"
    labels = {m["key"]: None for m in results["settings"]["models"]}
    assert set(labels) == {"vae", "beta-vae-b4", "beta-vae-b16", "annealed-vae", "beta-tcvae", "factor-vae"}
    for dataset in DATASETS:
        data = results["datasets"][dataset]
        assert set(data["models"]) == set(labels)
        rows = [*data["models"].values(), data["random_encoder"]]
        for row in rows:
            assert f"| {row['label']} |" in report
            for key in (*METRICS, "reconstruction", "kl", "active_dims"):
                assert math.isfinite(row[key]), (dataset, row["label"], key)
            assert len(row["kl_per_dimension"]) == 10
            assert row["kl"] == pytest.approx(sum(row["kl_per_dimension"]))
        for paths in data["figures"].values():
            assert (out / paths["traversal"]).exists() and (out / paths["kl"]).exists()
            assert f"]({paths['traversal']})" in report
        assert data["sweep"]["betas"] == [1.0, 4.0, 16.0]
        assert data["sweep"]["sentence"] in report
        # the dataset's bars are embedded above its table and show the measured numbers
        section = report.split(f"## {dataset}")[1]
        assert re.search(rf"!\[[^\]]+\]\({re.escape(data['metrics_figure'])}\)", section)
        assert section.index(data["metrics_figure"]) < section.index("| model |")
        assert (out / data["metrics_figure"]).stat().st_size > 0
        panel = [ax for ax in metrics_figure(data, dataset).axes if ax.get_title()][0]
        assert [p.get_width() for p in panel.patches] == [r["reconstruction"] for r in rows]
    assert f"]({results['sweep_figure']})" in report.split("## dsprites")[0]
    assert (out / results["sweep_figure"]).stat().st_size > 0
    for name in METRIC_NAMES.values():
        assert f" {name} |" in report


@pytest.mark.slow
def test_rerun_loads_the_finished_runs(quick_run):
    out, first, second, checkpoints = quick_run
    assert len(checkpoints) == 12
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoint.pt")}
    assert after == checkpoints  # nothing was retrained
    assert second < first / 4, (first, second)


def test_sweep_sentence_follows_the_numbers():
    rows = [
        {"reconstruction": r, **{m: v for m in METRICS}}
        for r, v in ((100.0, 0.2), (120.0, 0.5), (150.0, 0.6))
    ]
    trend = sweep_trend([4.0, 1.0, 16.0], [rows[1], rows[0], rows[2]])  # any order in, sorted by beta
    assert trend["betas"] == [1.0, 4.0, 16.0]
    assert trend["reconstruction"]["monotone"] and trend["traded"]
    assert "rose monotonically from 100.0 to 150.0" in trend["sentence"]
    assert "6 of 6 disentanglement metrics rose" in trend["sentence"]
    assert "traded reconstruction for disentanglement." in trend["sentence"]
    falling = [{**r, **{m: 1.0 - r[m] for m in METRICS}} for r in rows]
    trend = sweep_trend([1.0, 4.0, 16.0], falling)
    assert not trend["traded"] and trend["falling"] == [m for m in METRICS if m != "dci_informativeness"]
    assert "did not clearly trade" in trend["sentence"]
    bumpy = [{**rows[0]}, {**rows[1], "reconstruction": 160.0}, {**rows[2]}]
    assert "not monotonically" in sweep_trend([1.0, 4.0, 16.0], bumpy)["sentence"]
    better = sweep_trend([1.0, 4.0, 16.0], rows[::-1])["sentence"]  # reconstruction 150 -> 100
    assert "loss fell from 150.0 to 100.0" in better and "reconstruction did not get worse" in better


def test_trained_beta_vae_beats_a_random_encoder():
    train = load_dataset("dsprites-procedural", "train").subset(slice(0, 6000))
    ground_truth = train.ground_truth
    torch.manual_seed(0)
    random_model = build_model("beta-vae", train.modalities, beta=4.0, **NETWORK)
    torch.manual_seed(0)
    model = build_model("beta-vae", train.modalities, beta=4.0, **NETWORK)
    Trainer(model, train, epochs=2, batch_size=64, progress=False).fit()
    options = {
        "beta_vae": {"num_train": 300, "num_eval": 200, "batch_size": 16},
        "factor_vae": {"num_train": 300, "num_eval": 200, "batch_size": 32, "num_variance_estimate": 1000},
        "mig": {"num_train": 1000},
        "dci": {"num_train": 500, "num_test": 250, "predictor": "random_forest"},
        "sap": {"num_train": 500, "num_test": 250},
    }
    scores = {
        name: compute_all(
            ground_truth, representation_from_model(m), np.random.default_rng(0), quick=True, options=options
        )
        for name, m in (("trained", model), ("random", random_model))
    }
    better = [m for m in METRICS if scores["trained"][m] > scores["random"][m] + 0.05]
    assert len(better) >= 2, scores
