import math

import pytest
import torch
from pixyz.losses import KullbackLeibler
from torch import distributions as td

from pixyz_zoo.losses.total_correlation import AggregatePosteriorLogProb, ProductOfMarginalsLogProb
from pixyz_zoo.models import MODELS, AnnealedVAE, BetaTCVAE, BetaVAE
from pixyz_zoo.training import Trainer

TINY = {"z_dim": 3, "hidden": [32]}


def posterior(model, batch):
    params = model.q.get_params({"x": batch["x"]})
    return td.Normal(params["loc"], params["scale"])


def test_registered_for_the_cli():
    assert {"beta-vae", "annealed-vae", "beta-tcvae"} <= set(MODELS)


def test_beta_vae_loss_weights_the_kl(digits_train):
    model = BetaVAE(digits_train.modalities, beta=4.0, **TINY)
    batch = digits_train.first(8)
    torch.manual_seed(0)
    loss = model.loss_cls.eval({**batch, **model.hyperparameters})
    torch.manual_seed(0)
    q = posterior(model, batch)
    log_px = td.Bernoulli(logits=model.p_x.network(q.rsample())).log_prob(batch["x"]).flatten(1).sum(1)
    kl = td.kl_divergence(q, td.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(loss, (-log_px + 4.0 * kl).mean(), atol=1e-4)


def test_annealed_capacity_loss_by_hand(digits_train):
    model = AnnealedVAE(digits_train.modalities, gamma=10.0, capacity=5.0, **TINY)
    assert "C" in model.annealed and r"\gamma" in str(model)
    batch = digits_train.first(8)
    for c in (0.0, 2.5):
        torch.manual_seed(1)
        loss = model.loss_cls.eval({**batch, "C": c, "gamma": 10.0})
        torch.manual_seed(1)
        q = posterior(model, batch)
        log_px = td.Bernoulli(logits=model.p_x.network(q.rsample())).log_prob(batch["x"]).flatten(1).sum(1)
        kl = td.kl_divergence(q, td.Normal(0.0, 1.0)).sum(1)
        assert torch.allclose(loss, (-log_px + 10.0 * (kl - c).abs()).mean(), atol=1e-3)
    trainer = Trainer(model, digits_train, warmup_epochs=10, progress=False)
    assert trainer.hyperparameter_values(5.0) == {"C": 2.5, "gamma": 10.0}


def test_minibatch_weighted_estimates_by_brute_force(digits_train):
    model = BetaTCVAE(digits_train.modalities, **TINY)
    batch = digits_train.first(5)
    q = posterior(model, batch)
    z = q.sample()
    n = 100.0
    values = {"x": batch["x"], "z": z, "N": n}
    log_qz = AggregatePosteriorLogProb(model.q).eval(values)
    log_prod = ProductOfMarginalsLogProb(model.q).eval(values)
    for i in range(5):
        joint = [q.log_prob(z[i]).sum(-1)[j] for j in range(5)]  # log q(z_i | x_j)
        expected = torch.logsumexp(torch.stack(joint), 0) - math.log(n * 5)
        assert torch.allclose(log_qz[i], expected, atol=1e-5)
        per_dim = torch.logsumexp(q.log_prob(z[i].expand(5, 3)), 0) - math.log(n * 5)
        assert torch.allclose(log_prod[i], per_dim.sum(), atol=1e-5)


def test_tc_decomposition_sums_to_the_kl_in_expectation(digits_train):
    model = BetaTCVAE(digits_train.modalities, **TINY)
    model.prepare(digits_train)
    assert model.hyperparameters["N"] == len(digits_train)
    batch = {**digits_train.first(100), "N": float(len(digits_train))}
    torch.manual_seed(0)
    with torch.no_grad():
        total = sum(sum(float(t.eval(batch)) for t in model.terms.values()) for _ in range(200)) / 200
        kl = float(KullbackLeibler(model.q, model.prior).mean().eval(batch))
    assert total == pytest.approx(kl, abs=0.02 * max(kl, 1.0))
    # with alpha = beta = gamma = 1 the objective is the plain negative ELBO in expectation
    text = str(model)
    for symbol in (r"\alpha", r"\beta", r"\gamma", r"\log \hat{q}_{N}(z)", r"\prod_{d}"):
        assert symbol in text


def test_each_variant_trains(digits_train, digits_test):
    for cls in (BetaVAE, AnnealedVAE, BetaTCVAE):
        torch.manual_seed(0)
        model = cls(digits_train.modalities, lr=1e-3, **TINY)
        history = Trainer(
            model, digits_train, digits_test, epochs=2, batch_size=64, warmup_epochs=1, progress=False
        ).fit()
        assert all(math.isfinite(r["test_loss"]) for r in history)
        assert history[-1]["test_loss"] < history[0]["test_loss"], (cls.name, history)
