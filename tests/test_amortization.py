"""Per-example optimal posteriors q*, the amortization and approximation gaps, refinement curves."""

from __future__ import annotations

import pytest
import torch

from pixyz_zoo.evaluation import evaluate_log_likelihood
from pixyz_zoo.evaluation.amortization import (
    amortization_gaps,
    bound_of_parameters,
    optimal_gaussian,
    refinement_curve,
    refinement_trajectory,
)
from pixyz_zoo.evaluation.likelihood import elbo_estimate, iwae_bound
from pixyz_zoo.models import VAE, build_model
from tests.linear_gaussian import linear_gaussian

TINY = {"z_dim": 4, "hidden": [16]}


def test_optimal_gaussian_reaches_the_exact_posterior():
    lg = linear_gaussian()
    x = lg.sample(20)
    log_px = lg.log_px(x)
    with torch.no_grad():
        start = (log_px - lg.elbo(x, *lg.model.q.get_params({"x": x}).values())).mean()
    torch.manual_seed(0)
    best = optimal_gaussian(lg.model, {"x": x}, lr=0.05, samples=4, window=20)
    gap = log_px - lg.elbo(x, best.loc, best.scale)
    assert start > 1.0
    assert 0 <= gap.mean() < 0.05 and gap.max() < 0.3
    assert bool(best.converged.all()) and int(best.steps.max()) < 2000
    loc, scale = lg.posterior(x)
    assert torch.allclose(best.loc, loc, atol=0.2) and torch.allclose(best.scale, scale, atol=0.15)


def test_the_gaps_of_a_model_whose_family_holds_the_posterior():
    """Approximation gap 0, amortization gap = the encoder's closed-form gap, log p(x) exact."""
    lg = linear_gaussian()
    data = lg.dataset(20)
    x = data.tensors["x"]
    log_px = lg.log_px(x)
    with torch.no_grad():
        params = lg.model.q.get_params({"x": x})
    exact_gap = float((log_px - lg.elbo(x, params["loc"], params["scale"])).mean())
    before = {k: v.clone() for k, v in lg.model.distributions.state_dict().items()}
    torch.manual_seed(0)
    gaps = amortization_gaps(lg.model, data, k=200, elbo_samples=200, lr=0.05, samples=4, window=20)
    assert gaps["examples"] == 20 and gaps["optimal_converged_fraction"] == 1.0
    assert abs(gaps["log_px"] - float(log_px.mean())) < 0.02  # q* = p(z|x): every weight is p(x)
    assert abs(gaps["approximation_gap"]) < 0.1 < 1.0 < gaps["amortization_gap"]
    assert gaps["amortization_gap"] == pytest.approx(exact_gap, abs=0.1)
    assert gaps["inference_gap"] == pytest.approx(gaps["amortization_gap"] + gaps["approximation_gap"])
    after = lg.model.distributions.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing of the model moved
    assert all(p.grad is None for p in lg.model.distributions.parameters())


def test_bound_of_parameters_is_the_zoo_estimator_with_that_proposal(digits_test):
    torch.manual_seed(0)
    model = VAE(digits_test.modalities, **TINY)
    batch = digits_test.first(10)
    params = model.q.get_params({"x": batch["x"]})
    torch.manual_seed(1)
    log_w = bound_of_parameters(model, batch, params["loc"].detach(), params["scale"].detach(), k=50)
    torch.manual_seed(1)
    from pixyz_zoo.evaluation.likelihood import log_weights

    reference = log_weights(model, batch, 50)
    assert log_w.shape == reference.shape == (50, 10)
    assert torch.allclose(elbo_estimate(log_w), elbo_estimate(reference), atol=0.2 * 10)
    assert torch.all(iwae_bound(log_w) >= elbo_estimate(log_w))


def test_refinement_curve_starts_at_the_models_elbo_and_rises_on_a_poor_encoder():
    lg = linear_gaussian()
    data = lg.dataset(40)
    torch.manual_seed(0)
    curve = refinement_curve(lg.model, data, steps=30, lr=0.1, samples=4, k=400)
    assert len(curve["elbo"]) == 31 and curve["steps"] == 30 and curve["examples"] == 40
    x = data.tensors["x"]
    with torch.no_grad():
        exact = float(lg.elbo(x, *lg.model.q.get_params({"x": x}).values()).mean())
    assert curve["elbo"][0] == pytest.approx(exact, abs=0.15)  # step 0: the encoder's ELBO
    assert curve["elbo"][0] == pytest.approx(evaluate_log_likelihood(lg.model, data, k=400)["elbo"], abs=0.2)
    assert curve["elbo"][-1] > curve["elbo"][0] + 1.0
    trajectory = refinement_trajectory(lg.model, data.first(5), steps=3)
    assert len(trajectory) == 4 and trajectory[0][0].shape == (5, 2)


def test_refinement_curve_of_the_models_own_refinement(digits_test):
    torch.manual_seed(0)
    model = build_model("iterative-vae", digits_test.modalities, refine_steps=2, **TINY)
    curve = refinement_curve(model, digits_test.subset(slice(0, 30)), rule="model", k=3)
    assert len(curve["elbo"]) == 3 and curve["rule"] == "learned update"
    longer = refinement_curve(model, digits_test.subset(slice(0, 30)), rule="model", steps=4, k=3)
    assert len(longer["elbo"]) == 5
    steps = refinement_curve(model, digits_test.subset(slice(0, 10)), rule="sgd", lr=0.05, steps=1, k=2)
    assert steps["rule"] == "sgd steps of 0.05"  # the rule in words, as the reports write it
    vae = VAE(digits_test.modalities, **TINY)
    with pytest.raises(ValueError, match="rule='model' uses the model's own refinement.*use rule='adam'"):
        refinement_curve(vae, digits_test, rule="model")
    with pytest.raises(ValueError, match="T must be an integer >= 0"):
        refinement_curve(vae, digits_test, steps=-3)


def test_gaps_of_the_iterative_vae_use_its_refined_posterior(digits_test):
    torch.manual_seed(0)
    model = build_model("iterative-vae", digits_test.modalities, refine_steps=2, **TINY)
    data = digits_test.subset(slice(0, 10))
    gaps = amortization_gaps(model, data, k=20, elbo_samples=20, max_steps=100, window=20)
    assert gaps["amortization_gap"] > 0  # an untrained model: q* is far better
    assert gaps["optimal_steps_mean"] <= 100


def test_a_model_without_a_gaussian_posterior_has_no_gaps():
    from pixyz_zoo.datasets import load_dataset

    data = load_dataset("trimodal-digits", "test").subset(slice(0, 4))
    model = build_model("mmvae", data.modalities, z_dim=4, hidden=[8])
    with pytest.raises(TypeError, match="not a Gaussian.*Refine a model whose inference is Gaussian"):
        amortization_gaps(model, data, k=2)
    with pytest.raises(TypeError, match="not a Gaussian"):
        optimal_gaussian(model, data.first(4))


def test_gaps_of_a_subset_of_the_modalities():
    from pixyz_zoo.datasets import load_dataset

    data = load_dataset("trimodal-digits", "test").subset(slice(0, 6))
    torch.manual_seed(0)
    model = build_model("mvae", data.modalities, z_dim=4, hidden=[8])
    gaps = amortization_gaps(model, data, given=["m"], k=5, elbo_samples=5, max_steps=50, window=10)
    assert gaps["examples"] == 6 and gaps["log_px"] >= gaps["elbo_optimal"] - 1.0


def test_bad_optimiser_settings_are_clear_errors(digits_test):
    model = VAE(digits_test.modalities, **TINY)
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1, got 0"):
        optimal_gaussian(model, digits_test.first(2), max_steps=0)
    with pytest.raises(ValueError, match="unknown init 'middle'"):
        optimal_gaussian(model, digits_test.first(2), init="middle")
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        amortization_gaps(model, digits_test, k=0)
    for lr in (0, -0.1, float("nan")):  # lr=0 returned the start as q*, reported as optimised
        with pytest.raises(ValueError, match=r"the step size lr of q\*'s optimiser must be a number > 0"):
            optimal_gaussian(model, digits_test.first(2), lr=lr, max_steps=3)
    with pytest.raises(ValueError, match=r"lr of q\*'s optimiser must be a number > 0, got 0"):
        amortization_gaps(model, digits_test.subset(slice(0, 4)), k=2, elbo_samples=2, lr=0)


def test_a_dataset_where_the_batch_belongs_points_to_dataset_first(digits_test):
    """It failed with "'<' not supported between instances of 'dict' and 'dict'"."""
    model = VAE(digits_test.modalities, **TINY)
    first = r"got MultimodalDataset.*dataset\.first\(n\) is a batch"
    with pytest.raises(TypeError, match=first):
        refinement_trajectory(model, digits_test, steps=2)
    with pytest.raises(TypeError, match=first):
        optimal_gaussian(model, digits_test, max_steps=3)
    assert len(refinement_trajectory(model, digits_test.first(3), steps=2)) == 3
