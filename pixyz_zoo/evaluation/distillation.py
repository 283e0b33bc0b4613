r"""How far a distilled ("student") posterior stays from its "teacher": the teacher-student KL.

A multimodal VAE that infers the shared latent from a single modality can train a unimodal
encoder ``q(z|x_1)`` (the student) towards a posterior that sees more (the teacher): JMVAE-kl
pulls its unimodal encoders towards the joint encoder ``q(z|x_1, x_2)``; the multimodal VAE with
iterative amortized inference distils its refined posterior into unimodal encoders. Oshima,
Suzuki & Matsuo, "Improving multimodal information integration with iterative amortized
inference" (slides, 2023; in Japanese), slide 68, compare the two by the KL divergence between
teacher and student on the test set:

.. math::
    \mathrm{KL}_{\text{teacher-student}} = \frac{1}{N} \sum_{i=1}^N
        D_{KL}\big[q_{\text{teacher}}(z|X_i) \,\|\, q_{\text{student}}(z|x_{S,i})\big]

analytic for two diagonal Gaussians and summed over the latent dimensions (nats per example):

.. math::
    D_{KL}[\mathcal{N}(\mu_t, \sigma_t^2) \| \mathcal{N}(\mu_s, \sigma_s^2)]
        = \sum_d \log\frac{\sigma_{s,d}}{\sigma_{t,d}}
        + \frac{\sigma_{t,d}^2 + (\mu_{t,d} - \mu_{s,d})^2}{2\sigma_{s,d}^2} - \frac{1}{2}

The direction is the one a student is distilled with (the teacher's expectation), 0 when the
student reproduces the teacher. Any pair of Gaussian Pixyz distributions works: an encoder, a
product of experts, a :class:`~pixyz_zoo.distributions.refinement.RefinedGaussian` (refined
inside ``get_params``, also under ``torch.no_grad()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pixyz.distributions.distributions import Distribution
from torch import distributions as td

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions.refinement import require_gaussian
from pixyz_zoo.evaluation.likelihood import evaluation_batches
from pixyz_zoo.evaluation.multimodal import _subsample
from pixyz_zoo.models.refinement import posterior_parameters

__all__ = ["gaussian_kl_between", "teacher_student_kl"]

WHAT = "the teacher-student KL is analytic for diagonal Gaussians;"


def _parameters(
    model: Any, q: Distribution, batch: dict[str, torch.Tensor], role: str
) -> tuple[torch.Tensor, torch.Tensor]:
    missing = [c for c in q.cond_var if c not in batch]
    if missing:
        raise KeyError(
            f"the {role} {q.prob_text} is conditioned on {missing}, which the batch lacks (it has "
            f"{sorted(batch)}); evaluate on data holding every modality the teacher and student read"
        )
    inputs = model._to_device({c: batch[c] for c in q.cond_var}) if model is not None else batch
    return posterior_parameters(q, inputs)


@torch.no_grad()
def gaussian_kl_between(
    teacher: Distribution, student: Distribution, batch: dict[str, torch.Tensor], model: Any = None
) -> torch.Tensor:
    """``KL(teacher || student)`` per example of ``batch`` (float64, shape (batch,)), summed over
    the latent dimensions. ``model``: moves the inputs to its device (default: as given)."""
    require_gaussian(teacher, f"{WHAT} the teacher")
    require_gaussian(student, f"{WHAT} the student")
    t_loc, t_scale = _parameters(model, teacher, batch, "teacher")
    s_loc, s_scale = _parameters(model, student, batch, "student")
    if t_loc.shape != s_loc.shape:
        raise ValueError(
            f"the teacher {teacher.prob_text} gives latents {tuple(t_loc.shape)} (rows, ...) and the student "
            f"{student.prob_text} {tuple(s_loc.shape)}: a KL needs the same latent for both; pair "
            "posteriors of the same model (the same latent size)"
        )
    t = td.Normal(t_loc.double(), t_scale.double(), validate_args=False)
    s = td.Normal(s_loc.double(), s_scale.double(), validate_args=False)
    return td.kl_divergence(t, s).reshape(len(t_loc), -1).sum(dim=1)


def _check_pairs(
    pairs: Mapping[str, tuple[Distribution, Distribution]],
) -> dict[str, tuple[Distribution, Distribution]]:
    if not isinstance(pairs, Mapping) or not pairs:
        raise ValueError(
            "pairs must be a non-empty mapping label -> (teacher, student), e.g. "
            "{'x': (model.inference, model.inference_for(['x']))}"
        )
    checked = {}
    for label, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"pairs[{label!r}] must be a (teacher, student) tuple, got {type(pair).__name__}")
        teacher, student = pair
        require_gaussian(teacher, f"{WHAT} the teacher of {label!r},")
        require_gaussian(student, f"{WHAT} the student of {label!r},")
        checked[str(label)] = (teacher, student)
    return checked


@torch.no_grad()
def teacher_student_kl(
    model: Any,
    data: MultimodalDataset,
    pairs: Mapping[str, tuple[Distribution, Distribution]],
    n: int | None = None,
    batch_size: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """Mean analytic ``KL(teacher || student)`` over test examples, per pair (nats per example).

    Oshima, Suzuki & Matsuo's teacher-student KL (slides, slide 68): for JMVAE the joint encoder
    ``q(z|X)`` against each unimodal encoder, for the iterative model the refined teacher against
    each distilled student. ``pairs`` maps a label to ``(teacher, student)``, two diagonal
    Gaussians over the same latent, each conditioned on some of the modalities (read from the
    batch). ``n``: at most that many examples, a subsample drawn with ``seed`` (kept in order);
    the batches are seeded as every evaluation's are
    (:func:`~pixyz_zoo.evaluation.likelihood.evaluation_batches`). The model (and the pairs) are
    put in eval mode; nothing computes a gradient of the model.
    """
    checked = _check_pairs(pairs)
    data = _subsample(data, n, seed)
    model.distributions.eval()
    for teacher, student in checked.values():
        teacher.eval()
        student.eval()
    totals = dict.fromkeys(checked, 0.0)
    count = 0
    for batch in evaluation_batches(data, batch_size, seed):
        for label, (teacher, student) in checked.items():
            totals[label] += float(gaussian_kl_between(teacher, student, batch, model).sum())
        count += len(next(iter(batch.values())))
    if count == 0:
        raise ValueError(f"the dataset {getattr(data, 'name', '')!r} holds no examples")
    return {label: total / count for label, total in totals.items()}
