"""Importance weights of proposals that impute missing modalities (iterative sampling, JMVAE eq. 6).

Toy JMVAEs with a one-dimensional latent, whose networks are set by hand, so that ``log p(w)`` of
the label ``w`` alone is known by quadrature. The proposal ``q(z|w)`` imputes ``x`` by a Markov
chain; the bounds are right only if each sample is scored under the imputation that drew it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions.iterative_sampling import IterativeSampling
from pixyz_zoo.evaluation import evaluate_log_likelihood, iwae_bound, log_weights
from pixyz_zoo.evaluation.multimodal import evaluate_multimodal, subset_log_likelihood
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import JMVAE, HierarchicalJMVAE

X = Modality("x", (1,), "gaussian")
W = Modality("w", (3,), "categorical", labels=("a", "b", "c"))
SCALE_X = 0.5  # p(x|z) = N(z, 0.5^2)
STEPS = 5


def raw_scale(scale: float, like: torch.Tensor) -> torch.Tensor:
    """The encoder output that the softplus (+ 1e-4) turns into ``scale``."""
    return torch.full_like(like, math.log(math.expm1(scale - 1e-4)))


class Encoder(nn.Module):
    """``q(z|x, w) = N(0.5 x + 0.3 (w_c - w_a), 1)``: it depends on the imputed ``x``."""

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        loc = 0.5 * x + 0.3 * (w[:, 2:] - w[:, :1])
        return torch.cat([loc, raw_scale(1.0, loc)], dim=1)


class Identity(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z


class LabelLogits(nn.Module):
    """``p(w|z) = softmax(-2z, 0, 2z)``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([-2 * z, torch.zeros_like(z), 2 * z], dim=1)


class Shifted(nn.Module):
    """``p(z_1|z_2) = N(z_2, scale^2)``."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, z2: torch.Tensor) -> torch.Tensor:
        return torch.cat([z2, raw_scale(self.scale, z2)], dim=1)


def toy_jmvae() -> JMVAE:
    model = JMVAE({"x": X, "w": W}, z_dim=1, hidden=[4], decoder_scale=SCALE_X, iterative_steps=STEPS)
    model.q.network = Encoder()
    model.decoders["x"].network = Identity()
    model.decoders["w"].network = LabelLogits()
    return model


def toy_hierarchical(scale_z1: float = 0.5) -> HierarchicalJMVAE:
    model = HierarchicalJMVAE(
        {"x": X, "w": W}, z_dim=1, hidden=[4], decoder_scale=SCALE_X, iterative_steps=STEPS
    )
    model.q1.network = Encoder()
    model.q2.network = Encoder()
    model.p_z1.network = Shifted(scale_z1)
    model.decoders["x"].network = Identity()
    model.decoders["w"].network = LabelLogits()
    return model


def exact_log_p_w(latent_variance: float = 1.0) -> torch.Tensor:
    """``log p(w) = log int N(z; 0, v) softmax(-2z, 0, 2z)_w dz`` for each class, by quadrature."""
    z = torch.linspace(-15.0, 15.0, 30001, dtype=torch.float64)[:, None]
    log_prior = torch.distributions.Normal(0.0, math.sqrt(latent_variance)).log_prob(z)
    log_label = torch.log_softmax(LabelLogits()(z), dim=1)
    return torch.logsumexp(log_prior + log_label, dim=0) + math.log(float(z[1] - z[0]))


def per_class(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 3).mean(dim=0).double()


def test_iwae_of_an_imputed_subset_matches_the_quadrature() -> None:
    """The weights p(z) p(w|z) / q(z|w, x_N) with z and q from one chain: IWAE-2000 is within
    0.05 nats of log p(w). Scoring each sample under a second chain's imputation (two calls of
    iterative sampling) overestimates log p(w) by 0.3 to 0.6 nats here, above the likelihood
    a lower bound may not exceed."""
    torch.manual_seed(0)
    model = toy_jmvae()
    w = torch.eye(3).repeat(10, 1)  # 10 copies of each class
    log_w = log_weights(model, {"w": w}, k=2000, given=["w"], observed=["w"])
    exact = exact_log_p_w()
    iwae, elbo = per_class(iwae_bound(log_w)), per_class(log_w.mean(dim=0))
    assert torch.allclose(iwae, exact, atol=0.05), (iwae, exact)
    assert (elbo < iwae - 0.3).all()  # a loose proposal: the ELBO is well below


def test_hierarchical_jmvae_subset_likelihood_completes_the_lower_latent() -> None:
    """Given ``w`` alone the hierarchical JMVAE infers ``z_2`` by iterative sampling; ``z_1`` is
    drawn from ``p(z_1|z_2)`` (eq. A.2), which cancels from the weight. With ``p(z_1|z_2) =
    N(z_2, 0.5^2)``, ``z_1 ~ N(0, 1.25)`` and log p(w) is a one-dimensional integral."""
    torch.manual_seed(2)
    model = toy_hierarchical(scale_z1=0.5)
    w = torch.eye(3).repeat(10, 1)
    log_w = log_weights(model, {"w": w}, k=2000, given=["w"], observed=["w"])
    exact = exact_log_p_w(latent_variance=1.0 + 0.5**2)
    assert torch.allclose(per_class(iwae_bound(log_w)), exact, atol=0.05)
    # the public entry point, on a dataset: no KeyError for the latent z1 the proposal lacks
    data = MultimodalDataset(
        "toy", {"x": torch.randn(30, 1), "w": torch.eye(3).repeat(10, 1)}, {"x": X, "w": W}
    )
    result = subset_log_likelihood(model, data, ["w"], k=50, batch_size=16)
    assert math.isfinite(result["elbo"]) and result["iwae_50"] > result["elbo"]
    assert result["iwae_50"] < float(exact.mean()) + 0.1


def test_iterative_sampling_scores_a_sample_under_its_own_imputation() -> None:
    torch.manual_seed(3)
    model = toy_jmvae()
    q = model.inference_for(["w"])
    assert isinstance(q, IterativeSampling) and q.random_parameters
    w = torch.eye(3).repeat(4, 1)
    torch.manual_seed(4)
    z, log_q = q.sample_with_log_prob({"w": w})
    # the same chain again (same seed): the same parameters, so the same sample and density
    torch.manual_seed(4)
    params = q.get_params({"w": w})
    normal = torch.distributions.Normal(params["loc"], params["scale"])
    assert torch.allclose(normal.log_prob(z).sum(dim=1), log_q)
    assert z.shape == (12, 1) and log_q.shape == (12,)


def test_evaluate_multimodal_records_a_failing_subset_and_goes_on(monkeypatch) -> None:
    model = toy_jmvae()
    data = MultimodalDataset(
        "toy", {"x": torch.randn(12, 1), "w": torch.eye(3).repeat(4, 1)}, {"x": X, "w": W}
    )
    original = model.inference_for

    def broken(given):
        if list(given) == ["x"]:
            raise RuntimeError("no inference from x in this test")
        return original(given)

    monkeypatch.setattr(model, "inference_for", broken)
    errors: dict[str, str] = {}
    with pytest.warns(UserWarning, match=r"likelihood\[x\].*no inference from x"):
        results = evaluate_multimodal(
            model, data, data, {}, metrics=["likelihood"], k=4, batch_size=8, errors=errors
        )
    assert math.isnan(results["elbo[x]"]) and math.isnan(results["iwae[x]"])
    assert math.isfinite(results["iwae[w]"]) and math.isfinite(results["iwae[x,w]"])
    assert errors == {"likelihood[x]": "RuntimeError: no inference from x in this test"}


def test_evaluation_counts_the_whole_dataset() -> None:
    model = toy_jmvae()
    data = MultimodalDataset(
        "toy", {"x": torch.randn(7, 1), "w": torch.eye(3)[[0, 1, 2, 0, 1, 2, 0]]}, {"x": X, "w": W}
    )
    result = evaluate_log_likelihood(model, data, k=3, batch_size=3)
    assert result["examples"] == 7 and result["iwae_3"] >= result["elbo"]
