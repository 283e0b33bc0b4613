"""Objectives checked against hand computations: beta-TCVAE's weighted decomposition and FactorVAE's
adversarial total correlation (its discriminator, its labels and the sign of the TC term)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pixyz.distributions import Normal
from torch import distributions as td
from torch import nn

from pixyz_zoo.losses.adversarial import AdversarialTotalCorrelation
from pixyz_zoo.models import BetaTCVAE, FactorVAE, model_options
from pixyz_zoo.training import Trainer, load_checkpoint, model_from_checkpoint

TINY = {"z_dim": 3, "hidden": [32]}


def posterior(model, batch) -> td.Normal:
    params = model.q.get_params({"x": batch["x"]})
    return td.Normal(params["loc"], params["scale"])


def log_px(model, z, x) -> torch.Tensor:
    return td.Bernoulli(logits=model.p_x.network(z)).log_prob(x).flatten(1).sum(1)


# ---------------------------------------------------------------------- beta-TCVAE
def test_beta_tcvae_weighted_loss_by_hand(digits_train):
    """alpha MI + beta TC + gamma dimKL - log p(x|z), the estimators written out as loops (M = 4, D = 3).

    alpha, beta and gamma all differ, so a swapped pair of weights changes the value."""
    alpha, beta, gamma, n = 0.5, 3.0, 7.0, 1000.0
    torch.manual_seed(0)
    model = BetaTCVAE(digits_train.modalities, alpha=alpha, beta=beta, gamma=gamma, dataset_size=1000, **TINY)
    assert model.hyperparameters == {"alpha": alpha, "beta": beta, "gamma": gamma, "N": n}
    batch = digits_train.first(4)
    torch.manual_seed(1)
    with torch.no_grad():
        loss = float(model.loss_cls.eval({**batch, **model.hyperparameters}))
        terms = {k: float(t.eval({**batch, "N": n})) for k, t in model.terms.items()}

        torch.manual_seed(1)
        q = posterior(model, batch)
        z = q.rsample()  # the one sample of E_q(z|x)
        loc, scale = q.loc, q.scale
        m, d = z.shape
        log_nm = math.log(n * m)

        def log_normal(value, mean, std):
            return -0.5 * ((value - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)

        mi, tc, dim_kl = [], [], []
        for i in range(m):
            log_q_given_own = sum(float(log_normal(z[i, k], loc[i, k], scale[i, k])) for k in range(d))
            joint = [
                sum(float(log_normal(z[i, k], loc[j, k], scale[j, k])) for k in range(d)) for j in range(m)
            ]
            log_qz = math.log(sum(math.exp(v) for v in joint)) - log_nm
            log_prod = sum(
                math.log(sum(math.exp(float(log_normal(z[i, k], loc[j, k], scale[j, k]))) for j in range(m)))
                - log_nm
                for k in range(d)
            )
            log_pz = sum(float(log_normal(z[i, k], 0.0, 1.0)) for k in range(d))
            mi.append(log_q_given_own - log_qz)
            tc.append(log_qz - log_prod)
            dim_kl.append(log_prod - log_pz)
        reconstruction = -log_px(model, z, batch["x"])
        expected = [
            float(reconstruction[i]) + alpha * mi[i] + beta * tc[i] + gamma * dim_kl[i] for i in range(m)
        ]
    assert loss == pytest.approx(sum(expected) / m, rel=1e-5)
    # the three terms are distinct numbers, so any swap of weights is visible
    mean_tc, mean_dim_kl = sum(tc) / m, sum(dim_kl) / m
    assert abs(mean_tc - mean_dim_kl) > 0.1 and abs(sum(mi) / m - mean_tc) > 0.1
    # the reported terms are estimates with their own samples: same formulas, hence close in size
    assert set(terms) == {"mutual_information", "total_correlation", "dimension_wise_kl"}


def test_beta_tcvae_weights_multiply_their_own_terms(digits_train):
    """d loss / d alpha = MI, d loss / d beta = TC, d loss / d gamma = dimKL on one fixed sample."""
    torch.manual_seed(0)
    model = BetaTCVAE(digits_train.modalities, dataset_size=500, **TINY)
    batch = {**digits_train.first(8), "N": 500.0}

    def loss(alpha, beta, gamma):
        torch.manual_seed(3)
        with torch.no_grad():
            return float(model.loss_cls.eval({**batch, "alpha": alpha, "beta": beta, "gamma": gamma}))

    def term(name):
        torch.manual_seed(3)
        with torch.no_grad():
            return float(model.terms[name].eval(batch))

    base = loss(1.0, 1.0, 1.0)
    assert loss(2.0, 1.0, 1.0) - base == pytest.approx(term("mutual_information"), abs=1e-3)
    assert loss(1.0, 2.0, 1.0) - base == pytest.approx(term("total_correlation"), abs=1e-3)
    assert loss(1.0, 1.0, 2.0) - base == pytest.approx(term("dimension_wise_kl"), abs=1e-3)


def test_beta_tcvae_checkpoint_rebuilds_the_same_loss(digits_train, digits_test, tmp_path):
    """N (the dataset size) is part of the config: a rebuilt model reports the trained one's test loss."""
    data = digits_train.subset(slice(0, 200))
    torch.manual_seed(0)
    model = BetaTCVAE(digits_train.modalities, lr=1e-3, **TINY)
    Trainer(model, data, epochs=1, batch_size=50, run_dir=tmp_path, progress=False).fit()
    assert model.hyperparameters["N"] == 200.0 and model.config["dataset_size"] == 200
    payload = load_checkpoint(tmp_path)
    assert payload["model_config"]["dataset_size"] == 200
    rebuilt = model_from_checkpoint(payload)
    assert rebuilt.hyperparameters["N"] == 200.0
    batch = digits_test.first(50)
    values = {}
    for key, net in (("trained", model), ("rebuilt", rebuilt)):
        torch.manual_seed(5)
        with torch.no_grad():
            terms = [float(t.eval({**batch, "N": 200.0})) for t in net.terms.values()]
        values[key] = [net.test_step(batch), *terms]
    assert values["rebuilt"] == pytest.approx(values["trained"], rel=1e-6)
    # given explicitly (a subset standing for a larger set), N is kept
    explicit = BetaTCVAE(digits_train.modalities, dataset_size=60000, **TINY)
    explicit.prepare(data)
    assert explicit.hyperparameters["N"] == 60000.0
    with pytest.raises(ValueError, match="dataset_size"):
        BetaTCVAE(digits_train.modalities, dataset_size=0, **TINY)


def test_beta_tcvae_run_records_the_dataset_size(tmp_path):
    """A beta-TCVAE run's config.json holds N, so the run's checkpoint matches its config."""
    from pixyz_zoo.run_spec import RunSpec
    from pixyz_zoo.runs import fit_run, load_run_checkpoint, read_config

    options = {**TINY, "lr": 1e-3}
    settings = dict(epochs=1, batch_size=50, device="cpu", train_examples=150, test_examples=50)
    spec = RunSpec.from_settings("beta-tcvae", options=options, **settings)
    model = fit_run(spec, tmp_path, progress=False)
    assert model.hyperparameters["N"] == 150.0
    assert read_config(tmp_path)["options"]["dataset_size"] == 150
    assert load_run_checkpoint(tmp_path)["model_config"]["dataset_size"] == 150
    again = fit_run(spec, tmp_path, progress=False)  # loaded, not retrained
    assert again.hyperparameters["N"] == 150.0


# ---------------------------------------------------------------------- FactorVAE
def test_factor_vae_default_discriminator_is_the_papers():
    """Kim & Mnih 2018, appendix: 6 layers of 1000 units, LeakyReLU(0.2)."""
    assert list(model_options("factor-vae")["discriminator_hidden"]) == [1000] * 6


def test_factor_vae_discriminator_architecture(digits_train):
    model = FactorVAE(digits_train.modalities, z_dim=5, hidden=[16])
    linear = [m for m in model.discriminator if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(5, 1000)] + [(1000, 1000)] * 5 + [(1000, 1)]
    assert all(m.negative_slope == 0.2 for m in model.discriminator if isinstance(m, nn.LeakyReLU))
    small = FactorVAE(digits_train.modalities, z_dim=5, hidden=[16], discriminator_hidden=[8])
    assert [m.out_features for m in small.discriminator if isinstance(m, nn.Linear)] == [8, 1]


def test_factor_vae_loss_by_hand(digits_train):
    """-log p(x|z) + KL(q||p) + gamma logit D(z'), z and z' two reparameterised draws of q(z|x)."""
    gamma = 2.5
    torch.manual_seed(0)
    model = FactorVAE(digits_train.modalities, gamma=gamma, discriminator_hidden=[16], **TINY)
    batch = digits_train.first(8)
    with torch.no_grad():
        torch.manual_seed(4)
        loss = float(model.loss_cls.eval({**batch, "gamma": gamma}))
        torch.manual_seed(4)
        q = posterior(model, batch)
        z = q.rsample()
        z_tc = q.rsample()
        kl = td.kl_divergence(q, td.Normal(0.0, 1.0)).sum(1)
        tc = model.discriminator(z_tc).squeeze(-1)
        expected = (-log_px(model, z, batch["x"]) + kl + gamma * tc).mean()
    assert tc.abs().mean() > 1e-3, "the TC term is not negligible, so its sign matters"
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_factor_vae_discriminator_loss_by_hand(digits_train):
    """Cross-entropy with label 1 for q(z) samples and 0 for dimension-permuted ones."""
    torch.manual_seed(0)
    model = FactorVAE(digits_train.modalities, discriminator_hidden=[16], **TINY)
    batch = digits_train.first(8)
    with torch.no_grad():
        model.discriminator[-1].weight.mul_(30)  # a discriminator whose outputs vary with z
        torch.manual_seed(6)
        loss = float(model.total_correlation.discriminator_loss(batch))
        torch.manual_seed(6)
        z = posterior(model, batch).sample()
        index = torch.stack([torch.randperm(8) for _ in range(3)], 1)
        permuted = torch.gather(z, 0, index)
        real, fake = model.discriminator(z).squeeze(-1), model.discriminator(permuted).squeeze(-1)
        expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
        swapped = -torch.log(1 - torch.sigmoid(real)).mean() - torch.log(torch.sigmoid(fake)).mean()
    assert abs(float(expected - swapped)) > 1e-3, "the labels' order is visible on this batch"
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_trained_discriminator_estimates_a_known_total_correlation():
    """On a correlated Gaussian (rho = 0.9) the density-ratio estimate E_q(z)[logit D(z)] approaches
    TC = -log(1 - rho^2) / 2 = 0.83 nats, and is negative on the permuted samples (labels swapped
    would flip both signs)."""
    rho = 0.9
    exact = -0.5 * math.log(1 - rho**2)
    torch.manual_seed(0)
    q = Normal(loc="x", scale=torch.tensor(1e-3), var=["z"], cond_var=["x"], name="q")
    discriminator = nn.Sequential(
        nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)
    )
    tc = AdversarialTotalCorrelation(q, discriminator)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=3e-3)

    def correlated(n):
        a, b = torch.randn(n), torch.randn(n)
        return {"x": torch.stack([a, rho * a + math.sqrt(1 - rho**2) * b], 1)}

    for _ in range(600):
        optimizer.zero_grad()
        tc.discriminator_loss(correlated(256)).backward()
        optimizer.step()
    with torch.no_grad():
        sample = correlated(20000)
        estimate = float(tc.eval(sample).mean())
        z = sample["x"]
        on_permuted = float(discriminator(torch.stack([z[:, 0], z[torch.randperm(len(z)), 1]], 1)).mean())
        accuracy = float((F.logsigmoid(discriminator(z)) > math.log(0.5)).float().mean())
    assert estimate == pytest.approx(exact, abs=0.25)
    assert on_permuted < -0.3 and accuracy > 0.5
