"""How a joint distribution and a loss are printed: in the order the model writes them.

Pixyz lists a product's variables in the order its graph met them, so that JMVAE's generative model
on three modalities prints as ``p(t,z,s,m) = p(m|z)p(s|z)p(t|z)p(z)``. Here the joint names them as
the factorisation does, left to right: ``p(m,s,t,z) = p(m|z)p(s|z)p(t|z)p(z)``.

Pixyz prints a loss through SymPy, which sorts the terms of every sum and the factors of every
product: TELBO's ``ELBO(x,w) + ELBO(x) + ELBO(w)`` printed as its four KL terms, then its four
expectations, and ``beta * KL`` as ``KL beta``. :func:`loss_text` prints the terms as the expression
was written, left to right (a negated sum with each term negated, as SymPy does). Only the text
changes; the distribution (its graph, its sampling order) and the loss are Pixyz's.
"""

from __future__ import annotations

import sympy
from pixyz.distributions import Distribution
from pixyz.losses.losses import (
    AbsLoss,
    AddLoss,
    BatchMean,
    BatchSum,
    ConstantVar,
    DataParalleledLoss,
    Detach,
    DivLoss,
    Expectation,
    Loss,
    MaxLoss,
    MinLoss,
    MulLoss,
    NegLoss,
    SubLoss,
)
from pixyz.utils import convert_latex_name


def _a_product(distribution: Distribution) -> bool:
    """Whether ``distribution`` is a product of factors that Pixyz prints through its graph (not an
    atomic distribution, nor one that prints itself, such as a product of experts)."""
    return not getattr(distribution, "_atomic", True) and hasattr(distribution, "graph")


def joint_variables(distribution: Distribution) -> list[str]:
    """The variables of ``distribution`` in the order its factorised text names them."""
    if not _a_product(distribution):
        return list(distribution.var)
    factors = reversed(list(distribution.graph.factors(sorted=True)))  # the factorised text's order
    named = [var for factor in factors for var in factor.var]
    return [var for var in named if var in distribution.var]


def joint_prob_text(distribution: Distribution) -> str:
    """``p(m,s,t,z)``: the joint with its variables as :func:`joint_variables` orders them."""
    if not _a_product(distribution):
        return distribution.prob_text
    variables = ",".join(convert_latex_name(var) for var in joint_variables(distribution))
    given = distribution.cond_var
    condition = "|" + ",".join(convert_latex_name(var) for var in given) if given else ""
    return f"{distribution.graph.name}({variables}{condition})"


def joint_text(distribution: Distribution) -> str:
    """``p(m,s,t,z) = p(m|z)p(s|z)p(t|z)p(z)``: Pixyz's ``prob_joint_factorized_and_text`` with the
    joint's variables in the order of its factors (a distribution that prints itself, such as a
    product of experts, keeps its own text)."""
    if not _a_product(distribution):
        return distribution.prob_joint_factorized_and_text
    prob, factorized = joint_prob_text(distribution), distribution.prob_factorized_text
    return prob if prob == factorized else f"{prob} = {factorized}"


def _add(terms: list[sympy.Expr], ordered: bool) -> sympy.Expr:
    """The sum of ``terms``, in this order when ``ordered`` (a sum among them spliced in, without
    parentheses), else SymPy's."""
    if not ordered:
        return sympy.Add(*terms)
    flat = [arg for term in terms for arg in (term.args if isinstance(term, sympy.Add) else (term,))]
    flat = [arg for arg in flat if arg != 0]  # ``sum(losses)`` starts at 0, which SymPy drops too
    if len(flat) < 2:
        return flat[0] if flat else sympy.Integer(0)
    return sympy.Add(*flat, evaluate=False)


def _neg(term: sympy.Expr, ordered: bool) -> sympy.Expr:
    """``-term``: over a sum, each of its terms negated in place; a product's leading number negated
    (``-(-a)`` is ``a``, ``-(2 a)`` is ``-2 a``)."""
    if not ordered or isinstance(term, sympy.Number):
        return -term
    if isinstance(term, sympy.Add):
        return _add([_neg(arg, ordered) for arg in term.args], ordered)
    if isinstance(term, sympy.Mul) and isinstance(term.args[0], sympy.Number):
        return _mul(-term.args[0], _product(term.args[1:]))
    return sympy.Mul(sympy.Integer(-1), term, evaluate=False)


def _product(factors: tuple[sympy.Expr, ...]) -> sympy.Expr:
    return factors[0] if len(factors) == 1 else sympy.Mul(*factors, evaluate=False)


def _mul(first: sympy.Expr, second: sympy.Expr) -> sympy.Expr:
    """``first * second`` in this order, but a number first, as mathematics writes a coefficient
    (``KL * 2`` as ``2 KL``); a factor 1 left out and -1 as a minus sign, as SymPy does."""
    if isinstance(second, sympy.Number) and not isinstance(first, sympy.Number):
        first, second = second, first
    if first == 1:
        return second
    if first == -1:
        return _neg(second, ordered=True)
    return sympy.Mul(first, second, evaluate=False)


def _symbol(loss: Loss, ordered: bool) -> sympy.Expr:
    """``loss`` as a SymPy expression: unevaluated, in the order it was written, when ``ordered``;
    else evaluated as Pixyz's own ``loss._symbol`` is."""
    kind = type(loss)
    if kind in (AddLoss, SubLoss, MulLoss, DivLoss):
        first, second = _symbol(loss.loss1, ordered), _symbol(loss.loss2, ordered)
        if kind is AddLoss:
            return _add([first, second], ordered)
        if kind is SubLoss:
            return _add([first, _neg(second, ordered)], ordered)
        if not ordered:
            return first / second if kind is DivLoss else first * second
        if kind is DivLoss:
            if isinstance(second, sympy.Number) and second < 0:  # a / (-2) as -a/2
                return _neg(_mul(first, sympy.Pow(-second, -1, evaluate=False)), ordered)
            second = sympy.Pow(second, -1, evaluate=False)
        return _mul(first, second)
    if kind is NegLoss:
        return _neg(_symbol(loss.loss1, ordered), ordered)
    if kind in _WRAPPED:
        return sympy.Symbol(_WRAPPED[kind].format(_latex(loss.loss1, ordered)))
    if kind in (MinLoss, MaxLoss):
        name = "min" if kind is MinLoss else "max"
        first, second = _latex(loss.loss1, ordered), _latex(loss.loss2, ordered)
        return sympy.Symbol(rf"{name} \left({first}, {second}\right)")
    if kind is Expectation:
        return sympy.Symbol(rf"\mathbb{{E}}_{{{loss.p.prob_text}}} \left[{_latex(loss.f, ordered)} \right]")
    if kind is ConstantVar:
        return _symbol(loss.base_loss, ordered)
    if kind is DataParalleledLoss:
        return _symbol(loss.paralleled.module, ordered)
    symbol = loss._symbol  # a term that prints itself: a KL, a log-density, a number
    if isinstance(symbol, str):  # a loss of one's own whose symbol is its LaTeX text
        return sympy.Symbol(symbol)
    return sympy.sympify(symbol)


#: Pixyz's one-argument wrappers, printed as Pixyz prints them around the wrapped loss
_WRAPPED = {
    AbsLoss: "|{}|",
    BatchMean: "mean \\left({} \\right)",
    BatchSum: "sum \\left({} \\right)",
    Detach: "detach \\left({} \\right)",
}


def _latex(loss: Loss, ordered: bool) -> str:
    return sympy.latex(_symbol(loss, ordered), order="none" if ordered else None)


def loss_text(loss: Loss) -> str:
    """``loss`` in LaTeX as Pixyz prints it, but with its sums and products in the order they were
    written: ``E(q, -LogProb(p_x)) + Parameter("beta") * KullbackLeibler(q, prior)`` prints as
    ``\\mathbb{E}_{q(z|x)} \\left[- \\log p(x|z) \\right] + \\beta D_{KL} \\left[q(z|x)||p(z) \\right]``
    (Pixyz: the KL term first, then ``\\beta``)."""
    return _latex(loss, ordered=True)


__all__ = ["joint_prob_text", "joint_text", "joint_variables", "loss_text"]
