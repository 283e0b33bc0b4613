r"""Maximum mean discrepancy between an encoder's aggregate posterior and a prior (WAE-MMD).

The Wasserstein autoencoder (Tolstikhin et al. 2018) and MFM (Tsai et al. 2019, eq. 4) penalise
the distance between the aggregate posterior :math:`q(z) = \mathbb{E}_{p(X)}[q(z|X)]` and the
prior :math:`p(z)` by the squared MMD, estimated from the batch of codes :math:`q_i` (one per
example, :math:`n` rows) and :math:`n` fresh prior samples :math:`p_i`:

.. math::
    \widehat{\mathrm{MMD}}^2 = \frac{1}{n^2}\sum_{i,j} k(p_i, p_j) + \frac{1}{n^2}\sum_{i,j} k(q_i, q_j)
    - \frac{2}{n^2}\sum_{i,j} k(p_i, q_j)

This is the *biased* estimator (a V-statistic: the diagonal terms :math:`k(a_i, a_i) = 1` are
included), the one the MFM authors use. It is :math:`\geq 0` and is 0 only when the two samples
coincide. The kernel is theirs, :math:`k(a, b) = \exp(-\lVert a - b\rVert^2 / s^2)` with
bandwidth :math:`s = d`, the latent dimension (their ``compute_kernel`` divides the mean over the
:math:`d` dimensions of the squared difference by :math:`d` again).

Pixyz 0.3.3's ``pixyz.losses.MMD`` computes a different quantity: it divides the kernel sums by
:math:`d(d-1)`, :math:`d(d-1)` and :math:`d^2` with :math:`d` the *feature dimension* of the
samples instead of the batch size (and includes the diagonal in the "unbiased" terms), and its
default kernel is :math:`\exp(-\lVert a - b\rVert^2 / 2)`. Its value is therefore about
:math:`n^2/d^2` times an MMD estimate (exactly :math:`\frac{n^2}{d(d-1)}(\bar k_{pp} + \bar k_{qq})
- \frac{2n^2}{d^2}\bar k_{pq}` with :math:`\bar k` the means over all pairs), so its scale moves
with the batch size; :class:`MaximumMeanDiscrepancy` here divides by :math:`n^2`.
"""

from __future__ import annotations

import sympy
import torch
from pixyz.distributions.distributions import Distribution
from pixyz.losses.losses import Loss
from pixyz.utils import convert_latex_name

__all__ = ["MaximumMeanDiscrepancy", "biased_mmd2", "gaussian_kernel"]


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``k(a_i, b_j) = exp(-||a_i - b_j||^2 / bandwidth^2)`` for rows of ``a`` (n, d) and ``b`` (m, d)."""
    squared = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    return torch.exp(-squared / bandwidth**2)


def biased_mmd2(a: torch.Tensor, b: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
    """The biased (V-statistic) estimate of MMD^2 between the samples ``a`` (n, d) and ``b`` (m, d).

    ``bandwidth`` defaults to ``d`` (the MFM authors' kernel). Samples of more than one feature
    axis are flattened to (n, d).
    """
    a, b = a.flatten(1), b.flatten(1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"MMD between samples of different dimensions: {tuple(a.shape)} and {tuple(b.shape)}"
        )
    s = float(a.shape[1]) if bandwidth is None else float(bandwidth)
    if not s > 0:
        raise ValueError(f"the kernel bandwidth must be > 0, got {bandwidth}")
    return (
        gaussian_kernel(a, a, s).mean()
        + gaussian_kernel(b, b, s).mean()
        - 2 * gaussian_kernel(a, b, s).mean()
    )


class MaximumMeanDiscrepancy(Loss):
    r""":math:`\mathrm{MMD}^2[q(z) \| p(z)]`: the aggregate posterior of ``q`` against the prior ``p``.

    Evaluated on a batch, it reads the codes :math:`z_i \sim q(z|x_i)` (the encoder's output; a
    deterministic encoder gives its codes, a stochastic one one sample per example), draws as many
    samples of ``p`` and returns :func:`biased_mmd2` of the two (a scalar: it is a property of the
    batch, not of one example). Gradients reach the encoder through the codes.

    Args:
        q: the encoder, one latent variable given the data (e.g. ``q(z_y|x_1..x_M)``).
        p: the prior over the same variable, without conditioning variables.
        bandwidth: the kernel's :math:`s` in :math:`\exp(-\lVert a-b\rVert^2/s^2)`; ``None`` (default):
            the latent dimension :math:`d`, as in the MFM authors' code.
    """

    def __init__(self, q: Distribution, p: Distribution, bandwidth: float | None = None) -> None:
        if len(q.var) != 1 or list(q.var) != list(p.var):
            raise ValueError(
                f"the MMD compares one latent variable: {q.prob_text} and {p.prob_text} must be over the "
                "same single variable"
            )
        if p.cond_var:
            raise ValueError(f"the prior {p.prob_text} must have no conditioning variables")
        if bandwidth is not None and not float(bandwidth) > 0:
            raise ValueError(f"the kernel bandwidth must be > 0, got {bandwidth}")
        super().__init__(input_var=list(q.input_var))
        self.q, self.p = q, p
        self.bandwidth = None if bandwidth is None else float(bandwidth)

    def draw_prior(self, n: int) -> torch.Tensor:
        """``n`` samples of the prior (on the prior's device)."""
        return self.p.sample(batch_n=n, return_all=False)[self.p.var[0]]

    def forward(self, x_dict: dict, **kwargs) -> tuple[torch.Tensor, dict]:
        (var,) = self.q.var
        codes = self.q.sample({k: x_dict[k] for k in self.q.input_var}, return_all=False)[var]
        prior = self.draw_prior(len(codes)).to(codes)
        return biased_mmd2(prior, codes, self.bandwidth), {}

    @property
    def _symbol(self) -> sympy.Symbol:
        z = convert_latex_name(self.q.var[0])
        return sympy.Symbol(rf"\mathrm{{MMD}}^2\left[{self.q.name}({z}) \| {self.p.name}({z}) \right]")
