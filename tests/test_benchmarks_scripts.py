"""Benchmark scripts run end to end in a tiny setting (they are timed elsewhere, not here)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

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


def fake_launch(calls: list[tuple[int, int, bool]]):
    """Stands in for ``ddp_throughput.launch``: the k-th launch takes 0.75 k wall and 0.5 k CPU seconds
    per step and process under torchrun, else k * batch / 10 seconds of both."""

    def launch(spec: dict, nproc: int, threads: int, tmp: Path, independent: bool = False):
        calls.append((nproc, spec["batch_size"], independent))
        steps, k = spec["steps"], len(calls)
        group = nproc > 1 and not independent
        wall = 0.75 * k if group else k * spec["batch_size"] / 10
        cpu = 0.5 * k if group else wall
        record = {
            "world_size": nproc if group else 1,
            "models": {
                name: {
                    "steps": steps,
                    "examples_per_process_per_step": spec["batch_size"],
                    "wall_seconds": wall * steps,
                    "cpu_seconds": cpu * steps,
                    "train_loss": 1.0,
                }
                for name in spec["models"]
            },
        }
        return [{**record, "rank": r if group else 0} for r in range(nproc)], f"{nproc} process(es)"

    return launch


def test_ddp_throughput_rotates_the_arms_and_records_ratios(tmp_path: Path, monkeypatch) -> None:
    script = load_script("ddp_throughput")
    calls: list[tuple[int, int, bool]] = []
    monkeypatch.setattr(script, "launch", fake_launch(calls))
    out = tmp_path / "ddp.json"
    result = script.main(
        ["--models", "vae", "--rounds", "3", "--steps", "4", "--batch-size", "5", "--no-cuda"]
        + ["--out", str(out)]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    # (processes, batch per process, independent): 1 x 2B, 2 x B (torchrun), 1 x B, 2 x B apart
    one, two, alone, apart = (1, 10, False), (2, 5, False), (1, 5, False), (2, 5, True)
    assert calls == [one, two, alone, apart, two, alone, apart, one, alone, apart, one, two]
    cpu = result["cpu"]
    assert cpu["round_order"][1] == ["2_process", "1_process_at_B", "2_independent_at_B", "1_process"]
    assert (
        cpu["arms"]["2_process"]["process_group"] and not cpu["arms"]["2_independent_at_B"]["process_group"]
    )
    row = cpu["per_model"]["vae"]
    a, b, c, d = row["2_process"], row["1_process"], row["1_process_at_B"], row["2_independent_at_B"]
    assert [x["batch_per_process"] for x in (b, a, c, d)] == [10, 5, 5, 5]
    assert (
        a["round_examples_per_step"]
        == b["round_examples_per_step"]
        == d["round_examples_per_step"]
        == [10] * 3
    )
    assert c["round_examples_per_step"] == [5] * 3
    assert b["round_steps"] == [4] * 3
    # launches 1, 8, 11 (1 x 10); 2, 5, 12 (2 x 5); 3, 6, 9 (1 x 5); 4, 7, 10 (2 x 5 apart)
    assert b["round_wall_per_step"] == [1.0, 8.0, 11.0] and b["median_wall_per_step"] == 8.0
    assert a["round_wall_per_step"] == [1.5, 3.75, 9.0] and a["median_wall_per_step"] == 3.75
    assert a["round_cpu_per_step_per_process"] == [1.0, 2.5, 6.0]
    assert a["round_cpu_per_step_all_processes"] == [2.0, 5.0, 12.0]
    assert c["round_cpu_per_step_per_process"] == [1.5, 3.0, 4.5]
    assert d["round_cpu_per_step_per_process"] == [2.0, 3.5, 5.0]
    assert math.isclose(row["ratio_wall"], 3.75 / 8.0)
    assert math.isclose(row["ratio_cpu_per_process"], 2.5 / 8.0)
    assert math.isclose(row["ratio_cpu_all_processes"], 5.0 / 8.0)
    assert math.isclose(row["ratio_cpu_batch_B_over_batch_NB"], 3.0 / 8.0)
    assert math.isclose(row["ratio_cpu_per_process_over_batch_B_alone"], 2.5 / 3.0)
    assert math.isclose(row["ddp_cpu_seconds_per_step_per_process"], 2.5 - 3.0)
    assert math.isclose(row["ratio_cpu_independent_over_alone"], 3.5 / 3.0)
    assert math.isclose(row["ratio_cpu_per_process_over_independent"], 2.5 / 3.5)
    assert result["cuda"] == {"measured": False, "reason": "--no-cuda"}
    assert result["settings"]["threads_per_process"] == 1
    assert len(result["load_average_before"]) == 3 and result["environment"]["torch"]


def test_ddp_throughput_records_a_failed_launch_and_runs_it_once_more(tmp_path: Path, monkeypatch) -> None:
    script = load_script("ddp_throughput")
    calls: list[tuple[int, int, bool]] = []
    launch = fake_launch(calls)
    failures = {2}  # the second launch (the 2-process arm of round 1) fails once

    def flaky(spec, nproc, threads, tmp, independent=False):
        if len(calls) + 1 in failures:
            calls.append((nproc, spec["batch_size"], independent))
            raise script.LaunchError(-6, "x.log", "terminate called without an active exception\nmore")
        return launch(spec, nproc, threads, tmp, independent)

    monkeypatch.setattr(script, "launch", flaky)
    args = [
        "--models",
        "vae",
        "--rounds",
        "1",
        "--steps",
        "2",
        "--no-cuda",
        "--out",
        str(tmp_path / "a.json"),
    ]
    result = script.main(args)
    assert result["cpu"]["failed_launches"] == [
        {
            "round": 1,
            "arm": "2_process",
            "exit_code": -6,
            "output": ["terminate called without an active exception", "more"],
        }
    ]
    assert calls[1] == calls[2] == (2, 50, False)  # run again
    assert len(result["cpu"]["per_model"]["vae"]["2_process"]["round_steps"]) == 1
    calls.clear()
    failures.update({1, 2})  # twice in a row: the benchmark stops
    with pytest.raises(SystemExit, match="exit code -6"):
        script.main(args)


def test_ddp_throughput_refuses_bad_settings(tmp_path: Path) -> None:
    script = load_script("ddp_throughput")
    out = str(tmp_path / "x.json")
    with pytest.raises(SystemExit, match="--nproc must be at least 2"):
        script.main(["--nproc", "1", "--out", out])
    with pytest.raises(SystemExit, match="unknown model"):
        script.main(["--models", "no-such-model", "--out", out])
    with pytest.raises(SystemExit):
        script.main(["--option", "hidden", "--out", out])


@pytest.mark.slow
def test_ddp_throughput_launches_torchrun_and_plain_processes(tmp_path: Path) -> None:
    """The two real ways an arm starts (the orchestration is tested above with a stand-in): 2 torchrun
    processes (gloo) at batch 4, and 2 plain processes at once, each alone at batch 8."""
    script = load_script("ddp_throughput")
    spec = {"models": ["vae"], "data": "random", "steps": 2, "warmup": 1, "threads": 1, "seed": 0}
    spec["options"] = {"vae": {"hidden": [8], "z_dim": 2}}
    spec["device"] = "cpu"
    ranks, command = script.launch({**spec, "batch_size": 4}, 2, 1, tmp_path)
    assert "torch.distributed.run --standalone --nproc_per_node=2" in command
    assert [(w["rank"], w["world_size"], w["backend"]) for w in ranks] == [(0, 2, "gloo"), (1, 2, "gloo")]
    alone, command = script.launch({**spec, "batch_size": 8}, 2, 1, tmp_path, independent=True)
    assert command.startswith("2 x (python") and "torch.distributed" not in command
    assert [(w["rank"], w["world_size"], w["backend"]) for w in alone] == [(0, 1, None), (0, 1, None)]
    for w in ranks + alone:
        assert w["torch_threads"] == 1 and w["omp_num_threads"] == "1"
    ddp, one = script.summarise(ranks, "vae"), script.summarise(alone[:1], "vae")
    assert ddp["steps"] == one["steps"] == 2 and ddp["examples"] == one["examples"] == 8
    assert (
        ddp["wall_per_step"] > 0 and ddp["cpu_per_step_all_processes"] > ddp["cpu_per_step_per_process"] > 0
    )
    # the same global batches from the same initial parameters: the 2-process loss differs from the
    # 1-process one only by the latents each rank samples
    assert math.isclose(ddp["train_loss"], one["train_loss"], rel_tol=0.05)
    assert alone[0]["models"]["vae"]["train_loss"] == alone[1]["models"]["vae"]["train_loss"]


def test_step_quartiles_are_the_lower_quartile_of_single_steps() -> None:
    quartiles = load_script("vae_throughput").step_quartiles
    pure = [0.001 * k for k in range(1, 9)]  # lower quartile 2.25 ms (statistics.quantiles' default)
    got = quartiles({"pure": pure, "zoo": [2 * t for t in pure]}, "pure")
    assert got["steps_per_arm"] == {"pure": 8, "zoo": 8}
    assert got["lower_quartile_cpu_ms_per_step"]["pure"] == pytest.approx(2.25)
    assert got["ratio_to_pure"] == pytest.approx({"pure": 1.0, "zoo": 2.0})
    assert quartiles({"pure": [], "zoo": []}, "pure") == {}  # CUDA: no per-step CPU times


@pytest.mark.parametrize(
    "script, extra, reference, arms",
    [
        ("vae_throughput", [], "pure", {"zoo", "pure", "pure_guarded"}),
        ("jmvae_kl_throughput", [], "pure", {"zoo", "pure", "pure_guarded"}),
        (
            "multimodal_throughput",
            ["--models", "mopoe", "mvae", "--hidden", "32"],
            "plain-mopoe",
            {"plain-mopoe", "plain-mopoe-guarded", "mopoe", "mvae"},
        ),
    ],
)
def test_throughput_scripts_record_single_steps(tmp_path: Path, script, extra, reference, arms) -> None:
    import torch

    out = tmp_path / "result.json"
    args = ["--device", "cpu", "--steps", "3", "--warmup", "1", "--rounds", "2", "--out", str(out), *extra]
    try:
        load_script(script).main(args)
    finally:
        torch.set_flush_denormal(False)  # the scripts flush denormals; the other tests do not
    single = json.loads(out.read_text())["single_steps"]
    assert single["steps_per_arm"] == {arm: 6 for arm in arms}
    assert single["ratio_to_" + reference][reference] == 1.0
    assert all(value > 0 for value in single["lower_quartile_cpu_ms_per_step"].values())


def test_step_overhead_baseline_times_both_trees_in_their_own_processes(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    args = ["--baseline", "HEAD", "--models", "vae", "--rounds", "2", "--blocks", "2", "--block", "1"]
    load_script("step_overhead_baseline").main([*args, "--warmup", "1", "--hidden", "8", "--out", str(out)])
    result = json.loads(out.read_text())
    workers = result["per_model"]["vae"]["workers"]
    assert {name: len(runs) for name, runs in workers.items()} == {"baseline": 2, "current": 2}
    packages = {name: {run["package"] for run in runs} for name, runs in workers.items()}
    assert packages["current"] == {str(BENCHMARKS.parent / "pixyz_zoo")}
    assert packages["baseline"] != packages["current"]  # the revision's extracted copy
    assert all(run["steps_per_arm"] == {"zoo": 2, "plain": 2} for runs in workers.values() for run in runs)
    summary = result["per_model"]["vae"]["summary"]
    assert all(values["ratio_zoo_over_plain_lower_quartile"] > 0 for values in summary.values())


def test_step_overhead_baseline_needs_a_revision(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        load_script("step_overhead_baseline").main(["--out", str(tmp_path / "result.json")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the checks for real")
def test_the_cuda_checks_say_that_there_is_no_gpu_and_do_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(BENCHMARKS / "cuda_checks.sh"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=120,
    )
    assert result.returncode == 2
    assert "no CUDA device" in result.stdout
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["summary.txt"]  # no test run, no record
