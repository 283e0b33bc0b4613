"""A model assembled by hand from the zoo's distributions (as notebook 00 and the README do): the
mistakes a newcomer makes are refused with the distribution, the variable and the fix named, at
construction where the model tells, else at the first step instead of PyTorch's broadcasting error.
"""

from __future__ import annotations

import math

import pytest
import torch
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb, Parameter

from pixyz_zoo.distributions import MLP, BernoulliDecoder, GaussianEncoder, standard_normal
from pixyz_zoo.models import ZooModel

Z = 4


@pytest.fixture
def parts(digits_train):
    """q(z|x), p(x|z) (its network ending in the image's shape) and p(z) on the digits."""
    x = digits_train.modalities["x"]
    q = GaussianEncoder(MLP(x.dim, 2 * Z, (16,)), cond_var=["x"], name="q")
    network = torch.nn.Sequential(MLP(Z, x.dim, (16,)), torch.nn.Unflatten(1, x.shape))
    p_x = BernoulliDecoder(network, var="x", cond_var=["z"], name="p")
    return x, q, p_x, standard_normal("z", Z, name="p")


def elbo_loss(q, p_x, prior):
    return (E(q, -LogProb(p_x)) + KullbackLeibler(q, prior)).mean()


def test_a_correct_assembly_trains(parts, digits_train):
    x, q, p_x, prior = parts
    model = ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x * prior, inference=q)
    assert model.shape_mismatch(digits_train.first(8)) is None
    assert torch.isfinite(torch.tensor(model.train_step(digits_train.first(8))))


def test_a_decoder_of_flat_output_names_the_modality_shape(parts, digits_train):
    """Without its ``Unflatten`` the decoder failed with "The size of tensor a (64) must match the
    size of tensor b (8) at non-singleton dimension 3"."""
    x, q, _, prior = parts
    p_flat = BernoulliDecoder(MLP(Z, x.dim, (16,)), var="x", cond_var=["z"], name="p")
    model = ZooModel(
        elbo_loss(q, p_flat, prior), [p_flat, q], {"x": x}, generative=p_flat * prior, inference=q
    )
    batch = digits_train.first(8)
    expected = (
        r"p\(x\|z\) gives x of shape \(64,\) per example, but the modality x gives \(1, 8, 8\)"
        r".*Unflatten\(1, \(1, 8, 8\)\)"
    )
    with pytest.raises(ValueError, match=expected):
        model.train_step(batch)
    with pytest.raises(ValueError, match=expected):
        model.test_step(batch)


def test_a_prior_of_another_size_than_the_encoders_latent_is_named(parts, digits_train):
    x, q, p_x, _ = parts
    prior = standard_normal("z", 2 * Z, name="p")
    model = ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x * prior, inference=q)
    with pytest.raises(
        ValueError, match=r"p\(z\) gives z of shape \(8,\) per example, but q\(z\|x\) gives \(4,\)"
    ):
        model.train_step(digits_train.first(8))


def test_another_runtime_error_is_left_as_it_is(parts, digits_train, monkeypatch):
    x, q, p_x, prior = parts
    model = ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x * prior, inference=q)

    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(model, "evaluate_loss", broken)
    with pytest.raises(RuntimeError, match="something else"):
        model.train_step(digits_train.first(8))


def test_a_symbol_without_a_value_is_refused_at_construction(parts):
    """It failed at the first step with Pixyz's "Input keys are not valid, expected ['x', 'beta']"."""
    x, q, p_x, prior = parts
    loss = (E(q, -LogProb(p_x)) + Parameter("beta") * KullbackLeibler(q, prior)).mean()
    with pytest.raises(ValueError, match=r"the loss reads \['beta'\].*hyperparameters=\{'beta': 1.0\}"):
        ZooModel(loss, [p_x, q], {"x": x}, generative=p_x * prior, inference=q)
    with pytest.raises(ValueError, match=r"the test loss reads \['beta'\]"):
        ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, p_x * prior, q, test_loss=loss)
    ZooModel(loss, [p_x, q], {"x": x}, generative=p_x * prior, inference=q, hyperparameters={"beta": 1.0})


def test_a_distribution_left_out_of_the_trained_ones_is_refused(parts):
    """Leaving q out of the list trained the decoder alone, silently: q kept its initial weights."""
    x, q, p_x, prior = parts
    with pytest.raises(ValueError, match=r"the inference model's q\(z\|x\) has parameters no listed"):
        ZooModel(elbo_loss(q, p_x, prior), [p_x], {"x": x}, generative=p_x * prior, inference=q)
    with pytest.raises(ValueError, match=r"the generative model's p\(x\|z\) has parameters no listed"):
        ZooModel(elbo_loss(q, p_x, prior), [q], {"x": x}, generative=p_x * prior, inference=q)


def test_a_decoder_passed_as_the_generative_model_is_refused(parts):
    """``generative=p_x`` without the prior gave bounds computed without p(z), silently."""
    x, q, p_x, prior = parts
    with pytest.raises(
        ValueError, match=r"the generative model p\(x\|z\) is conditioned on \['z'\].*p_x \* prior"
    ):
        ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x, inference=q)
    with pytest.raises(ValueError, match=r"the inference model p\(x\|z\) is conditioned on \['z'\]"):
        ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x * prior, inference=p_x)


def test_modalities_declared_under_other_names_name_what_the_model_observes(parts):
    x, q, p_x, prior = parts
    with pytest.raises(ValueError, match=r"none of the declared modalities \['img'\].*observe \['x'\]"):
        ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"img": x}, generative=p_x * prior, inference=q)


def test_a_distribution_frozen_on_purpose_may_stay_out_of_the_trained_ones(parts, digits_train):
    x, q, p_x, prior = parts
    q.requires_grad_(False)  # a fixed, pretrained encoder: the decoder alone is trained
    before = [p.clone() for p in q.parameters()]
    model = ZooModel(elbo_loss(q, p_x, prior), [p_x], {"x": x}, generative=p_x * prior, inference=q)
    model.train_step(digits_train.first(8))
    assert all(torch.equal(a, b) for a, b in zip(before, q.parameters(), strict=True))


def test_a_product_of_experts_assembled_by_hand_infers_from_any_subset():
    """Generation from one modality of a hand-made product of experts was refused: "infers ['z']
    only from ['m', 't'], not from ['m']"."""
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.distributions import ProductOfGaussianExperts, decoder_for, decoder_network

    data = load_dataset("trimodal-digits", "test")
    modalities = {name: data.modalities[name] for name in ("m", "t")}
    experts = [
        GaussianEncoder(MLP(m.dim, 2 * Z, (16,)), cond_var=[n], name="q") for n, m in modalities.items()
    ]
    decoders = {n: decoder_for(m, decoder_network(m, Z, hidden=(16,))) for n, m in modalities.items()}
    prior = standard_normal("z", Z, name="p")
    q = ProductOfGaussianExperts(experts, prior=prior)
    loss = (E(q, -LogProb(decoders["m"]) - LogProb(decoders["t"])) + KullbackLeibler(q, prior)).mean()
    model = ZooModel(
        loss, [*experts, *decoders.values()], modalities, decoders["m"] * decoders["t"] * prior, q
    )
    batch = data.first(3)
    out = model.generate({"m": batch["m"]}, "m", targets=["t"], sample_latent=False)  # no t in the batch
    z = q.given(["m"]).get_params({"m": batch["m"]})["loc"]
    assert torch.equal(out["t"], model.decode({"z": z}, ["t"])["t"])  # the mean of q(z|m) p(z) decoded
    assert model.inference_for(["m", "t"]) is q


def test_an_encoder_mlp_without_its_flatten_is_named_with_the_image_shape(parts, digits_train):
    """An MLP over the image without ``Flatten`` failed with "mat1 and mat2 shapes cannot be
    multiplied (64x8 and 64x16)", naming neither the distribution nor the variable."""
    x, _, p_x, prior = parts
    network = torch.nn.Sequential(torch.nn.Linear(x.dim, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2 * Z))
    q = GaussianEncoder(network, cond_var=["x"], name="q")
    model = ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x * prior, inference=q)
    expected = (
        r"q\(z\|x\) cannot be evaluated on x of shape \(1, 8, 8\) \(the modality x\): mat1 and mat2 "
        r".*takes its 64 values after torch.nn.Flatten\(\)"
    )
    batch = digits_train.first(8)
    with pytest.raises(ValueError, match=expected):
        model.train_step(batch)
    with pytest.raises(ValueError, match=expected):
        model.test_step(batch)


def test_a_decoder_sized_for_another_latent_is_named_with_the_latent_shape(parts, digits_train):
    x, q, _, prior = parts
    network = torch.nn.Sequential(MLP(Z + 2, x.dim, (16,)), torch.nn.Unflatten(1, x.shape))
    p_x = BernoulliDecoder(network, var="x", cond_var=["z"], name="p")
    model = ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x * prior, inference=q)
    with pytest.raises(
        ValueError,
        match=r"p\(x\|z\) cannot be evaluated on z of shape \(4,\) \(drawn from q\(z\|x\)\): .*"
        r"its network must take these shapes per example$",
    ):
        model.train_step(digits_train.first(8))


def test_a_model_of_another_dtype_than_the_batch_takes_it_in_its_own_dtype(parts, digits_train):
    """A float64 model fed the float32 digits is no shape problem (no shape diagnosis is made), and
    the batch is taken in the parameters' dtype: it failed with PyTorch's "must have the same dtype"."""
    x, q, p_x, prior = parts
    model = ZooModel(elbo_loss(q, p_x, prior), [p_x, q], {"x": x}, generative=p_x * prior, inference=q)
    model.distributions.double()
    batch = digits_train.first(8)
    assert model.shape_mismatch(batch) is None
    assert math.isfinite(model.train_step(batch))
    assert next(iter(model.distributions.parameters())).dtype == torch.float64
