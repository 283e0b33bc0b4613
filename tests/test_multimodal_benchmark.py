"""The multimodal benchmark end to end: quick setting (as CI runs it), resuming, findings."""

from __future__ import annotations

import json
import math
import re

import pytest

import pixyz_zoo  # noqa: F401, I001
from pixyz_zoo.cli import main
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.experiments import ExperimentContext
from pixyz_zoo.experiments.multimodal_benchmark import MODELS, _fit, coherence_figure, findings, settings
from pixyz_zoo.models.jmvae import dimension_weights

pytestmark = pytest.mark.slow


def test_reproduce_multimodal_benchmark_quick(tmp_path):
    out = tmp_path / "mm"
    assert main(["reproduce", "multimodal-benchmark", "--quick", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["setting"] == "quick" and set(results["metrics"]) == set(MODELS)
    for name, metrics in results["metrics"].items():
        for key in (
            "coherence[m->s]",
            "coherence[s,t->m]",
            "joint_coherence",
            "fd[t->s]",
            "probe[m]",
            "cosine[t]",
            "elbo[m,s,t]",
            "iwae[s]",
        ):
            assert key in metrics and not math.isnan(metrics[key]), (name, key)
        # every model's IWAE bound of the joint is at least its ELBO (same samples, k >= 1)
        assert metrics["iwae[m,s,t]"] >= metrics["elbo[m,s,t]"] - 1e-3, name
    # trained models generate across modalities better than chance (10 digit classes): the best
    # model's mean cross-modal coherence is well above 0.1
    best = max(s["coherence (cross, mean)"] for s in results["summary"].values())
    assert best > 0.2, results["summary"]
    assert results["findings"]["measured_ranking"] and "Published order" in results["findings"]["text"]
    for path in results["figures"].values():
        assert (out / path).stat().st_size > 0
    grids = [key for key in results["figures"] if key.startswith("grid_")]
    assert len(grids) == 5 * 7  # every model, every non-empty subset of 3 modalities
    report = (out / "report.md").read_text()
    assert "## Summary" in report and "coherence[m,s->t]" in report
    assert "figure_errors" not in results
    # the figures come first, embedded; the grids are one table of links; the wide tables are collapsed
    first_table = report.index("| model |")
    for key in ("coherence", "summary"):
        link = re.search(rf"!\[[^\]]+\]\({re.escape(results['figures'][key])}\)", report)
        assert link and link.start() < first_table, key
    assert all(f"[grid]({results['figures'][key]})" in report for key in grids)
    outside = re.sub(r"<details>.*?</details>", "", report, flags=re.S)
    assert max(line.count("|") - 1 for line in outside.splitlines() if line.startswith("|")) <= 10
    assert "| coherence[m->m] |" not in outside and report.count("<details>") == 9
    # the heat map shows the measured coherence
    panels = [ax for ax in coherence_figure(results).axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == list(MODELS)
    values = panels[0].images[0].get_array()
    assert values[3, 2] == pytest.approx(results["metrics"]["JMVAE-kl"]["coherence[m,s->t]"])

    # running the experiment again loads every finished run instead of training it again (checked
    # on the runs themselves: the measurements would only repeat)
    checkpoints = sorted((out / "runs").glob("*/checkpoint.pt"))
    assert len(checkpoints) == 5
    mtimes = [p.stat().st_mtime_ns for p in checkpoints]
    ctx = ExperimentContext(out, "quick", progress=False)
    s = settings(ctx)
    weights = dimension_weights(load_dataset(s["dataset"], "train").modalities)
    for name in MODELS:
        assert _fit(ctx, s, name, weights).name == MODELS[name]
    assert [p.stat().st_mtime_ns for p in checkpoints] == mtimes


def test_findings_compare_the_measured_and_published_orders():
    summary = {
        name: {"coherence (cross, mean)": value}
        for name, value in {"MVAE": 0.9, "MMVAE": 0.5, "MoPoE": 0.6, "MVTCAE": 0.7, "JMVAE-kl": 0.1}.items()
    }
    found = findings(summary)
    assert found["measured_ranking"] == ["MVAE", "MVTCAE", "MoPoE", "MMVAE", "JMVAE-kl"]
    # published MVTCAE > MoPoE > MMVAE > MVAE: every pair holds except the three involving MVAE
    assert (found["pairs"], found["pairs_as_published"]) == (6, 3)
    assert "MVAE above MVTCAE" in found["text"]
