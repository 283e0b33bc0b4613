"""How a joint distribution is printed: its variables in the order its factorisation names them.

Pixyz lists a product's variables in the order its graph met them, so that JMVAE's generative model
on three modalities prints as ``p(t,z,s,m) = p(m|z)p(s|z)p(t|z)p(z)``. Here the joint names them as
the factorisation does, left to right: ``p(m,s,t,z) = p(m|z)p(s|z)p(t|z)p(z)``. Only the text
changes; the distribution (its graph, its sampling order) is Pixyz's.
"""

from __future__ import annotations

from pixyz.distributions import Distribution
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


__all__ = ["joint_prob_text", "joint_text", "joint_variables"]
