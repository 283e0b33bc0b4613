"""Training-step cost of ``iterative-multimodal`` against MoPoE, as ratios measured in one run.

``iterative-multimodal`` (:class:`~pixyz_zoo.models.DistilledMultimodalVAE`; Oshima, Suzuki &
Matsuo) trains a teacher refined ``T`` times along the gradient of the multimodal ELBO (by
default one teacher per modality, ``teacher_init="unimodal"``, each started at its own encoder
``q(z|x_m)``) plus unimodal students distilled from it. One training step therefore evaluates the
multimodal ELBO ``T + 1`` times per teacher, each with a backward pass. This script times that
step for ``T`` in {0, 1, 2, 4, 16} with the default rule (Adam steps), ``T = 4`` with one teacher
started at a joint encoder (``teacher_init="joint"``) and ``T = 4`` with the learned update
(``refine_rule="learned"``), against the zoo's ``mopoe`` (the reference), ``jmvae-kl`` and
``mvtcae``, all on the same data batches with the multimodal benchmark's networks
(``pixyz_zoo.experiments.multimodal_benchmark.settings``: z 20, MLPs 512-512, Laplace decoder
scale 0.75, ``dimension_weights`` likelihood weights, Adam lr 2e-3, batch 100), one torch thread.

Every model is built fresh from the same seed. Each round runs every model (the order rotates
between rounds, so a change in the machine's load hits all alike) for ``--steps`` training
steps, after ``--warmup`` discarded steps in the first round; the per-step time of a model is
the median over rounds of its round's process CPU time divided by ``--steps`` (CPU time rather
than wall time: the cores are shared with other jobs). Ratios divide by MoPoE's median from
the same run. The cost's growth with ``T`` is a least-squares line through the unimodal-teacher
medians, its slope given in MoPoE steps per refinement step. Timing helpers come from
``vae_throughput.py``, data and the other zoo models from ``multimodal_throughput.py``.

Data: ``trimodal-mnist`` from ``--data-root`` (default ``$PIXYZ_ZOO_DATA``, else
``../shared/data`` next to the repository); when its MNIST files are absent the script falls
back to ``trimodal-digits`` and says so (in the output and in the JSON's ``data_note``).

    OMP_NUM_THREADS=1 python benchmarks/iterative_multimodal_step_cost.py
    python benchmarks/iterative_multimodal_step_cost.py --steps 1 --rounds 1 --dataset trimodal-digits \\
        --out /tmp/iterative_multimodal_step_cost.json      # quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import pixyz_zoo  # noqa: F401  (turns Pixyz's parameter cache off before pixyz.distributions loads)
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import DistilledMultimodalVAE, ZooModel
from pixyz_zoo.models.jmvae import dimension_weights
from pixyz_zoo.training import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402
from multimodal_throughput import Batch, build_zoo, count_parameters, make_batches  # noqa: E402
from vae_mnist_loglik import default_data_root  # noqa: E402
from vae_throughput import linear_calls_per_step, time_steps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "mopoe"
OTHER_BASELINES = ("jmvae-kl", "mvtcae")
DEFAULT_T = (0, 1, 2, 4, 16)
JOINT_T = 4


def arm_name(steps: int, teacher_init: str = "unimodal") -> str:
    return f"iterative-multimodal T={steps}" + ("" if teacher_init == "unimodal" else f" ({teacher_init})")


def build_arms(
    refine_steps: list[int], joint_steps: list[int], learned_steps: list[int] = ()
) -> dict[str, tuple[str, dict[str, Any], int | None]]:
    """Arm name -> (model, extra options, T of the unimodal-teacher line or None), MoPoE first."""
    arms: dict[str, tuple[str, dict[str, Any], int | None]] = {
        name: (name, {}, None) for name in (REFERENCE, *OTHER_BASELINES)
    }
    for t in refine_steps:
        arms[arm_name(t)] = ("iterative-multimodal", {"refine_steps": t}, t)
    for t in joint_steps:
        joint = {"refine_steps": t, "teacher_init": "joint"}
        arms[arm_name(t, "joint")] = ("iterative-multimodal", joint, None)
    for t in learned_steps:
        learned = {"refine_steps": t, "refine_rule": "learned"}
        arms[arm_name(t, "learned update")] = ("iterative-multimodal", learned, None)
    return arms


def build(model: str, modalities: dict[str, Modality], options: dict[str, Any]) -> ZooModel:
    if model == "iterative-multimodal":
        return DistilledMultimodalVAE(modalities, **options)
    return build_zoo(model, modalities, options)


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = intercept + slope * x``: (slope, intercept)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def load_batches(
    dataset: str, data_root: str, batch_size: int, device: torch.device
) -> tuple[str, str | None, dict[str, Modality], list[Batch]]:
    """(dataset used, note on a fallback or None, modalities, 20 training batches)."""
    try:
        modalities, batches = make_batches(dataset, 20, batch_size, data_root, device)
        return dataset, None, modalities, batches
    except FileNotFoundError:
        if dataset != "trimodal-mnist":
            raise
        note = (
            f"trimodal-mnist's MNIST files (MNIST/raw/t10k-*) are missing under {data_root}; timed on "
            "trimodal-digits instead (m 1x8x8: smaller images, so every model's step is cheaper and the "
            "ratios are not those of trimodal-mnist). Set PIXYZ_ZOO_DATA or --data-root to the folder "
            "holding MNIST/raw for the recorded setting"
        )
        print("NOTE:", note, flush=True)
        modalities, batches = make_batches("trimodal-digits", 20, batch_size, data_root, device)
        return "trimodal-digits", note, modalities, batches


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dataset", choices=["trimodal-mnist", "trimodal-digits"], default="trimodal-mnist")
    parser.add_argument("--data-root", default=None, help="default $PIXYZ_ZOO_DATA, else ../shared/data")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="discarded steps per model before round 1")
    parser.add_argument("--refine-steps", type=int, nargs="+", default=list(DEFAULT_T), help="T values")
    parser.add_argument(
        "--joint-refine-steps", type=int, nargs="*", default=[JOINT_T], help="T values, joint teacher"
    )
    parser.add_argument(
        "--learned-refine-steps", type=int, nargs="*", default=[JOINT_T], help="T values, learned update rule"
    )
    parser.add_argument("--z-dim", type=int, default=20)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--decoder-scale", type=float, default=0.75)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/iterative_multimodal_step_cost.json"))
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be >= 1 and --warmup >= 0")
    if len(set(args.refine_steps)) < 2:
        parser.error("--refine-steps needs at least two different T values to fit the cost's growth with T")

    torch.set_num_threads(args.threads)
    # weights of a long run drift into denormal floats, which slows the CPU several-fold (see
    # iterative_step_cost.py): flush them, so a model's time does not depend on its training length
    flush_denormal = torch.set_flush_denormal(True)
    device = resolve_device(args.device)
    data_root = args.data_root or default_data_root()
    dataset, data_note, modalities, batches = load_batches(args.dataset, data_root, args.batch_size, device)
    weights = dimension_weights(modalities)
    options: dict[str, Any] = dict(
        z_dim=args.z_dim,
        hidden=tuple(args.hidden),
        decoder_scale=args.decoder_scale,
        likelihood_weights=weights,
        lr=args.lr,
    )

    arms = build_arms(args.refine_steps, args.joint_refine_steps, args.learned_refine_steps)
    models: dict[str, ZooModel] = {}
    for name, (model, extra, _) in arms.items():
        torch.manual_seed(args.seed)
        models[name] = build(model, modalities, {**options, **extra}).to(device)
    steps_of: dict[str, Callable[[Batch], float]] = {name: m.train_step for name, m in models.items()}
    linear_calls = {
        name: linear_calls_per_step(m.distributions, m.train_step, batches[0]) for name, m in models.items()
    }

    names = list(arms)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            w, c = time_steps(steps_of[name], batches, args.steps, args.warmup if r == 0 else 0, device)
            wall[name].append(w / args.steps)
            cpu[name].append(c / args.steps)
        shown = ", ".join(f"{n} {cpu[n][-1] * 1e3:.0f}" for n in names)
        print(f"round {r + 1}/{args.rounds} (CPU ms/step, {order[0]} first): {shown}", flush=True)

    reference = statistics.median(cpu[REFERENCE])
    reference_wall = statistics.median(wall[REFERENCE])
    per_model: dict[str, dict[str, Any]] = {}
    for name in names:
        model, extra, _ = arms[name]
        median = statistics.median(cpu[name])
        per_model[name] = {
            "model": model,
            "options": extra,
            "median_cpu_seconds_per_step": median,
            "ratio_to_mopoe_cpu_time": median / reference,
            "round_cpu_seconds_per_step": cpu[name],
            "round_cpu_ratios_to_mopoe": [a / b for a, b in zip(cpu[name], cpu[REFERENCE], strict=True)],
            "median_wall_seconds_per_step": statistics.median(wall[name]),
            "ratio_to_mopoe_wall_time": statistics.median(wall[name]) / reference_wall,
            "linear_forward_calls_per_step": linear_calls[name],
            "parameters": count_parameters(models[name].distributions),
        }

    line = {t: per_model[n]["median_cpu_seconds_per_step"] for n, (_, _, t) in arms.items() if t is not None}
    slope, intercept = fit_line([float(t) for t in line], list(line.values()))
    growth = {
        "fit": "least squares of median CPU seconds per step on T, unimodal teachers",
        "T": list(line),
        "slope_cpu_seconds_per_refinement_step": slope,
        "intercept_cpu_seconds": intercept,
        "slope_in_mopoe_steps": slope / reference,
        "intercept_in_mopoe_steps": intercept / reference,
        "teachers": len(modalities),
    }

    result: dict[str, Any] = {
        "benchmark": "iterative_multimodal_step_cost",
        "command": command_line(argv),
        "settings": {
            "device": str(device),
            "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "dataset": dataset,
            "dataset_requested": args.dataset,
            "modalities": {m: [list(mod.shape), mod.likelihood] for m, mod in modalities.items()},
            "likelihood_weights": weights,
            "z_dim": args.z_dim,
            "hidden": list(args.hidden),
            "decoder_scale": args.decoder_scale,
            "batch_size": args.batch_size,
            "optimizer": f"Adam lr {args.lr:g}",
            "model_options": "defaults otherwise (mopoe beta 1; jmvae-kl alpha = beta = 1; mvtcae alpha 5/6, "
            "beta 2.5; iterative-multimodal: learned update 256-256, forward distillation, alpha 1, beta 1, "
            "teacher_init unimodal unless named)",
            "steps_per_round": args.steps,
            "warmup_steps_round_1": args.warmup,
            "rounds": args.rounds,
            "arms_order_round_1": names,
            "timing": "process CPU time (time.process_time) per round / steps; median over rounds",
            "flush_denormal": flush_denormal,
            "seed": args.seed,
        },
        "data_note": data_note,
        "reference": REFERENCE,
        "per_model": per_model,
        "growth_with_T": growth,
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }

    print(f"\ndataset {dataset}, {args.rounds} rounds x {args.steps} steps, CPU time, medians over rounds\n")
    print("| model | CPU ms/step | ratio to MoPoE | per-round ratios | `nn.Linear` forwards/step |")
    print("|---|---|---|---|---|")
    for name, row in per_model.items():
        rounds = ", ".join(f"{v:.2f}" for v in row["round_cpu_ratios_to_mopoe"])
        print(
            f"| {name} | {row['median_cpu_seconds_per_step'] * 1e3:.1f} | "
            f"{row['ratio_to_mopoe_cpu_time']:.2f} | {rounds} | {row['linear_forward_calls_per_step']} |"
        )
    print(
        f"\ncost growth with T (fit over T = {', '.join(map(str, line))}): "
        f"{slope * 1e3:.1f} CPU ms per refinement step = {growth['slope_in_mopoe_steps']:.2f} MoPoE steps "
        f"(intercept {growth['intercept_in_mopoe_steps']:.2f} MoPoE steps)"
    )
    if data_note:
        print("NOTE:", data_note)
    out = write_record(result, args.out)
    print("written", out)
    return result


if __name__ == "__main__":
    main()
