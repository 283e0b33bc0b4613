"""The command line end to end on the bundled digits (tiny networks, few epochs)."""

import json
import shutil
import subprocess
import sys

import pytest

from pixyz_zoo.cli import main

TINY = ["-o", "hidden=[32]", "--z-dim", "4", "--no-progress", "--iw-samples", "5"]


def test_list_shows_models_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vae" in out and "z_dim=64" in out
    assert "digits" in out and "mnist-10k" in out and "offline" in out


def test_list_shows_one_kind_or_the_entries_of_one_name(capsys):
    """``pixyz-zoo list vae`` and ``list models`` failed with "unrecognized arguments"."""
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Models:") and "mopoe" in out and "Datasets:" not in out
    assert main(["list", "Datasets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Datasets:") and "polydigits" in out and "Models:" not in out
    assert main(["list", "beta_vae"]) == 0  # a model and an experiment of that name
    out = capsys.readouterr().out
    assert "Models:\n  beta-vae" in out and "Experiments" in out and "beta-tcvae" not in out
    assert main(["list", "vea"]) == 1
    assert "no model, dataset or experiment is named 'vea'; did you mean 'vae'?" in capsys.readouterr().err


def test_registered_names_are_taken_in_any_case_with_underscores_and_near_misses_are_named(capsys, tmp_path):
    """``train VAE`` and ``--dataset trimodal_digits`` were refused with the list of every choice."""
    from pixyz_zoo.cli import build_parser

    args = build_parser().parse_args(["train", "VAE", "--dataset", "Trimodal_Digits"])
    assert (args.model, args.dataset) == ("vae", "trimodal-digits")
    assert build_parser().parse_args(["graph", "beta_vae"]).model == "beta-vae"
    assert build_parser().parse_args(["reproduce", "mfm", "--dataset", "Trimodal_Digits"]).dataset == (
        "trimodal-digits"
    )
    with pytest.raises(SystemExit):
        main(["train", "vea", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert "argument model: unknown model 'vea'; did you mean 'vae'? (`pixyz-zoo list models`" in err
    assert not (tmp_path / "run").exists()
    assert main(["reproduce", "beta_vae", "--smoke", "--out", str(tmp_path / "r")]) == 1
    assert "unknown experiment 'beta_vae' (did you mean 'beta-vae'?)" in capsys.readouterr().err


def test_the_command_alone_prints_its_commands(capsys):
    """``pixyz-zoo`` alone said only "the following arguments are required: command"."""
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "{list,train,evaluate,graph,reproduce}" in out and "train a model into a run directory" in out


def test_console_script_is_installed():
    exe = shutil.which("pixyz-zoo")
    assert exe is not None, "pip install -e . installs the pixyz-zoo console script"
    result = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "vae" in result.stdout


def test_train_evaluate_resume_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "vae",
                "--epochs",
                "2",
                "--batch-size",
                "128",
                "--seed",
                "1",
                "--out",
                str(run),
                "--device",
                "cpu",
                *TINY,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "p(x,z) = p(x|z)p(z)" in out and "test_iwae_5" in out
    for name in (
        "config.json",
        "checkpoint.pt",
        "metrics.json",
        "report.md",
        "figures/graphical_model.png",
        "figures/reconstruction_x.png",
        "figures/samples_x.png",
        "figures/training_curve.png",
    ):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2 and metrics["test_iwae_5"] < 0
    assert metrics["test_iwae_5"] >= metrics["test_elbo"] - 1.0
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["z_dim"] == 4 and config["train"]["seed"] == 1
    report = (run / "report.md").read_text()
    assert "q(z|x)" in report and "test_elbo" in report and "figures/samples_x.png" in report
    # the test objective term by term: reconstruction and KL, adding up to the negative ELBO that the
    # likelihood evaluator estimates with its own draws (beta = 1)
    terms = metrics["test_objective_terms"]
    assert len(terms) == 2 and r"\mathbb{E}_{q(z|x)} \left[- \log p(x|z) \right]" == terms[0]["term"]
    assert r"D_{KL} \left[q(z|x)||p(z) \right]" in terms[1]["term"] and r"\beta" in terms[1]["term"]
    assert terms[1]["value"] > 0 and abs(sum(t["value"] for t in terms) + metrics["test_elbo"]) < 1.0
    assert r"D_{KL} \left[q(z\|x)\|\|p(z) \right]" in report  # escaped: the table keeps its columns
    assert "Test objective term by term:" in out and "test_objective_terms" not in out

    assert main(["train", "vae", "--resume", str(run), "--epochs", "3", "--no-progress", "--no-eval"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]

    assert main(["evaluate", str(run), "--iw-samples", "3", "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 3


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "vae", "--epochs", "1", "--out", str(run), "--no-eval", *TINY]
    assert main(args) == 0
    assert main(args) == 1
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    # a file of the run given instead of its directory
    for command in (
        ["evaluate", str(run / "checkpoint.pt")],
        [*args[:2], "--resume", str(run / "config.json")],
    ):
        assert main(command) == 1
        assert f"is a file of the run directory {run}: pass the directory" in capsys.readouterr().err


def test_errors_are_reported_without_traceback(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    assert "is not a run directory" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "vae",
                "--dataset",
                "mnist",
                "--data-root",
                str(tmp_path),
                "--out",
                str(tmp_path / "r"),
                *TINY,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "PIXYZ_ZOO_DATA" in err
    assert main(["train", "vae", "-o", "zdim=3", "--out", str(tmp_path / "r2"), "--no-progress"]) == 1
    assert "no option(s) ['zdim']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "not-a-model"])


def test_graph_prints_formulas_and_draws(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["graph", "vae", "--parameters", "--out", str(out), "-o", "hidden=[8]"]) == 0
    assert out.stat().st_size > 5000
    text = capsys.readouterr().out
    assert "q(z|x)" in text and r"\log p(x|z)" in text
    # the terms, numbered as a run's report numbers them
    assert r"  T1: \mathbb{E}_{q(z|x)} \left[- \log p(x|z) \right]" in text and r"  T2: \beta D_{KL}" in text
    assert "  T3:" not in text


def test_graph_into_a_folder_writes_the_figure_inside(tmp_path, capsys):
    """``--out FOLDER`` wrote FOLDER.png beside the folder."""
    folder = tmp_path / "figures"
    folder.mkdir()
    assert main(["graph", "vae", "--out", str(folder), "-o", "hidden=[8]"]) == 0
    assert [p.name for p in folder.iterdir()] == ["vae_graph.png"] and not (tmp_path / "figures.png").exists()
    assert f"graphical model: {folder / 'vae_graph.png'}" in capsys.readouterr().out


def test_graph_into_a_new_folder_named_with_a_slash_and_a_file_in_the_way(tmp_path, capsys):
    """``--out new/`` wrote new.png; ``--out FILE/x.png`` failed with "[Errno 17] File exists" after the
    model was printed."""
    assert main(["graph", "vae", "--out", f"{tmp_path / 'new'}/", "-o", "hidden=[8]"]) == 0
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["vae_graph.png"]
    assert not (tmp_path / "new.png").exists()
    capsys.readouterr()
    (tmp_path / "a_file").write_text("")
    assert main(["graph", "vae", "--out", str(tmp_path / "a_file" / "x.png"), "-o", "hidden=[8]"]) == 1
    out, err = capsys.readouterr()
    assert f"cannot make the figure's folder {tmp_path / 'a_file'}: {tmp_path / 'a_file'} is a file" in err
    assert "p(x,z)" not in out  # refused before the model is printed


@pytest.mark.parametrize("split,size", [("train", 1438), ("test", 359)])
def test_more_examples_than_the_split_holds_are_refused_before_the_run_starts(split, size, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "vae", f"--{split}-examples", "5000", "--out", str(run), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    expected = (
        f"{split}_examples (--{split}-examples) must be at most {size}, the {split} examples of 'digits'"
    )
    assert expected in err and "run directory" not in out and not run.exists()


def test_graph_of_a_dataset_whose_files_are_absent(tmp_path, capsys):
    """A dataset read from files declares its modalities: its graph needs none of the files."""
    out, empty = tmp_path / "g.png", tmp_path / "no-files"
    empty.mkdir()
    args = ["graph", "mfm", "--dataset", "mnist-svhn-text", "--data-root", str(empty), "--out", str(out)]
    assert main([*args, "-o", "hidden=[8]"]) == 0
    text = capsys.readouterr().out
    assert "p(y|z_{y})" in text and "p(s|z_{y},z_{a_s})" in text  # the class label, from the declared classes
    assert out.exists() and not any(empty.iterdir())
    # the modalities a run would read (train --modalities), checked as train checks them
    assert main([*args, "--modalities", "m,t", "-o", "hidden=[8]"]) == 0
    assert "p(m,t,y,z_{y},z_{a_m},z_{a_t}) = p(m|z_{y},z_{a_m})p(t|z_{y},z_{a_t})" in capsys.readouterr().out
    assert main([*args, "--modalities", "m,q"]) == 1
    assert "dataset 'mnist-svhn-text' has no modality ['q']" in capsys.readouterr().err


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "pixyz_zoo.cli", "list"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "Datasets:" in result.stdout


def test_train_names_the_modalities_a_model_leaves_out(tmp_path, capsys):
    """``train vae --dataset trimodal-digits`` modelled 'm' alone without saying so."""
    quick = ["--epochs", "1", "--no-eval", "--no-progress", "--train-examples", "32", "--test-examples", "16"]
    assert (
        main(
            ["train", "vae", "--dataset", "trimodal-digits", "--out", str(tmp_path / "a"), *quick, *TINY[:4]]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "vae leaves out ['s', 't'] of trimodal-digits (its options choose" in out
    assert (
        main(
            [
                "train",
                "mopoe",
                "--dataset",
                "trimodal-digits",
                "--out",
                str(tmp_path / "b"),
                *quick,
                *TINY[:4],
            ]
        )
        == 0
    )
    assert "leaves out" not in capsys.readouterr().out


def test_train_names_a_decoder_scale_that_no_decoder_has(tmp_path, capsys):
    """``-o decoder_scale=learned`` on the digits (Bernoulli images, a categorical label) was taken
    and did nothing."""
    quick = ["--epochs", "1", "--no-eval", "--no-progress", "--train-examples", "32", "--test-examples", "16"]
    assert (
        main(["train", "vae", "--out", str(tmp_path / "a"), "-o", "decoder_scale=learned", *quick, *TINY[:4]])
        == 0
    )
    out = capsys.readouterr().out
    assert "decoder_scale='learned' has no effect: it is the scale of Gaussian and Laplace decoders" in out
    polydigits = ["--dataset", "polydigits", "--out", str(tmp_path / "b"), "-o", "decoder_scale=learned"]
    assert main(["train", "vae", *polydigits, *quick, *TINY[:4]]) == 0  # Laplace images: it has effect
    assert "has no effect" not in capsys.readouterr().out
