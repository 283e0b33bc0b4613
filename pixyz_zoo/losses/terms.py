"""A loss expression as the sum of its terms, each one a Pixyz expression of its own.

A zoo objective is a weighted sum: the VAE's ``E_q[-log p(x|z)] + beta KL[q(z|x)||p(z)]``, MFM's
per-modality reconstructions, MMD and surrogate terms (eq. 4, 5), JMVAE-kl's ELBO and ``alpha``
times two KL terms (eq. 11), beta-TCVAE's reconstruction, ``alpha`` MI, ``beta`` TC and ``gamma``
dimension-wise KL inside one expectation (Chen et al. 2018, eq. 4). :func:`additive_terms` splits
an expression at its sums:

- through ``+``, ``-``, negation, the batch mean and sum;
- through a scalar factor (a number, a hyperparameter such as ``beta``, or an arithmetic of them),
  which it distributes over a sum (``alpha (KL_1 + KL_2)`` gives ``alpha KL_1`` and ``alpha KL_2``);
- into an expectation, whose integrand is split the same way (``E_q[-log p(x|z) - log p(y|z)]``
  gives ``E_q[-log p(x|z)]`` and ``E_q[-log p(y|z)]``), except that a scalar factor inside it is
  not distributed: ``alpha (log q(z|x) - log q(z))`` stays one term, beta-TCVAE's mutual information.

Everything else (a KL, the zoo's own losses, a product of two losses, a subclass) is one term. A
constant 0 in a sum (Python's ``sum`` of losses starts with it) is no term: the printed formula
leaves it out too.

:func:`term_evaluator` evaluates all the terms in one pass that draws what ``loss.eval`` draws, in
the same order: a sum's operands left to right, and an expectation's samples once for all the terms
inside it. The values then add up to ``loss.eval``'s value (up to float rounding). Each term's own
``loss`` (a standalone Pixyz expression, for printing or for evaluating that term alone) draws its
own samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pixyz.losses.losses import (
    AddLoss,
    BatchMean,
    BatchSum,
    DivLoss,
    Expectation,
    Loss,
    MulLoss,
    NegLoss,
    Parameter,
    SubLoss,
    ValueLoss,
)

from pixyz_zoo.distributions.text import loss_text

__all__ = ["Term", "additive_terms", "term_evaluator"]

#: the values of a loss's terms, computed from an input dictionary
Values = Callable[[dict], list[Any]]


@dataclass(frozen=True)
class Term:
    """One term of a loss: ``loss`` evaluates it alone (with the batch reduction of the expression it
    came from), ``text`` is its formula as Pixyz prints it, without that reduction."""

    text: str
    loss: Loss


def additive_terms(loss: Loss) -> list[Term]:
    """The terms whose sum is ``loss``, in the expression's order (module docstring)."""
    return [Term(_text(term), term) for term in _split(loss)[0]]


def term_evaluator(loss: Loss) -> Values:
    """A function of an input dictionary returning the values of :func:`additive_terms`, with the
    draws of one ``loss.eval`` (module docstring)."""
    return _split(loss)[1]


def _split(loss: Loss, inside: bool = False) -> tuple[list[Loss], Values]:
    """The terms of ``loss`` and the function evaluating them together (``inside`` an expectation:
    a scalar factor is not distributed)."""
    kind = type(loss)
    if kind in (AddLoss, SubLoss) and _is_zero(loss.loss1):  # Python's sum() starts at 0
        return _split(loss.loss2 if kind is AddLoss else -loss.loss2, inside)
    if kind in (AddLoss, SubLoss) and _is_zero(loss.loss2):
        return _split(loss.loss1, inside)
    if kind in (AddLoss, SubLoss) and loss.loss1 is not None and loss.loss2 is not None:
        (first, values1), (second, values2) = _split(loss.loss1, inside), _split(loss.loss2, inside)
        if kind is AddLoss:  # the left operand first, as Pixyz evaluates it
            return first + second, lambda x: values1(x) + values2(x)
        return first + [-term for term in second], lambda x: values1(x) + [-v for v in values2(x)]
    if kind is NegLoss:
        terms, values = _split(loss.loss1, inside)
        return [-term for term in terms], lambda x: [-v for v in values(x)]
    if kind in (BatchMean, BatchSum):
        terms, values = _split(loss.loss1, inside)
        if kind is BatchMean:
            return [term.mean() for term in terms], lambda x: [v.mean() for v in values(x)]
        return [term.sum() for term in terms], lambda x: [v.sum() for v in values(x)]
    if kind in (MulLoss, DivLoss) and not inside:
        scalar_left = kind is MulLoss and _is_scalar(loss.loss1)
        if scalar_left or _is_scalar(loss.loss2):
            factor, operand = (loss.loss1, loss.loss2) if scalar_left else (loss.loss2, loss.loss1)
            terms, values = _split(operand, inside)
            if kind is DivLoss:
                return [term / factor for term in terms], lambda x: [v / factor.eval(x) for v in values(x)]
            if scalar_left:
                return [factor * term for term in terms], lambda x: [factor.eval(x) * v for v in values(x)]
            return [term * factor for term in terms], lambda x: [v * factor.eval(x) for v in values(x)]
    if kind is Expectation:
        inner, values = _split(loss.f, inside=True)
        if len(inner) > 1:
            terms = [Expectation(loss.p, f, loss.sample_shape, loss.reparam) for f in inner]
            return terms, _expectation(loss, values)
    return [loss], lambda x: [loss.eval(x)]


def _expectation(loss: Expectation, values: Values) -> Values:
    """``Expectation.forward`` for the terms of its integrand: every sample drawn first, then the
    terms on each sample in order, each term's mean over the samples."""
    p, reparam, n = loss.p, loss.reparam, loss.sample_shape.numel()

    def evaluate(x: dict) -> list[Any]:
        samples = [p.sample(x, reparam=reparam, return_all=False) for _ in range(n)]
        per_sample = [values({**x, **sample}) for sample in samples]
        return [
            torch.stack([torch.as_tensor(v) for v in term]).mean(dim=0)
            for term in zip(*per_sample, strict=True)
        ]

    return evaluate


def _is_zero(loss: Loss | None) -> bool:
    """The constant 0 (as in ``sum(losses)``, which starts at 0): a term of nothing, which Pixyz's
    printed formula leaves out too."""
    value = getattr(loss, "original_value", None) if type(loss) is ValueLoss else None
    return isinstance(value, int | float) and value == 0


def _is_scalar(loss: Loss | None) -> bool:
    """A number, a hyperparameter, or an arithmetic of them: a factor that draws no sample."""
    kind = type(loss)
    if kind in (ValueLoss, Parameter):
        return True
    if kind in (AddLoss, SubLoss, MulLoss, DivLoss):
        return _is_scalar(loss.loss1) and _is_scalar(loss.loss2)  # type: ignore[union-attr]
    if kind is NegLoss:
        return _is_scalar(loss.loss1)  # type: ignore[union-attr]
    return False


def _text(term: Loss) -> str:
    """The term's formula without its batch reduction (Pixyz prints that as ``mean(...)``)."""
    while type(term) in (BatchMean, BatchSum):
        term = term.loss1
    return loss_text(term)
