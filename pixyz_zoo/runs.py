"""Run directories: ``config.json``, ``checkpoint.pt``, ``metrics.json``, ``figures/``, ``report.md``.

``train_run`` trains a registered model on a registered dataset into a run directory (or
continues one), ``evaluate_run`` measures and reports it. The CLI is a thin layer over both.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from math import nan
from pathlib import Path
from typing import Any

import torch

from pixyz_zoo.datasets import DATASETS, MultimodalDataset, load_dataset, resolve_data_root
from pixyz_zoo.evaluation import evaluate_log_likelihood
from pixyz_zoo.models import ZooModel, build_model, get_model_class
from pixyz_zoo.training import (
    CHECKPOINT,
    CheckpointError,
    Trainer,
    load_checkpoint,
    model_from_checkpoint,
    resolve_device,
    seed_everything,
)

CONFIG = "config.json"
METRICS = "metrics.json"
REPORT = "report.md"
FIGURES = "figures"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} is not a run directory: {path} is missing. Pass the --out directory of a "
            "`pixyz-zoo train` run"
        )
    return json.loads(path.read_text())


def load_data(config: dict[str, Any]):
    data = config["data"]
    kwargs = dict(root=data.get("root"), binarize=data["binarize"], seed=config["train"]["seed"])
    if DATASETS.get(data["dataset"]) is not None and DATASETS[data["dataset"]].offline:
        # generated without files: load once per process (an experiment trains many runs on it)
        key = (
            data["dataset"],
            str(resolve_data_root(data.get("root"))),
            data["binarize"],
            config["train"]["seed"],
        )
        train, test = _load_offline(*key, "train"), _load_offline(*key, "test")
    else:
        train = load_dataset(data["dataset"], "train", download=data.get("download", False), **kwargs)
        test = load_dataset(data["dataset"], "test", **kwargs)
    return _first(train, data.get("train_examples")), _first(test, data.get("test_examples"))


@functools.lru_cache(maxsize=4)
def _load_offline(name: str, root: str, binarize: str, seed: int, split: str) -> MultimodalDataset:
    return load_dataset(name, split, root=root, binarize=binarize, seed=seed)


def _first(dataset: MultimodalDataset, n: int | None) -> MultimodalDataset:
    """The first ``n`` examples of ``dataset`` (all of them when ``n`` is None)."""
    if n is None:
        return dataset
    if not 1 <= n <= len(dataset):
        raise ValueError(f"asked for {n} examples of {dataset.name!r}, which has {len(dataset)}")
    return dataset.subset(slice(0, n))


def train_run(
    model: str,
    run_dir: str | os.PathLike,
    dataset: str = "digits",
    epochs: int = 10,
    batch_size: int = 100,
    seed: int = 0,
    device: str = "auto",
    warmup_epochs: float = 0.0,
    data_root: str | None = None,
    binarize: str = "dynamic",
    download: bool = False,
    options: dict[str, Any] | None = None,
    progress: bool = True,
    train_examples: int | None = None,
    test_examples: int | None = None,
) -> tuple[ZooModel, Trainer]:
    """Train ``model`` on ``dataset`` into a new run directory.

    ``train_examples`` / ``test_examples``: use only the first that many examples of a split
    (None: all; experiments' quick settings use this).
    """
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        raise FileExistsError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out"
        )
    get_model_class(model)  # unknown model: fail before loading data
    config = {
        "model": model,
        "options": dict(options or {}),
        "data": {"dataset": dataset, "root": data_root, "binarize": binarize, "download": download},
        "train": {"epochs": epochs, "batch_size": batch_size, "seed": seed, "warmup_epochs": warmup_epochs},
        "device": device,
    }
    for key, n in (("train_examples", train_examples), ("test_examples", test_examples)):
        if n is not None:
            config["data"][key] = n
    train, test = load_data(config)
    dev = resolve_device(device)
    seed_everything(seed)
    net = build_model(model, train.modalities, **config["options"]).to(dev)
    config["options"] = net.config
    config["environment"] = environment(dev)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG, config)
    trainer = Trainer(net, train, test, run_dir=run_dir, progress=progress, **config["train"])
    trainer.fit()
    return net, trainer


def resume_run(
    run_dir: str | os.PathLike,
    epochs: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> tuple[ZooModel, Trainer]:
    """Continue the run in ``run_dir`` from its last checkpoint (up to ``epochs`` in total)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    payload = load_checkpoint(run_dir, expected_model=config["model"])
    if epochs is not None:
        config["train"]["epochs"] = epochs
    dev = resolve_device(device or config.get("device", "auto"))
    train, test = load_data(config)
    net = model_from_checkpoint(payload, dev)
    write_json(run_dir / CONFIG, config)
    trainer = Trainer(net, train, test, run_dir=run_dir, progress=progress, **config["train"])
    trainer.resume(run_dir)
    trainer.fit()
    return net, trainer


def fit_run(
    model: str,
    run_dir: str | os.PathLike,
    dataset: str = "digits",
    epochs: int = 10,
    batch_size: int = 100,
    seed: int = 0,
    device: str = "auto",
    warmup_epochs: float = 0.0,
    data_root: str | None = None,
    binarize: str = "dynamic",
    options: dict[str, Any] | None = None,
    progress: bool = True,
    train_examples: int | None = None,
    test_examples: int | None = None,
) -> ZooModel:
    """The model of ``run_dir`` trained for ``epochs``: trained afresh, resumed, or loaded if done.

    This is what experiments use, so that an interrupted experiment resumes each of its runs from
    the last checkpoint. A run directory made with other settings is an error, never reused.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        net, _ = train_run(
            model,
            run_dir,
            dataset=dataset,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            device=device,
            warmup_epochs=warmup_epochs,
            data_root=data_root,
            binarize=binarize,
            options=options,
            progress=progress,
            train_examples=train_examples,
            test_examples=test_examples,
        )
        return net
    config = read_config(run_dir)
    wanted = {
        "model": model,
        "dataset": dataset,
        "binarize": binarize,
        "batch_size": batch_size,
        "seed": seed,
        "warmup_epochs": warmup_epochs,
        "train_examples": train_examples,
        "test_examples": test_examples,
    }
    found = {
        "model": config["model"],
        "dataset": config["data"]["dataset"],
        "binarize": config["data"]["binarize"],
        "train_examples": config["data"].get("train_examples"),
        "test_examples": config["data"].get("test_examples"),
        **{k: config["train"][k] for k in ("batch_size", "seed", "warmup_epochs")},
    }
    stored_options = config["options"]
    differing = {k: (found[k], v) for k, v in wanted.items() if found[k] != v}
    differing.update(
        {k: (stored_options.get(k), v) for k, v in (options or {}).items() if stored_options.get(k) != v}
    )
    if differing:
        changes = ", ".join(f"{k}: {old!r} there, {new!r} asked" for k, (old, new) in differing.items())
        raise FileExistsError(
            f"{run_dir} holds a run with other settings ({changes}); delete it or choose another "
            "output directory"
        )
    payload = load_checkpoint(run_dir, expected_model=model)
    if payload["epoch"] >= epochs:
        return model_from_checkpoint(payload, resolve_device(device))
    net, _ = resume_run(run_dir, epochs=epochs, device=device, progress=progress)
    return net


def environment(device: torch.device) -> dict[str, str]:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def evaluate_run(
    run_dir: str | os.PathLike,
    iw_samples: int = 1000,
    device: str | None = None,
    batch_size: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure the run's model on its test split, draw its figures, write metrics and report."""
    from pixyz_zoo import plots

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    payload = load_checkpoint(run_dir, expected_model=config["model"])
    dev = resolve_device(device or config.get("device", "auto"))
    model = model_from_checkpoint(payload, dev)
    _, test = load_data(config)

    metrics: dict[str, Any] = {"epochs_trained": payload["epoch"], "test_examples": len(test)}
    if payload["history"]:
        last = payload["history"][-1]
        metrics.update({k: last[k] for k in ("train_loss", "test_loss") if k in last})
    ll = evaluate_log_likelihood(model, test, k=iw_samples, batch_size=batch_size, progress=progress)
    metrics["test_elbo"] = ll["elbo"]
    metrics[f"test_iwae_{iw_samples}"] = ll[f"iwae_{iw_samples}"]
    metrics["iw_samples"] = iw_samples

    figures = run_dir / FIGURES
    shown = test.first(32)
    recon = model.reconstruct(shown)
    # a conditional model (CVAE, CMMA) samples given its condition, taken from test examples
    conditions = [c for c in model.generative.cond_var if c in model.modalities]
    samples = model.generate(test.first(64), given=conditions) if conditions else model.sample(64)
    given_text = f" given the test examples' {', '.join(conditions)}" if conditions else ""
    paths = {}
    for name in model.modalities_in_generative():
        modality = model.modalities[name]
        fig = plots.comparison_grid(
            {"data": shown[name], "reconstruction": recon[name].cpu()}, modality=modality, nrow=16
        )
        paths[f"reconstruction_{name}"] = plots.save_figure(fig, figures / f"reconstruction_{name}.png")
        title = f"samples of {name}{given_text}"
        fig = plots.image_grid(samples[name].cpu(), modality=modality, nrow=8, title=title)
        paths[f"samples_{name}"] = plots.save_figure(fig, figures / f"samples_{name}.png")
    fig = plots.draw_graphical_model(model.generative, model.inference, observed=list(model.modalities))
    paths["graphical_model"] = plots.save_figure(fig, figures / "graphical_model.png")
    if payload["history"]:
        paths["training_curve"] = plots.save_figure(
            plots.training_curve(payload["history"]), figures / "training_curve.png"
        )
    write_json(run_dir / METRICS, metrics)
    (run_dir / REPORT).write_text(render_report(config, model, metrics, payload["history"], paths, run_dir))
    return metrics


def render_report(
    config: dict[str, Any],
    model: ZooModel,
    metrics: dict[str, Any],
    history: list[dict[str, float]],
    figures: dict[str, Path],
    run_dir: Path,
) -> str:
    lines = [
        f"# {config['model']} on {config['data']['dataset']}",
        "",
        "## Model",
        "",
        "```",
        str(model).split("Optimizer:")[0].rstrip(),
        "```",
        "",
        "## Settings",
        "",
        f"- options: `{json.dumps(config['options'])}`",
        f"- data: `{json.dumps(config['data'])}`",
        f"- training: `{json.dumps(config['train'])}`",
        f"- environment: `{json.dumps(config.get('environment', {}))}`",
        "",
        "## Test metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    lines += [
        "",
        "ELBO and IWAE are in nats per example (log-likelihood lower bounds: higher is better); "
        "losses are the negative training objective averaged per example.",
        "",
        "## Training history",
        "",
        "| epoch | train loss | test loss | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['epoch']} | {r['train_loss']:.4f} | {r.get('test_loss', nan):.4f} | {r['seconds']:.1f} |"
        for r in history
    ]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({path.relative_to(run_dir)})" for name, path in figures.items()]
    return "\n".join(lines) + "\n"


__all__ = ["CheckpointError", "evaluate_run", "fit_run", "read_config", "resume_run", "train_run"]
