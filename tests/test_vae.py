import math

import pytest
import torch
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb
from torch import distributions as td

from pixyz_zoo.evaluation import evaluate_log_likelihood
from pixyz_zoo.models import MODELS, VAE, build_model
from pixyz_zoo.training import Trainer


def test_print_shows_factorisation_and_loss(digits_train, tiny_options):
    text = str(VAE(digits_train.modalities, **tiny_options))
    assert "p(x,z) = p(x|z)p(z)" in text
    assert "q(z|x)" in text
    assert r"D_{KL} \left[q(z|x)||p(z) \right]" in text and r"\log p(x|z)" in text and r"\beta" in text


def test_loss_equals_hand_computation(digits_train, tiny_options):
    model = VAE(digits_train.modalities, **tiny_options)
    batch = digits_train.first(6)
    torch.manual_seed(3)
    loss = model.loss_cls.eval({**batch, "beta": 0.3})

    torch.manual_seed(3)
    params = model.q.get_params({"x": batch["x"]})
    q = td.Normal(params["loc"], params["scale"])
    z = q.rsample()
    logits = model.p_x.network(z)
    log_px = td.Bernoulli(logits=logits).log_prob(batch["x"]).flatten(1).sum(1)
    kl = td.kl_divergence(q, td.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(loss, (-log_px + 0.3 * kl).mean(), atol=1e-4)


def test_surface_shapes_and_ranges(digits_train, tiny_options):
    model = VAE(digits_train.modalities, **tiny_options)
    batch = digits_train.first(5)
    assert model.encode(batch)["z"].shape == (5, 4)
    z1, z2 = model.encode(batch, sample=True)["z"], model.encode(batch, sample=True)["z"]
    assert not torch.equal(z1, z2)
    recon = model.reconstruct(batch)["x"]
    assert recon.shape == (5, 1, 8, 8) and 0 <= recon.min() and recon.max() <= 1
    assert model.sample(7)["x"].shape == (7, 1, 8, 8)
    with pytest.raises(ValueError, match="needs the number of samples"):
        model.generate(given=())


def test_builds_on_any_image_modality_with_conv_preset(digits_train):
    model = build_model("vae", digits_train.modalities, z_dim=3, arch="conv")
    assert model.train_step(digits_train.first(8)) > 0


def test_unknown_option_is_named(digits_train):
    with pytest.raises(TypeError, match=r"no option\(s\) \['zdim'\]"):
        build_model("vae", digits_train.modalities, zdim=3)


def test_batch_errors_are_clear(digits_train, tiny_options):
    model = VAE(digits_train.modalities, **tiny_options)
    with pytest.raises(KeyError, match=r"missing variable\(s\) \['x'\]"):
        model.train_step({"image": torch.zeros(2, 1, 8, 8)})
    with pytest.raises(ValueError, match="expected \\(batch, 1, 8, 8\\)"):
        model.train_step({"x": torch.zeros(2, 64)})
    nan = torch.zeros(2, 1, 8, 8)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN/inf"):
        model.test_step({"x": nan})
    with pytest.raises(KeyError, match="not hyperparameters"):
        model.train_step(digits_train.first(2), gamma=1.0)


def test_three_epochs_improve_test_elbo(digits_train, digits_test):
    torch.manual_seed(0)
    model = VAE(digits_train.modalities, z_dim=8, hidden=[128])
    before = evaluate_log_likelihood(model, digits_test, k=1)["elbo"]
    Trainer(model, digits_train, digits_test, epochs=3, batch_size=50, progress=False).fit()
    after = evaluate_log_likelihood(model, digits_test, k=1)["elbo"]
    assert after > before + 5.0, (before, after)


def test_user_defined_loss_trains_with_the_same_trainer(digits_train, digits_test):
    """A beta-VAE objective written as a Pixyz expression over the VAE's distributions."""
    batch = digits_test.first(200)
    kls = {}
    for weight in (1.0, 4.0):
        torch.manual_seed(0)
        vae = VAE(digits_train.modalities, z_dim=8, hidden=[64])
        q, p_x, prior = vae.q, vae.p_x, vae.prior
        model = vae.with_loss((E(q, -LogProb(p_x)) + weight * KullbackLeibler(q, prior)).mean())
        assert f"{weight}" in str(model) and "q(z|x)" in str(model)
        history = Trainer(model, digits_train, digits_test, epochs=2, batch_size=50, progress=False).fit()
        assert history[-1]["test_loss"] < history[0]["train_loss"]
        assert model.reconstruct(batch)["x"].shape == batch["x"].shape
        kls[weight] = float(KullbackLeibler(q, prior).mean().eval(batch).detach())
    # the heavier KL weight is what was optimised: its posterior stays closer to the prior
    assert kls[4.0] < kls[1.0], kls


def test_a_loss_left_per_example_is_refused_with_the_fix(digits_train, tiny_options):
    """A forgotten ``.mean()`` failed inside ``backward``: "grad can be implicitly created only for
    scalar outputs"; the test loss in a reshape."""
    vae = VAE(digits_train.modalities, **tiny_options)
    q, p_x, prior = vae.q, vae.p_x, vae.prior
    model = vae.with_loss(E(q, -LogProb(p_x)) + KullbackLeibler(q, prior))
    batch = digits_train.first(16)
    before = [p.detach().clone() for p in model.distributions.parameters()]
    with pytest.raises(ValueError, match=r"the loss evaluates to a tensor of shape \(16,\).*\.mean\(\)"):
        model.train_step(batch)
    assert all(torch.equal(a, b) for a, b in zip(before, model.distributions.parameters(), strict=True))
    with pytest.raises(ValueError, match=r"the test objective's term .*shape \(16,\)"):
        model.test_step(batch)


def test_each_network_runs_once_per_step_and_nothing_is_reused_across_steps(digits_train, tiny_options):
    model = VAE(digits_train.modalities, **tiny_options)
    calls = {"q": 0, "p": 0}
    model.q.network.register_forward_hook(lambda *_: calls.__setitem__("q", calls["q"] + 1))
    model.p_x.network.register_forward_hook(lambda *_: calls.__setitem__("p", calls["p"] + 1))
    batch = digits_train.first(16)
    model.train_step(batch)
    assert calls == {"q": 1, "p": 1}  # E_q[...] and KL(q||p) share q's parameters
    before = model.q.get_params({"x": batch["x"]})["loc"].detach().clone()
    model.train_step(batch)  # same tensor again: fresh parameters after the optimiser step
    after = model.q.get_params({"x": batch["x"]})["loc"]
    assert not torch.equal(before, after)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_model_without_modalities_says_so(name):
    with pytest.raises(ValueError, match="modalit"):
        build_model(name, {})


@pytest.mark.parametrize("name", ["vae", "jmvae-kl", "mfm"])
def test_a_convolutional_architecture_without_an_image_is_refused(name):
    from pixyz_zoo.datasets import load_dataset

    sequences = load_dataset("multimodal-sequences", "test").modalities
    with pytest.raises(ValueError, match="arch='conv' builds convolutional networks .* use arch='mlp'"):
        build_model(name, sequences, arch="conv", hidden=[8])
    build_model(name, sequences, arch="mlp", hidden=[8])


def test_a_user_loss_reads_the_models_own_symbols_with_their_values_and_warm_up(digits_train, tiny_options):
    """``vae.with_loss(... Parameter("beta") * KL ...)`` was refused: "the loss reads ['beta'], which no
    ... hyperparameter ([]) feeds", though the VAE has beta; a tensor where the loss belongs failed
    with "'Tensor' object has no attribute 'input_var'"."""
    from pixyz.losses import Parameter

    vae = VAE(digits_train.modalities, beta=3.0, **tiny_options)
    q, p_x, prior = vae.q, vae.p_x, vae.prior
    loss = (E(q, -LogProb(p_x)) + Parameter("beta") * KullbackLeibler(q, prior)).mean()
    model = vae.with_loss(loss)
    assert model.hyperparameters == {"beta": 3.0} and model.annealed == {"beta"}
    assert vae.with_loss(loss, {"beta": 0.5}).hyperparameters == {"beta": 0.5}
    assert vae.with_loss((E(q, -LogProb(p_x))).mean()).hyperparameters == {}  # beta not read: not carried
    assert math.isfinite(model.train_step(digits_train.first(8)))
    with pytest.raises(TypeError, match=r"loss must be a Pixyz loss expression .*got Tensor"):
        vae.with_loss(torch.tensor(1.0))
