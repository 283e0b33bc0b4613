import io
import json

import pytest
import torch

from pixyz_zoo.models import VAE
from pixyz_zoo.training import (
    CHECKPOINT,
    CheckpointError,
    NonFiniteLossError,
    Trainer,
    load_checkpoint,
    model_from_checkpoint,
    resolve_device,
    save_checkpoint,
)
from tests.conftest import requires_cuda


def make(data, seed=0, **options):
    torch.manual_seed(seed)
    return VAE(data.modalities, **{"z_dim": 4, "hidden": [32], **options})


def params(model):
    return {k: v.clone() for k, v in model.distributions.state_dict().items()}


def test_resume_after_interruption_equals_uninterrupted_run(digits_train, digits_test, tmp_path):
    small = digits_train.subset(slice(0, 300))
    reference = make(small)
    Trainer(reference, small, digits_test, epochs=3, batch_size=32, warmup_epochs=2, progress=False).fit()

    interrupted = make(small)

    def stop_after_second_epoch(trainer, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    trainer = Trainer(
        interrupted,
        small,
        digits_test,
        epochs=3,
        batch_size=32,
        warmup_epochs=2,
        run_dir=tmp_path,
        progress=False,
        callback=stop_after_second_epoch,
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert load_checkpoint(tmp_path)["epoch"] == 2

    resumed = make(small, seed=123)  # a fresh process: different initial weights
    trainer = Trainer(
        resumed,
        small,
        digits_test,
        epochs=3,
        batch_size=32,
        warmup_epochs=2,
        run_dir=tmp_path,
        progress=False,
    )
    history = trainer.resume().fit()
    assert [r["epoch"] for r in history] == [1, 2, 3]
    expected, got = params(reference), params(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_checkpoint_is_written_atomically(digits_train, tmp_path):
    model = make(digits_train)
    Trainer(
        model, digits_train.subset(slice(0, 64)), epochs=1, batch_size=32, run_dir=tmp_path, progress=False
    ).fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT, "history.json"]
    assert json.loads((tmp_path / "history.json").read_text())[0]["epoch"] == 1
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path))
    assert all(
        torch.equal(a, b) for a, b in zip(params(model).values(), params(rebuilt).values(), strict=True)
    )


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(digits_train, tmp_path, monkeypatch):
    data = digits_train.subset(slice(0, 64))
    trainer = Trainer(make(data), data, epochs=1, batch_size=32, run_dir=tmp_path, progress=False)
    trainer.fit()
    previous = (tmp_path / CHECKPOINT).read_bytes()
    save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        """Write half of the file, then fail (a full disk, a killed process)."""
        buffer = io.BytesIO()
        save(obj, buffer, *args, **kwargs)
        with open(f, "wb") as out:
            out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    trainer.epochs = 2
    with pytest.raises(OSError, match="No space left"):
        trainer.fit()
    monkeypatch.undo()
    assert (tmp_path / CHECKPOINT).read_bytes() == previous, "the epoch-1 checkpoint is untouched"
    assert load_checkpoint(tmp_path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT, "history.json"], "no partial file left"


def test_warmup_ramps_annealed_symbols(digits_train):
    trainer = Trainer(make(digits_train, beta=2.0), digits_train, warmup_epochs=4, progress=False)
    assert trainer.hyperparameter_values(0.0) == {"beta": 0.0}
    assert trainer.hyperparameter_values(1.0) == {"beta": 0.5}
    assert trainer.hyperparameter_values(10.0) == {"beta": 2.0}
    assert Trainer(make(digits_train), digits_train, progress=False).hyperparameter_values(0.0) == {
        "beta": 1.0
    }


def test_nan_loss_stops_and_keeps_last_good_checkpoint(digits_train, tmp_path):
    model = make(digits_train)
    data = digits_train.subset(slice(0, 64))

    def poison(trainer, record):
        with torch.no_grad():
            trainer.model.q.network.net[0].weight.fill_(float("nan"))

    trainer = Trainer(model, data, epochs=3, batch_size=32, run_dir=tmp_path, progress=False, callback=poison)
    with pytest.raises(
        NonFiniteLossError, match=r"epoch 2, step 1.*last good checkpoint .*epoch 1\) is kept.*--lr"
    ):
        trainer.fit()
    payload = load_checkpoint(tmp_path)
    assert payload["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in payload["state"]["distributions"].values())


def test_checkpoint_of_another_model_is_refused(digits_train, tmp_path):
    model = make(digits_train)
    trainer = Trainer(
        model, digits_train.subset(slice(0, 32)), epochs=1, batch_size=32, run_dir=tmp_path, progress=False
    )
    trainer.fit()
    with pytest.raises(CheckpointError, match="holds model 'vae', not 'jmvae'.*pixyz-zoo train vae --resume"):
        load_checkpoint(tmp_path, expected_model="jmvae")
    other = make(digits_train, z_dim=6)
    with pytest.raises(CheckpointError, match="made with options"):
        Trainer(other, digits_train, run_dir=tmp_path, progress=False).resume()


def test_corrupted_and_foreign_checkpoints_are_explained(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted or not a PyTorch file"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / CHECKPOINT, {"weights": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="not a pixyz-zoo checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing")


def test_truncated_checkpoint_is_explained(digits_train, tmp_path):
    Trainer(
        make(digits_train),
        digits_train.subset(slice(0, 32)),
        epochs=1,
        batch_size=32,
        run_dir=tmp_path,
        progress=False,
    ).fit()
    path = tmp_path / CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path)


def test_trainer_refuses_data_without_the_model_variables(digits_train):
    from pixyz_zoo.modalities import Modality

    model = VAE(
        {"x": Modality("x", (1, 8, 8), "bernoulli"), "w": Modality("w", (2,), "categorical")},
        observed="w",
        z_dim=2,
        hidden=[8],
    )
    with pytest.raises(KeyError, match=r"has no variable\(s\) \['w'\]"):
        Trainer(model, digits_train)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


@requires_cuda
def test_training_and_evaluation_on_cuda(digits_train, digits_test):
    from pixyz_zoo.evaluation import evaluate_log_likelihood

    model = make(digits_train).to("cuda")
    history = Trainer(model, digits_train, digits_test, epochs=1, batch_size=64, progress=False).fit()
    assert model.device.type == "cuda" and history[0]["test_loss"] > 0
    result = evaluate_log_likelihood(model, digits_test, k=10)
    assert result["iwae_10"] >= result["elbo"] - 0.5
    assert model.sample(4)["x"].device.type == "cuda"
