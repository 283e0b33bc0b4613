"""Product and mixture of experts checked against closed forms computed here with torch."""

# pixyz_zoo first: it turns Pixyz's parameter cache off before pixyz.distributions is imported.
import pixyz_zoo  # noqa: F401, I001

import pytest
import torch
import torch.nn.functional as F
from pixyz.distributions import Normal
from pixyz.losses import Expectation, KullbackLeibler
from torch import distributions as td
from torch import nn

from pixyz_zoo.distributions import MixtureOfExperts, ProductOfGaussianExperts

B, X_DIM, Z_DIM = 5, 3, 4


class LinearGaussian(Normal):
    """q(z|<cond>) with loc and softplus scale from linear layers."""

    def __init__(self, cond: str, in_dim: int = X_DIM, name: str = "q") -> None:
        super().__init__(var=["z"], cond_var=[cond], name=name)
        self.cond = cond
        self.loc = nn.Linear(in_dim, Z_DIM)
        self.scale = nn.Linear(in_dim, Z_DIM)

    def forward(self, **inputs):
        h = inputs[self.cond]
        return {"loc": self.loc(h), "scale": F.softplus(self.scale(h)) + 0.1}


def expert_params(expert: Normal, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loc and scale of a LinearGaussian computed directly from its layers."""
    return expert.loc(inp), F.softplus(expert.scale(inp)) + 0.1


def closed_form(locs, scales):
    """Wu & Goodman (2018): precisions add, loc is the precision-weighted mean."""
    precision = sum(s**-2 for s in scales)
    loc = sum(m * s**-2 for m, s in zip(locs, scales, strict=True)) / precision
    return loc, precision**-0.5


@pytest.fixture
def setup():
    torch.manual_seed(0)
    qx, qw = LinearGaussian("x"), LinearGaussian("w")
    x, w = torch.randn(B, X_DIM), torch.randn(B, X_DIM)
    return qx, qw, x, w


def standard_prior() -> Normal:
    return Normal(var=["z"], loc=torch.zeros(Z_DIM), scale=torch.ones(Z_DIM), name="p")


def odd_prior() -> Normal:
    loc = torch.linspace(-1.0, 2.0, Z_DIM)
    scale = torch.linspace(0.5, 3.0, Z_DIM)
    return Normal(var=["z"], loc=loc, scale=scale, name="p")


# ----------------------------------------------------------------------------- product of experts


@pytest.mark.parametrize("prior_kind", ["none", "standard", "odd"])
def test_poe_params_match_closed_form(setup, prior_kind):
    qx, qw, x, w = setup
    prior = {"none": None, "standard": standard_prior(), "odd": odd_prior()}[prior_kind]
    poe = ProductOfGaussianExperts([qx, qw], prior=prior)
    params = poe.get_params({"x": x, "w": w})

    (lx, sx), (lw, sw) = expert_params(qx, x), expert_params(qw, w)
    locs, scales = [lx, lw], [sx, sw]
    if prior is not None:
        locs.append(prior.loc)  # (1, Z_DIM): broadcast against the (B, Z_DIM) experts
        scales.append(prior.scale)
    loc, scale = closed_form(locs, scales)
    assert params["loc"].shape == (B, Z_DIM) and params["scale"].shape == (B, Z_DIM)
    torch.testing.assert_close(params["loc"], loc)
    torch.testing.assert_close(params["scale"], scale)


def test_poe_uses_a_non_standard_prior_not_n01(setup):
    qx, qw, x, w = setup
    p_odd = ProductOfGaussianExperts([qx], prior=odd_prior()).get_params({"x": x})
    p_std = ProductOfGaussianExperts([qx], prior=standard_prior()).get_params({"x": x})
    assert not torch.allclose(p_odd["loc"], p_std["loc"])


def test_poe_subset_of_experts(setup):
    qx, qw, x, w = setup
    prior = odd_prior()
    poe = ProductOfGaussianExperts([qx, qw], prior=prior)
    lx, sx = expert_params(qx, x)
    loc, scale = closed_form([lx, prior.loc], [sx, prior.scale])

    params = poe.get_params({"x": x})  # "w" missing: only q(z|x) and the prior
    torch.testing.assert_close(params["loc"], loc)
    torch.testing.assert_close(params["scale"], scale)

    view = poe.given(["x"])
    assert view.cond_var == ["x"] and view.prob_text == "q(z|x)"
    # extra inputs are ignored by the view: it only has the x expert
    params = view.get_params({"x": x, "w": w})
    torch.testing.assert_close(params["loc"], loc)
    # shares the experts' parameters
    assert {id(p) for p in view.parameters()} <= {id(p) for p in poe.parameters()}

    # only the prior: the product is the prior itself
    only_prior = poe.get_params({})
    torch.testing.assert_close(only_prior["loc"], prior.loc)
    torch.testing.assert_close(only_prior["scale"], prior.scale)
    assert poe.sample({}, batch_n=7)["z"].shape == (7, Z_DIM)


def test_poe_log_prob_matches_torch(setup):
    qx, qw, x, w = setup
    prior = odd_prior()
    poe = ProductOfGaussianExperts([qx, qw], prior=prior)
    z = torch.randn(B, Z_DIM)
    (lx, sx), (lw, sw) = expert_params(qx, x), expert_params(qw, w)
    loc, scale = closed_form([lx, lw, prior.loc], [sx, sw, prior.scale])
    expected = td.Normal(loc, scale).log_prob(z).sum(-1)

    torch.testing.assert_close(poe.get_log_prob({"x": x, "w": w, "z": z}), expected)
    torch.testing.assert_close(poe.log_prob().eval({"x": x, "w": w, "z": z}), expected)

    loc_x, scale_x = closed_form([lx, prior.loc], [sx, prior.scale])
    expected_x = td.Normal(loc_x, scale_x).log_prob(z).sum(-1)
    torch.testing.assert_close(poe.given(["x"]).log_prob().eval({"x": x, "z": z}), expected_x)


def test_poe_analytic_kl_matches_torch(setup):
    qx, qw, x, w = setup
    prior = odd_prior()
    poe = ProductOfGaussianExperts([qx, qw], prior=prior)
    (lx, sx), (lw, sw) = expert_params(qx, x), expert_params(qw, w)
    loc, scale = closed_form([lx, lw, prior.loc], [sx, sw, prior.scale])
    reference = td.Normal(prior.loc, prior.scale)

    kl = KullbackLeibler(poe, prior).eval({"x": x, "w": w})
    torch.testing.assert_close(kl, td.kl_divergence(td.Normal(loc, scale), reference).sum(-1))

    loc_w, scale_w = closed_form([lw, prior.loc], [sw, prior.scale])
    kl_w = KullbackLeibler(poe.given(["w"]), prior).eval({"w": w})
    torch.testing.assert_close(kl_w, td.kl_divergence(td.Normal(loc_w, scale_w), reference).sum(-1))
    assert "q(z|w)" in str(KullbackLeibler(poe.given(["w"]), prior))


def test_poe_reparam_sample_shape_and_gradients(setup):
    qx, qw, x, w = setup
    poe = ProductOfGaussianExperts([qx, qw], prior=standard_prior())
    out = poe.sample({"x": x, "w": w}, reparam=True)
    assert out["z"].shape == (B, Z_DIM) and out["x"] is x
    assert poe.sample({"x": x, "w": w}, sample_shape=[3], reparam=True)["z"].shape == (3, B, Z_DIM)
    out["z"].pow(2).sum().backward()
    for param in list(qx.parameters()) + list(qw.parameters()):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_poe_has_no_stale_cache(setup):
    qx, qw, x, w = setup
    poe = ProductOfGaussianExperts([qx, qw])
    inputs = {"x": x, "w": w}
    before = poe.get_params(inputs)["loc"].detach().clone()
    sample_before = poe.sample(inputs, sample_mean=True)["z"].detach().clone()
    with torch.no_grad():
        qx.loc.bias.add_(1.0)
    after = poe.get_params(inputs)["loc"]
    assert not torch.allclose(before, after)
    assert not torch.allclose(sample_before, poe.sample(inputs, sample_mean=True)["z"])
    # and training twice on the same tensors works (no retained graph from a cache)
    for _ in range(2):
        poe.sample(inputs, reparam=True)["z"].sum().backward()


def test_poe_without_any_expert_raises(setup):
    qx, qw, x, w = setup
    poe = ProductOfGaussianExperts([qx, qw])
    with pytest.raises(ValueError, match="no expert is available"):
        poe.get_params({"y": x})
    with pytest.raises(ValueError, match="no expert is available"):
        poe.sample({})
    with pytest.raises(ValueError, match="selects no expert"):
        poe.given([])
    with pytest.raises(ValueError, match="not conditioning variables"):
        poe.given(["y"])
    with pytest.raises(ValueError, match="same variable"):
        ProductOfGaussianExperts([qx, Normal(var=["u"], cond_var=["w"], loc="w", scale=1.0)])


def test_poe_printing(setup):
    qx, qw, x, w = setup
    poe = ProductOfGaussianExperts([qx, qw], prior=standard_prior())
    assert poe.prob_text == "q(z|x,w)"
    assert poe.cond_var == ["x", "w"]
    text = str(poe)
    assert "q(z|x,w) \\propto p(z)q(z|x)q(z|w)" in text
    assert "D_{KL} \\left[q(z|x,w)||p(z) \\right]" in str(KullbackLeibler(poe, standard_prior()))


# ----------------------------------------------------------------------------- mixture of experts


def _moe_reference(qx, qw, x, w, z, weights):
    (lx, sx), (lw, sw) = expert_params(qx, x), expert_params(qw, w)
    comps = torch.stack([td.Normal(lx, sx).log_prob(z).sum(-1), td.Normal(lw, sw).log_prob(z).sum(-1)])
    weights = torch.as_tensor(weights)
    by_hand = torch.logsumexp(comps + weights.log()[:, None], dim=0)
    mixture = td.MixtureSameFamily(
        td.Categorical(probs=weights.expand(B, 2)),
        td.Independent(td.Normal(torch.stack([lx, lw], 1), torch.stack([sx, sw], 1)), 1),
    )
    return by_hand, mixture.log_prob(z)


@pytest.mark.parametrize("weights", [None, (0.25, 0.75)])
def test_moe_log_prob_is_log_of_weighted_sum(setup, weights):
    qx, qw, x, w = setup
    moe = MixtureOfExperts([qx, qw], weights=weights)
    z = torch.randn(B, Z_DIM)
    by_hand, mixture = _moe_reference(qx, qw, x, w, z, weights or (0.5, 0.5))
    got = moe.get_log_prob({"x": x, "w": w, "z": z})
    torch.testing.assert_close(got, by_hand)
    torch.testing.assert_close(got, mixture)
    torch.testing.assert_close(moe.log_prob().eval({"x": x, "w": w, "z": z}), mixture)
    with pytest.raises(ValueError, match="factorise"):
        moe.get_log_prob({"x": x, "w": w, "z": z}, sum_features=False)


def test_moe_sample_frequencies_follow_weights():
    torch.manual_seed(1)
    qa = Normal(var=["z"], cond_var=["a"], loc="a", scale=torch.tensor(1.0))
    qb = Normal(var=["z"], cond_var=["b"], loc="b", scale=torch.tensor(1.0))
    moe = MixtureOfExperts([qa, qb], weights=[1.0, 3.0])  # normalised to (0.25, 0.75)
    n = 20000
    a, b = torch.full((n, 1), -10.0), torch.full((n, 1), 10.0)
    z = moe.sample({"a": a, "b": b})["z"]
    assert z.shape == (n, 1)
    assert abs((z > 0).float().mean().item() - 0.75) < 0.02
    zs = moe.sample({"a": a[:100], "b": b[:100]}, sample_shape=[50])["z"]
    assert zs.shape == (50, 100, 1)
    assert abs((zs > 0).float().mean().item() - 0.75) < 0.03


def test_moe_sample_is_reparameterised_within_the_chosen_component():
    torch.manual_seed(2)
    qa = Normal(var=["z"], cond_var=["a"], loc="a", scale=torch.tensor(1.0))
    qb = Normal(var=["z"], cond_var=["b"], loc="b", scale=torch.tensor(1.0))
    moe = MixtureOfExperts([qa, qb])
    a = torch.full((200, Z_DIM), -10.0, requires_grad=True)
    b = torch.full((200, Z_DIM), 10.0, requires_grad=True)
    z = moe.sample({"a": a, "b": b}, reparam=True)["z"]
    z.sum().backward()
    from_b = (z[:, 0] > 0).float()
    # one component per example, for every feature of it
    assert torch.equal((z > 0).float(), from_b[:, None].expand(-1, Z_DIM))
    torch.testing.assert_close(b.grad, from_b[:, None].expand(-1, Z_DIM))
    torch.testing.assert_close(a.grad, 1 - from_b[:, None].expand(-1, Z_DIM))
    assert 0.3 < from_b.mean().item() < 0.7


def test_moe_subsets(setup):
    qx, qw, x, w = setup
    qv = LinearGaussian("v")  # never given below: always left out of the mixture
    moe = MixtureOfExperts([qx, qw, qv], weights=[0.2, 0.6, 0.2])
    z = torch.randn(B, Z_DIM)
    by_hand, mixture = _moe_reference(qx, qw, x, w, z, (0.25, 0.75))  # renormalised (0.2, 0.6)
    torch.testing.assert_close(moe.get_log_prob({"x": x, "w": w, "z": z}), by_hand)

    view = moe.given(["x", "w"])
    assert view.cond_var == ["x", "w"] and view.prob_text == "q(z|x,w)"
    torch.testing.assert_close(view.log_prob().eval({"x": x, "w": w, "z": z}), mixture)

    lx, sx = expert_params(qx, x)
    only_x = td.Normal(lx, sx).log_prob(z).sum(-1)
    torch.testing.assert_close(moe.get_log_prob({"x": x, "z": z}), only_x)
    torch.testing.assert_close(moe.given(["x"]).get_log_prob({"x": x, "z": z}), only_x)
    assert moe.sample({"x": x})["z"].shape == (B, Z_DIM)
    torch.testing.assert_close(moe.sample_mean({"x": x}), lx)

    with pytest.raises(ValueError, match="no expert is available"):
        moe.sample({"y": x})
    with pytest.raises(ValueError, match="no expert is available"):
        moe.get_log_prob({"z": z})


def test_moe_in_pixyz_losses_and_printing(setup):
    qx, qw, x, w = setup
    moe = MixtureOfExperts([qx, qw])
    decoder = Normal(var=["x"], cond_var=["z"], loc="z", scale=torch.tensor(1.0), name="p")
    x4 = torch.randn(B, Z_DIM)  # the decoder's x lives in z-space here
    qx4 = LinearGaussian("x", in_dim=Z_DIM)
    moe4 = MixtureOfExperts([qx4, qw])
    loss = Expectation(moe4, decoder.log_prob())
    assert loss.eval({"x": x4, "w": w}).shape == (B,)
    assert "q(z|x,w)" in str(loss)
    assert "q(z|x,w) = \\frac{1}{2}\\left(q(z|x) + q(z|w)\\right)" in str(moe)
    assert "0.25q(z|x) + 0.75q(z|w)" in str(MixtureOfExperts([qx, qw], weights=[1, 3]))
    assert moe.sample({"x": x, "w": w}, sample_mean=True)["z"].shape == (B, Z_DIM)


def test_an_experts_precision_is_computed_once_per_loss_evaluation(monkeypatch):
    """Products over several subsets (MoPoE's) share each expert's precision within one loss
    evaluation (``shared_parameters``), with the same parameters as when each computes its own."""
    from pixyz_zoo.distributions import GaussianEncoder
    from pixyz_zoo.distributions import experts as experts_module
    from pixyz_zoo.distributions.shared_parameters import shared_parameters

    torch.manual_seed(0)
    qx = GaussianEncoder(nn.Linear(X_DIM, 2 * Z_DIM), cond_var=["x"])
    qw = GaussianEncoder(nn.Linear(X_DIM, 2 * Z_DIM), cond_var=["w"])
    poe = ProductOfGaussianExperts([qx, qw])
    products = [poe.given(["x"]), poe.given(["w"]), poe]
    calls = []
    original = experts_module._precision
    monkeypatch.setattr(experts_module, "_precision", lambda params: calls.append(1) or original(params))
    inputs = {"x": torch.randn(B, X_DIM), "w": torch.randn(B, X_DIM)}
    with shared_parameters():
        shared = [q.get_params(inputs) for q in products]
    assert len(calls) == 2  # one per expert, not one per expert and product (4)
    calls.clear()
    alone = [q.get_params(inputs) for q in products]
    assert len(calls) == 4
    for a, b in zip(shared, alone, strict=True):
        assert torch.equal(a["loc"], b["loc"]) and torch.equal(a["scale"], b["scale"])


class WideGaussian(LinearGaussian):
    """An expert built for a latent of another size (Z_DIM + 1)."""

    def __init__(self, cond: str) -> None:
        super().__init__(cond)
        self.loc = nn.Linear(X_DIM, Z_DIM + 1)
        self.scale = nn.Linear(X_DIM, Z_DIM + 1)


def test_experts_of_different_latent_sizes_are_named():
    """A product or mixture of an expert of size 4 and one of size 5 failed with "The size of
    tensor a (4) must match the size of tensor b (5) at non-singleton dimension 1"."""
    batch = {"x": torch.randn(B, X_DIM), "w": torch.randn(B, X_DIM)}
    experts = [LinearGaussian("x"), WideGaussian("w")]
    expected = (
        r"the experts of q\(z\|x,w\) give z different sizes per example: q\(z\|x\) \(4,\), q\(z\|w\) \(5,\)"
    )
    with pytest.raises(ValueError, match=expected):
        ProductOfGaussianExperts(experts).sample(batch)
    with pytest.raises(ValueError, match=expected):
        MixtureOfExperts(experts).sample(batch)
    with pytest.raises(ValueError, match=expected):
        MixtureOfExperts(experts).sample_mean(batch)
    prior = Normal(loc=torch.zeros(Z_DIM + 1), scale=torch.ones(Z_DIM + 1), var=["z"], name="p")
    with pytest.raises(ValueError, match=r"p\(z\) \(5,\), q\(z\|x\) \(4,\)"):
        ProductOfGaussianExperts([LinearGaussian("x")], prior=prior).sample(batch)


def test_an_expert_that_is_not_a_distribution_is_refused():
    """A network passed as an expert failed with "'Linear' object has no attribute 'distribution_name'"."""
    for kind in (ProductOfGaussianExperts, MixtureOfExperts):
        with pytest.raises(
            TypeError, match=rf"{kind.__name__} experts must be Pixyz distributions.*got a Linear"
        ):
            kind([LinearGaussian("x"), nn.Linear(X_DIM, Z_DIM)])
