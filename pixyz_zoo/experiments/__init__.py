"""Paper reproductions: ``pixyz-zoo reproduce NAME [--quick]``.

An experiment trains the models a paper compares (each in its own run directory under
``OUT/runs/``, so an interrupted experiment resumes every run from its last checkpoint),
measures them, and writes ``OUT/report.md`` (tables beside the paper's numbers, the settings and
the figures), ``OUT/results.json`` and ``OUT/figures/``. ``quick`` is a small setting that
checks the whole pipeline in minutes (the test suite runs it); ``smoke`` is a seconds-long
setting for the notebooks' tests; ``full`` is the setting the benchmarks record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixyz_zoo.checks import unknown_name
from pixyz_zoo.datasets import MultimodalDataset, load_dataset
from pixyz_zoo.models import ZooModel
from pixyz_zoo.run_spec import RunSpec, integer_at_least, precision_problem
from pixyz_zoo.runs import check_writable_dir, fit_run, write_json

SETTINGS = ("full", "quick", "smoke")


@dataclass
class ExperimentContext:
    """Where and how an experiment runs; passed to the experiment's function.

    Attributes:
        out: output directory (``report.md``, ``results.json``, ``figures/``, ``runs/``).
        setting: ``full``, ``quick`` (minutes on 2 CPU cores) or ``smoke`` (seconds; a pipeline check
            whose numbers mean nothing).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``.
        data_root: dataset folder (default ``$PIXYZ_ZOO_DATA`` or ``./data``).
        seed: seed of every run.
        progress: show progress bars.
        dataset: the dataset chosen by the user (``reproduce --dataset``) among the experiment's
            ``datasets``; None: the setting's default (see :meth:`dataset_or`).
        precision: every run's training precision, ``fp32`` or ``bf16`` (``reproduce --precision``;
            see ``RunSpec``); a finished run is loaded whatever its precision.
        download: let torchvision download missing data files (``reproduce --download``).
        figure_errors: figures that :meth:`draw` could not draw, with the error (reported by
            :meth:`finish`).
    """

    out: Path
    setting: str = "full"
    device: str = "auto"
    data_root: str | None = None
    seed: int = 0
    progress: bool = True
    dataset: str | None = None
    precision: str = "fp32"
    download: bool = False
    started: float = field(default_factory=time.perf_counter)
    figure_errors: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {self.setting!r}")
        self.out = Path(self.out)

    @property
    def quick(self) -> bool:
        """True for the quick and smoke settings."""
        return self.setting != "full"

    def pick(self, full: Any, quick: Any, smoke: Any) -> Any:
        """The value for this setting."""
        return {"full": full, "quick": quick, "smoke": smoke}[self.setting]

    def dataset_or(self, full: str, quick: str, smoke: str) -> str:
        """The dataset the user chose, else this setting's default."""
        return self.dataset if self.dataset is not None else self.pick(full, quick, smoke)

    @property
    def figures(self) -> Path:
        path = self.out / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fit(self, key: str, model: str, dataset: str, **settings: Any) -> ZooModel:
        """Train (or resume, or load when finished) the run ``OUT/runs/key``; see ``runs.fit_run``.

        ``settings``: the run's settings by name (``options``, ``epochs``, ``batch_size``, ...; see
        ``RunSpec.from_settings``); the seed, the device, the data root, the precision and the
        download permission default to this context's.
        """
        context = {
            "seed": self.seed,
            "device": self.device,
            "data_root": self.data_root,
            "precision": self.precision,
            "download": self.download,
        }
        spec = RunSpec.from_settings(model, dataset=dataset, **{**context, **settings})
        return fit_run(spec, self.out / "runs" / key, progress=self.progress)

    def load(self, dataset: str, split: str, **kwargs: Any) -> MultimodalDataset:
        """``load_dataset(dataset, split)`` from this context's data root, with its seed and download
        permission; ``kwargs`` (e.g. ``binarize``) as ``load_dataset`` takes them."""
        kwargs = {"root": self.data_root, "seed": self.seed, "download": self.download, **kwargs}
        return load_dataset(dataset, split, **kwargs)

    def draw(self, name: str, make: Callable[[], Any]) -> str | None:
        """Draw a figure with ``make()`` and save it as ``figures/name.png``; its path relative to
        ``out`` (what ``report.md`` links), or None when it could not be drawn.

        A figure that fails is logged and listed in ``report.md`` and ``results.json``
        (``figure_errors``) instead of stopping the experiment: the measured numbers are kept.
        """
        from pixyz_zoo import plots

        try:
            path = plots.save_figure(make(), self.figures / f"{name}.png")
        except Exception as error:  # a figure never costs the measurements
            self.figure_errors[name] = f"{type(error).__name__}: {error}"
            self.log(f"figure {name} could not be drawn: {self.figure_errors[name]}")
            return None
        return str(path.relative_to(self.out))

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", flush=True)

    def finish(self, report: str, results: dict[str, Any]) -> dict[str, Any]:
        """Write ``report.md`` and ``results.json`` (with the settings and the wall time)."""
        if self.figure_errors:
            results = {**results, "figure_errors": dict(self.figure_errors)}
            report = (
                report.rstrip()
                + "\n\n## Figures that could not be drawn\n\n"
                + "\n".join(f"- `{name}`: {error}" for name, error in self.figure_errors.items())
            )
        results = {
            **results,
            "setting": self.setting,
            "seed": self.seed,
            "wall_seconds": round(time.perf_counter() - self.started, 1),
        }
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "results.json", results)
        footer = (
            f"\n\n---\nSetting: {results['setting']}, seed {self.seed}, wall time of this "
            f"invocation {results['wall_seconds']:.0f} s (runs finished earlier are loaded, not retrained).\n"
        )
        (self.out / "report.md").write_text(report.rstrip() + footer)
        return results


@dataclass(frozen=True)
class Experiment:
    """A registered experiment; ``datasets``: those ``reproduce --dataset`` accepts (empty: the
    experiment's data is fixed by the paper it reproduces)."""

    name: str
    description: str
    run: Callable[[ExperimentContext], dict[str, Any]]
    datasets: tuple[str, ...] = ()


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(name: str, description: str, datasets: tuple[str, ...] = ()):
    """Decorator registering ``run(context) -> results`` as ``pixyz-zoo reproduce name``;
    ``datasets``: the datasets a user may choose with ``--dataset`` (read by the experiment
    through :meth:`ExperimentContext.dataset_or`)."""

    def wrap(run: Callable[[ExperimentContext], dict[str, Any]]) -> Callable[[ExperimentContext], dict]:
        EXPERIMENTS[name] = Experiment(name, description, run, tuple(datasets))
        return run

    return wrap


def _load_all() -> None:
    """Import the experiment modules (they register themselves)."""
    from pixyz_zoo.experiments import (  # noqa: F401
        attribute_mnist,
        beta_vae,
        iterative_inference,
        iterative_multimodal,
        jmvae,
        jmvae_images,
        mfm,
        multimodal_benchmark,
    )


def reproduce(
    name: str,
    out: str | Path | None = None,
    setting: str = "full",
    device: str = "auto",
    data_root: str | None = None,
    seed: int = 0,
    progress: bool = True,
    dataset: str | None = None,
    precision: str = "fp32",
    download: bool = False,
) -> dict[str, Any]:
    """Run the experiment ``name`` in ``setting`` (full, quick, smoke); returns its results (also
    in ``OUT/results.json``). ``dataset``: one of the experiment's ``datasets`` instead of the
    setting's default (None). ``precision`` and ``download``: see :class:`ExperimentContext`."""
    experiment = check_experiment(name, dataset, device, seed, precision)
    out = Path(out) if out is not None else default_out(name, setting, dataset)
    check_writable_dir(out)
    context = ExperimentContext(out, setting, device, data_root, seed, progress, dataset, precision, download)
    return experiment.run(context)


def check_experiment(
    name: str,
    dataset: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    precision: str | None = None,
) -> Experiment:
    """The registered experiment ``name``, or a clear error when there is none, when it does not
    take ``dataset`` (None: the setting's default), when ``device`` is not at hand or when ``seed``
    or ``precision`` is not one a run takes: before any run starts."""
    from pixyz_zoo.training import resolve_device

    if device is not None:
        resolve_device(device)
    checks = (("seed", seed, integer_at_least(0)), ("precision", precision, precision_problem))
    for option, value, check in checks:
        problem = check(value) if value is not None else None
        if problem:
            raise ValueError(f"{option} (--{option}) {problem}")
    _load_all()
    if name not in EXPERIMENTS:
        raise KeyError(unknown_name("experiment", name, EXPERIMENTS))
    experiment = EXPERIMENTS[name]
    if dataset is not None and dataset not in experiment.datasets:
        if experiment.datasets:
            accepted = ", ".join(experiment.datasets)
            advice = f"it accepts {accepted}. Choose one of those, or leave --dataset out"
        else:
            advice = "its datasets are fixed by the paper it reproduces. Leave --dataset out"
        raise ValueError(
            f"experiment {name!r} cannot run on dataset {dataset!r}: {advice} for the setting's default."
        )
    return experiment


def default_out(name: str, setting: str = "full", dataset: str | None = None) -> Path:
    """``runs/reproduce-NAME[-DATASET][-SETTING]``: a chosen dataset gets its own directory, so its
    runs never meet the default dataset's (the setting is omitted when ``full``)."""
    parts = [name] + ([dataset] if dataset is not None else []) + ([setting] if setting != "full" else [])
    return Path("runs") / f"reproduce-{'-'.join(parts)}"


def experiment_names() -> list[str]:
    _load_all()
    return sorted(EXPERIMENTS)


def image(caption: str, path: str | None) -> str:
    """A Markdown image link ``![caption](path)``; a note when the figure could not be drawn."""
    if path is None:
        return f"*({caption}: not drawn, see the end of this report)*"
    return f"![{caption}]({path})"


def details(summary: str, body: str) -> str:
    """A collapsed section (HTML ``<details>``, rendered by GitHub and most Markdown viewers)."""
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>"


def read_results(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "results.json").read_text())


__all__ = [
    "SETTINGS",
    "EXPERIMENTS",
    "Experiment",
    "ExperimentContext",
    "check_experiment",
    "experiment_names",
    "details",
    "image",
    "read_results",
    "default_out",
    "register_experiment",
    "reproduce",
]
