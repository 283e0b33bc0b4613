"""Data-parallel training through the zoo's torchrun path: N processes at batch B against 1 at batch N*B.

Each arm trains the zoo's models (default ``jmvae-kl`` and ``vae``) with the zoo's :class:`Trainer`,
started the way the README's "Multi-GPU and multi-node training" section starts ``pixyz-zoo train``:

- 1 process: ``python benchmarks/ddp_throughput.py --worker ...`` (no process group), batch N*B;
- N processes: ``python -m torch.distributed.run --standalone --nproc_per_node=N
  benchmarks/ddp_throughput.py --worker ...`` (``torchrun``), batch B per process: every process
  joins the group through :func:`pixyz_zoo.distributed.init_from_env` (gloo on the CPU, NCCL on
  GPUs), the Trainer shards each global batch of N*B and DDP averages the gradients.

Both arms therefore take the same global batch and the same number of optimiser steps. In every
process a model is built as ``runs.train`` builds it (``build_model(...).to(device)``), trained for
``--warmup`` steps by one Trainer (discarded), then for ``--steps`` steps by a second Trainer, timed
around ``Trainer.fit`` (wall and process CPU time, after a barrier; no checkpoints, no test data).
A step's wall time is the slowest process's; the CPU time is given per process and summed over them.

Two control arms split the N-process arm's cost: 1 process at batch B (what one rank computes,
without a process group) gives the smaller batch's share and, subtracted from the N-process arm,
DDP's (gradient all-reduce, the trainer's per-step agreement on the loss); N such processes started
at once, each training alone (no process group, no communication), give what sharing the
machine's cores costs by itself.

Rounds rotate which arm runs first, every arm of a round is a fresh launch (its start-up is not
timed), and the medians over rounds are reported with the ratios N-process / 1-process. A launch
that fails is recorded (``failed_launches``: round, arm, exit code, its first lines) and run once
more. Each process uses ``--threads`` torch threads (default 1, with ``OMP_NUM_THREADS`` set to the
same value). With
``torch.cuda.device_count() >= 2`` the same comparison runs on the GPUs (N = all of them, NCCL)
unless ``--no-cuda``; otherwise the record says why it was not measured.

    OMP_NUM_THREADS=1 python benchmarks/ddp_throughput.py --steps 100 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import pixyz_zoo  # noqa: F401  (turns Pixyz's parameter cache off before pixyz.distributions loads)
from pixyz_zoo import distributed
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.datasets.digits import DIGIT_LABEL
from pixyz_zoo.datasets.mnist import IMAGE_28X28
from pixyz_zoo.models import MODELS, build_model
from pixyz_zoo.training import Trainer, resolve_device, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402
from vae_throughput import sync  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
DATA = ("random", "digits")


# ---------------------------------------------------------------------- one process of one arm
def dataset(source: str, examples: int, seed: int) -> MultimodalDataset:
    """``examples`` training examples with an image ``x`` and a one-hot label ``y``: random grey
    levels at MNIST's shape (1x28x28, binarised per batch) and random labels, or the 8x8 digits
    (sklearn's, train split) repeated to the length asked for."""
    if source == "digits":
        data = load_dataset("digits", "train")
        return data.subset(torch.arange(examples) % len(data))
    g = torch.Generator().manual_seed(seed)
    tensors = {
        "x": torch.rand(examples, *IMAGE_28X28.shape, generator=g),
        "y": torch.nn.functional.one_hot(torch.randint(0, 10, (examples,), generator=g), 10).float(),
    }
    return MultimodalDataset("random", tensors, {"x": IMAGE_28X28, "y": DIGIT_LABEL})


def worker(spec: dict[str, Any]) -> None:
    """Train every model of ``spec`` in this process (a rank of torchrun's group, or alone) and
    write this process's timings to ``spec["out"]/rank{r}.json``."""
    torch.set_num_threads(spec["threads"])
    device = resolve_device(distributed.init_from_env(spec["device"]))
    world, rank = distributed.world_size(), distributed.rank()
    batch = spec["batch_size"]
    size = batch * world  # the global batch
    record: dict[str, Any] = {
        "rank": rank,
        "world_size": world,
        "backend": torch.distributed.get_backend() if distributed.active() else None,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "models": {},
    }
    try:
        for name in spec["models"]:
            seed_everything(spec["seed"])
            data = dataset(spec["data"], spec["steps"] * size, spec["seed"])
            model = build_model(name, data.modalities, **spec["options"].get(name, {})).to(device)
            common = {"batch_size": batch, "progress": False, "world_size": world, "seed": spec["seed"]}
            if spec["warmup"]:
                warm = dataset(spec["data"], spec["warmup"] * size, spec["seed"] + 1)
                Trainer(model, warm, epochs=1, **common).fit()
            trainer = Trainer(model, data, epochs=1, **common)
            distributed.barrier()
            sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            history = trainer.fit()
            sync(device)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            steps = data.num_batches(size)
            record["models"][name] = {
                "steps": steps,
                "examples_per_process_per_step": batch,
                "wall_seconds": wall,
                "cpu_seconds": cpu,
                "train_loss": history[-1]["train_loss"],
                "options": model.config,
            }
    finally:
        distributed.destroy()
    Path(spec["out"], f"rank{rank}.json").write_text(json.dumps(record, indent=2) + "\n")


# ---------------------------------------------------------------------- launching the arms
class LaunchError(RuntimeError):
    """An arm's process exited with an error; ``output`` is everything it printed."""

    def __init__(self, code: int, log: str, output: str) -> None:
        lines = output.splitlines()
        # the workers' own messages, before torchrun's report of the failure
        own = [line for line in lines if not line.startswith("[rank") and "elastic" not in line]
        self.code, self.log, self.first_lines = code, log, own[:8]
        super().__init__(
            f"an arm failed (exit code {code}); its whole output is in {log}:\n" + "\n".join(lines[-40:])
        )


def launch(
    spec: dict[str, Any], nproc: int, threads: int, tmp: Path, independent: bool = False
) -> tuple[list[dict[str, Any]], str]:
    """Run one arm: 1 plain process, ``nproc`` processes under torchrun, or (``independent``)
    ``nproc`` plain processes at once, each training alone; returns every process's record and the
    command line that ran it."""
    outs = [Path(tempfile.mkdtemp(dir=tmp)) for _ in range(nproc if independent else 1)]
    cmds = []
    for out in outs:
        spec_file = out / "spec.json"
        spec_file.write_text(json.dumps({**spec, "out": str(out)}))
        worker_args = [str(SCRIPT), "--worker", str(spec_file)]
        if nproc == 1 or independent:
            cmds.append([sys.executable, *worker_args])
        else:
            run = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
            cmds.append([sys.executable, *run, *worker_args])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    running = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cmd in cmds
    ]
    failed = []
    for proc, out in zip(running, outs, strict=True):
        output, _ = proc.communicate()
        if proc.returncode != 0:
            log = Path(tmp).parent / f"ddp-throughput-failed-{os.getpid()}-{out.name}.log"
            log.write_text(output)
            failed.append((proc.returncode, log, output))
    if failed:
        code, log, output = failed[0]
        raise LaunchError(code, str(log), output)
    if independent:
        records = [json.loads(Path(out, "rank0.json").read_text()) for out in outs]
    else:
        records = [json.loads(Path(outs[0], f"rank{r}.json").read_text()) for r in range(nproc)]
    shown = [Path(cmds[0][0]).name, *(a.replace(f"{ROOT}/", "") for a in cmds[0][1:])]
    command = " ".join(shlex.quote(a) for a in shown[:-1]) + " SPEC.json"
    return records, f"{nproc} x ({command}) at once" if independent else command


def summarise(records: list[dict[str, Any]], name: str) -> dict[str, float]:
    """One arm's timing of model ``name`` in one round: per step, the slowest process's wall time,
    the mean CPU time of a process and the CPU time of all processes together."""
    rows = [r["models"][name] for r in records]
    steps = rows[0]["steps"]
    return {
        "wall_per_step": max(r["wall_seconds"] for r in rows) / steps,
        "cpu_per_step_per_process": statistics.fmean(r["cpu_seconds"] for r in rows) / steps,
        "cpu_per_step_all_processes": sum(r["cpu_seconds"] for r in rows) / steps,
        "train_loss": rows[0]["train_loss"],
        "steps": steps,
        "examples": sum(r["examples_per_process_per_step"] for r in rows),
    }


def arms_of(nproc: int, batch: int) -> dict[str, tuple[int, int, bool]]:
    """The arms, by name: (processes, batch per process, independent). ``1_process_at_B`` is the share
    one rank computes, trained alone (no process group); ``N_independent_at_B`` runs N of those at
    once (no process group either): what sharing the machine's cores costs without DDP."""
    return {
        "1_process": (1, nproc * batch, False),
        f"{nproc}_process": (nproc, batch, False),
        "1_process_at_B": (1, batch, False),
        f"{nproc}_independent_at_B": (nproc, batch, True),
    }


RETRIES = 1  # a failed launch is recorded in ``failed_launches`` and run once more
TIMES = ("wall_per_step", "cpu_per_step_per_process", "cpu_per_step_all_processes")


def compare(
    spec: dict[str, Any], nproc: int, threads: int, rounds: int, tmp: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the arms of :func:`arms_of` for ``rounds`` rounds, the first arm changing every round
    (rotation); returns per-model medians and ratios, and what ran (order, commands, ranks)."""
    arms = arms_of(nproc, spec["batch_size"])
    names = list(arms)
    per_round: dict[str, dict[str, list[dict[str, float]]]] = {
        m: {a: [] for a in arms} for m in spec["models"]
    }
    orders, commands, loads = [], {}, []
    failures: list[dict[str, Any]] = []
    worker_info: dict[str, Any] = {}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        orders.append(order)
        for arm in order:
            n, batch, independent = arms[arm]
            for attempt in range(RETRIES + 1):
                try:
                    records, commands[arm] = launch(
                        {**spec, "batch_size": batch}, n, threads, tmp, independent
                    )
                    break
                except LaunchError as error:
                    failures.append(
                        {"round": r + 1, "arm": arm, "exit_code": error.code, "output": error.first_lines}
                    )
                    print(
                        f"round {r + 1}: {arm} failed (exit code {error.code}), see {error.log}", flush=True
                    )
                    if attempt == RETRIES:
                        raise SystemExit(str(error)) from None
            worker_info[arm] = [{k: v for k, v in rec.items() if k != "models"} for rec in records]
            for name in spec["models"]:
                per_round[name][arm].append(summarise(records, name))
        loads.append(os.getloadavg()[0])
        shown = "; ".join(
            f"{name}: "
            + ", ".join(f"{a} {per_round[name][a][-1]['wall_per_step'] * 1e3:.1f} ms" for a in arms)
            for name in spec["models"]
        )
        print(f"round {r + 1}/{rounds} ({spec['device']}): wall per step {shown}", flush=True)
    one, many, alone, apart = names
    results: dict[str, Any] = {}
    for name in spec["models"]:
        rows: dict[str, Any] = {}
        for arm, (n, batch, _) in arms.items():
            rounds_of = per_round[name][arm]
            rows[arm] = {
                "processes": n,
                "batch_per_process": batch,
                "round_steps": [row["steps"] for row in rounds_of],
                "round_examples_per_step": [row["examples"] for row in rounds_of],
                **{f"round_{key}": [row[key] for row in rounds_of] for key in TIMES},
                "round_train_loss": [row["train_loss"] for row in rounds_of],
                **{f"median_{key}": statistics.median(row[key] for row in rounds_of) for key in TIMES},
            }
        a, b, c, d = rows[many], rows[one], rows[alone], rows[apart]
        rows["ratio_wall"] = a["median_wall_per_step"] / b["median_wall_per_step"]
        rows["ratio_cpu_per_process"] = (
            a["median_cpu_per_step_per_process"] / b["median_cpu_per_step_per_process"]
        )
        rows["ratio_cpu_all_processes"] = (
            a["median_cpu_per_step_all_processes"] / b["median_cpu_per_step_all_processes"]
        )
        for key in ("wall_per_step", "cpu_per_step_per_process"):
            rows[f"round_ratios_{key}"] = [
                x / y for x, y in zip(a[f"round_{key}"], b[f"round_{key}"], strict=True)
            ]
        # where the N-process arm's CPU goes: the smaller batch alone, and DDP on top of it
        rows["ratio_cpu_batch_B_over_batch_NB"] = (
            c["median_cpu_per_step_per_process"] / b["median_cpu_per_step_per_process"]
        )
        rows["ratio_cpu_per_process_over_batch_B_alone"] = (
            a["median_cpu_per_step_per_process"] / c["median_cpu_per_step_per_process"]
        )
        rows["ddp_cpu_seconds_per_step_per_process"] = (
            a["median_cpu_per_step_per_process"] - c["median_cpu_per_step_per_process"]
        )
        rows["ratio_cpu_independent_over_alone"] = (
            d["median_cpu_per_step_per_process"] / c["median_cpu_per_step_per_process"]
        )
        rows["ratio_cpu_per_process_over_independent"] = (
            a["median_cpu_per_step_per_process"] / d["median_cpu_per_step_per_process"]
        )
        results[name] = rows
    ran = {
        "processes": nproc,
        "arms": {
            arm: {"processes": n, "batch_per_process": b, "process_group": n > 1 and not ind}
            for arm, (n, b, ind) in arms.items()
        },
        "round_order": orders,
        "commands": commands,
        "workers": worker_info,
        "load_average_1min_after_each_round": loads,
        "failed_launches": failures,
    }
    return results, ran


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option takes KEY=VALUE (e.g. hidden=[64]), got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["jmvae-kl", "vae"])
    parser.add_argument("--data", choices=DATA, default="random")
    parser.add_argument(
        "--batch-size", type=int, default=50, help="B: batch per process of the N-process arm"
    )
    parser.add_argument("--nproc", type=int, default=2, help="N: processes of the CPU (gloo) arm")
    parser.add_argument("--steps", type=int, default=100, help="timed optimiser steps per model and arm")
    parser.add_argument("--warmup", type=int, default=10, help="discarded steps before the timing")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads and OMP_NUM_THREADS per process"
    )
    parser.add_argument(
        "--option", type=parse_option, action="append", default=[], help="KEY=VALUE model option (all models)"
    )
    parser.add_argument("--no-cuda", action="store_true", help="skip the GPU comparison even with 2+ GPUs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/ddp_throughput.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(Path(args.worker).read_text()))
        return {}

    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; `pixyz-zoo list` shows the registered ones")
    for flag, value, least in (
        ("--nproc", args.nproc, 2),
        ("--batch-size", args.batch_size, 1),
        ("--steps", args.steps, 1),
        ("--rounds", args.rounds, 1),
        ("--threads", args.threads, 1),
        ("--warmup", args.warmup, 0),
    ):
        if value < least:
            raise SystemExit(f"{flag} must be at least {least}, got {value}")
    options = dict(args.option)
    spec = {
        "models": args.models,
        "data": args.data,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "seed": args.seed,
        "options": {name: options for name in args.models},
        "device": "cpu",
    }
    load_before = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ddp-bench-") as tmp:
        cpu, cpu_ran = compare(spec, args.nproc, args.threads, args.rounds, Path(tmp))
        gpus = torch.cuda.device_count()
        if args.no_cuda:
            cuda: dict[str, Any] = {"measured": False, "reason": "--no-cuda"}
        elif gpus < 2:
            cuda = {
                "measured": False,
                "reason": f"torch.cuda.device_count() = {gpus}: the GPU (NCCL) comparison needs at least 2",
            }
        else:
            gpu_results, gpu_ran = compare(
                {**spec, "device": "cuda"}, gpus, args.threads, args.rounds, Path(tmp)
            )
            cuda = {"measured": True, "backend": "nccl", "per_model": gpu_results, **gpu_ran}
    seconds = time.perf_counter() - start
    command = command_line(argv)
    result: dict[str, Any] = {
        "benchmark": "ddp_throughput",
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} {command}",
        "settings": {
            "models": args.models,
            "model_options": options,
            "data": args.data,
            "batch_per_process_n_processes": args.batch_size,
            "batch_1_process": args.batch_size * args.nproc,
            "global_batch": args.batch_size * args.nproc,
            "cpu_processes": args.nproc,
            "backend_cpu": "gloo",
            "timed_steps": args.steps,
            "warmup_steps": args.warmup,
            "rounds": args.rounds,
            "threads_per_process": args.threads,
            "omp_num_threads_per_process": args.threads,
            "seed": args.seed,
            "timing": "Trainer.fit of --steps steps after a barrier; wall: slowest process; CPU: "
            "time.process_time per process (mean) and summed over processes; medians over rounds",
        },
        "cpu": {"per_model": cpu, **cpu_ran},
        "cuda": cuda,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "total_seconds": seconds,
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "cuda_devices": gpus,
            "gpus": [torch.cuda.get_device_name(i) for i in range(gpus)],
        },
    }
    for name, rows in cpu.items():
        print(
            f"{name}: {args.nproc} processes x batch {args.batch_size} vs 1 x batch "
            f"{args.batch_size * args.nproc}: wall per step ratio {rows['ratio_wall']:.3f}, "
            f"CPU per process {rows['ratio_cpu_per_process']:.3f}, CPU all processes "
            f"{rows['ratio_cpu_all_processes']:.3f}; 1 process at batch {args.batch_size} / at "
            f"{args.batch_size * args.nproc}: CPU {rows['ratio_cpu_batch_B_over_batch_NB']:.3f}; DDP adds "
            f"{rows['ddp_cpu_seconds_per_step_per_process'] * 1e3:.1f} ms CPU per step and process; "
            f"{args.nproc} independent processes / 1 alone: CPU "
            f"{rows['ratio_cpu_independent_over_alone']:.3f}"
        )
    out = write_record(result, args.out)
    print("written", out)
    return result


if __name__ == "__main__":
    main()
