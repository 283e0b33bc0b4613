"""Resuming through the command line and through ``runs.fit_run`` is exact.

An interrupted run continued to the end holds the same parameters, optimiser state (Adam's moments
and step counts) and RNG state as a run that was never interrupted: a resume that restarted the
optimiser, the data order or the sampling RNG would differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pixyz_zoo import runs
from pixyz_zoo.cli import main
from pixyz_zoo.run_spec import RunSpec
from pixyz_zoo.training import Trainer, load_checkpoint

TINY_RUN = [
    "--dataset", "digits", "--batch-size", "32", "--train-examples", "96", "--test-examples", "32",
    "-o", "hidden=[16]", "--z-dim", "2", "--warmup-epochs", "1", "--device", "cpu", "--no-eval",
    "--no-progress",
]  # fmt: skip
FIT = dict(
    dataset="digits",
    batch_size=32,
    warmup_epochs=1.0,
    device="cpu",
    options={"z_dim": 2, "hidden": [16]},
    train_examples=96,
    test_examples=32,
)
SPEC = RunSpec.from_settings("vae", epochs=2, **FIT)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal nested dicts/lists of tensors and numbers (tensors bit for bit)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and torch.equal(a, b), where
    else:
        assert a == b, where


def assert_same_run(resumed: Path, uninterrupted: Path) -> None:
    got, expected = load_checkpoint(resumed), load_checkpoint(uninterrupted)
    assert got["epoch"] == expected["epoch"] == 2
    assert_same(got["state"]["distributions"], expected["state"]["distributions"], "parameters")
    assert got["state"]["optimizer"]["state"], "Adam has moments to compare"
    assert_same(got["state"]["optimizer"], expected["state"]["optimizer"], "optimiser")
    assert_same(got["rng"], expected["rng"], "rng")
    losses = [[r[k] for k in ("epoch", "train_loss", "test_loss")] for r in got["history"]]
    assert losses == [[r[k] for k in ("epoch", "train_loss", "test_loss")] for r in expected["history"]]


def test_cli_resume_equals_an_uninterrupted_run(tmp_path):
    assert main(["train", "vae", *TINY_RUN, "--epochs", "2", "--out", str(tmp_path / "whole")]) == 0
    assert main(["train", "vae", *TINY_RUN, "--epochs", "1", "--out", str(tmp_path / "parts")]) == 0
    assert load_checkpoint(tmp_path / "parts")["epoch"] == 1
    assert main(["train", "vae", "--resume", str(tmp_path / "parts"), "--epochs", "2", "--no-eval",
                 "--no-progress"]) == 0  # fmt: skip
    assert_same_run(tmp_path / "parts", tmp_path / "whole")
    assert json.loads((tmp_path / "parts" / "config.json").read_text())["train"]["epochs"] == 2


def fit_interrupted(spec: RunSpec, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``runs.fit_run(spec, run_dir)`` stopped by Ctrl-C at the start of epoch 2 (the checkpoint of
    epoch 1 is on disk)."""
    train_epoch = Trainer._train_epoch

    def interrupted(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runs.fit_run(spec, run_dir, progress=False)
    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)


def test_fit_run_resumes_an_interrupted_run_exactly(tmp_path, monkeypatch):
    runs.fit_run(SPEC, tmp_path / "whole", progress=False)
    fit_interrupted(SPEC, tmp_path / "parts", monkeypatch)
    assert load_checkpoint(tmp_path / "parts")["epoch"] == 1

    model = runs.fit_run(SPEC, tmp_path / "parts", progress=False)  # the same call, run again
    assert_same_run(tmp_path / "parts", tmp_path / "whole")
    reference = load_checkpoint(tmp_path / "whole")["state"]["distributions"]
    assert_same(model.distributions.state_dict(), reference, "the returned model")
