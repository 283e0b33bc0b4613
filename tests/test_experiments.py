"""Experiments: the JMVAE reproduction end to end (quick setting, as CI runs it), resuming, refusals."""

from __future__ import annotations

import json
import re

import pytest

import pixyz_zoo  # noqa: F401, I001
from pixyz_zoo import plots
from pixyz_zoo.cli import main
from pixyz_zoo.experiments import ExperimentContext, experiment_names, image, reproduce
from pixyz_zoo.experiments.attribute_mnist import accuracy_figure
from pixyz_zoo.experiments.jmvae import summary_figure
from pixyz_zoo.run_spec import RunSpec
from pixyz_zoo.runs import fit_run


def embedded(report: str, path: str) -> bool:
    """``path`` is shown in the report as an image (``![caption](path)``)."""
    return re.search(rf"!\[[^\]]+\]\({re.escape(path)}\)", report) is not None


def bar_values(fig, panel: int = 0) -> list[float]:
    """The lengths of the visible bars of one panel of a ``plots.metric_bars`` figure."""
    ax = [a for a in fig.axes if a.get_title()][panel]
    return [p.get_width() for p in ax.patches if p.get_visible()]


def test_experiments_are_registered():
    assert {"beta-vae", "jmvae", "attribute-mnist"} <= set(experiment_names())
    with pytest.raises(KeyError, match="unknown experiment 'nope'"):
        reproduce("nope", out="unused")
    with pytest.raises(ValueError, match="setting must be one of"):
        ExperimentContext("unused", setting="huge")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nope"], "unknown experiment 'nope'; available: attribute-mnist, beta-vae"),
        (["beta-vae", "--dataset", "digits"], "experiment 'beta-vae' cannot run on dataset 'digits'"),
        (["jmvae", "--seed", "-3"], "seed (--seed) must be an integer >= 0, got -3"),
    ],
)
def test_cli_refuses_an_unknown_experiment_or_dataset_before_naming_an_output(
    tmp_path, capsys, argv, message
):
    assert main(["reproduce", *argv, "--smoke", "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "output directory" not in captured.out
    assert not (tmp_path / "out").exists()


def test_reproduce_jmvae_quick_writes_table_findings_and_figures(tmp_path, capsys):
    out = tmp_path / "jmvae"
    assert main(["reproduce", "jmvae", "--quick", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["setting"] == "quick"
    for model in ("CVAE", "CMMA", "JMVAE", "JMVAE-kl", "Hierarchical JMVAE"):
        values = results["table_1"][model]
        assert set(values) == {"single_x", "single_w", "multiple_x", "multiple_w"}
        assert all(v < 0 for v in values.values())  # log-likelihoods of discrete data
    assert set(results["findings"]) == {
        "jmvae_single_x_below_jmvae_kl",
        "iterative_sampling_raises_jmvae_single_x",
        "jmvae_kl_without_iterative_sampling_reaches_jmvae_with_it",
    }
    for path in results["figures"].values():
        assert (out / path).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "JMVAE-kl (paper) | -422.350" in report
    # every figure is embedded; the summary bars come before the tables and show Table 1
    assert all(embedded(report, path) for path in results["figures"].values())
    assert report.index(results["figures"]["summary"]) < report.index("| model |")
    models = ["CVAE", "CMMA", "JMVAE", "JMVAE-kl", "Hierarchical JMVAE"]
    assert bar_values(summary_figure(results)) == [results["table_1"][m]["single_x"] for m in models]
    assert "Table 1" in capsys.readouterr().out


def test_rerunning_an_experiment_loads_its_finished_runs(tmp_path):
    out = tmp_path / "jmvae"
    argv = ["reproduce", "jmvae", "--smoke", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    figures = json.loads((out / "results.json").read_text())["figures"]
    assert (out / figures["summary"]).stat().st_size > 0
    assert embedded((out / "report.md").read_text(), figures["summary"])
    checkpoints = sorted((out / "runs").glob("*/checkpoint.pt"))
    assert len(checkpoints) == 10  # CVAE and CMMA twice, three joint models, three z = 2 models
    mtimes = [p.stat().st_mtime_ns for p in checkpoints]
    assert main(argv) == 0
    assert [p.stat().st_mtime_ns for p in checkpoints] == mtimes


def test_fit_run_resumes_and_refuses_other_settings(tmp_path):
    spec = RunSpec.from_settings("vae", epochs=1, batch_size=128, options={"z_dim": 2, "hidden": [16]})
    run = tmp_path / "run"
    model = fit_run(spec, run, progress=False)
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 1
    fit_run(spec.replace(epochs=2), run, progress=False)  # resumes
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    loaded = fit_run(spec.replace(epochs=2), run, progress=False)
    assert type(loaded) is type(model)
    with pytest.raises(FileExistsError, match="z_dim: 2 there, 3 asked"):
        fit_run(spec.replace(epochs=2, options={**spec.model.options, "z_dim": 3}), run, progress=False)


@pytest.mark.slow
def test_reproduce_attribute_mnist_smoke_embeds_its_figures(tmp_path):
    out = tmp_path / "attribute"
    assert main(["reproduce", "attribute-mnist", "--smoke", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert set(results["models"]) == {"JMVAE-kl", "TELBO"} and "figure_errors" not in results
    for path in results["figures"].values():
        assert (out / path).stat().st_size > 0 and embedded(report, path), path
    assert report.index(results["figures"]["accuracy"]) < report.index("| model |")
    accuracy = [r["accuracy"]["y1 from x"] for r in results["models"].values()]
    assert bar_values(accuracy_figure(results)) == accuracy


def test_a_figure_that_cannot_be_drawn_is_reported_and_the_numbers_kept(tmp_path):
    ctx = ExperimentContext(tmp_path, "smoke", progress=False)

    def broken():
        raise ValueError("cannot draw this")

    assert ctx.draw("broken", broken) is None
    fine = ctx.draw("fine", lambda: plots.metric_bars({"A": {"m": 1.0}}))
    assert fine == "figures/fine.png" and (tmp_path / fine).stat().st_size > 0
    results = ctx.finish(f"# report\n\n{image('fine', fine)}\n\n{image('broken', None)}", {"x": 1.5})
    assert results["figure_errors"] == {"broken": "ValueError: cannot draw this"}
    assert json.loads((tmp_path / "results.json").read_text())["x"] == 1.5
    report = (tmp_path / "report.md").read_text()
    assert "![fine](figures/fine.png)" in report and "*(broken: not drawn" in report
    assert "## Figures that could not be drawn\n\n- `broken`: ValueError: cannot draw this" in report


def test_a_dataset_choice_is_checked_and_gets_its_own_output_directory(tmp_path, capsys):
    from pixyz_zoo.experiments import EXPERIMENTS, default_out
    from pixyz_zoo.experiments.multimodal_benchmark import TRIMODAL_DATASETS
    from pixyz_zoo.experiments.multimodal_benchmark import settings as benchmark_settings

    experiment_names()  # registers them all
    for name in ("multimodal-benchmark", "iterative-multimodal"):
        assert EXPERIMENTS[name].datasets == TRIMODAL_DATASETS
    # a choice replaces the default of every setting; no choice keeps them
    for setting, default in (("full", "trimodal-mnist"), ("quick", "trimodal-digits")):
        assert benchmark_settings(ExperimentContext(tmp_path, setting))["dataset"] == default
        chosen = ExperimentContext(tmp_path, setting, dataset="mnist-svhn-text")
        assert benchmark_settings(chosen)["dataset"] == "mnist-svhn-text"
    assert str(default_out("iterative-multimodal")) == "runs/reproduce-iterative-multimodal"
    assert str(default_out("iterative-multimodal", "quick", "mnist-svhn-text")) == (
        "runs/reproduce-iterative-multimodal-mnist-svhn-text-quick"
    )
    # a dataset the experiment does not accept: a clear error before anything runs
    with pytest.raises(ValueError, match="accepts trimodal-mnist, trimodal-digits, mnist-svhn-text"):
        reproduce("multimodal-benchmark", out=tmp_path / "x", setting="smoke", dataset="polymnist")
    assert main(["reproduce", "jmvae", "--smoke", "--dataset", "digits", "--out", str(tmp_path / "y")]) == 1
    err = capsys.readouterr().err
    assert "fixed by the paper it reproduces. Leave --dataset out" in err and "Choose one" not in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "runs").exists()
    # a device that is not at hand: refused before the output directory is announced or made
    assert main(["reproduce", "mfm", "--smoke", "--device", "tpu", "--out", str(tmp_path / "z")]) == 1
    out, err = capsys.readouterr()
    assert "unknown device 'tpu'" in err and "output directory" not in out and not (tmp_path / "z").exists()
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        reproduce("mfm", out=tmp_path / "z", setting="smoke", device="tpu")
    assert not (tmp_path / "z").exists()
    assert main(["list"]) == 0
    assert "--dataset: trimodal-mnist, trimodal-digits, mnist-svhn-text" in capsys.readouterr().out


def test_reproduce_precision_and_download_reach_every_run_and_data_load(tmp_path, monkeypatch, capsys):
    """``reproduce --precision bf16 --download``: the context trains its runs in bf16 (recorded in each
    run's config.json) and loads data with the download permission; left out, fp32 and no download."""
    import pixyz_zoo.experiments as experiments

    contexts: list[ExperimentContext] = []

    def run(ctx: ExperimentContext) -> dict:
        contexts.append(ctx)
        return ctx.finish("# flags", {})

    monkeypatch.setitem(experiments.EXPERIMENTS, "flags", experiments.Experiment("flags", "flags", run))
    monkeypatch.setattr(experiments, "_load_all", lambda: None)
    assert main(["reproduce", "flags", "--smoke", "--out", str(tmp_path / "a"), "--precision", "bf16",
                 "--download", "--no-progress"]) == 0  # fmt: skip
    assert main(["reproduce", "flags", "--smoke", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert [(c.precision, c.download) for c in contexts] == [("bf16", True), ("fp32", False)]
    capsys.readouterr()

    loaded: list[bool] = []
    load = experiments.load_dataset

    def recording(name, split, download=False, **kwargs):
        loaded.append(download)
        return load(name, split, **kwargs)

    monkeypatch.setattr(experiments, "load_dataset", recording)
    ctx = ExperimentContext(tmp_path / "c", "smoke", progress=False, precision="bf16", download=True)
    assert len(ctx.load("digits", "test", binarize="fixed")) == 359 and loaded == [True]
    ctx.fit("tiny", "vae", "digits", epochs=1, batch_size=32, train_examples=64, test_examples=32,
            options={"hidden": [8], "z_dim": 2})  # fmt: skip
    config = json.loads((tmp_path / "c" / "runs" / "tiny" / "config.json").read_text())
    assert config["train"]["precision"] == "bf16" and config["data"]["download"] is True
    with pytest.raises(ValueError, match="precision"):
        ExperimentContext(tmp_path / "d", "smoke", progress=False, precision="fp8").fit("x", "vae", "digits")


def test_reproduce_in_python_refuses_a_precision_or_seed_before_any_run_starts(tmp_path, capsys):
    """``reproduce(..., precision="fp16")`` started the first run (and printed it) before failing."""
    for arguments, message in (
        ({"precision": "fp16"}, r"precision \(--precision\) must be one of fp32, bf16, got 'fp16'"),
        ({"seed": -1}, r"seed \(--seed\) must be an integer >= 0, got -1"),
    ):
        with pytest.raises(ValueError, match=message):
            reproduce("beta-vae", tmp_path / "out", setting="smoke", progress=False, **arguments)
        assert capsys.readouterr().out == "" and not (tmp_path / "out").exists()
