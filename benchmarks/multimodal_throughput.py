"""Training throughput of the zoo's multimodal VAEs against a plain PyTorch MoPoE of identical architecture.

The reference is a MoPoE (Sutter et al. 2021) written below in plain PyTorch (``nn.Module``s and
closed forms, no Pixyz), built from deep copies of the zoo MoPoE's own expert and decoder
networks, so both start from the same weights:

- one Gaussian expert ``q~(z|m) = N(mu_m, sigma_m)`` per modality (the network's output split in
  half, ``softplus(.) + 1e-4`` for the scale);
- for every non-empty subset ``S`` the product of its experts without a prior expert
  (precision-weighted mean, ``sigma_S = (sum_m sigma_m^-2)^-1/2``; a singleton is its expert),
  mixed uniformly: ``q(z|X) = 1/(2^M-1) sum_S q~(z|S)``;
- ``z``: every component sampled with the reparameterisation trick in subset order, then one
  component per example chosen with ``torch.multinomial`` (the random draws of the zoo's
  ``MixtureOfExperts.sample``, in the same order, so a shared seed gives the same ``z``);
- loss = batch mean of ``-sum_m lambda_m log p(m|z) + beta 1/(2^M-1) sum_S KL(q~(z|S)||N(0,I))``
  with Bernoulli logits, Laplace of fixed scale and categorical (over the last axis, i.e. per
  character of the text) likelihoods; Adam with the zoo's learning rate.

The plain MoPoE trains with the zoo's optimiser, fused Adam (``fused=True``, same lr, default betas).

Before timing, the plain MoPoE is checked against the zoo MoPoE on one batch: each subset's KL,
the weighted reconstruction at the joint posterior mean, the loss of ``model.test_step`` with the
same seed, and the losses of two successive ``train_step`` calls with the same seeds (the second
one after an Adam update on each side, so the gradients are checked too). A relative difference
above 1e-4 aborts the run.

Then the training steps of the plain MoPoE and of the zoo's ``mopoe``, ``mvtcae``, ``mvae``,
``jmvae-kl`` and ``mmvae`` (k = 1 and k = 2) are timed in rounds within one process: every round
runs every model (the order rotates between rounds), discards ``--warmup`` steps and times
``--steps`` steps, recording wall and process CPU time. Per model the medians over rounds are
reported with their ratio to the plain MoPoE. The zoo models train through
``train_step(batch, check=False)``, the Trainer's step (no host read of the loss), the plain MoPoE
without a read either; ``plain-mopoe-guarded`` is the plain MoPoE with the zoo's non-finite guard
written in PyTorch (what that guarantee costs apart from Pixyz). Denormal floats are flushed.
Only the MoPoE ratio compares identical computations (target <= 1.05, CPU time); the other
models optimise different objectives with other networks in the loop (e.g. MVAE's four ELBOs,
MMVAE's k samples per expert through every decoder), so their ratios say how much a step of
each costs, not how much overhead it has.
``--paired-steps N`` adds N single steps of the plain and the zoo MoPoE alternating step by step
(median of the per-pair CPU-time ratios: least moved by other jobs on a shared CPU, but each step
starts with the other model's tensors in the caches, which pulls the ratio towards 1);
``--profile N`` adds a cProfile of N steps of each MoPoE. Timing helpers come from
``vae_throughput.py``, the cProfile summary from ``jmvae_kl_throughput.py``.

    OMP_NUM_THREADS=1 python benchmarks/multimodal_throughput.py --threads 1 --paired-steps 60
    python benchmarks/multimodal_throughput.py --threads 1 --dataset trimodal-mnist \\
        --data-root /work/shared/data --out benchmarks/results/multimodal_throughput_mnist.json
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
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
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import JMVAEKL, MMVAE, MVAE, MVTCAE, MoPoE, ZooModel
from pixyz_zoo.models.jmvae import dimension_weights, weighted_log_likelihood
from pixyz_zoo.models.mixtures import nonempty_subsets
from pixyz_zoo.training import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_record import command_line, write_record  # noqa: E402
from jmvae_kl_throughput import profile_zoo  # noqa: E402
from vae_throughput import (  # noqa: E402
    TARGET_RATIO,
    guarded_step,
    linear_calls_per_step,
    step_quartiles,
    time_steps,
)

ROOT = Path(__file__).resolve().parents[1]
Batch = dict[str, torch.Tensor]
PLAIN = "plain-mopoe"
GUARDED = "plain-mopoe-guarded"  # with the zoo's non-finite guard, in PyTorch
ZOO_ARMS = ("mopoe", "mvtcae", "mvae", "jmvae-kl", "mmvae-k1", "mmvae-k2")


# ---------------------------------------------------------------------- the plain PyTorch MoPoE
def gaussian(features: torch.Tensor, min_scale: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale from a network's ``2 z`` features (the zoo's ``GaussianEncoder``)."""
    loc, raw = features.chunk(2, dim=-1)
    return loc, F.softplus(raw) + min_scale


class PlainMoPoE(nn.Module):
    """MoPoE in plain PyTorch, with deep copies of the zoo MoPoE's networks and its own Adam.

    ``encoders[m]`` maps ``m`` to ``2 z`` features, ``decoders[m]`` maps ``z`` to the modality's
    shape (Bernoulli logits, Laplace location or categorical logits over the last axis).
    """

    def __init__(self, zoo: MoPoE, lr: float) -> None:
        super().__init__()
        self.names = list(zoo.modalities)
        self.modalities: dict[str, Modality] = dict(zoo.modalities)
        self.encoders = nn.ModuleDict({m: copy.deepcopy(zoo.experts[m].network) for m in self.names})
        self.decoders = nn.ModuleDict({m: copy.deepcopy(zoo.decoders[m].network) for m in self.names})
        self.likelihood_weights = {m: float(zoo.likelihood_weights.get(m, 1.0)) for m in self.names}
        self.laplace_scale = {
            m: float(zoo.decoders[m].fixed_scale)
            for m in self.names
            if self.modalities[m].likelihood == "laplace"
        }
        if any(self.modalities[m].likelihood == "gaussian" for m in self.names):
            raise ValueError("PlainMoPoE implements the bernoulli, laplace and categorical likelihoods")
        self.beta = float(zoo.beta)
        self.subsets = [[self.names.index(m) for m in s] for s in nonempty_subsets(self.names)]
        w = torch.full((len(self.subsets),), 1.0 / len(self.subsets))
        self.register_buffer("mixture_weights", (w / w.sum()) / (w / w.sum()).sum())
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr, fused=True)  # the zoo's optimiser

    def subset_posteriors(self, batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(loc, scale)`` of ``q~(z|S)`` for every non-empty subset ``S``, in subset order."""
        experts = [gaussian(self.encoders[m](batch[m])) for m in self.names]
        precisions = [scale.pow(-2) for _, scale in experts]
        weighted = [p * loc for p, (loc, _) in zip(precisions, experts, strict=True)]
        out = []
        for subset in self.subsets:
            if len(subset) == 1:
                out.append(experts[subset[0]])
                continue
            precision, loc = precisions[subset[0]], weighted[subset[0]]
            for i in subset[1:]:
                precision, loc = precision + precisions[i], loc + weighted[i]
            out.append((loc / precision, precision.rsqrt()))
        return out

    def negative_log_likelihood(self, batch: Batch, z: torch.Tensor) -> torch.Tensor:
        """``-sum_m lambda_m log p(m|z)`` per example."""
        total = torch.zeros((), device=z.device)
        for m in self.names:
            out, target = self.decoders[m](z), batch[m]
            likelihood = self.modalities[m].likelihood
            if likelihood == "bernoulli":
                nll = F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(1)
            elif likelihood == "laplace":
                b = self.laplace_scale[m]
                nll = (target - out).abs().flatten(1).sum(1) / b + out[0].numel() * math.log(2 * b)
            else:  # categorical over the last axis (a label or one character per position)
                nll = -(F.log_softmax(out, dim=-1) * target).flatten(1).sum(1)
            total = total + self.likelihood_weights[m] * nll
        return total

    def terms(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (weighted reconstruction NLL at one mixture sample, mean subset KL)."""
        posteriors = self.subset_posteriors(batch)
        # every component sampled, then one per example: MixtureOfExperts.sample's draws in order
        zs = torch.stack([loc + torch.randn_like(loc) * scale for loc, scale in posteriors])
        rows = zs.shape[1]
        choice = torch.multinomial(self.mixture_weights, rows, replacement=True)
        z = zs[choice, torch.arange(rows, device=zs.device)]
        kl = torch.stack(
            [0.5 * (loc.pow(2) + scale.pow(2) - 1.0 - 2.0 * scale.log()).sum(1) for loc, scale in posteriors]
        )
        return self.negative_log_likelihood(batch, z), kl.mean(0)

    def loss(self, batch: Batch) -> torch.Tensor:
        nll, kl = self.terms(batch)
        return (nll + self.beta * kl).mean()

    #: step with the zoo's non-finite guard written in PyTorch (:func:`vae_throughput.guarded_step`)
    guarded = False

    def train_step(self, batch: Batch) -> torch.Tensor:
        """One Adam step; returns the detached loss (no host read, as the zoo Trainer's step)."""
        self.train()
        self.optimizer.zero_grad()
        loss = self.loss(batch)
        loss.backward()
        if self.guarded:
            guarded_step(self.optimizer, loss, list(self.parameters()))
        else:
            self.optimizer.step()
        return loss.detach()


# ---------------------------------------------------------------------- equivalence check
def relative_gap(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(a))


def check_same_loss(zoo: MoPoE, plain: PlainMoPoE, batch: Batch, seed: int = 123) -> dict[str, Any]:
    """Compare the zoo MoPoE and the plain one on ``batch``; raise if any quantity differs.

    Both must hold the same weights (``plain`` freshly built from ``zoo``). The two ``train_step``
    comparisons update both models (one Adam step each, from the same state).
    """
    from pixyz.losses import KullbackLeibler

    values: dict[str, tuple[float, float]] = {}
    with torch.no_grad():
        zoo.distributions.eval()
        plain.eval()
        posteriors = plain.subset_posteriors(batch)
        for (subset, q_s), (loc, scale) in zip(zoo.subset_experts.items(), posteriors, strict=True):
            kl_zoo = KullbackLeibler(q_s, zoo.prior).eval(batch).mean()
            kl_plain = 0.5 * (loc.pow(2) + scale.pow(2) - 1.0 - 2.0 * scale.log()).sum(1).mean()
            values[f"kl[{','.join(subset)}]"] = (float(kl_zoo), float(kl_plain))
        z_joint = posteriors[-1][0]  # the mean of the product of all experts
        weights = zoo.likelihood_weights
        nll_zoo = -weighted_log_likelihood(list(zoo.decoders.values()), weights).eval({**batch, "z": z_joint})
        values["weighted_nll_at_joint_mean"] = (
            float(nll_zoo.mean()),
            float(plain.negative_log_likelihood(batch, z_joint).mean()),
        )
        torch.manual_seed(seed)
        test_zoo = zoo.test_step(batch)
        torch.manual_seed(seed)
        values["test_step_loss_same_seed"] = (test_zoo, float(plain.loss(batch)))
    for i in range(2):
        torch.manual_seed(seed + 1 + i)
        train_zoo = zoo.train_step(batch)
        torch.manual_seed(seed + 1 + i)
        values[f"train_step_{i + 1}_loss_same_seed"] = (train_zoo, float(plain.train_step(batch)))
    report: dict[str, Any] = {"tolerance_relative": 1e-4, "passed": True, "values": {}}
    for name, (a, b) in values.items():
        gap = relative_gap(a, b)
        report["values"][name] = {"zoo": a, "plain": b, "relative_gap": gap}
        if gap > 1e-4:
            raise SystemExit(
                f"the zoo MoPoE and the plain MoPoE compute different {name}: zoo {a:.6f} vs plain "
                f"{b:.6f}. The timing would compare different computations; fix PlainMoPoE first"
            )
    report["max_relative_gap"] = max(v["relative_gap"] for v in report["values"].values())
    return report


# ---------------------------------------------------------------------- models and data
def build_zoo(arm: str, modalities: dict[str, Modality], options: dict[str, Any]) -> ZooModel:
    """The zoo model of an arm, with the shared options (networks, z, scale, weights, lr)."""
    if arm == "mopoe":
        return MoPoE(modalities, **options)
    if arm == "mvtcae":
        return MVTCAE(modalities, **options)
    if arm == "mvae":
        return MVAE(modalities, **options)
    if arm == "jmvae-kl":
        return JMVAEKL(modalities, **options)
    if arm.startswith("mmvae-k"):
        return MMVAE(modalities, k=int(arm.removeprefix("mmvae-k")), **options)
    raise KeyError(arm)


def make_batches(
    dataset: str, n: int, batch_size: int, data_root: str | None, device: torch.device
) -> tuple[dict[str, Modality], list[Batch]]:
    """The dataset's modalities and ``n`` shuffled training batches (dynamic binarisation, seed 0)."""
    data = load_dataset(dataset, "train", root=data_root)
    g = torch.Generator().manual_seed(0)
    batches: list[Batch] = []
    while len(batches) < n:
        for batch in data.batches(batch_size, shuffle=True, generator=g, drop_last=True):
            batches.append({k: v.to(device) for k, v in batch.items()})
            if len(batches) == n:
                break
    return dict(data.modalities), batches


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def paired_step_times(
    a: Callable[[Batch], float], b: Callable[[Batch], float], batches: list[Batch], steps: int
) -> dict[str, list[float]]:
    """Process CPU seconds of single steps of ``a`` and ``b`` alternating step by step (the first
    of each pair alternates too), so a change in the machine's load hits both sides of a pair."""
    out: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(steps):
        batch = batches[i % len(batches)]
        for key in "ab" if i % 2 == 0 else "ba":
            step = a if key == "a" else b
            start = time.process_time()
            step(batch)
            out[key].append(time.process_time() - start)
    return out


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dataset", choices=["trimodal-digits", "trimodal-mnist"], default="trimodal-digits")
    parser.add_argument("--data-root", default=None, help="data root for trimodal-mnist")
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--z-dim", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--decoder-scale", type=float, default=0.75)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=5, help="discarded steps before each timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", choices=ZOO_ARMS, default=list(ZOO_ARMS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--profile", type=int, default=0, help="also cProfile this many zoo-MoPoE and plain steps"
    )
    parser.add_argument(
        "--paired-steps",
        type=int,
        default=0,
        help="also time this many single steps of plain and zoo MoPoE alternating step by step",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/multimodal_throughput.json"))
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # training on random data breeds denormals, which slow a CPU 2x
    device = resolve_device(args.device)
    modalities, batches = make_batches(args.dataset, 20, args.batch_size, args.data_root, device)
    weights = dimension_weights(modalities)
    options: dict[str, Any] = dict(
        z_dim=args.z_dim,
        hidden=tuple(args.hidden),
        decoder_scale=args.decoder_scale,
        likelihood_weights=weights,
        lr=args.lr,
    )

    # the equivalence check runs on its own pair of models, so the timed ones start fresh
    torch.manual_seed(args.seed)
    check_zoo = build_zoo("mopoe", modalities, options).to(device)
    assert isinstance(check_zoo, MoPoE)
    equivalence = check_same_loss(check_zoo, PlainMoPoE(check_zoo, args.lr).to(device), batches[0])
    print("equivalence check passed, max relative gap", f"{equivalence['max_relative_gap']:.2e}")
    for name, v in equivalence["values"].items():
        print(f"  {name}: zoo {v['zoo']:.6f}, plain {v['plain']:.6f}")

    zoos: dict[str, ZooModel] = {}
    for arm in args.models:
        torch.manual_seed(args.seed)
        zoos[arm] = build_zoo(arm, modalities, options).to(device)
    reference = zoos["mopoe"] if "mopoe" in zoos else check_zoo
    assert isinstance(reference, MoPoE)
    plain = PlainMoPoE(reference, args.lr).to(device)  # the zoo MoPoE's initial weights
    plain_guarded = PlainMoPoE(reference, args.lr).to(device)
    plain_guarded.guarded = True

    def trainer_step(model: ZooModel) -> Callable[[Batch], torch.Tensor]:
        return lambda batch: model.train_step(batch, check=False)  # the Trainer's step: no host read

    arms: dict[str, Callable[[Batch], Any]] = {PLAIN: plain.train_step, GUARDED: plain_guarded.train_step}
    arms.update({arm: trainer_step(model) for arm, model in zoos.items()})
    linear_calls = {PLAIN: linear_calls_per_step(plain, plain.train_step, batches[0])}
    linear_calls[GUARDED] = linear_calls[PLAIN]
    parameters = {PLAIN: count_parameters(plain), GUARDED: count_parameters(plain_guarded)}
    for arm, model in zoos.items():
        linear_calls[arm] = linear_calls_per_step(model.distributions, arms[arm], batches[0])
        parameters[arm] = count_parameters(model.distributions)

    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    step_cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            wall, cpu = time_steps(arms[name], batches, args.steps, args.warmup, device, step_cpu[name])
            times[name].append(wall)
            cpu_times[name].append(cpu)
        shown = ", ".join(f"{n} {times[n][-1] / args.steps * 1e3:.1f}" for n in names)
        print(f"round {r + 1}/{args.rounds} (ms/step, {order[0]} first): {shown}", flush=True)

    plain_wall, plain_cpu = statistics.median(times[PLAIN]), statistics.median(cpu_times[PLAIN])
    per_model: dict[str, dict[str, Any]] = {}
    for name in names:
        wall, cpu = statistics.median(times[name]), statistics.median(cpu_times[name])
        per_model[name] = {
            "median_seconds_per_step": wall / args.steps,
            "median_cpu_seconds_per_step": cpu / args.steps,
            "steps_per_s": args.steps / wall,
            "ratio_to_plain_mopoe": wall / plain_wall,
            "ratio_to_plain_mopoe_cpu_time": cpu / plain_cpu,
            "round_ratios_to_plain": [t / p for t, p in zip(times[name], times[PLAIN], strict=True)],
            "round_cpu_ratios_to_plain": [
                t / p for t, p in zip(cpu_times[name], cpu_times[PLAIN], strict=True)
            ],
            "linear_forward_calls_per_step": linear_calls[name],
            "parameters": parameters[name],
            "same_objective_as_plain": name in (PLAIN, GUARDED, "mopoe"),
        }
    mopoe = per_model.get("mopoe")
    paired: dict[str, Any] | None = None
    if args.paired_steps and "mopoe" in zoos:
        got = paired_step_times(plain.train_step, arms["mopoe"], batches, args.paired_steps)
        ratios = [z / p for z, p in zip(got["b"], got["a"], strict=True)]
        paired = {
            "steps": args.paired_steps,
            "median_cpu_seconds_per_step": {
                PLAIN: statistics.median(got["a"]),
                "mopoe": statistics.median(got["b"]),
            },
            "median_of_paired_cpu_ratios": statistics.median(ratios),
            "ratio_of_median_cpu_times": statistics.median(got["b"]) / statistics.median(got["a"]),
            "quartiles_of_paired_cpu_ratios": statistics.quantiles(ratios, n=4),
        }
        print(
            f"paired single steps ({args.paired_steps}): median zoo/plain CPU-time ratio "
            f"{paired['median_of_paired_cpu_ratios']:.3f}",
            flush=True,
        )
    result: dict[str, Any] = {
        "benchmark": "multimodal_throughput",
        "command": command_line(argv),
        "settings": {
            "device": str(device),
            "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "dataset": args.dataset,
            "modalities": {m: [list(mod.shape), mod.likelihood] for m, mod in modalities.items()},
            "likelihood_weights": weights,
            "hidden": list(args.hidden),
            "z_dim": args.z_dim,
            "decoder_scale": args.decoder_scale,
            "batch_size": args.batch_size,
            "optimizer": f"Adam lr {args.lr:g}, fused (all models)",
            "model_options": "defaults otherwise (mopoe beta 1; mvtcae alpha 5/6, beta 2.5; mvae beta 1; "
            "jmvae-kl alpha = beta = 1; mmvae k as named)",
            "steps_per_round": args.steps,
            "warmup_steps": args.warmup,
            "rounds": args.rounds,
            "arms_order_round_1": names,
        },
        "equivalence_check": equivalence,
        "per_model": per_model,
        "mopoe_paired_single_steps": paired,
        "single_steps": step_quartiles(step_cpu, PLAIN),
        "round_seconds": times,
        "round_cpu_seconds": cpu_times,
        "target_ratio": TARGET_RATIO,
        "mopoe_ratio": mopoe["ratio_to_plain_mopoe"] if mopoe else None,
        "mopoe_ratio_cpu_time": mopoe["ratio_to_plain_mopoe_cpu_time"] if mopoe else None,
        "target_met": mopoe["ratio_to_plain_mopoe"] <= TARGET_RATIO if mopoe else None,
        "target_met_cpu_time": mopoe["ratio_to_plain_mopoe_cpu_time"] <= TARGET_RATIO if mopoe else None,
        "note": "only the mopoe ratio compares identical computations; the other models optimise "
        "different objectives (informative ratios)",
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
    if args.profile:
        result["profile"] = {
            "zoo_mopoe": profile_zoo(reference, batches, args.profile),
            "plain_mopoe": profile_zoo(plain, batches, args.profile),  # type: ignore[arg-type]
        }
        for name, prof in result["profile"].items():
            print(f"cProfile of {args.profile} {name} steps: {prof['total_seconds']:.2f} s")
            for group, share in list(prof["own_time_share_by_package"].items())[:8]:
                print(f"  {share:6.1%}  {group}")

    header = ("model", "ms/step", "CPU ms/step", "ratio (wall)", "ratio (CPU)", "Linear/step")
    print("\n{:<12} {:>8} {:>12} {:>13} {:>12} {:>12}".format(*header))
    for name, row in per_model.items():
        print(
            f"{name:<12} {row['median_seconds_per_step'] * 1e3:8.1f} "
            f"{row['median_cpu_seconds_per_step'] * 1e3:12.1f} {row['ratio_to_plain_mopoe']:13.3f} "
            f"{row['ratio_to_plain_mopoe_cpu_time']:12.3f} {row['linear_forward_calls_per_step']:12d}"
        )
    if mopoe:
        verdict = ", ".join(
            f"{kind} {'met' if result[key] else 'NOT met'}"
            for kind, key in (("wall", "target_met"), ("CPU", "target_met_cpu_time"))
        )
        print(
            f"zoo MoPoE / plain MoPoE: {result['mopoe_ratio']:.3f} wall, "
            f"{result['mopoe_ratio_cpu_time']:.3f} CPU time (target <= {TARGET_RATIO}: {verdict}); "
            "the other ratios compare different objectives"
        )
    single = result["single_steps"]
    if single:
        shown = ", ".join(f"{arm} {value:.3f}" for arm, value in single["ratio_to_" + PLAIN].items())
        print(f"lower quartile of single steps' CPU time, ratio to {PLAIN}: {shown}")
    out = write_record(result, args.out)
    print("written", out)
    return result


if __name__ == "__main__":
    main()
