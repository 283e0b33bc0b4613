"""A loss expression as the sum of its terms, each one a Pixyz expression of its own.

A zoo objective is a weighted sum: the VAE's ``E_q[-log p(x|z)] + beta KL[q(z|x)||p(z)]``, MFM's
reconstruction, MMD and surrogate terms (eq. 4, 5), JMVAE-kl's ELBO and ``alpha`` times two KL
terms (eq. 11). :func:`additive_terms` splits an expression at its sums: through ``+``, ``-``,
negation, the batch mean and sum, and a scalar factor (a number, a hyperparameter such as ``beta``,
or an arithmetic of them), which it distributes over a sum (``alpha (KL_1 + KL_2)`` gives
``alpha KL_1`` and ``alpha KL_2``). Everything else (an expectation, a KL, the zoo's own losses)
is one term.

The terms keep the expression's left-to-right order, which is the order in which Pixyz evaluates
a sum (each operand with its own draws): evaluated one after the other from the same random state,
they draw the same samples as the whole expression, and their values add up to its value.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixyz.losses.losses import (
    AddLoss,
    BatchMean,
    BatchSum,
    DivLoss,
    Loss,
    MulLoss,
    NegLoss,
    Parameter,
    SubLoss,
    ValueLoss,
)

__all__ = ["Term", "additive_terms"]


@dataclass(frozen=True)
class Term:
    """One term of a loss: ``loss`` evaluates it (with the batch reduction of the expression it came
    from), ``text`` is its formula as Pixyz prints it, without that reduction."""

    text: str
    loss: Loss


def additive_terms(loss: Loss) -> list[Term]:
    """The terms whose sum is ``loss``, in the expression's order (module docstring)."""
    return [Term(_text(term), term) for term in _split(loss)]


def _split(loss: Loss) -> list[Loss]:
    kind = type(loss)
    if kind is AddLoss and loss.loss1 is not None and loss.loss2 is not None:
        return _split(loss.loss1) + _split(loss.loss2)
    if kind is SubLoss and loss.loss1 is not None and loss.loss2 is not None:
        return _split(loss.loss1) + [-term for term in _split(loss.loss2)]
    if kind is NegLoss:
        return [-term for term in _split(loss.loss1)]
    if kind is BatchMean:
        return [term.mean() for term in _split(loss.loss1)]
    if kind is BatchSum:
        return [term.sum() for term in _split(loss.loss1)]
    if kind is MulLoss and _is_scalar(loss.loss1):
        return [loss.loss1 * term for term in _split(loss.loss2)]
    if kind is MulLoss and _is_scalar(loss.loss2):
        return [term * loss.loss2 for term in _split(loss.loss1)]
    if kind is DivLoss and _is_scalar(loss.loss2):
        return [term / loss.loss2 for term in _split(loss.loss1)]
    return [loss]


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
    return term.loss_text
