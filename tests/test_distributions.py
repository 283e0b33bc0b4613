import pytest
import torch
from pixyz.distributions.distributions import DistributionBase
from pixyz.losses import KullbackLeibler
from torch import distributions as td

from pixyz_zoo.distributions import (
    ConvDecoderNet,
    ConvEncoderNet,
    GaussianEncoder,
    decoder_for,
    decoder_network,
    decoder_output_channels,
    encoder_network,
    standard_normal,
)
from pixyz_zoo.distributions.shared_parameters import SharedParameters, shared_parameters
from pixyz_zoo.modalities import Modality

torch.manual_seed(0)


@pytest.mark.parametrize("size", [8, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_presets_round_trip_shapes(size, channels):
    shape = (channels, size, size)
    assert ConvEncoderNet(shape, 10)(torch.zeros(2, *shape)).shape == (2, 10)
    assert ConvDecoderNet(5, shape)(torch.zeros(2, 5)).shape == (2, *shape)


def test_conv_preset_refuses_unknown_size():
    with pytest.raises(ValueError, match="no convolutional preset for 16x16"):
        ConvEncoderNet((1, 16, 16), 4)


@pytest.mark.parametrize(
    "build", [lambda: ConvEncoderNet((1, 28, 56), 4), lambda: ConvDecoderNet(4, (1, 28, 56))]
)
def test_conv_presets_refuse_a_non_square_image_and_name_the_fix(build):
    with pytest.raises(
        ValueError, match=r"square images, got 28x56. Use the MLP architecture \(--arch mlp\)"
    ):
        build()


def test_gaussian_encoder_matches_its_network():
    x = Modality("x", (1, 8, 8), "bernoulli")
    q = GaussianEncoder(encoder_network([x], 2 * 3, hidden=(16,)), cond_var=["x"])
    data = torch.rand(5, 1, 8, 8)
    h = q.network(data)
    params = q.get_params({"x": data})
    assert torch.allclose(params["loc"], h[:, :3])
    assert torch.allclose(params["scale"], torch.nn.functional.softplus(h[:, 3:]) + 1e-4)
    z = q.sample({"x": data}, reparam=True)["z"]
    z.sum().backward()
    assert q.network.net[0].weight.grad is not None


def test_two_input_encoder_prints_joint_condition():
    x, w = Modality("x", (1, 8, 8), "bernoulli"), Modality("w", (10,), "categorical")
    q = GaussianEncoder(encoder_network([x, w], 8, arch="conv"), cond_var=["x", "w"])
    assert q.prob_text == "q(z|x,w)"
    assert q.sample({"x": torch.rand(3, 1, 8, 8), "w": torch.eye(10)[:3]})["z"].shape == (3, 4)


def _decoder(modality, scale=None):
    net = decoder_network(modality, 4, hidden=(16,), out_channels=decoder_output_channels(modality, scale))
    return decoder_for(modality, net, scale=scale)


def test_bernoulli_decoder_log_prob_is_cross_entropy_also_for_grey_levels():
    x = Modality("x", (1, 8, 8), "bernoulli")
    p = _decoder(x)
    z, target = torch.randn(3, 4), torch.rand(3, 1, 8, 8)
    logits = p.network(z)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert torch.allclose(p.get_log_prob({"x": target, "z": z}), expected.flatten(1).sum(1), atol=1e-5)
    assert torch.allclose(p.sample_mean({"z": z}), torch.sigmoid(logits))


def test_categorical_decoder_log_prob():
    w = Modality("w", (10,), "categorical")
    p = _decoder(w)
    z, target = torch.randn(3, 4), torch.eye(10)[[1, 5, 9]]
    expected = torch.log_softmax(p.network(z), -1)[torch.arange(3), [1, 5, 9]]
    assert torch.allclose(p.get_log_prob({"w": target, "z": z}), expected, atol=1e-6)
    assert p.sample({"z": z})["w"].sum(-1).eq(1).all()


@pytest.mark.parametrize("likelihood, torch_cls", [("gaussian", td.Normal), ("laplace", td.Laplace)])
@pytest.mark.parametrize("scale", [None, 0.5, "learned", "per-example"])
def test_location_scale_decoders(likelihood, torch_cls, scale):
    m = Modality("x", (6,), likelihood)
    p = _decoder(m, scale)
    z, target = torch.randn(3, 4), torch.randn(3, 6)
    params = p.get_params({"z": z})
    h = p.network(z)
    if scale == "per-example":
        assert torch.allclose(params["loc"], h[:, :6])
    else:
        assert torch.allclose(params["loc"], h)
    if isinstance(scale, float):
        assert torch.allclose(params["scale"], torch.full((3, 6), scale))
    expected = torch_cls(params["loc"], params["scale"]).log_prob(target).sum(-1)
    assert torch.allclose(p.get_log_prob({"x": target, "z": z}), expected)
    if scale == "learned":
        assert any(n == "log_scale" for n, _ in p.named_parameters())


@pytest.mark.parametrize("likelihood, torch_cls", [("gaussian", td.Normal), ("laplace", td.Laplace)])
@pytest.mark.parametrize("scale", [None, 0.5, "learned", "per-example"])
def test_location_scale_log_density_is_torchs_to_the_bit(likelihood, torch_cls, scale):
    """The decoders' log-density (which takes a fixed scale's log once, not per element) gives exactly
    torch.distributions' values and gradients, for every kind of scale."""
    torch.manual_seed(0)
    m = Modality("x", (3, 5, 7), likelihood)
    p = _decoder(m, scale)
    z, target = torch.randn(4, 4), torch.randn(4, 3, 5, 7)
    params = p.get_params({"z": z})
    loc = params["loc"].detach().requires_grad_()
    ours = p.distribution_torch_class(loc, params["scale"]).log_prob(target)
    (ours_grad,) = torch.autograd.grad(ours.sum(), loc)
    theirs = torch_cls(loc, params["scale"], validate_args=False).log_prob(target)
    (theirs_grad,) = torch.autograd.grad(theirs.sum(), loc)
    assert ours.shape == theirs.shape == target.shape
    assert torch.equal(ours, theirs)
    assert torch.equal(ours_grad, theirs_grad)


def test_bad_decoder_scale_is_explained():
    with pytest.raises(ValueError, match="positive number, 'learned' or 'per-example'"):
        _decoder(Modality("x", (6,), "gaussian"), scale=-1.0)


def test_standard_normal_prior_and_analytic_kl():
    prior = standard_normal("z", 3)
    q = GaussianEncoder(torch.nn.Linear(2, 6), cond_var=["a"])
    a = torch.randn(4, 2)
    params = q.get_params({"a": a})
    expected = td.kl_divergence(td.Normal(params["loc"], params["scale"]), td.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(KullbackLeibler(q, prior).eval({"a": a}), expected, atol=1e-6)
    assert prior.sample(batch_n=7)["z"].shape == (7, 3)


def test_sequence_categorical_decoder_sums_positions() -> None:
    """A text modality (length, classes): log p(t|z) is the sum of per-position log-softmaxes."""
    from pixyz_zoo.distributions import decoder_for, decoder_network
    from pixyz_zoo.modalities import Modality

    text = Modality("t", (8, 71), "categorical")
    assert text.is_sequence and not text.is_label
    decoder = decoder_for(text, decoder_network(text, 4, "mlp", (16,)))
    z = torch.randn(3, 4)
    t = torch.nn.functional.one_hot(torch.randint(0, 71, (3, 8)), 71).float()
    logits = decoder.get_params({"z": z})["logits"]
    expected = (torch.log_softmax(logits, -1) * t).sum((1, 2))
    torch.testing.assert_close(decoder.get_log_prob({"z": z, "t": t}), expected)
    assert decoder.sample_mean({"z": z}).shape == (3, 8, 71)


def _log_prob_and_gradients(p, inputs, **options):
    p.zero_grad()
    value = p.get_log_prob(inputs, **options)
    value.sum().backward()
    return value.detach(), [q.grad.clone() for q in p.parameters() if q.grad is not None]


def _with_pixyzs_own_methods(monkeypatch, compute):
    """``compute()`` with Pixyz's ``DistributionBase`` methods in place of the mixin's fast paths."""
    with monkeypatch.context() as patched:
        patched.setattr(
            SharedParameters, "_network_parameters", lambda self, d: DistributionBase.get_params(self, d)
        )
        patched.setattr(SharedParameters, "set_dist", DistributionBase.set_dist)
        patched.setattr(SharedParameters, "get_log_prob", DistributionBase.get_log_prob)
        return compute()


@pytest.mark.parametrize(
    "likelihood, shape, scale",
    [
        ("bernoulli", (1, 8, 8), None),
        ("bernoulli", (6,), None),
        ("categorical", (10,), None),
        ("gaussian", (3, 4, 4), 0.5),
        ("gaussian", (5,), "learned"),
        ("gaussian", (5,), "per-example"),
        ("laplace", (3, 4, 4), None),
    ],
)
@pytest.mark.parametrize(
    "options", [{}, {"feature_dims": [1]}, {"feature_dims": []}, {"sum_features": False}], ids=str
)
def test_log_densities_are_pixyzs_to_the_bit(monkeypatch, likelihood, shape, scale, options):
    """The mixin's ``get_log_prob`` (and the Bernoulli decoder's negation after the sum) and its
    ``get_params`` give Pixyz's values and gradients exactly. A fixed-scale Gaussian or Laplace
    summed over its features (the constant and the scale's division once per example, not per
    element) gives them up to float rounding."""
    torch.manual_seed(0)
    m = Modality("x", shape, likelihood)
    p = _decoder(m, scale)
    if likelihood == "categorical":
        target = torch.eye(shape[0])[torch.randint(0, shape[0], (5,))]
    elif likelihood == "bernoulli":
        target = torch.rand(5, *shape)  # grey levels: every term of the sum differs
    else:
        target = torch.randn(5, *shape)
    inputs = {"z": torch.randn(5, 4), "x": target}
    if likelihood == "categorical" and options.get("feature_dims") == [1]:  # one value per example
        for compute in (lambda f: f(), lambda f: _with_pixyzs_own_methods(monkeypatch, f)):
            with pytest.raises(IndexError, match="Dimension out of range"):
                compute(lambda: _log_prob_and_gradients(p, inputs, **options))
        return
    ours = _log_prob_and_gradients(p, inputs, **options)
    pixyz = _with_pixyzs_own_methods(monkeypatch, lambda: _log_prob_and_gradients(p, inputs, **options))
    assert len(ours[1]) == len(pixyz[1]) > 0
    fixed_scale = likelihood in ("gaussian", "laplace") and scale not in ("learned", "per-example")
    if fixed_scale and options.get("sum_features", True):
        torch.testing.assert_close(ours[0], pixyz[0], rtol=1e-6, atol=1e-5)
        for a, b in zip(ours[1], pixyz[1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        return
    assert torch.equal(ours[0], pixyz[0])
    assert all(torch.equal(a, b) for a, b in zip(ours[1], pixyz[1], strict=True))


def test_encoder_parameters_and_log_density_are_pixyzs_to_the_bit(monkeypatch):
    torch.manual_seed(0)
    x = Modality("x", (1, 8, 8), "bernoulli")
    q = GaussianEncoder(encoder_network([x], 2 * 3, hidden=(16,)), cond_var=["x"])
    inputs = {"x": torch.rand(5, 1, 8, 8), "z": torch.randn(5, 3)}
    ours = (q.get_params({"x": inputs["x"]}), _log_prob_and_gradients(q, inputs))
    pixyz = _with_pixyzs_own_methods(
        monkeypatch, lambda: (q.get_params({"x": inputs["x"]}), _log_prob_and_gradients(q, inputs))
    )
    assert ours[0].keys() == pixyz[0].keys() == {"loc", "scale"}
    assert all(torch.equal(ours[0][k], pixyz[0][k]) for k in ours[0])
    assert torch.equal(ours[1][0], pixyz[1][0])
    assert all(torch.equal(a, b) for a, b in zip(ours[1][1], pixyz[1][1], strict=True))


def test_one_torch_distribution_per_parameters_within_a_loss_evaluation():
    q = GaussianEncoder(torch.nn.Linear(2, 6), cond_var=["a"])
    a = torch.randn(4, 2)
    with shared_parameters():
        q.set_dist({"a": a})
        first = q.dist
        q.set_dist({"a": a})
        assert q.dist is first  # the KL and the sampling of one loss share it
        q.set_dist({"a": a.clone()})
        assert q.dist is not first  # other inputs, other parameters
    with shared_parameters():
        q.set_dist({"a": a})
        assert q.dist is not first  # a new block: fresh parameters after an optimiser step
    q.set_dist({"a": a})
    assert q.dist is not first


def test_the_standard_normal_prior_is_pixyzs_to_the_bit(monkeypatch):
    prior = standard_normal("z", 3)
    z = torch.randn(4, 3)

    def compute():
        prior.set_dist({})
        return prior.get_params({}), prior.dist, prior.get_log_prob({"z": z})

    ours, pixyz = compute(), _with_pixyzs_own_methods(monkeypatch, compute)
    assert all(torch.equal(ours[0][k], pixyz[0][k]) for k in ("loc", "scale"))
    assert ours[0].keys() == pixyz[0].keys()
    assert torch.equal(ours[1].loc, pixyz[1].loc) and torch.equal(ours[1].scale, pixyz[1].scale)
    assert torch.equal(ours[2], pixyz[2])


@pytest.mark.parametrize("p_shape", [(6, 3), (1, 3)], ids=["batch", "one-row"])
def test_the_kl_to_the_standard_normal_is_torchs_to_the_bit(p_shape):
    """KL(q || N(0, I)) as torch computes it for two Gaussians, values and gradients, to the bit; and
    where the prior would widen q's batch, torch's own function."""
    torch.manual_seed(0)
    prior = standard_normal("z", 3)
    prior.set_dist({})
    loc = torch.randn(p_shape, requires_grad=True)
    raw = torch.randn(p_shape, requires_grad=True)

    def q() -> td.Normal:
        return td.Normal(loc, torch.nn.functional.softplus(raw) + 1e-4)

    ours = td.kl_divergence(q(), prior.dist)
    ours_grads = torch.autograd.grad(ours.sum(), [loc, raw])
    theirs = td.kl._kl_normal_normal(q(), td.Normal(prior.dist.loc, prior.dist.scale))
    theirs_grads = torch.autograd.grad(theirs.sum(), [loc, raw])
    assert ours.shape == theirs.shape == p_shape
    assert torch.equal(ours, theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours_grads, theirs_grads, strict=True))
    wide = standard_normal("z", 3)
    wide.set_dist({}, batch_n=5)
    narrow = td.Normal(loc[:1].detach(), torch.ones(1, 3))
    assert td.kl_divergence(narrow, wide.dist).shape == (5, 3)


def test_variable_names_are_strings_and_one_name_may_be_given_alone():
    """``standard_normal(4)`` built a prior over a variable named 4, and the model then said the
    decoder's z came from no prior; ``GaussianEncoder(net, "x1")`` read the condition as x and 1."""
    from pixyz_zoo.distributions import GaussianEncoder, decoder_for, standard_normal
    from pixyz_zoo.modalities import Modality

    with pytest.raises(
        TypeError, match=r"latent's name, a string such as 'z', got 4.*standard_normal\('z', 4\)"
    ):
        standard_normal(4)
    with pytest.raises(ValueError, match=r"dim \(the latent's size\) must be an integer >= 1, got 0"):
        standard_normal("z", 0)
    assert standard_normal("w", 3).var == ["w"]
    encoder = GaussianEncoder(torch.nn.Linear(2, 4), "x1")
    assert encoder.cond_var == ["x1"] and encoder.var == ["z"]
    with pytest.raises(TypeError, match=r"var is one variable's name, a string such as 'z', got 3"):
        GaussianEncoder(torch.nn.Linear(2, 4), ["x"], var=3)
    decoder = decoder_for(Modality("x1", (2,), "gaussian"), torch.nn.Linear(2, 2), "z1")
    assert decoder.var == ["x1"] and decoder.cond_var == ["z1"]
    with pytest.raises(TypeError, match=r"variable names are strings such as 'x' or 'z', got \[2\]"):
        decoder_for(Modality("x1", (2,), "gaussian"), torch.nn.Linear(2, 2), ["z", 2])


def test_an_encoder_network_of_an_odd_number_of_features_is_named():
    """7 features were split into a mean of 4 and a scale of 3, and the model reported that the
    network could not take its input ("The size of tensor a (4) must match the size of tensor b (3)")."""
    from pixyz_zoo.distributions import GaussianEncoder

    q = GaussianEncoder(torch.nn.Linear(2, 7), ["x"])
    with pytest.raises(
        ValueError, match=r"network of q\(z\|x\) gives 7 features per example; it must give 2 \*"
    ):
        q.sample({"x": torch.zeros(3, 2)})


def test_building_blocks_refuse_arguments_a_newcomer_gets_wrong_naming_the_fix():
    """``MLP(4, 2, 8)`` failed with "'int' object is not iterable", ``MLP(0, 2)`` and
    ``LearnedUpdate(0)`` built layers of no input, ``encoder_network(data.modalities, ...)`` failed
    with "'str' object has no attribute 'dim'", ``GaussianEncoder(min_scale=-1)`` was taken and
    ``negative_elbo(q, p_x, prior)`` failed with "'BernoulliDecoder' object is not iterable"."""
    from pixyz_zoo.distributions import MLP, LearnedUpdate, decoder_for, decoder_network, encoder_network
    from pixyz_zoo.losses import negative_elbo

    x = Modality("x", (1, 8, 8), "bernoulli")
    with pytest.raises(
        TypeError, match=r"hidden is a list of hidden-layer widths, e\.g\. \[8\] for one layer"
    ):
        MLP(4, 2, 8)
    with pytest.raises(TypeError, match=r"e\.g\. \[8\] for one layer"):
        decoder_network(x, 2, hidden=8)
    with pytest.raises(ValueError, match=r"each width of hidden must be an integer >= 1, got 0"):
        MLP(4, 2, [8, 0])
    with pytest.raises(ValueError, match=r"in_dim must be an integer >= 1, got 0"):
        MLP(0, 2)
    with pytest.raises(ValueError, match=r"z_dim must be an integer >= 1, got 0"):
        LearnedUpdate(0)
    assert MLP(4, 2, []).net[0].in_features == 4  # no hidden layer: one linear map
    with pytest.raises(TypeError, match=r"pass list\(modalities\.values\(\)\).*not the dict"):
        encoder_network({"x": x}, 4, hidden=[8])
    with pytest.raises(ValueError, match=r"min_scale, the floor added to the scale, must be a number >= 0"):
        GaussianEncoder(MLP(64, 4, [8]), cond_var=["x"], min_scale=-1)
    q = GaussianEncoder(encoder_network(x, 4, hidden=[8]), cond_var=["x"])
    p_x = decoder_for(x, decoder_network(x, 2, hidden=[8]))
    prior = standard_normal("z", 2)
    assert str(negative_elbo(q, p_x, prior)) == str(negative_elbo(q, [p_x], prior))
