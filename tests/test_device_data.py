"""Training data on the device: the trainer moves the in-memory splits to a GPU once.

On the CPU nothing changes (same batches, same random numbers: recorded runs and exact resumes
stay as they were). On a GPU the batches are indexed there, the order is still drawn on the CPU and
the dynamic binarisation draws from a device generator seeded by the CPU generator, so a resumed run
draws the same batches. The tests marked ``requires_cuda`` are skipped without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixyz_zoo.datasets.base import MultimodalDataset, device_generator
from pixyz_zoo.models import ZooModel, build_model
from pixyz_zoo.training import Trainer, load_checkpoint
from tests.conftest import requires_cuda

TINY = {"z_dim": 2, "hidden": [16]}


def all_batches(data: MultimodalDataset, seed: int, shuffle: bool = True) -> list[dict[str, torch.Tensor]]:
    return list(data.batches(32, shuffle=shuffle, generator=torch.Generator().manual_seed(seed)))


def test_to_the_cpu_is_a_no_op_with_the_same_batches(digits_train):
    data = digits_train.subset(slice(0, 100))
    assert data.to("cpu") is data and data.to(torch.device("cpu")) is data
    assert data.device == torch.device("cpu")
    assert data.nbytes == sum(t.numel() * t.element_size() for t in data.tensors.values()) > 0
    generator = torch.Generator().manual_seed(3)
    assert device_generator(generator, torch.device("cpu")) is generator
    assert device_generator(None, torch.device("cpu")) is None
    # the batches (order and dynamic binarisation) are those of a plain randperm + bernoulli stream
    expected, g = [], torch.Generator().manual_seed(5)
    order = torch.randperm(100, generator=g)
    for start in range(0, 100, 32):
        expected.append(torch.bernoulli(data.tensors["x"][order[start : start + 32]], generator=g))
    got = all_batches(data, 5)
    assert len(got) == 4 and all(torch.equal(b["x"], e) for b, e in zip(got, expected, strict=True))


def test_the_trainer_on_the_cpu_keeps_the_data_where_it_is(digits_train, digits_test):
    data, test = digits_train.subset(slice(0, 64)), digits_test.subset(slice(0, 32))
    model = build_model("vae", data.modalities, **TINY)
    trainer = Trainer(model, data, test, epochs=1, batch_size=32, progress=False)
    assert trainer._train_source is data and trainer._test_source is test


def test_a_split_goes_to_the_device_under_the_size_limit_only(digits_train, monkeypatch):
    """The decision, on the CPU: a model "on" the meta device gets the splits moved there, unless a
    split is larger than ``Trainer.device_data_limit``."""
    data = digits_train.subset(slice(0, 64))
    model = build_model("vae", data.modalities, **TINY)
    trainer = Trainer(model, data, epochs=1, batch_size=32, progress=False)
    monkeypatch.setattr(ZooModel, "device", property(lambda self: torch.device("meta")))
    moved = trainer.on_device(data)
    assert moved is not data and moved.device.type == "meta" and data.device.type == "cpu"
    assert moved.modalities == data.modalities and len(moved) == len(data)
    monkeypatch.setattr(Trainer, "device_data_limit", data.nbytes - 1)
    assert trainer.on_device(data) is data


# ---------------------------------------------------------------------- CUDA (skipped without a GPU)
@requires_cuda
def test_batches_on_cuda_follow_the_cpu_order_and_draw_on_the_device(digits_train):
    data = digits_train.subset(slice(0, 100))
    on_gpu = data.to("cuda")
    assert on_gpu.device.type == "cuda" and data.device.type == "cpu"
    assert on_gpu.to("cuda") is on_gpu
    gpu = all_batches(on_gpu, 7)
    cpu = all_batches(data, 7)
    assert len(gpu) == len(cpu) == 4 and all(b["x"].is_cuda for b in gpu)
    # the same examples in the same order (grey levels: without binarisation)
    plain = MultimodalDataset("d", dict(data.tensors), data.modalities, binarize="none")
    assert all(
        torch.equal(g["x"].cpu(), c["x"])
        for g, c in zip(all_batches(plain.to("cuda"), 7), all_batches(plain, 7), strict=True)
    )
    # binary draws, the same again from the same generator state, others from another
    assert all(((b["x"] == 0) | (b["x"] == 1)).all() for b in gpu)
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(gpu, all_batches(on_gpu, 7), strict=True))
    assert not torch.equal(gpu[0]["x"], all_batches(on_gpu, 8)[0]["x"])
    # the CPU generator is advanced by the order and one seed draw: the state a checkpoint keeps
    g = torch.Generator().manual_seed(7)
    list(on_gpu.batches(32, shuffle=True, generator=g))
    h = torch.Generator().manual_seed(7)
    torch.randperm(100, generator=h)
    torch.randint(0, 2**62, (), generator=h)
    assert torch.equal(g.get_state(), h.get_state())
    assert on_gpu.first(5)["x"].is_cuda


@requires_cuda
def test_the_trainer_moves_the_splits_to_cuda_once(digits_train, digits_test, monkeypatch):
    data, test = digits_train.subset(slice(0, 64)), digits_test.subset(slice(0, 32))
    model = build_model("vae", data.modalities, **TINY).to("cuda")
    trainer = Trainer(model, data, test, epochs=1, batch_size=32, progress=False)
    assert trainer._train_source.device.type == "cuda" and trainer._test_source.device.type == "cuda"
    assert trainer.train_data is data and data.device.type == "cpu"  # the caller's data is not moved
    seen: list[torch.device] = []
    step = ZooModel.train_step

    def recording(self, batch, **kwargs):
        seen.extend(t.device for t in batch.values())
        return step(self, batch, **kwargs)

    monkeypatch.setattr(ZooModel, "train_step", recording)
    trainer.fit()
    assert seen and all(d.type == "cuda" for d in seen), "batches were made on the device"
    monkeypatch.setattr(Trainer, "device_data_limit", 0)  # too large: stays on the host
    trainer = Trainer(model, data, test, epochs=1, batch_size=32, progress=False)
    assert trainer._train_source is data
    seen.clear()
    trainer.fit()
    assert seen and all(d.type == "cpu" for d in seen)


@requires_cuda
def test_a_resumed_cuda_run_draws_the_same_batches(digits_train, tmp_path: Path):
    data = digits_train.subset(slice(0, 96))

    def run(out: Path, epochs: int, resume: bool = False) -> None:
        torch.manual_seed(0)
        model = build_model("vae", data.modalities, **TINY).to("cuda")
        trainer = Trainer(model, data, epochs=epochs, batch_size=32, run_dir=out, progress=False)
        if resume:
            trainer.resume(out)
        trainer.fit()

    run(tmp_path / "full", 2)
    run(tmp_path / "part", 1)
    run(tmp_path / "part", 2, resume=True)
    full, part = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    for name, value in full["state"]["distributions"].items():
        torch.testing.assert_close(part["state"]["distributions"][name], value, msg=name)
    assert [r["train_loss"] for r in part["history"]] == pytest.approx(
        [r["train_loss"] for r in full["history"]]
    )
