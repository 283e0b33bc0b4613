"""The trainer: one loop for every zoo model.

Epochs of Adam steps over shuffled minibatches, KL warm-up of the model's annealed
``Parameter`` symbols, per-epoch test loss, an atomic checkpoint after every epoch, exact resume
(parameters, optimiser, data order and sampling RNG), and a clear stop that keeps the last good
checkpoint when the loss or its gradients become NaN/inf or the loss diverges (``DivergenceCheck``).

Launched by ``torchrun`` (a process group is active, :mod:`pixyz_zoo.distributed`), the trainer is
data-parallel: ``batch_size`` is per process, each global batch of ``world_size * batch_size`` is
split between the ranks, DDP averages the gradients, and rank 0 alone writes checkpoints.

``precision="bf16"`` trains with mixed precision: the forward pass and the loss's evaluation of each
step run under ``torch.autocast`` with bfloat16 (the networks' outputs become float32 distribution
parameters, so log-probabilities and KLs are summed in float32); backward, the optimiser step, the
parameters, the optimiser state and the per-epoch test loss stay float32.

On a non-CPU device the in-memory datasets are moved there once (up to ``Trainer.device_data_limit``
bytes per split; a larger one stays on the host and each batch is copied), so that batches are
indexed on the device with no host-to-device copy per step.
"""

from __future__ import annotations

import inspect
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pixyz_zoo import distributed
from pixyz_zoo.checks import check_count, check_integer, check_non_negative
from pixyz_zoo.datasets.base import MultimodalDataset, check_dataset
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import ZooModel, build_model
from pixyz_zoo.models.base import DivergedLossError, NonFiniteLossError, health_message
from pixyz_zoo.progress import tqdm

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
#: the training step's autocast dtype for each ``precision`` (None: float32 throughout)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted, or belongs to another model."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"--device {device} was requested but PyTorch sees no CUDA device "
            f"(torch {torch.__version__}); use --device cpu or --device auto"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed PyTorch's CPU and CUDA generators (model initialisation and sampling)."""
    torch.manual_seed(seed)


# ---------------------------------------------------------------------- checkpoints
def modalities_to_json(modalities: dict[str, Modality]) -> dict[str, Any]:
    return {
        n: {"shape": list(m.shape), "likelihood": m.likelihood, "labels": list(m.labels)}
        for n, m in modalities.items()
    }


def modalities_from_json(data: dict[str, Any]) -> dict[str, Modality]:
    return {
        n: Modality(n, tuple(d["shape"]), d["likelihood"], tuple(d.get("labels", ())))
        for n, d in data.items()
    }


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically: to a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:  # a failed or interrupted write leaves the previous checkpoint, and no temp file
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, expected_model: str | None = None) -> dict[str, Any]:
    """Read a checkpoint (a run directory or the file), with clear errors."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}; train first (pixyz-zoo train MODEL --out DIR) or point to "
            "the run directory that holds checkpoint.pt"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint {path} is corrupted or not a PyTorch file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Checkpoints are written "
            "atomically, so the file was damaged afterwards: delete the run directory and train again"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a pixyz-zoo checkpoint (format {CHECKPOINT_FORMAT}); it was written by "
            "something else. Train a model with pixyz-zoo to get one"
        )
    if expected_model is not None and payload["model_name"] != expected_model:
        raise CheckpointError(
            f"checkpoint {path} holds model {payload['model_name']!r}, not {expected_model!r}; "
            f"resume it with `pixyz-zoo train {payload['model_name']} --resume {path.parent}` or "
            "start a fresh run with another --out"
        )
    return payload


def model_from_checkpoint(payload: dict[str, Any], device: torch.device | str = "cpu") -> ZooModel:
    """Rebuild the registered model a checkpoint was made from and load its state."""
    modalities = modalities_from_json(payload["modalities"])
    model = build_model(payload["model_name"], modalities, **payload["model_config"]).to(device)
    try:
        model.load_state(payload["state"])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(
            f"the checkpoint's parameters do not fit model {payload['model_name']!r} built with "
            f"{payload['model_config']}: {str(error).splitlines()[0]}"
        ) from error
    return model


# ---------------------------------------------------------------------- divergence
class DivergenceCheck:
    """Detects a training loss that runs away while still finite (too high a learning rate).

    The running *level* is an exponential moving average of the per-step training loss and the
    *spread* one of its absolute deviations (decay ``DECAY``: about the last 10 steps). A step is
    far above when ``loss - level > factor * (|level| + spread + MIN_SCALE)``: relative to the
    loss's size and noise, so the test means the same for losses in the thousands, near zero or
    negative (continuous likelihoods); ``MIN_SCALE`` (1 nat) keeps a loss that starts near 0 from
    having no scale at all. Only rises count, so the fast early drop never triggers it, and a slow
    rise (a KL weight warming up) moves the level with it. A far-above step does not move the level
    or the spread, so a blow-up cannot drag the reference up with it. Training stops when the loss
    stays far above for ``patience`` consecutive steps (one odd batch is not enough), after the
    first ``warmup_steps`` steps (while the level and spread are being estimated) or, earlier, at
    the end of an epoch, so that no checkpoint is written of a model that has diverged.

    An early transient is not a divergence. A run of far-above steps that begins within the warm-up
    counts, for its first ``TRANSIENT_STEPS`` steps, only the steps more than ``TRANSIENT_FACTOR``
    times as far above (``TRANSIENT_FACTOR * factor * (|level| + spread + MIN_SCALE)``); after them,
    or in a run that begins later, every far-above step counts. The level then comes from the first
    step alone, which can be far from the loss's scale a few steps later: MFM's surrogate regression
    on trimodal-digits at batch 128 takes the loss from 9.1 at the first step to 87..1575 at steps
    2-12 (up to 155 x (|level| + 1)), 45..247 at steps 13-20, then 21..47 (the encoders' codes grow
    in the first Adam steps, and the surrogates regress on them), and it trains normally. The price:
    a rise of less than ``TRANSIENT_FACTOR`` times that begins early and stays is stopped only after
    the transient's steps, and an epoch that ends within them writes its checkpoint.

    The defaults leave a wide margin: over the zoo's models trained normally (the beta-VAE family
    on digits at batch 64 and 16, the multimodal models on trimodal- and attribute-digits, with
    KL warm-up), no step after the fifth rose more than 1.02 x (|level| + spread + 1) above the
    level. Learning rates of 1 and 10 on the default digits VAE take its loss from 51 nats to 6e13
    and 6e19 at step 2, and it stays above 5e4 and 9e12 for 3 epochs; a learning rate of 0.3 takes
    it to 5e10 at step 2, 7e4..6e6 at steps 3-5, then 1e4..3e4 for the rest of the first epoch.
    A slow steady rise is not caught (the capacity-annealed VAE's loss legitimately rises 60-fold
    in 20 steps); the loss or gradients becoming NaN/inf always are.

    Args:
        factor: how many times ``|level| + spread + MIN_SCALE`` above the level counts as far above.
        warmup_steps: steps before the first stop (except at the end of an epoch).
        patience: consecutive far-above steps that stop training.
    """

    DECAY = 0.9
    MIN_SCALE = 1.0
    #: how many times farther above a step of an early transient must be to count
    TRANSIENT_FACTOR = 100.0
    #: the steps of an early run of far-above steps that count only beyond ``TRANSIENT_FACTOR``
    TRANSIENT_STEPS = 20

    def __init__(self, factor: float = 10.0, warmup_steps: int = 5, patience: int = 3) -> None:
        if not factor > 0 or warmup_steps < 0 or patience < 1:
            raise ValueError(
                f"the divergence check needs factor > 0, warmup_steps >= 0 and patience >= 1, got "
                f"{factor}, {warmup_steps} and {patience}"
            )
        self.factor, self.warmup_steps, self.patience = factor, warmup_steps, patience
        self.level: float | None = None
        self.spread = 0.0
        self.steps = 0
        self.strikes = 0
        self.run_start: int | None = None  # the step that began the current run of far-above steps

    def update(self, loss: float, epoch_end: bool = False) -> str | None:
        """Take one step's loss; returns why training diverged, or None while it has not.

        ``epoch_end``: the last step of an epoch (a checkpoint is written next).
        """
        self.steps += 1
        if self.level is None:
            self.level = loss
            return None
        deviation = loss - self.level
        far = self.factor * (abs(self.level) + self.spread + self.MIN_SCALE)
        if deviation > far:
            if self.run_start is None:
                self.run_start = self.steps
            transient = (
                self.run_start <= self.warmup_steps and self.steps - self.run_start < self.TRANSIENT_STEPS
            )
            if not transient or deviation > self.TRANSIENT_FACTOR * far:
                self.strikes += 1
            if self.strikes >= self.patience and (self.steps > self.warmup_steps or epoch_end):
                return (
                    f"the training loss diverged: {loss:.4g}, more than {self.factor:g} x (|level| + "
                    f"spread + {self.MIN_SCALE:g}) above its running level {self.level:.4g} (spread "
                    f"{self.spread:.4g}) for {self.strikes} steps in a row"
                )
            return None
        self.strikes, self.run_start = 0, None
        self.level += (1.0 - self.DECAY) * deviation
        self.spread += (1.0 - self.DECAY) * (abs(deviation) - self.spread)
        return None


# ---------------------------------------------------------------------- trainer
def _at_step(error: NonFiniteLossError, step: int) -> NonFiniteLossError:
    error.step = step  # type: ignore[attr-defined]  # the step it happened at, for the message
    return error


def _check_callback(callback: Any) -> Any:
    """``callback`` when it can be called as ``callback(trainer, record)``, refused before training
    otherwise (it would fail after the first epoch)."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(
            "callback must be a function called as callback(trainer, record) after each epoch, got "
            f"{type(callback).__name__}"
        )
    try:
        inspect.signature(callback).bind(None, None)
    except TypeError:
        raise TypeError(
            f"callback is called as callback(trainer, record) after each epoch; {callback!r} cannot take "
            "these two arguments"
        ) from None
    except ValueError:  # no signature to read (some builtins): called as it is
        pass
    return callback


class Trainer:
    """Train a :class:`~pixyz_zoo.models.ZooModel` on a :class:`MultimodalDataset`.

    Args:
        model: the model (already on its device; see ``resolve_device``).
        train_data, test_data: datasets whose modalities include the model's.
        epochs: total number of epochs (a resumed run continues up to this number).
        batch_size: minibatch size (per process under ``torchrun``: the global batch is
            ``world_size * batch_size``).
        seed: seed of data shuffling, binarisation and latent sampling (rank ``r`` of a
            data-parallel run samples latents from seed ``seed + r``).
        warmup_epochs: epochs over which annealed symbols (KL weight) ramp linearly from 0.
        run_dir: where ``checkpoint.pt`` is written after every epoch (None: no checkpoints).
        progress: ``True``: a progress bar with the running loss and a summary line per epoch;
            ``"lines"``: one plain line per epoch and no bar (logs, pipes; ``--no-progress``);
            ``False``: silent.
        callback: called as ``callback(trainer, record)`` after each epoch.
        divergence_factor, divergence_warmup_steps, divergence_patience: the divergence check
            (see :class:`DivergenceCheck`): training stops when the loss stays more than
            ``divergence_factor`` x (|level| + spread) above its running level for
            ``divergence_patience`` steps, checked after ``divergence_warmup_steps`` steps.
            ``divergence_factor=None`` turns the check off (NaN/inf losses and gradients still stop).
        check_every: steps between reads of the training loss on the host (and at the end of each
            epoch, before its checkpoint). A step does not wait for the device: a NaN/inf loss or
            gradient skips its update on the device, and the next check stops training, naming the
            step; the divergence check runs there over each step's loss in order.
        precision: ``"fp32"``, or ``"bf16"``: each training step's forward pass and loss under
            ``torch.autocast`` with bfloat16 (see the module's docstring); the test loss is float32.
    """

    #: the largest split (bytes) moved to a non-CPU device; a larger one stays on the host and each of
    #: its batches is copied to the device
    device_data_limit: int = 2 * 2**30

    def __init__(
        self,
        model: ZooModel,
        train_data: MultimodalDataset,
        test_data: MultimodalDataset | None = None,
        epochs: int = 10,
        batch_size: int = 100,
        seed: int = 0,
        warmup_epochs: float = 0.0,
        run_dir: str | os.PathLike | None = None,
        progress: bool | str = True,
        callback: Callable[[Trainer, dict[str, float]], None] | None = None,
        divergence_factor: float | None = 10.0,
        divergence_warmup_steps: int = 5,
        divergence_patience: int = 3,
        world_size: int = 1,
        check_every: int = 50,
        precision: str = "fp32",
    ) -> None:
        for what, data in (("train_data", train_data), ("test_data", test_data)):
            if data is None and what == "test_data":
                continue  # no test loss
            check_dataset(data, what)
            if len(data) == 0:
                unless = "" if what == "train_data" else " (test_data=None: no test loss)"
                raise ValueError(f"{what} {data.name!r} holds no example: give it some{unless}")
            missing = [n for n in model.modalities if n not in data.modalities]
            if missing:
                raise KeyError(
                    f"dataset {data.name!r} has no variable(s) {missing} that model {model.name!r} "
                    f"needs; it has {sorted(data.modalities)}"
                )
        self.check_every = check_count(check_every, "check_every (steps between reads of the loss)")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        device = model.device
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise RuntimeError(
                f"precision bf16 needs a GPU with bfloat16 support, and {torch.cuda.get_device_name(device)} "
                "has none; train with --precision fp32"
            )
        self.precision = precision
        model.autocast_dtype = PRECISIONS[precision]
        epochs, batch_size = check_integer(epochs, "epochs", 0), check_count(batch_size, "batch_size")
        seed = check_integer(seed, "seed", 0)
        check_non_negative(warmup_epochs, "warmup_epochs")
        self.model = model
        self.train_data, self.test_data = train_data, test_data
        # the splits the batches are drawn from: on the model's device when they fit there
        self._train_source = self.on_device(train_data)
        self._test_source = self.on_device(test_data) if test_data is not None else None
        # statistics of the training data that the loss needs (beta-TCVAE's dataset size), set now
        # so that they are in model.config before a run's config or first checkpoint is written
        model.prepare(train_data)
        self.epochs, self.batch_size = epochs, batch_size
        # data parallelism: the process group torchrun started (see pixyz_zoo.distributed)
        self.world_size, self.rank = distributed.world_size(), distributed.rank()
        if world_size != self.world_size:
            raise ValueError(
                f"this run is set for {world_size} process(es) but {self.world_size} are running; "
                f"start it with torchrun --nproc_per_node={world_size} (without torchrun for 1)"
            )
        if self.world_size > 1:
            distributed.wrap_losses(model, model.device)
            couplings = model.batch_couplings()
            note = distributed.batch_estimate_note(model.name, couplings, self.world_size, batch_size)
            if note is not None and self.rank == 0:
                warnings.warn(note, stacklevel=2)
        self.seed, self.warmup_epochs = seed, warmup_epochs
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None and self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"run_dir {self.run_dir} is a file, not a directory; choose another run_dir")
        if progress not in (True, False, "lines"):
            raise ValueError(f"progress must be True, False or 'lines', got {progress!r}")
        self.progress = progress if self.rank == 0 else False  # one rank reports
        self.callback = _check_callback(callback)
        model.warmup_epochs = warmup_epochs  # what print(model) says about the annealed symbols
        self.divergence = (
            DivergenceCheck(divergence_factor, divergence_warmup_steps, divergence_patience)
            if divergence_factor is not None
            else None
        )
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.generator = torch.Generator().manual_seed(seed)
        self._fresh = True

    # ------------------------------------------------------------------ schedules
    def hyperparameter_values(self, progress_epochs: float) -> dict[str, float]:
        """Values of the model's Parameter symbols after ``progress_epochs`` epochs of training."""
        ramp = 1.0 if self.warmup_epochs <= 0 else min(1.0, progress_epochs / self.warmup_epochs)
        return {
            name: value * ramp if name in self.model.annealed else value
            for name, value in self.model.hyperparameters.items()
        }

    # ------------------------------------------------------------------ data
    def on_device(self, data: MultimodalDataset) -> MultimodalDataset:
        """``data`` on the model's device when that is not the CPU and the data is at most
        ``device_data_limit`` bytes (its batches are then made there); else ``data`` itself."""
        device = self.model.device
        if device.type == "cpu" or data.nbytes > self.device_data_limit:
            return data
        return data.to(device)

    # ------------------------------------------------------------------ loop
    def _model_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: batch[n] for n in self.model.modalities}

    def fit(self) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs are done; returns the per-epoch history. A ``run_dir`` that
        holds another run's checkpoint is refused before training (it would be overwritten): continue
        that run with :meth:`resume` first."""
        if self.epoch == 0 and self.run_dir is not None and (self.run_dir / CHECKPOINT).exists():
            raise CheckpointError(
                f"{self.run_dir} already holds a checkpoint, which this trainer's first epoch would "
                "overwrite: continue that run with trainer.resume() before fit(), or give the trainer "
                "another run_dir"
            )
        self.model.prepare(self.train_data)
        if self._fresh:
            torch.manual_seed(self.seed + self.rank)  # each rank draws its own latent samples
            self._fresh = False
        while self.epoch < self.epochs:
            record = self._train_epoch()
            self.history.append(record)
            self.epoch += 1
            if self.run_dir is not None:
                self.save()
                distributed.barrier()  # the checkpoint is complete before any rank goes on
            if self.callback is not None:
                self.callback(self, record)
        return self.history

    def _train_epoch(self) -> dict[str, Any]:
        start = time.perf_counter()
        size = self.batch_size * self.world_size  # the global batch, split between the ranks
        n_batches = self.train_data.num_batches(size)
        bar = tqdm(
            self._train_source.batches(size, shuffle=True, generator=self.generator),
            total=n_batches,
            desc=f"epoch {self.epoch + 1}/{self.epochs}",
            disable=self.progress is not True,
            leave=False,
            dynamic_ncols=True,
        )
        total, count = 0.0, 0
        pending: list[tuple[int, int, torch.Tensor]] = []  # (step, examples, health) not yet checked
        for step, batch in enumerate(bar):
            values = self.hyperparameter_values(self.epoch + step / n_batches)
            batch = self._model_batch(batch)
            n = len(next(iter(batch.values())))  # examples in the (global) batch
            if self.world_size > 1:
                if n < self.world_size:
                    continue  # a last batch too small to give every rank a row (all ranks skip it)
                batch = distributed.shard(batch, self.rank, self.world_size)
            try:
                loss = self.model.train_step(batch, check=False, **values)
                health = self.model.step_health  # loss, gradients' norm, discriminator's loss
                if health is None:  # a train_step of its own that leaves it unset: the loss alone
                    health = torch.as_tensor(loss, dtype=torch.float32).reshape(1)
                if self.world_size > 1:  # the global batch's loss: every rank checks the same value
                    local_n = len(next(iter(batch.values())))
                    mean = distributed.weighted_mean(torch.as_tensor(loss, device=self.model.device), local_n)
                    health = torch.cat([mean.to(health.dtype).reshape(1), health[1:]])
                pending.append((step, n, health))
                if len(pending) >= self.check_every or step + 1 == n_batches:
                    total, count = self._check(pending, n_batches, total, count)
                    pending = []
                    bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
            except NonFiniteLossError as error:
                kept = (
                    f"the last good checkpoint ({self.run_dir / CHECKPOINT}, epoch {self.epoch}) is kept"
                    if self.run_dir is not None and (self.run_dir / CHECKPOINT).exists()
                    else "no checkpoint was written yet"
                )
                at = getattr(error, "step", step)
                raise type(error)(
                    f"{error} at epoch {self.epoch + 1}, step {at + 1}; training stopped and {kept}. "
                    "Lower the learning rate (--lr), clip gradients (--clip-grad-norm 10), or check "
                    "the data for extreme values"
                ) from None
        if pending:  # the epoch's last steps (when its last batch was skipped)
            total, count = self._check(pending, n_batches, total, count)
        bar.close()
        record = {"epoch": self.epoch + 1, "train_loss": total / count, **self.model.epoch_metrics()}
        if self.test_data is not None:
            terms = self.test_terms()
            record["test_loss"], record["test_terms"] = sum(terms), terms
        record["seconds"] = time.perf_counter() - start
        if self.progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "test_terms"))
            line = f"epoch {record['epoch']}/{self.epochs}: {shown}"
            if self.progress is True:
                tqdm.write(line)
            else:
                print(line, flush=True)
        return record

    def _check(
        self, pending: list[tuple[int, int, torch.Tensor]], n_batches: int, total: float, count: int
    ) -> tuple[float, int]:
        """Read the steps since the last check from the device (one host sync) and check them in
        order: a NaN/inf loss or gradient (whose update was skipped on the device) and divergence
        raise, naming the step; returns the epoch's running loss sum and example count."""
        rows = torch.stack([health for _, _, health in pending]).tolist()
        for (step, n, _), health in zip(pending, rows, strict=True):
            problem = health_message(health)
            if problem is None and self.divergence is not None:
                diverged = self.divergence.update(health[0], epoch_end=step + 1 == n_batches)
                if diverged is not None:
                    raise _at_step(DivergedLossError(diverged), step)
            elif problem is not None:
                raise _at_step(NonFiniteLossError(problem), step)
            total, count = total + health[0] * n, count + n
        return total, count

    def test_loss(self, data: MultimodalDataset | None = None) -> float:
        """Average test loss (hyperparameters at their final values) over ``data``: the sum of
        :meth:`test_terms`."""
        return sum(self.test_terms(data))

    def test_terms(self, data: MultimodalDataset | None = None) -> list[float]:
        """The average over ``data`` of each term of the test objective (``model.test_terms``, the
        loss split at its sums), each batch's terms evaluated in order with the draws of one
        evaluation of the whole loss."""
        if data is None or data is self.test_data:
            data = self._test_source
        else:
            data = self.on_device(data)
        if data is None:
            raise ValueError("no test data given")
        generator = torch.Generator().manual_seed(self.seed + 1)
        return self.model.test_term_means(data.batches(self.batch_size, generator=generator))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "data": self.generator.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        if self.world_size > 1:  # each rank samples from its own generator: keep every rank's state
            rng["torch_ranks"] = distributed.gather(torch.get_rng_state())
        return {
            "format": CHECKPOINT_FORMAT,
            "model_name": self.model.name,
            "model_config": self.model.config,
            "modalities": modalities_to_json(self.model.modalities),
            "epoch": self.epoch,
            "state": self.model.state(),
            "rng": rng,
            "history": self.history,
            "trainer": {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "warmup_epochs": self.warmup_epochs,
                "world_size": self.world_size,
            },
        }

    def save(self) -> Path:
        """Write the checkpoint and ``history.json`` (rank 0 of a data-parallel run; every rank
        calls this, to hand its sampling state to rank 0)."""
        if self.run_dir is None:
            raise ValueError("this trainer has no run_dir to save to")
        payload = self.checkpoint_payload()
        path = self.run_dir / CHECKPOINT
        if self.rank == 0:
            save_checkpoint(path, payload)
            (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=2))
        return path

    def resume(self, path: str | os.PathLike | None = None) -> Trainer:
        """Continue from a checkpoint (default: this trainer's run directory)."""
        source = Path(path) if path is not None else self.run_dir
        if source is None:
            raise ValueError("resume needs a checkpoint path or a run_dir")
        payload = load_checkpoint(source, expected_model=self.model.name)
        if payload["model_config"] != self.model.config:
            raise CheckpointError(
                f"checkpoint {source} was made with options {payload['model_config']}, but this "
                f"model has {self.model.config}; rebuild the model with the checkpoint's options "
                "(pixyz-zoo train --resume does this for you)"
            )
        stored = payload.get("trainer", {})
        differing = [  # every setting the checkpoint records but epochs (a resume extends them) and the
            # number of processes (refused below with the torchrun command)
            f"{name}={getattr(self, name)!r} (the run's: {value!r})"
            for name, value in stored.items()
            if name not in ("epochs", "world_size") and value != getattr(self, name)
        ]
        if differing:
            raise CheckpointError(
                f"checkpoint {source} continues only as it was made, and this trainer has "
                f"{', '.join(differing)}; build the Trainer with the run's settings (only epochs, "
                "check_every and precision may change)"
            )
        stored_world = stored.get("world_size", 1)
        if stored_world != self.world_size:
            raise CheckpointError(
                f"checkpoint {source} was trained by {stored_world} process(es), and {self.world_size} "
                f"are running; resume it with torchrun --nproc_per_node={stored_world} (1: without "
                "torchrun), so that the global batch and the data order stay the run's"
            )
        self.model.load_state(payload["state"])
        self.epoch = payload["epoch"]
        self.history = list(payload["history"])
        torch.set_rng_state(payload["rng"].get("torch_ranks", [payload["rng"]["torch"]])[self.rank])
        self.generator.set_state(payload["rng"]["data"])
        if "cuda" in payload["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        self._fresh = False
        return self
