"""Iterative sampling (JMVAE paper sec. 3.3, eq. 6) checked against hand-run chains."""

import pytest
import torch
from torch import distributions as td

from pixyz_zoo.distributions import IterativeSampling
from pixyz_zoo.models import JMVAE

TINY = {"z_dim": 3, "hidden": [16]}


@pytest.fixture
def model(digits_train):
    torch.manual_seed(0)
    return JMVAE(digits_train.modalities, **TINY)


def sampler(model, steps, missing=("x",)):
    shapes = {m: model.modalities[m].shape for m in missing}
    return IterativeSampling(model.q, list(model.decoders.values()), shapes, steps=steps)


def test_zero_steps_is_zero_filling(model, digits_train):
    batch = digits_train.first(6)
    q_y = sampler(model, 0)
    assert q_y.cond_var == ["y"] and q_y.var == ["z"]
    zero = {"x": torch.zeros_like(batch["x"]), "y": batch["y"]}
    expected = model.q.get_params(zero)
    params = q_y.get_params({"y": batch["y"]})
    torch.testing.assert_close(params["loc"], expected["loc"])
    torch.testing.assert_close(params["scale"], expected["scale"])
    torch.testing.assert_close(q_y.sample_mean({"y": batch["y"]}), expected["loc"])
    assert torch.equal(q_y.impute({"y": batch["y"]})["x"], torch.zeros_like(batch["x"]))


def test_two_steps_follow_the_transition_kernel(model, digits_train):
    """z ~ q(z|x_n, y), x_{n+1} ~ p(x|z) twice, then q(z|x_2, y): replayed by hand with the same seed."""
    y = digits_train.first(5)["y"]
    torch.manual_seed(11)
    params = sampler(model, 2).get_params({"y": y})

    torch.manual_seed(11)
    x = torch.zeros(5, 1, 8, 8)
    with torch.no_grad():
        for _ in range(2):
            p = model.q.get_params({"x": x, "y": y})
            z = td.Normal(p["loc"], p["scale"]).sample()
            x = td.Bernoulli(logits=model.decoders["x"].network(z)).sample()
    expected = model.q.get_params({"x": x, "y": y})
    assert x.sum() > 0  # the chain moved away from the zero start
    torch.testing.assert_close(params["loc"], expected["loc"])
    torch.testing.assert_close(params["scale"], expected["scale"])


def test_label_imputations_are_one_hot_samples(model, digits_train):
    x = digits_train.first(7)["x"]
    imputed = sampler(model, 3, missing=("y",)).impute({"x": x})["y"]
    assert imputed.shape == (7, 10)
    assert torch.equal(imputed.sum(1), torch.ones(7)) and set(imputed.unique().tolist()) == {0.0, 1.0}


def test_chains_are_independent_per_row(model, digits_train):
    batch = digits_train.first(4)
    q_y = sampler(model, 5)
    other = batch["y"].clone()
    other[1:] = other[1:].roll(1, dims=1)  # change every row but the first
    torch.manual_seed(3)
    a = q_y.impute({"y": batch["y"]})["x"]
    torch.manual_seed(3)
    b = q_y.impute({"y": other})["x"]
    assert torch.equal(a[0], b[0])  # row 0 does not see the other rows
    # the same example repeated gets its own chain per row, not a shared one
    same = batch["y"][:1].repeat(16, 1)
    chains = q_y.impute({"y": same})["x"]
    assert len({tuple(row.flatten().tolist()) for row in chains}) > 1


def test_shapes_sampling_log_prob_and_gradient(model, digits_train):
    batch = digits_train.first(6)
    q_y = sampler(model, 4)
    z = q_y.sample({"y": batch["y"]}, return_all=False)["z"]
    assert z.shape == (6, 3)
    assert q_y.sample({"y": batch["y"]}, sample_shape=[2], return_all=False)["z"].shape == (2, 6, 3)
    log_q = q_y.get_log_prob({"y": batch["y"], "z": z})
    assert log_q.shape == (6,) and torch.isfinite(log_q).all()
    # the chain runs without gradient; the final encoder call is differentiable
    z = q_y.sample({"y": batch["y"]}, reparam=True, return_all=False)["z"]
    z.sum().backward()
    grads = [p.grad for p in model.q.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_several_missing_modalities_and_a_transition_distribution(digits_train):
    from pixyz_zoo.modalities import Modality

    modalities = {**digits_train.modalities, "w": Modality("w", (2,), "categorical")}
    torch.manual_seed(0)
    model = JMVAE(modalities, **TINY)
    batch = digits_train.first(5)
    q_y = IterativeSampling(
        model.q, list(model.decoders.values()), {"x": (1, 8, 8), "w": (2,)}, steps=3, transition=model.q
    )
    assert q_y.cond_var == ["y"]
    imputed = q_y.impute({"y": batch["y"]})
    assert imputed["x"].shape == (5, 1, 8, 8) and imputed["w"].shape == (5, 2)
    calls = [0]
    model.q.network.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    q_y.sample({"y": batch["y"]})
    assert calls[0] == 3 + 1  # one transition per step, then the final encoder


def test_printed_text_and_steps_attribute(model):
    q_y = sampler(model, 5)
    text = q_y.prob_joint_factorized_and_text
    assert text.startswith(r"q(z|y) \approx q(z|\hat{x}^{(N)},y)")
    assert r"\int p(x|z)q(z|\hat{x}^{(n)},y) dz" in text and r"\hat{x}^{(0)}=0" in text and "N=5" in text
    q_y.steps = 100
    assert "N=100" in q_y.prob_joint_factorized_and_text


def test_errors_name_the_problem(model):
    decoders = list(model.decoders.values())
    with pytest.raises(ValueError, match="not inputs of"):
        IterativeSampling(model.q, decoders, {"w": (2,)})
    with pytest.raises(ValueError, match="needs a decoder"):
        IterativeSampling(model.q, [model.decoders["y"]], {"x": (1, 8, 8)})
    with pytest.raises(ValueError, match="nothing to condition on"):
        IterativeSampling(model.q, decoders, {"x": (1, 8, 8), "y": (10,)})
    with pytest.raises(ValueError, match=">= 0"):
        IterativeSampling(model.q, decoders, {"x": (1, 8, 8)}, steps=-1)
    with pytest.raises(ValueError, match="Gaussian encoder"):
        IterativeSampling(model.decoders["x"], decoders, {"z": (3,)})
    with pytest.raises(ValueError, match=r"needs the observed modalities \['y'\]"):
        sampler(model, 1).get_params({"x": torch.zeros(2, 1, 8, 8)})
