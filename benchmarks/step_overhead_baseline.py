"""The zoo's training step against the plain PyTorch model, now and at an earlier git revision.

For each model (``vae``, ``jmvae-kl``, ``mopoe``: the zoo model and the hand-written PyTorch model of
``vae_throughput.py``, ``jmvae_kl_throughput.py`` and ``multimodal_throughput.py``, the same
architecture, weights copied), a worker process imports the package from one source tree (this
checkout, or ``--baseline REV`` extracted with ``git archive``) and times single training steps of
the zoo model (``train_step(batch, check=False)``) and of the plain model in alternating blocks
(CPU time of each step). It reports the lower quartile and the median of each arm's step times and
their ratio zoo / plain. The worker processes of the two trees alternate, round after round, and
the record gives each tree's median ratio over rounds. The plain model is the same code in both
processes, so a change of the ratio between the trees is a change of the zoo's step; measuring both
in one process also cancels most of what a shared machine does to absolute times.

    python benchmarks/step_overhead_baseline.py --baseline 9d0fb53 --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
MODELS = ("vae", "jmvae-kl", "mopoe")


# ---------------------------------------------------------------------- worker (one source tree)
def arms_of(model: str, hidden: list[int]) -> tuple[dict[str, Callable[[Any], Any]], list[Any]]:
    """The zoo's and the plain model's training steps for ``model``, and the batches (batch 100)."""
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    import vae_throughput as vae_bench

    device = torch.device("cpu")
    torch.manual_seed(0)
    if model == "vae":
        from pixyz_zoo.datasets.mnist import IMAGE_28X28
        from pixyz_zoo.models import VAE

        zoo = VAE({"x": IMAGE_28X28}, z_dim=64, hidden=tuple(hidden), lr=1e-3)
        plain = vae_bench.PureVAE(784, 64, tuple(hidden))
        vae_bench.copy_zoo_weights(zoo, plain)
        batches = [{"x": x} for x in vae_bench.make_batches("random", 10, 100, None, device)]
        plain_loss = lambda batch: plain.loss(batch["x"])  # noqa: E731
    elif model == "jmvae-kl":
        import jmvae_kl_throughput as jmvae_bench

        from pixyz_zoo.datasets.digits import DIGIT_LABEL
        from pixyz_zoo.datasets.mnist import IMAGE_28X28
        from pixyz_zoo.models import JMVAEKL

        zoo = JMVAEKL({"x": IMAGE_28X28, "y": DIGIT_LABEL}, z_dim=64, hidden=tuple(hidden), lr=1e-3)
        plain = jmvae_bench.PureJMVAEKL(64, tuple(hidden))
        jmvae_bench.copy_zoo_weights(zoo, plain)
        batches = jmvae_bench.make_batches("random", 10, 100, None, device)
        plain_loss = lambda batch: plain.loss(batch["x"], batch["y"])  # noqa: E731
    elif model == "mopoe":
        import multimodal_throughput as multimodal_bench

        from pixyz_zoo.models.jmvae import dimension_weights

        modalities, batches = multimodal_bench.make_batches("trimodal-digits", 10, 100, None, device)
        options = {
            "z_dim": 20,
            "hidden": tuple(hidden),
            "decoder_scale": 0.75,
            "likelihood_weights": dimension_weights(modalities),
            "lr": 1e-3,
        }
        zoo = multimodal_bench.build_zoo("mopoe", modalities, options)
        plain_mopoe = multimodal_bench.PlainMoPoE(zoo, 1e-3)
        return {"zoo": lambda b: zoo.train_step(b, check=False), "plain": plain_mopoe.train_step}, batches
    else:
        raise SystemExit(f"unknown model {model!r}; choose from {MODELS}")
    return {
        "zoo": lambda b: zoo.train_step(b, check=False),
        "plain": vae_bench.plain_step(plain, plain_loss),
    }, batches


def worker(model: str, blocks: int, block: int, warmup: int, hidden: list[int]) -> dict[str, Any]:
    """Single steps of the zoo and the plain model in alternating blocks (CPU time of each step)."""
    import torch

    import pixyz_zoo

    torch.set_flush_denormal(True)
    arms, batches = arms_of(model, hidden)
    for step in arms.values():
        for i in range(warmup):
            step(batches[i % len(batches)])
    times: dict[str, list[float]] = {name: [] for name in arms}
    names, n = list(arms), 0
    for b in range(blocks):
        for name in names if b % 2 == 0 else names[::-1]:
            for _ in range(block):
                start = time.thread_time()
                arms[name](batches[n % len(batches)])
                times[name].append(time.thread_time() - start)
                n += 1
    quartile = {name: statistics.quantiles(t, n=4)[0] for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "package": str(Path(pixyz_zoo.__file__).resolve().parent),
        "steps_per_arm": {name: len(t) for name, t in times.items()},
        "lower_quartile_ms": {name: v * 1e3 for name, v in quartile.items()},
        "median_ms": {name: v * 1e3 for name, v in median.items()},
        "ratio_zoo_over_plain_lower_quartile": quartile["zoo"] / quartile["plain"],
        "ratio_zoo_over_plain_median": median["zoo"] / median["plain"],
    }


# ---------------------------------------------------------------------- driver
def extract(revision: str, into: Path) -> Path:
    """The package's source tree at ``revision`` (``git archive``), under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "pixyz_zoo"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_worker(tree: Path, model: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        model,
        "--blocks",
        str(args.blocks),
        "--block",
        str(args.block),
        "--warmup",
        str(args.warmup),
        "--hidden",
        *map(str, args.hidden),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the worker for {model} in {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["package"]) != (tree / "pixyz_zoo").resolve():
        raise SystemExit(f"the worker imported {result['package']}, not the tree {tree}")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=False, metavar="REV", help="the earlier git revision")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=3, help="worker processes per tree and model")
    parser.add_argument("--blocks", type=int, default=30, help="alternating blocks per worker")
    parser.add_argument("--block", type=int, default=4, help="steps per block")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the workers")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(BENCHMARKS / "results/step_overhead_baseline.json"))
    args = parser.parse_args(argv)

    if args.worker:
        import torch

        if os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        print(json.dumps(worker(args.worker, args.blocks, args.block, args.warmup, args.hidden)))
        return {}
    if not args.baseline:
        parser.error("--baseline REV is required (the revision to compare this checkout with)")
    if args.rounds < 1 or args.blocks < 2 or args.block < 1:
        parser.error("--rounds must be at least 1, --blocks at least 2 and --block at least 1")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"baseline": extract(args.baseline, Path(scratch)), "current": ROOT}
        per_model: dict[str, Any] = {}
        for model in args.models:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            for r in range(args.rounds):
                for name in list(trees) if r % 2 == 0 else list(trees)[::-1]:
                    runs[name].append(run_worker(trees[name], model, args))
                print(
                    f"{model} round {r + 1}/{args.rounds}: zoo/plain (lower quartile of steps) "
                    + ", ".join(
                        f"{n} {runs[n][-1]['ratio_zoo_over_plain_lower_quartile']:.3f}" for n in trees
                    ),
                    flush=True,
                )
            summary = {
                name: {
                    key: statistics.median(run[key] for run in runs[name])
                    for key in ("ratio_zoo_over_plain_lower_quartile", "ratio_zoo_over_plain_median")
                }
                for name in trees
            }
            per_model[model] = {"summary": summary, "workers": runs}
    result = {
        "benchmark": "step_overhead_baseline",
        "command": command_line(argv),
        "baseline": args.baseline,
        "baseline_commit": commit,
        "settings": {
            "rounds": args.rounds,
            "blocks": args.blocks,
            "steps_per_block": args.block,
            "warmup_steps": args.warmup,
            "hidden": args.hidden,
            "threads": args.threads,
            "batch_size": 100,
            "device": "cpu",
        },
        "per_model": per_model,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
    }
    for model, entry in per_model.items():
        print(
            f"{model}: median over rounds of zoo/plain (lower quartile of steps): "
            + ", ".join(
                f"{name} {values['ratio_zoo_over_plain_lower_quartile']:.3f}"
                for name, values in entry["summary"].items()
            )
        )
    out = write_record(result, args.out)
    print("written", out)
    return result


if __name__ == "__main__":
    main()
