"""Decoders ``p(x|z)`` for each likelihood family of a modality; the network is an argument.

Every decoder's network maps the conditioning tensors to the modality's shape (two of them for
a Gaussian or Laplace with learned per-example scale). ``decoder_for`` picks the class from a
:class:`~pixyz_zoo.modalities.Modality` declaration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from pixyz.distributions import Bernoulli, Laplace, Normal
from pixyz.distributions.distributions import DistributionBase
from torch import distributions as td
from torch import nn
from torch.distributions.utils import broadcast_all

from pixyz_zoo.distributions.shared_parameters import SharedParameters, feature_sum
from pixyz_zoo.modalities import Modality, variable_name, variable_names


class _NetworkDecoder(SharedParameters):
    """Mixin: ``forward`` runs the network on the conditioning variables in order."""

    network: nn.Module
    cond_var: list[str]

    def _features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.network(*(inputs[name] for name in self.cond_var))


class BernoulliDecoder(_NetworkDecoder, Bernoulli):
    """``p(x|z) = Bernoulli(x; sigmoid(f(z)))``, parameterised by logits.

    Targets may be grey levels in [0, 1] (``--binarize none``): the log-likelihood is then the
    usual cross-entropy, so argument validation is off.
    """

    def __init__(self, network: nn.Module, var: str, cond_var: Sequence[str] = ("z",), name: str = "p"):
        super().__init__(var=[variable_name(var)], cond_var=variable_names(cond_var), name=name)
        self.network = network

    @property
    def params_keys(self) -> list[str]:
        return ["logits"]

    @property
    def distribution_torch_class(self):
        return partial(td.Bernoulli, validate_args=False)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self._features(inputs)}

    def summed_log_prob(self, value: torch.Tensor, feature_dims: Sequence[int] | None = None) -> torch.Tensor:
        """``torch.distributions.Bernoulli.log_prob`` summed over the features, negated after the sum
        rather than per element: the same numbers (negation is exact), one element-wise op fewer
        forward and backward."""
        logits, value = broadcast_all(self.dist.logits, value)
        return -feature_sum(F.binary_cross_entropy_with_logits(logits, value, reduction="none"), feature_dims)


class CategoricalDecoder(_NetworkDecoder, DistributionBase):
    """``p(w|z) = Cat(w; softmax(f(z)))`` over one-hot vectors (the JMVAE label decoder)."""

    def __init__(self, network: nn.Module, var: str, cond_var: Sequence[str] = ("z",), name: str = "p"):
        super().__init__(var=[variable_name(var)], cond_var=variable_names(cond_var), name=name)
        self.network = network

    @property
    def params_keys(self) -> list[str]:
        return ["logits"]

    @property
    def distribution_torch_class(self):
        return partial(td.OneHotCategorical, validate_args=False)

    @property
    def distribution_name(self) -> str:
        return "Categorical"

    @property
    def has_reparam(self) -> bool:
        return False

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self._features(inputs)}


def _broadcast_scalar(tensor: torch.Tensor) -> torch.Tensor | None:
    """The one value behind ``tensor`` when it is a 0-d tensor expanded to a shape (every stride 0, as
    a fixed decoder scale is), as a 0-d view; else None."""
    if tensor.dim() and not any(tensor.stride()):
        return tensor.as_strided((), ())
    return None


def _summed(values: torch.Tensor, feature_dims: Sequence[int] | None) -> tuple[torch.Tensor, int]:
    """``values`` summed over ``feature_dims`` and how many elements each sum adds up."""
    total = feature_sum(values, feature_dims)
    return total, values.numel() // max(total.numel(), 1)


class _FixedScaleLaplace(td.Laplace):
    """``torch.distributions.Laplace`` whose log-density takes the log of a fixed scale once, not once
    per element: the same numbers (the same operations on the same values), fewer element-wise ops."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        scale = _broadcast_scalar(self.scale)
        if scale is None:
            return super().log_prob(value)
        return -torch.log(2 * scale) - torch.abs(value - self.loc) / scale

    def summed_log_prob(self, value: torch.Tensor, feature_dims: Sequence[int] | None) -> torch.Tensor:
        """``log_prob`` summed over the features, with a fixed scale as ``-sum|x - mu| / b - n log 2b``:
        the division and the constant once per example rather than per element (the same sum up to
        float rounding; two element-wise ops fewer forward and backward)."""
        scale = _broadcast_scalar(self.scale)
        if scale is None:
            return feature_sum(self.log_prob(value), feature_dims)
        distance, count = _summed(torch.abs(value - self.loc), feature_dims)
        return -distance / scale - count * torch.log(2 * scale)


class _FixedScaleNormal(td.Normal):
    """``torch.distributions.Normal`` whose log-density squares and takes the log of a fixed scale once,
    not once per element (same numbers as :class:`torch.distributions.Normal`)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        scale = _broadcast_scalar(self.scale)
        if scale is None:
            return super().log_prob(value)
        return -((value - self.loc) ** 2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))

    def summed_log_prob(self, value: torch.Tensor, feature_dims: Sequence[int] | None) -> torch.Tensor:
        """``log_prob`` summed over the features, with a fixed scale as
        ``-sum (x - mu)^2 / 2 sigma^2 - n (log sigma + log sqrt(2 pi))`` (the same sum up to float
        rounding; element-wise, only the squared difference)."""
        scale = _broadcast_scalar(self.scale)
        if scale is None:
            return feature_sum(self.log_prob(value), feature_dims)
        squares, count = _summed((value - self.loc) ** 2, feature_dims)
        return -squares / (2 * scale**2) - count * (scale.log() + math.log(math.sqrt(2 * math.pi)))


class _LocScaleDecoder(_NetworkDecoder):
    """Shared body of the Gaussian and Laplace decoders: fixed, learned or per-example scale."""

    default_scale: float

    def __init__(
        self,
        network: nn.Module,
        var: str,
        shape: Sequence[int],
        cond_var: Sequence[str] = ("z",),
        name: str = "p",
        scale: str | float | None = None,
    ) -> None:
        super().__init__(var=[variable_name(var)], cond_var=variable_names(cond_var), name=name)
        self.network = network
        self._init_scale(self.default_scale if scale is None else scale, shape)

    def _init_scale(self, scale: str | float, shape: Sequence[int]) -> None:
        if scale == "learned":
            self.log_scale = nn.Parameter(torch.zeros(*shape))
        elif scale == "per-example":
            pass
        elif isinstance(scale, (int, float)) and scale > 0:
            self.register_buffer("fixed_scale", torch.tensor(float(scale)))
        else:
            raise ValueError(f"scale must be a positive number, 'learned' or 'per-example', got {scale!r}")
        self.scale_mode = scale

    def summed_log_prob(self, value: torch.Tensor, feature_dims: Sequence[int] | None = None) -> torch.Tensor:
        summed = getattr(self.dist, "summed_log_prob", None)  # the fixed-scale densities' own sum
        if summed is None:
            return super().summed_log_prob(value, feature_dims)
        return summed(value, feature_dims)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self._features(inputs)
        if self.scale_mode == "per-example":
            loc, raw = h.chunk(2, dim=1)
            return {"loc": loc, "scale": F.softplus(raw) + 1e-3}
        if self.scale_mode == "learned":
            return {"loc": h, "scale": self.log_scale.exp().expand_as(h)}
        return {"loc": h, "scale": self.fixed_scale.expand_as(h)}


class GaussianDecoder(_LocScaleDecoder, Normal):
    """``p(x|z) = N(x; f(z), sigma^2)`` with sigma fixed, learned per feature, or per example.

    With ``scale="per-example"`` the network outputs twice the modality's channels.
    """

    default_scale = 1.0

    @property
    def distribution_torch_class(self):
        return partial(_FixedScaleNormal, validate_args=False)  # the scale is positive by construction


class LaplaceDecoder(_LocScaleDecoder, Laplace):
    """``p(x|z) = Laplace(x; f(z), b)`` with b fixed, learned per feature, or per example."""

    default_scale = 0.1

    @property
    def distribution_torch_class(self):
        return partial(_FixedScaleLaplace, validate_args=False)  # the scale is positive by construction


def decoder_for(
    modality: Modality,
    network: nn.Module,
    cond_var: Sequence[str] = ("z",),
    name: str = "p",
    scale: str | float | None = None,
) -> DistributionBase:
    """The decoder ``p(modality|cond_var)`` of the modality's declared likelihood family; ``scale``
    is that of a Gaussian or Laplace decoder (a Bernoulli or categorical one has none)."""
    if modality.likelihood == "bernoulli":
        return BernoulliDecoder(network, modality.name, cond_var, name)
    if modality.likelihood == "categorical":
        return CategoricalDecoder(network, modality.name, cond_var, name)
    cls = GaussianDecoder if modality.likelihood == "gaussian" else LaplaceDecoder
    return cls(network, modality.name, modality.shape, cond_var, name, scale)


def decoder_output_channels(modality: Modality, scale: str | float | None = None) -> int:
    """How many copies of the modality's shape the decoder network must output."""
    return 2 if scale == "per-example" and modality.likelihood in ("gaussian", "laplace") else 1
