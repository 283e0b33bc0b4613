r"""Inference suboptimality: refinement curves, per-example optimal posteriors and the two gaps.

Cremer, Li & Duvenaud, "Inference Suboptimality in Variational Autoencoders" (ICML 2018), and
the slides' picture (slides 6 and 13): the ideal posterior ``q*(z|x)`` of the variational family,
the amortised ``q(z|x)`` below it, the amortization gap between them.

.. math::
    \log p(x) - \mathcal{L}[q] = \underbrace{\log p(x) - \mathcal{L}[q^*]}_{\text{approximation gap}}
        + \underbrace{\mathcal{L}[q^*] - \mathcal{L}[q]}_{\text{amortization gap}}

- :func:`optimal_gaussian`: ``q*``: each example's Gaussian parameters optimised with the decoder
  fixed (batched over examples, Adam, early stopping per example on the bound);
- :func:`amortization_gaps`: ``L[q]``, ``L[q*]``, ``log p(x)`` (IWAE with ``k`` samples, ``q*``
  as the proposal) and the gaps, averaged over a dataset;
- :func:`inference_gaps`: the ELBO of all modalities under several posteriors (unimodal, joint,
  refined, distilled) against the same ``q*(z|X)``;
- :func:`refinement_curve`: the ELBO after ``0..T`` refinement steps (gradient steps, or the
  model's own learned refinement).

Every bound comes from the zoo's one estimator, :func:`~pixyz_zoo.evaluation.likelihood.log_weights`,
with the Gaussian of the given parameters as the proposal. All of it works on any zoo model whose
inference from the given modalities is a Gaussian over one latent; others get a ``TypeError``.
Nothing here changes the model's parameters or their gradients.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss

from pixyz_zoo.checks import check_count, check_positive
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions.refinement import (
    GaussianFromParameters,
    RefinedGaussian,
    UpdateRule,
    check_steps,
    require_gaussian,
)
from pixyz_zoo.evaluation.likelihood import elbo_estimate, evaluation_batches, iwae_bound, log_weights
from pixyz_zoo.modalities import check_batch_is_dict
from pixyz_zoo.models.base import ZooModel
from pixyz_zoo.models.refinement import (
    amortized_posterior,
    elbo_refinement_loss,
    posterior_parameters,
    refined_inference,
)

__all__ = [
    "OptimalGaussian",
    "amortization_gaps",
    "bound_of_parameters",
    "inference_gaps",
    "optimal_gaussian",
    "refinement_curve",
    "refinement_trajectory",
]


def _inputs(model: ZooModel, batch: dict[str, torch.Tensor], names: Sequence[str]) -> dict[str, torch.Tensor]:
    check_batch_is_dict(batch, [n for n in names if n in model.modalities])
    missing = [n for n in names if n not in batch]
    if missing:
        raise KeyError(f"the batch lacks {missing}, which the refinement needs; it has {sorted(batch)}")
    return model._to_device({n: batch[n] for n in names})


def bound_of_parameters(
    model: ZooModel,
    batch: dict[str, torch.Tensor],
    loc: torch.Tensor,
    scale: torch.Tensor,
    k: int,
    given: Sequence[str] | None = None,
    max_rows: int = 20000,
) -> torch.Tensor:
    """Log-weights (k, batch) of the Gaussian ``N(loc, diag scale^2)`` as the proposal.

    ``elbo_estimate`` of them is ``L[q]`` for that Gaussian, ``iwae_bound`` the IWAE_k bound. The
    likelihood is that of ``given`` (default: every modality; a subset marginalises the others).
    """
    q = amortized_posterior(model, given)
    proposal = GaussianFromParameters(q.var[0])
    values = {**batch, **proposal.feed(loc, scale)}
    observed = None if given is None else list(given)
    return log_weights(model, values, k, max_rows=max_rows, observed=observed, proposal=proposal)


# ---------------------------------------------------------------------- refinement curves
def _refiner(
    model: ZooModel,
    given: Sequence[str] | None,
    steps: int | None,
    rule: str | UpdateRule | RefinedGaussian,
    lr: float | None,
    samples: int,
    init: str,
) -> RefinedGaussian:
    if isinstance(rule, RefinedGaussian):  # a refinement of the model's own, e.g. a teacher
        return rule if steps is None else rule.with_steps(check_steps(steps))
    if rule == "model":
        full = given is None or set(given) == set(model.modalities)
        q = model.inference if full else model.inference_for(list(given))
        if not isinstance(q, RefinedGaussian):
            raise ValueError(
                f"rule='model' uses the model's own refinement, but {model.name}'s inference "
                f"{q.prob_text} is not refined; use rule='adam' or 'sgd' (gradient steps) for this model"
            )
        return q if steps is None else q.with_steps(check_steps(steps))
    return refined_inference(
        model, given, steps=5 if steps is None else steps, rule=rule, lr=lr, samples=samples, init=init
    )


def refinement_trajectory(
    model: ZooModel,
    batch: dict[str, torch.Tensor],
    steps: int | None = None,
    given: Sequence[str] | None = None,
    rule: str | UpdateRule | RefinedGaussian = "adam",
    lr: float | None = None,
    samples: int = 1,
    init: str = "encoder",
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(loc_t, scale_t)]`` for ``t = 0..T`` on one batch (detached; e.g. to draw a 2-D trajectory).

    ``rule``: ``"adam"``/``"sgd"`` gradient steps from the amortised posterior (``init="encoder"``)
    or the prior, ``"model"``: the model's own refinement (the iterative VAE's learned update;
    ``steps`` defaults to its ``T``), or one of the model's :class:`RefinedGaussian` (e.g. a teacher
    of :meth:`~pixyz_zoo.models.base.ZooModel.own_refinements`; ``steps`` defaults to its ``T``).
    """
    refiner = _refiner(model, given, steps, rule, lr, samples, init)
    model.distributions.eval()
    with torch.no_grad():
        return refiner.run(_inputs(model, batch, refiner.cond_var), keep=True).trajectory


def refinement_curve(
    model: ZooModel,
    data: MultimodalDataset,
    steps: int | None = None,
    given: Sequence[str] | None = None,
    rule: str | UpdateRule | RefinedGaussian = "adam",
    lr: float | None = None,
    samples: int = 1,
    init: str = "encoder",
    k: int = 10,
    batch_size: int = 100,
    seed: int = 0,
    max_rows: int = 20000,
    progress: bool = False,
) -> dict[str, Any]:
    """The test ELBO after each of ``0..T`` refinement steps, averaged over ``data``.

    Each example's trajectory is computed once; the bound at step ``t`` is the mean of ``k``
    log-weights with the Gaussian ``lambda_t`` as the proposal (``elbo[0]`` is the amortised
    posterior's ELBO; ``rule``: see :func:`refinement_trajectory`). Returns ``{"elbo": [T+1 values],
    "steps", "rule", "k", "examples", "seconds"}``.
    """
    from pixyz_zoo.progress import tqdm

    k = check_count(k, "the number of samples k per bound")
    start = time.perf_counter()
    refiner = _refiner(model, given, steps, rule, lr, samples, init)
    model.distributions.eval()
    totals = torch.zeros(refiner.steps + 1, dtype=torch.float64)
    count = 0
    batches = evaluation_batches(data, batch_size, seed)
    for batch in tqdm(batches, total=data.num_batches(batch_size), disable=not progress, desc="refinement"):
        with torch.no_grad():
            trajectory = refiner.run(_inputs(model, batch, refiner.cond_var), keep=True).trajectory
            for t, (loc, scale) in enumerate(trajectory):
                log_w = bound_of_parameters(model, batch, loc, scale, k, given=given, max_rows=max_rows)
                totals[t] += float(elbo_estimate(log_w).sum())
        count += len(next(iter(batch.values())))
    return {
        "elbo": (totals / count).tolist(),
        "steps": refiner.steps,
        "rule": refiner.rule.description,
        "lr": getattr(refiner.rule, "lr", None),
        "samples": samples,
        "k": k,
        "examples": count,
        "seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------- q*
@dataclass
class OptimalGaussian:
    """Per-example optimised Gaussian parameters ``q*`` and how the optimisation went.

    ``loss``: the last window's mean of the objective per example (a noisy, optimistic estimate:
    re-estimate the bound with :func:`bound_of_parameters`); ``steps``: steps until each example
    stopped; ``converged``: whether it stopped early (else it ran ``max_steps``).
    """

    loc: torch.Tensor
    scale: torch.Tensor
    loss: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor


def optimal_gaussian(
    model: ZooModel,
    batch: dict[str, torch.Tensor],
    given: Sequence[str] | None = None,
    loss: tuple[Loss, GaussianFromParameters] | None = None,
    init: str = "model",
    lr: float = 1e-2,
    max_steps: int = 2000,
    samples: int = 4,
    window: int = 50,
    patience: int = 3,
    tol: float = 1e-2,
) -> OptimalGaussian:
    """``q*``: each example's Gaussian optimised on the negative ELBO with the model fixed.

    Adam on :math:`(\\mu, \\log\\sigma)` of every example of the batch at once (the objective is
    the sum over examples, so they do not interact). The mean objective of each example over
    windows of ``window`` steps is compared with its best window: an example stops (its
    parameters frozen at the end of its best window) after ``patience`` windows without an
    improvement larger than ``tol`` nats; the rest stop at ``max_steps``.

    Args:
        init: start from the model's posterior (``"model"``: for the iterative VAE its refined
            ``q_T``), its amortised encoder (``"encoder"``) or the prior (``"prior"``).
        loss: ``(F, posterior)``, another objective (default: :func:`elbo_refinement_loss` of
            ``given`` with ``samples`` samples per step).
    """
    max_steps, window = check_count(max_steps, "max_steps"), check_count(window, "window")
    patience = check_count(patience, "patience")
    lr = check_positive(lr, "the step size lr of q*'s optimiser")
    objective, posterior = loss if loss is not None else elbo_refinement_loss(model, given, samples=samples)
    q = amortized_posterior(model, given, unwrap=False)
    model.distributions.eval()
    with torch.no_grad():
        if init == "model":
            start = posterior_parameters(q, _inputs(model, batch, q.cond_var))
        elif init == "encoder":
            encoder = amortized_posterior(model, given)
            start = posterior_parameters(encoder, _inputs(model, batch, encoder.cond_var))
        elif init == "prior":
            prior = model.generative.graph.distribution(q.var[0])
            loc, scale = posterior_parameters(prior, _inputs(model, batch, prior.cond_var))
            rows = len(next(iter(batch.values())))
            start = loc.expand(rows, *loc.shape[1:]), scale.expand(rows, *scale.shape[1:])
        else:
            raise ValueError(f"unknown init {init!r}; choose 'model', 'encoder' or 'prior'")
    names = [v for v in objective.input_var if v not in (posterior.loc_name, posterior.scale_name)]
    inputs = _inputs(model, batch, names)
    loc = start[0].detach().clone().requires_grad_()
    log_scale = start[1].detach().log().clone().requires_grad_()
    optimizer = torch.optim.Adam([loc, log_scale], lr=lr)
    rows = len(loc)
    best = torch.full((rows,), float("inf"), device=loc.device)
    best_loc, best_log_scale = loc.detach().clone(), log_scale.detach().clone()
    stale = torch.zeros(rows, dtype=torch.long, device=loc.device)
    done = torch.zeros(rows, dtype=torch.bool, device=loc.device)
    steps = torch.full((rows,), max_steps, dtype=torch.long, device=loc.device)
    running = torch.zeros(rows, device=loc.device)
    with torch.enable_grad():
        for step in range(1, max_steps + 1):
            value = objective.eval({**inputs, **posterior.feed(loc, log_scale.exp())})
            grads = torch.autograd.grad(value.sum(), [loc, log_scale])  # lambda only: the model stays fixed
            loc.grad, log_scale.grad = grads
            optimizer.step()
            with torch.no_grad():
                loc[done], log_scale[done] = best_loc[done], best_log_scale[done]
                running += value.detach()
                if step % window == 0:
                    mean = running / window
                    running.zero_()
                    improved = (mean < best - tol) & ~done
                    best = torch.where(improved, mean, best)
                    best_loc[improved], best_log_scale[improved] = loc[improved], log_scale[improved]
                    stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
                    stop = (stale >= patience) & ~done
                    steps[stop] = step
                    done |= stop
                    loc[done], log_scale[done] = best_loc[done], best_log_scale[done]
                    if bool(done.all()):
                        break
    with torch.no_grad():
        final_loc = torch.where(done.unsqueeze(-1), best_loc, loc.detach())
        final_scale = torch.where(done.unsqueeze(-1), best_log_scale, log_scale.detach()).exp()
    return OptimalGaussian(final_loc, final_scale, best, steps, done)


def _posterior_elbo(
    model: ZooModel,
    q: Distribution,
    batch: dict[str, torch.Tensor],
    samples: int,
    given: Sequence[str] | None,
    max_rows: int,
    latent_shape: torch.Size | None = None,
    label: str = "",
) -> torch.Tensor:
    """``L[q]`` per example of ``batch`` (on the CPU): ``samples`` log-weights with the Gaussian ``q``
    of the batch as the proposal; ``latent_shape`` checks its latent's shape (without the rows)."""
    model.distributions.eval()
    with torch.no_grad():
        loc, scale = posterior_parameters(q, _inputs(model, batch, q.cond_var))
        if latent_shape is not None and loc.shape[1:] != latent_shape:
            raise ValueError(
                f"the posterior {label!r} {q.prob_text} gives latents of shape {tuple(loc.shape[1:])}, the "
                f"model's latent has {tuple(latent_shape)}; pass posteriors over this model's latent"
            )
        log_w = bound_of_parameters(model, batch, loc, scale, samples, given=given, max_rows=max_rows)
        return elbo_estimate(log_w).cpu()


def _optimal_bounds(
    model: ZooModel,
    batch: dict[str, torch.Tensor],
    k: int,
    given: Sequence[str] | None,
    max_rows: int,
    optimiser: dict[str, Any],
) -> tuple[OptimalGaussian, torch.Tensor, torch.Tensor]:
    """``q*`` of ``batch`` and, from the same ``k`` log-weights, ``L[q*]`` and IWAE_k (per example, CPU)."""
    best = optimal_gaussian(model, batch, given=given, **optimiser)
    with torch.no_grad():
        log_w = bound_of_parameters(model, batch, best.loc, best.scale, k, given=given, max_rows=max_rows)
        return best, elbo_estimate(log_w).cpu(), iwae_bound(log_w).cpu()


def amortization_gaps(
    model: ZooModel,
    data: MultimodalDataset,
    given: Sequence[str] | None = None,
    k: int = 1000,
    elbo_samples: int = 100,
    batch_size: int = 100,
    seed: int = 0,
    max_rows: int = 20000,
    progress: bool = False,
    per_example: bool = False,
    **optimiser: Any,
) -> dict[str, Any]:
    """``L[q]``, ``L[q*]``, ``log p(x)`` and the amortization and approximation gaps over ``data``.

    - ``elbo_model``: the ELBO of the model's own posterior ``q(z|x_S)`` (for the iterative VAE:
      its refined ``q_T``), mean of ``elbo_samples`` log-weights per example;
    - ``elbo_optimal``: the ELBO of ``q*`` (:func:`optimal_gaussian`, ``optimiser`` passed on),
      from ``k`` log-weights per example;
    - ``log_px``: IWAE_k with ``q*`` as the proposal (the same ``k`` log-weights);
    - ``amortization_gap = elbo_optimal - elbo_model``; ``approximation_gap = log_px - elbo_optimal``;
      ``inference_gap = log_px - elbo_model`` (their sum).

    Nats per example; ``given`` selects the modalities (default all). ``per_example`` adds the
    per-example values as lists.
    """
    from pixyz_zoo.progress import tqdm

    k, elbo_samples = check_count(k, "k"), check_count(elbo_samples, "elbo_samples")
    start = time.perf_counter()
    q = amortized_posterior(model, given, unwrap=False)
    rows: dict[str, list[torch.Tensor]] = {"elbo_model": [], "elbo_optimal": [], "log_px": [], "steps": []}
    converged = 0
    batches = evaluation_batches(data, batch_size, seed)
    for batch in tqdm(batches, total=data.num_batches(batch_size), disable=not progress, desc="q*"):
        rows["elbo_model"].append(_posterior_elbo(model, q, batch, elbo_samples, given, max_rows))
        best, elbo_optimal, log_px = _optimal_bounds(model, batch, k, given, max_rows, optimiser)
        rows["elbo_optimal"].append(elbo_optimal)
        rows["log_px"].append(log_px)
        rows["steps"].append(best.steps.cpu().double())
        converged += int(best.converged.sum())
    values = {name: torch.cat(parts).double() for name, parts in rows.items()}
    n = len(values["elbo_model"])
    out: dict[str, Any] = {
        "elbo_model": float(values["elbo_model"].mean()),
        "elbo_optimal": float(values["elbo_optimal"].mean()),
        "log_px": float(values["log_px"].mean()),
    }
    out["amortization_gap"] = out["elbo_optimal"] - out["elbo_model"]
    out["approximation_gap"] = out["log_px"] - out["elbo_optimal"]
    out["inference_gap"] = out["log_px"] - out["elbo_model"]
    out.update(
        k=k,
        elbo_samples=elbo_samples,
        examples=n,
        optimal_steps_mean=float(values["steps"].mean()),
        optimal_converged_fraction=converged / n,
        optimiser=dict(optimiser),
        seconds=time.perf_counter() - start,
    )
    if per_example:
        out["per_example"] = {name: v.tolist() for name, v in values.items()}
    return out


def inference_gaps(
    model: ZooModel,
    data: MultimodalDataset,
    posteriors: Mapping[str, Distribution],
    k: int = 100,
    elbo_samples: int = 20,
    batch_size: int = 100,
    seed: int = 0,
    n: int | None = None,
    max_rows: int = 20000,
    progress: bool = False,
    **optimiser: Any,
) -> dict[str, Any]:
    r"""The ELBO of all modalities under several posteriors, each against the optimum ``q*(z|X)``.

    The slides' "accuracy of inference" picture (slides 21-27): the ideal posterior
    ``q*(z|x_1, x_2)`` of the multimodal ELBO on top, below it the joint amortised encoder
    ``q(z|x_1, x_2)``, the unimodal ``q(z|x_1)`` (missing modalities: part of the amortization
    gap), the refined or distilled one; Cremer, Li & Duvenaud (ICML 2018) for the gaps. Every
    posterior is scored on the same bound, the ELBO of every modality of the model,

    .. math::
        \mathcal{L}[q](X) = \mathbb{E}_{q}\big[\log p(X, z) - \log q\big], \qquad
        \text{gap}[q] = \mathcal{L}[q^*](X) - \mathcal{L}[q](X)

    whatever ``q`` is conditioned on. ``posteriors``: label -> a Gaussian over the model's latent
    given any subset of the modalities (a unimodal encoder, a product of experts, a
    :class:`RefinedGaussian` refined with the ELBO of all modalities, ...). Per batch: each
    ``L[q]`` from ``elbo_samples`` log-weights; ``q*`` (:func:`optimal_gaussian` on all modalities,
    ``optimiser`` passed on) once, ``L[q*]`` and ``log p(X)`` (IWAE_k with ``q*`` as the proposal)
    from the same ``k`` log-weights, as :func:`amortization_gaps` does; with one posterior, the
    model's own, its numbers are those of :func:`amortization_gaps`. ``n``: at most that many
    examples, a subsample drawn with ``seed``.

    Returns ``{"optimal": {"elbo", "approximation_gap", "steps_mean", "converged_fraction"},
    "log_px", "posteriors": {label: {"elbo", "gap"}}, "examples", "k", "elbo_samples",
    "optimiser", "seconds"}``, nats per example.
    """
    from pixyz_zoo.evaluation.multimodal import _subsample
    from pixyz_zoo.progress import tqdm

    k, elbo_samples = check_count(k, "k"), check_count(elbo_samples, "elbo_samples")
    if not isinstance(posteriors, Mapping) or not posteriors:
        raise ValueError(
            "posteriors must be a non-empty mapping label -> Gaussian posterior, e.g. "
            "{'joint': model.inference, 'x': model.inference_for(['x'])}"
        )
    start = time.perf_counter()
    for label, q in posteriors.items():
        require_gaussian(q, f"the posterior {label!r},")
    try:
        latent = amortized_posterior(model).var[0]
    except TypeError as error:
        raise TypeError(f"q*(z|X) starts from the model's inference from all modalities: {error}") from None
    for label, q in posteriors.items():
        if q.var != [latent]:
            raise ValueError(
                f"the posterior {label!r} {q.prob_text} is over {q.var}; {model.name}'s latent is "
                f"{latent!r}: pass posteriors over the model's latent"
            )
    prior = model.generative.graph.distribution(latent)
    latent_shape = None
    if getattr(prior, "distribution_name", "") == "Normal" and not prior.cond_var:
        with torch.no_grad():
            latent_shape = posterior_parameters(prior, {})[0].shape[1:]
    data = _subsample(data, n, seed)
    rows: dict[str, list[torch.Tensor]] = {label: [] for label in posteriors}
    optimal: dict[str, list[torch.Tensor]] = {"elbo": [], "log_px": [], "steps": []}
    converged = 0
    batches = evaluation_batches(data, batch_size, seed)
    for batch in tqdm(batches, total=data.num_batches(batch_size), disable=not progress, desc="q*"):
        for label, q in posteriors.items():
            rows[label].append(
                _posterior_elbo(model, q, batch, elbo_samples, None, max_rows, latent_shape, label)
            )
        best, elbo_optimal, log_px = _optimal_bounds(model, batch, k, None, max_rows, optimiser)
        optimal["elbo"].append(elbo_optimal)
        optimal["log_px"].append(log_px)
        optimal["steps"].append(best.steps.cpu().double())
        converged += int(best.converged.sum())
    means = {name: float(torch.cat(parts).double().mean()) for name, parts in optimal.items()}
    count = sum(len(part) for part in optimal["elbo"])
    elbos = {label: float(torch.cat(parts).double().mean()) for label, parts in rows.items()}
    return {
        "optimal": {
            "elbo": means["elbo"],
            "approximation_gap": means["log_px"] - means["elbo"],
            "steps_mean": means["steps"],
            "converged_fraction": converged / count,
        },
        "log_px": means["log_px"],
        "posteriors": {label: {"elbo": elbo, "gap": means["elbo"] - elbo} for label, elbo in elbos.items()},
        "examples": count,
        "k": k,
        "elbo_samples": elbo_samples,
        "optimiser": dict(optimiser),
        "seconds": time.perf_counter() - start,
    }
