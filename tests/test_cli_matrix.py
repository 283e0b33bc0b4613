"""Every registered model trains and evaluates from the command line on every dataset it accepts.

The model x dataset pairs are derived from the code, not listed by hand: every model of
``pixyz_zoo.models.MODELS`` is built on the modalities of every dataset of
``pixyz_zoo.datasets.DATASETS`` that is at hand (offline, or its files under the data root:
``$PIXYZ_ZOO_DATA`` or ``../shared/data``), and a pair fits when the model accepts the dataset's
modalities; a model with a ``target`` option (CVAE, CMMA) is tried with each modality as target
(the translation model, which reads every other modality, with the first of each likelihood family),
and a model that predicts the class (``needs_labels``: MFM) on the dataset with its labels added as
the modality ``y``, as the run code does.
Each fitting pair runs ``pixyz-zoo train`` (tiny networks, 40 training and 20 test examples, one
epoch, 3 importance samples) and ``pixyz-zoo evaluate`` through ``pixyz_zoo.cli.main``. A pair
that does not fit is refused before anything is written, with a message naming the problem.
"""

from __future__ import annotations

import functools
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from pixyz_zoo import runs
from pixyz_zoo.cli import main
from pixyz_zoo.datasets import DATA_ROOT_ENV, DATASETS, MultimodalDataset, load_dataset
from pixyz_zoo.models import MODELS, build_model, model_options

TINY = {"hidden": [16], "z_dim": 2, "style_dim": 2}
SMALL = ["--epochs", "1", "--train-examples", "40", "--test-examples", "20", "--batch-size", "20"]


def data_root() -> Path | None:
    """``$PIXYZ_ZOO_DATA`` or ``../shared/data`` (beside the checkout), where it exists."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    if os.environ.get(DATA_ROOT_ENV):
        candidates.insert(0, Path(os.environ[DATA_ROOT_ENV]))
    return next((root for root in candidates if root.is_dir()), None)


ROOT = data_root()


@functools.cache
def _load(name: str, split: str, **kwargs: Any) -> MultimodalDataset:
    return load_dataset(name, split, **kwargs)


def cached_load_dataset(name: str, split: str = "train", **kwargs: Any) -> MultimodalDataset:
    """``load_dataset`` loading each (dataset, split, settings) once for the whole matrix."""
    return _load(name, split, **kwargs)


def dataset_at_hand(name: str) -> MultimodalDataset | None:
    """The test split of ``name`` when both splits load here, else None (files absent)."""
    root = None if DATASETS[name].offline else ROOT
    if root is None and not DATASETS[name].offline:
        return None
    try:
        cached_load_dataset(name, "train", root=str(root) if root else None)
        return cached_load_dataset(name, "test", root=str(root) if root else None)
    except FileNotFoundError:
        return None


def tiny_options(model: str) -> dict[str, Any]:
    return {k: v for k, v in TINY.items() if k in model_options(model)}


def model_modalities(model: str, data: MultimodalDataset) -> dict:
    """The modalities ``model`` is built on from ``data``: with the labels added for MFM (as ``runs``)."""
    if MODELS[model].needs_labels and data.labels is not None:
        return data.with_labels().modalities
    return data.modalities


def refusal(model: str, modalities: dict, options: dict[str, Any]) -> str | None:
    """Why ``model`` does not accept ``modalities`` (its constructor's message), None if it does."""
    try:
        build_model(model, modalities, **options)
    except (ValueError, KeyError) as error:
        return str(error)
    return None


def cases() -> tuple[list[Any], list[Any]]:
    fitting, absent = [], []
    for dataset in sorted(DATASETS):
        test = dataset_at_hand(dataset)
        if test is None:
            absent.append(pytest.param(dataset, id=dataset))
            continue
        for model in sorted(MODELS):
            variants: list[dict[str, Any]] = [{}]
            if "target" in model_options(model):
                targets = list(test.modalities)
                if "observed" in model_options(model):  # a translation: one target per likelihood family
                    families = {test.modalities[m].likelihood: m for m in reversed(targets)}
                    targets = [m for m in targets if m in families.values()]
                variants = [{"target": m} for m in targets]
            for extra in variants:
                options = {**tiny_options(model), **extra}
                if refusal(model, model_modalities(model, test), options) is None:
                    name = "-".join([model, *(f"{k}={v}" for k, v in extra.items()), dataset])
                    fitting.append(pytest.param(model, dataset, extra, id=name))
    return fitting, absent


FITTING, ABSENT = cases()


@pytest.fixture
def cached_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs load each dataset once per test session (the runs only take its first examples)."""
    monkeypatch.setattr(runs, "load_dataset", cached_load_dataset)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def option_args(options: dict[str, Any]) -> list[str]:
    return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]


def check_run(run: Path, model: str, dataset: str, options: dict[str, Any], iw: int, err: str) -> None:
    """metrics.json with finite bounds (or the reason they do not apply), report.md and every figure,
    drawn without a warning."""
    assert "warning: figure" not in err, err
    metrics = json.loads((run / "metrics.json").read_text())
    modalities = model_modalities(model, dataset_at_hand(dataset))
    built = build_model(model, modalities, **{**tiny_options(model), **options})
    if built.likelihood_not_applicable:  # deterministic encoders (MFM): the reason, and its own metrics
        assert metrics["likelihood_bounds"] == f"not computed: {built.likelihood_not_applicable}"
        assert "test_elbo" not in metrics
        if built.needs_labels:
            assert 0 <= metrics["label_accuracy"] <= 1
        else:  # a translation: the conditional likelihood of its target
            assert math.isfinite(metrics["target_log_likelihood"])
    else:
        assert math.isfinite(metrics["test_elbo"]) and math.isfinite(metrics[f"test_iwae_{iw}"])
        assert metrics[f"test_iwae_{iw}"] >= metrics["test_elbo"] - 1e-4  # log-mean-exp >= mean
    report = (run / "report.md").read_text()
    assert "Figures not drawn" not in report
    generated = [m for m in modalities if m in built.modalities_in_generative()]
    names = [f"{kind}_{m}" for m in generated for kind in ("reconstruction", "samples")]
    names += ["graphical_model", "training_curve"]
    for name in names:
        path = run / "figures" / f"{name}.png"
        assert path.exists(), name
        width, height = png_size(path)
        assert 1 / 5 < width / height < 12, (name, width, height)  # no strip
    # the report lists the figures in the dataset's declaration order
    listed = [line.split("](")[0][2:] for line in report.splitlines() if line.startswith("![")]
    assert listed == names, listed


@pytest.mark.slow
@pytest.mark.parametrize("model,dataset,options", FITTING)
def test_every_model_trains_and_evaluates_on_every_dataset_it_accepts(
    model: str, dataset: str, options: dict[str, Any], tmp_path: Path, capsys, cached_data
) -> None:
    """``train --no-eval`` then ``evaluate``: the evaluation after ``train`` is the same call
    (``evaluate_run`` on the run directory; tested end to end in test_cli.py), drawn once here to
    keep the matrix within minutes."""
    run = tmp_path / "run"
    args = ["train", model, "--dataset", dataset, "--out", str(run), "--no-progress", "--device", "cpu"]
    args += [*SMALL, "--no-eval", *option_args({**tiny_options(model), **options})]
    if ROOT is not None:
        args += ["--data-root", str(ROOT)]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    assert (run / "checkpoint.pt").exists() and not (run / "metrics.json").exists()
    code = main(["evaluate", str(run), "--iw-samples", "3", "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    check_run(run, model, dataset, options, 3, err)


@pytest.mark.parametrize("dataset", ABSENT)
def test_datasets_without_their_files(dataset: str) -> None:
    pytest.skip(f"{dataset}: its files are not under the data root ({ROOT}); its pairs are not run")


def test_the_matrix_covers_every_model_and_the_offline_datasets() -> None:
    models = {p.values[0] for p in FITTING}
    assert models == set(MODELS)
    offline = {name for name, info in DATASETS.items() if info.offline}
    assert offline <= {p.values[1] for p in FITTING}
    # the multimodal models run on the multimodal datasets, the conditional ones in both directions
    pairs = {(p.values[0], p.values[1], tuple(p.values[2].items())) for p in FITTING}
    assert ("mopoe", "trimodal-digits", ()) in pairs and ("mvae", "polydigits", ()) in pairs
    assert {("cvae", "digits", (("target", t),)) for t in ("x", "y")} <= pairs
    # MFM on a dataset with a label modality and on one whose labels the run code adds
    assert {("mfm", "digits", ()), ("mfm", "trimodal-digits", ())} <= pairs
    assert {("translation", "trimodal-digits", (("target", t),)) for t in ("m", "s", "t")} <= pairs


@pytest.mark.parametrize(
    "model,dataset,options,message",
    [
        ("jmvae", "colored-shapes", [], "two or more modalities"),
        ("mopoe", "dsprites-procedural", [], "two or more modalities"),
        ("cvae", "attribute-digits", [], "exactly 2 modalities"),
        ("cmma", "trimodal-digits", [], "exactly 2 modalities"),
        ("cvae", "digits", ["-o", "target=q"], "target='q' is not a modality"),
        ("mfm", "colored-shapes", [], "has neither a label modality 'y' nor class labels"),
        ("translation", "colored-shapes", [], "needs at least 2 modalities"),
        ("translation", "trimodal-digits", ["-o", "observed=['t']"], "target 't' is also observed"),
    ],
)
def test_a_model_refuses_a_dataset_it_does_not_accept_before_writing_anything(
    model: str, dataset: str, options: list[str], message: str, tmp_path: Path, capsys, cached_data
) -> None:
    run = tmp_path / "run"
    args = ["train", model, "--dataset", dataset, "--out", str(run), "--no-progress", *SMALL, *options]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not run.exists()


@pytest.mark.parametrize(
    "model,dataset,options,message",
    [
        ("cvae", "mnist-svhn-text", [], "exactly 2 modalities, got ['m', 's', 't']"),
        ("mopoe", "dsprites", [], "two or more modalities jointly, got ['x']"),
        ("mfm", "dsprites", [], "has neither a label modality 'y' nor class labels"),
        ("mopoe", "mnist", ["--modalities", "x"], "two or more modalities jointly, got ['x']"),
        ("vae", "fashion-mnist", ["--modalities", "q"], "dataset 'fashion-mnist' has no modality ['q']"),
        ("jmvae-gan", "polymnist", [], "one image modality adversarially and the data has 5"),
    ],
)
def test_a_model_refuses_a_dataset_before_its_files_are_read(
    model: str, dataset: str, options: list[str], message: str, tmp_path: Path, capsys
) -> None:
    """The data root is empty: had the run read (or fetched) a file first, it would have failed on it."""
    run, empty = tmp_path / "run", tmp_path / "no-files"
    empty.mkdir()
    args = ["train", model, "--dataset", dataset, "--data-root", str(empty), "--out", str(run), *options]
    assert main([*args, "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert message in err and "missing" not in err and "Traceback" not in err, err
    assert "run directory" not in out and not run.exists() and not any(empty.iterdir())


def test_the_library_refuses_a_model_that_does_not_fit_before_reading_files(tmp_path: Path) -> None:
    from pixyz_zoo.run_spec import RunSpec

    spec = RunSpec.from_settings("cvae", dataset="trimodal-mnist", data_root=str(tmp_path))
    with pytest.raises(ValueError, match="exactly 2 modalities"):
        runs.train_run(spec, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    # a fitting run goes on to read the files, and names the missing ones
    spec = RunSpec.from_settings(
        "cvae", dataset="trimodal-mnist", data_root=str(tmp_path), modalities=["m", "t"]
    )
    with pytest.raises(FileNotFoundError, match="MNIST"):
        runs.train_run(spec, tmp_path / "run")


def test_a_figure_that_cannot_be_drawn_is_reported_and_the_metrics_kept(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, cached_data
) -> None:
    from pixyz_zoo import plots

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("cannot draw this in the test")

    drawn_after_metrics = []
    save_figure = plots.save_figure

    def save_checking_metrics(fig: Any, path: Path) -> Path:
        drawn_after_metrics.append((Path(path).parents[1] / "metrics.json").exists())
        return save_figure(fig, path)

    monkeypatch.setattr(plots, "image_grid", broken)
    monkeypatch.setattr(plots, "save_figure", save_checking_metrics)
    run = tmp_path / "run"
    args = ["train", "mvae", "--dataset", "digits", "--out", str(run), "--no-progress", *SMALL]
    assert main([*args, "--iw-samples", "3", *option_args(tiny_options("mvae"))]) == 0
    err = capsys.readouterr().err
    assert "warning: figure samples_x not drawn (ValueError: cannot draw this in the test)" in err
    assert "warning: figure samples_y not drawn" in err
    assert math.isfinite(json.loads((run / "metrics.json").read_text())["test_iwae_3"])
    report = (run / "report.md").read_text()
    assert "- `samples_x`: ValueError: cannot draw this in the test" in report
    assert "![reconstruction_x](figures/reconstruction_x.png)" in report
    assert drawn_after_metrics and all(drawn_after_metrics)
    assert not (run / "figures" / "samples_x.png").exists()


def test_the_cli_and_evaluate_run_share_the_default_number_of_importance_samples() -> None:
    import pixyz_zoo.cli

    assert pixyz_zoo.cli.IW_SAMPLES == runs.IW_SAMPLES
    parser = pixyz_zoo.cli.build_parser()
    assert parser.parse_args(["train", "vae"]).iw_samples == runs.IW_SAMPLES
    assert parser.parse_args(["evaluate", "runs/x"]).iw_samples == runs.IW_SAMPLES
