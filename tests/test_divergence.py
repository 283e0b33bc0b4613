"""The divergence check: a runaway or non-finite loss stops training and keeps the last good checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from pixyz_zoo.cli import main
from pixyz_zoo.models import VAE
from pixyz_zoo.models.base import DivergedLossError
from pixyz_zoo.training import (
    CHECKPOINT,
    DivergenceCheck,
    NonFiniteLossError,
    Trainer,
    load_checkpoint,
)


def first_alarm(
    losses: list[float], epoch_steps: int = 1000, transient: bool = True, **options
) -> int | None:
    """The step (1-based) at which the check stops, or None (epochs of ``epoch_steps`` steps;
    ``transient=False``: without the early-transient rule)."""
    check = DivergenceCheck(**options)
    if not transient:
        check.TRANSIENT_STEPS = 0
    for step, loss in enumerate(losses, 1):
        if check.update(loss, epoch_end=step % epoch_steps == 0) is not None:
            return step
    return None


def noisy(values, relative: float = 0.05, absolute: float = 0.0, seed: int = 0) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for v in values:
        noise = float(torch.randn((), generator=generator))
        out.append(v + noise * (relative * abs(v) + absolute))
    return out


# ---------------------------------------------------------------------- the rule on made-up curves
def test_normal_training_curves_never_stop():
    steps = range(600)
    curves = {
        # the fast early drop of a Bernoulli likelihood, then a noisy plateau
        "fast drop": noisy([30 + 500 * math.exp(-s / 15) for s in steps]),
        # a continuous likelihood: negative, falling by thousands of nats
        "negative": noisy([-500 - 1500 * (1 - math.exp(-s / 100)) for s in steps], absolute=20),
        # crossing zero, where |level| alone would be a useless scale
        "through zero": noisy([50 - s / 6 for s in steps], relative=0.0, absolute=3),
        # a KL weight warming up: the loss rises from 20 to 60 nats over 200 steps
        "warm-up rise": noisy([20 + 40 * min(1, s / 200) for s in steps]),
        # a capacity-annealed objective with a 1000x weight: large, jumpy
        "jumpy": noisy([1500 - s for s in steps], relative=0.3),
        # losses that start at or near 0, then settle at 1 or 3 nats
        "from zero": [0.0] + noisy([1.0] * 599),
        "from near zero": [0.05, 0.5] + noisy([3.0] * 598),
    }
    for name, losses in curves.items():
        assert first_alarm(losses) is None, name


def test_runaway_losses_stop_after_warmup_and_patience():
    # too high a learning rate (measured: lr 10 on the digits VAE): 51 nats, then 1e5..1e16
    blowup = [51.3, 6e13, 6e9, 5e7] + [1e7] * 30
    assert first_alarm(blowup, warmup_steps=10, patience=3) == 11  # far above since step 2
    assert first_alarm(blowup, warmup_steps=10, patience=3, epoch_steps=5) == 5  # before a checkpoint
    assert first_alarm(blowup, warmup_steps=0, patience=1) == 2
    # late: a continuous-likelihood loss at -2000 that runs to +1e5 and stays (a rise to +5000 is
    # only 3.5 times |level| + spread: not "far above" at the default factor 10)
    late = noisy([-2000.0] * 100, absolute=30)
    assert first_alarm(late + [1e5] * 10) == 103
    assert first_alarm(late + [5000.0] * 10) is None
    assert first_alarm(late + [5000.0] * 10, factor=3) == 103
    # one odd batch is not a divergence; three in a row are
    spike = noisy([40.0] * 50) + [4000.0] + noisy([40.0] * 50, seed=1)
    assert first_alarm(spike) is None
    assert first_alarm(spike, patience=1) == 51
    # a larger factor tolerates more
    assert first_alarm(noisy([40.0] * 50) + [1000.0] * 5, factor=30) is None


# measured per-step training losses (seed 0, trimodal-digits / digits, batch 128 / 64)
MFM_BATCH_128 = [
    9.1, 117.12, 127.38, 463.09, 1574.96, 577.82, 181.73, 184.31, 216.62, 166.91, 121.34, 86.77, 66.01,
    62.87, 88.08, 139.79, 247.39, 162.22, 88.7, 45.12, 31.72, 30.37, 29.21, 45.88, 47.15, 36.57, 38.45,
    43.61, 39.48, 34.39, 34.8, 35.31, 32.94, 28.94, 25.68, 24.21, 28.46, 33.65, 35.14, 25.54, 20.9,
]  # fmt: skip
VAE_LR_03 = [51.3, 4.55e10, 6.07e6, 6.72e4, 4.36e6, 2.24e4, 1.4e4, 2.49e4, 3.31e4, 2.68e4, 3.13e4, 2.61e4]


def test_an_early_transient_is_not_a_divergence():
    """MFM's surrogate regression: the loss runs to 9.5-173 x its first step's for 11 steps, then
    trains normally. An early run of far-above steps counts only its steps 100 x farther above, for
    its first 20 steps: too high a learning rate still stops after the warm-up, and a moderate rise
    that begins early and stays stops once the transient's steps are over."""
    assert first_alarm(MFM_BATCH_128) is None
    assert first_alarm(MFM_BATCH_128, epoch_steps=12) is None
    assert first_alarm(MFM_BATCH_128, transient=False) == 6  # the rule without the transient
    assert first_alarm(VAE_LR_03) == 6
    assert first_alarm(VAE_LR_03, epoch_steps=5) == 5
    stays = [50.0] + [2000.0] * 40  # far above from step 2, never 100 x farther
    steps = DivergenceCheck.TRANSIENT_STEPS
    assert first_alarm(stays) == 2 + steps + 2  # step 2 + 20 transient steps, then 3 strikes
    assert first_alarm(noisy([40.0] * 10) + [2000.0] * 30) == 13  # a run that begins after the warm-up


def test_the_first_epoch_of_mfm_at_batch_128_trains(tmp_path):
    """The measured transient, through the command line: before the transient rule, the check
    stopped this run at its 7th step."""
    out = tmp_path / "run"
    args = ["train", "mfm", "--dataset", "trimodal-digits", "--batch-size", "128", "--epochs", "1"]
    assert main([*args, "--out", str(out), "--no-progress", "--no-eval"]) == 0
    assert (out / CHECKPOINT).exists()


def test_check_options_are_validated():
    for bad in ({"factor": 0}, {"warmup_steps": -1}, {"patience": 0}):
        with pytest.raises(ValueError, match="divergence check needs"):
            DivergenceCheck(**bad)


# ---------------------------------------------------------------------- the trainer
def make(data, seed: int = 0, **options) -> VAE:
    torch.manual_seed(seed)
    return VAE(data.modalities, **{"z_dim": 4, "hidden": [32], **options})


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.distributions.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_too_high_learning_rate_stops_with_the_message(digits_train, tmp_path):
    # lr 10: the loss runs to 1e5..1e16 nats while the gradients stay finite
    data = digits_train.subset(slice(0, 320))
    trainer = Trainer(make(data, lr=10.0), data, epochs=2, batch_size=32, run_dir=tmp_path, progress=False)
    with pytest.raises(
        DivergedLossError,
        match=r"diverged: .* above its running level .* at epoch 1, step \d+; training stopped and "
        r"no checkpoint was written yet\. Lower the learning rate \(--lr\)",
    ):
        trainer.fit()
    assert not (tmp_path / CHECKPOINT).exists()
    # the same run without the check goes on "successfully"
    history = Trainer(
        make(data, lr=10.0), data, epochs=1, batch_size=32, progress=False, divergence_factor=None
    ).fit()
    assert history[0]["train_loss"] > 1e4


def test_cli_lr_1000_stops_with_the_message(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "vae", "--lr", "1000", "--epochs", "2", "--out", str(out), "--no-progress", "--no-eval"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "pixyz-zoo: error:" in err and "at epoch 1, step" in err and "Lower the learning rate" in err
    assert "no checkpoint was written yet" in err
    assert not (out / CHECKPOINT).exists()


def test_non_finite_gradients_of_a_finite_loss_are_refused(digits_train):
    model = make(digits_train)
    batch = digits_train.first(16)
    weight = model.q.network.net[0].weight
    before = params(model)
    handle = weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    with pytest.raises(NonFiniteLossError, match="gradients' norm is inf"):
        model.train_step(batch)
    handle.remove()
    assert same(before, params(model)), "no parameter moves on a non-finite gradient"
    assert math.isfinite(model.train_step(batch))


class PoisonAfterFirstEpoch:
    """A callback that breaks training after epoch 1 (whose checkpoint is already on disk)."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.kept: dict[str, torch.Tensor] | None = None

    def __call__(self, trainer: Trainer, record: dict[str, float]) -> None:
        if record["epoch"] != 1:
            return
        self.kept = params(trainer.model)
        if self.how == "nan":
            with torch.no_grad():
                trainer.model.q.network.net[0].weight.fill_(float("nan"))
        else:  # diverge: a learning rate far too high from epoch 2 on
            for group in trainer.model.optimizer.param_groups:
                group["lr"] = 10.0


@pytest.mark.parametrize(
    "how, error, message",
    [
        ("nan", NonFiniteLossError, r"(loss is nan|NaN/inf).* at epoch 2, step 1;"),
        ("diverge", DivergedLossError, r"diverged: .* at epoch 2, step \d+;"),
    ],
)
def test_failure_after_the_first_checkpoint_keeps_it_and_resume_works(
    digits_train, tmp_path, how, error, message
):
    data = digits_train.subset(slice(0, 320))
    settings = dict(epochs=3, batch_size=32, progress=False)
    reference = make(data)
    Trainer(reference, data, **settings).fit()

    poison = PoisonAfterFirstEpoch(how)
    trainer = Trainer(make(data), data, run_dir=tmp_path, callback=poison, **settings)
    with pytest.raises(
        error, match=message + r" training stopped and the last good checkpoint .*epoch 1\) is kept"
    ):
        trainer.fit()
    payload = load_checkpoint(tmp_path)
    assert payload["epoch"] == 1 and len(payload["history"]) == 1
    assert same(poison.kept, payload["state"]["distributions"]), "the checkpoint is epoch 1's, untouched"
    assert payload["state"]["optimizer"]["param_groups"][0]["lr"] == 1e-3

    resumed = make(data, seed=7)
    history = Trainer(resumed, data, run_dir=tmp_path, **settings).resume().fit()
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert all(math.isfinite(r["train_loss"]) for r in history)
    assert same(params(reference), params(resumed)), "resumed from the good checkpoint: as if never broken"
