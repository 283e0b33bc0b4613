"""Training flags of ``pixyz-zoo train`` reach the run: in config.json and in what training does.

Each test trains a tiny run through ``pixyz_zoo.cli.main`` (3 steps an epoch) and checks the flag's
value where it is recorded and its effect: the optimiser's learning rate in the checkpoint, the
KL weights fed to the training steps, the network type, the gradient norms after clipping.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pixyz_zoo.cli import main
from pixyz_zoo.models import VAE, ZooModel
from pixyz_zoo.training import load_checkpoint, model_from_checkpoint

TINY_RUN = [
    "--dataset", "digits", "--batch-size", "32", "--train-examples", "96", "--test-examples", "32",
    "-o", "hidden=[16]", "--z-dim", "2", "--device", "cpu", "--no-eval", "--no-progress",
]  # fmt: skip


def train(out: Path, *flags: str, epochs: int = 1) -> dict:
    """Train a tiny VAE run with ``flags``; returns its config.json."""
    code = main(["train", "vae", *TINY_RUN, "--epochs", str(epochs), "--out", str(out), *flags])
    assert code == 0
    return json.loads((out / "config.json").read_text())


def test_lr_reaches_the_optimiser(tmp_path):
    config = train(tmp_path / "run", "--lr", "0.0123")
    assert config["options"]["lr"] == 0.0123
    payload = load_checkpoint(tmp_path / "run")
    assert [g["lr"] for g in payload["state"]["optimizer"]["param_groups"]] == [0.0123]
    assert model_from_checkpoint(payload).optimizer.param_groups[0]["lr"] == 0.0123


def test_warmup_epochs_ramp_the_kl_weight(tmp_path, monkeypatch):
    fed: list[float] = []
    step = ZooModel.train_step

    def recording(self, batch, **values):
        fed.append(values["beta"])
        return step(self, batch, **values)

    monkeypatch.setattr(ZooModel, "train_step", recording)
    config = train(tmp_path / "run", "--warmup-epochs", "2", epochs=2)
    assert config["train"]["warmup_epochs"] == 2.0
    assert load_checkpoint(tmp_path / "run")["trainer"]["warmup_epochs"] == 2.0
    # beta = (epoch + step / 3) / 2 over 2 epochs of 3 steps, from 0
    assert fed == pytest.approx([0.0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
    fed.clear()
    train(tmp_path / "plain")
    assert fed == [1.0, 1.0, 1.0]


def test_arch_builds_that_network(tmp_path):
    config = train(tmp_path / "run", "--arch", "conv")
    assert config["options"]["arch"] == "conv"
    model = model_from_checkpoint(load_checkpoint(tmp_path / "run"))
    assert any(isinstance(m, nn.Conv2d) for m in model.q.modules())
    assert any(isinstance(m, nn.ConvTranspose2d) for m in model.p_x.modules())
    train(tmp_path / "default")
    default = model_from_checkpoint(load_checkpoint(tmp_path / "default"))
    assert not any(isinstance(m, nn.Conv2d) for m in default.q.modules())


def test_clip_grad_norm_clips_every_step(tmp_path, monkeypatch):
    norms: list[tuple[float, float]] = []
    clip = ZooModel.clip_and_check_gradients

    def recording(self, parameters):
        parameters = list(parameters)
        before = clip(self, parameters)
        after = float(torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None]))
        norms.append((before, after))
        return before

    monkeypatch.setattr(ZooModel, "clip_and_check_gradients", recording)
    config = train(tmp_path / "run", "--clip-grad-norm", "0.5")
    assert config["options"]["clip_grad_norm"] == 0.5
    assert len(norms) == 3
    assert all(before > 0.5 for before, _ in norms), "the test needs gradients larger than the clip"
    assert all(after == pytest.approx(0.5, rel=1e-4) for _, after in norms)
    assert model_from_checkpoint(load_checkpoint(tmp_path / "run")).clip_norm == 0.5


def test_a_huge_gradient_is_clipped_to_the_norm(digits_train):
    """With clip_grad_norm=1 a gradient of norm ~1e7 reaches Adam with norm 1."""
    torch.manual_seed(0)
    model = VAE(digits_train.modalities, z_dim=2, hidden=[16], clip_grad_norm=1.0)
    for p in model.distributions.parameters():
        p.register_hook(lambda grad: grad * 1e6)
    batch = digits_train.first(16)
    model.train_step(batch)
    grads = [p.grad for p in model.distributions.parameters()]
    assert float(torch.nn.utils.get_total_norm(grads)) == pytest.approx(1.0, rel=1e-4)
    # Adam's first moment after one step is (1 - beta1) times the gradient it was given: the clipped one
    state = model.optimizer.state
    first = [state[p]["exp_avg"] for p in model.distributions.parameters()]
    assert float(torch.nn.utils.get_total_norm(first)) == pytest.approx(0.1, rel=1e-4)

    unclipped = VAE(digits_train.modalities, z_dim=2, hidden=[16])
    for p in unclipped.distributions.parameters():
        p.register_hook(lambda grad: grad * 1e6)
    unclipped.train_step(batch)
    assert float(torch.nn.utils.get_total_norm([p.grad for p in unclipped.distributions.parameters()])) > 1e5


def test_modalities_keep_only_those_and_are_part_of_the_run(tmp_path, capsys):
    """``--modalities`` trains on a subset of a dataset's modalities; a resume, a re-fit and the
    evaluation read the same subset; a name the dataset lacks is refused before anything is written."""
    from pixyz_zoo.run_spec import RunSpec
    from pixyz_zoo.runs import fit_run, load_run

    flags = ["--dataset", "trimodal-digits", "--train-examples", "64", "--test-examples", "32"]
    flags += ["-o", "hidden=[8]", "--device", "cpu", "--no-progress", "--batch-size", "32"]
    out = tmp_path / "run"
    assert main(["train", "jmvae-kl", *flags, "--modalities", "m,s", "--epochs", "1", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["modalities"] == ["m", "s"] and set(config["modalities"]) == {"m", "s"}
    _, _, model, test = load_run(out)
    assert set(model.modalities) == set(test.modalities) == {"m", "s"}
    assert main(["train", "jmvae-kl", "--resume", str(out), "--modalities", "m", "--epochs", "2"]) == 1
    assert "--modalities ['m'] (the run has ['m', 's'])" in capsys.readouterr().err
    with pytest.raises(FileExistsError, match="modalities"):
        fit_run(RunSpec.from_settings("jmvae-kl", dataset="trimodal-digits", epochs=1, batch_size=32,
                                      train_examples=64, test_examples=32, options={"hidden": [8]}),
                out, progress=False)  # fmt: skip
    bad = tmp_path / "bad"
    assert main(["train", "jmvae-kl", *flags, "--modalities", "m,x", "--out", str(bad)]) == 1
    assert "has no modality ['x']" in capsys.readouterr().err and not bad.exists()


def test_check_every_sets_the_steps_between_host_reads_and_may_change_on_resume(
    tmp_path, monkeypatch, capsys
):
    """3 steps an epoch: ``--check-every 2`` reads the host after steps 2 and 3 (the epoch's end), the
    default (50) once an epoch; a resume may change it, and the run records the change."""
    from pixyz_zoo.training import Trainer

    checked: list[int] = []  # steps read at each check
    check = Trainer._check

    def recording(self, pending, *args):
        checked.append(len(pending))
        return check(self, pending, *args)

    monkeypatch.setattr(Trainer, "_check", recording)
    config = train(tmp_path / "run", "--check-every", "2", epochs=2)
    assert config["train"]["check_every"] == 2 and checked == [2, 1, 2, 1]
    checked.clear()
    assert train(tmp_path / "default")["train"]["check_every"] == 50 and checked == [3]
    checked.clear()
    run = str(tmp_path / "run")
    assert main(["train", "vae", "--resume", run, "--epochs", "3", "--check-every", "1", "--no-eval"]) == 0
    assert checked == [1, 1, 1]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["check_every"] == 1
    assert config["resumed"][-1]["changed"] == {"check_every": {"from": 2, "to": 1}}
    bad = tmp_path / "bad"
    assert main(["train", "vae", *TINY_RUN, "--check-every", "0", "--out", str(bad)]) == 1
    assert "check_every (--check-every) must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not bad.exists()
    with pytest.raises(SystemExit):
        main(["train", "vae", *TINY_RUN, "--check-every", "often", "--out", str(bad)])
    assert "argument --check-every: invalid int value: 'often'" in capsys.readouterr().err


def test_download_reaches_both_splits_a_resume_and_an_evaluation(tmp_path, monkeypatch):
    """``--download`` lets the loader fetch the files of both splits (SVHN downloads each split's
    file on its own). Left out on resume or evaluation, the data loads as the run did; given, the
    loader may fetch files that have gone since (a resume records the permission). A dataset read
    from files, with the digits in their place: nothing is fetched here."""
    import pixyz_zoo.runs

    asked: list[tuple[str, bool]] = []
    load = pixyz_zoo.runs.load_dataset

    def recording(name, split, download=False, **kwargs):
        asked.append((split, download))
        return load("digits", split, **kwargs)

    monkeypatch.setattr(pixyz_zoo.runs, "load_dataset", recording)
    run, flags = tmp_path / "run", [*TINY_RUN, "--dataset", "mnist"]
    assert main(["train", "vae", *flags, "--epochs", "1", "--out", str(run), "--download"]) == 0
    assert asked == [("train", True), ("test", True)]
    asked.clear()
    assert main(["train", "vae", *flags, "--epochs", "1", "--out", str(tmp_path / "other")]) == 0
    assert asked == [("train", False), ("test", False)]
    asked.clear()
    assert main(["train", "vae", "--resume", str(run), "--epochs", "2", "--no-eval", "--no-progress"]) == 0
    assert asked == [("train", True), ("test", True)]  # the run's own permission
    asked.clear()
    other = ["train", "vae", "--resume", str(tmp_path / "other"), "--epochs", "2", "--no-eval"]
    assert main([*other, "--download", "--no-progress"]) == 0
    assert asked == [("train", True), ("test", True)]
    assert json.loads((tmp_path / "other" / "config.json").read_text())["data"]["download"] is True
    third = str(tmp_path / "third")  # evaluate: the run's own setting, or --download
    assert main(["train", "vae", *flags, "--epochs", "1", "--out", third]) == 0
    asked.clear()
    assert main(["evaluate", third, "--iw-samples", "2", "--no-progress"]) == 0
    assert asked == [("train", False), ("test", False)]
    asked.clear()
    assert main(["evaluate", third, "--iw-samples", "2", "--no-progress", "--download"]) == 0
    assert asked == [("train", True), ("test", True)]
