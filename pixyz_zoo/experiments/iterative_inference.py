r"""Iterative amortized inference and the amortization gap: ``pixyz-zoo reproduce iterative-inference``.

Marino, Yue & Mandt, "Iterative Amortized Inference" (ICML 2018): an update network that sees the
posterior's parameters and the gradient of the negative ELBO refines ``q(z|x)`` in a few steps,
which reduces the amortization gap and reaches in a few steps what gradient steps need many for.
Cremer, Li & Duvenaud, "Inference Suboptimality in Variational Autoencoders" (ICML 2018): the gap
``log p(x) - L[q]`` splits into the approximation gap ``log p(x) - L[q*]`` and the amortization
gap ``L[q*] - L[q]`` (``q*``: each example's Gaussian optimised with the decoder fixed); the
amortization gap grows as the encoder gets smaller.

Models (the same decoder architecture, latent size, optimiser, batch and epochs):

- ``vae``: the standard VAE, inference ``q(z|x)``;
- ``iterative-vae``: ``q(z|x)`` refined ``T`` times by a learned gated update (Marino et al.),
  trained on the mean of the ELBO over the steps with the trajectory's gradients stopped;
- ``refined-vae`` with ``refine_train``: ``q(z|x)`` refined by ``T`` Adam steps on
  :math:`(\mu, \log\sigma)`, the decoder trained on the refined bound (Kim et al.'s SA-VAE inner
  loop without backpropagating through it: "VAE + SVI");
- an encoder-size sweep: VAEs whose encoders have fewer hidden units than the decoder.

Measured per model on the test split (fixed binarisation): the ELBO of its own posterior (the
refined one where it has one), ``L[q*]``, IWAE-K with ``q*`` as the proposal (``log p(x)``), the
two gaps (:func:`~pixyz_zoo.evaluation.amortization.amortization_gaps`), the ELBO after each of
``0..16`` refinement steps (Adam from the encoder for every model, the learned update for the
iterative VAE; :func:`~pixyz_zoo.evaluation.amortization.refinement_curve`), and the wall time of
one training step. The three claims are stated by :func:`claims` from those numbers. A small
``z = 2`` iterative VAE shows one posterior's trajectory over the exact posterior.

Data: ``mnist`` when its four files are in the data root, else ``mnist-10k`` (the real MNIST test
split, 8,000 / 2,000); dynamic binarisation for training. ``quick`` and ``smoke`` fall back to the
bundled 8x8 ``digits`` when no MNIST file is there (their numbers then say nothing about MNIST).
Settings (see :func:`settings`; all with one torch thread, ``OMP_NUM_THREADS=1``):

- ``full``: every model z = 16, MLP [256, 256], 24 epochs on the 8,000 mnist-10k training images;
  bounds on the first 500 test images, IWAE-5000, q* up to 1,000 Adam steps. Measured: 20.9 minutes
  of wall time on a 2-core machine shared with other jobs (load average about 3.5); see
  ``benchmarks/iterative_inference.md``.
- ``quick``: z = 8, MLP [128, 128], 4 epochs on 2,000 training images, 100 test images, IWAE-500.
  Measured: 50 s (load average about 3) and 1 min 54 s (load average about 5.5) on the same machine.
- ``smoke``: z = 2, tiny networks, one epoch on 256 images, 16 test images: seconds; its numbers mean
  nothing.

Runs finished earlier are loaded, not retrained; their measurements are reused from
``runs/<run>/evaluation.json`` while the checkpoint and the settings are unchanged.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixyz_zoo.datasets import resolve_data_root
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.evaluation.amortization import (
    amortization_gaps,
    bound_of_parameters,
    optimal_gaussian,
    refinement_curve,
    refinement_trajectory,
)
from pixyz_zoo.evaluation.likelihood import elbo_estimate
from pixyz_zoo.experiments import ExperimentContext, image, register_experiment
from pixyz_zoo.markdown import markdown_table
from pixyz_zoo.models import ZooModel, build_model
from pixyz_zoo.runs import write_json
from pixyz_zoo.training import CHECKPOINT

#: The steps at which the report tabulates the bound (the curves run to the largest).
STEPS = (1, 2, 5, 16)
#: Adam's step size on (mu, log sigma) for every gradient-step refinement here.
REFINE_LR = 0.03


def mnist_files(root: str | os.PathLike | None, split: str = "t10k") -> bool:
    """Whether the MNIST idx files of ``split`` (``t10k`` or ``train``) are in the data root."""
    raw = resolve_data_root(root) / "MNIST" / "raw"
    return all(
        (raw / f"{split}-{kind}-ubyte.gz").exists() or (raw / f"{split}-{kind}-ubyte").exists()
        for kind in ("images-idx3", "labels-idx1")
    )


def pick_dataset(ctx: ExperimentContext) -> str:
    """``mnist`` with all its files, ``mnist-10k`` with the t10k files, ``digits`` (quick / smoke only).
    The full setting with ``download`` and no files: ``mnist``, which torchvision then downloads."""
    if mnist_files(ctx.data_root, "t10k"):
        return "mnist" if mnist_files(ctx.data_root, "train") else "mnist-10k"
    if ctx.setting == "full":
        if ctx.download:
            return "mnist"
        raise FileNotFoundError(
            f"the full iterative-inference experiment needs real MNIST: no t10k-images-idx3-ubyte.gz in "
            f"{resolve_data_root(ctx.data_root) / 'MNIST' / 'raw'}. Put the MNIST files there (or pass "
            "--data-root / set PIXYZ_ZOO_DATA to the folder holding MNIST/raw, or --download to fetch "
            "them with torchvision), or run --quick / --smoke, which fall back to the bundled digits"
        )
    return "digits"


def settings(ctx: ExperimentContext) -> dict[str, Any]:
    """Everything the setting decides (the full setting's sizes were chosen to fit about half an hour
    on one loaded CPU core; see ``benchmarks/iterative_inference.md``)."""
    dataset = pick_dataset(ctx)
    small = dataset == "digits"
    return {
        "dataset": dataset,
        "epochs": ctx.pick(24, 4, 1),
        "batch_size": ctx.pick(100, 100, 64),
        "train_examples": ctx.pick(None, None if small else 2000, 256),
        "test_examples": ctx.pick(None, 300, 64),  # the per-epoch test loss of training (digits: 360)
        "z_dim": ctx.pick(16, 8, 2),
        "hidden": ctx.pick([256, 256], [128, 128], [32]),
        "update_hidden": ctx.pick([256, 256], [128, 128], [16]),
        "refine_steps": ctx.pick(5, 5, 2),
        "lr": 1e-3,
        "encoder_sweep": ctx.pick([[16], [64]], [[8], [32]], [[4]]),
        "curve_steps": max(STEPS),
        "eval_examples": ctx.pick(500, 100, 16),  # the first test examples every bound is measured on
        "iwae_k": ctx.pick(5000, 500, 20),
        "elbo_samples": ctx.pick(100, 50, 5),  # per example, for every ELBO (also along the curves)
        "qstar": ctx.pick(
            {"max_steps": 1000, "lr": 1e-2, "samples": 4, "window": 50, "patience": 3, "tol": 1e-2},
            {"max_steps": 300, "lr": 2e-2, "samples": 4, "window": 25, "patience": 2, "tol": 2e-2},
            {"max_steps": 20, "lr": 2e-2, "samples": 2, "window": 5, "patience": 1, "tol": 1e-1},
        ),
        "timing_steps": ctx.pick(20, 10, 3),
        "z2": {
            "epochs": ctx.pick(12, 3, 1),
            "hidden": ctx.pick([128, 128], [64, 64], [16]),
            "update_hidden": ctx.pick([64, 64], [32, 32], [8]),
        },
    }


def model_specs(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``key``, ``label``, ``model``, ``options``, ``role`` of every trained model (bar the z = 2 one)."""
    net = {"z_dim": s["z_dim"], "hidden": list(s["hidden"]), "lr": s["lr"]}
    specs = [
        {"key": "vae", "label": "VAE", "model": "vae", "options": dict(net), "role": "main"},
        {
            "key": "iterative-vae",
            "label": f"iterative VAE (learned, T={s['refine_steps']})",
            "model": "iterative-vae",
            "options": {**net, "refine_steps": s["refine_steps"], "update_hidden": list(s["update_hidden"])},
            "role": "main",
        },
        {
            "key": "refined-vae",
            "label": f"VAE + gradient steps (Adam, T={s['refine_steps']})",
            "model": "refined-vae",
            "options": {
                **net,
                "refine_steps": s["refine_steps"],
                "refine_rule": "adam",
                "refine_lr": REFINE_LR,
                "refine_train": True,
            },
            "role": "main",
        },
    ]
    for hidden in s["encoder_sweep"]:
        width = "x".join(str(h) for h in hidden)
        specs.append(
            {
                "key": f"vae-encoder-{width}",
                "label": f"VAE, encoder {width}",
                "model": "vae",
                "options": {**net, "encoder_hidden": list(hidden)},
                "role": "sweep",
            }
        )
    return specs


def z2_spec(s: Mapping[str, Any]) -> dict[str, Any]:
    z2 = s["z2"]
    return {
        "key": "iterative-vae-z2",
        "label": f"iterative VAE, z = 2 (learned, T={s['refine_steps']})",
        "model": "iterative-vae",
        "options": {
            "z_dim": 2,
            "hidden": list(z2["hidden"]),
            "lr": s["lr"],
            "refine_steps": s["refine_steps"],
            "update_hidden": list(z2["update_hidden"]),
        },
    }


def fit(
    ctx: ExperimentContext, s: Mapping[str, Any], spec: Mapping[str, Any], epochs: int | None = None
) -> ZooModel:
    """Train (or resume, or load) the run ``OUT/runs/<key>``."""
    return ctx.fit(
        spec["key"],
        spec["model"],
        s["dataset"],
        epochs=s["epochs"] if epochs is None else epochs,
        batch_size=s["batch_size"],
        train_examples=s["train_examples"],
        test_examples=s["test_examples"],
        binarize="dynamic",
        options=spec["options"],
    )


def encoder_parameters(model: ZooModel) -> int:
    """Parameters of the amortised encoder ``q(z|x)`` (the update network not counted)."""
    return sum(p.numel() for p in model.q.parameters())


# ---------------------------------------------------------------------- measuring
def step_seconds(
    name: str, options: Mapping[str, Any], data: MultimodalDataset, batch_size: int, steps: int, seed: int
) -> dict[str, float]:
    """Median wall time of one training step of a freshly built model (after one warm-up step)."""
    torch.manual_seed(seed)
    model = build_model(name, data.modalities, **options)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for batch in data.batches(batch_size, shuffle=True, generator=generator):
        batches.append(batch)
        if len(batches) > steps:
            break
    while len(batches) <= steps:
        batches += batches
    model.train_step(batches[0])
    times = []
    for batch in batches[1 : steps + 1]:
        start = time.perf_counter()
        model.train_step(batch)
        times.append(time.perf_counter() - start)
    return {
        "step_seconds": statistics.median(times),
        "timing_steps": steps,
        "load_average": os.getloadavg()[0],
    }


def measure(
    ctx: ExperimentContext,
    s: Mapping[str, Any],
    spec: Mapping[str, Any],
    model: ZooModel,
    train: MultimodalDataset,
    test: MultimodalDataset,
) -> dict[str, Any]:
    """Gaps, refinement curves and step time of one model; reused from ``evaluation.json`` while the
    checkpoint and the settings are those it was measured with."""
    run_dir = ctx.out / "runs" / spec["key"]
    identity = {
        "checkpoint_mtime_ns": (run_dir / CHECKPOINT).stat().st_mtime_ns,
        "settings": {
            k: s[k]
            for k in (
                "curve_steps",
                "eval_examples",
                "iwae_k",
                "elbo_samples",
                "qstar",
                "timing_steps",
            )
        },
        "setting": ctx.setting,
        "seed": ctx.seed,
        "test_examples": len(test),
    }
    cache = run_dir / "evaluation.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("identity") == json.loads(json.dumps(identity)):
            return stored["results"]
    # the same test examples for every bound, so that the curves and q* compare
    data = test.subset(slice(0, min(s["eval_examples"], len(test))))
    common = dict(k=s["elbo_samples"], batch_size=100, seed=ctx.seed)
    results: dict[str, Any] = {"label": spec["label"], "model": spec["model"], "options": spec["options"]}
    ctx.log(f"{spec['key']}: refinement curves")
    results["curves"] = {
        "adam": refinement_curve(model, data, steps=s["curve_steps"], rule="adam", lr=REFINE_LR, **common)
    }
    if spec["model"] == "iterative-vae":
        results["curves"]["learned"] = refinement_curve(
            model, data, steps=s["curve_steps"], rule="model", **common
        )
    ctx.log(f"{spec['key']}: q* and IWAE-{s['iwae_k']} on {len(data)} examples")
    results["gaps"] = amortization_gaps(
        model,
        data,
        k=s["iwae_k"],
        elbo_samples=s["elbo_samples"],
        batch_size=100,
        seed=ctx.seed,
        per_example=True,
        **s["qstar"],
    )
    results["timing"] = step_seconds(
        spec["model"], spec["options"], train, s["batch_size"], s["timing_steps"], ctx.seed
    )
    results["encoder_parameters"] = encoder_parameters(model)
    write_json(cache, {"identity": identity, "results": results})
    return results


def posterior_grid(
    model: ZooModel,
    batch: Mapping[str, torch.Tensor],
    center: torch.Tensor,
    n: int = 80,
    half_width: float = 3.0,
) -> dict[str, np.ndarray]:
    """``log p(x, z)`` of the first example of ``batch`` on an ``n x n`` grid of a 2-D latent around
    ``center`` (the exact posterior up to its normaliser)."""
    if model.config["z_dim"] != 2:
        raise ValueError(f"posterior_grid draws a 2-D latent; this model has z_dim = {model.config['z_dim']}")
    c = center.detach().cpu().double()
    z1 = torch.linspace(float(c[0]) - half_width, float(c[0]) + half_width, n)
    z2 = torch.linspace(float(c[1]) - half_width, float(c[1]) + half_width, n)
    zz2, zz1 = torch.meshgrid(z2, z1, indexing="ij")
    z = torch.stack([zz1.reshape(-1), zz2.reshape(-1)], dim=1).to(model.device)
    one = {k: v[:1] for k, v in batch.items()}
    with torch.no_grad():
        log_lik = model.log_likelihood("x", {"z": z}, one)
        log_prior = -0.5 * (z**2).sum(1) - math.log(2 * math.pi)
    return {
        "z1": z1.numpy(),
        "z2": z2.numpy(),
        "log_joint": (log_lik + log_prior).reshape(n, n).cpu().numpy(),
    }


def trajectories(
    model: ZooModel, test: MultimodalDataset, steps: int, index: int = 0, k: int = 1000
) -> dict[str, Any]:
    """One test example's posterior over the refinement steps of a z = 2 model: the learned update (for
    the ``T`` it was trained with) and ``steps`` Adam steps from the same encoder output, ``q*``, the
    exact posterior on a grid, and the ELBO (``k`` samples) after each step and of ``q*``."""
    batch = test.first(index + 1)
    batch = {k: v[index : index + 1] for k, v in batch.items()}
    model.distributions.eval()
    learned = refinement_trajectory(model, batch, rule="model")
    adam = refinement_trajectory(model, batch, steps=steps, rule="adam", lr=REFINE_LR)
    torch.manual_seed(0)
    best = optimal_gaussian(model, batch, init="encoder", max_steps=2000, samples=8)
    points = lambda path: [(loc[0].tolist(), scale[0].tolist()) for loc, scale in path]  # noqa: E731

    def elbo(loc: torch.Tensor, scale: torch.Tensor) -> float:
        with torch.no_grad():
            return float(elbo_estimate(bound_of_parameters(model, batch, loc, scale, k))[0])

    labels = {"learned update": learned, f"Adam (lr {REFINE_LR})": adam}
    # the grid frames every mean drawn, with three of the largest sigma around them
    locs = torch.stack([loc[0] for path in (learned, adam) for loc, _ in path] + [best.loc[0]]).cpu()
    scales = torch.stack([scale[0] for path in (learned, adam) for _, scale in path] + [best.scale[0]]).cpu()
    low, high = locs.min(0).values, locs.max(0).values
    half_width = float((high - low).max() / 2 + 3 * scales.max())
    return {
        "index": index,
        "grid": posterior_grid(model, batch, (low + high) / 2, half_width=half_width),
        "trajectories": {label: points(path) for label, path in labels.items()},
        "optimum": (best.loc[0].tolist(), best.scale[0].tolist()),
        "elbo": {label: [elbo(loc, scale) for loc, scale in path] for label, path in labels.items()},
        "elbo_optimal": elbo(best.loc, best.scale),
    }


# ---------------------------------------------------------------------- the claims
def first_step_reaching(curve: Sequence[float], target: float) -> int | None:
    """The first step ``t`` whose bound is at least ``target`` (None: not within the curve)."""
    return next((t for t, value in enumerate(curve) if value >= target), None)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of ``a_i - b_i``."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return float(diff.mean()), se


def per_example_gap(gaps: Mapping[str, Any]) -> list[float]:
    per = gaps["per_example"]
    return [o - m for o, m in zip(per["elbo_optimal"], per["elbo_model"], strict=True)]


def claims(
    gaps: Mapping[str, Mapping[str, Any]],
    learned_curve: Sequence[float],
    learned_steps: int,
    gradient_curve: Sequence[float],
    sweep: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Which of Marino et al.'s and Cremer et al.'s claims hold on the measured numbers.

    Args:
        gaps: ``{"vae": ..., "iterative": ..., "gradient": ...}``: ``amortization_gaps`` results
            (with ``per_example``) of the VAE, the iterative VAE and the VAE with gradient steps,
            measured on the same test examples.
        learned_curve: the iterative VAE's bound after ``0..`` steps of its learned update.
        learned_steps: the number of steps it was trained with (``T``).
        gradient_curve: the bound after ``0..`` Adam steps on the *same* model from the same encoder.
        sweep: ``[{"label", "encoder_parameters", "amortization_gap"}]``, one per encoder size.

    Returns ``{claim: {"status": "holds" | "does not hold" | "unresolved", "sentence": ...}}``. A
    difference of gaps within twice its paired standard error is *unresolved*.
    """
    out: dict[str, dict[str, Any]] = {}

    # 1. iterative inference reduces the amortization gap (Marino et al.; Cremer et al. sec. 5)
    vae_gap, it_gap = gaps["vae"]["amortization_gap"], gaps["iterative"]["amortization_gap"]
    diff, se = paired_difference(per_example_gap(gaps["iterative"]), per_example_gap(gaps["vae"]))
    resolved = not (abs(diff) < 2 * se)
    status = ("holds" if diff < 0 else "does not hold") if resolved else "unresolved"
    grad_gap = gaps["gradient"]["amortization_gap"] if "gradient" in gaps else None
    sentence = (
        f"Iterative inference reduces the amortization gap: **{status}**. The learned refinement's gap "
        f"L[q*] - L[q_T] is {it_gap:.2f} nats against the VAE's {vae_gap:.2f} (difference {diff:+.2f} "
        f"± {se:.2f} standard error over {len(per_example_gap(gaps['vae']))} test examples"
        + ("; within twice its standard error)" if not resolved else ")")
        + (f"; the VAE with gradient-step refinement has {grad_gap:.2f}." if grad_gap is not None else ".")
    )
    out["reduces_amortization_gap"] = {
        "status": status,
        "difference": diff,
        "standard_error": se,
        "sentence": sentence,
    }

    # 2. learned updates reach in a few steps what gradient steps need many for (Marino et al. fig. 5)
    target = learned_curve[learned_steps]
    needed = first_step_reaching(gradient_curve, target)
    gain = target - learned_curve[0]
    if gain <= 0:
        status = "does not hold"
        how = f"its learned update does not raise the bound ({learned_curve[0]:.2f} -> {target:.2f} nats)"
    elif needed is None:
        status = "holds"
        how = (
            f"Adam steps on the same model do not reach it within {len(gradient_curve) - 1} steps "
            f"(they reach {gradient_curve[-1]:.2f})"
        )
    elif needed > learned_steps:
        status = "holds"
        how = f"Adam steps on the same model need {needed} steps to reach it"
    else:
        status = "does not hold"
        how = f"Adam steps on the same model reach it in {needed} step{'s' * (needed != 1)}"
    sentence = (
        f"Learned updates reach in a few steps what gradient steps need many for: **{status}**. "
        f"After its T = {learned_steps} learned steps the iterative VAE's bound is {target:.2f} nats "
        f"(from {learned_curve[0]:.2f}); {how}."
    )
    out["few_learned_steps"] = {
        "status": status,
        "target": target,
        "gradient_steps_needed": needed,
        "learned_steps": learned_steps,
        "sentence": sentence,
    }

    # 3. the amortization gap grows as the encoder gets smaller (Cremer et al. sec. 5.2)
    rows = sorted(sweep, key=lambda r: -r["encoder_parameters"])
    values = [r["amortization_gap"] for r in rows]
    rising = all(b > a for a, b in zip(values, values[1:], strict=False))
    if rising:
        status = "holds"
    elif values[-1] > values[0]:
        status = "holds only in part"
    else:
        status = "does not hold"
    listing = ", ".join(
        f"{r['label']} ({r['encoder_parameters']:,} parameters) {r['amortization_gap']:.2f}" for r in rows
    )
    sentence = (
        f"The amortization gap grows as the encoder gets smaller: **{status}**"
        + (" (not monotonically)" if status == "holds only in part" else "")
        + f". From the largest encoder to the smallest: {listing} nats."
    )
    out["gap_grows_as_encoder_shrinks"] = {"status": status, "gaps": values, "sentence": sentence}
    return out


def claims_from_results(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`claims` from an experiment's ``results`` (``results.json`` or its record in
    ``benchmarks/``: the VAE's and the iterative VAE's gaps with their per-example values)."""
    models = results["models"]
    iterative = models["iterative-vae"]
    gaps = {"vae": models["vae"]["gaps"], "iterative": iterative["gaps"]}
    if "refined-vae" in models:
        gaps["gradient"] = models["refined-vae"]["gaps"]
    return claims(
        gaps,
        iterative["curves"]["learned"]["elbo"],
        results["settings"]["refine_steps"],
        iterative["curves"]["adam"]["elbo"],
        results["sweep"],
    )


# ---------------------------------------------------------------------- report
def rows_table(results: Mapping[str, Any]) -> str:
    k = results["settings"]["iwae_k"]
    header = [
        "model",
        "ELBO of q(z|x)",
        "test ELBO (own posterior)",
        "L[q*]",
        f"IWAE-{k}",
        "amortization gap",
        "approximation gap",
        "ms / training step",
    ]
    body = []
    for m in results["models"].values():
        g = m["gaps"]
        body.append(
            [
                m["label"],
                m["curves"]["adam"]["elbo"][0],
                g["elbo_model"],
                g["elbo_optimal"],
                g["log_px"],
                g["amortization_gap"],
                g["approximation_gap"],
                m["timing"]["step_ms"],
            ]
        )
    return markdown_table(header, body, digits=2)


def steps_table(results: Mapping[str, Any]) -> str:
    steps = [0, *STEPS]
    header = ["model", "refinement", *(f"t={t}" for t in steps), "L[q*]"]
    body = []
    for m in results["models"].values():
        if m["role"] != "main":
            continue
        for rule, curve in m["curves"].items():
            name = "learned update" if rule == "learned" else f"Adam (lr {REFINE_LR})"
            body.append([m["label"], name, *(curve["elbo"][t] for t in steps), m["gaps"]["elbo_optimal"]])
    return markdown_table(header, body, digits=2)


def sweep_table(results: Mapping[str, Any]) -> str:
    header = ["model", "encoder parameters", "ELBO", "L[q*]", "amortization gap", "approximation gap"]
    body = [
        [
            r["label"],
            r["encoder_parameters"],
            r["elbo"],
            r["elbo_optimal"],
            r["amortization_gap"],
            r["approximation_gap"],
        ]
        for r in results["sweep"]
    ]
    return markdown_table(header, body, digits=2)


def curves_figure(results: Mapping[str, Any]):
    from pixyz_zoo.plots.refinement import refinement_curves_figure

    curves, groups, ceilings = {}, {}, {}
    for m in results["models"].values():
        if m["role"] != "main":
            continue
        for rule, curve in m["curves"].items():
            label = f"{m['label']}: " + ("learned update" if rule == "learned" else "Adam steps")
            curves[label], groups[label] = curve["elbo"], m["label"]
        ceilings[m["label"]] = m["gaps"]["elbo_optimal"]
    return refinement_curves_figure(
        curves, groups, ceilings, marks=STEPS, trained_steps=results["settings"]["refine_steps"]
    )


def sweep_figure(results: Mapping[str, Any]):
    from pixyz_zoo.plots.refinement import encoder_sweep_figure

    rows = sorted(results["sweep"], key=lambda r: r["encoder_parameters"])
    return encoder_sweep_figure(
        [r["encoder_parameters"] for r in rows],
        {
            "amortization gap": [r["amortization_gap"] for r in rows],
            "approximation gap": [r["approximation_gap"] for r in rows],
        },
        labels=[r["encoder"] for r in rows],
    )


def trajectory_plot(data: Mapping[str, Any]):
    from pixyz_zoo.plots.refinement import trajectory_figure

    return trajectory_figure(
        data["grid"],
        data["trajectories"],
        data["optimum"],
        title=f"Test example {data['index']}: its posterior along the refinement (z = 2)",
    )


def render_report(results: Mapping[str, Any]) -> str:
    s = results["settings"]
    figs = results["figures"]
    lines = [
        "# Iterative amortized inference and the amortization gap",
        "",
        "Marino, Yue & Mandt (ICML 2018) refine q(z|x) with a learned update of the posterior's parameters "
        "and the ELBO's gradient; Cremer, Li & Duvenaud (ICML 2018) split the inference gap log p(x) - L[q] "
        "into the approximation gap log p(x) - L[q*] and the amortization gap L[q*] - L[q], where q* is "
        "each example's Gaussian optimised with the decoder fixed. Bounds in nats per test example "
        "(higher is better).",
        "",
        image("the bound after each refinement step, with q* as each model's ceiling", figs.get("curves")),
        "",
        "## What holds on these numbers",
        "",
        *(f"- {c['sentence']}" for c in results["claims"].values()),
        "",
        "## Gaps",
        "",
        f"ELBO of q(z|x): the amortised encoder before any refinement; test ELBO: the model's own posterior "
        f"(q_T for the refined models; {s['elbo_samples']} samples per example); L[q*] and "
        f"IWAE-{s['iwae_k']} "
        f"(q* as the proposal; log p(x)) from {s['iwae_k']} samples per example, on the first "
        f"{results['eval_examples']} test examples; step time: median over {s['timing_steps']} training "
        "steps of a fresh model on this machine.",
        "",
        rows_table(results),
        "",
        "## The bound along the refinement",
        "",
        f"ELBO after t steps ({s['elbo_samples']} samples per example and step, the same "
        f"{results['eval_examples']} test examples). Adam steps (lr {REFINE_LR}) on (mu, log sigma) start "
        f"from each model's encoder; the iterative VAE's learned update was trained with "
        f"T = {s['refine_steps']} and is run beyond it.",
        "",
        steps_table(results),
        "",
        "## Encoder size",
        "",
        image("gaps against the encoder's size", figs.get("sweep")),
        "",
        sweep_table(results),
        "",
        "## One posterior in a 2-D latent space",
        "",
        image("a posterior's trajectory over the refinement steps", figs.get("trajectory")),
        "",
        "## Settings",
        "",
        f"- data: `{s['dataset']}` ({results['train_examples']} training examples, dynamic binarisation; "
        f"{results['test_examples']} test examples, fixed binarisation)",
        f"- every model: z = {s['z_dim']}, MLP decoder {s['hidden']}, Adam lr {s['lr']}, "
        f"batch {s['batch_size']}, "
        f"{s['epochs']} epochs; update network {s['update_hidden']}; sweep encoders {s['encoder_sweep']}",
        f"- q*: Adam on each example's (mu, log sigma), `{json.dumps(s['qstar'])}`",
        f"- z = 2 model: {json.dumps(s['z2'])}",
        "- load average when the step times were measured: "
        + ", ".join(f"{m['label']} {m['timing']['load_average']:.1f}" for m in results["models"].values()),
    ]
    return "\n".join(lines)


@register_experiment(
    "iterative-inference",
    "VAE vs learned iterative inference vs gradient-step refinement on MNIST: amortization and "
    "approximation gaps (q*), the bound along the refinement, an encoder-size sweep",
)
def run(ctx: ExperimentContext) -> dict[str, Any]:
    s = settings(ctx)
    train = ctx.load(s["dataset"], "train")
    if s["train_examples"] is not None:
        train = train.subset(slice(0, s["train_examples"]))
    test = ctx.load(s["dataset"], "test", binarize="fixed")
    models: dict[str, Any] = {}
    for spec in model_specs(s):
        ctx.log(f"{spec['label']}")
        model = fit(ctx, s, spec)
        models[spec["key"]] = {**measure(ctx, s, spec, model, train, test), "role": spec["role"]}
    main = {key: m for key, m in models.items() if m["role"] == "main"}
    sweep = [
        {
            "label": m["label"],
            "encoder": "x".join(map(str, m["options"].get("encoder_hidden", m["options"]["hidden"]))),
            "encoder_parameters": m["encoder_parameters"],
            "elbo": m["gaps"]["elbo_model"],
            "elbo_optimal": m["gaps"]["elbo_optimal"],
            "amortization_gap": m["gaps"]["amortization_gap"],
            "approximation_gap": m["gaps"]["approximation_gap"],
        }
        for key, m in models.items()
        if key == "vae" or m["role"] == "sweep"
    ]
    for m in models.values():
        m["timing"]["step_ms"] = 1000 * m["timing"]["step_seconds"]
    found = claims_from_results({"settings": s, "models": main, "sweep": sweep})
    ctx.log("z = 2 model: a posterior's trajectory")
    z2 = fit(ctx, s, z2_spec(s), epochs=s["z2"]["epochs"])
    torch.manual_seed(ctx.seed)
    trajectory = trajectories(z2, test, s["curve_steps"])
    for key, m in models.items():  # per-example values: only those the claims compare (all: evaluation.json)
        if key not in ("vae", "iterative-vae"):
            m["gaps"] = {k: v for k, v in m["gaps"].items() if k != "per_example"}
    results: dict[str, Any] = {
        "settings": s,
        "train_examples": len(train),
        "test_examples": len(test),
        "eval_examples": min(s["eval_examples"], len(test)),
        "models": models,
        "sweep": sweep,
        "claims": found,
        "trajectory": {k: v for k, v in trajectory.items() if k != "grid"},
        "figures": {},
    }
    results["figures"]["curves"] = ctx.draw("refinement_curves", lambda: curves_figure(results))
    results["figures"]["sweep"] = ctx.draw("encoder_sweep", lambda: sweep_figure(results))
    results["figures"]["trajectory"] = ctx.draw("trajectory_z2", lambda: trajectory_plot(trajectory))
    return ctx.finish(render_report(results), results)


def load_model(ctx: ExperimentContext, key: str) -> ZooModel:
    """A trained model of a finished experiment (``key``: a run under ``OUT/runs``; loads, never trains)."""
    from pixyz_zoo.training import load_checkpoint, model_from_checkpoint, resolve_device

    run_dir = Path(ctx.out) / "runs" / key
    if not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(
            f"{run_dir} has no checkpoint; run `pixyz-zoo reproduce iterative-inference` first"
        )
    return model_from_checkpoint(load_checkpoint(run_dir), resolve_device(ctx.device))
