"""``model.save(path)`` and ``model.load(path)``: the whole state (distributions, optimiser,
discriminator), onto the loading model's device, refused clearly when it does not fit."""

from __future__ import annotations

import pytest
import torch

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.models import MODELS, build_model
from pixyz_zoo.training import Trainer
from tests.registered_models import built


def flat_state(state: object, prefix: str = "") -> dict[str, object]:
    """Every tensor and number of a (nested) state dict, by its path."""
    if isinstance(state, dict):
        out: dict[str, object] = {}
        for key, value in state.items():
            out.update(flat_state(value, f"{prefix}/{key}"))
        return out
    if isinstance(state, (list, tuple)):
        out = {}
        for i, value in enumerate(state):
            out.update(flat_state(value, f"{prefix}/{i}"))
        return out
    return {prefix: state}


def float64_batch(model, data) -> dict[str, torch.Tensor]:
    """The first 8 examples, as the float64 networks of ``built`` take them."""
    return {n: t.double() for n, t in data.first(8).items() if n in model.modalities}


def assert_same_state(a: dict, b: dict) -> None:
    flat_a, flat_b = flat_state(a), flat_state(b)
    assert flat_a.keys() == flat_b.keys()
    for key, value in flat_a.items():
        other = flat_b[key]
        if torch.is_tensor(value):
            assert torch.equal(value.cpu(), other.cpu()), key
        else:
            assert value == other, key


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_saved_model_loads_into_a_fresh_one_whole(name, tmp_path):
    torch.manual_seed(0)
    model, data = built(name)
    batch = float64_batch(model, data)
    model.train_step(batch)  # the optimiser (and a discriminator's) has a state to keep
    model.save(tmp_path / "model.pt")
    fresh, _ = built(name)
    fresh.load(tmp_path / "model.pt")
    assert_same_state(fresh.state(), model.state())
    for each in (model, fresh):  # training goes on as it would have
        torch.manual_seed(1)
        each.train_step(batch)
    assert_same_state(fresh.state(), model.state())


def test_the_discriminator_is_saved_with_the_model(tmp_path):
    """Pixyz's Model.save kept the distributions only: a FactorVAE lost its discriminator."""
    torch.manual_seed(0)
    model, data = built("factor-vae")
    model.train_step(float64_batch(model, data))
    model.save(tmp_path / "model.pt")
    fresh, _ = built("factor-vae")
    fresh.load(tmp_path / "model.pt")
    for key, value in model.discriminator.state_dict().items():
        assert torch.equal(fresh.discriminator.state_dict()[key], value), key


def test_a_trainer_checkpoint_loads_into_the_model_it_trained(tmp_path):
    train = load_dataset("digits", "train", binarize="fixed")
    model = build_model("vae", train.modalities, z_dim=2, hidden=[8])
    Trainer(model, train, epochs=1, batch_size=256, run_dir=tmp_path / "run", progress=False).fit()
    fresh = build_model("vae", train.modalities, z_dim=2, hidden=[8])
    fresh.load(tmp_path / "run" / "checkpoint.pt")
    assert_same_state(fresh.state(), model.state())
    with pytest.raises(IsADirectoryError, match="checkpoint.pt"):
        fresh.load(tmp_path / "run")


def test_a_state_that_does_not_fit_is_refused_and_nothing_changes(tmp_path):
    train = load_dataset("digits", "train", binarize="fixed")
    build_model("vae", train.modalities, z_dim=3, hidden=[8]).save(tmp_path / "z3.pt")
    model = build_model("vae", train.modalities, z_dim=2, hidden=[8])
    before = {k: v.clone() for k, v in model.distributions.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit this VAE .*size mismatch"):
        model.load(tmp_path / "z3.pt")
    for key, value in model.distributions.state_dict().items():
        assert torch.equal(value, before[key]), key

    factor_vae, _ = built("factor-vae")
    torch.save({"distributions": factor_vae.distributions.state_dict()}, tmp_path / "pixyz.pt")
    with pytest.raises(ValueError, match="holds no discriminator state, which this FactorVAE has"):
        factor_vae.load(tmp_path / "pixyz.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="holds no model state"):
        model.load(tmp_path / "other.pt")


def test_a_state_saved_on_another_device_loads_onto_the_models(tmp_path, monkeypatch):
    """torch.load is told the loading model's device: a file written on a GPU loads on the CPU."""
    train = load_dataset("digits", "train", binarize="fixed")
    model = build_model("vae", train.modalities, z_dim=2, hidden=[8])
    model.save(tmp_path / "model.pt")
    seen: dict[str, object] = {}
    load = torch.load

    def recording_load(*args, **kwargs):
        seen.update(kwargs)
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    model.load(tmp_path / "model.pt")
    assert seen["map_location"] == torch.device("cpu") and seen["weights_only"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_state_saved_on_cuda_loads_on_the_cpu(tmp_path):
    train = load_dataset("digits", "train", binarize="fixed")
    model = build_model("vae", train.modalities, z_dim=2, hidden=[8]).to("cuda")
    model.train_step(train.first(8))
    model.save(tmp_path / "model.pt")
    fresh = build_model("vae", train.modalities, z_dim=2, hidden=[8])
    fresh.load(tmp_path / "model.pt")
    assert fresh.device.type == "cpu"
    assert_same_state(fresh.state(), model.state())
