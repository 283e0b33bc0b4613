"""Benchmark scripts run end to end in a tiny setting (they are timed elsewhere, not here)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_iterative_multimodal_step_cost_falls_back_and_records_ratios(tmp_path: Path) -> None:
    script = load_script("iterative_multimodal_step_cost")
    out = tmp_path / "cost.json"
    result = script.main(
        ["--steps", "1", "--rounds", "2", "--warmup", "0", "--data-root", str(tmp_path / "no-data")]
        + ["--hidden", "16", "--z-dim", "2", "--refine-steps", "0", "1", "--joint-refine-steps", "1"]
        + ["--learned-refine-steps", "1"]
        + ["--out", str(out)]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    # no MNIST files under the data root: trimodal-digits instead, and the record says so
    assert result["settings"]["dataset"] == "trimodal-digits"
    assert result["settings"]["dataset_requested"] == "trimodal-mnist"
    assert "trimodal-mnist" in result["data_note"] and "trimodal-digits" in result["data_note"]

    rows = result["per_model"]
    t0, t1 = rows["iterative-multimodal T=0"], rows["iterative-multimodal T=1"]
    joint = rows["iterative-multimodal T=1 (joint)"]
    assert list(rows) == [
        "mopoe",
        "jmvae-kl",
        "mvtcae",
        *(script.arm_name(t) for t in (0, 1)),
        script.arm_name(1, "joint"),
        script.arm_name(1, "learned update"),
    ]
    assert t1["options"] == {"refine_steps": 1} and joint["options"]["teacher_init"] == "joint"
    reference = rows["mopoe"]["median_cpu_seconds_per_step"]
    for row in rows.values():
        assert len(row["round_cpu_seconds_per_step"]) == 2
        assert row["median_cpu_seconds_per_step"] > 0
        assert math.isclose(row["ratio_to_mopoe_cpu_time"], row["median_cpu_seconds_per_step"] / reference)
    assert rows["mopoe"]["ratio_to_mopoe_cpu_time"] == 1.0
    # the timed models really refine: each step of each of the three teachers runs the decoders
    # (and, for the learned rule, the update network), so T = 1 runs more networks than T = 0
    assert t1["linear_forward_calls_per_step"] > t0["linear_forward_calls_per_step"]
    # and the joint arm has one teacher, not one per modality
    assert joint["linear_forward_calls_per_step"] < t1["linear_forward_calls_per_step"]
    learned = rows[script.arm_name(1, "learned update")]
    assert learned["linear_forward_calls_per_step"] > t1["linear_forward_calls_per_step"]  # + update network
    # two points: the fitted slope is their difference per refinement step
    growth = result["growth_with_T"]
    slope = t1["median_cpu_seconds_per_step"] - t0["median_cpu_seconds_per_step"]
    assert math.isclose(growth["slope_cpu_seconds_per_refinement_step"], slope, rel_tol=1e-9)
    assert math.isclose(growth["slope_in_mopoe_steps"], slope / reference, rel_tol=1e-9)


def test_iterative_multimodal_step_cost_needs_two_values_of_t(tmp_path: Path) -> None:
    script = load_script("iterative_multimodal_step_cost")
    with pytest.raises(SystemExit):
        script.main(["--refine-steps", "4", "--out", str(tmp_path / "x.json")])
