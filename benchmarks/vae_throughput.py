"""Training throughput of the zoo's VAE against a plain PyTorch VAE of the identical architecture.

Both models: x (1x28x28, Bernoulli logits) -> MLP 784-512-512-128 -> (mu, softplus(.) + 1e-4)
-> one reparameterised z (64) -> MLP 64-512-512-784 -> logits; loss = mean over the batch of
[BCE-with-logits summed over pixels + analytic KL(N(mu, sigma) || N(0, I))]; Adam, lr 1e-3.
Both models train with the same optimiser, fused Adam (``fused=True``, lr 1e-3, default betas), as the
zoo's models do.

The zoo model is trained through ``VAE.train_step`` (its Pixyz loss expression); the plain model
is written below. Before timing, the zoo's weights are copied into the plain model and the two
losses are compared on one batch (KL term, reconstruction term at the posterior mean, and the
full one-sample loss with the same seed): a mismatch aborts the benchmark, so the timing always
compares identical computations. The zoo trains through ``train_step(batch, check=False)``, the
step the Trainer runs. Rounds alternate which model runs first, warm-up steps are discarded and the
medians over rounds are reported (wall and process CPU time; the 1.05 target is on CPU time), so
machine noise hits both sides. A third arm, ``pure_guarded``, is the plain VAE with the zoo's
guarantee written in plain PyTorch (no update when the loss or the gradients are NaN/inf, decided on
the device): it tells what that guarantee costs apart from Pixyz. Denormal floats are flushed.

    python benchmarks/vae_throughput.py --steps 300 --rounds 5
    python benchmarks/vae_throughput.py --device cuda --steps 1000 \
        --out benchmarks/results/vae_throughput_cuda.json

``--profile N`` adds a cProfile of N zoo steps (top functions by own and cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import pixyz_zoo  # noqa: F401  (turns Pixyz's parameter cache off before pixyz.distributions loads)
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.datasets.mnist import IMAGE_28X28
from pixyz_zoo.models import VAE
from pixyz_zoo.training import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.05
IMAGE_SHAPE = (1, 28, 28)


# ---------------------------------------------------------------------- the plain PyTorch VAE
def mlp(sizes: list[int]) -> nn.Sequential:
    """``Linear -> ReLU`` between consecutive sizes, no activation after the last Linear."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i + 2 < len(sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class PureVAE(nn.Module):
    """The same VAE in plain PyTorch: one encoder pass, one sample, analytic KL."""

    def __init__(self, x_dim: int = 784, z_dim: int = 64, hidden: tuple[int, ...] = (512, 512)) -> None:
        super().__init__()
        self.encoder = mlp([x_dim, *hidden, 2 * z_dim])
        self.decoder = mlp([z_dim, *hidden, x_dim])
        self.min_scale = 1e-4

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale of ``q(z|x)``."""
        loc, raw = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        return loc, F.softplus(raw) + self.min_scale

    def terms(self, x: torch.Tensor, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (reconstruction NLL, KL); ``z`` defaults to one reparameterised sample."""
        loc, scale = self.posterior(x)
        if z is None:
            z = loc + torch.randn_like(loc) * scale
        logits = self.decoder(z)
        nll = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1.0 - 2.0 * scale.log()).sum(1)
        return nll, kl

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        nll, kl = self.terms(x)
        return (nll + kl).mean()

    def loss_encoder_twice(self, x: torch.Tensor) -> torch.Tensor:
        """The same loss with the KL computed from a second encoder pass (diagnostic arm).

        This mirrors what Pixyz does: ``Expectation`` samples z from q(z|x) (one encoder pass) and
        ``AnalyticalKullbackLeibler`` calls ``q.set_dist`` again (a second encoder pass).
        """
        nll, _ = self.terms(x)
        loc, scale = self.posterior(x)
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1.0 - 2.0 * scale.log()).sum(1)
        return (nll + kl).mean()


def copy_zoo_weights(zoo: VAE, pure: PureVAE) -> None:
    """Load the zoo model's encoder and decoder weights into the plain model."""
    pure.encoder.load_state_dict(zoo.q.network.net.state_dict())
    pure.decoder.load_state_dict(zoo.p_x.network[0].net.state_dict())


# ---------------------------------------------------------------------- equivalence check
@torch.no_grad()
def check_same_loss(zoo: VAE, pure: PureVAE, x: torch.Tensor, seed: int = 123) -> dict[str, float]:
    """Compare the two models' losses for the same parameters; raise if they differ."""
    from pixyz.losses import KullbackLeibler, LogProb

    copy_zoo_weights(zoo, pure)
    zoo.distributions.eval()
    batch = {"x": x}
    kl_zoo = KullbackLeibler(zoo.q, zoo.prior).eval(batch)
    z_mean = zoo.q.sample_mean(batch)
    nll_zoo = -LogProb(zoo.p_x).eval({"x": x, "z": z_mean})
    nll_pure, kl_pure = pure.terms(x, z=pure.posterior(x)[0])
    torch.manual_seed(seed)
    loss_zoo = zoo.loss_cls.eval({**batch, **zoo.hyperparameters})
    torch.manual_seed(seed)
    loss_pure = pure.loss(x)
    pairs = {
        "kl": (kl_zoo.mean(), kl_pure.mean()),
        "nll_at_posterior_mean": (nll_zoo.mean(), nll_pure.mean()),
        "loss_same_seed": (loss_zoo, loss_pure),
    }
    report = {}
    for name, (a, b) in pairs.items():
        a, b = float(a), float(b)
        report[f"{name}_zoo"], report[f"{name}_pure"] = a, b
        if abs(a - b) > 1e-4 * max(1.0, abs(a)):
            raise SystemExit(
                f"the zoo VAE and the plain VAE compute different {name}: zoo {a:.6f} vs plain {b:.6f}. "
                "The architectures or losses are not identical, so the timing would compare different "
                "computations; fix PureVAE (or the zoo model) before benchmarking"
            )
    return report


# ---------------------------------------------------------------------- data and timing
def make_batches(source: str, n: int, batch_size: int, data_root: str | None, device: torch.device):
    """``n`` binary batches of shape (batch_size, 1, 28, 28) on ``device``."""
    g = torch.Generator().manual_seed(0)
    if source == "mnist-10k":
        data = load_dataset("mnist-10k", "train", root=data_root, binarize="dynamic")
        it = data.batches(batch_size, shuffle=True, generator=g, drop_last=True)
        xs = [next(it)["x"] for _ in range(min(n, data.num_batches(batch_size, drop_last=True)))]
    else:
        xs = [torch.bernoulli(torch.full((batch_size, *IMAGE_SHAPE), 0.5), generator=g) for _ in range(n)]
    return [x.to(device) for x in xs]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    step: Callable[[torch.Tensor], float],
    xs: list[torch.Tensor],
    steps: int,
    warmup: int,
    device: torch.device,
    step_cpu: list[float] | None = None,
) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) for ``steps`` training steps after ``warmup`` discarded ones;
    on the CPU, each step's own CPU time is appended to ``step_cpu`` when given.

    On a shared CPU machine the CPU time is the robust measure: time slices taken by other
    processes inflate the wall time of whichever model happens to run, not its CPU time.
    """
    for i in range(warmup):
        step(xs[i % len(xs)])
    sync(device)
    per_step = step_cpu if device.type == "cpu" else None  # a CUDA step's CPU time is its launches
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        start = time.thread_time() if per_step is not None else 0.0
        step(xs[i % len(xs)])
        if per_step is not None:
            per_step.append(time.thread_time() - start)
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def step_quartiles(step_cpu: dict[str, list[float]], reference: str) -> dict[str, Any]:
    """The lower quartile of each arm's per-step CPU times and its ratio to ``reference``'s.

    A step that another job on the machine slows (memory bandwidth, caches: these do not show as CPU
    time taken away) only gets longer, so the low quantiles of many single steps are the least
    disturbed measure; the medians over rounds, the record's main figure, move by several percent
    between runs on a shared machine. Empty on CUDA (no per-step times)."""
    if not all(step_cpu.values()):
        return {}
    quartile = {arm: statistics.quantiles(times, n=4)[0] for arm, times in step_cpu.items()}
    return {
        "steps_per_arm": {arm: len(times) for arm, times in step_cpu.items()},
        "lower_quartile_cpu_ms_per_step": {arm: value * 1e3 for arm, value in quartile.items()},
        "ratio_to_" + reference: {arm: value / quartile[reference] for arm, value in quartile.items()},
    }


def guarded_step(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters: list[torch.Tensor]
) -> None:
    """``optimizer.step()`` (fused Adam) with the zoo's guarantee written in plain PyTorch: no update
    when the loss or the gradients' total norm is NaN/inf, decided on the device (``found_inf``, as
    ``torch.amp.GradScaler`` feeds it), with no host sync. The reference for what that guarantee costs."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)  # as the zoo's guard
    health = torch.stack([loss.detach().float(), norm.float()])
    optimizer.found_inf = (~torch.isfinite(health).all()).float()  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]


def plain_step(
    model: nn.Module, loss: Callable[[Any], torch.Tensor], guarded: bool = False
) -> Callable[[Any], torch.Tensor]:
    """A training step of a plain model with its own fused Adam (lr 1e-3, the zoo's optimiser):
    ``loss(batch)``, backward, step (``guarded``: through :func:`guarded_step`); no read of the loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    parameters = list(model.parameters())

    def step(batch: Any) -> torch.Tensor:
        model.train()
        optimizer.zero_grad()
        value = loss(batch)
        value.backward()
        if guarded:
            guarded_step(optimizer, value, parameters)
        else:
            optimizer.step()
        return value.detach()

    return step


def guard_ratios(cpu_times: dict[str, list[float]]) -> dict[str, float]:
    """The zoo, the plain model and the plain model with the zoo's guard against each other (medians
    of CPU time over rounds)."""
    zoo, pure, guarded = (statistics.median(cpu_times[arm]) for arm in ("zoo", "pure", "pure_guarded"))
    return {
        "ratio_zoo_over_pure_cpu_time": zoo / pure,
        "ratio_pure_guarded_over_pure_cpu_time": guarded / pure,
        "ratio_zoo_over_pure_guarded_cpu_time": zoo / guarded,
    }


def print_summary(result: dict[str, Any]) -> None:
    """Print a zoo-against-plain record's steps/s, its ratios (the target's verdict on the CPU-time
    ratio) and the ratios of the single steps' lower quartiles."""
    cpu_ratio = result["ratio_zoo_over_pure_cpu_time"]
    verdict = "met" if cpu_ratio <= TARGET_RATIO else "NOT met"
    print(
        f"zoo {result['zoo_steps_per_s']:.1f} steps/s, pure {result['pure_steps_per_s']:.1f} steps/s, "
        f"ratio zoo/pure {result['ratio_zoo_over_pure']:.3f}; CPU-time ratio {cpu_ratio:.3f} (target <= "
        f"{TARGET_RATIO}: {verdict}); pure with the zoo's non-finite guard / pure "
        f"{result['ratio_pure_guarded_over_pure_cpu_time']:.3f} (CPU time)"
    )
    single = result["single_steps"]
    if single:
        shown = ", ".join(f"{arm} {value:.3f}" for arm, value in single["ratio_to_pure"].items())
        print(f"lower quartile of single steps' CPU time, ratio to pure: {shown}")


def linear_calls_per_step(module: nn.Module, step: Callable[[torch.Tensor], float], x: torch.Tensor) -> int:
    """How many ``nn.Linear`` forward passes one training step runs."""
    count = [0]

    def hook(*_: Any) -> None:
        count[0] += 1

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Linear)]
    try:
        step(x)
    finally:
        for h in handles:
            h.remove()
    return count[0]


def package_of(file: str, func: str) -> str:
    """Group a profiled function by package (``torch ops (C++)`` for builtins)."""
    if file == "~":
        return "torch ops and builtins (C/C++)"
    for key in ("sympy", "pixyz_zoo"):
        if f"/{key}/" in file:
            return key
    for key in ("pixyz", "torch"):
        if f"/{key}/" in file:
            return f"{key}/" + file.split(f"/{key}/", 1)[1].split("/")[0].removesuffix(".py")
    return "other Python"


def profile_zoo(zoo: VAE, xs: list[torch.Tensor], steps: int, top: int = 25) -> dict[str, Any]:
    """cProfile of ``steps`` zoo training steps: top functions by own time and by cumulative time."""
    for x in xs[:5]:
        zoo.train_step({"x": x})
    prof = cProfile.Profile()
    prof.enable()
    for i in range(steps):
        zoo.train_step({"x": xs[i % len(xs)]})
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    packages: dict[str, float] = {}
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        group = package_of(file, func)
        packages[group] = packages.get(group, 0.0) + tottime / total
        short = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        rows.append(
            {
                "function": f"{short}:{line}({func})",
                "calls_per_step": ncalls / steps,
                "own_share": tottime / total,
                "cumulative_share": cumtime / total,
            }
        )
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    return {
        "steps": steps,
        "total_seconds": total,
        "own_time_share_by_package": dict(sorted(packages.items(), key=lambda kv: -kv[1])),
        "by_own_time": sorted(rows, key=lambda r: -r["own_share"])[:top],
        "by_cumulative_time": sorted(rows, key=lambda r: -r["cumulative_share"])[:top],
        "pstats_text": text.getvalue(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=20, help="discarded steps before each timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--data", choices=["random", "mnist-10k"], default="random")
    parser.add_argument("--data-root", default=None, help="data root for --data mnist-10k")
    parser.add_argument("--profile", type=int, default=0, help="also cProfile this many zoo steps")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also time a plain VAE that runs the encoder twice per step, as Pixyz's KL does",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/vae_throughput.json"))
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # training on random data breeds denormals, which slow a CPU 2x
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    zoo = VAE({"x": IMAGE_28X28}, z_dim=64, hidden=(512, 512), lr=1e-3).to(device)
    pure = PureVAE(784, 64, (512, 512)).to(device)
    xs = make_batches(args.data, 50, args.batch_size, args.data_root, device)

    equivalence = check_same_loss(zoo, pure, xs[0])
    print("same loss for the same parameters:", json.dumps(equivalence))
    copy_zoo_weights(zoo, pure)  # both start from the same weights
    guarded = PureVAE(784, 64, (512, 512)).to(device)
    copy_zoo_weights(zoo, guarded)

    def zoo_step(x: torch.Tensor) -> torch.Tensor:
        return zoo.train_step({"x": x}, check=False)  # the Trainer's step: no read of the loss

    pure_step = plain_step(pure, pure.loss)

    arms: dict[str, Callable[[torch.Tensor], Any]] = {
        "zoo": zoo_step,
        "pure": pure_step,
        "pure_guarded": plain_step(guarded, guarded.loss, guarded=True),
    }
    diagnosis: dict[str, Any] = {}
    if args.diagnose:
        twice = PureVAE(784, 64, (512, 512)).to(device)
        copy_zoo_weights(zoo, twice)
        twice_step = plain_step(twice, twice.loss_encoder_twice)
        arms["pure_encoder_twice"] = twice_step
        diagnosis["linear_forward_calls_per_step"] = {
            "zoo": linear_calls_per_step(zoo.distributions, zoo_step, xs[0]),
            "pure": linear_calls_per_step(pure, pure_step, xs[0]),
            "pure_encoder_twice": linear_calls_per_step(twice, twice_step, xs[0]),
        }

    times: dict[str, list[float]] = {name: [] for name in arms}
    cpu_times: dict[str, list[float]] = {name: [] for name in arms}
    step_cpu: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            wall, cpu = time_steps(arms[name], xs, args.steps, args.warmup, device, step_cpu[name])
            times[name].append(wall)
            cpu_times[name].append(cpu)
        shown = ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names)
        print(
            f"round {r + 1}/{args.rounds} ({args.steps} steps each): {shown}, "
            f"ratio zoo/pure {times['zoo'][-1] / times['pure'][-1]:.3f} "
            f"(CPU time {cpu_times['zoo'][-1] / cpu_times['pure'][-1]:.3f})",
            flush=True,
        )

    zoo_t, pure_t = statistics.median(times["zoo"]), statistics.median(times["pure"])
    ratio = zoo_t / pure_t
    ratios = guard_ratios(cpu_times)
    cpu_ratio = ratios["ratio_zoo_over_pure_cpu_time"]
    if args.diagnose:
        twice_t = statistics.median(times["pure_encoder_twice"])
        diagnosis.update(
            {
                "pure_encoder_twice_steps_per_s": args.steps / twice_t,
                "ratio_pure_encoder_twice_over_pure": twice_t / pure_t,
                "ratio_pure_encoder_twice_over_pure_cpu_time": statistics.median(
                    cpu_times["pure_encoder_twice"]
                )
                / statistics.median(cpu_times["pure"]),
                "ratio_zoo_over_pure_encoder_twice": zoo_t / twice_t,
                "share_of_zoo_overhead_from_second_encoder_pass": (twice_t - pure_t) / (zoo_t - pure_t)
                if zoo_t > pure_t
                else None,
            }
        )
    result: dict[str, Any] = {
        "benchmark": "vae_throughput",
        "command": command_line(argv),
        "settings": {
            "device": str(device),
            "threads": torch.get_num_threads(),
            "steps_per_round": args.steps,
            "warmup_steps": args.warmup,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "data": args.data,
            "architecture": "MLP 784-512-512-128 encoder, 64-512-512-784 decoder, ReLU",
            "z_dim": 64,
            "optimizer": "Adam lr 1e-3, fused (both models)",
            "zoo_step": "train_step(batch, check=False), as the Trainer runs it (no host read of the loss)",
            "flush_denormal": True,
        },
        "equivalence_check": equivalence,
        "round_seconds": times,
        "round_ratios": [z / p for z, p in zip(times["zoo"], times["pure"], strict=True)],
        "round_cpu_seconds": cpu_times,
        "round_cpu_ratios": [z / p for z, p in zip(cpu_times["zoo"], cpu_times["pure"], strict=True)],
        "zoo_steps_per_s": args.steps / zoo_t,
        "pure_steps_per_s": args.steps / pure_t,
        "ratio_zoo_over_pure": ratio,
        **ratios,
        "single_steps": step_quartiles(step_cpu, "pure"),
        "target_ratio": TARGET_RATIO,
        "target_on": "ratio_zoo_over_pure_cpu_time",
        "target_met": cpu_ratio <= TARGET_RATIO,
        "diagnosis": diagnosis or None,
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }
    if args.profile:
        result["profile"] = profile_zoo(zoo, xs, args.profile)
        print(result["profile"]["pstats_text"])
    print_summary(result)
    out = write_record(result, args.out)
    print("written", out)
    return result


if __name__ == "__main__":
    main()
