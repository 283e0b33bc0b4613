"""MMVAE, MoPoE and MVTCAE: losses against hand computations, subset inference for 2 and 3
modalities, printouts."""

import json
import math

import pytest
import torch
from torch import distributions as td

import pixyz_zoo  # noqa: F401  (Pixyz settings first)
from pixyz_zoo.distributions import MixtureOfExperts, ProductOfGaussianExperts
from pixyz_zoo.modalities import Modality, nonempty_subsets
from pixyz_zoo.models.mixtures import MMVAE, MoPoE
from pixyz_zoo.models.mvtcae import MVTCAE
from tests.test_jmvae import TINY, kl, log_px, log_py, normal, parity_batch, product, with_parity

STANDARD = td.Normal(0.0, 1.0)


def log_pw(model, z, w) -> torch.Tensor:
    return td.OneHotCategorical(logits=model.decoders["w"].network(z)).log_prob(w)


def log_joint(model, z, batch, y_weight: float = 1.0) -> torch.Tensor:
    """log p(z) + log p(x|z) + lambda_y log p(y|z) (+ log p(w|z))."""
    total = (
        STANDARD.log_prob(z).sum(-1) + log_px(model, z, batch["x"]) + y_weight * log_py(model, z, batch["y"])
    )
    return total + log_pw(model, z, batch["w"]) if "w" in batch else total


def test_nonempty_subsets_by_size():
    assert nonempty_subsets(["x", "y", "w"]) == [
        ("x",),
        ("y",),
        ("w",),
        ("x", "y"),
        ("x", "w"),
        ("y", "w"),
        ("x", "y", "w"),
    ]


# ---------------------------------------------------------------------- MMVAE
@pytest.mark.parametrize("k, y_weight", [(1, 1.0), (4, 1.0), (3, 8.0)])
def test_mmvae_loss_is_minus_the_stratified_iwae(digits_train, k, y_weight):
    torch.manual_seed(0)
    weights = {"y": y_weight} if y_weight != 1.0 else None
    model = MMVAE(digits_train.modalities, k=k, likelihood_weights=weights, **TINY)
    batch = digits_train.first(5)
    torch.manual_seed(1)
    loss = model.test_step(batch)

    torch.manual_seed(1)
    repeated = {n: v.repeat(k, *([1] * (v.dim() - 1))) for n, v in batch.items()}
    experts = {m: normal(model.experts[m], {m: repeated[m]}) for m in ("x", "y")}
    bounds = []
    for m in ("x", "y"):
        z = experts[m].rsample()
        # the mixture density 1/2 (q(z|x) + q(z|y)) in the weight
        log_q = torch.logsumexp(torch.stack([e.log_prob(z).sum(-1) for e in experts.values()]), 0)
        log_w = log_joint(model, z, repeated, y_weight) - (log_q - math.log(2))
        bounds.append(torch.logsumexp(log_w.view(k, 5), 0) - math.log(k))
    expected = -(0.5 * (bounds[0] + bounds[1])).mean()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-5)


def test_mmvae_more_samples_tighten_the_bound(digits_train):
    """IWAE_k >= IWAE_1 in expectation: the k = 20 loss is lower on the same weights."""
    torch.manual_seed(0)
    model = MMVAE(digits_train.modalities, k=1, **TINY)
    wide = MMVAE(digits_train.modalities, k=20, **TINY)
    wide.load_state(model.state())
    batch = digits_train.first(64)
    torch.manual_seed(3)
    one = sum(model.test_step(batch) for _ in range(10)) / 10
    torch.manual_seed(3)
    twenty = sum(wide.test_step(batch) for _ in range(10)) / 10
    assert twenty < one


def test_mmvae_subsets_are_mixtures_of_their_experts(digits_train):
    mods = with_parity(digits_train.modalities)
    torch.manual_seed(0)
    model = MMVAE(mods, k=2, **TINY)
    batch = parity_batch(digits_train.first(4))
    for given in nonempty_subsets(["x", "y", "w"]):
        q = model.inference_for(given)
        assert isinstance(q, MixtureOfExperts) and len(q.experts) == len(given), given
        means = torch.stack([model.experts[m].sample_mean({m: batch[m]}) for m in given])
        torch.testing.assert_close(model.encode(batch, given)["z"], means.mean(0))
    assert model.train_step(batch) > 0


# ---------------------------------------------------------------------- MoPoE
@pytest.mark.parametrize("y_weight", [1.0, 8.0])
def test_mopoe_loss_by_hand(digits_train, y_weight):
    torch.manual_seed(0)
    model = MoPoE(digits_train.modalities, likelihood_weights={"y": y_weight}, **TINY)
    batch = digits_train.first(6)
    torch.manual_seed(1)
    loss = model.test_step(batch)

    torch.manual_seed(1)
    qx, qy = normal(model.experts["x"], batch), normal(model.experts["y"], batch)
    components = [qx, qy, product(qx, qy)]  # q~(z|x), q~(z|y), q~(z|x,y), no prior expert
    samples = torch.stack([c.rsample() for c in components])
    chosen = torch.multinomial(torch.full((3,), 1 / 3), 6, replacement=True)
    z = samples[chosen, torch.arange(6)]  # one subset per example
    reconstruction = -(log_px(model, z, batch["x"]) + y_weight * log_py(model, z, batch["y"]))
    kls = sum(kl(c, STANDARD) for c in components) / 3
    assert loss == pytest.approx(float((reconstruction + kls).mean().detach()), rel=1e-5)


def test_mopoe_subsets_mix_the_products_of_their_subsets(digits_train):
    mods = with_parity(digits_train.modalities)
    torch.manual_seed(0)
    model = MoPoE(mods, **TINY)
    assert len(model.mixture.experts) == 7  # 2^3 - 1 subsets
    batch = parity_batch(digits_train.first(4))
    experts = {m: normal(model.experts[m], batch) for m in ("x", "y", "w")}
    for given in nonempty_subsets(["x", "y", "w"]):
        inner = nonempty_subsets(given)
        q = model.inference_for(given)
        assert len(q.experts) == len(inner), given
        means = torch.stack([product(*(experts[m] for m in s)).loc for s in inner])
        torch.testing.assert_close(model.encode(batch, given)["z"], means.mean(0), rtol=1e-4, atol=1e-5)
    assert model.train_step(batch) > 0


# ---------------------------------------------------------------------- MVTCAE
@pytest.mark.parametrize("alpha, beta, y_weight", [(5 / 6, 2.5, 1.0), (0.3, 1.0, 8.0)])
def test_mvtcae_loss_by_hand(digits_train, alpha, beta, y_weight):
    torch.manual_seed(0)
    model = MVTCAE(
        digits_train.modalities, alpha=alpha, beta=beta, likelihood_weights={"y": y_weight}, **TINY
    )
    batch = digits_train.first(6)
    torch.manual_seed(1)
    loss = model.test_step(batch)

    torch.manual_seed(1)
    qx, qy = normal(model.experts["x"], batch), normal(model.experts["y"], batch)
    joint = product(qx, qy)  # q(z|x,y) ∝ q~(z|x) q~(z|y)
    z = joint.rsample()
    reconstruction = -(log_px(model, z, batch["x"]) + y_weight * log_py(model, z, batch["y"]))
    expected = (2 - alpha) / 2 * reconstruction + beta * (
        (1 - alpha) * kl(joint, STANDARD) + alpha / 2 * (kl(joint, qx) + kl(joint, qy))
    )
    assert loss == pytest.approx(float(expected.mean().detach()), rel=1e-5)


def test_mvtcae_subsets_are_products_without_prior(digits_train):
    mods = with_parity(digits_train.modalities)
    torch.manual_seed(0)
    model = MVTCAE(mods, **TINY)
    batch = parity_batch(digits_train.first(4))
    experts = {m: normal(model.experts[m], batch) for m in ("x", "y", "w")}
    for given in nonempty_subsets(["x", "y", "w"]):
        q = model.inference_for(given)
        assert isinstance(q, ProductOfGaussianExperts) and q.prior is None
        torch.testing.assert_close(
            model.encode(batch, given)["z"], product(*(experts[m] for m in given)).loc, rtol=1e-4, atol=1e-5
        )


def test_mvtcae_refuses_alpha_outside_unit_interval(digits_train):
    with pytest.raises(ValueError, match="alpha"):
        MVTCAE(digits_train.modalities, alpha=1.5, **TINY)


# ---------------------------------------------------------------------- printouts
def test_printouts_show_the_mixtures_and_objectives(digits_train):
    mods = digits_train.modalities
    text = str(MMVAE(mods, k=5, **TINY))
    assert r"q(z|x,y) = \frac{1}{2}\left(\tilde{q}(z|x) + \tilde{q}(z|y)\right)" in text
    assert r"\log \frac{1}{5}\sum_{i=1}^{5}" in text and "q(z|y) = \\tilde{q}(z|y)" in text
    text = str(MoPoE(mods, **TINY))
    assert r"\frac{1}{3}\left(\tilde{q}(z|x) + \tilde{q}(z|y) + \tilde{q}(z|x,y)\right)" in text
    assert r"D_{KL} \left[\tilde{q}(z|x,y)||p(z) \right]" in text
    assert r"\mathbb{E}_{q(z|x,y)} \left[- \log p(x|z) - \log p(y|z) \right]" in text
    text = str(MVTCAE(mods, **TINY))
    assert r"q(z|x,y) \propto \tilde{q}(z|x)\tilde{q}(z|y)" in text
    assert r"D_{KL} \left[q(z|x,y)||\tilde{q}(z|x) \right]" in text and r"\alpha" in text
    mods3 = with_parity(mods)
    text = str(MoPoE(mods3, **TINY))
    assert r"q(z|y,w) = \frac{1}{3}\left(\tilde{q}(z|y) + \tilde{q}(z|w) + \tilde{q}(z|y,w)\right)" in text


def test_five_modalities_scale(digits_train):
    """PolyMNIST-style: five modalities, 31 MoPoE subsets, training and generation from any one."""
    image = digits_train.modalities["x"]
    mods = {f"m{i}": Modality(f"m{i}", image.shape, "bernoulli") for i in range(5)}
    batch = {f"m{i}": digits_train.first(4)["x"] for i in range(5)}
    for cls in (MMVAE, MoPoE, MVTCAE):
        model = cls(mods, **TINY) if cls is not MMVAE else cls(mods, k=2, **TINY)
        assert model.train_step(batch) > 0
        out = model.generate(batch, given=["m3"], targets=["m0", "m4"])
        assert out["m0"].shape == (4, *image.shape)
    assert len(MoPoE(mods, **TINY).mixture.experts) == 31


def test_likelihood_weights_are_checked_and_the_dimension_rescaling(digits_train):
    from pixyz_zoo.models.jmvae import dimension_weights

    for cls in (MMVAE, MoPoE, MVTCAE):
        with pytest.raises(KeyError, match="unknown modalities"):
            cls(digits_train.modalities, likelihood_weights={"q": 2.0}, **TINY)
    assert dimension_weights(digits_train.modalities) == {"x": 1.0, "y": 6.4}


@pytest.mark.parametrize("cls", [MMVAE, MoPoE, MVTCAE])
def test_likelihood_weights_survive_a_checkpoint(digits_train, cls):
    """The weights are in the config, so a model rebuilt from a checkpoint has the same loss."""
    torch.manual_seed(0)
    model = cls(digits_train.modalities, likelihood_weights={"y": 8.0}, **TINY)
    assert model.config["likelihood_weights"] == {"y": 8.0}
    fresh = cls(digits_train.modalities, **json.loads(json.dumps(model.config)))
    fresh.load_state(model.state())
    batch = digits_train.first(6)
    torch.manual_seed(1)
    expected = model.test_step(batch)
    torch.manual_seed(1)
    assert fresh.test_step(batch) == pytest.approx(expected)
