import math

import pytest
import torch
from pixyz.losses import KullbackLeibler
from torch import distributions as td

from pixyz_zoo.losses.adversarial import permute_dims
from pixyz_zoo.losses.total_correlation import AggregatePosteriorLogProb, ProductOfMarginalsLogProb
from pixyz_zoo.models import MODELS, AnnealedVAE, BetaTCVAE, BetaVAE, FactorVAE
from pixyz_zoo.training import Trainer

TINY = {"z_dim": 3, "hidden": [32]}


def posterior(model, batch):
    params = model.q.get_params({"x": batch["x"]})
    return td.Normal(params["loc"], params["scale"])


def test_registered_for_the_cli():
    assert {"beta-vae", "annealed-vae", "beta-tcvae", "factor-vae"} <= set(MODELS)


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
    for cls in (BetaVAE, AnnealedVAE, BetaTCVAE, FactorVAE):
        torch.manual_seed(0)
        extra = {"discriminator_hidden": [32]} if cls is FactorVAE else {}
        model = cls(digits_train.modalities, lr=1e-3, **TINY, **extra)
        history = Trainer(
            model, digits_train, digits_test, epochs=2, batch_size=64, warmup_epochs=1, progress=False
        ).fit()
        assert all(math.isfinite(r["test_loss"]) for r in history)
        assert history[-1]["test_loss"] < history[0]["test_loss"], (cls.name, history)


def test_permutation_keeps_each_marginal_and_breaks_dependence():
    torch.manual_seed(0)
    a = torch.randn(2000, 1)
    z = torch.cat([a, a + 0.01 * torch.randn(2000, 1), torch.randn(2000, 1)], 1)
    permuted = permute_dims(z)
    assert torch.equal(permuted.sort(0).values, z.sort(0).values)
    assert torch.corrcoef(z.T)[0, 1] > 0.99 and abs(torch.corrcoef(permuted.T)[0, 1]) < 0.1


def test_factor_vae_tc_term_and_discriminator(digits_train):
    torch.manual_seed(0)
    model = FactorVAE(digits_train.modalities, gamma=2.0, discriminator_hidden=[16], **TINY)
    batch = digits_train.first(16)
    torch.manual_seed(5)
    tc = model.total_correlation.eval(batch)
    torch.manual_seed(5)
    z = posterior(model, batch).rsample()
    assert torch.allclose(tc, model.discriminator(z).squeeze(-1), atol=1e-5)
    assert r"\frac{D(z)}{1 - D(z)}" in str(model) and r"\gamma" in str(model)

    before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    model.train_step(batch)
    after = model.discriminator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the discriminator takes a step"
    state = model.state()
    fresh = FactorVAE(digits_train.modalities, gamma=2.0, discriminator_hidden=[16], **TINY)
    fresh.load_state(state)
    assert all(torch.equal(after[k], fresh.discriminator.state_dict()[k]) for k in after)
