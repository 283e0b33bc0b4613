"""Command-line arguments as a new user types them: refused up front with a clear message, nothing
written for a refused run, resume only as the run was made, an interrupt message that is true.

Every run here is tiny (64 training examples of the digits, a 16-unit network, a 4-d latent).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pixyz_zoo
import pixyz_zoo.runs
from pixyz_zoo.cli import interrupted, main
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.models import MODELS, build_model, describe_type, model_options, option_types, validate_options
from pixyz_zoo.models.base import NonFiniteLossError
from pixyz_zoo.run_spec import RunSpec
from pixyz_zoo.runs import checkpoint_differences, load_run_checkpoint, read_config, train_run
from pixyz_zoo.training import CHECKPOINT, Trainer

TINY = ["-o", "hidden=[16]", "--z-dim", "4", "--train-examples", "64", "--test-examples", "32"]
QUIET = ["--no-progress", "--no-eval"]


def train(out: Path, *extra: str) -> int:
    return main(["train", "vae", "--epochs", "1", "--out", str(out), *TINY, *QUIET, *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A one-epoch VAE run (copied by the tests that change it)."""
    run = tmp_path_factory.mktemp("runs") / "vae"
    assert train(run) == 0
    return run


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


@pytest.fixture
def no_data(monkeypatch):
    """Make loading data an error: a test using this shows that a refusal comes before it."""

    def load_data(config):
        raise AssertionError("data was loaded before the arguments were checked")

    monkeypatch.setattr(pixyz_zoo.runs, "load_data", load_data)


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


# ---------------------------------------------------------------- resume: only as the run was made
@pytest.mark.parametrize(
    "arguments, named",
    [
        (["--dataset", "mnist"], ["--dataset 'mnist'", "'digits'"]),
        (["--z-dim", "8"], ["--z-dim 8", "the run has 4"]),
        (["--lr", "0.01"], ["--lr 0.01", "the run has 0.001"]),
        (["--arch", "conv"], ["--arch 'conv'", "'mlp'"]),
        (["--clip-grad-norm", "5"], ["--clip-grad-norm 5.0", "None"]),
        (["--warmup-epochs", "2"], ["--warmup-epochs 2.0", "0.0"]),
        (["--batch-size", "32"], ["--batch-size 32", "the run has 64"]),
        (["--seed", "3"], ["--seed 3", "the run has 0"]),
        (["--binarize", "fixed"], ["--binarize 'fixed'", "'dynamic'"]),
        (["--data-root", "elsewhere"], ["--data-root 'elsewhere'", "None"]),
        (["-o", "beta=2"], ["-o beta=2", "the run has 1.0"]),
        (["-o", "hidden=[32]"], ["-o hidden=[32]", "[16]"]),
        (["--train-examples", "50"], ["--train-examples 50", "the run has 64"]),
        (["--out", "other"], ["--out 'other'"]),
    ],
)
def test_resume_refuses_each_argument_that_differs_from_the_run(run, capsys, arguments, named):
    before = snapshot(run)
    assert main(["train", "vae", "--resume", str(run), "--epochs", "2", *arguments, *QUIET]) == 1
    err = capsys.readouterr().err
    for text in named:
        assert text in err, (text, err)
    assert "only --epochs, --check-every, --precision and --device may change on resume" in err
    assert snapshot(run) == before  # nothing trained, nothing written


def test_resume_names_every_conflict_and_the_model(run, capsys):
    """`train beta-vae --resume <vae run>` used to continue (and re-evaluate) the VAE silently."""
    args = ["train", "beta-vae", "--resume", str(run), "--dataset", "mnist", "--z-dim", "8", "--lr", "0.01"]
    assert main([*args, *QUIET]) == 1
    err = capsys.readouterr().err
    for text in ("MODEL 'beta-vae' (the run has 'vae')", "--dataset 'mnist'", "--z-dim 8", "--lr 0.01"):
        assert text in err


def test_resume_accepts_arguments_equal_to_the_run_and_records_epochs_and_device(run, capsys):
    same = ["--z-dim", "4", "-o", "hidden=(16,)", "--batch-size", "64", "--seed", "0", "--dataset", "digits"]
    assert (
        main(["train", "vae", "--resume", str(run), "--epochs", "2", "--device", "cpu", *same, *QUIET]) == 0
    )
    config = read_config(run)
    assert config["train"]["epochs"] == 2 and config["device"] == "cpu"
    assert config["resumed"] == [
        {"from_epoch": 1, "epochs": 2, "environment": {**config["environment"], "device": "cpu"}}
    ]
    assert [r["epoch"] for r in json.loads((run / "history.json").read_text())] == [1, 2]
    assert torch.load(run / CHECKPOINT, weights_only=True)["epoch"] == 2


def test_a_run_made_on_a_gpu_is_used_on_a_machine_without_one_by_naming_the_cpu(run, capsys, monkeypatch):
    """`evaluate RUN` of a run trained with --device cuda said "--device cuda was requested", which
    the user had not typed here; it now names the run's setting and the fix."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = read_config(run)
    (run / "config.json").write_text(json.dumps({**config, "device": "cuda"}))
    before = snapshot(run)
    for command in (["evaluate", str(run)], ["train", "--resume", str(run), "--epochs", "2", *QUIET]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert f"the run in {run} was made with --device cuda, and PyTorch sees no CUDA device" in err
        assert "pass --device cpu" in err
        assert snapshot(run) == before
    assert main(["evaluate", str(run), "--device", "cpu", "--iw-samples", "2"]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2", "--device", "cpu", *QUIET]) == 0
    assert read_config(run)["device"] == "cpu"


def test_resume_without_the_model_continues_the_runs_model(run, capsys):
    """`train --resume RUN` was refused by argparse: "the following arguments are required: model"."""
    assert main(["train", "--resume", str(run), "--epochs", "2", *QUIET]) == 0
    assert "VAE (Kingma & Welling 2014)" in capsys.readouterr().out  # the run's model, printed
    assert [r["epoch"] for r in json.loads((run / "history.json").read_text())] == [1, 2]
    assert read_config(run)["model"] == "vae"


def test_train_without_a_model_or_resume_names_both(tmp_path, capsys, no_data):
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "r"), *QUIET]) == 1
    err = capsys.readouterr().err
    assert "train needs the MODEL to train (see `pixyz-zoo list`)" in err and "--resume RUN_DIR" in err
    assert not (tmp_path / "r").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"pixyz-zoo {pixyz_zoo.__version__}\n"


def test_a_closed_output_pipe_stops_quietly():
    """`pixyz-zoo list | head -1` ended with "pixyz-zoo: error: [Errno 32] Broken pipe"."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pixyz_zoo", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # the reader goes before the first line is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and stderr == ""


def test_resume_refuses_fewer_epochs_than_trained(run, capsys):
    before = snapshot(run)
    assert main(["train", "vae", "--resume", str(run), "--epochs", "0", *QUIET]) == 1
    assert "must be an integer >= 1 (the run in" in capsys.readouterr().err
    assert snapshot(run) == before


# ---------------------------------------------------------------- model options: types and ranges
@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["-o", "z_dim=abc"], "z_dim='abc' (expected an int >= 1)"),
        (
            ["-o", "hidden=[256,256"],
            "hidden='[256,256' (expected a list of ints >= 1; '[256,256' is not a well-formed",
        ),
        (["-o", "beta=abc"], "beta='abc' (expected a number >= 0)"),
        (["--z-dim", "0"], "z_dim=0 (expected an int >= 1)"),
        (["-o", "z_dim=2.5"], "z_dim=2.5 (expected an int >= 1)"),
        (["-o", "hidden=[16,0]"], "hidden=[16, 0] (expected a list of ints >= 1)"),
        (["--lr", "0"], "lr=0.0 (expected a number > 0)"),
        (["--clip-grad-norm", "-1"], "clip_grad_norm=-1.0 (expected a number > 0 or None)"),
        (["-o", "beta=-1"], "beta=-1 (expected a number >= 0)"),
        (["-o", "arch=cnn"], "arch='cnn' (expected 'mlp', 'conv' or 'celeba')"),
        (
            ["-o", "decoder_scale=0"],
            "decoder_scale=0 (expected 'learned', 'per-example', a number > 0 or None)",
        ),
        (["-o", "zdim=3"], "no option(s) ['zdim']"),
        (
            ["-o", "z_dim=3", "--z-dim", "5"],
            "the model option z_dim is given twice with different values, -o z_dim=3 and --z-dim 5: give it",
        ),
        (
            ["-o", "lr=0.01", "-o", "lr=0.02"],
            "lr is given twice with different values, -o lr=0.01 and -o lr=0.02",
        ),
    ],
)
def test_bad_model_options_are_refused_before_data_is_loaded(tmp_path, capsys, no_data, arguments, expected):
    out = tmp_path / "run"
    assert main(["train", "vae", "--out", str(out), "--epochs", "1", *arguments, *QUIET]) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err and not out.exists()


def test_an_option_given_twice_with_one_value_is_taken(tmp_path):
    assert train(tmp_path / "run", "-o", "z_dim=4") == 0  # TINY gives --z-dim 4 too
    assert read_config(tmp_path / "run")["options"]["z_dim"] == 4


def test_options_are_validated_by_build_model_too(digits_test):
    with pytest.raises(ValueError, match=r"z_dim='abc' \(expected an int >= 1\)"):
        build_model("vae", digits_test.modalities, z_dim="abc")
    with pytest.raises(ValueError, match=r"likelihood_weights=\{'x': -1\}"):
        validate_options("mvae", {"likelihood_weights": {"x": -1}})
    with pytest.raises(ValueError, match=r"beta='abc'.*; z_dim=0"):  # every bad value is named at once
        validate_options("beta-vae", {"beta": "abc", "z_dim": 0})
    with pytest.raises(TypeError, match=r"no option\(s\) \['zdim'\]"):
        validate_options("vae", {"zdim": 3})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_models_defaults_pass_its_own_validation(name):
    """The types are read from the constructors' annotations: every default must conform."""
    types = option_types(name)
    assert set(types) == set(model_options(name))
    validate_options(name, model_options(name))
    assert "z_dim" in types and describe_type(types["z_dim"], "z_dim") == "an int >= 1"


# ---------------------------------------------------------------- every argument before any work
@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--epochs", "-1"], "epochs (--epochs) must be an integer >= 1, got -1"),
        (["--epochs", "0"], "epochs (--epochs) must be an integer >= 1, got 0"),
        (["--batch-size", "0"], "batch_size (--batch-size) must be an integer >= 1, got 0"),
        (["--iw-samples", "0"], "--iw-samples must be an integer >= 1, got 0"),
        (["--seed", "-1"], "seed (--seed) must be an integer >= 0, got -1"),
        (["--warmup-epochs", "-1"], "warmup_epochs (--warmup-epochs) must be a number >= 0, got -1.0"),
        (["--train-examples", "0"], "train_examples (--train-examples) must be an integer >= 1, got 0"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_arguments_are_refused_before_work_and_leave_nothing(
    tmp_path, capsys, no_data, arguments, expected
):
    out = tmp_path / "run"
    args = ["train", "vae", "--out", str(out), *TINY, "--no-progress", "--iw-samples", "2"]
    assert main([*args, *arguments]) == 1
    printed = capsys.readouterr()
    assert expected in printed.err
    assert not out.exists()
    assert "run directory:" not in printed.out  # no directory is announced for a refused run


def test_out_under_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert train(tmp_path / "file" / "run") == 1
    err = capsys.readouterr().err
    assert "file is a file, not a directory; choose another --out" in err and "Traceback" not in err


def test_evaluate_refuses_bad_iw_samples_before_evaluating(finished_run, capsys, no_data):
    assert main(["evaluate", str(finished_run), "--iw-samples", "0", "--no-progress"]) == 1
    assert "--iw-samples must be an integer >= 1, got 0" in capsys.readouterr().err


def test_a_refusal_after_loading_data_leaves_nothing(tmp_path, capsys):
    """The modality named by ``observed`` is known only once the data is loaded."""
    out = tmp_path / "a" / "b" / "run"
    assert main(["train", "vae", "--out", str(out), *TINY, *QUIET, "-o", "observed=w"]) == 1
    assert "observed='w' is not a modality of the data" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_train_run_refuses_bad_settings_from_python(tmp_path):
    with pytest.raises(ValueError, match=r"epochs \(--epochs\) must be an integer >= 1, got 0"):
        train_run(
            RunSpec.from_settings("vae", epochs=0, options={"z_dim": 2}), tmp_path / "run", progress=False
        )
    with pytest.raises(ValueError, match="beta='x'"):
        train_run(RunSpec.from_settings("vae", options={"beta": "x"}), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_loss_failure_in_the_first_epoch_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    def fail(self, batch, **values):
        raise NonFiniteLossError("the training loss is nan")

    monkeypatch.setattr(MODELS["vae"], "train_step", fail)
    out = tmp_path / "new" / "run"
    assert train(out) == 1
    assert "no checkpoint was written yet" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- Ctrl-C: a true message
def interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    """Ctrl-C during epoch ``epoch`` (1-based) of the trainer."""
    original = Trainer._train_epoch

    def train_epoch(self):
        if self.epoch + 1 == epoch:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)


def test_ctrl_c_in_the_first_epoch_says_nothing_was_saved(tmp_path, capsys, monkeypatch):
    interrupt_at_epoch(monkeypatch, 1)
    out = tmp_path / "run"
    assert train(out) == 130
    err = capsys.readouterr().err
    assert "interrupted before the first epoch ended; nothing was saved" in err
    assert "Run the same command again" in err and "--resume" not in err
    assert not out.exists()
    monkeypatch.undo()
    assert train(out) == 0  # the same command again starts over


def test_ctrl_c_after_a_checkpoint_suggests_a_resume_that_works(tmp_path, capsys, monkeypatch):
    interrupt_at_epoch(monkeypatch, 2)
    out = tmp_path / "run"
    assert main(["train", "vae", "--epochs", "2", "--out", str(out), *TINY, *QUIET]) == 130
    err = capsys.readouterr().err
    assert (
        f"the checkpoint of epoch 1 is kept in {out}. Continue with: pixyz-zoo train vae --resume {out}"
        in err
    )
    monkeypatch.undo()
    assert main(["train", "vae", "--resume", str(out), *QUIET]) == 0
    assert torch.load(out / CHECKPOINT, weights_only=True)["epoch"] == 2


def test_ctrl_c_under_torchrun_is_reported_once_with_the_torchrun_resume(tmp_path, capsys, monkeypatch):
    """Every process of a torchrun launch gets the interrupt: rank 0 alone reports it, and a run
    trained by N processes is continued by N (``config.json``'s ``world_size``)."""
    interrupt_at_epoch(monkeypatch, 2)
    out = tmp_path / "run"
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "vae", "--epochs", "2", "--out", str(out), *TINY, *QUIET]) == 130
    assert "interrupted" not in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    config["train"]["world_size"] = 2
    (out / "config.json").write_text(json.dumps(config))
    args = argparse.Namespace(command="train", model="vae", run_dir=out, stage=None)
    assert interrupted(args) == (
        f"interrupted; the checkpoint of epoch 1 is kept in {out}. Continue with: "
        f"torchrun --nproc_per_node=2 -m pixyz_zoo train vae --resume {out}"
    )


def test_ctrl_c_during_evaluation_points_to_evaluate(tmp_path, capsys, monkeypatch):
    def evaluate_run(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pixyz_zoo.runs, "evaluate_run", evaluate_run)
    out = tmp_path / "run"
    assert main(["train", "vae", "--epochs", "1", "--out", str(out), *TINY, "--iw-samples", "2"]) == 130
    assert f"Evaluate it with: pixyz-zoo evaluate {out} --iw-samples 2" in capsys.readouterr().err


# ---------------------------------------------------------------- a checkpoint from another run
@pytest.fixture(scope="module")
def other_run(tmp_path_factory) -> Path:
    """A run with another z_dim and batch size than ``finished_run``."""
    run = tmp_path_factory.mktemp("runs") / "other"
    assert train(run, "--z-dim", "3", "--batch-size", "32") == 0
    return run


def test_a_foreign_checkpoint_is_refused_by_evaluate_and_resume(run, other_run, capsys):
    shutil.copy(other_run / CHECKPOINT, run / CHECKPOINT)
    assert main(["evaluate", str(run), "--iw-samples", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "was not made with the run's config.json" in err
    assert "option z_dim: 3 in the checkpoint, 4 in config.json" in err
    assert "batch_size 32 in the checkpoint, 64 in config.json" in err
    assert not (run / "metrics.json").exists() and not (run / "report.md").exists()
    before = snapshot(run)
    assert main(["train", "vae", "--resume", str(run), "--epochs", "3", *QUIET]) == 1
    assert "option z_dim: 3 in the checkpoint, 4 in config.json" in capsys.readouterr().err
    assert snapshot(run) == before


def test_checkpoint_differences_name_model_modalities_and_epochs(finished_run):
    config = read_config(finished_run)
    payload = torch.load(finished_run / CHECKPOINT, weights_only=True)
    assert checkpoint_differences(config, payload) == []
    changed = {
        **config,
        "model": "beta-vae",
        "modalities": {"x": {**config["modalities"]["x"], "shape": [1, 28, 28]}},
        "train": {**config["train"], "epochs": 0, "warmup_epochs": 2.0},
    }
    text = "; ".join(checkpoint_differences(changed, payload))
    assert "model 'vae' in the checkpoint, 'beta-vae' in config.json" in text
    assert "modalities" in text and "[1, 28, 28]" in text
    assert "warmup_epochs 0.0 in the checkpoint, 2.0 in config.json" in text
    assert "the checkpoint has trained 1 epochs, config.json asks for 0" in text


def test_settings_a_model_takes_from_the_data_are_in_config_json(tmp_path):
    """beta-TCVAE takes its dataset size N from the training data: config.json must agree."""
    run = tmp_path / "run"
    options = {"z_dim": 2, "hidden": [8]}
    spec = RunSpec.from_settings("beta-tcvae", epochs=1, options=options, train_examples=64, test_examples=32)
    train_run(spec, run, progress=False)
    assert load_run_checkpoint(run)["epoch"] == 1


# ---------------------------------------------------------------- what is printed
def test_no_progress_prints_one_plain_line_per_epoch(tmp_path, capsys):
    assert main(["train", "vae", "--epochs", "3", "--out", str(tmp_path / "run"), *TINY, *QUIET]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("train_loss" in line and "test_loss" in line for line in lines)
    assert "\r" not in captured.out + captured.err  # no progress bar


def test_warm_up_is_mentioned_only_when_there_is_one(tmp_path, capsys):
    assert train(tmp_path / "none") == 0
    out = capsys.readouterr().out
    assert "beta=1" in out and "warm" not in out.split("Hyperparameters")[1].split("Distributions")[0]
    assert train(tmp_path / "warm", "--warmup-epochs", "2") == 0
    assert "(beta warmed up from 0 over 2 epochs)" in capsys.readouterr().out


def test_python_api_stays_silent_without_progress(digits_train, capsys):
    model = build_model("vae", digits_train.modalities, z_dim=2, hidden=[8])
    Trainer(model, load_dataset("digits", "test"), epochs=1, batch_size=256, progress=False).fit()
    assert capsys.readouterr().out == ""


def test_under_torchrun_only_train_runs_and_errors_name_their_rank(tmp_path, capsys, monkeypatch):
    """torchrun starts every process with the same command: `evaluate`, `graph`, `list` and
    `reproduce` would run N times over the same files, so they are refused; each process reports its
    own error with its rank."""
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    assert main(["evaluate", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    refusal = "`evaluate` runs in one process; only `train` is data-parallel under torchrun"
    assert f"pixyz-zoo: error (rank 1 of 2): {refusal}" in err
    assert main(["list"]) == 1 and "Run it without torchrun: pixyz-zoo list" in capsys.readouterr().err


def test_every_argument_of_every_command_says_what_it_is():
    """``pixyz-zoo reproduce --help`` listed --device, --data-root, --seed and --no-progress, and
    ``evaluate --help`` run_dir and --device, with no word on what they take or default to."""
    from pixyz_zoo.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    silent = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, command in commands.choices.items()
        for action in command._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert silent == []


def test_reproduce_refuses_an_out_it_cannot_write_before_it_starts(tmp_path, capsys):
    """`reproduce iterative-inference --out FILE` announced the directory and started its first model
    before it failed on the run directory."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["reproduce", "iterative-inference", "--smoke", "--out", str(blocker), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert f"{blocker} is a file, not a directory; choose another --out" in captured.err
    assert "output directory" not in captured.out and "VAE" not in captured.out


def test_names_inside_a_list_or_dict_option_need_no_quotes():
    """``-o groups=[[m],[s,t]]`` was refused as "not a well-formed Python literal: check its brackets"
    (its brackets were right; the shell had eaten nothing, the names were bare)."""
    from pixyz_zoo.cli import parse_option

    assert parse_option("groups=[[m],[s,t]]") == ("groups", [["m"], ["s", "t"]])
    assert parse_option("likelihood_weights={m:2,s:1.5}") == ("likelihood_weights", {"m": 2, "s": 1.5})
    assert parse_option("groups=[['m'],[\"s\",t]]") == ("groups", [["m"], ["s", "t"]])
    assert parse_option("subsets=[[m0, m1], None]") == ("subsets", [["m0", "m1"], None])
    assert parse_option("lr=1e-3") == ("lr", 1e-3) and parse_option("arch=conv") == ("arch", "conv")
    assert parse_option("hidden=[256,256") == ("hidden", "[256,256")  # refused by the option check


def test_an_option_value_the_shell_split_at_a_space_says_to_quote_it(tmp_path, capsys):
    """``-o hidden=[256, 256]`` unquoted failed with "unrecognized arguments: 256]"."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        main(["train", "vae", "--out", str(out), "-o", "hidden=[256,", "256]", *QUIET])
    err = capsys.readouterr().err
    assert "the value of -o hidden=[256, ends before its brackets close" in err, err
    assert "Quote it, -o 'hidden=[256, 256]'" in err and not out.exists()
