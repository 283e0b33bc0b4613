"""Cost of iterative amortized inference: step time against T+1 VAE steps, and memory against T.

1. Time. One training step of ``iterative-vae`` with ``T`` refinement steps evaluates the
   negative ELBO ``T + 1`` times (``lambda_0 .. lambda_T``), each with one backward pass that
   gives both the inference gradient and the inference networks' training gradient. The
   reference is ``T + 1`` training steps of the plain ``vae`` with the same encoder and decoder,
   timed in the same run (rounds alternate which model goes first; medians over rounds):

       ratio(T) = time(one iterative-vae step with T) / ((T + 1) * time(one vae step))

   Target: at most 1.3 (refinement costs little beyond the loss evaluations it needs).

2. Memory. The refinement must not keep a graph across steps. Measured for T in {1, 4, 16}:
   the peak bytes of tensors that autograd holds for backward during one training step (every
   tensor saved by the graph, counted through ``torch.autograd.graph.saved_tensors_hooks``
   while it is alive; the same on every device) and what is still held after the step; on
   CUDA also ``torch.cuda.max_memory_allocated`` during the step above the memory allocated
   before it. Also the evaluation-time refinement (under ``torch.no_grad``).

    python benchmarks/iterative_step_cost.py --threads 1
    python benchmarks/iterative_step_cost.py --device cuda \
        --out benchmarks/results/iterative_step_cost_cuda.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import pixyz_zoo  # noqa: F401  (turns Pixyz's parameter cache off before pixyz.distributions loads)
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.datasets.mnist import IMAGE_28X28
from pixyz_zoo.models import VAE
from pixyz_zoo.models.iterative import IterativeVAE
from pixyz_zoo.training import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.3


class SavedTensors:
    """Live and peak bytes of the tensors autograd saves for backward."""

    class Box:
        def __init__(self, tensor: torch.Tensor) -> None:
            self.tensor = tensor

    def __init__(self) -> None:
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def pack(self, tensor: torch.Tensor) -> Box:
        box = self.Box(tensor)
        size = tensor.untyped_storage().nbytes()
        self.live[id(box)] = size
        self.now += size
        self.peak = max(self.peak, self.now)
        weakref.finalize(box, self._free, id(box))
        return box

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key)

    @staticmethod
    def unpack(box: Box) -> torch.Tensor:
        return box.tensor


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(source: str, n: int, batch_size: int, data_root: str | None, device: torch.device):
    g = torch.Generator().manual_seed(0)
    if source == "mnist-10k":
        data = load_dataset("mnist-10k", "train", root=data_root, binarize="dynamic")
        it = data.batches(batch_size, shuffle=True, generator=g, drop_last=True)
        xs = [next(it)["x"] for _ in range(min(n, data.num_batches(batch_size, drop_last=True)))]
    else:
        xs = [torch.bernoulli(torch.full((batch_size, 1, 28, 28), 0.5), generator=g) for _ in range(n)]
    return [x.to(device) for x in xs]


def timed(step: Callable[[torch.Tensor], float], xs, steps: int, warmup: int, device) -> tuple[float, float]:
    for i in range(warmup):
        step(xs[i % len(xs)])
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(xs[i % len(xs)])
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def build(steps: int | None, args: argparse.Namespace, device: torch.device):
    torch.manual_seed(args.seed)
    arch = dict(z_dim=args.z_dim, hidden=tuple(args.hidden))
    if steps is None:
        return VAE({"x": IMAGE_28X28}, **arch).to(device)
    return IterativeVAE(
        {"x": IMAGE_28X28}, refine_steps=steps, update_hidden=tuple(args.update_hidden), **arch
    ).to(device)


def memory(model, x: torch.Tensor, device: torch.device) -> dict[str, Any]:
    """Saved-tensor bytes (peak during a training step, left after it) and CUDA peak allocation."""
    model.train_step({"x": x})  # optimiser state exists before measuring
    out: dict[str, Any] = {}
    saved = SavedTensors()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        model.train_step({"x": x})
    if device.type == "cuda":
        sync(device)
        out["cuda_peak_above_start_bytes"] = torch.cuda.max_memory_allocated(device) - base
    out["saved_for_backward_peak_bytes"] = saved.peak
    out["saved_for_backward_after_step_bytes"] = saved.now
    evaluation = SavedTensors()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    with torch.no_grad(), torch.autograd.graph.saved_tensors_hooks(evaluation.pack, evaluation.unpack):
        model.test_step({"x": x})
    if device.type == "cuda":
        sync(device)
        out["evaluation_cuda_peak_above_start_bytes"] = torch.cuda.max_memory_allocated(device) - base
    out["evaluation_saved_peak_bytes"] = evaluation.peak
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 16], help="T values timed")
    parser.add_argument("--memory-steps", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--iterations", type=int, default=30, help="timed iterative-vae steps per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--z-dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--update-hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", choices=["random", "mnist-10k"], default="random")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/iterative_step_cost.json"))
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    # On random data the weights drift into denormal floats after ~1000 steps, which slows the
    # CPU several-fold (measured: a VAE step from 22 to 48 ms): flush them, so that a model's
    # time does not depend on how long it has been trained
    flush_denormal = torch.set_flush_denormal(True)
    device = resolve_device(args.device)
    xs = make_batches(args.data, 20, args.batch_size, args.data_root, device)

    timing: dict[str, Any] = {}
    for steps in args.steps:
        model, vae = build(steps, args, device), build(None, args, device)  # both fresh
        it_step = lambda x, model=model: model.train_step({"x": x})  # noqa: E731
        vae_step = lambda x, vae=vae: vae.train_step({"x": x})  # noqa: E731
        arms = {"iterative": (it_step, args.iterations), "vae": (vae_step, args.iterations * (steps + 1))}
        wall: dict[str, list[float]] = {name: [] for name in arms}
        cpu: dict[str, list[float]] = {name: [] for name in arms}
        names = list(arms)
        for r in range(args.rounds):
            for name in names[r % 2 :] + names[: r % 2]:
                step, n = arms[name]
                w, c = timed(step, xs, n, args.warmup, device)
                wall[name].append(w)
                cpu[name].append(c)
        ratio = statistics.median(wall["iterative"]) / statistics.median(wall["vae"])
        cpu_ratio = statistics.median(cpu["iterative"]) / statistics.median(cpu["vae"])
        timing[str(steps)] = {
            "iterative_steps_timed": args.iterations,
            "vae_steps_timed": args.iterations * (steps + 1),
            "round_seconds": wall,
            "round_cpu_seconds": cpu,
            "iterative_ms_per_step": 1000 * statistics.median(wall["iterative"]) / args.iterations,
            "vae_ms_per_step": 1000 * statistics.median(wall["vae"]) / (args.iterations * (steps + 1)),
            "ratio_over_t_plus_1_vae_steps": ratio,
            "ratio_over_t_plus_1_vae_steps_cpu_time": cpu_ratio,
            "round_ratios": [a / b for a, b in zip(wall["iterative"], wall["vae"], strict=True)],
            "target_met": ratio <= TARGET_RATIO,
            "target_met_cpu_time": cpu_ratio <= TARGET_RATIO,
        }
        print(
            f"T={steps}: iterative {timing[str(steps)]['iterative_ms_per_step']:.1f} ms/step, vae "
            f"{timing[str(steps)]['vae_ms_per_step']:.1f} ms/step, ratio over T+1 vae steps {ratio:.3f} "
            f"(CPU time {cpu_ratio:.3f}; target <= {TARGET_RATIO})",
            flush=True,
        )

    mem: dict[str, Any] = {}
    for steps in args.memory_steps:
        mem[str(steps)] = memory(build(steps, args, device), xs[0], device)
        print(f"T={steps}: memory {json.dumps(mem[str(steps)])}", flush=True)
    mem["vae"] = memory(build(None, args, device), xs[0], device)
    first, last = str(args.memory_steps[0]), str(args.memory_steps[-1])
    growth = mem[last]["saved_for_backward_peak_bytes"] / mem[first]["saved_for_backward_peak_bytes"]

    result: dict[str, Any] = {
        "benchmark": "iterative_step_cost",
        "command": command_line(argv),
        "settings": {
            "device": str(device),
            "threads": torch.get_num_threads(),
            "batch_size": args.batch_size,
            "data": args.data,
            "architecture": f"MLP 784-{'-'.join(map(str, args.hidden))}-{2 * args.z_dim} encoder, "
            f"{args.z_dim}-{'-'.join(map(str, args.hidden))}-784 decoder (ReLU), Bernoulli; update network "
            f"{4 * args.z_dim}-{'-'.join(map(str, args.update_hidden))}-{4 * args.z_dim} (ELU)",
            "rounds": args.rounds,
            "iterative_steps_per_round": args.iterations,
            "warmup_steps": args.warmup,
            "optimizer": "Adam lr 1e-3",
            "flush_denormal": flush_denormal,
        },
        "timing": timing,
        "target_ratio": TARGET_RATIO,
        "memory": mem,
        "memory_peak_growth_saved_bytes": {"from_T": int(first), "to_T": int(last), "ratio": growth},
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }
    print(f"saved-for-backward peak, T={last} over T={first}: {growth:.3f}")
    out = write_record(result, args.out)
    print("written", out)
    return result


if __name__ == "__main__":
    main()
