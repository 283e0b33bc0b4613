"""Data-parallel training (DistributedDataParallel over gloo, 2 CPU processes).

One pair of processes (``torch.multiprocessing.spawn``) runs every scenario and writes what it
trained; the tests compare that with 1-process training in the test process.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributions import Normal

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.models import build_model
from pixyz_zoo.training import Trainer, seed_everything
from tests.test_hot_path import ScalarReads

WORLD = 2
B = 16  # batch per process; the 1-process reference trains on batch WORLD * B
EXAMPLES = 128  # 4 global batches of 32: 4 steps per epoch
VAE = {"z_dim": 2, "hidden": [32]}
FACTOR_VAE = {"z_dim": 2, "hidden": [16], "discriminator_hidden": [8], "lr": 1e-3}
ITERATIVE = {"z_dim": 2, "hidden": [16]}


@contextmanager
def noise_free() -> Iterator[None]:
    """Reparameterised samples are the distribution's mean (``z = mu``): the ranks draw their own
    latent noise (seed + rank), which no 1-process run can reproduce, so the comparison of the data
    split and the gradient averaging is made without it."""
    rsample = Normal.rsample

    def mean(self: Normal, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        return self.loc.expand(self._extended_shape(torch.Size(sample_shape)))

    Normal.rsample = mean  # type: ignore[method-assign]
    try:
        yield
    finally:
        Normal.rsample = rsample  # type: ignore[method-assign]


def data():
    return load_dataset("digits", "train").subset(slice(0, EXAMPLES))


def train(name: str, options: dict, batch_size: int, epochs: int, run_dir=None, resume=False, world=1):
    """A model trained by the zoo's Trainer (in every process of a group when one is active)."""
    seed_everything(0)
    model = build_model(name, data().modalities, **options)
    trainer = Trainer(
        model, data(), epochs=epochs, batch_size=batch_size, run_dir=run_dir, progress=False, world_size=world
    )
    if resume:
        trainer.resume()
    trainer.fit()
    return model


def parameters(model) -> dict[str, torch.Tensor]:
    out = {f"distributions.{k}": v.detach().clone() for k, v in model.distributions.state_dict().items()}
    if hasattr(model, "discriminator"):
        out |= {f"discriminator.{k}": v.detach().clone() for k, v in model.discriminator.state_dict().items()}
    return out


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        results = {}
        with noise_free():
            results["vae"] = parameters(train("vae", VAE, B, 1, world=WORLD))
        results["factor-vae"] = parameters(train("factor-vae", FACTOR_VAE, B, 1, world=WORLD))
        with noise_free():
            results["iterative-vae"] = parameters(train("iterative-vae", ITERATIVE, B, 1, world=WORLD))
        # 2 epochs at once, and 1 epoch then a resume to 2 (sampling noise on: each rank its own)
        results["full"] = parameters(train("vae", VAE, B, 2, Path(out, "full"), world=WORLD))
        train("vae", VAE, B, 1, Path(out, "part"), world=WORLD)
        results["resumed"] = parameters(train("vae", VAE, B, 2, Path(out, "part"), resume=True, world=WORLD))
        seed_everything(0)
        model = build_model("vae", data().modalities, **VAE)
        trainer = Trainer(model, data(), epochs=1, batch_size=B, progress=False, world_size=WORLD)
        with ScalarReads() as reads:  # a data-parallel epoch: 4 steps, checked at its end
            trainer.fit()
        results["host_reads"] = reads.sites
        torch.save(results, Path(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, dict[str, torch.Tensor]]]:
    out = tmp_path_factory.mktemp("ddp")
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        mp.spawn(_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = threads
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tolerance: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if tolerance:
            torch.testing.assert_close(a[key], b[key], **tolerance, msg=lambda m, key=key: f"{key}: {m}")
        else:
            assert torch.equal(a[key], b[key]), key


def test_two_processes_at_batch_b_train_as_one_process_at_batch_2b(ranks):
    with noise_free():
        reference = parameters(train("vae", VAE, WORLD * B, 1))
    start = parameters(train("vae", VAE, WORLD * B, 0))
    moved = max((reference[k] - start[k]).abs().max() for k in reference)
    assert moved > 1e-3  # 4 Adam steps of lr 1e-3 moved the parameters
    # The same global batches, the gradient of the same global mean (the mean of the 2 ranks' means of
    # 16 rows, as DDP averages, against one mean of 32 rows): only float32 summation order differs
    # (relative ~1e-7 per gradient); 4 Adam steps of size <= lr = 1e-3 keep that far below 1e-5
    # (measured: 3e-8 on the first layer). Without DDP's all-reduce rank 0 is 4e-3 away.
    assert_same(ranks[0]["vae"], reference, rtol=1e-4, atol=1e-5)
    assert_same(ranks[1]["vae"], ranks[0]["vae"])


def test_a_model_whose_loss_takes_gradients_trains_as_one_process(ranks):
    """Iterative inference trains its initial encoder by backward passes inside the loss, which DDP
    does not see: the model averages every gradient itself (without it, the ranks' initial encoders
    drift apart while the rest agrees)."""
    with noise_free():
        reference = parameters(train("iterative-vae", ITERATIVE, WORLD * B, 1))
    assert_same(ranks[1]["iterative-vae"], ranks[0]["iterative-vae"])
    assert_same(ranks[0]["iterative-vae"], reference, rtol=1e-4, atol=1e-5)


def test_every_rank_holds_the_same_model_and_discriminator(ranks):
    # FactorVAE's discriminator takes its own Adam step on its own DDP-wrapped loss: without the
    # all-reduce, the ranks' discriminators (trained on different data and permutations) drift apart
    assert any(k.startswith("discriminator.") for k in ranks[0]["factor-vae"])
    assert_same(ranks[0]["factor-vae"], ranks[1]["factor-vae"])


def test_an_interrupted_two_process_run_resumes_to_the_same_parameters(ranks):
    for rank in ranks:
        assert_same(rank["resumed"], rank["full"])
    assert_same(ranks[0]["full"], ranks[1]["full"])


def test_a_data_parallel_step_reads_nothing_on_the_host(ranks):
    """The ranks agree on a finite loss and average the loss of the global batch on the device: an
    epoch of 4 steps reads no value on the host (the trainer's check uses ``tolist``, once)."""
    assert [r["host_reads"] for r in ranks] == [[], []]
