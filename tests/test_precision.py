"""Mixed precision (``precision="bf16"``, ``--precision bf16``): autocast around the forward pass only.

A bf16 training step runs the networks in bfloat16 (``torch.autocast``) while the distributions'
parameters, the loss, the gradients, the parameters and Adam's state stay float32; the test loss is
float32. Training in bf16 works on the CPU (these tests) and on CUDA (the tests marked
``requires_cuda``, skipped without a GPU).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pixyz_zoo.cli import main
from pixyz_zoo.models import build_model
from pixyz_zoo.run_spec import RunSpec
from pixyz_zoo.runs import read_config, resume_run, train_run
from pixyz_zoo.training import Trainer, load_checkpoint
from tests.conftest import requires_cuda

TINY = {"z_dim": 4, "hidden": [32]}


def linear_output_dtypes(model) -> tuple[list[torch.dtype], list]:
    """Record the output dtype of every ``nn.Linear`` of the model's distributions."""
    seen: list[torch.dtype] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        for m in model.distributions.modules()
        if isinstance(m, nn.Linear)
    ]
    return seen, handles


def fresh(name: str, data, seed: int = 0, **options):
    torch.manual_seed(seed)
    return build_model(name, data.modalities, **{**TINY, **options})


@pytest.mark.parametrize("name", ["vae", "jmvae-kl"])
def test_bf16_training_lowers_the_loss_and_keeps_float32_state(digits_train, name):
    data = digits_train.subset(slice(0, 320))
    model = fresh(name, data)
    trainer = Trainer(model, data, epochs=4, batch_size=32, progress=False, precision="bf16")
    assert model.autocast_dtype is torch.bfloat16
    seen, handles = linear_output_dtypes(model)
    history = trainer.fit()
    assert torch.bfloat16 in seen, "the networks did not run under bf16 autocast"
    losses = [record["train_loss"] for record in history]
    assert losses[-1] < losses[0] - 2.0, losses
    assert all(p.dtype == torch.float32 for p in model.distributions.parameters())
    moments = [v for state in model.optimizer.state.values() for v in state.values() if v.is_floating_point()]
    assert moments and all(v.dtype == torch.float32 for v in moments), "Adam's state stays float32"
    for h in handles:
        h.remove()


@pytest.mark.parametrize("name", ["vae", "jmvae-kl"])
def test_bf16_loss_is_close_to_the_fp32_loss_at_the_same_parameters(digits_train, name):
    """A step's loss (before its update) from two copies of a trained model, one in bf16, on the same
    batch and latent samples: the networks' bfloat16 rounding moves it by well under 0.1% (measured:
    5e-5 for the VAE, 7e-5 for JMVAE-kl), and it does move (autocast is on)."""
    data, batch = digits_train.subset(slice(0, 320)), digits_train.first(64)
    trained = fresh(name, data, hidden=[256, 256])
    Trainer(trained, data, epochs=3, batch_size=32, progress=False).fit()
    losses = {}
    for precision in ("fp32", "bf16"):
        model = fresh(name, data, hidden=[256, 256])
        model.load_state(trained.state())
        Trainer(model, data, progress=False, precision=precision)  # sets the model's autocast
        torch.manual_seed(1)  # the same latent samples
        losses[precision] = model.train_step(batch)
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=1e-3)
    assert losses["bf16"] != losses["fp32"]


def test_network_outputs_become_float32_parameters_and_a_float32_loss(digits_train):
    model = fresh("vae", digits_train)
    batch = model.feed(digits_train.first(16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.q.network(batch["x"].flatten(1)).dtype == torch.bfloat16  # autocast is on here
        params = model.q.get_params({"x": batch["x"]})
        z = model.q.sample({"x": batch["x"]}, return_all=False)["z"]
        logits = model.p_x.get_params({"z": z})["logits"]
        loss = model.loss_cls.eval(batch)
    assert {p.dtype for p in params.values()} == {torch.float32}
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32


def test_the_test_loss_is_float32_and_the_same_in_both_precisions(digits_train, digits_test):
    data, test = digits_train.subset(slice(0, 64)), digits_test.subset(slice(0, 64))
    results = {}
    for precision in ("fp32", "bf16"):
        model = fresh("vae", data)
        trainer = Trainer(model, data, test, epochs=1, batch_size=32, progress=False, precision=precision)
        seen, _ = linear_output_dtypes(model)
        results[precision] = trainer.test_loss()
        assert set(seen) == {torch.float32}, "the test loss ran under autocast"
    assert results["bf16"] == results["fp32"]  # same parameters, same samples, same float32 arithmetic


@pytest.mark.parametrize("name", ["factor-vae", "jmvae-gan"])
def test_a_discriminators_step_runs_in_bf16_too(digits_train, name):
    data = digits_train.subset(slice(0, 64))
    options = {"discriminator_hidden": [16]} if name == "factor-vae" else {}
    model = fresh(name, data, **options)
    Trainer(model, data, epochs=1, batch_size=32, progress=False, precision="bf16")
    outputs: list[torch.dtype] = []
    model.discriminator.register_forward_hook(lambda _m, _i, out: outputs.append(out.dtype))
    batch = data.first(32)
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    loss = model.train_step(batch)
    assert outputs and set(outputs) == {torch.bfloat16}
    assert torch.isfinite(torch.tensor(loss)) and torch.isfinite(model.step_health).all()
    after = list(model.discriminator.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True)), "the discriminator stepped"


def test_a_bad_precision_is_refused_naming_the_choices(digits_train, capsys, tmp_path):
    model = fresh("vae", digits_train)
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, got 'fp16'"):
        Trainer(model, digits_train, precision="fp16")
    with pytest.raises(ValueError, match=r"precision \(--precision\) must be one of fp32, bf16, got 'half'"):
        RunSpec.from_settings("vae", precision="half")
    with pytest.raises(SystemExit):
        main(["train", "vae", "--precision", "fp16", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert "argument --precision: invalid choice: 'fp16' (choose from" in err
    assert "fp32" in err.splitlines()[-1] and "bf16" in err.splitlines()[-1]
    assert not (tmp_path / "run").exists()


def test_a_run_records_its_precision_and_a_resume_may_change_it(tmp_path):
    spec = RunSpec.from_settings(
        "vae", options=TINY, epochs=1, batch_size=32, device="cpu", train_examples=64, test_examples=32
    )
    run = tmp_path / "run"
    train_run(spec.replace(precision="bf16"), run, progress=False)
    assert read_config(run)["train"]["precision"] == "bf16"
    state = load_checkpoint(run)["state"]["distributions"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    model, trainer = resume_run(run, epochs=2, progress=False, precision="fp32")
    assert trainer.precision == "fp32" and model.autocast_dtype is None
    config = read_config(run)
    assert config["train"]["precision"] == "fp32"
    assert config["resumed"][-1]["changed"] == {"precision": {"from": "bf16", "to": "fp32"}}
    assert load_checkpoint(run)["epoch"] == 2
    with pytest.raises(TypeError, match=r"a resume cannot change \['seed'\]"):
        resume_run(run, epochs=3, progress=False, seed=1)
    with pytest.raises(ValueError, match=r"precision \(--precision\) must be one of fp32, bf16"):
        resume_run(run, epochs=3, progress=False, precision="fp8")


def test_cli_precision_reaches_the_trainer_and_resume_with_it_is_recorded(tmp_path, monkeypatch):
    used: list[str] = []
    init = Trainer.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        used.append(self.precision)

    monkeypatch.setattr(Trainer, "__init__", recording)
    small = ["--train-examples", "64", "--test-examples", "32", "--batch-size", "32", "-o", "hidden=[16]"]
    common = [*small, "--z-dim", "2", "--device", "cpu", "--no-eval", "--no-progress"]
    run = tmp_path / "run"
    assert main(["train", "vae", *common, "--epochs", "1", "--precision", "bf16", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == "bf16"
    assert main(["train", "vae", "--resume", str(run), "--epochs", "2", "--no-eval", "--no-progress"]) == 0
    assert used == ["bf16", "bf16"], "a resume keeps the run's precision"
    args = ["train", "vae", "--resume", str(run), "--epochs", "3", "--precision", "fp32", "--no-eval"]
    assert main([*args, "--no-progress"]) == 0
    assert used[-1] == "fp32"
    resumed = read_config(run)["resumed"]
    assert "changed" not in resumed[0]
    assert resumed[1]["changed"] == {"precision": {"from": "bf16", "to": "fp32"}}


# ---------------------------------------------------------------------- CUDA (skipped without a GPU)
@requires_cuda
@pytest.mark.parametrize("name", ["vae", "jmvae-kl"])
def test_bf16_training_on_cuda(digits_train, name):
    data = digits_train.subset(slice(0, 320))
    model = fresh(name, data).to("cuda")
    trainer = Trainer(model, data, epochs=4, batch_size=32, progress=False, precision="bf16")
    seen, _ = linear_output_dtypes(model)
    losses = [record["train_loss"] for record in trainer.fit()]
    assert torch.bfloat16 in seen
    assert losses[-1] < losses[0] - 2.0, losses
    assert all(p.dtype == torch.float32 and p.is_cuda for p in model.distributions.parameters())


@requires_cuda
def test_bf16_loss_on_cuda_is_close_to_fp32(digits_train):
    batch = digits_train.first(64)
    losses = {}
    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        model = fresh("vae", digits_train, hidden=[256, 256]).to("cuda")
        model.autocast_dtype = dtype
        torch.manual_seed(1)
        losses[precision] = model.train_step(batch)
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=1e-3)
    assert losses["bf16"] != losses["fp32"]
