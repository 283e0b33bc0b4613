"""Evaluate a Pixyz loss expression without Pixyz's per-node call overhead.

``loss.eval(x)`` walks the expression at every call: each node checks its inputs, filters the
dictionary it is given, goes through ``nn.Module.__call__`` and returns a dictionary of samples
besides its value; ``Expectation`` stacks its one sample's value and takes the mean; the analytic
KL builds its feature dimensions with ``torch.arange`` and reads them back one by one. A training
step pays for all of it and uses only the value.

:func:`loss_evaluator` walks the expression once and returns a function that computes the same
value, the same operations in the same order, on the same tensors: the samples are drawn in
Pixyz's order, each node computes what its ``forward`` computes, and a node this module does not
know (the zoo's own ``Loss`` classes, a subclass that overrides ``forward``) is evaluated by its own
``eval``. The expression object is untouched: ``print(model)`` shows what is evaluated.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from pixyz.losses.divergences import AnalyticalKullbackLeibler
from pixyz.losses.losses import (
    AbsLoss,
    AddLoss,
    BatchMean,
    BatchSum,
    Detach,
    DivLoss,
    Expectation,
    Loss,
    MaxLoss,
    MinLoss,
    MulLoss,
    NegLoss,
    Parameter,
    SubLoss,
    ValueLoss,
)
from pixyz.losses.pdf import LogProb
from pixyz.utils import get_dict_values
from torch.distributions import kl_divergence

__all__ = ["loss_evaluator"]

Node = Callable[[dict], Any]

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    AddLoss: operator.add,
    SubLoss: operator.sub,
    MulLoss: operator.mul,
    DivLoss: operator.truediv,
    MinLoss: torch.min,
    MaxLoss: torch.max,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    NegLoss: operator.neg,
    AbsLoss: lambda value: value.abs(),
    BatchMean: lambda value: value.mean(),
    BatchSum: lambda value: value.sum(),
    Detach: lambda value: value.detach(),
}


def loss_evaluator(loss: Loss) -> Callable[..., Any]:
    """A function computing ``loss.eval(x_dict)``, the same value to the bit, with the expression
    walked once here instead of at each call. With keyword arguments (Pixyz passes them on to every
    node) or inputs missing, it calls ``loss.eval`` itself."""
    node = _compile(loss)
    required = frozenset(loss.input_var)

    def evaluate(x_dict: dict, **kwargs: Any) -> Any:
        if kwargs or not required <= x_dict.keys():
            return loss.eval(x_dict, **kwargs)  # Pixyz's own evaluation (and its error message)
        return node(x_dict)

    return evaluate


def _compile(loss: Any) -> Node:
    """The function that evaluates the node ``loss`` (types matched exactly: a subclass may
    override ``forward``)."""
    kind = type(loss)
    if kind in _BINARY:
        return _binary(_BINARY[kind], _operand(loss.loss1), _operand(loss.loss2))
    if kind in _UNARY:
        return _unary(_UNARY[kind], _compile(loss.loss1))
    if kind is Parameter:
        name = loss.input_var[0]
        return lambda x: x[name]
    if kind is ValueLoss:
        return lambda x: loss.value
    if kind is Expectation:
        return _expectation(loss)
    if kind is LogProb:
        return _log_prob(loss)
    if kind is AnalyticalKullbackLeibler and all(
        hasattr(d, "distribution_torch_class") for d in (loss.p, loss.q)
    ):
        return _analytical_kl(loss)
    return loss.eval


def _operand(loss: Any) -> Node:
    """An operand of a binary node: a loss, or nothing (Pixyz then uses 0)."""
    return (lambda x: 0) if loss is None else _compile(loss)


def _binary(op: Callable[[Any, Any], Any], left: Node, right: Node) -> Node:
    return lambda x: op(left(x), right(x))  # left first, as Pixyz (the order of the samples drawn)


def _unary(op: Callable[[Any], Any], inner: Node) -> Node:
    return lambda x: op(inner(x))


def _expectation(loss: Expectation) -> Node:
    """``Expectation.forward``: all samples drawn first, then ``f`` on each; the mean over samples
    (with one sample, its value itself: the mean of one value is that value, to the bit)."""
    p, f, reparam, n = loss.p, _compile(loss.f), loss.reparam, loss.sample_shape.numel()

    def expectation(x: dict) -> Any:
        samples = [p.sample(x, reparam=reparam, return_all=False) for _ in range(n)]
        values = [f({**x, **sample}) for sample in samples]
        return values[0] if n == 1 else torch.stack(values).mean(dim=0)

    return expectation


def _log_prob(loss: LogProb) -> Node:
    p, sum_features, feature_dims = loss.p, loss.sum_features, loss.feature_dims
    return lambda x: p.get_log_prob(x, sum_features=sum_features, feature_dims=feature_dims)


def _analytical_kl(loss: AnalyticalKullbackLeibler) -> Node:
    """``AnalyticalKullbackLeibler.forward`` with the feature dimensions as Python integers."""
    p, q, dim = loss.p, loss.q, loss.dim

    def kl(x: dict) -> torch.Tensor:
        p.set_dist(get_dict_values(x, p.input_var, True))
        q.set_dist(get_dict_values(x, q.input_var, True))
        divergence = kl_divergence(p.dist, q.dist)
        if dim:
            return torch.sum(divergence, dim=dim)
        return torch.sum(divergence, dim=list(range(1, divergence.dim())))

    return kl
