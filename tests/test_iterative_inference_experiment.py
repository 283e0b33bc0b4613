"""``pixyz-zoo reproduce iterative-inference``: the smoke setting end to end (every model and metric,
figures linked, nothing retrained on a second invocation), and the claim sentences on hand-made
numbers."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)

# isort: split
import pytest
import torch

from pixyz_zoo.cli import main
from pixyz_zoo.datasets import DATA_ROOT_ENV
from pixyz_zoo.experiments import ExperimentContext
from pixyz_zoo.experiments.iterative_inference import (
    STEPS,
    claims,
    claims_from_results,
    mnist_files,
    pick_dataset,
)


def shared_root() -> str | None:
    """The folder holding the real MNIST t10k files (``$PIXYZ_ZOO_DATA`` or ``../shared/data``)."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    if os.environ.get(DATA_ROOT_ENV):
        candidates.insert(0, Path(os.environ[DATA_ROOT_ENV]))
    return next((str(c) for c in candidates if mnist_files(c)), None)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("iterative-inference-smoke")
    argv = ["reproduce", "iterative-inference", "--smoke", "--out", str(out), "--no-progress"]
    root = shared_root()
    if root is not None:
        argv += ["--data-root", root]
    try:
        assert main(argv) in (0, None)
        runs = sorted((out / "runs").glob("*/checkpoint.pt")) + sorted(
            (out / "runs").glob("*/evaluation.json")
        )
        stamps = {p: p.stat().st_mtime_ns for p in runs}
        first = json.loads((out / "results.json").read_text())
        assert main(argv) in (0, None)
    finally:
        torch.set_num_threads(threads)
    return out, root, first, stamps


@pytest.mark.slow
def test_smoke_run_reports_every_model_and_metric(smoke_run):
    out, root, results, _ = smoke_run
    assert results["setting"] == "smoke"
    assert results["settings"]["dataset"] == ("mnist-10k" if root is not None else "digits")
    models = results["models"]
    assert {"vae", "iterative-vae", "refined-vae"} <= set(models)
    assert any(m["role"] == "sweep" for m in models.values())
    for key, m in models.items():
        g = m["gaps"]
        for name in ("elbo_model", "elbo_optimal", "log_px", "amortization_gap", "approximation_gap"):
            assert math.isfinite(g[name]), (key, name)
        assert g["k"] == results["settings"]["iwae_k"]
        # the gaps are the differences of the bounds they name
        assert g["amortization_gap"] == pytest.approx(g["elbo_optimal"] - g["elbo_model"])
        assert g["approximation_gap"] == pytest.approx(g["log_px"] - g["elbo_optimal"])
        assert len(m["curves"]["adam"]["elbo"]) == max(STEPS) + 1
        assert m["timing"]["step_seconds"] > 0
    assert len(models["iterative-vae"]["curves"]["learned"]["elbo"]) == max(STEPS) + 1
    # the iterative VAE's step 0 is its encoder: the learned and Adam curves start at the same bound
    curves = models["iterative-vae"]["curves"]
    assert curves["learned"]["elbo"][0] == pytest.approx(curves["adam"]["elbo"][0])
    assert set(results["claims"]) == {
        "reduces_amortization_gap",
        "few_learned_steps",
        "gap_grows_as_encoder_shrinks",
    }
    # the claims can be recomputed from results.json alone (as the notebook's test does from the record)
    assert claims_from_results(results) == results["claims"]
    report = (out / "report.md").read_text()
    for claim in results["claims"].values():
        assert claim["status"] in ("holds", "does not hold", "unresolved", "holds only in part")
        assert claim["sentence"] in report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert set(links) == set(results["figures"].values()) and len(links) == 3
    for link in links:
        assert (out / link).stat().st_size > 0
    assert "figure_errors" not in results
    trajectory = results["trajectory"]
    learned, adam = trajectory["trajectories"].values()
    assert len(learned) == results["settings"]["refine_steps"] + 1 and len(adam) == max(STEPS) + 1
    assert [len(v) for v in trajectory["elbo"].values()] == [len(learned), len(adam)]
    assert learned[0] == adam[0]  # both start from the encoder's output


@pytest.mark.slow
def test_second_invocation_retrains_and_remeasures_nothing(smoke_run):
    out, _, first, stamps = smoke_run
    assert (
        len([p for p in stamps if p.name == "checkpoint.pt"]) == len(first["models"]) + 1
    )  # + the z = 2 model
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    again = json.loads((out / "results.json").read_text())
    assert again["models"] == first["models"] and again["claims"] == first["claims"]


def test_full_setting_without_mnist_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="PIXYZ_ZOO_DATA"):
        pick_dataset(ExperimentContext(tmp_path, "full", data_root=str(tmp_path)))
    assert pick_dataset(ExperimentContext(tmp_path, "quick", data_root=str(tmp_path))) == "digits"
    # --download: the full setting's MNIST, for torchvision to fetch (nothing is fetched here)
    fetching = ExperimentContext(tmp_path, "full", data_root=str(tmp_path), download=True)
    assert pick_dataset(fetching) == "mnist"


# ---------------------------------------------------------------------- the claims on hand-made numbers
def _gaps(gaps_per_example: list[float]) -> dict:
    model = [-100.0] * len(gaps_per_example)
    optimal = [m + g for m, g in zip(model, gaps_per_example, strict=True)]
    return {
        "amortization_gap": sum(gaps_per_example) / len(gaps_per_example),
        "per_example": {"elbo_model": model, "elbo_optimal": optimal},
    }


def _sweep(gaps: list[float]) -> list[dict]:
    sizes = [200_000, 50_000, 5_000]
    return [
        {"label": f"encoder {n}", "encoder_parameters": n, "amortization_gap": g}
        for n, g in zip(sizes, gaps, strict=True)
    ]


def test_claims_hold_when_the_numbers_say_so():
    found = claims(
        {"vae": _gaps([3.0, 3.2, 2.8, 3.1]), "iterative": _gaps([1.0, 1.1, 0.9, 1.2])},
        learned_curve=[-100.0, -98.0, -97.0, -96.5],
        learned_steps=2,
        gradient_curve=[-100.0, -99.8, -99.5, -99.0, -98.5, -97.5, -96.9],
        sweep=_sweep([1.0, 2.0, 4.0]),
    )
    assert [c["status"] for c in found.values()] == ["holds"] * 3
    assert found["few_learned_steps"]["gradient_steps_needed"] == 6
    assert "need 6 steps" in found["few_learned_steps"]["sentence"]
    assert "3.02" in found["reduces_amortization_gap"]["sentence"]  # the VAE's mean gap, not typed
    # gradient steps that never get there within the curve: the claim holds, and the sentence says so
    never = claims(
        {"vae": _gaps([3.0, 3.2, 2.8, 3.1]), "iterative": _gaps([1.0, 1.1, 0.9, 1.2])},
        [-100.0, -98.0, -97.0],
        2,
        [-100.0, -99.9, -99.8],
        _sweep([1.0, 2.0, 4.0]),
    )
    assert never["few_learned_steps"]["status"] == "holds"
    assert never["few_learned_steps"]["gradient_steps_needed"] is None
    assert "within 2 steps" in never["few_learned_steps"]["sentence"]


def test_claims_do_not_hold_when_the_numbers_say_otherwise():
    found = claims(
        {"vae": _gaps([1.0, 1.1, 0.9, 1.2]), "iterative": _gaps([3.0, 3.2, 2.8, 3.1])},
        learned_curve=[-100.0, -99.5, -99.0],
        learned_steps=2,
        gradient_curve=[-100.0, -98.0, -97.0],  # gradient steps get there in one step
        sweep=_sweep([4.0, 2.0, 1.0]),  # the gap shrinks with the encoder
    )
    assert [c["status"] for c in found.values()] == ["does not hold"] * 3
    assert "reach it in 1 step" in found["few_learned_steps"]["sentence"]
    # a learned update that makes the bound worse does not "reach in a few steps" anything
    worse = claims(
        {"vae": _gaps([1.0, 1.1]), "iterative": _gaps([3.0, 3.2])},
        [-100.0, -101.0, -102.0],
        2,
        [-100.0, -100.5, -101.0],
        _sweep([1.0, 3.0, 2.0]),
    )
    assert worse["few_learned_steps"]["status"] == "does not hold"
    assert worse["gap_grows_as_encoder_shrinks"]["status"] == "holds only in part"


def test_a_gap_difference_within_its_noise_is_unresolved():
    found = claims(
        {"vae": _gaps([1.0, 3.0, 1.0, 3.0]), "iterative": _gaps([1.2, 2.6, 1.3, 2.7])},
        [-100.0, -99.0],
        1,
        [-100.0, -99.5, -99.0],
        _sweep([1.0, 2.0, 4.0]),
    )
    assert found["reduces_amortization_gap"]["status"] == "unresolved"
    assert "within twice its standard error" in found["reduces_amortization_gap"]["sentence"]
