r"""Deterministic encoders (point masses) and decoders that read factor features.

A Wasserstein autoencoder (Tolstikhin et al. 2018) and MFM (Tsai et al. 2019, sec. 2.2) infer the
latent codes deterministically, :math:`q(z|x) = \delta(z - E(x))`. :class:`DeterministicEncoder`
is that encoder as a Pixyz ``Deterministic`` distribution: it samples its codes (no log-density),
so it goes in ``Expectation`` and in products ``q(z_1|x) q(z_2|x)`` like any encoder, and inside
``shared_parameters()`` its network runs once per loss evaluation however many terms read the
codes. One network may give several latents at once (``var=["z_y", "z_a"]``, ``sizes=[8, 4]``).

:class:`FactorDecoderNet` is the network of a decoder ``p(x|z_1..z_k)`` built as MFM's
:math:`F(f_1, .., f_k)` with :math:`f_i = \mathrm{MLP}_i(z_i)`: the per-factor feature networks
(shared between the decoders that read the same factor) and a head on their concatenation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from pixyz.distributions import Deterministic
from torch import nn

from pixyz_zoo.distributions.networks import MLP
from pixyz_zoo.distributions.shared_parameters import SharedParameters

__all__ = ["DeterministicEncoder", "FactorDecoderNet", "factor_feature_net"]


class _CodesAsParameters(Deterministic):
    """A ``Deterministic`` whose codes are its "parameters", so ``SharedParameters`` can memoise them."""

    def get_params(self, params_dict: dict | None = None, **kwargs) -> dict[str, torch.Tensor]:
        return self.forward(**(params_dict or {}))

    def sample(self, x_dict: dict | None = None, return_all: bool = True, **kwargs) -> dict:
        """The codes (``batch_n``, ``reparam`` and other sampling options do not apply)."""
        x_dict = {} if x_dict is None else x_dict
        codes = self.get_params(self._get_input_dict(x_dict))
        return {**x_dict, **codes} if return_all else dict(codes)


class DeterministicEncoder(SharedParameters, _CodesAsParameters):
    """``q(z|x_1..x_n) = delta(z - E(x_1..x_n))``: ``network`` maps the inputs to the codes.

    Args:
        network: maps the conditioning tensors (in ``cond_var`` order) to ``sum(sizes)`` features.
        cond_var: the inputs, e.g. ``["m", "s"]``.
        var: the latent variable, or several latents given by one network.
        sizes: the dimension of each latent of ``var`` (the network's output is split in this order);
            needed only with several latents.
        name: printed name (``q``; ``\\hat{q}`` for a surrogate).
    """

    def __init__(
        self,
        network: nn.Module,
        cond_var: Sequence[str],
        var: str | Sequence[str] = "z",
        sizes: Sequence[int] | None = None,
        name: str = "q",
    ) -> None:
        var = [var] if isinstance(var, str) else list(var)
        if len(var) > 1 and (sizes is None or len(sizes) != len(var)):
            raise ValueError(f"a network giving the latents {var} needs one size per latent, got {sizes}")
        super().__init__(var=var, cond_var=list(cond_var), name=name)
        self.network = network
        self.sizes = None if sizes is None else [int(s) for s in sizes]

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        codes = self.network(*(inputs[name] for name in self.cond_var))
        if len(self.var) == 1:
            return {self.var[0]: codes}
        return dict(zip(self.var, codes.split(self.sizes, dim=-1), strict=True))


def factor_feature_net(z_dim: int, width: int) -> nn.Sequential:
    """``f = ReLU(W_2 ReLU(W_1 z))``: a factor's feature map (two layers of ``width``, as MFM's authors)."""
    return nn.Sequential(MLP(z_dim, width, [width]), nn.ReLU())


class FactorDecoderNet(nn.Module):
    """``F(f_1(z_1), .., f_k(z_k))``: feature networks per factor, then ``head`` on their concatenation.

    ``forward(z_1, .., z_k)`` is what the decoder distribution calls. Inside
    :meth:`reading_features` it takes the features ``f_1, .., f_k`` instead (the head alone), so the
    same decoder distribution gives ``p(x|f)`` for features computed, perturbed or differentiated
    elsewhere (MFM's gradient-based interpretation, sec. 4.2).
    """

    def __init__(self, feature_nets: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.feature_nets = nn.ModuleList(feature_nets)
        self.head = head
        self._features_given = False

    @contextmanager
    def reading_features(self) -> Iterator[None]:
        """Within this block ``forward`` takes the factor features, not the latents."""
        previous, self._features_given = self._features_given, True
        try:
            yield
        finally:
            self._features_given = previous

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self._features_given:
            inputs = tuple(f(z) for f, z in zip(self.feature_nets, inputs, strict=True))
        return self.head(torch.cat([h.flatten(1) for h in inputs], dim=1))
