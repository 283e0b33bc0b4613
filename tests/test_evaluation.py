"""The likelihood estimators against a linear-Gaussian model whose log p(x) is known exactly."""

import math

import pytest
import torch
from torch import nn

from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.distributions import GaussianEncoder, MixtureOfExperts, decoder_for, standard_normal
from pixyz_zoo.evaluation import elbo_estimate, evaluate_log_likelihood, iwae_bound, log_weights
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import VAE, ZooModel
from pixyz_zoo.training import Trainer

NOISE = 0.5  # p(x|z) = N(z, NOISE^2), p(z) = N(0, 1)  =>  p(x) = N(0, 1 + NOISE^2)
X = Modality("x", (1,), "gaussian")


class Posterior(nn.Module):
    """Outputs (loc, raw scale) of N(shift + x / (1 + s^2), scale^2); exact for shift=0, scale=None."""

    def __init__(self, shift: float = 0.0, scale: float | None = None) -> None:
        super().__init__()
        self.shift = shift
        self.scale = scale if scale is not None else math.sqrt(NOISE**2 / (1 + NOISE**2))
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        loc = self.shift + x / (1 + NOISE**2)
        raw = math.log(math.expm1(self.scale - 1e-4))
        return torch.cat([loc, torch.full_like(x, raw)], dim=1)


def linear_gaussian(shift=0.0, scale=None) -> ZooModel:
    q = GaussianEncoder(Posterior(shift, scale), cond_var=["x"])
    p_x = decoder_for(X, nn.Identity(), scale=NOISE)
    prior = standard_normal("z", 1)
    return ZooModel(
        (-p_x.log_prob().expectation(q)).mean(), [q, p_x], {"x": X}, generative=p_x * prior, inference=q
    )


def test_a_declared_modality_no_part_of_the_model_reads_is_refused_with_the_fix():
    """A dataset's label passed with ``dataset.modalities`` to a model of its image alone: refused when
    the model is built (the evaluation would look for it as an observed variable)."""
    q = GaussianEncoder(Posterior(), cond_var=["x"])
    p_x = decoder_for(X, nn.Identity(), scale=NOISE)
    loss = (-p_x.log_prob().expectation(q)).mean()
    label = Modality("y", (10,), "categorical")
    with pytest.raises(ValueError) as error:
        ZooModel(loss, [q, p_x], {"x": X, "y": label}, generative=p_x * standard_normal("z", 1), inference=q)
    assert "modalities ['y'] are declared but no part of the model reads them" in str(error.value)
    assert "Declare only those, e.g. modalities={m: data.modalities[m] for m in ['x']}" in str(error.value)


def exact_log_px(x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(0.0, math.sqrt(1 + NOISE**2)).log_prob(x).flatten()


def test_exact_posterior_gives_exact_log_likelihood_for_any_k_and_chunking():
    torch.manual_seed(0)
    x = torch.randn(50, 1) * 1.5
    model = linear_gaussian()
    for max_rows in (50, 100_000):
        log_w = log_weights(model, {"x": x}, k=7, max_rows=max_rows)
        assert log_w.shape == (7, 50)
        assert torch.allclose(log_w, exact_log_px(x).expand(7, 50), atol=1e-4)
    assert torch.allclose(iwae_bound(log_w), exact_log_px(x), atol=1e-4)


def test_iwae_increases_with_k_towards_log_px_for_a_poor_proposal():
    torch.manual_seed(0)
    x = torch.randn(200, 1)
    data = MultimodalDataset("toy", {"x": x}, {"x": X})
    model = linear_gaussian(shift=0.7, scale=0.9)
    truth = float(exact_log_px(x).mean())
    results = {
        k: evaluate_log_likelihood(model, data, k=k, batch_size=50, max_rows=3000) for k in (1, 10, 1000)
    }
    bounds = [results[1]["iwae_1"], results[10]["iwae_10"], results[1000]["iwae_1000"]]
    assert bounds[0] < bounds[1] < bounds[2] < truth + 0.01, (bounds, truth)
    assert truth - bounds[2] < 0.05 < truth - bounds[0]
    # the ELBO estimate is the mean log-weight: IWAE_1 in distribution, and unchanged by K
    assert results[1000]["elbo"] == pytest.approx(results[1]["elbo"], abs=0.1)
    assert results[1000]["elbo"] < bounds[2]


def test_mixture_proposal_elbo_equals_quadrature_and_iwae_tends_to_log_px():
    """A mixture proposal (MMVAE's and MoPoE's posterior): half the exact posterior, half a poor
    Gaussian. Its ELBO, E_q[log p(x, z) - log q(z|x)] with the mixture's density, is a 1-D integral,
    computed here on a grid in float64; the evaluator's Monte Carlo ELBO must match it within 5
    standard errors. IWAE_K estimates the exact log p(x) to within its Monte Carlo error (the mixture
    has the exact posterior as a component, so every weight is at most 2 p(x))."""
    torch.manual_seed(0)
    x = torch.randn(20, 1) * 1.5
    exact, poor = Posterior(), Posterior(shift=2.0, scale=0.3)
    experts = [GaussianEncoder(net, cond_var=["x"]) for net in (exact, poor)]
    mixture = MixtureOfExperts(experts, name="q")
    model = linear_gaussian()
    k = 4000
    log_w = log_weights(model, {"x": x}, k=k, proposal=mixture, max_rows=40_000)

    z = torch.linspace(-12.0, 12.0, 48_001, dtype=torch.float64)
    xd = x.double()
    normal = torch.distributions.Normal

    def density(net: Posterior) -> torch.Tensor:  # (examples, grid)
        loc = xd / (1 + NOISE**2) + net.shift
        return normal(loc, net.scale).log_prob(z).exp()

    q_mix = 0.5 * density(exact) + 0.5 * density(poor)
    log_joint = normal(z, NOISE).log_prob(xd) + normal(0.0, 1.0).log_prob(z)
    integrand = torch.where(q_mix > 0, q_mix * (log_joint - q_mix.log()), torch.zeros_like(q_mix))
    elbo_exact = torch.trapezoid(integrand, z, dim=1)
    assert torch.trapezoid(q_mix, z, dim=1).sub(1).abs().max() < 1e-9  # the grid holds the mixture

    standard_error = float(log_w.std(dim=0).pow(2).sum().sqrt()) / math.sqrt(k) / len(x)
    estimate = float(elbo_estimate(log_w).mean())
    assert abs(estimate - float(elbo_exact.mean())) < 5 * standard_error, (estimate, elbo_exact.mean())
    truth = exact_log_px(x)
    assert float(elbo_exact.mean()) < float(truth.mean()) - 0.1  # a proposal far from exact
    # IWAE_K: log of the mean ratio w / p(x) away from log p(x), within 5 of its standard errors
    bounds, ratio = iwae_bound(log_w), (log_w - truth).exp()
    assert (ratio <= 2 + 1e-4).all()
    assert ((bounds - truth).abs() < 5 * ratio.std(dim=0) / math.sqrt(k) + 1e-4).all(), bounds - truth
    assert (elbo_estimate(log_w) < bounds - 0.1).all()


def test_estimators_on_known_log_weights():
    log_w = torch.log(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    assert torch.allclose(iwae_bound(log_w), torch.log(torch.tensor([2.0, 4.0])))
    assert torch.allclose(elbo_estimate(log_w), log_w.mean(0))
    with pytest.raises(ValueError, match=">= 1"):
        evaluate_log_likelihood(
            linear_gaussian(), MultimodalDataset("t", {"x": torch.zeros(2, 1)}, {"x": X}), k=0
        )


def test_iwae_above_elbo_and_increasing_on_a_trained_vae(digits_train, digits_test):
    torch.manual_seed(0)
    model = VAE(digits_train.modalities, z_dim=8, hidden=[128])
    Trainer(model, digits_train, epochs=3, batch_size=50, progress=False).fit()
    r = {k: evaluate_log_likelihood(model, digits_test, k=k, seed=1) for k in (1, 10, 100)}
    assert r[1]["iwae_1"] == r[1]["elbo"]
    assert r[100]["elbo"] < r[10]["iwae_10"] < r[100]["iwae_100"], r


class RowCounter(nn.Module):
    """Wraps a network and counts the rows it is run on."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network, self.rows, self.calls = network, 0, 0

    def forward(self, *inputs):
        self.rows += len(inputs[0])
        self.calls += 1
        return self.network(*inputs)


def test_iwae_runs_the_encoder_once_per_example_and_the_decoder_once_per_sample():
    """IWAE-K costs one encoder pass and K decoder passes per example, whatever the chunking."""
    torch.manual_seed(0)
    data = MultimodalDataset("toy", {"x": torch.randn(30, 1)}, {"x": X})
    model = linear_gaussian(shift=0.3, scale=0.8)
    model.inference.network = encoder = RowCounter(model.inference.network)
    decoder = model.generative.graph.distribution("x")
    decoder.network = decoded = RowCounter(decoder.network)
    evaluate_log_likelihood(model, data, k=200, batch_size=10, max_rows=500)
    assert encoder.rows == 30 and encoder.calls == 3  # once per data batch
    assert decoded.rows == 30 * 200 and decoded.calls == 3 * 4  # chunks of 50 samples x 10 rows


def test_evaluation_progress_counts_samples_and_is_silent_when_off(monkeypatch, capsys):
    import pixyz_zoo.progress

    updates: list[int] = []

    class Recording(pixyz_zoo.progress.tqdm):
        def update(self, n=1):
            updates.append(n)
            return super().update(n)

    monkeypatch.setattr(pixyz_zoo.progress, "tqdm", Recording)
    data = MultimodalDataset("toy", {"x": torch.randn(30, 1)}, {"x": X})
    model = linear_gaussian()
    evaluate_log_likelihood(model, data, k=40, batch_size=10, max_rows=100, progress=True)
    assert sum(updates) == 30 * 40 and len(updates) == 3 * 4  # moves after every chunk of samples
    assert "IWAE-40" in capsys.readouterr().err
    updates.clear()
    evaluate_log_likelihood(model, data, k=40, batch_size=10, max_rows=100, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", ["mfm", "translation"])
def test_a_model_without_a_likelihood_bound_is_refused_with_its_reason(name):
    """Deterministic encoders have no density: the bound failed with Pixyz's "Log probability of
    deterministic distribution is not defined."."""
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.models import build_model

    data = load_dataset("trimodal-digits", "test").with_labels().subset(slice(0, 8))
    options = {"target": "t"} if name == "translation" else {}
    model = build_model(name, data.modalities, z_dim=2, hidden=[8], **options)
    with pytest.raises(
        ValueError, match=rf"^no likelihood bound for {type(model).__name__}: .*deterministic"
    ):
        evaluate_log_likelihood(model, data, k=2)
