"""The training hot path: no host read of a device value per step, and still no update with a
NaN/inf loss or gradient (skipped on the device, reported at the trainer's next check)."""

from __future__ import annotations

import traceback
from typing import Any

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from pixyz_zoo.models import FactorVAE, build_model
from pixyz_zoo.models.base import NonFiniteLossError, ZooModel, health_message
from pixyz_zoo.training import Trainer
from tests.conftest import requires_cuda

TINY = {"z_dim": 4, "hidden": [32]}
HOST_READS = ("aten::item", "aten::_local_scalar_dense")


class ScalarReads(TorchDispatchMode):
    """Records where (the innermost Python frames) each read of a tensor's value on the host happens."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: list[list[tuple[str, str]]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            frames = [f for f in traceback.extract_stack() if "/torch/" not in f.filename]
            self.sites.append([(f.filename.rsplit("/", 1)[-1], f.name) for f in frames[-2:]])
        return func(*args, **(kwargs or {}))


def ancestors(event: Any) -> list[str]:
    names, parent = [], event.cpu_parent
    while parent is not None:
        names.append(parent.name)
        parent = parent.cpu_parent
    return names


def batch_of(model: ZooModel, data: Any, n: int = 16) -> dict[str, torch.Tensor]:
    batch = data.first(n)
    return {k: batch[k] for k in model.modalities}


@pytest.mark.parametrize("name", ["vae", "jmvae-kl", "mopoe", "mmvae"])
def test_a_training_step_reads_no_device_value_on_the_host(digits_train, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, **TINY)
    batch = batch_of(model, digits_train)
    model.train_step(batch, check=False)  # the optimiser state exists
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train_step(batch, check=False)
    with ScalarReads() as reads:
        loss = model.train_step(batch, check=False)
    profiled = [event for event in prof.events() if event.name in HOST_READS]
    in_adam = [event for event in profiled if "aten::_fused_adam_" in ancestors(event)]
    # fused Adam's CPU kernel reads its step counts from host memory (its CUDA kernel reads them on
    # the device); apart from those, neither the profiler (item() calls _local_scalar_dense: two
    # events per read) nor the dispatcher sees a tensor's value read on the host
    assert len(profiled) - len(in_adam) == 2 * len(reads.sites)
    assert reads.sites == [], "a training step waits for the device"
    assert torch.is_tensor(loss) and not loss.requires_grad
    # the checked step (outside the trainer) does read: that is what it is for
    with ScalarReads() as checked:
        model.train_step(batch)
    assert checked.sites


def host_waits(run: Any) -> list[str]:
    """The device-to-host copies and synchronisations the CUDA profiler sees while ``run()`` runs."""
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
    return [
        event.name
        for event in prof.events()
        if "DtoH" in event.name or "Device -> Host" in event.name or event.name.endswith("Synchronize")
    ]


@requires_cuda
@pytest.mark.parametrize("name", ["vae", "jmvae-kl"])
def test_a_cuda_training_step_copies_nothing_to_the_host(digits_train, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, **TINY).to("cuda")
    batch = {k: v.to("cuda") for k, v in batch_of(model, digits_train).items()}
    model.train_step(batch, check=False)  # the optimiser state exists
    torch.cuda.synchronize()
    assert host_waits(lambda: model.train_step(batch, check=False)) == []
    # the detector sees a read when there is one: the checked step reads the loss
    assert host_waits(lambda: model.train_step(batch))


def snapshot(model: ZooModel) -> list[torch.Tensor]:
    """Every parameter, buffer and optimiser state tensor (step counts included) of ``model``."""
    tensors = [t.detach().clone() for t in model.distributions.state_dict().values()]
    optimizers = [model.optimizer] + [
        o for o in (getattr(model, "discriminator_optimizer", None),) if o is not None
    ]
    if hasattr(model, "discriminator"):
        tensors += [t.detach().clone() for t in model.discriminator.state_dict().values()]
    for optimizer in optimizers:
        for state in optimizer.state.values():
            tensors += [v.clone() for v in state.values() if torch.is_tensor(v)]
    return tensors


def identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_non_finite_loss_changes_no_parameter_and_no_optimiser_state(digits_train):
    torch.manual_seed(0)
    model = build_model("vae", digits_train.modalities, **TINY)
    batch = batch_of(model, digits_train)
    model.train_step(batch, check=False)
    before = snapshot(model)
    poisoned = {"x": batch["x"].clone()}
    poisoned["x"][0, 0] = float("nan")  # the value check is off on the hot path: the loss is NaN
    loss = model.train_step(poisoned, check=False)
    assert torch.isnan(loss)
    assert identical(before, snapshot(model)), "the step was skipped on the device"
    assert health_message(model.step_health.tolist()) == "the training loss is nan"
    model.train_step(batch, check=False)
    assert not identical(before, snapshot(model)), "a finite step after it updates again"


def test_non_finite_gradients_of_a_finite_loss_change_nothing(digits_train):
    torch.manual_seed(0)
    model = build_model("vae", digits_train.modalities, **TINY)
    batch = batch_of(model, digits_train)
    model.train_step(batch, check=False)
    before = snapshot(model)
    weight = next(model.distributions.parameters())
    handle = weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    loss = model.train_step(batch, check=False)
    handle.remove()
    assert torch.isfinite(loss)
    assert identical(before, snapshot(model))
    assert health_message(model.step_health.tolist()) == "the gradients' norm is inf (the loss was finite)"


def test_a_skipped_model_step_skips_the_discriminators_step_too(digits_train):
    torch.manual_seed(0)
    model = FactorVAE(digits_train.modalities, gamma=2.0, discriminator_hidden=[16], **TINY)
    batch = batch_of(model, digits_train)
    model.train_step(batch, check=False)
    before = snapshot(model)
    handle = model.q.network.net[0].weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))
    model.train_step(batch, check=False)
    handle.remove()
    assert identical(before, snapshot(model)), "neither the VAE nor its discriminator moved"
    with torch.no_grad():
        list(model.discriminator.parameters())[-1].fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss is nan"):
        model.train_step(batch)  # checked: raises; nothing moved but the NaN put there by hand
    model.train_step(batch, check=False)
    assert not torch.isfinite(model.step_health[2]), "the discriminator's loss is reported"


def test_the_trainer_stops_at_its_check_naming_the_step(digits_train, tmp_path, monkeypatch):
    data = digits_train.subset(slice(0, 128))
    torch.manual_seed(0)
    model = build_model("vae", data.modalities, **TINY)
    calls: list[bool] = []
    step = ZooModel.train_step

    def poison_second(self, batch, check=True, **values):
        calls.append(check)
        if len(calls) == 2:
            batch = {"x": torch.full_like(batch["x"], float("nan"))}
        return step(self, batch, check=check, **values)

    monkeypatch.setattr(ZooModel, "train_step", poison_second)
    trainer = Trainer(model, data, epochs=1, batch_size=16, run_dir=tmp_path, progress=False, check_every=5)
    with pytest.raises(
        NonFiniteLossError, match=r"the training loss is nan at epoch 1, step 2; training stopped and no"
    ):
        trainer.fit()
    assert calls == [False] * 5, "the trainer did not wait for the device until its check after step 5"
    assert all(torch.isfinite(p).all() for p in model.distributions.parameters())
    assert not (tmp_path / "checkpoint.pt").exists()


def test_check_every_must_be_positive(digits_train):
    model = build_model("vae", digits_train.modalities, **TINY)
    with pytest.raises(
        ValueError, match=r"check_every \(steps between reads of the loss\) must be an integer >= 1, got 0"
    ):
        Trainer(model, digits_train, check_every=0)


def test_argument_validation_is_restored_and_an_unfused_state_loads(digits_train):
    validating = torch.distributions.Distribution._validate_args
    torch.manual_seed(0)
    model = build_model("vae", digits_train.modalities, **TINY)
    batch = batch_of(model, digits_train)
    model.train_step(batch, check=False)
    assert torch.distributions.Distribution._validate_args == validating
    state = model.state()
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = False  # a checkpoint written by an unfused Adam
    other = build_model("vae", digits_train.modalities, **TINY)
    other.load_state(state)
    assert all(group["fused"] for group in other.optimizer.param_groups)
    other.train_step(batch, check=False)  # fused Adam takes the skip flag


def test_an_optimiser_put_in_place_of_the_models_still_skips(digits_train):
    torch.manual_seed(0)
    model = build_model("vae", digits_train.modalities, **TINY)
    batch = batch_of(model, digits_train)
    model.optimizer = torch.optim.Adam(model.distributions.parameters(), lr=1e-2)  # unfused
    model.train_step(batch)
    assert all(group["fused"] for group in model.optimizer.param_groups)
    weight = next(model.distributions.parameters())
    handle = weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))
    before = snapshot(model)
    with pytest.raises(NonFiniteLossError, match="gradients' norm is nan"):
        model.train_step(batch)
    assert identical(before, snapshot(model))
    model.optimizer = torch.optim.SGD(model.distributions.parameters(), lr=1e-2)  # no device-side skip
    before = snapshot(model)
    with pytest.raises(NonFiniteLossError, match="gradients' norm is nan"):
        model.train_step(batch)
    assert identical(before, snapshot(model))
    handle.remove()
    model.train_step(batch)
    assert not identical(before, snapshot(model))
