"""The surface every zoo model shares, on top of :class:`pixyz.models.Model`.

A zoo model is a set of Pixyz distributions and one Pixyz loss expression. ``print(model)``
shows the factorisation of the generative model, the inference distribution and the loss
exactly as optimised. Everything else (trainer, evaluation, plots, CLI) uses only this surface:

- ``train_step(batch)`` / ``test_step(batch)``: one optimisation step / the test loss (the trainer's
  ``train_step(batch, check=False)`` never waits for the device: a NaN/inf loss or gradient skips the
  update on the device and shows in ``step_health``, read at the trainer's checks);
- ``test_terms`` / ``test_term_values(batch)``: the test objective split at its sums, and each
  term's value (``test_step`` is their sum);
- ``encode(batch, given)``: latent means (or samples) inferred from a subset of modalities;
- ``generate(batch, given, targets)``: the one cross-modal generation path;
- ``reconstruct(batch)`` and ``sample(n)``: the two special cases of ``generate``.

Hyperparameters that change during training (a KL warm-up weight, a capacity) are
``pixyz.losses.Parameter`` symbols in the loss; their values are fed through the batch dict.
``hyperparameters`` holds their final (evaluation) values and ``annealed`` names those the
trainer ramps up linearly from 0 during warm-up.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss
from pixyz.models import Model
from torch import optim
from torch.distributions import Distribution as TorchDistribution

from pixyz_zoo import distributed
from pixyz_zoo.checks import check_count, reraise_explained
from pixyz_zoo.distributions.experts import MixtureOfExperts, ProductOfGaussianExperts
from pixyz_zoo.distributions.refinement import RefinedGaussian
from pixyz_zoo.distributions.shapes import factors, shape_mismatch
from pixyz_zoo.distributions.shared_parameters import shared_parameters
from pixyz_zoo.distributions.text import joint_prob_text, joint_text, loss_text
from pixyz_zoo.losses.evaluation import loss_evaluator
from pixyz_zoo.losses.terms import Term, additive_terms, term_evaluator
from pixyz_zoo.modalities import (
    Modality,
    check_batch,
    check_batch_is_dict,
    check_modalities,
    variable_names,
)
from pixyz_zoo.models.optimizer_steps import fused_adam, masked_step, total_norm, zero_gradients


class NonFiniteLossError(RuntimeError):
    """The training loss or its gradients became NaN or infinite (no parameter was updated with them)."""


class DivergedLossError(NonFiniteLossError):
    """The training loss is still finite but ran far above its running level (training diverged)."""


#: what a NaN/inf in each entry of :attr:`ZooModel.step_health` means
HEALTH = (
    "the training loss is {}",
    "the gradients' norm is {} (the loss was finite)",
    "the discriminator's loss is {}",
)


def health_message(health: Sequence[float]) -> str | None:
    """Why a training step was skipped, from its :attr:`ZooModel.step_health` read on the host
    (None: every value was finite)."""
    for template, value in zip(HEALTH, health, strict=False):  # a loss alone: its one entry
        if not math.isfinite(value):
            return template.format(value)
    return None


def non_scalar_loss(value: Any, what: str = "the loss") -> str | None:
    """Why ``value`` is no loss, when it is not one number (None: it is): a Pixyz expression keeps one
    value per example until it is reduced, and one forgotten ``.mean()`` otherwise fails inside
    ``backward`` ("grad can be implicitly created only for scalar outputs") or in a reshape."""
    shape = tuple(torch.as_tensor(value).shape)
    if math.prod(shape) == 1:
        return None
    return (
        f"{what} evaluates to a tensor of shape {shape}, not one number: a Pixyz loss holds one "
        "value per example until it is reduced. End the expression with .mean() (or .sum()), e.g. "
        "(E(q, -LogProb(p_x)) + KullbackLeibler(q, prior)).mean()"
    )


def prior_draws(n: int | None, n_samples: int = 1) -> int:
    """How many latents to draw from the prior for ``n`` examples of ``n_samples`` samples each,
    refusing a count Pixyz would not honour (it draws one for ``batch_n=0``)."""
    if n is None:
        raise ValueError(
            "sampling from the prior (no modality given) needs the number of samples n, e.g. "
            "model.generate(n=16); to generate from a batch, name what to infer from: given=['x']"
        )
    return check_count(n, "the number of samples n") * check_count(
        n_samples, "the number of samples n_samples"
    )


@contextmanager
def argument_validation(enabled: bool) -> Iterator[None]:
    """Turn torch.distributions' argument validation on or off (it reads the parameters' values on
    the host: a device sync per distribution). Off on the training hot path: a NaN/inf parameter then
    makes the loss NaN/inf, which the skipped step and the trainer's check report instead."""
    previous = TorchDistribution._validate_args
    TorchDistribution.set_default_validate_args(enabled)
    try:
        yield
    finally:
        TorchDistribution.set_default_validate_args(previous)


def check_modalities_used(
    modalities: dict[str, Modality], generative: Distribution, inference: Distribution, loss: Loss
) -> None:
    """Refuse a declared modality that neither the generative model, the inference nor the loss reads
    (e.g. a dataset's label passed with ``dataset.modalities`` to a model of its image alone): the
    evaluation would look for it as an observed variable of the model."""
    used = {*generative.var, *generative.cond_var, *inference.cond_var, *loss.input_var}
    unused = [name for name in modalities if name not in used]
    if unused:
        kept = [name for name in modalities if name in used]
        if not kept:  # none is read: the distributions name the observed variables otherwise
            observed = [v for v in generative.var if v not in inference.var] or list(inference.cond_var)
            raise ValueError(
                f"none of the declared modalities {unused} is read by the model: the generative model "
                f"{joint_prob_text(generative)} and the inference {inference.prob_text} observe {observed}. "
                "Name the distributions' variables as the modalities (the keys of the data's batches), or "
                "declare the modalities the model observes"
            )
        raise ValueError(
            f"modalities {unused} are declared but no part of the model reads them: the generative "
            f"model {joint_prob_text(generative)}, the inference {inference.prob_text} and the loss use "
            f"{kept}. Declare only those, e.g. modalities={{m: data.modalities[m] for m in {kept}}}"
        )


def check_loss_inputs(
    losses: dict[str, Loss | None], modalities: Iterable[str], hyperparameters: Iterable[str]
) -> None:
    """Refuse a loss that reads a variable neither a modality nor a hyperparameter feeds (a
    ``Parameter("beta")`` without a value): it failed at the first step with Pixyz's "Input keys are
    not valid"."""
    fed = {*modalities, *hyperparameters}
    for what, loss in losses.items():
        unfed = [name for name in loss.input_var if name not in fed] if loss is not None else []
        if unfed:
            values = ", ".join(f"{name!r}: 1.0" for name in unfed)
            raise ValueError(
                f"the {what} reads {unfed}, which no modality ({sorted(modalities)}) or hyperparameter "
                f"({sorted(hyperparameters)}) feeds: give a symbol's value as hyperparameters={{{values}}}, "
                "or declare the modality"
            )


def check_conditioned_on_modalities(modalities: Iterable[str], **parts: Distribution) -> None:
    """Refuse a generative or inference model conditioned on a variable that is no modality: a
    decoder ``p(x|z)`` passed as the generative model without its prior (the bounds were then
    computed without ``p(z)``), or an inference model that is not ``q(latents|modalities)``."""
    for what, distribution in parts.items():
        unobserved = [name for name in distribution.cond_var if name not in modalities]
        if unobserved:
            fix = (
                "pass the joint with the latents' prior, e.g. generative=p_x * prior"
                if what == "generative"
                else "pass the distribution of the latents given the modalities, e.g. inference=q for q(z|x)"
            )
            raise ValueError(
                f"the {what} model {joint_prob_text(distribution)} is conditioned on {unobserved}, which "
                f"no modality ({sorted(modalities)}) gives: {fix}"
            )


def check_trained(distributions: Sequence[Distribution], **parts: Distribution) -> None:
    """Refuse a generative or inference distribution with parameters the optimiser does not train
    (one left out of ``distributions``): it would keep its initial weights, silently."""
    trained = {id(p) for d in distributions for p in d.parameters()}
    for what, distribution in parts.items():
        for factor in factors(distribution):
            left_out = [p for p in factor.parameters() if p.requires_grad and id(p) not in trained]
            if left_out:
                raise ValueError(
                    f"the {what} model's {factor.prob_text} has parameters no listed distribution holds, so "
                    "they would never be trained: add it to the distributions the model trains (or, to "
                    "keep it fixed on purpose, freeze it with .requires_grad_(False))"
                )


def check_architecture(arch: str | None, modalities: dict[str, Modality]) -> None:
    """Refuse a convolutional architecture for a model of no image: its networks would all be MLPs
    (``arch="conv"`` gives image modalities conv bodies and the others MLP bodies)."""
    if arch in ("conv", "celeba") and not any(m.is_image for m in modalities.values()):
        shapes = ", ".join(f"{name}: {m.shape}" for name, m in modalities.items())
        raise ValueError(
            f"arch={arch!r} builds convolutional networks for image modalities (C, H, W), and the model's "
            f"modalities have none ({shapes}): use arch='mlp'"
        )


class ZooModel(Model):
    """A Pixyz model with the zoo's surface.

    Args:
        loss: the training objective, a Pixyz loss expression (a scalar: use ``.mean()``).
        distributions: the distributions whose parameters are trained.
        modalities: the observed variables the model is built on.
        generative: the joint generative distribution, e.g. ``p(x|z) * p(z)``.
        inference: the inference distribution over all latents given all modalities, ``q(z|x)``.
        hyperparameters: final values of the ``Parameter`` symbols in the loss.
        annealed: symbols ramped linearly from 0 to their final value during KL warm-up.
        test_loss: the test objective (default: ``loss``).
        lr: Adam learning rate. clip_grad_norm: gradient-norm clipping (None: off).
        config: JSON-serialisable constructor arguments, stored in checkpoints.
    """

    name = "model"
    description = ""
    #: epochs of KL warm-up the model is trained with (set by the trainer; printed only when > 0)
    warmup_epochs: float = 0.0
    #: the model predicts the dataset's class: the run code adds the one-hot label modality
    #: (``MultimodalDataset.with_labels``) to a dataset that has class labels but no such modality
    needs_labels: bool = False
    #: why the test ELBO and importance-weighted bound do not apply (None: they do); the run's
    #: evaluation then records this reason instead of the bounds
    likelihood_not_applicable: str | None = None
    #: whether evaluating the training loss already accumulates gradients (a backward pass inside
    #: the loss, as iterative inference takes): DistributedDataParallel only averages the gradients of
    #: the backward pass after the loss, so under data parallelism such a model averages every
    #: gradient itself after the backward pass (:func:`pixyz_zoo.distributed.average_gradients`)
    gradients_inside_loss: bool = False
    #: the term of the training loss that is estimated from the batch as a whole rather than averaged
    #: over its examples (None: every term is a mean over examples); see :meth:`batch_couplings`
    batch_estimate: str | None = None
    #: mixed precision of a training step's loss evaluation (set by the trainer's ``precision``):
    #: ``torch.bfloat16`` autocasts the forward pass; None keeps float32. Backward, the optimiser step
    #: and the parameters stay float32
    autocast_dtype: torch.dtype | None = None

    def __init__(
        self,
        loss: Loss,
        distributions: Sequence[Distribution],
        modalities: dict[str, Modality],
        generative: Distribution,
        inference: Distribution,
        hyperparameters: dict[str, float] | None = None,
        annealed: Iterable[str] = (),
        test_loss: Loss | None = None,
        lr: float = 1e-3,
        clip_grad_norm: float | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        for what, expression in (("loss", loss), ("test_loss", test_loss)):
            if expression is not None and not isinstance(expression, Loss):
                raise TypeError(
                    f"{what} must be a Pixyz loss expression over the model's distributions, e.g. (E(q, "
                    f"-LogProb(p_x)) + KullbackLeibler(q, prior)).mean(); got {type(expression).__name__}"
                )
        super().__init__(
            loss,
            test_loss=test_loss,
            distributions=list(distributions),
            optimizer=optim.Adam,
            optimizer_params={"lr": lr, "fused": True},  # skips a non-finite step on the device
            clip_grad_norm=clip_grad_norm,
        )
        self.modalities = check_modalities(modalities)
        self.generative = generative
        self.inference = inference
        check_modalities_used(self.modalities, generative, inference, loss)
        self.hyperparameters = dict(hyperparameters or {})
        check_loss_inputs({"loss": loss, "test loss": test_loss}, self.modalities, self.hyperparameters)
        check_trained(self.distributions, generative=generative, inference=inference)
        check_conditioned_on_modalities(self.modalities, generative=generative, inference=inference)
        self.annealed = frozenset(annealed)
        unknown = self.annealed - set(self.hyperparameters)
        if unknown:
            raise ValueError(f"annealed symbols {sorted(unknown)} have no final value in hyperparameters")
        self.latents = [v for v in generative.var if v not in self.modalities]
        self.config = dict(config or {})
        self.config.setdefault("lr", lr)
        self.config.setdefault("clip_grad_norm", clip_grad_norm)
        check_architecture(self.config.get("arch"), self.modalities)
        #: what evaluates each of :meth:`parallel_losses` instead of its own function (set by the
        #: data-parallel trainer to DistributedDataParallel wrappers; empty: evaluated directly)
        self.loss_evaluators: dict[str, Callable[..., Any]] = {}
        #: the losses of :attr:`loss_evaluators` whose gradients the model averages over the ranks itself
        self.averaged_losses: set[str] = set()
        #: the last training step's loss, gradients' norm and discriminator's loss (0 without one),
        #: on the device; a NaN/inf there means the step was skipped (see :func:`health_message`)
        self.step_health: torch.Tensor | None = None
        self._skip: torch.Tensor | None = None

    # ------------------------------------------------------------------ printing
    def __str__(self) -> str:
        text = (
            f"{type(self).__name__}: {self.description}\n"
            f"Generative model:\n  {joint_text(self.generative)}\n"
            f"Inference model:\n  {self.inference.prob_joint_factorized_and_text}\n"
        )
        if self.hyperparameters:
            values = ", ".join(f"{k}={v:g}" for k, v in self.hyperparameters.items())
            text += f"Hyperparameters (fed through the batch):\n  {values}"
            if self.annealed and self.warmup_epochs > 0:
                annealed = ", ".join(sorted(self.annealed))
                text += f" ({annealed} warmed up from 0 over {self.warmup_epochs:g} epochs)"
            text += "\n"
        trained = [d.prob_text for d in self.distributions if isinstance(d, Distribution)]
        functions = [str(module) for module in self.distributions if not isinstance(module, Distribution)]
        text += f"Distributions (for training):\n  {', '.join(trained)}\n"
        if functions:
            text += f"Deterministic functions (for training):\n  {', '.join(functions)}\n"
        text += f"Loss function:\n  {self.loss_latex}\n"
        return text + "Optimizer:\n" + re.sub("^", "  ", str(self.optimizer), flags=re.MULTILINE)

    def _repr_markdown_(self) -> str:
        """How a notebook shows the model (``model`` as a cell's last line): the factorisation and
        the loss as rendered formulas, with the whole ``print(model)`` text folded beneath."""
        values = ", ".join(f"{k} = {v:g}" for k, v in self.hyperparameters.items())
        name = f"**{type(self).__name__}**"
        description = self.description.replace("_", r"\_").replace("*", r"\*")  # plain text, not markdown
        lines = [
            f"{name}: {description}" if description else name,
            "",
            f"generative model: ${joint_text(self.generative)}$, "
            f"inference model: ${self.inference.prob_joint_factorized_and_text}$",
            "",
            f"loss{f' ({values} fed through the batch)' if values else ''}:",
            "",
            f"$${self.loss_latex}$$",
            "",
            "<details><summary>print(model)</summary>",
            "",
            "```",
            str(self),
            "```",
            "</details>",
        ]
        return "\n".join(lines)

    @property
    def loss_latex(self) -> str:
        """The training objective in LaTeX, its terms in the order the expression writes them
        (:func:`~pixyz_zoo.distributions.text.loss_text`)."""
        return loss_text(self.loss_cls)

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:
        optimizer = getattr(self, "optimizer", None)  # the trained parameters, without a module walk
        for group in optimizer.param_groups if optimizer is not None else ():
            for tensor in group["params"]:
                return tensor.device
        for tensor in self.distributions.parameters():  # pragma: no cover - nothing trained
            return tensor.device
        for tensor in self.distributions.buffers():  # pragma: no cover - parameter-free model
            return tensor.device
        return torch.device("cpu")  # pragma: no cover

    def to(self, device: torch.device | str) -> ZooModel:
        self.distributions.to(device)
        return self

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch's tensors on the model's device, floating ones in its parameters' dtype (data
        loaded as float32 meets a model built in float64; "mat1 and mat2 must have the same dtype")."""
        device, dtype = self.device, self._parameter_dtype()
        return {
            k: v.to(device, dtype if v.is_floating_point() else None, non_blocking=True)
            if torch.is_tensor(v)
            else v
            for k, v in batch.items()
        }

    def _as_input(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` on the model's device, in its parameters' dtype when floating (no copy when both
        already are)."""
        return self._to_device({"value": value})["value"]

    def _parameter_dtype(self) -> torch.dtype:
        optimizer = getattr(self, "optimizer", None)
        for group in optimizer.param_groups if optimizer is not None else ():
            for tensor in group["params"]:
                return tensor.dtype
        return torch.get_default_dtype()  # pragma: no cover - nothing trained

    # ------------------------------------------------------------------ training
    def feed(
        self, batch: dict[str, torch.Tensor], check_values: bool = True, **values: float
    ) -> dict[str, Any]:
        """Check the batch, move it to the model's device and add the hyperparameter values
        (``check_values=False``: shapes only, no read of the values, e.g. on the training hot path)."""
        check_batch(batch, self.modalities, values=check_values)
        unknown = set(values) - set(self.hyperparameters)
        if unknown:
            raise KeyError(
                f"{sorted(unknown)} are not hyperparameters of {self.name}: {sorted(self.hyperparameters)}"
            )
        return {**self._to_device(batch), **self.hyperparameters, **values}

    def prepare(self, train_data: Any) -> None:
        """Called by the trainer before training (a hook for models that need data statistics)."""

    def parallel_losses(self) -> dict[str, tuple[torch.nn.Module, Callable[..., Any]]]:
        """The losses a training step differentiates, by name: the module holding the parameters
        each one trains and the function that evaluates it. The data-parallel trainer wraps each in
        DistributedDataParallel (:mod:`pixyz_zoo.distributed`); models with a step of their own (a
        discriminator's) add it here and evaluate it through :meth:`evaluate_loss`."""
        return {"loss": (self.distributions, self.training_loss_evaluator)}

    def batch_couplings(self) -> list[str]:
        """What makes a training step's losses more than means over the batch's examples: the loss's
        own :attr:`batch_estimate` and the batch-normalisation layers of the modules they train.
        Data-parallel training estimates these over each process's share of the batch
        (:func:`pixyz_zoo.distributed.batch_estimate_note`)."""
        couplings = [self.batch_estimate] if self.batch_estimate else []
        for name, (module, _) in self.parallel_losses().items():
            norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            if norms:
                trained = "the model's networks" if name == "loss" else f"the {name}"
                layers = f"{len(norms)} layer" + ("s" if len(norms) > 1 else "")
                couplings.append(f"the batch normalisation of {trained} ({layers})")
        return couplings

    @property
    def training_loss_evaluator(self) -> Callable[..., Any]:
        """``self.loss_cls.eval`` as a training step runs it: the expression walked once
        (:func:`~pixyz_zoo.losses.evaluation.loss_evaluator`), the same value to the bit."""
        cached = self.__dict__.get("_loss_evaluator")
        if cached is None or cached[0] is not self.loss_cls:
            cached = (self.loss_cls, loss_evaluator(self.loss_cls))
            self.__dict__["_loss_evaluator"] = cached
        return cached[1]

    def evaluate_loss(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Evaluate the loss ``name`` of :meth:`parallel_losses` (through its DDP wrapper when set)."""
        evaluator = self.loss_evaluators.get(name)
        if evaluator is None:
            evaluator = self.parallel_losses()[name][1]
        return evaluator(*args, **kwargs)

    def train(self, train_x_dict: dict[str, Any] | None = None, **kwargs: Any) -> torch.Tensor:
        """Pixyz's training step without a host sync: when the loss or its gradients are NaN/inf, the
        optimiser skips the update on the device (no parameter or optimiser state changes) and
        :attr:`step_health` records the values for the caller's next check."""
        if not all(module.training for module in self._modules_list()):
            self.distributions.train()
        zero_gradients(self.optimizer)
        try:
            with shared_parameters(), argument_validation(False), self.mixed_precision():
                loss = self.evaluate_loss("loss", train_x_dict or {}, **kwargs)
        except ValueError as error:  # torch.distributions rejects NaN parameters (validation on)
            if "Expected parameter" not in str(error):
                raise
            raise NonFiniteLossError(
                f"a distribution's parameters became NaN/inf ({str(error).split(' of ')[0]})"
            ) from None
        except RuntimeError as error:  # a distribution that disagrees on a variable's shape?
            reraise_explained(error, self.shape_mismatch(train_x_dict or {}))
        try:
            loss.backward()
        except RuntimeError as error:  # a loss left per example? (checked here, off the hot path)
            reraise_explained(error, non_scalar_loss(loss))
        if "loss" in self.averaged_losses:  # data parallel without DDP (see gradients_inside_loss)
            distributed.average_gradients(self._trained_parameters())
        norm = self.clip_and_check_gradients(self._trained_parameters())
        health = torch.stack([loss.detach().float(), norm.float(), self._no_discriminator_loss])
        self._skip = ~torch.isfinite(health[:2]).all()
        masked_step(self.optimizer, self._skip)
        self.step_health = health
        return loss

    def shape_mismatch(self, batch: dict[str, Any]) -> str | None:
        """Which of the model's distributions gives a variable another shape than its modality or
        the rest of the model on ``batch`` (:func:`~pixyz_zoo.distributions.shapes.shape_mismatch`):
        what a loss that failed with PyTorch's broadcasting error reports instead. None: they agree."""
        return shape_mismatch(self.modalities, self.generative, self.inference, batch)

    def mixed_precision(self) -> AbstractContextManager:
        """The context a training step's loss is evaluated in: ``torch.autocast`` with
        :attr:`autocast_dtype` when it is set, else none at all."""
        dtype = self.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()

    def _modules_list(self) -> list[torch.nn.Module]:
        """The distributions' modules (listed once: a training step checks their mode without a walk)."""
        cached = self.__dict__.get("_modules_cache")
        if cached is None or cached[0] is not self.distributions:
            cached = (self.distributions, list(self.distributions.modules()))
            self.__dict__["_modules_cache"] = cached
        return cached[1]

    def _trained_parameters(self) -> list[torch.Tensor]:
        """The parameters the optimiser updates (its groups, read without a module walk)."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    @property
    def _no_discriminator_loss(self) -> torch.Tensor:
        """A zero on the device, the third entry of :attr:`step_health` for models without one."""
        zero = self.__dict__.get("_zero_cache")
        device = self.device
        if zero is None or zero.device != device:
            zero = torch.zeros((), device=device)
            self.__dict__["_zero_cache"] = zero
        return zero

    def clip_and_check_gradients(self, parameters: Iterable[torch.Tensor]) -> torch.Tensor:
        """Clip the gradients' total norm to ``clip_grad_norm`` (when set); returns the total norm
        before clipping, a tensor on the device (not read here: no host sync).

        A finite loss can still have non-finite gradients (an overflow in the backward pass);
        :meth:`train` then skips the update, so that no parameter becomes NaN.
        """
        parameters = [p for p in parameters if p.grad is not None]
        if not parameters:
            return torch.zeros((), device=self.device)
        norm = total_norm([p.grad for p in parameters])  # type: ignore[misc]
        if self.clip_norm:
            torch.nn.utils.clip_grads_with_norm_(parameters, self.clip_norm, norm, foreach=True)
        return norm

    def train_step(
        self, batch: dict[str, torch.Tensor], check: bool = True, **values: float
    ) -> float | torch.Tensor:
        """One optimiser step on ``batch`` (hyperparameters default to their final values).

        ``check=True``: returns the loss as a float and raises :class:`NonFiniteLossError` when the
        loss or the gradients were NaN/inf (the step was skipped). ``check=False`` (the trainer's hot
        path): no host sync; returns the loss as a detached device tensor, and a skipped step shows
        only in :attr:`step_health`, which the caller reads at its checks (:func:`health_message`).
        """
        loss = self.train(self.feed(batch, check_values=check, **values)).detach()
        if not check:
            return loss
        problem = health_message(self.step_health.tolist())
        if problem is not None:
            raise NonFiniteLossError(problem)
        return float(loss)

    def test_step(self, batch: dict[str, torch.Tensor]) -> float:
        """The test loss on ``batch`` (hyperparameters at their final values), no gradient: the sum of
        :meth:`test_term_values`, which draw what one evaluation of the whole expression draws."""
        return sum(self.test_term_values(batch))

    @property
    def test_terms(self) -> list[Term]:
        """The test objective split at its sums (:func:`~pixyz_zoo.losses.terms.additive_terms`):
        ``E_q[-log p(x|z)]`` and ``beta KL[q(z|x)||p(z)]`` for the VAE."""
        return self._test_term_split()[0]

    def _test_term_split(self) -> tuple[list[Term], Callable[[dict], list[Any]]]:
        """:attr:`test_terms` and their joint evaluation (:func:`~pixyz_zoo.losses.terms.term_evaluator`),
        made once per test loss."""
        cached = self.__dict__.get("_test_terms")
        if cached is None or cached[0] is not self.test_loss_cls:
            loss = self.test_loss_cls
            cached = (loss, (additive_terms(loss), term_evaluator(loss)))
            self.__dict__["_test_terms"] = cached
        return cached[1]

    @torch.no_grad()
    def test_term_values(self, batch: dict[str, torch.Tensor]) -> list[float]:
        """The value of each of :attr:`test_terms` on ``batch`` (read from the device once), evaluated
        in order: from one random state, they draw what ``self.test`` (Pixyz's evaluation of the whole
        expression) draws and add up to its value. The trainer's test loss comes from here; a model
        evaluated in modes of its own extends :meth:`testing`."""
        x_dict = self.feed(batch)
        with shared_parameters(), self.testing():
            self.distributions.eval()
            try:
                values = self._test_term_split()[1](x_dict)
            except RuntimeError as error:
                reraise_explained(error, self.shape_mismatch(x_dict))
        for term, value in zip(self.test_terms, values, strict=True):
            problem = non_scalar_loss(value, f"the test objective's term {term.text}")
            if problem is not None:
                raise ValueError(problem)
        return torch.stack(
            [torch.as_tensor(v).detach().reshape(()).to(self.device, torch.float64) for v in values]
        ).tolist()

    def test_term_means(self, batches: Iterable[dict[str, torch.Tensor]]) -> list[float]:
        """Each of :attr:`test_terms` averaged over the examples of ``batches`` (each batch weighted
        by its size; the batches may hold more modalities than the model reads)."""
        sums, count = [0.0] * len(self.test_terms), 0
        for batch in batches:
            batch = {name: batch[name] for name in self.modalities}
            n = len(next(iter(batch.values())))
            sums = [
                total + value * n for total, value in zip(sums, self.test_term_values(batch), strict=True)
            ]
            count += n
        if not count:
            raise ValueError("no test example: nothing to average the test objective's terms over")
        return [total / count for total in sums]

    @contextmanager
    def testing(self) -> Iterator[None]:
        """The modes a test loss is evaluated in besides the distributions' evaluation mode (which
        :meth:`test_term_values` sets); models with modules of their own extend it."""
        yield

    def with_loss(self, loss: Loss, hyperparameters: dict[str, float] | None = None) -> ZooModel:
        """A model over the same distributions trained with another loss expression. A symbol of the
        model's own that the loss reads (``Parameter("beta")``) keeps its warm-up and its value, unless
        ``hyperparameters`` gives it another value."""
        read = set(getattr(loss, "input_var", ()))
        own = {name: value for name, value in self.hyperparameters.items() if name in read}
        hyperparameters = {**own, **(hyperparameters or {})}
        model = ZooModel(
            loss,
            list(self.distributions),
            self.modalities,
            self.generative,
            self.inference,
            hyperparameters=hyperparameters,
            annealed=self.annealed & set(own),
            lr=self.config["lr"],
            clip_grad_norm=self.clip_norm,
        )
        model.inference_for = self.inference_for  # type: ignore[method-assign]
        model.description = "custom loss over the distributions of " + type(self).__name__
        return model

    # ------------------------------------------------------------------ inference & generation
    def _check_given(self, given: str | Iterable[str]) -> list[str]:
        """Modality names as a list (one name may be given alone: ``"x1"``, not ``["x", "1"]``)."""
        given = variable_names(given)
        unknown = [g for g in given if g not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modality {unknown}; this model has {sorted(self.modalities)}")
        return given

    def _check_given_batch(self, batch: dict[str, torch.Tensor], given: list[str]) -> None:
        """The modalities ``given`` are in ``batch``, each as its declaration says."""
        check_batch_is_dict(batch, given)
        missing = [g for g in given if g not in batch]
        if missing:
            raise KeyError(
                f"the latents are inferred from {given}, but the batch lacks {missing} (it holds "
                f"{sorted(batch)}); pass those in the batch, or name only what it holds as given"
            )
        for name in given:
            self.modalities[name].check(batch[name])

    def inference_for(self, given: Sequence[str]) -> Distribution:
        """The distribution of the latents given the modalities ``given``: the inference itself
        for all of them; for some, the view of a product or mixture of experts over theirs.

        Models with unimodal encoders or iterative sampling override this.
        """
        if set(given) == set(self.inference.cond_var):
            return self.inference
        if given and isinstance(self.inference, (ProductOfGaussianExperts, MixtureOfExperts)):
            return self.inference.given([m for m in self.inference.cond_var if m in given])
        raise ValueError(
            f"{type(self).__name__} infers {self.latents} only from {self.inference.cond_var}, not from "
            f"{list(given)}; pass all of {self.inference.cond_var}, or infer with a product or mixture "
            "of experts (pixyz_zoo.distributions), or use a multimodal model with unimodal inference"
        )

    def own_refinements(self) -> dict[str, RefinedGaussian]:
        """The model's own refined posteriors by label, whose bound evaluation reports step by step:
        ``{"model": q_T}`` when the model's inference is refined (``iterative-vae``,
        ``refined-vae``), else none. Models that refine during training only override this."""
        return {"model": self.inference} if isinstance(self.inference, RefinedGaussian) else {}

    @torch.no_grad()
    def encode(
        self, batch: dict[str, torch.Tensor], given: Sequence[str] | None = None, sample: bool = False
    ) -> dict[str, torch.Tensor]:
        """Latents inferred from ``given`` (default: every modality): means, or one sample."""
        given = self._check_given(self.modalities if given is None else given)
        if not given:
            raise ValueError(
                "encode infers the latents from modalities, and given=[] names none. Without a "
                "modality they follow the prior: draw them with model.sample_latents(None, [], n=N)"
            )
        self._check_given_batch(batch, given)
        self.distributions.eval()
        q = self.inference_for(given)
        inputs = self._to_device({g: batch[g] for g in given})
        if sample:
            out = q.sample(inputs, return_all=False)
        elif len(q.var) == 1:
            out = {q.var[0]: q.sample_mean(inputs)}
        else:  # a chain of latents: ancestral means
            out = {}
            for factor in q.graph.factors(sorted=True):
                out[factor.dist.var[0]] = factor.dist.sample_mean({**inputs, **out})
        return out

    def complete_latents(self, latents: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Add the latents the decoders need but ``latents`` lacks, drawn ancestrally from the
        generative model (e.g. ``z_1 ~ p(z_1|z_2)`` when only the top layer ``z_2`` was inferred)."""
        out = dict(latents)
        for factor in self.generative.graph.factors(sorted=True):
            var = factor.dist.var[0]
            if var in self.latents and var not in out and all(c in out for c in factor.dist.cond_var):
                batch_n = None if factor.dist.cond_var else len(next(iter(out.values())))
                out[var] = factor.dist.sample(
                    {c: out[c] for c in factor.dist.cond_var}, batch_n=batch_n, return_all=False
                )[var]
        return out

    def _decoder_inputs(
        self, decoder: Distribution, latents: dict[str, torch.Tensor], conditions: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The inputs of ``decoder``: latents, plus observed parents (a CVAE's ``p(x|z,w)``)."""
        rows = len(next(iter(latents.values())))
        inputs = {}
        for name in decoder.cond_var:
            if name in latents:
                inputs[name] = latents[name]
            elif name in conditions:
                value = self._as_input(conditions[name])
                inputs[name] = value.repeat(rows // len(value), *([1] * (value.dim() - 1)))
            else:
                raise ValueError(
                    f"{decoder.prob_text} needs {name!r}: pass it in the batch (conditions) or as a latent"
                )
        return inputs

    def default_targets(self) -> list[str]:
        """What :meth:`generate` produces when no ``targets`` are named: every modality."""
        return list(self.modalities)

    def check_targets(self, targets: Sequence[str]) -> list[str]:
        """``targets`` as a list when the model can generate each of them (here: any of its
        modalities); a model that generates only some of them refuses the others, saying why."""
        return self._check_given(targets)

    @torch.no_grad()
    def decode(
        self,
        latents: dict[str, torch.Tensor],
        targets: Sequence[str] | None = None,
        conditions: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Means of ``p(target|latents)`` for each target modality (default: every one the model
        generates, as :meth:`generate`).

        ``conditions`` holds observed parents of a decoder (a conditional model's ``p(x|z,w)``).
        """
        self._check_latent_names(latents)
        targets = self.check_targets(self.default_targets() if targets is None else targets)
        self.distributions.eval()
        try:
            completed = self.complete_latents(latents)
            out = {}
            for target in targets:
                factor = self.generative.graph.distribution(target)
                out[target] = factor.sample_mean(
                    self._decoder_inputs(factor, completed, {**(conditions or {}), **out})
                )
        except (RuntimeError, IndexError) as error:  # a latent of another size than the model's?
            reraise_explained(error, self._latent_shape_problem(latents))
        return out

    def _check_latent_names(self, latents: dict[str, torch.Tensor]) -> None:
        """Refuse latents that are not a dict of the model's latent variables (a name the model does not
        have would be ignored, and the decoders would read a latent drawn from the prior instead)."""
        check_batch_is_dict(latents, self.latents)
        unknown = [name for name in latents if name not in self.latents]
        if unknown or not latents:
            raise KeyError(
                f"decode takes the latents of {type(self).__name__}, {self.latents}; got {list(latents)}"
                " (model.encode(batch) infers them; model.sample_latents(None, (), n=N) draws them from "
                "the prior)"
            )

    def _latent_shape_problem(self, latents: dict[str, torch.Tensor]) -> str | None:
        """Which of ``latents`` has another per-example shape than the model gives that latent
        (measured on one draw from the prior, outside the caller's random stream); None: none."""
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                expected = self.sample_latents(None, (), n=1)
        except (RuntimeError, ValueError, KeyError):  # no prior to draw from (translation)
            return None
        wrong = {
            name: (tuple(value.shape), tuple(expected[name].shape[1:]))
            for name, value in latents.items()
            if name in expected and tuple(value.shape[1:]) != tuple(expected[name].shape[1:])
        }
        if not wrong:
            return None
        return "; ".join(
            f"latent {name!r} has shape {got}; {type(self).__name__} gives it shape (batch, "
            f"{', '.join(map(str, want))})"
            for name, (got, want) in wrong.items()
        )

    def sample_latents(
        self,
        batch: dict[str, torch.Tensor] | None,
        given: Sequence[str],
        n_samples: int = 1,
        n: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """``n_samples`` draws of the latents inferred from ``given`` (the prior when none is given).

        Rows are sample-major: row ``s * B + b`` is sample ``s`` of example ``b``. This is the one
        place where a model's missing-modality inference is applied (unimodal encoders, products of
        experts, iterative sampling: whatever ``inference_for(given)`` returns).
        """
        given = self._check_given(given)
        check_count(n_samples, "the number of samples n_samples")
        self._check_count_beside_given(batch, given, n)
        self.distributions.eval()
        if given:
            if batch is None:
                raise ValueError(f"inferring the latents from {given} needs a batch holding them")
            self._check_given_batch(batch, given)
            inputs = {
                g: self._as_input(batch[g]).repeat(n_samples, *([1] * (batch[g].dim() - 1))) for g in given
            }
            latents = self.inference_for(given).sample(inputs, return_all=False)
        else:
            prior = self.generative.marginalize_var(self.modalities_in_generative())
            latents = prior.sample(batch_n=prior_draws(n, n_samples), return_all=False)
        return self.complete_latents({k: v for k, v in latents.items() if k in self.latents})

    def log_likelihood(
        self, target: str, latents: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """``log p(target|latents)`` per row (rows of ``latents``; the batch is repeated to match)."""
        (target,) = self.check_targets([target])
        decoder = self.generative.graph.distribution(target)
        inputs = self._decoder_inputs(decoder, latents, batch)
        rows = len(next(iter(latents.values())))
        value = self._as_input(batch[target])
        inputs[target] = value.repeat(rows // len(value), *([1] * (value.dim() - 1)))
        return decoder.get_log_prob(inputs)

    @torch.no_grad()
    def generate(
        self,
        batch: dict[str, torch.Tensor] | None = None,
        given: Sequence[str] = (),
        targets: Sequence[str] | None = None,
        n: int | None = None,
        sample_latent: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Generate ``targets`` from the modalities ``given`` (from the prior when none is given).

        The latent is sampled from ``q(z|given)`` (or ``p(z)``), then each target is the mean of
        ``p(target|z)``. This is the one cross-modal generation path of the zoo.
        """
        targets = self.check_targets(self.default_targets() if targets is None else targets)
        given = self._check_given(given)
        self._check_count_beside_given(batch, given, n)
        if given and not sample_latent:
            latents = self.encode(batch if batch is not None else {}, given)
        else:
            latents = self.sample_latents(batch, given, n=n)
        return self.decode(latents, targets, conditions=batch)

    @staticmethod
    def _check_count_beside_given(
        batch: dict[str, torch.Tensor] | None, given: list[str], n: int | None
    ) -> None:
        """``n`` counts draws from the prior; with modalities given, the batch's rows are the count,
        so an ``n`` given beside them must be that count (another was ignored)."""
        if not given or n is None or not isinstance(batch, dict) or given[0] not in batch:
            return
        rows = len(batch[given[0]])
        if n != rows:
            raise ValueError(
                f"n={n!r} is the number of draws from the prior, but the latents are inferred from "
                f"{given}: one generation per example of the batch, {rows} here. Pass n rows of the "
                "data (dataset.first(n)), or leave given out to sample from the prior"
            )

    def modalities_in_generative(self) -> list[str]:
        return [v for v in self.generative.var if v in self.modalities]

    def reconstruct(
        self, batch: dict[str, torch.Tensor], sample_latent: bool = False
    ) -> dict[str, torch.Tensor]:
        """Decode every modality from the latent inferred from all of them."""
        self._check_reconstructed_batch(batch, list(self.modalities))
        return self.generate(batch, given=list(self.modalities), sample_latent=sample_latent)

    def _check_reconstructed_batch(
        self, batch: dict[str, torch.Tensor], names: list[str], from_fewer: bool = True
    ) -> None:
        """A batch that lacks some of the modalities ``names`` a reconstruction infers from is refused
        (reconstruct takes no ``given``); ``from_fewer``: name the cross-modal generation from those
        it holds."""
        check_batch_is_dict(batch, names)
        held = [m for m in names if m in batch]
        if len(held) < len(names):
            advice = (
                f", or generate from those it holds: model.generate(batch, given={held})"
                if held and from_fewer
                else ""
            )
            raise KeyError(
                f"reconstruct infers the latents from all of {names}, but the batch lacks "
                f"{[m for m in names if m not in batch]} (it holds {sorted(batch)}); pass those in "
                f"the batch, keyed by modality name{advice}"
            )

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` unconditional samples (decoder means at latents drawn from the prior)."""
        return self.generate(given=(), n=n)

    def epoch_metrics(self) -> dict[str, float]:
        """Training metrics of the model's own kind over the epoch that ends (e.g. a discriminator's
        loss), added to the epoch's record in ``metrics.json``; the model resets them here (none here)."""
        return {}

    def test_metrics(self, data: Any) -> dict[str, float]:
        """Metrics of the model's own kind on the test split, added to the run's evaluation (none here)."""
        return {}

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {"distributions": self.distributions.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.distributions.load_state_dict(state["distributions"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            fused_adam(self.optimizer)

    def save(self, path: str | os.PathLike) -> None:
        """Save the model's state to ``path``: the distributions' parameters, the optimiser's state and
        a discriminator's (Pixyz's ``Model.save`` keeps the distributions only; its ``Model.load``
        still reads the file). :meth:`load` reads it back into a model built the same way."""
        torch.save(self.state(), path)

    def load(self, path: str | os.PathLike) -> None:
        """Load a state written by :meth:`save`, by Pixyz's ``Model.save`` or by a ``Trainer`` (a run's
        ``checkpoint.pt``) into this model, onto its device (a file saved on a GPU loads on the CPU).
        The model must be built as the saved one was (same class, modalities and options)."""
        if Path(path).is_dir():
            raise IsADirectoryError(
                f"{path} is a directory: pass the file (a run's checkpoint is "
                f"{Path(path) / 'checkpoint.pt'}), or rebuild a command-line run's model with "
                "pixyz_zoo.runs.load_run(run_dir)"
            )
        state = torch.load(path, map_location=self.device, weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state"), dict):  # a Trainer's checkpoint
            state = state["state"]
        if not isinstance(state, dict) or "distributions" not in state:
            raise ValueError(
                f"{path} holds no model state (no 'distributions'); save one with model.save(path)"
            )
        kind = type(self).__name__
        missing = [part for part in self.state() if part not in state and not part.endswith("optimizer")]
        if missing:
            raise ValueError(
                f"{path} holds no {' or '.join(missing)} state, which this {kind} has: it was saved from "
                "another kind of model (or by Pixyz's Model.save, without it); save it with model.save(path)"
            )
        before = copy.deepcopy(self.state())
        try:
            self.load_state(state)
        except (RuntimeError, ValueError, KeyError) as error:
            self.load_state(before)  # a failed load leaves the model as it was
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            first = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0] if lines else ""
            more = len(lines) - 2 if len(lines) > 2 and lines[0].endswith(":") else 0
            raise ValueError(
                f"{path} does not fit this {kind} (build the model with the class, modalities and "
                f"options it was saved from): {first}" + (f" (and {more} more)" if more else "")
            ) from error


class WithDiscriminator:
    """A model with an adversary of its own (FactorVAE's ``D(z)``, JMVAE-GAN's ``D(x)``), mixed in
    before the model class: ``self.discriminator`` (an ``nn.Module``) and
    ``self.discriminator_optimizer`` (Adam), trained on :meth:`discriminator_objective` after each
    model step. It moves, saves, loads and synchronises (data-parallel) with the model."""

    discriminator: torch.nn.Module
    discriminator_optimizer: optim.Optimizer

    def discriminator_objective(self) -> Callable[..., Any]:  # pragma: no cover - abstract
        """The discriminator's loss (a tensor, or a tuple whose first item is the loss)."""
        raise NotImplementedError

    def discriminator_backward_step(self, x_dict: dict, skip: torch.Tensor | None = None) -> tuple:
        """One Adam step of the discriminator on its objective, without a host sync: when the loss is
        NaN/inf (or ``skip`` holds) no parameter or optimiser state changes. Returns the objective's
        output, the loss's detached value and whether it was non-finite (device tensors)."""
        self.discriminator.train()
        zero_gradients(self.discriminator_optimizer)
        with argument_validation(False), self.mixed_precision():  # type: ignore[attr-defined]
            out = self.evaluate_loss("discriminator", x_dict)
        loss = out[0] if isinstance(out, tuple) else out
        loss.backward()
        value = loss.detach().float()
        bad = ~torch.isfinite(value)
        masked_step(self.discriminator_optimizer, bad if skip is None else bad | skip)
        return out, value, bad

    def parallel_losses(self) -> dict:
        """The model's losses and the discriminator's (its own step, synchronised like the model's)."""
        return {
            **super().parallel_losses(),
            "discriminator": (self.discriminator, self.discriminator_objective()),
        }

    def to(self, device: torch.device | str) -> Any:
        super().to(device)
        self.discriminator.to(device)
        return self

    def state(self) -> dict:
        return {
            **super().state(),
            "discriminator": self.discriminator.state_dict(),
            "discriminator_optimizer": self.discriminator_optimizer.state_dict(),
        }

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.discriminator.load_state_dict(state["discriminator"])
        if "discriminator_optimizer" in state:
            self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
            fused_adam(self.discriminator_optimizer)
