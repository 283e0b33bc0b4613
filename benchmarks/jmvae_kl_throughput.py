"""Training throughput of the zoo's JMVAE-kl against a plain PyTorch JMVAE-kl of the identical architecture.

Both models (the JMVAE paper's MNIST setting, sec. 4.2.1, as the zoo builds it with ``arch="mlp"``):
x (1x28x28, Bernoulli logits) and y (10-class one-hot, categorical logits);
joint encoder q(z|x,y): one 512-512 ReLU body per modality (784-512-512 and 10-512-512), the two
feature vectors concatenated (1024) and a linear head to 128 (the paper's (D512R-D512R,
D512R-D512R) then f_mu, f_sigma), -> (mu, softplus(.) + 1e-4); unimodal encoders q(z|x)
784-512-512-128 and q(z|y) 10-512-512-128; decoders 64-512-512-784 and 64-512-512-10; z = 64;
loss = batch mean of [BCE(x) + CE(y) + KL(q(z|x,y)||N(0,I)) + KL(q(z|x,y)||q(z|x))
+ KL(q(z|x,y)||q(z|y))] (eq. 10 with alpha = beta = 1); Adam lr 1e-3, batch 100.
Both models train with the same optimiser, fused Adam (``fused=True``, lr 1e-3, default betas), as the
zoo's models do.

The zoo model is trained through ``JMVAEKL.train_step`` (its Pixyz loss expression). Before timing,
the zoo's weights are copied into the plain model and the two are compared on one batch: the three KL
terms, the reconstruction at the posterior mean and the full one-sample loss with the same seed. A
mismatch aborts the benchmark. Rounds alternate which model runs first, warm-up steps are discarded,
and the medians over rounds of wall and process CPU time are reported (see ``vae_throughput.py``,
whose timing helpers are reused; the 1.05 target is on CPU time). The zoo trains through
``train_step(batch, check=False)``, the Trainer's step; ``pure_guarded`` is the plain model with the
zoo's non-finite guard written in PyTorch (what that guarantee costs apart from Pixyz).

    python benchmarks/jmvae_kl_throughput.py --threads 1 --steps 50 --rounds 5
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import pixyz_zoo  # noqa: F401  (turns Pixyz's parameter cache off before pixyz.distributions loads)
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.datasets.digits import DIGIT_LABEL
from pixyz_zoo.datasets.mnist import IMAGE_28X28
from pixyz_zoo.models import JMVAEKL
from pixyz_zoo.training import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402
from vae_throughput import (  # noqa: E402
    TARGET_RATIO,
    guard_ratios,
    linear_calls_per_step,
    mlp,
    package_of,
    plain_step,
    print_summary,
    step_quartiles,
    time_steps,
)

ROOT = Path(__file__).resolve().parents[1]
Batch = dict[str, torch.Tensor]


# ---------------------------------------------------------------------- the plain PyTorch JMVAE-kl
def gaussian_kl(loc_p, scale_p, loc_q, scale_q) -> torch.Tensor:
    """KL(N(loc_p, scale_p) || N(loc_q, scale_q)) summed over features."""
    ratio = (scale_p / scale_q).pow(2)
    return 0.5 * (ratio + ((loc_p - loc_q) / scale_q).pow(2) - 1.0 - ratio.log()).sum(1)


class PureJMVAEKL(nn.Module):
    """JMVAE-kl in plain PyTorch: one joint-encoder pass, one sample, analytic KLs."""

    def __init__(self, z_dim: int = 64, hidden: tuple[int, ...] = (512, 512)) -> None:
        super().__init__()
        self.body_x = nn.Sequential(mlp([784, *hidden]), nn.ReLU())
        self.body_y = nn.Sequential(mlp([10, *hidden]), nn.ReLU())
        self.head = nn.Linear(2 * hidden[-1], 2 * z_dim)
        self.enc_x = mlp([784, *hidden, 2 * z_dim])
        self.enc_y = mlp([10, *hidden, 2 * z_dim])
        self.dec_x = mlp([z_dim, *hidden, 784])
        self.dec_y = mlp([z_dim, *hidden, 10])

    @staticmethod
    def gaussian(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = features.chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-4

    def joint(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.body_x(x), self.body_y(y)], 1))

    def terms(
        self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-example terms; ``z`` defaults to one reparameterised sample of q(z|x,y)."""
        x = x.flatten(1)
        loc, scale = self.gaussian(self.joint(x, y))
        loc_x, scale_x = self.gaussian(self.enc_x(x))
        loc_y, scale_y = self.gaussian(self.enc_y(y))
        if z is None:
            z = loc + torch.randn_like(loc) * scale
        return {
            "nll_x": F.binary_cross_entropy_with_logits(self.dec_x(z), x, reduction="none").sum(1),
            "nll_y": -(F.log_softmax(self.dec_y(z), dim=1) * y).sum(1),
            "kl_prior": 0.5 * (loc.pow(2) + scale.pow(2) - 1.0 - 2.0 * scale.log()).sum(1),
            "kl_x": gaussian_kl(loc, scale, loc_x, scale_x),
            "kl_y": gaussian_kl(loc, scale, loc_y, scale_y),
        }

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(self.terms(x, y).values()).mean()

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.gaussian(self.joint(x.flatten(1), y))[0]


def copy_zoo_weights(zoo: JMVAEKL, pure: PureJMVAEKL) -> None:
    """Load the zoo model's networks into the plain model (same layer layout)."""
    pure.body_x[0].load_state_dict(zoo.q.network.bodies[0][0].net.state_dict())
    pure.body_y[0].load_state_dict(zoo.q.network.bodies[1][0].net.state_dict())
    pure.head.load_state_dict(zoo.q.network.head.state_dict())
    pure.enc_x.load_state_dict(zoo.experts["x"].network.net.state_dict())
    pure.enc_y.load_state_dict(zoo.experts["y"].network.net.state_dict())
    pure.dec_x.load_state_dict(zoo.decoders["x"].network[0].net.state_dict())
    pure.dec_y.load_state_dict(zoo.decoders["y"].network[0].net.state_dict())


# ---------------------------------------------------------------------- equivalence check
@torch.no_grad()
def check_same_loss(zoo: JMVAEKL, pure: PureJMVAEKL, batch: Batch, seed: int = 123) -> dict[str, float]:
    """Compare the two models' terms and losses for the same parameters; raise if they differ."""
    from pixyz.losses import KullbackLeibler, LogProb

    copy_zoo_weights(zoo, pure)
    zoo.distributions.eval()
    x, y = batch["x"], batch["y"]
    z_mean = zoo.q.sample_mean(batch)
    nll_zoo = -(LogProb(zoo.decoders["x"]) + LogProb(zoo.decoders["y"])).eval({**batch, "z": z_mean})
    pure_terms = pure.terms(x, y, z=pure.posterior_mean(x, y))
    pairs = {
        "kl_prior": (KullbackLeibler(zoo.q, zoo.prior).eval(batch), pure_terms["kl_prior"]),
        "kl_to_q_x": (KullbackLeibler(zoo.q, zoo.experts["x"]).eval(batch), pure_terms["kl_x"]),
        "kl_to_q_y": (KullbackLeibler(zoo.q, zoo.experts["y"]).eval(batch), pure_terms["kl_y"]),
        "nll_at_posterior_mean": (nll_zoo, pure_terms["nll_x"] + pure_terms["nll_y"]),
    }
    torch.manual_seed(seed)
    loss_zoo = zoo.loss_cls.eval({**batch, **zoo.hyperparameters})
    torch.manual_seed(seed)
    pairs["loss_same_seed"] = (loss_zoo, pure.loss(x, y))
    report = {}
    for name, (a, b) in pairs.items():
        a, b = float(a.mean()), float(b.mean())
        report[f"{name}_zoo"], report[f"{name}_pure"] = a, b
        if abs(a - b) > 1e-4 * max(1.0, abs(a)):
            raise SystemExit(
                f"the zoo JMVAE-kl and the plain one compute different {name}: zoo {a:.6f} vs plain "
                f"{b:.6f}. The timing would compare different computations; fix PureJMVAEKL first"
            )
    return report


# ---------------------------------------------------------------------- data and profile
def make_batches(
    source: str, n: int, batch_size: int, data_root: str | None, device: torch.device
) -> list[Batch]:
    """``n`` batches {x: (B, 1, 28, 28) binary, y: (B, 10) one-hot} on ``device``."""
    g = torch.Generator().manual_seed(0)
    if source == "mnist-10k":
        data = load_dataset("mnist-10k", "train", root=data_root, binarize="dynamic")
        it = data.batches(batch_size, shuffle=True, generator=g, drop_last=True)
        batches = [next(it) for _ in range(min(n, data.num_batches(batch_size, drop_last=True)))]
    else:
        batches = [
            {
                "x": torch.bernoulli(torch.full((batch_size, 1, 28, 28), 0.5), generator=g),
                "y": F.one_hot(torch.randint(0, 10, (batch_size,), generator=g), 10).float(),
            }
            for _ in range(n)
        ]
    return [{k: v.to(device) for k, v in b.items()} for b in batches]


def profile_zoo(zoo: JMVAEKL, batches: list[Batch], steps: int, top: int = 25) -> dict[str, Any]:
    """cProfile of ``steps`` zoo steps: own-time share per package and the top functions."""
    for batch in batches[:5]:
        zoo.train_step(batch)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(steps):
        zoo.train_step(batches[i % len(batches)])
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    packages: dict[str, float] = {}
    for (file, _line, func), (_cc, _n, tottime, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        group = package_of(file, func)
        packages[group] = packages.get(group, 0.0) + tottime / total
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    return {
        "steps": steps,
        "total_seconds": total,
        "own_time_share_by_package": dict(sorted(packages.items(), key=lambda kv: -kv[1])),
        "pstats_text": text.getvalue(),
    }


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=10, help="discarded steps before each timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--data", choices=["random", "mnist-10k"], default="random")
    parser.add_argument("--data-root", default=None, help="data root for --data mnist-10k")
    parser.add_argument("--profile", type=int, default=0, help="also cProfile this many zoo steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/jmvae_kl_throughput.json"))
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # training on random data breeds denormals, which slow a CPU 2x
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    zoo = JMVAEKL({"x": IMAGE_28X28, "y": DIGIT_LABEL}, z_dim=64, hidden=(512, 512), lr=1e-3).to(device)
    pure = PureJMVAEKL(64, (512, 512)).to(device)
    batches = make_batches(args.data, 50, args.batch_size, args.data_root, device)

    equivalence = check_same_loss(zoo, pure, batches[0])
    print("same terms and loss for the same parameters:", json.dumps(equivalence))
    copy_zoo_weights(zoo, pure)  # both start from the same weights
    guarded = PureJMVAEKL(64, (512, 512)).to(device)
    copy_zoo_weights(zoo, guarded)

    def zoo_step(batch: Batch) -> torch.Tensor:
        return zoo.train_step(batch, check=False)  # the Trainer's step: no read of the loss

    pure_step = plain_step(pure, lambda batch: pure.loss(batch["x"], batch["y"]))

    arms: dict[str, Callable[[Batch], Any]] = {
        "zoo": zoo_step,
        "pure": pure_step,
        "pure_guarded": plain_step(guarded, lambda batch: guarded.loss(batch["x"], batch["y"]), guarded=True),
    }
    linear_calls = {
        "zoo": linear_calls_per_step(zoo.distributions, zoo_step, batches[0]),
        "pure": linear_calls_per_step(pure, pure_step, batches[0]),
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    cpu_times: dict[str, list[float]] = {name: [] for name in arms}
    step_cpu: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # alternate who goes first
        for name in order:
            wall, cpu = time_steps(arms[name], batches, args.steps, args.warmup, device, step_cpu[name])
            times[name].append(wall)
            cpu_times[name].append(cpu)
        print(
            f"round {r + 1}/{args.rounds} ({args.steps} steps each, {order[0]} first): "
            f"zoo {times['zoo'][-1]:.3f}s, pure {times['pure'][-1]:.3f}s, ratio "
            f"{times['zoo'][-1] / times['pure'][-1]:.3f} (CPU time "
            f"{cpu_times['zoo'][-1] / cpu_times['pure'][-1]:.3f})",
            flush=True,
        )

    zoo_t, pure_t = statistics.median(times["zoo"]), statistics.median(times["pure"])
    ratio = zoo_t / pure_t
    ratios = guard_ratios(cpu_times)
    cpu_ratio = ratios["ratio_zoo_over_pure_cpu_time"]
    result: dict[str, Any] = {
        "benchmark": "jmvae_kl_throughput",
        "command": command_line(argv),
        "settings": {
            "device": str(device),
            "threads": torch.get_num_threads(),
            "steps_per_round": args.steps,
            "warmup_steps": args.warmup,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "data": args.data,
            "architecture": (
                "joint encoder: bodies 784-512-512 and 10-512-512, concatenated, linear head "
                "1024-128; q(z|x) 784-512-512-128; "
                "q(z|y) 10-512-512-128; decoders 64-512-512-784 (Bernoulli) and 64-512-512-10 "
                "(categorical); ReLU"
            ),
            "z_dim": 64,
            "loss": "eq. 10, alpha = beta = 1",
            "optimizer": "Adam lr 1e-3, fused (both models)",
            "zoo_step": "train_step(batch, check=False), as the Trainer runs it (no host read of the loss)",
            "flush_denormal": True,
        },
        "equivalence_check": equivalence,
        "linear_forward_calls_per_step": linear_calls,
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
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }
    if args.profile:
        result["profile"] = profile_zoo(zoo, batches, args.profile)
        print(result["profile"]["pstats_text"])
    print_summary(result)
    out = write_record(result, args.out)
    print("written", out)
    return result


if __name__ == "__main__":
    main()
