"""Cost of the IWAE-K evaluation against ELBO passes over the same data, measured in the same run.

``evaluate_log_likelihood(model, test, k=K)`` (``pixyz_zoo.evaluation.likelihood``) computes the
encoder once per example and scores K samples per example with the prior and the decoders in
chunks. Its cost is compared with two references, timed in the same process on the same data:

- ``elbo_pass``: one ELBO pass over the test split (``evaluate_log_likelihood(..., k=1)``: one
  encoder and one decoder evaluation per example). The ideal ratio IWAE-K / ELBO pass is K (K
  passes' worth of work); ``ratio_to_k_elbo_passes`` is the measured ratio divided by K
  (target <= 3).
- ``elbo_arithmetic``: the arithmetic of K ELBO passes without per-call overhead: one ELBO
  evaluation over the test split repeated K times, in batches of ``max_rows`` rows (K encoder and
  K decoder evaluations per example). ``ratio_to_arithmetic`` = IWAE-K time / this time
  (target <= 3; below 1 because the IWAE runs the encoder once, not K times).

Rounds alternate the order of the arms; medians over rounds of wall and process CPU time are
reported (on a CPU shared with other jobs, CPU time is the more robust of the two).

``--baseline REV`` also times the implementation of ``likelihood.py`` at git revision ``REV``
(loaded from ``git show``, nothing checked out) on the same model and data: before/after in one
run. ``--multimodal`` adds ``mopoe`` and ``mvae`` on ``trimodal-digits`` (IWAE-K of all
modalities, and the subset likelihood of ``m,t`` as ``evaluate_multimodal`` computes it).
``--default-run`` trains the default ``pixyz-zoo train vae`` (digits, 30 epochs, batch 64) and
times its evaluation at several K, to choose the default ``--iw-samples``.

    python benchmarks/iwae_cost.py --threads 1 2 --rounds 3 --baseline 4ed0ec4 --multimodal --default-run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import pixyz_zoo  # noqa: F401  (turns Pixyz's parameter cache off before pixyz.distributions loads)
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.evaluation import likelihood
from pixyz_zoo.models import build_model

ROOT = Path(__file__).resolve().parents[1]
TARGET = 3.0


def timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    """``(wall seconds, process CPU seconds, result)`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def median_times(arms: dict[str, Callable[[], Any]], rounds: int) -> dict[str, dict[str, Any]]:
    """Each arm ``rounds`` times, the order rotated every round; medians of wall and CPU time."""
    names = list(arms)
    records: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in names}
    results: dict[str, Any] = {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, cpu, results[name] = timed(arms[name])
            records[name]["wall"].append(wall)
            records[name]["cpu"].append(cpu)
    return {
        name: {
            "wall_s": statistics.median(rec["wall"]),
            "cpu_s": statistics.median(rec["cpu"]),
            "wall_rounds": rec["wall"],
            "cpu_rounds": rec["cpu"],
            "result": results[name],
        }
        for name, rec in records.items()
    }


def repeated(data: MultimodalDataset, times: int) -> MultimodalDataset:
    """The dataset repeated ``times`` times (K ELBO passes' worth of rows)."""
    index = torch.arange(len(data)).repeat(times)
    return data.subset(index)


def load_revision(revision: str) -> Any:
    """``pixyz_zoo/evaluation/likelihood.py`` as it was at git ``revision``, as a module."""
    source = subprocess.run(
        ["git", "show", f"{revision}:pixyz_zoo/evaluation/likelihood.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"likelihood_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"likelihood_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def iwae_cost(
    model: Any,
    test: MultimodalDataset,
    k: int,
    rounds: int,
    max_rows: int,
    baseline: Any = None,
    given: list[str] | None = None,
) -> dict[str, Any]:
    """IWAE-K against one ELBO pass and against the arithmetic of K ELBO passes."""
    observed = given
    arms: dict[str, Callable[[], Any]] = {
        "iwae": lambda: likelihood.evaluate_log_likelihood(
            model, test, k=k, max_rows=max_rows, given=given, observed=observed
        ),
        "elbo_pass": lambda: likelihood.evaluate_log_likelihood(
            model, test, k=1, max_rows=max_rows, given=given, observed=observed
        ),
    }
    if given is None:  # the arithmetic reference: every row through encoder and decoder
        big = repeated(test, k)
        arms["elbo_arithmetic"] = lambda: likelihood.evaluate_log_likelihood(
            model, big, k=1, batch_size=max_rows, max_rows=max_rows
        )
    if baseline is not None:
        arms["iwae_baseline"] = lambda: baseline.evaluate_log_likelihood(
            model, test, k=k, max_rows=max_rows, given=given, observed=observed
        )
    times = median_times(arms, rounds)
    out: dict[str, Any] = {"k": k, "examples": len(test), "given": given, "arms": times}
    for clock in ("wall_s", "cpu_s"):
        iwae = times["iwae"][clock]
        ratio = iwae / times["elbo_pass"][clock]
        out[f"ratio_iwae_to_one_elbo_pass_{clock[:-2]}"] = ratio
        out[f"ratio_to_k_elbo_passes_{clock[:-2]}"] = ratio / k
        if "elbo_arithmetic" in times:
            out[f"ratio_to_arithmetic_{clock[:-2]}"] = iwae / times["elbo_arithmetic"][clock]
        if baseline is not None:
            out[f"speedup_over_baseline_{clock[:-2]}"] = times["iwae_baseline"][clock] / iwae
    out["within_target"] = out["ratio_to_k_elbo_passes_cpu"] <= TARGET and (
        out.get("ratio_to_arithmetic_cpu", 0.0) <= TARGET
    )
    return out


def default_run(ks: list[int], threads: int) -> dict[str, Any]:
    """``pixyz-zoo train vae`` with the CLI defaults: training time and evaluation time per K."""
    from pixyz_zoo import runs

    out: dict[str, Any] = {"command": "pixyz-zoo train vae (digits, 30 epochs, batch 64)"}
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu, (model, _) = timed(
            lambda: runs.train_run(
                runs.RunSpec.from_settings("vae", epochs=30, batch_size=64), Path(tmp) / "run", progress=False
            )
        )
        out["train"] = {"wall_s": wall, "cpu_s": cpu}
        _, test = runs.load_data(runs.read_config(Path(tmp) / "run"))
        out["evaluate"] = {}
        for k in ks:
            wall, cpu, result = timed(lambda k=k: likelihood.evaluate_log_likelihood(model, test, k=k))
            out["evaluate"][f"iwae_{k}"] = {"wall_s": wall, "cpu_s": cpu, "iwae": result[f"iwae_{k}"]}
        payload = runs.load_checkpoint(Path(tmp) / "run")
        wall, cpu, _ = timed(
            lambda: runs.draw_run_figures(model, test, payload["history"], Path(tmp) / "figures")
        )
        out["figures"] = {"wall_s": wall, "cpu_s": cpu}
        # the whole evaluation as the CLI runs it (likelihood at the default K, figures, report)
        wall, cpu, metrics = timed(lambda: runs.evaluate_run(Path(tmp) / "run", progress=False))
        out["evaluate_run_default"] = {"wall_s": wall, "cpu_s": cpu, "iw_samples": metrics["iw_samples"]}
    out["threads"] = threads
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=1000, help="importance samples K")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="torch threads; the VAE is timed with each"
    )
    parser.add_argument("--max-rows", type=int, default=20000)
    parser.add_argument("--train-epochs", type=int, default=5, help="epochs of the measured VAE")
    parser.add_argument("--baseline", default=None, metavar="REV", help="also time likelihood.py at REV")
    parser.add_argument("--multimodal", action="store_true", help="also mopoe and mvae on trimodal-digits")
    parser.add_argument("--default-run", action="store_true", help="time the default `train vae`")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "iwae_cost.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads[0])
    baseline = load_revision(args.baseline) if args.baseline else None
    command = "python benchmarks/iwae_cost.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    from pixyz_zoo.training import Trainer

    torch.manual_seed(0)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    vae = build_model("vae", train.modalities)  # the CLI's default VAE (z 64, MLP 512-512)
    if args.train_epochs:
        Trainer(vae, train, epochs=args.train_epochs, batch_size=64, progress=False).fit()
    result: dict[str, Any] = {
        "benchmark": "iwae_cost",
        "command": command,
        "settings": {
            "k": args.k,
            "rounds": args.rounds,
            "threads": args.threads,
            "max_rows": args.max_rows,
            "vae": "digits (1x8x8 Bernoulli), z 64, MLP 64-512-512 encoder and decoder",
            "vae_train_epochs": args.train_epochs,
            "baseline": args.baseline,
            "target": f"IWAE-K time <= {TARGET} x the time of K ELBO passes",
        },
        "revision": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "device": "cpu",
        },
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        entry = iwae_cost(vae, test, args.k, args.rounds, args.max_rows, baseline)
        result[f"vae_digits_threads{threads}"] = entry
        print(threads, json.dumps({k: v for k, v in entry.items() if k != "arms"}, indent=2), flush=True)
    torch.set_num_threads(args.threads[0])  # the rest with the first thread count
    if args.multimodal:
        tri_train = load_dataset("trimodal-digits", "train")
        tri_test = load_dataset("trimodal-digits", "test")
        for name in ("mopoe", "mvae"):
            torch.manual_seed(0)
            model = build_model(name, tri_train.modalities)  # CLI defaults: z 64, MLP 512-512
            if args.train_epochs:
                Trainer(model, tri_train, epochs=args.train_epochs, batch_size=64, progress=False).fit()
            entry = {"all": iwae_cost(model, tri_test, args.k, 1, args.max_rows, baseline)}
            # evaluate_multimodal's subset likelihood (k = 100 by default) of m and t
            entry["subset_m_t"] = iwae_cost(
                model, tri_test, 100, 1, args.max_rows, baseline, given=["m", "t"]
            )
            result[f"{name}_trimodal_digits"] = entry
            summary = {s: {k: v for k, v in e.items() if k != "arms"} for s, e in entry.items()}
            print(name, json.dumps(summary, indent=2), flush=True)
    if args.default_run:
        result["default_train_vae"] = default_run([100, 250, 500, 1000], args.threads[0])
        print(json.dumps(result["default_train_vae"], indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
