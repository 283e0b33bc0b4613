"""Run directories: ``config.json``, ``checkpoint.pt``, ``metrics.json``, ``figures/``, ``report.md``.

``train_run`` trains the run a :class:`~pixyz_zoo.run_spec.RunSpec` describes into a run directory
(``resume_run`` and ``fit_run`` continue one), ``evaluate_run`` measures and reports it. The CLI is a
thin layer over these.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
from collections.abc import Callable
from math import nan
from pathlib import Path
from typing import Any

import torch

from pixyz_zoo import distributed
from pixyz_zoo.datasets import DATASETS, MultimodalDataset, load_dataset, resolve_data_root
from pixyz_zoo.evaluation import evaluate_log_likelihood
from pixyz_zoo.evaluation.objective import objective_term_means
from pixyz_zoo.markdown import markdown_cell, markdown_table
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import MODELS, ZooModel, build_model
from pixyz_zoo.run_spec import DataSpec, Difference, ModelSpec, RunSpec, TrainSpec, plain, spec_differences
from pixyz_zoo.training import (
    CHECKPOINT,
    CheckpointError,
    Trainer,
    load_checkpoint,
    modalities_to_json,
    model_from_checkpoint,
    resolve_device,
    seed_everything,
)

CONFIG = "config.json"
METRICS = "metrics.json"
#: the key of the test objective's terms in ``metrics.json`` (:func:`objective_term_means`)
OBJECTIVE_TERMS = "test_objective_terms"
REPORT = "report.md"
FIGURES = "figures"
#: drawn by ``evaluate --refine-steps`` (:mod:`pixyz_zoo.refinement_runs`) with the metrics it adds
REFINEMENT_FIGURE = "refinement.png"
#: Default importance samples of the evaluation's IWAE bound: the default ``train vae`` then spends
#: less time evaluating than training (benchmarks/iwae_cost.py, "default_train_vae").
IW_SAMPLES = 500


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG
    if Path(run_dir).is_file() and (Path(run_dir).parent / CONFIG).exists():
        raise FileNotFoundError(
            f"{run_dir} is a file of the run directory {Path(run_dir).parent}: pass the directory"
        )
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} is not a run directory: {path} is missing. Pass the --out directory of a "
            "`pixyz-zoo train` run"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it was damaged or edited by hand") from error
    missing = [
        k for k in ("model", "options", "data", "train") if not isinstance(config, dict) or k not in config
    ]
    if missing:
        raise ValueError(f"{path} is not a pixyz-zoo run config: it has no {missing}")
    return config


def check_run_dir(run_dir: str | os.PathLike) -> None:
    """Refuse an output directory that holds a run already or cannot be created (before any work)."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        raise FileExistsError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out"
        )
    check_writable_dir(run_dir)


def check_writable_dir(run_dir: str | os.PathLike, what: str = "the run directory") -> None:
    """Refuse an output directory that cannot be created or written (a file in its way, no permission)."""
    run_dir = Path(run_dir)
    for path in (run_dir, *run_dir.parents):
        if path.exists():
            if not path.is_dir():
                raise NotADirectoryError(
                    f"cannot make {what} {run_dir}: {path} is a file, not a directory; choose another --out"
                )
            if not os.access(path, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write {what} {run_dir} under {path}; choose another --out")
            return


def _make_run_dir(run_dir: Path) -> list[Path]:
    """Create ``run_dir`` (and its missing parents); returns the directories created, deepest last."""
    created = [path for path in (*reversed(run_dir.parents), run_dir) if not path.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    return created


def _remove_unsaved_run(run_dir: Path, created: list[Path]) -> None:
    """Undo a run that stopped before its first checkpoint: its config and the folders it made."""
    for name in (CONFIG, CONFIG + ".tmp", CHECKPOINT + ".tmp", "history.json"):
        (run_dir / name).unlink(missing_ok=True)
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:  # not empty: something else was put there
            break


def resume_conflicts(config: dict[str, Any] | RunSpec, asked: RunSpec) -> list[Difference]:
    """The settings of ``asked`` that differ from the run of ``config`` (its ``config.json`` or its
    :class:`RunSpec`); see :func:`~pixyz_zoo.run_spec.spec_differences`. A run continues only as it
    was made: everything but the settings :meth:`RunSpec.resume_settings` names (the number of epochs,
    the device, ``check_every``, ``precision``) is fixed by its first invocation.
    """
    stored = config if isinstance(config, RunSpec) else RunSpec.from_config(config)
    return spec_differences(stored, asked)


def checkpoint_differences(config: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    """How the checkpoint ``payload`` disagrees with the run's ``config`` (empty: it belongs to it)."""
    differences = []
    if payload["model_name"] != config["model"]:
        differences.append(
            f"model {payload['model_name']!r} in the checkpoint, {config['model']!r} in config.json"
        )
    saved, stored = plain(payload["model_config"]), plain(config["options"])
    for key in sorted(set(saved) | set(stored)):
        if saved.get(key, "(absent)") != stored.get(key, "(absent)"):
            differences.append(
                f"option {key}: {saved.get(key, '(absent)')!r} in the checkpoint, "
                f"{stored.get(key, '(absent)')!r} in config.json"
            )
    if "modalities" in config and plain(payload["modalities"]) != plain(config["modalities"]):
        differences.append(
            f"modalities {plain(payload['modalities'])} in the checkpoint, {config['modalities']} in "
            "config.json"
        )
    trainer = payload.get("trainer", {})
    later = {"world_size": 1}  # settings added since: a config.json without one has the default
    for key in ("batch_size", "seed", "warmup_epochs", "world_size"):
        stored = config["train"].get(key, later.get(key))
        if key in trainer and trainer[key] != stored:
            differences.append(f"{key} {trainer[key]!r} in the checkpoint, {stored!r} in config.json")
    if payload["epoch"] > config["train"]["epochs"]:
        differences.append(
            f"the checkpoint has trained {payload['epoch']} epochs, config.json asks for "
            f"{config['train']['epochs']}"
        )
    if len(payload["history"]) != payload["epoch"]:
        differences.append(
            f"the checkpoint is at epoch {payload['epoch']} but its history has "
            f"{len(payload['history'])} epochs"
        )
    return differences


def load_run_checkpoint(run_dir: str | os.PathLike, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint of ``run_dir``, checked against the run's ``config.json``.

    A checkpoint made with another model, other options, other modalities or other training
    settings than the run's config (a checkpoint copied in from elsewhere, a config edited by
    hand) is refused: a report or a resume would mix two runs.
    """
    run_dir = Path(run_dir)
    config = config if config is not None else read_config(run_dir)
    payload = load_checkpoint(run_dir)
    differences = checkpoint_differences(config, payload)
    if differences:
        raise CheckpointError(
            f"the checkpoint in {run_dir} was not made with the run's {CONFIG}: "
            f"{'; '.join(differences)}. It belongs to another run (copied in, or {CONFIG} edited): "
            f"put back this run's own {CHECKPOINT}, or train a new run with another --out"
        )
    return payload


def load_data(spec: RunSpec | dict[str, Any]) -> tuple[MultimodalDataset, MultimodalDataset]:
    """The training and test splits of the run ``spec`` (a :class:`RunSpec` or its ``config.json``)."""
    spec = spec if isinstance(spec, RunSpec) else RunSpec.from_config(spec)
    data, seed = spec.data, spec.train.seed
    kwargs = dict(root=data.root, binarize=data.binarize, seed=seed)
    if DATASETS[data.dataset].offline:
        train, test = _offline_split(spec, "train"), _offline_split(spec, "test")
    else:
        train = load_dataset(data.dataset, "train", download=data.download, **kwargs)
        test = load_dataset(data.dataset, "test", download=data.download, **kwargs)
    train, test = (as_the_run_reads(spec, d) for d in (train, test))
    return _first(train, data.train_examples, "train"), _first(test, data.test_examples, "test")


def as_the_run_reads(spec: RunSpec, dataset: MultimodalDataset) -> MultimodalDataset:
    """``dataset`` with only the modalities the run reads (``--modalities``), as its model reads it
    (:func:`data_for_model`)."""
    if spec.data.modalities is not None:
        dataset = dataset.select(list(spec.data.modalities))
    return data_for_model(spec.model.name, spec.model.options, dataset)


def run_modalities(spec: RunSpec) -> dict[str, Modality] | None:
    """The modalities the run's model is built on (``--modalities``, and the class label of a model
    that predicts it), known without reading a file: from the dataset's declaration
    (:meth:`~pixyz_zoo.datasets.DatasetInfo.without_examples`), or from its test split when it is
    offline. None for a dataset read from files that declares nothing (CelebA, CUB)."""
    info = DATASETS[spec.data.dataset]
    dataset = _offline_split(spec, "test") if info.offline else info.without_examples()
    return None if dataset is None else as_the_run_reads(spec, dataset).modalities


def check_model_fits_data(spec: RunSpec) -> list[str]:
    """Refuse a run whose model does not fit its dataset (a joint model on one modality, CVAE on
    three, MFM without a class label, an unknown ``--modalities`` name), before any file is read:
    the model is built on :func:`run_modalities`, or on an offline dataset as the run loads it (no file
    needed; the run reuses it), which also checks ``--train-examples`` and ``--test-examples``.
    A dataset that declares nothing (CelebA, CUB) is checked when it is loaded. Returns notes on
    what the run takes without using: the dataset's modalities the model leaves out (a VAE models
    one of them), a ``decoder_scale`` that no decoder of the model has."""
    offline = DATASETS[spec.data.dataset].offline
    modalities = load_data(spec)[0].modalities if offline else run_modalities(spec)
    if modalities is None:
        return []
    model = build_model(spec.model.name, modalities, **spec.model.options)
    notes = []
    left_out = [name for name in modalities if name not in model.modalities]
    if left_out:
        notes.append(
            f"{spec.model.name} leaves out {left_out} of {spec.data.dataset} (its options choose the "
            f"modalities it models, see `pixyz-zoo list {spec.model.name}`; --modalities selects some)"
        )
    scale = spec.model.options.get("decoder_scale")
    decoded = {name: model.modalities[name].likelihood for name in model.modalities_in_generative()}
    if scale is not None and not {"gaussian", "laplace"} & set(decoded.values()):
        notes.append(
            f"decoder_scale={scale!r} has no effect: it is the scale of Gaussian and Laplace decoders, and "
            f"{spec.model.name} decodes {decoded}"
        )
    return notes


def data_for_model(model: str, options: dict[str, Any], dataset: MultimodalDataset) -> MultimodalDataset:
    """``dataset`` as ``model`` reads it: with the class labels as its label modality (option ``label``,
    default ``y``) for a model that predicts the class (``needs_labels``), else unchanged."""
    cls = MODELS.get(model)
    if cls is None or not cls.needs_labels:
        return dataset
    return _with_labels(dataset, options.get("label", "y"), model)


def _with_labels(dataset: MultimodalDataset, label: str, model: str) -> MultimodalDataset:
    """``dataset`` with its class labels as the modality ``label``; else an error naming offline datasets
    that have labels (found by loading them: this is the error path only)."""
    if label in dataset.modalities or dataset.labels is not None:
        return dataset.with_labels(label)
    labelled = [name for name, info in sorted(DATASETS.items()) if info.offline and _has_labels(name, label)]
    raise ValueError(
        f"model {model!r} predicts a class label, and dataset {dataset.name!r} has neither a label modality "
        f"{label!r} nor class labels; use a dataset with labels (offline: {', '.join(labelled)}; with their "
        "files: e.g. trimodal-mnist, mnist-svhn-text, mnist)"
    )


def _has_labels(name: str, label: str) -> bool:
    try:
        dataset = load_dataset(name, "test")
    except Exception:  # a dataset that does not load here is not offered
        return False
    return dataset.labels is not None or (label in dataset.modalities and dataset.modalities[label].is_label)


def _offline_split(spec: RunSpec, split: str) -> MultimodalDataset:
    """A split of the run's offline dataset: generated without files, loaded once per process (an
    experiment trains many runs on it)."""
    data = spec.data
    return _load_offline(
        data.dataset, str(resolve_data_root(data.root)), data.binarize, spec.train.seed, split
    )


@functools.lru_cache(maxsize=4)
def _load_offline(name: str, root: str, binarize: str, seed: int, split: str) -> MultimodalDataset:
    return load_dataset(name, split, root=root, binarize=binarize, seed=seed)


def _first(dataset: MultimodalDataset, n: int | None, split: str) -> MultimodalDataset:
    """The first ``n`` examples of ``dataset``, the run's ``split`` split (all of them when ``n`` is
    None)."""
    if n is None:
        return dataset
    if not 1 <= n <= len(dataset):
        raise ValueError(
            f"{split}_examples (--{split}-examples) must be at most {len(dataset)}, the {split} examples of "
            f"{dataset.name!r}, got {n}; leave it out to use them all"
        )
    return dataset.subset(slice(0, n))


def train_run(
    spec: RunSpec,
    run_dir: str | os.PathLike,
    progress: bool | str = True,
    announce: Callable[[list[str]], None] | None = None,
) -> tuple[ZooModel, Trainer]:
    """Train the run ``spec`` describes into the new run directory ``run_dir``; ``announce`` is called
    once the run is checked, before any data is loaded, with the notes of :func:`check_model_fits_data`
    (the CLI prints the run directory and those there).

    ``config.json`` is ``spec.to_config()`` with the model's options as built (its defaults and what
    it took from the data, such as beta-TCVAE's dataset size), the model's modalities and the
    environment.

    Under ``torchrun`` (:mod:`pixyz_zoo.distributed`) every process calls this: they train
    data-parallel, ``spec.train.batch_size`` per process, and rank 0 alone writes the run directory;
    ``config.json`` records the number of processes (``world_size``).
    """
    run_dir = Path(run_dir)
    # the spec was checked when it was made; the directory, the device and the model's fit to the
    # dataset are checked before any data is loaded or anything is written
    check_run_dir(run_dir)
    dev = resolve_device(distributed.init_from_env(spec.device))
    spec = spec.replace(world_size=distributed.world_size())
    notes = check_model_fits_data(spec)
    if announce is not None:
        announce(notes)
    train, test = load_data(spec)
    seed_everything(spec.train.seed)
    net = build_model(spec.model.name, train.modalities, **spec.model.options).to(dev)
    net.prepare(train)  # settings taken from the data (beta-TCVAE's N) are in the config from the start
    spec = spec.replace(options=net.config)
    config = {
        **spec.to_config(),
        "modalities": modalities_to_json(net.modalities),
        "environment": environment(dev),
    }
    trainer = Trainer(net, train, test, run_dir=run_dir, progress=progress, **spec.train.to_config())
    # training starts: the run directory and its config.json are written now, and removed again
    # when training stops (an error, Ctrl-C) before the first checkpoint
    main = distributed.is_main()
    created = _make_run_dir(run_dir) if main else []
    if main:
        write_json(run_dir / CONFIG, config)
    try:
        trainer.fit()
    except BaseException:
        if main and not (run_dir / CHECKPOINT).exists():
            _remove_unsaved_run(run_dir, created)
        raise
    return net, trainer


def check_run_device(stored: str, asked: str | None, run_dir: str | os.PathLike) -> None:
    """Refuse, naming the fix, to continue or evaluate on the run's own CUDA device (none asked for)
    on a machine without one: the user did not ask for ``cuda`` here, the run's config.json did."""
    if asked is None and str(stored).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"the run in {run_dir} was made with --device {stored}, and PyTorch sees no CUDA device here "
            f"(torch {torch.__version__}): pass --device cpu (device='cpu' in Python) to use it on this "
            "machine"
        )


def resume_run(
    run_dir: str | os.PathLike,
    epochs: int | None = None,
    device: str | None = None,
    progress: bool = True,
    **changes: Any,
) -> tuple[ZooModel, Trainer]:
    """Continue the run in ``run_dir`` from its last checkpoint (up to ``epochs`` in total).

    Only the settings that a resume may change (:meth:`RunSpec.resume_settings`: the number of epochs,
    the device, ``check_every`` and ``precision`` in ``changes``) may change; they are recorded in
    ``config.json``, with each continuation under ``resumed`` (its environment, and the training
    settings it changed, from and to). The checkpoint must belong to the run's config (see
    :func:`load_run_checkpoint`).
    """
    run_dir = Path(run_dir)
    resumable = RunSpec.resume_settings()
    fixed = sorted(set(changes) - set(resumable))
    if fixed:
        raise TypeError(
            f"a resume cannot change {fixed}: a run continues as it was made (it may change {resumable})"
        )
    config = read_config(run_dir)
    payload = load_run_checkpoint(run_dir, config)
    spec = stored = RunSpec.from_config(config)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < max(1, payload["epoch"]):
            raise ValueError(
                f"epochs (--epochs) must be an integer >= {max(1, payload['epoch'])} (the run in {run_dir} "
                f"has trained {payload['epoch']} epochs), got {epochs!r}"
            )
        spec = spec.replace(epochs=epochs)
    check_run_device(stored.device, device, run_dir)
    if device is not None:
        spec = spec.replace(device=device)
    spec = spec.replace(**changes)  # checked: a bad value is refused before anything is loaded
    dev = resolve_device(distributed.init_from_env(spec.device))
    train, test = load_data(spec)
    net = model_from_checkpoint(payload, dev)
    # a run is resumed by as many processes as trained it (the Trainer says so otherwise)
    trainer = Trainer(net, train, test, run_dir=run_dir, progress=progress, **spec.train.to_config())
    trainer.resume(run_dir)
    distributed.barrier()  # every rank has read the run before rank 0 writes to it
    config.update(spec.to_config())
    if payload["epoch"] < spec.train.epochs:
        record: dict[str, Any] = {
            "from_epoch": payload["epoch"],
            "epochs": spec.train.epochs,
            "environment": environment(dev),
        }
        changed = {
            name: {"from": getattr(stored.train, name), "to": getattr(spec.train, name)}
            for name in ("check_every", "precision")
            if getattr(stored.train, name) != getattr(spec.train, name)
        }
        if changed:
            record["changed"] = changed
        config.setdefault("resumed", []).append(record)
    if distributed.is_main():
        write_json(run_dir / CONFIG, config)
    trainer.fit()
    return net, trainer


def fit_run(spec: RunSpec, run_dir: str | os.PathLike, progress: bool | str = True) -> ZooModel:
    """The model of ``run_dir`` trained for ``spec.train.epochs``: trained afresh, resumed, or loaded
    if done.

    This is what experiments use, so that an interrupted experiment resumes each of its runs from
    the last checkpoint. A run directory made with other settings (any but the epochs and the
    device, see :func:`~pixyz_zoo.run_spec.spec_differences`) is an error, never reused.
    """
    run_dir = Path(run_dir)
    distributed.init_from_env(spec.device)  # under torchrun: join the process group first
    if not (run_dir / CHECKPOINT).exists():
        net, _ = train_run(spec, run_dir, progress=progress)
        return net
    spec = spec.replace(world_size=distributed.world_size())  # the processes running now
    config = read_config(run_dir)
    differing = resume_conflicts(config, spec)
    if differing:
        changes = ", ".join(f"{d.setting}: {d.stored!r} there, {d.asked!r} asked" for d in differing)
        raise FileExistsError(
            f"{run_dir} holds a run with other settings ({changes}); delete it or choose another "
            "output directory"
        )
    payload = load_run_checkpoint(run_dir, config)
    if payload["epoch"] >= spec.train.epochs:
        return model_from_checkpoint(payload, resolve_device(spec.device))
    net, _ = resume_run(
        run_dir,
        epochs=spec.train.epochs,
        device=spec.device,
        progress=progress,
        check_every=spec.train.check_every,
        precision=spec.train.precision,
    )
    return net


def environment(device: torch.device) -> dict[str, str]:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


#: what :func:`load_run` returns: the run's config, its checkpoint, the model and the test split
LoadedRun = tuple[dict[str, Any], dict[str, Any], ZooModel, MultimodalDataset]


def load_run(run_dir: str | os.PathLike, device: str | None = None, download: bool = False) -> LoadedRun:
    """A finished or interrupted run as evaluation needs it: its config, its checkpoint (checked
    against the config), the model rebuilt on ``device`` (default: the run's) and its test split
    (``download``: torchvision may fetch data files that have gone, whatever the run's setting)."""
    config, payload, model = load_run_model(run_dir, device)
    return config, payload, model, load_test_split(config, download)


def load_test_split(config: dict[str, Any], download: bool = False) -> MultimodalDataset:
    """The test split of the run made with ``config`` (``download``: see :func:`load_run`)."""
    spec = RunSpec.from_config(config)
    return load_data(spec.replace(download=True) if download else spec)[1]


def load_run_model(
    run_dir: str | os.PathLike, device: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], ZooModel]:
    """A run's config, its checkpoint (checked against the config) and the model rebuilt on
    ``device`` (default: the run's), without its data."""
    config = read_config(run_dir)
    check_run_device(config.get("device", "auto"), device, run_dir)
    payload = load_run_checkpoint(run_dir, config)
    return (
        config,
        payload,
        model_from_checkpoint(payload, resolve_device(device or config.get("device", "auto"))),
    )


def evaluate_run(
    run_dir: str | os.PathLike,
    iw_samples: int = IW_SAMPLES,
    device: str | None = None,
    batch_size: int = 100,
    progress: bool = True,
    download: bool = False,
    loaded: LoadedRun | None = None,
) -> dict[str, Any]:
    """Measure the run's model on its test split, write ``metrics.json``, draw the figures, write
    ``report.md`` (``download``: see :func:`load_run`; ``loaded``: what :func:`load_run` returned for
    this run, when the caller has it already: ``device`` and ``download`` then do nothing).

    The metrics are written before any figure is drawn, and a figure that cannot be drawn is
    reported (a warning line on stderr naming the figure and the error, and a line in the report)
    instead of failing the evaluation.
    """
    run_dir = Path(run_dir)
    config, payload, model, test = loaded or load_run(run_dir, device, download)

    metrics: dict[str, Any] = {"epochs_trained": payload["epoch"], "test_examples": len(test)}
    if payload["history"]:
        last = payload["history"][-1]
        metrics.update({k: last[k] for k in ("train_loss", "test_loss") if k in last})
    if model.likelihood_not_applicable:  # e.g. deterministic encoders: no density to weigh samples by
        metrics["likelihood_bounds"] = f"not computed: {model.likelihood_not_applicable}"
    else:
        ll = evaluate_log_likelihood(model, test, k=iw_samples, batch_size=batch_size, progress=progress)
        metrics["test_elbo"] = ll["elbo"]
        metrics[f"test_iwae_{iw_samples}"] = ll[f"iwae_{iw_samples}"]
        metrics["iw_samples"] = iw_samples
    metrics.update(model.test_metrics(test))
    metrics[OBJECTIVE_TERMS] = objective_term_means(model, test, batch_size)

    write_json(run_dir / METRICS, metrics)
    (run_dir / FIGURES / REFINEMENT_FIGURE).unlink(missing_ok=True)  # its metrics are gone with the old ones

    paths, failures = draw_run_figures(model, test, payload["history"], run_dir / FIGURES)
    report = render_report(config, model, metrics, payload["history"], paths, run_dir, failures)
    (run_dir / REPORT).write_text(report)
    return metrics


def attempt_figure(name: str, function: Any, failures: dict[str, str] | None = None) -> Any:
    """``function()``, or ``None`` where it raises: a figure never costs the metrics. The error goes
    to ``failures[name]`` and, as a warning line naming the figure, to stderr."""
    try:
        return function()
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
        if failures is not None:
            failures[name] = failure
        print(f"pixyz-zoo: warning: figure {name} not drawn ({failure})", file=sys.stderr)
        return None


def draw_run_figures(
    model: ZooModel, test: MultimodalDataset, history: list[dict[str, Any]], figures: Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw a run's figures into ``figures``: per modality (in the dataset's declaration order) the
    test examples beside their reconstructions and samples of the model, then the graphical model
    and the training curve. Returns the paths drawn and, by figure name, the error of each figure
    that could not be drawn (also printed as a warning line on stderr)."""
    from pixyz_zoo import plots

    paths: dict[str, Path] = {}
    failures: dict[str, str] = {}

    def save(name: str, draw: Any, *args: Any, **kwargs: Any) -> None:
        """``draw(*args, **kwargs)`` saved as ``figures/NAME.png``."""
        path = attempt_figure(
            name, lambda: plots.save_figure(draw(*args, **kwargs), figures / f"{name}.png"), failures
        )
        if path is not None:
            paths[name] = path

    shown = test.first(32)
    recon = attempt_figure("reconstructions", lambda: model.reconstruct(shown), failures)
    # a conditional model (CVAE, CMMA) samples given its condition, taken from test examples
    conditions = [c for c in model.generative.cond_var if c in model.modalities]
    samples = attempt_figure(
        "samples",
        lambda: model.generate(test.first(64), given=conditions) if conditions else model.sample(64),
        failures,
    )
    given_text = f" given the test examples' {', '.join(conditions)}" if conditions else ""
    generated = set(model.modalities_in_generative())
    for name in [m for m in model.modalities if m in generated]:  # the declaration's order
        modality = model.modalities[name]
        if recon is not None:
            rows = {"data": shown[name], "reconstruction": recon[name].cpu()}
            save(f"reconstruction_{name}", plots.comparison_grid, rows, modality=modality, nrow=16)
        if samples is not None:
            values, title = samples[name].cpu(), f"samples of {name}{given_text}"
            save(f"samples_{name}", plots.image_grid, values, modality=modality, nrow=8, title=title)
    observed = list(model.modalities)
    save("graphical_model", plots.draw_graphical_model, model.generative, model.inference, observed)
    if history:
        save("training_curve", plots.training_curve, history)
    return paths, failures


def data_parallel_lines(config: dict[str, Any], model: ZooModel) -> list[str]:
    """The report's words on a run trained by several processes: the batch per process and the global
    batch, and what each process estimated from its own share (``ZooModel.batch_couplings``)."""
    world, batch = config["train"].get("world_size", 1), config["train"]["batch_size"]
    if world <= 1:
        return []
    lines = [f"- data parallel: {world} processes at batch {batch} each (global batch {world * batch})"]
    note = distributed.batch_estimate_note(config["model"], model.batch_couplings(), world, batch)
    return lines + ([f"- {note}"] if note else [])


def objective_term_lines(terms: list[dict[str, Any]], history: list[dict[str, Any]]) -> list[str]:
    """The report's tables of the test objective term by term: the final model's (metrics,
    :func:`objective_term_means`) and each epoch's (``test_terms`` of the history). A formula's ``|``
    (as in ``q(z|x)``) is escaped so that the table keeps its columns."""
    if not terms:
        return []
    lines = [
        "",
        "## Test objective term by term",
        "",
        "Each term of the test objective (the model's printed loss, split at its sums), averaged over "
        "the test examples. A batch's terms are evaluated in order with the draws of one evaluation of "
        "the whole objective, so they add up to its test loss; `test_loss` above is the same loss over "
        "the trainer's batches and draws.",
        "",
    ]
    rows = [[f"T{i}", f"`{markdown_cell(term['term'])}`", term["value"]] for i, term in enumerate(terms, 1)]
    rows.append(["", "sum", sum(t["value"] for t in terms)])
    lines.append(markdown_table(["", "term", "final model"], rows, digits=4))
    epochs = [r for r in history if len(r.get("test_terms", ())) == len(terms)]
    if epochs:
        lines += [
            "",
            "Per epoch (the trainer's test batches; `test loss` in the training history is their sum):",
            "",
        ]
        header = ["epoch", *(f"T{i}" for i in range(1, len(terms) + 1))]
        lines.append(markdown_table(header, [[r["epoch"], *r["test_terms"]] for r in epochs], digits=4))
    return lines


def render_report(
    config: dict[str, Any],
    model: ZooModel,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    figures: dict[str, Path],
    run_dir: Path,
    failures: dict[str, str] | None = None,
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
        *data_parallel_lines(config, model),
        "",
        "## Test metrics",
        "",
        markdown_table(
            ["metric", "value"], [[k, v] for k, v in metrics.items() if k != OBJECTIVE_TERMS], digits=4
        ),
        "",
        "ELBO and IWAE are in nats per example (log-likelihood lower bounds: higher is better); "
        "losses are the negative training objective averaged per example.",
        *objective_term_lines(metrics.get(OBJECTIVE_TERMS, []), history),
        "",
        "## Training history",
        "",
        markdown_table(
            ["epoch", "train loss", "test loss", "seconds"],
            [[r["epoch"], r["train_loss"], r.get("test_loss", nan), f"{r['seconds']:.1f}"] for r in history],
            digits=4,
        ),
    ]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({path.relative_to(run_dir)})" for name, path in figures.items()]
    if failures:
        lines += ["", "Figures not drawn (the metrics above are unaffected):", ""]
        lines += [f"- `{name}`: {error}" for name, error in failures.items()]
    return "\n".join(lines) + "\n"


__all__ = [
    "CheckpointError",
    "DataSpec",
    "ModelSpec",
    "RunSpec",
    "TrainSpec",
    "as_the_run_reads",
    "check_model_fits_data",
    "check_run_dir",
    "checkpoint_differences",
    "data_for_model",
    "evaluate_run",
    "fit_run",
    "LoadedRun",
    "load_run",
    "load_run_model",
    "load_test_split",
    "load_run_checkpoint",
    "read_config",
    "resume_conflicts",
    "resume_run",
    "run_modalities",
    "train_run",
]
