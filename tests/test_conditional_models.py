"""CVAE and CMMA, the conditional baselines of the JMVAE paper (Table 1, app. A.1)."""

import json

import pytest
import torch
from torch import distributions as td

from pixyz_zoo.distributions import IterativeSampling
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import MODELS, build_model
from pixyz_zoo.models.conditional import CMMA, CVAE
from pixyz_zoo.training import Trainer
from tests.conftest import requires_cuda

TINY = {"z_dim": 4, "hidden": [32]}
STANDARD = td.Normal(0.0, 1.0)


def normal(encoder, inputs) -> td.Normal:
    params = encoder.get_params(inputs)
    return td.Normal(params["loc"], params["scale"])


def options(name: str) -> dict:
    return {**TINY, "iterative_steps": 3} if name == "cvae" else dict(TINY)


def test_registered_with_options(digits_train):
    assert {"cvae", "cmma"} <= set(MODELS)
    for name in ("cvae", "cmma"):
        model = build_model(name, digits_train.modalities, **options(name))
        assert model.target == "x" and model.condition == "y"  # default: the image is generated
        assert json.loads(json.dumps(model.config)) == model.config and model.config["target"] == "x"


def test_printouts(digits_train):
    text = str(CVAE(digits_train.modalities, **TINY))
    assert "p(x,z|y) = p(x|z,y)p(z)" in text and "Inference model:\n  q(z|x,y)" in text
    assert r"\mathbb{E}_{q(z|x,y)} \left[- \log p(x|z,y) \right]" in text
    assert r"\beta D_{KL} \left[q(z|x,y)||p(z) \right]" in text
    assert r"q(z|y) \approx q(z|\hat{x}^{(N)},y)" in text and r"\int p(x|z,y)" in text
    text = str(CMMA(digits_train.modalities, **TINY))
    assert "p(x,z|y) = p(x|z)p(z|y)" in text
    assert r"\beta D_{KL} \left[q(z|x,y)||p(z|y) \right]" in text and r"\log p(x|z)" in text


def test_cvae_loss_by_hand(digits_train):
    model = CVAE(digits_train.modalities, **TINY)
    batch = digits_train.first(6)
    torch.manual_seed(3)
    loss = model.loss_cls.eval({**batch, "beta": 0.25})
    torch.manual_seed(3)
    q = normal(model.q, batch)
    z = q.rsample()
    logits = model.p_t.network(z, batch["y"])
    assert logits.shape == (6, 1, 8, 8)
    inputs = torch.cat([z, batch["y"]], 1)  # the decoder reads [z, c]
    torch.testing.assert_close(logits, model.p_t.network.network(inputs))
    log_px = td.Bernoulli(logits=logits).log_prob(batch["x"]).flatten(1).sum(1)
    expected = -log_px + 0.25 * td.kl_divergence(q, STANDARD).sum(1)
    torch.testing.assert_close(loss, expected.mean(), atol=1e-4, rtol=1e-5)


def test_cmma_loss_by_hand(digits_train):
    model = CMMA(digits_train.modalities, target="y", **TINY)
    assert model.target == "y" and model.condition == "x"
    batch = digits_train.first(6)
    torch.manual_seed(4)
    loss = model.loss_cls.eval({**batch, "beta": 0.5})
    torch.manual_seed(4)
    q, prior = normal(model.q, batch), normal(model.prior, {"x": batch["x"]})
    z = q.rsample()
    log_py = td.OneHotCategorical(logits=model.p_t.network(z)).log_prob(batch["y"])
    expected = -log_py + 0.5 * td.kl_divergence(q, prior).sum(1)
    torch.testing.assert_close(loss, expected.mean(), atol=1e-4, rtol=1e-5)


def test_single_conditional_inference(digits_train):
    """A.1: the CVAE imputes the target by iterative sampling; CMMA samples p(z|c)."""
    cvae = CVAE(digits_train.modalities, **options("cvae"))
    q_y = cvae.inference_for(["y"])
    assert isinstance(q_y, IterativeSampling) and q_y.steps == 3 and q_y.decoders["x"] is cvae.p_t
    cvae.iterative_steps = 0
    batch = digits_train.first(5)
    zero = cvae.q.get_params({"x": torch.zeros_like(batch["x"]), "y": batch["y"]})
    torch.testing.assert_close(cvae.inference_for(["y"]).get_params(batch)["loc"], zero["loc"])
    assert cvae.inference_for(["x", "y"]) is cvae.q and cvae.inference_for([]) is cvae.prior
    cmma = CMMA(digits_train.modalities, **TINY)
    assert cmma.inference_for(["y"]) is cmma.prior and cmma.inference_for(["y", "x"]) is cmma.q


def test_wrong_directions_are_errors_that_name_the_fix(digits_train):
    batch = digits_train.first(4)
    for cls in (CVAE, CMMA):
        model = cls(digits_train.modalities, **TINY)
        with pytest.raises(ValueError, match=r"cannot infer z from 'x' alone.*target='y'"):
            model.inference_for(["x"])
        with pytest.raises(ValueError, match=r"generates only 'x'; 'y' is its condition.*target='y'"):
            model.generate(batch, given=["x", "y"], targets=["y"])
        with pytest.raises(ValueError, match="generates only"):
            model.log_likelihood("y", {"z": torch.zeros(4, 4)}, batch)
    with pytest.raises(ValueError, match="pass given=\\['y'\\]"):
        CMMA(digits_train.modalities, **TINY).generate(batch, given=[], n=4)
    three = {**digits_train.modalities, "w": Modality("w", (2,), "categorical")}
    for cls in (CVAE, CMMA):
        with pytest.raises(ValueError, match="exactly 2 modalities"):
            cls(three, **TINY)
    with pytest.raises(KeyError, match="target='v'"):
        CVAE(digits_train.modalities, target="v", **TINY)


@pytest.mark.parametrize("name", ["cvae", "cmma"])
@pytest.mark.parametrize("target", ["x", "y"])
def test_generation_in_the_trained_direction(digits_train, name, target):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, target=target, **options(name))
    condition = model.condition
    batch = digits_train.first(5)
    givens = [[condition], [target, condition]] + ([[]] if name == "cvae" else [])
    for given in givens:
        out = model.generate(batch, given=given, n=5)
        assert list(out) == [target]
        if target == "x":
            assert out["x"].shape == (5, 1, 8, 8) and 0 <= out["x"].min() and out["x"].max() <= 1
        else:
            assert out["y"].shape == (5, 10)
            torch.testing.assert_close(out["y"].sum(1), torch.ones(5))
    assert list(model.reconstruct(batch)) == [target]
    # the single conditional log-likelihood of A.1: log p(t|z), z ~ q(z|c), sample-major rows
    latents = model.sample_latents(batch, [condition], n_samples=3)
    assert latents["z"].shape == (15, 4)
    ll = model.log_likelihood(target, latents, batch)
    assert ll.shape == (15,) and torch.isfinite(ll).all() and (ll <= 0).all()


def test_sample_latents_rows_are_sample_major(digits_train):
    torch.manual_seed(0)
    model = CMMA(digits_train.modalities, **TINY)
    last = model.prior.network.net[-1]
    with torch.no_grad():  # p(z|y) with scale ~1e-4: samples are its means
        last.weight[4:] = 0.0
        last.bias[4:] = -30.0
    batch = digits_train.first(4)
    means = model.encode(batch, given=["y"])["z"]
    latents = model.sample_latents(batch, ["y"], n_samples=3)["z"]
    for s in range(3):
        torch.testing.assert_close(latents[s * 4 : (s + 1) * 4], means, atol=1e-2, rtol=0)
    assert not torch.allclose(means[0], means[1], atol=1e-2)


@pytest.mark.parametrize("name", ["cvae", "cmma"])
def test_short_training_improves_the_test_loss(digits_train, digits_test, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, lr=3e-3, **options(name))
    trainer = Trainer(model, digits_train, digits_test, epochs=3, batch_size=64, progress=False)
    before = trainer.test_loss()
    history = trainer.fit()
    assert history[-1]["test_loss"] < before - 10.0, (name, before, history)


@pytest.mark.parametrize("name", ["cvae", "cmma"])
def test_checkpoint_round_trip(digits_train, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, target="y", **options(name))
    batch = digits_train.first(6)
    model.train_step(batch)
    fresh = build_model(name, digits_train.modalities, **json.loads(json.dumps(model.config)))
    assert fresh.target == "y"
    fresh.load_state(model.state())
    for given in (["x", "y"], ["x"]):
        torch.manual_seed(1)
        a = model.generate(batch, given=given)["y"]
        torch.manual_seed(1)
        torch.testing.assert_close(a, fresh.generate(batch, given=given)["y"])


@requires_cuda
@pytest.mark.parametrize("name", ["cvae", "cmma"])
def test_on_cuda(digits_train, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, **options(name)).to("cuda")
    batch = digits_train.first(8)
    assert model.train_step(batch) > 0
    for given in (["y"], ["x", "y"]):
        out = model.generate(batch, given=given)
        assert out["x"].device.type == "cuda" and out["x"].shape == (8, 1, 8, 8)
    latents = model.sample_latents(batch, ["y"], n_samples=2)
    assert model.log_likelihood("x", latents, batch).shape == (16,)
