"""Eq. (11) of the JMVAE paper against linear-Gaussian models where E_q[log p(x~|z)] is exact."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions import GaussianEncoder, decoder_for, standard_normal
from pixyz_zoo.evaluation.conditional import (
    conditional_key,
    conditional_log_likelihood,
    conditional_log_likelihood_batch,
    conditional_log_likelihood_table,
    default_pairs,
)
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import ZooModel

# p(z) = N(0, 1), p(x|z) = N(A z, S^2), p(w|z) = N(B z, T^2)
A, S, B, T = 2.0, 0.5, 1.0, 0.8
X = Modality("x", (1,), "gaussian")
W = Modality("w", (1,), "gaussian")
LOG_2PI = math.log(2 * math.pi)


def _raw(scale: float) -> float:
    """The pre-softplus value GaussianEncoder turns into ``scale``."""
    return math.log(math.expm1(scale - 1e-4))


class ExactPosterior(nn.Module):
    """(loc, raw scale) of the exact Gaussian posterior of z given the named observations."""

    def __init__(self, gains: list[tuple[float, float]]) -> None:
        super().__init__()
        self.gains = gains  # (gain, noise std) of each conditioning variable, in cond_var order
        self.precision = 1.0 + sum(g**2 / n**2 for g, n in gains)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        var = 1.0 / self.precision
        loc = var * sum(g * v / n**2 for (g, n), v in zip(self.gains, inputs, strict=True))
        return torch.cat([loc, torch.full_like(loc, _raw(math.sqrt(var)))], dim=1)

    def moments(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, float]:
        var = 1.0 / self.precision
        return var * sum(g * v / n**2 for (g, n), v in zip(self.gains, inputs, strict=True)), var


class Gain(nn.Module):
    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.gain * z


class TwoModalityModel(ZooModel):
    """A JMVAE-shaped model with exact posteriors q(z|x,w), q(z|x), q(z|w)."""

    def __init__(self) -> None:
        nets = {
            ("x", "w"): ExactPosterior([(A, S), (B, T)]),
            ("x",): ExactPosterior([(A, S)]),
            ("w",): ExactPosterior([(B, T)]),
        }
        self.nets = nets
        self.encoders = {frozenset(k): GaussianEncoder(n, cond_var=list(k)) for k, n in nets.items()}
        p_x = decoder_for(X, Gain(A), scale=S)
        p_w = decoder_for(W, Gain(B), scale=T)
        prior = standard_normal("z", 1)
        q = self.encoders[frozenset("xw")]
        loss = (-p_x.log_prob().expectation(q)).mean()
        super().__init__(
            loss,
            [*self.encoders.values(), p_x, p_w],
            {"x": X, "w": W},
            generative=p_x * p_w * prior,
            inference=q,
        )

    def inference_for(self, given):
        return self.encoders[frozenset(given)]


def expected_log_lik(value: torch.Tensor, gain: float, noise: float, loc, var) -> torch.Tensor:
    """E_{z ~ N(loc, var)}[log N(value; gain z, noise^2)] in closed form."""
    return (
        -0.5 * (LOG_2PI + 2 * math.log(noise)) - ((value - gain * loc) ** 2 + gain**2 * var) / (2 * noise**2)
    ).flatten()


def standard_error(value, gain, noise, loc, var, n: int) -> torch.Tensor:
    """Standard error of the mean of n draws of log N(value; gain z, noise^2), z ~ N(loc, var)."""
    mu, sigma2 = value - gain * loc, gain**2 * var  # value - gain z ~ N(mu, sigma2)
    variance = (2 * sigma2**2 + 4 * mu**2 * sigma2) / (4 * noise**4)
    return (variance / n).sqrt().flatten()


def toy_data(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 1, generator=g)
    return {"x": A * z + S * torch.randn(n, 1, generator=g), "w": B * z + T * torch.randn(n, 1, generator=g)}


def closed_forms(model: TwoModalityModel, batch: dict[str, torch.Tensor], fn=expected_log_lik, **kw):
    """Each key's closed form (``fn=standard_error, n=N``: the Monte Carlo standard error)."""
    x, w = batch["x"], batch["w"]
    m_xw, v_xw = model.nets[("x", "w")].moments(x, w)
    m_x, v_x = model.nets[("x",)].moments(x)
    m_w, v_w = model.nets[("w",)].moments(w)
    return {
        "log p(x|w)": fn(x, A, S, m_w, v_w, **kw),
        "log p(w|x)": fn(w, B, T, m_x, v_x, **kw),
        "log p(x|x,w)": fn(x, A, S, m_xw, v_xw, **kw),
        "log p(w|x,w)": fn(w, B, T, m_xw, v_xw, **kw),
        "log p(x)": fn(x, A, S, torch.zeros_like(x), 1.0, **kw),
    }


GIVEN = {
    "log p(x|w)": ("x", ["w"]),
    "log p(w|x)": ("w", ["x"]),
    "log p(x|x,w)": ("x", ["x", "w"]),
    "log p(w|x,w)": ("w", ["x", "w"]),
    "log p(x)": ("x", []),
}


@pytest.mark.parametrize("key", list(GIVEN))
def test_per_example_estimate_matches_closed_form(key):
    torch.manual_seed(0)
    model = TwoModalityModel()
    batch = toy_data(12)
    target, given = GIVEN[key]
    truth = closed_forms(model, batch)[key]
    # 4,000 samples per example in chunks of 1,000 x 12 rows: the reshaping must hold across chunks
    estimate = conditional_log_likelihood_batch(model, batch, target, given, n_samples=4000, max_rows=12000)
    assert estimate.shape == (12,)
    error = closed_forms(model, batch, standard_error, n=4000)[key]
    assert (estimate - truth).abs().le(5 * error).all(), (estimate, truth, error)
    if len(given) < 2:  # examples differ by nats: a mixed-up reshape would fail by far more
        assert (estimate - truth.roll(1)).abs().gt(5 * error).any()


def test_single_is_a_lower_bound_of_the_exact_conditional():
    """Jensen in eq. (11): E_q(z|w)[log p(x|z)] <= log int q(z|w) p(x|z) dz = log p(x|w) here."""
    model = TwoModalityModel()
    batch = toy_data(50, seed=1)
    m_w, v_w = model.nets[("w",)].moments(batch["w"])
    exact = torch.distributions.Normal(A * m_w, math.sqrt(S**2 + A**2 * v_w)).log_prob(batch["x"]).flatten()
    assert (closed_forms(model, batch)["log p(x|w)"] < exact).all()


def test_dataset_average_and_table():
    model = TwoModalityModel()
    batch = toy_data(300, seed=2)
    data = MultimodalDataset("toy", batch, {"x": X, "w": W})
    truth = {k: float(v.mean()) for k, v in closed_forms(model, batch).items()}
    table = conditional_log_likelihood_table(model, data, n_samples=200, batch_size=64)
    assert list(table) == ["log p(x|w)", "log p(w|x)", "log p(x|x,w)", "log p(w|x,w)"]
    for key, value in table.items():
        assert value == pytest.approx(truth[key], abs=0.1), key
    # the paper's ordering of the truths: reconstruction beats cross-modal generation
    assert table["log p(x|x,w)"] > table["log p(x|w)"]
    # same seed, same numbers; another seed, other samples
    again = conditional_log_likelihood(model, data, "x", ["w"], n_samples=200, batch_size=64)
    assert again == table["log p(x|w)"]
    other = conditional_log_likelihood(model, data, "x", ["w"], n_samples=200, batch_size=64, seed=1)
    assert other != again and other == pytest.approx(again, abs=0.1)
    custom = conditional_log_likelihood_table(model, data, pairs=[("w", ["x"])], n_samples=5)
    assert list(custom) == ["log p(w|x)"]


class CountingModel:
    """Latent row s * B + b is 10 * b + (global sample index s): the estimator must unpick it."""

    modalities = {"x": X, "w": W}

    def __init__(self) -> None:
        self.drawn = 0

    def sample_latents(self, batch, given, n_samples=1, n=None):
        size = len(batch["w"])
        s = torch.arange(self.drawn, self.drawn + n_samples).repeat_interleave(size)
        b = torch.arange(size).repeat(n_samples)
        self.drawn += n_samples
        return {"z": (10.0 * b + s).unsqueeze(1)}

    def log_likelihood(self, target, latents, batch):
        assert set(batch) == {"x", "w"}
        return latents["z"].flatten()


@pytest.mark.parametrize("max_rows", [5, 1000])
def test_sample_major_rows(max_rows):
    batch = toy_data(5)
    estimate = conditional_log_likelihood_batch(
        CountingModel(), batch, "x", ["w"], n_samples=6, max_rows=max_rows
    )
    torch.testing.assert_close(estimate, 10.0 * torch.arange(5.0) + 2.5)


def test_wrong_names_give_clear_errors():
    model = TwoModalityModel()
    data = MultimodalDataset("toy", toy_data(4), {"x": X, "w": W})
    with pytest.raises(
        KeyError, match=r"target modality \['y'\] is not a modality of the model.*\['w', 'x'\]"
    ):
        conditional_log_likelihood(model, data, "y", ["w"])
    with pytest.raises(KeyError, match=r"given modality \['z'\].*\['w', 'x'\]"):
        conditional_log_likelihood(model, data, "x", ["z"])
    # one modality may be named alone, as model.generate takes it
    assert conditional_log_likelihood(model, data, "x", "w") == conditional_log_likelihood(
        model, data, "x", ["w"]
    )
    only_x = MultimodalDataset("toy", {"x": toy_data(4)["x"]}, {"x": X})
    with pytest.raises(KeyError, match=r"given modality \['w'\] is not in the data, which holds \['x'\]"):
        conditional_log_likelihood(model, only_x, "x", ["w"])
    with pytest.raises(ValueError, match=">= 1"):
        conditional_log_likelihood(model, data, "x", ["w"], n_samples=0)


def test_default_pairs():
    assert default_pairs(["x", "w"]) == [("x", ("w",)), ("w", ("x",)), ("x", ("x", "w")), ("w", ("x", "w"))]
    pairs = default_pairs(["x", "y1", "y2"])
    assert ("x", ("y1", "y2")) in pairs and ("x", ("x", "y1", "y2")) in pairs and ("y1", ("y2",)) in pairs
    assert len(pairs) == 6 + 3 + 3
    assert conditional_key("x", ["x", "w"]) == "log p(x|x,w)" and conditional_key("x", []) == "log p(x)"


class ConditionalDecoderNet(nn.Module):
    def forward(self, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return A * z + 3.0 * w


def test_cvae_decoder_gets_the_given_condition():
    """Eq. (A.1): p(x~|z, w) receives the observed w; without w given it cannot be evaluated."""
    p_x = decoder_for(X, ConditionalDecoderNet(), cond_var=["z", "w"], scale=S)
    net = ExactPosterior([(A, S), (B, T)])
    q = GaussianEncoder(net, cond_var=["x", "w"])
    prior = standard_normal("z", 1)
    model = ZooModel((-p_x.log_prob().expectation(q)).mean(), [q, p_x], {"x": X, "w": W}, p_x * prior, q)
    batch = toy_data(10, seed=3)
    loc, var = net.moments(batch["x"], batch["w"])
    truth = expected_log_lik(batch["x"] - 3.0 * batch["w"], A, S, loc, var)
    error = standard_error(batch["x"] - 3.0 * batch["w"], A, S, loc, var, n=3000)
    torch.manual_seed(0)
    estimate = conditional_log_likelihood_batch(model, batch, "x", ["x", "w"], n_samples=3000)
    assert (estimate - truth).abs().le(5 * error).all(), (estimate, truth, error)
    # a decoder that ignored w would be off by far more
    assert (estimate - expected_log_lik(batch["x"], A, S, loc, var)).abs().mean() > 10
    with pytest.raises(ValueError, match="has no decoder for 'w'"):
        conditional_log_likelihood_batch(model, batch, "w", ["x", "w"])


R = 0.7  # p(z1|z2) = N(z2, R^2)


def test_hierarchical_latents_are_completed_from_the_prior():
    """Eq. (A.2): z2 ~ q(z2|x), z1 ~ p(z1|z2): E[log p(x|z1)] has variance var_q + R^2 in z1."""
    from pixyz.distributions import Normal

    p_z1 = Normal(loc="z2", scale=torch.tensor(R), var=["z1"], cond_var=["z2"], name="p")
    p_x = decoder_for(X, Gain(A), cond_var=["z1"], scale=S)
    prior = standard_normal("z2", 1)
    net = ExactPosterior([(1.0, 1.0)])  # any Gaussian q(z2|x) will do
    q = GaussianEncoder(net, cond_var=["x"], var="z2")
    model = ZooModel(
        (-p_x.log_prob().expectation(p_z1 * q)).mean(), [q, p_x], {"x": X}, p_x * p_z1 * prior, q
    )
    x = toy_data(10, seed=4)["x"]
    loc, var = net.moments(x)
    truth = expected_log_lik(x, A, S, loc, var + R**2)
    error = standard_error(x, A, S, loc, var + R**2, n=4000)
    torch.manual_seed(0)
    estimate = conditional_log_likelihood_batch(model, {"x": x}, "x", ["x"], n_samples=4000)
    assert (estimate - truth).abs().le(5 * error).all(), (estimate, truth, error)
    # without z1 ~ p(z1|z2) (z1 = z2) the expectation would miss A^2 R^2 / (2 S^2) nats
    assert (estimate - expected_log_lik(x, A, S, loc, var)).abs().gt(10 * error).all()
