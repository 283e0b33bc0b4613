"""beta-VAE and its successors on data with known factors: ``pixyz-zoo reproduce beta-vae``.

Higgins et al. (2017), "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", eq. (4): ``-E_q[log p(x|z)] + beta KL(q(z|x) || p(z))``; beta > 1
presses the posterior towards the factorised prior, which the paper argues trades reconstruction
for disentanglement. This experiment trains, on each of two ground-truth datasets
(``dsprites-procedural``, 64x64 binary sprites from shape, scale, orientation, posX, posY; and
``colored-shapes``, 32x32 RGB sprites from shape, hue, scale, posX, posY):

- the VAE (beta = 1) and beta-VAEs along a beta sweep (2, 4, 8, 16 in ``full``);
- the capacity-annealed beta-VAE (Burgess et al. 2018, eq. 8; gamma = 1000, C -> 25 nats over
  the first half of training), beta-TCVAE (Chen et al. 2018, eq. 4; beta = 6) and FactorVAE
  (Kim & Mnih 2018, eq. 2; gamma = 35), with the registered models' defaults;
- a randomly initialised encoder (the beta-VAE architecture, untrained) as a baseline row;

and measures for each: the test reconstruction loss ``-E_q(z|x)[log p(x|z)]`` (one posterior
sample per test image, nats per image), the KL term per latent dimension and in total, and the
five disentanglement metrics of :func:`pixyz_zoo.evaluation.compute_all` (BetaVAE score,
FactorVAE score, MIG, DCI disentanglement / completeness / informativeness, SAP). It draws a
latent traversal (rows sorted by KL) and a per-dimension KL bar chart per model, and states from
the measured numbers whether a larger beta traded reconstruction for disentanglement.
``report.md`` opens with the beta-sweep figure (reconstruction and every metric against beta) and
shows, per dataset, bars of every model's numbers above the table.

Settings (all models: z = 10, MLP encoder and decoder with two hidden layers of 256 ReLU units,
Bernoulli decoder, Adam with lr 5e-4, batch 64 as in the papers):

- ``full`` (measured: 39 minutes with one thread; see ``benchmarks/beta_vae_disentanglement.md``):
  dsprites-procedural: all 20,000 training images, 8 epochs (2,500 steps); colored-shapes: all
  5,000 training images, 24 epochs (1,875 steps); the whole test splits (2,000 / 1,000 images)
  for reconstruction and KL. The papers train for 300,000 steps (disentanglement_lib) or more
  with lr 1e-4 (the registered default); with about a hundred times fewer steps lr 1e-4 leaves
  the models nearly untrained (measured: test reconstruction 593 nats per image on dSprites after
  3 epochs, one active latent), hence lr 5e-4 for every model. The paper's dSprites networks
  (1200-unit MLPs) and the conv presets cost 4-6 times more per step on the CPU and were not
  affordable. Metrics: the standard (disentanglement_lib) settings represent about 2.9 million
  images per model and fit gradient-boosted trees for DCI (over 4 minutes per model on
  dSprites), so the full setting uses :data:`FULL_METRICS`: BetaVAE and FactorVAE scores on
  1,000 training and 500 evaluation points (batches of 64 as standard; FactorVAE's variances
  from the standard 10,000 samples), MIG and SAP at their standard sizes (10,000 / 10,000 +
  5,000 samples), DCI at its standard sizes (10,000 / 5,000) with the random-forest predictor,
  an order of magnitude faster than gradient boosting on dSprites' 113 factor values (its
  numbers are not comparable with published GBT numbers; see :func:`pixyz_zoo.evaluation.dci`).
- ``quick`` (measured: 2 min 17 s on two idle cores, 3 min 15 s with one thread): beta in
  {1, 4, 16} and the three variants; dsprites on its first 6,000 training images for 2 epochs,
  colored-shapes for 2 epochs; 500 test images; ``compute_all(quick=True)`` with BetaVAE batches
  of 16 pairs instead of 64 and DCI with the random forest (:data:`QUICK_METRICS`). A pipeline
  check: the models are barely trained.
- ``smoke`` (seconds): beta in {1, 4} and the three variants, 256 training images, one epoch,
  tiny metric samples (:data:`SMOKE_METRICS`). Its numbers mean nothing.

Runs finished earlier are loaded, not retrained, and their measurements are reused from
``runs/<run>/evaluation.json`` while the checkpoint and the settings are unchanged. On a CPU
shared with other jobs, run with ``OMP_NUM_THREADS=1``: two spinning OpenMP threads per process
were measured to cost up to ten times more CPU time per training step than one.

The procedural sprites approximate the real dSprites pixels, so no number here is comparable
with the papers' tables; the comparison is between the models, trained and measured alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from pixyz_zoo import plots
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.evaluation import compute_all, kl_per_dimension, representation_from_model
from pixyz_zoo.experiments import ExperimentContext, image, register_experiment
from pixyz_zoo.markdown import markdown_table
from pixyz_zoo.models import ZooModel, build_model
from pixyz_zoo.runs import write_json
from pixyz_zoo.training import CHECKPOINT, resolve_device

DATASETS = ("dsprites-procedural", "colored-shapes")
METRICS = (
    "beta_vae_score",
    "factor_vae_score",
    "mig",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "sap",
)
#: The metrics that measure disentanglement (DCI informativeness measures predictability only).
DISENTANGLEMENT_METRICS = tuple(m for m in METRICS if m != "dci_informativeness")
METRIC_NAMES = {
    "beta_vae_score": "BetaVAE",
    "factor_vae_score": "FactorVAE",
    "mig": "MIG",
    "dci_disentanglement": "DCI-D",
    "dci_completeness": "DCI-C",
    "dci_informativeness": "DCI-I",
    "sap": "SAP",
}
ACTIVE_KL = 0.1
"""A latent dimension is counted as active when its average KL exceeds this many nats."""

NETWORK = {"z_dim": 10, "hidden": [256, 256], "arch": "mlp", "lr": 5e-4}

FULL_METRICS: dict[str, dict[str, Any]] = {
    "beta_vae": {"num_train": 1000, "num_eval": 500},
    "factor_vae": {"num_train": 1000, "num_eval": 500},
    "mig": {},
    "dci": {"predictor": "random_forest"},
    "sap": {},
}
"""``compute_all`` options of the full setting (see the module docstring)."""

QUICK_METRICS: dict[str, dict[str, Any]] = {
    "beta_vae": {"batch_size": 16},
    "dci": {"predictor": "random_forest"},
}
"""Overrides of ``compute_all(quick=True)`` in the quick setting (see the module docstring)."""

SMOKE_METRICS: dict[str, dict[str, Any]] = {
    "beta_vae": {"num_train": 40, "num_eval": 20, "batch_size": 8},
    "factor_vae": {"num_train": 40, "num_eval": 20, "batch_size": 8, "num_variance_estimate": 200},
    "mig": {"num_train": 200},
    "dci": {"num_train": 200, "num_test": 100, "predictor_options": {"n_estimators": 5}},
    "sap": {"num_train": 200, "num_test": 100},
}


@dataclass(frozen=True)
class ModelSpec:
    """One trained model of the comparison."""

    key: str
    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    beta: float | None = None  # position in the beta sweep (None: not part of it)
    warmup_fraction: float = 0.0  # fraction of the epochs over which annealed symbols ramp up


def model_specs(ctx: ExperimentContext) -> list[ModelSpec]:
    """The VAE, the beta sweep and the three variants of this setting."""
    betas = ctx.pick((2, 4, 8, 16), (4, 16), (4,))
    specs = [ModelSpec("vae", "VAE (beta=1)", "vae", {"beta": 1.0}, beta=1.0)]
    specs += [
        ModelSpec(f"beta-vae-b{b}", f"beta-VAE (beta={b})", "beta-vae", {"beta": float(b)}, beta=float(b))
        for b in betas
    ]
    specs += [
        ModelSpec("annealed-vae", "annealed VAE (gamma=1000, C=25)", "annealed-vae", warmup_fraction=0.5),
        ModelSpec("beta-tcvae", "beta-TCVAE (beta=6)", "beta-tcvae"),
        ModelSpec("factor-vae", "FactorVAE (gamma=35)", "factor-vae"),
    ]
    return specs


def data_settings(ctx: ExperimentContext, dataset: str) -> dict[str, Any]:
    """Training and evaluation sizes for ``dataset`` in this setting."""
    if dataset == "dsprites-procedural":
        train = ctx.pick(None, 6_000, 256)
        epochs = ctx.pick(8, 2, 1)
    else:
        train = ctx.pick(None, None, 256)
        epochs = ctx.pick(24, 2, 1)
    return {
        "train_examples": train,
        "epochs": epochs,
        "batch_size": 64,
        "test_examples": ctx.pick(None, 500, 128),
    }


def metric_settings(ctx: ExperimentContext) -> tuple[bool, dict[str, dict[str, Any]]]:
    """``(quick, options)`` for ``compute_all``."""
    if ctx.setting == "full":
        return False, FULL_METRICS
    return True, ctx.pick(None, QUICK_METRICS, SMOKE_METRICS)


# ---------------------------------------------------------------------- measuring one model
@torch.no_grad()
def reconstruction_loss(model: ZooModel, data: MultimodalDataset, seed: int, batch_size: int = 500) -> float:
    """``-E_q(z|x)[log p(x|z)]`` averaged over ``data`` (one posterior sample per example), nats."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    total, count = 0.0, 0
    try:
        for batch in data.batches(batch_size):
            latents = model.sample_latents(batch, ["x"])
            total += float(-model.log_likelihood("x", latents, batch).sum())
            count += len(batch["x"])
    finally:
        torch.set_rng_state(generator_state)
    return total / count


def evaluate_model(
    model: ZooModel,
    test: MultimodalDataset,
    ctx: ExperimentContext,
    cache: Path | None = None,
    identity: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Reconstruction, KL per dimension and every metric, and whether they were computed now.

    They are reused from the JSON file ``cache`` when it was written with the same settings and
    the same ``identity`` (e.g. the checkpoint's modification time, so a retrained model is
    measured again).
    """
    quick, options = metric_settings(ctx)
    settings = {
        "setting": ctx.setting,
        "seed": ctx.seed,
        "test_examples": len(test),
        "metrics_quick": quick,
        "metric_options": options,
        "identity": identity or {},
    }
    if cache is not None and cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("settings") == json.loads(json.dumps(settings)):
            return stored["results"], False
    kl = kl_per_dimension(model, test)
    reconstruction = reconstruction_loss(model, test, ctx.seed)
    metrics = compute_all(
        test.ground_truth,
        representation_from_model(model, batch_size=512),
        np.random.default_rng(ctx.seed),
        quick=quick,
        options=options,
    )
    results = {
        "reconstruction": reconstruction,
        "kl": float(kl.sum()),
        "elbo": -(reconstruction + float(kl.sum())),
        "active_dims": int((kl > ACTIVE_KL).sum()),
        "kl_per_dimension": [float(v) for v in kl],
        **{k: float(v) for k, v in metrics.items()},
    }
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, {"settings": settings, "results": results})
    return results, True


def figure_paths(stem: Path) -> dict[str, Path]:
    return {
        "traversal": stem.with_name(stem.name + "_traversal.png"),
        "kl": stem.with_name(stem.name + "_kl.png"),
    }


def draw_model_figures(
    model: ZooModel, test: MultimodalDataset, kl: list[float], title: str, stem: Path
) -> dict[str, Path]:
    """Traversal and KL bar chart of one model (``stem``_traversal.png, ``stem``_kl.png)."""
    paths = figure_paths(stem)
    traversal = plots.latent_traversal(model, test.first(16), kl=kl, title=f"{title}: latent traversals")
    plots.save_figure(traversal, paths["traversal"])
    plots.save_figure(plots.kl_bar_chart(kl, title=f"{title}: KL per latent dimension"), paths["kl"])
    return paths


# ---------------------------------------------------------------------- the beta sweep
def sweep_trend(betas: list[float], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How reconstruction and each metric move along the beta sweep, and a sentence saying so.

    A quantity *rises* when its Spearman rank correlation with beta is positive and its value at
    the largest beta exceeds the one at beta = 1 (*falls*: both negative); otherwise it is
    *mixed*. Larger beta *traded reconstruction for disentanglement* when the reconstruction
    loss rose and most disentanglement metrics (all but DCI informativeness) rose.
    """
    order = np.argsort(betas)
    betas = [float(betas[i]) for i in order]
    rows = [rows[i] for i in order]

    def trend(values: list[float]) -> dict[str, Any]:
        rho = float(spearmanr(betas, values).statistic) if len(set(values)) > 1 else 0.0
        change = values[-1] - values[0]
        direction = "rises" if rho > 0 and change > 0 else "falls" if rho < 0 and change < 0 else "mixed"
        return {"first": values[0], "last": values[-1], "spearman": rho, "direction": direction}

    reconstruction = [r["reconstruction"] for r in rows]
    monotone = all(b >= a for a, b in zip(reconstruction, reconstruction[1:], strict=False))
    trends = {m: trend([r[m] for r in rows]) for m in METRICS}
    rising = [m for m in DISENTANGLEMENT_METRICS if trends[m]["direction"] == "rises"]
    falling = [m for m in DISENTANGLEMENT_METRICS if trends[m]["direction"] == "falls"]
    recon_trend = trend(reconstruction)
    worse = reconstruction[-1] > reconstruction[0]
    traded = worse and len(rising) > len(DISENTANGLEMENT_METRICS) / 2

    def listing(metrics: list[str]) -> str:
        return ", ".join(
            f"{METRIC_NAMES[m]} {trends[m]['first']:.2f} -> {trends[m]['last']:.2f}" for m in metrics
        )

    sweep = ", ".join(f"{b:g}" for b in betas)
    if monotone and worse:
        how = "rose monotonically"
    elif worse:
        how = "rose, though not monotonically,"
    elif reconstruction[-1] < reconstruction[0]:
        how = "fell"
    else:
        how = "did not change"
    sentence = (
        f"Across beta = {sweep}, the test reconstruction loss {how} from {reconstruction[0]:.1f} to "
        f"{reconstruction[-1]:.1f} nats per image; {len(rising)} of {len(DISENTANGLEMENT_METRICS)} "
        "disentanglement metrics rose with beta"
        + (f" ({listing(rising)})" if rising else "")
        + (f", {len(falling)} fell ({listing(falling)})" if falling else "")
        + (
            f" and {len(DISENTANGLEMENT_METRICS) - len(rising) - len(falling)} moved without a clear trend"
            if len(rising) + len(falling) < len(DISENTANGLEMENT_METRICS)
            else ""
        )
        + ". "
        + (
            "So on this dataset larger beta traded reconstruction for disentanglement."
            if traded
            else "So on this dataset larger beta did not clearly trade reconstruction for disentanglement"
            + (" (reconstruction did not get worse)." if not worse else " (most metrics did not rise).")
        )
    )
    return {
        "betas": betas,
        "reconstruction": recon_trend | {"monotone": monotone, "values": reconstruction},
        "metrics": trends,
        "rising": rising,
        "falling": falling,
        "traded": traded,
        "sentence": sentence,
    }


# ---------------------------------------------------------------------- summary figures
def metrics_figure(data: Mapping[str, Any], dataset: str) -> Figure:
    """Bars of every model's reconstruction, KL, active dimensions and metrics on one dataset (the
    random encoder included), from ``results["datasets"][dataset]``."""
    rows = {m["label"]: m for m in [*data["models"].values(), data["random_encoder"]]}
    return plots.metric_bars(
        rows,
        ["reconstruction", "kl", "active_dims", *METRICS],
        labels={
            "reconstruction": "reconstruction (nats)",
            "kl": "KL (nats)",
            "active_dims": f"active dims (KL > {ACTIVE_KL})",
            **METRIC_NAMES,
        },
        lower_is_better=["reconstruction"],
        higher_is_better=METRICS,
        log_scale=["reconstruction"],
        ncols=5,
        title=f"{dataset}: every model and the random encoder",
    )


def sweep_figure(results: Mapping[str, Any]) -> Figure:
    """Test reconstruction (left) and every metric (right) against beta, one row per dataset."""
    datasets = list(results["datasets"])
    fig = Figure(figsize=(11, 3.2 * len(datasets)), layout="constrained")
    axes = fig.subplots(len(datasets), 2, squeeze=False)
    for row, dataset in zip(axes, datasets, strict=True):
        data = results["datasets"][dataset]
        sweep = data["sweep"]
        betas = sweep["betas"]
        row[0].plot(betas, sweep["reconstruction"]["values"], marker="o")
        row[0].set(xscale="log", xlabel="beta", ylabel="test reconstruction (nats)", title=dataset)
        models = sorted(
            (m for m in data["models"].values() if m["beta"] is not None), key=lambda m: m["beta"]
        )
        for metric in METRICS:
            row[1].plot(betas, [m[metric] for m in models], marker="o", label=METRIC_NAMES[metric])
        row[1].set(xscale="log", xlabel="beta", ylabel="score", title=dataset)
        row[1].legend(fontsize="small", ncol=2)
        for ax in row:
            ax.set_xticks(betas, [f"{b:g}" for b in betas], minor=False)
            ax.set_xticks([], minor=True)
    return fig


# ---------------------------------------------------------------------- the experiment
def _table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    header = ["model", "reconstruction", "KL", "active dims", *(METRIC_NAMES[m] for m in METRICS)]
    body = [
        [label, r["reconstruction"], r["kl"], r["active_dims"], *(r[m] for m in METRICS)] for label, r in rows
    ]
    return markdown_table(header, body, digits=3)


def run_dataset(ctx: ExperimentContext, dataset: str, specs: list[ModelSpec]) -> dict[str, Any]:
    """Train (or load) and measure every model on ``dataset``; figures go to ``ctx.figures``."""
    sizes = data_settings(ctx, dataset)
    test = ctx.load(dataset, "test")
    if sizes["test_examples"] is not None:
        test = test.subset(slice(0, sizes["test_examples"]))
    models: dict[str, Any] = {}
    figures: dict[str, dict[str, str]] = {}
    for spec in specs:
        ctx.log(f"{dataset}: {spec.label}")
        model = ctx.fit(
            f"{dataset}-{spec.key}",
            spec.model,
            dataset,
            epochs=sizes["epochs"],
            batch_size=sizes["batch_size"],
            warmup_epochs=spec.warmup_fraction * sizes["epochs"],
            binarize="none",
            train_examples=sizes["train_examples"],
            options={**NETWORK, **spec.options},
        )
        run_dir = ctx.out / "runs" / f"{dataset}-{spec.key}"
        checkpoint = {"checkpoint_mtime_ns": (run_dir / CHECKPOINT).stat().st_mtime_ns}
        results, fresh = evaluate_model(model, test, ctx, run_dir / "evaluation.json", checkpoint)
        stem = ctx.figures / f"{dataset}_{spec.key}"
        paths = figure_paths(stem)
        if fresh or not all(p.exists() for p in paths.values()):
            draw_model_figures(model, test, results["kl_per_dimension"], f"{spec.label}, {dataset}", stem)
        figures[spec.key] = {k: str(p.relative_to(ctx.out)) for k, p in paths.items()}
        models[spec.key] = {
            "label": spec.label,
            "model": spec.model,
            "beta": spec.beta,
            "options": {**NETWORK, **spec.options},
            **results,
        }
    ctx.log(f"{dataset}: randomly initialised encoder")
    torch.manual_seed(ctx.seed)
    random_model = build_model("beta-vae", test.modalities, **NETWORK).to(resolve_device(ctx.device))
    baseline, _ = evaluate_model(
        random_model,
        test,
        ctx,
        ctx.out / "runs" / f"{dataset}-random-encoder" / "evaluation.json",
        {"model": "beta-vae", "options": NETWORK, "untrained": True},
    )
    sweep_keys = [s.key for s in specs if s.beta is not None]
    sweep = sweep_trend([models[k]["beta"] for k in sweep_keys], [models[k] for k in sweep_keys])
    result = {
        "settings": sizes,
        "models": models,
        "random_encoder": {"label": "random encoder (untrained)", **baseline},
        "sweep": sweep,
        "figures": figures,
        "test_examples": len(test),
    }
    result["metrics_figure"] = ctx.draw(f"{dataset}_metrics", lambda: metrics_figure(result, dataset))
    return result


def render_report(ctx: ExperimentContext, results: dict[str, Any]) -> str:
    lines = [
        "# beta-VAE and friends: disentanglement on ground-truth data",
        "",
        "Higgins et al. (2017) eq. (4), `-E_q[log p(x|z)] + beta KL(q(z|x)||p(z))`, along a beta sweep, "
        "with the annealed-capacity beta-VAE (Burgess et al. 2018), beta-TCVAE (Chen et al. 2018) and "
        "FactorVAE (Kim & Mnih 2018), against a randomly initialised encoder. Reconstruction: test "
        "`-E_q[log p(x|z)]` in nats per image (lower is better); KL: the KL term in nats per image and "
        f"the number of latent dimensions whose KL exceeds {ACTIVE_KL} nats; metrics (higher is better): "
        "BetaVAE and FactorVAE scores, MIG, DCI disentanglement / completeness / informativeness, SAP. "
        "The sprites are procedural approximations: the numbers compare the models, not the papers.",
        "",
        "## Along the beta sweep",
        "",
        image("reconstruction and every metric against beta", results.get("sweep_figure")),
        "",
    ]
    for dataset in DATASETS:
        data = results["datasets"][dataset]
        rows = [(m["label"], m) for m in data["models"].values()]
        rows.append((data["random_encoder"]["label"], data["random_encoder"]))
        s = data["settings"]
        lines += [
            f"## {dataset}",
            "",
            f"Training: {s['train_examples'] or 'all'} training images, {s['epochs']} epochs, batch "
            f"{s['batch_size']}; measured on {data['test_examples']} test images.",
            "",
            image(f"{dataset}: reconstruction, KL and metrics of every model", data.get("metrics_figure")),
            "",
            _table(rows),
            "",
            data["sweep"]["sentence"],
            "",
            "Latent traversals (one row per latent dimension, sorted by KL; the other latents at the "
            "posterior mean of one test image):",
            "",
        ]
        for key, paths in data["figures"].items():
            label = data["models"][key]["label"]
            lines += [f"![{label}: traversals]({paths['traversal']}) ![{label}: KL]({paths['kl']})", ""]
    quick, options = metric_settings(ctx)
    lines += [
        "## Settings",
        "",
        f"- networks: `{json.dumps(NETWORK)}` (every model), batch 64, Adam",
        f"- metrics: `compute_all(quick={quick}, options={json.dumps(options)})`",
        f"- models: {', '.join(f'{s.label} (`{s.model}`)' for s in model_specs(ctx))}",
    ]
    return "\n".join(lines)


@register_experiment(
    "beta-vae",
    "beta-VAE sweep, annealed VAE, beta-TCVAE, FactorVAE: reconstruction vs disentanglement metrics "
    "on dsprites-procedural and colored-shapes",
)
def run(ctx: ExperimentContext) -> dict[str, Any]:
    specs = model_specs(ctx)
    results: dict[str, Any] = {"datasets": {}}
    for dataset in DATASETS:
        results["datasets"][dataset] = run_dataset(ctx, dataset, specs)
    quick, options = metric_settings(ctx)
    results["settings"] = {
        "network": NETWORK,
        "metrics_quick": quick,
        "metric_options": options,
        "models": [asdict(s) for s in specs],
    }
    results["sweep_figure"] = ctx.draw("beta_sweep", lambda: sweep_figure(results))
    return ctx.finish(render_report(ctx, results), results)
