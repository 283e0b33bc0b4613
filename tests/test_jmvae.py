"""JMVAE, JMVAE-kl, TELBO, MVAE and the hierarchical JMVAE: losses by hand, inference, surface."""

import itertools
import json

import pytest
import torch
from torch import distributions as td

from pixyz_zoo.distributions import IterativeSampling, ProductOfGaussianExperts
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import MODELS, build_model
from pixyz_zoo.models.hierarchical_jmvae import HierarchicalJMVAE
from pixyz_zoo.models.jmvae import JMVAE, JMVAEKL, MVAE, TELBO
from pixyz_zoo.training import Trainer
from tests.conftest import requires_cuda

TINY = {"z_dim": 4, "hidden": [32]}
JOINT_MODELS = ["jmvae", "jmvae-kl", "telbo", "mvae", "hierarchical-jmvae", "mmvae", "mopoe", "mvtcae"]
STANDARD = td.Normal(0.0, 1.0)


def options(name: str) -> dict:
    """Tiny networks; a short iterative-sampling chain for the models that use one."""
    extra = {"iterative_steps": 3} if name in ("jmvae", "hierarchical-jmvae") else {}
    return {**TINY, **extra}


def normal(encoder, inputs) -> td.Normal:
    params = encoder.get_params(inputs)
    return td.Normal(params["loc"], params["scale"])


def log_px(model, z, x) -> torch.Tensor:
    return td.Bernoulli(logits=model.decoders["x"].network(z)).log_prob(x).flatten(1).sum(1)


def log_py(model, z, y) -> torch.Tensor:
    return td.OneHotCategorical(logits=model.decoders["y"].network(z)).log_prob(y)


def kl(a: td.Normal, b: td.Normal) -> torch.Tensor:
    return td.kl_divergence(a, b).sum(-1)


def product(*factors: td.Normal) -> td.Normal:
    """Product of Gaussian experts in closed form (precisions add)."""
    precision = sum(f.scale**-2 for f in factors)
    loc = sum(f.loc * f.scale**-2 for f in factors) / precision
    return td.Normal(loc, precision**-0.5)


def with_parity(modalities: dict) -> dict:
    """A third modality: the parity of the digit, one-hot over (even, odd)."""
    return {**modalities, "w": Modality("w", (2,), "categorical")}


def parity_batch(batch: dict) -> dict:
    odd = batch["y"].argmax(1) % 2
    return {**batch, "w": torch.nn.functional.one_hot(odd, 2).float()}


def subsets(names):
    return [list(c) for r in range(len(names) + 1) for c in itertools.combinations(names, r)]


# ---------------------------------------------------------------------- registry and printing
def test_registered_and_built_by_name(digits_train):
    assert set(JOINT_MODELS) <= set(MODELS)
    for name in JOINT_MODELS:
        model = build_model(name, digits_train.modalities, **options(name))
        assert model.name == name and model.description
        assert json.loads(json.dumps(model.config)) == model.config  # JSON-serialisable options
        assert model.train_step(digits_train.first(8)) > 0


def test_one_modality_is_refused(digits_train):
    only_x = {"x": digits_train.modalities["x"]}
    for name in JOINT_MODELS:
        with pytest.raises(ValueError, match="two or more modalities"):
            build_model(name, only_x, **options(name))


def test_printouts_show_factorisation_and_loss(digits_train):
    mods = digits_train.modalities
    text = str(JMVAE(mods, **TINY))
    assert "p(x|z)p(y|z)p(z)" in text and "Inference model:\n  q(z|x,y)" in text
    assert r"\beta D_{KL} \left[q(z|x,y)||p(z) \right]" in text
    assert r"\mathbb{E}_{q(z|x,y)} \left[- \log p(x|z) - \log p(y|z) \right]" in text
    assert r"q(z|y) \approx q(z|\hat{x}^{(N)},y)" in text and "N=100" in text

    text = str(JMVAEKL(mods, **TINY))
    for term in (
        r"D_{KL} \left[q(z|x,y)||q(z|x) \right]",
        r"D_{KL} \left[q(z|x,y)||q(z|y) \right]",
        r"\alpha",
    ):
        assert term in text

    text = str(TELBO(mods, **TINY))
    for term in (
        r"\mathbb{E}_{q(z|x)} \left[- \log p(x|z) \right]",
        r"\beta D_{KL} \left[q(z|y)||p(z) \right]",
    ):
        assert term in text

    text = str(MVAE(mods, **TINY))
    assert r"q(z|x,y) \propto p(z)\tilde{q}(z|x)\tilde{q}(z|y)" in text
    assert (
        r"q(z|x) \propto p(z)\tilde{q}(z|x)" in text
        and r"\mathbb{E}_{q(z|y)} \left[- \log p(y|z) \right]" in text
    )

    text = str(HierarchicalJMVAE(mods, **TINY))
    assert "p(x|z_{1})p(y|z_{1})p(z_{1}|z_{2})p(z_{2})" in text
    assert (
        r"\mathbb{E}_{q(z_{2}|x,y)} \left[D_{KL} \left[q(z_{1}|x,y)||p(z_{1}|z_{2}) \right] \right]" in text
    )
    assert r"D_{KL} \left[q(z_{2}|x,y)||p(z_{2}) \right]" in text


# ---------------------------------------------------------------------- losses by hand
def test_jmvae_loss_is_minus_eq5(digits_train):
    model = JMVAE(digits_train.modalities, **TINY)
    batch = digits_train.first(6)
    torch.manual_seed(3)
    loss = model.loss_cls.eval({**batch, "beta": 0.3})
    torch.manual_seed(3)
    q = normal(model.q, batch)
    z = q.rsample()
    expected = -log_px(model, z, batch["x"]) - log_py(model, z, batch["y"]) + 0.3 * kl(q, STANDARD)
    torch.testing.assert_close(loss, expected.mean(), atol=1e-4, rtol=1e-5)


def test_jmvae_kl_loss_is_minus_eq10(digits_train):
    model = JMVAEKL(digits_train.modalities, **TINY)
    assert model.hyperparameters == {"beta": 1.0, "alpha": 1.0} and model.annealed == {"beta"}
    batch = digits_train.first(6)
    torch.manual_seed(4)
    loss = model.loss_cls.eval({**batch, "beta": 0.5, "alpha": 2.0})
    torch.manual_seed(4)
    q = normal(model.q, batch)
    z = q.rsample()
    q_x, q_y = normal(model.experts["x"], {"x": batch["x"]}), normal(model.experts["y"], {"y": batch["y"]})
    expected = (
        -log_px(model, z, batch["x"])
        - log_py(model, z, batch["y"])
        + 0.5 * kl(q, STANDARD)
        + 2.0 * (kl(q, q_x) + kl(q, q_y))
    )
    torch.testing.assert_close(loss, expected.mean(), atol=1e-4, rtol=1e-5)


def test_telbo_loss_is_three_elbos_with_weights(digits_train):
    model = TELBO(digits_train.modalities, likelihood_weights={"y": 5.0}, **TINY)
    assert model.config["likelihood_weights"] == {"y": 5.0} and r"5.0 \log p(y|z)" in str(model)
    batch = digits_train.first(6)
    torch.manual_seed(5)
    loss = model.loss_cls.eval({**batch, "beta": 0.7})
    torch.manual_seed(5)
    q, q_x, q_y = normal(model.q, batch), normal(model.experts["x"], batch), normal(model.experts["y"], batch)
    z, z_x, z_y = q.rsample(), q_x.rsample(), q_y.rsample()  # the order the loss draws them
    x, y = batch["x"], batch["y"]
    expected = (
        -log_px(model, z, x)
        - 5.0 * log_py(model, z, y)
        + 0.7 * kl(q, STANDARD)
        - log_px(model, z_x, x)
        + 0.7 * kl(q_x, STANDARD)
        - 5.0 * log_py(model, z_y, y)
        + 0.7 * kl(q_y, STANDARD)
    )
    torch.testing.assert_close(loss, expected.mean(), atol=1e-4, rtol=1e-5)


def test_mvae_loss_is_the_subsampled_poe_elbos(digits_train):
    model = MVAE(digits_train.modalities, **TINY)
    batch = digits_train.first(6)
    torch.manual_seed(6)
    loss = model.loss_cls.eval({**batch, "beta": 1.0})
    torch.manual_seed(6)
    e_x, e_y = normal(model.experts["x"], batch), normal(model.experts["y"], batch)
    q, q_x, q_y = product(STANDARD, e_x, e_y), product(STANDARD, e_x), product(STANDARD, e_y)
    z, z_x, z_y = q.rsample(), q_x.rsample(), q_y.rsample()
    x, y = batch["x"], batch["y"]
    expected = (
        -log_px(model, z, x)
        - log_py(model, z, y)
        + kl(q, STANDARD)
        - log_px(model, z_x, x)
        + kl(q_x, STANDARD)
        - log_py(model, z_y, y)
        + kl(q_y, STANDARD)
    )
    torch.testing.assert_close(loss, expected.mean(), atol=1e-4, rtol=1e-5)


def test_hierarchical_loss_is_minus_eq9(digits_train):
    model = HierarchicalJMVAE(digits_train.modalities, z_dim=4, z2_dim=3, hidden=[32, 16])
    batch = digits_train.first(6)
    torch.manual_seed(7)
    loss = model.loss_cls.eval({**batch, "beta": 0.4})
    torch.manual_seed(7)
    q1, q2 = normal(model.q1, batch), normal(model.q2, batch)
    z1 = q1.rsample()  # E_q(z1|x,w)[...] is drawn first, then E_q(z2|x,w)[...]
    z2 = q2.rsample()
    p1 = normal(model.p_z1, {"z2": z2})
    x, y = batch["x"], batch["y"]
    recon = td.Bernoulli(logits=model.decoders["x"].network(z1)).log_prob(x).flatten(1).sum(1)
    recon = recon + td.OneHotCategorical(logits=model.decoders["y"].network(z1)).log_prob(y)
    expected = -recon + 0.4 * (kl(q1, p1) + kl(q2, STANDARD))
    torch.testing.assert_close(loss, expected.mean(), atol=1e-4, rtol=1e-5)


# ---------------------------------------------------------------------- inference rules
def test_jmvae_subsets_use_iterative_sampling_with_the_model_steps(digits_train):
    model = JMVAE(digits_train.modalities, **TINY)
    assert model.inference_for(["x", "y"]) is model.q and model.inference_for([]) is model.prior
    q_y = model.inference_for(["y"])
    assert isinstance(q_y, IterativeSampling) and q_y.steps == 100 and q_y.cond_var == ["y"]
    model.iterative_steps = 7  # an evaluation sweeping N (the paper's Fig. 4)
    assert model.inference_for(["y"]).steps == 7 and "N=7" in str(model)


def test_jmvae_kl_groups_and_subset_rule(digits_train):
    mods = with_parity(digits_train.modalities)
    model = JMVAEKL(mods, groups=[["y", "w"], ["x"]], **TINY)
    assert model.groups == [["x"], ["y", "w"]] and model.config["groups"] == [["x"], ["y", "w"]]
    assert r"q(z|y,w) \propto p(z)\tilde{q}(z|y)\tilde{q}(z|w)" in str(model)
    assert r"D_{KL} \left[q(z|x,y,w)||q(z|y,w) \right]" in str(model)
    batch = parity_batch(digits_train.first(5))
    e = {m: normal(model.experts[m], batch) for m in mods}
    cases = {
        ("x",): e["x"],  # a one-modality group: its encoder, no prior expert
        ("y", "w"): product(STANDARD, e["y"], e["w"]),  # a group: its experts and the prior
        ("y",): product(STANDARD, e["y"]),  # part of a multi-modality group: prior expert kept
        ("x", "w"): product(STANDARD, e["x"], e["w"]),
    }
    for given, expected in cases.items():
        params = model.inference_for(list(given)).get_params(batch)
        torch.testing.assert_close(params["loc"], expected.loc)
        torch.testing.assert_close(params["scale"], expected.scale)
    assert model.inference_for(["x", "y", "w"]) is model.q
    # default groups: every modality alone; a union of them is a product without the prior expert
    plain = JMVAEKL(mods, **TINY)
    product_xy = plain.inference_for(["x", "y"])
    assert isinstance(product_xy, ProductOfGaussianExperts) and product_xy.prior is None
    e = {m: normal(plain.experts[m], batch) for m in mods}
    torch.testing.assert_close(product_xy.get_params(batch)["loc"], product(e["x"], e["y"]).loc)


def test_groups_must_partition_the_modalities(digits_train):
    mods = with_parity(digits_train.modalities)
    with pytest.raises(ValueError, match="exactly one group"):
        JMVAEKL(mods, groups=[["x"], ["y"]], **TINY)
    with pytest.raises(ValueError, match=r"repeated: \['y'\]"):
        TELBO(mods, groups=[["x", "y"], ["y", "w"]], **TINY)
    with pytest.raises(KeyError, match="unknown modalities"):
        JMVAEKL(mods, groups=[["x"], ["y", "w", "v"]], **TINY)
    with pytest.raises(KeyError, match="likelihood_weights"):
        TELBO(mods, likelihood_weights={"v": 2.0}, **TINY)
    with pytest.raises(ValueError, match="extra subsets"):
        MVAE(mods, subsets=[["x"]], **TINY)


def test_mvae_infers_from_any_subset_by_the_product_of_experts(digits_train):
    mods = with_parity(digits_train.modalities)
    model = MVAE(mods, subsets=[["w", "y"]], **TINY)
    assert model.config["subsets"] == [["y", "w"]]
    text = str(model)  # sympy orders the terms: look for each piece
    assert r"\mathbb{E}_{q(z|y,w)} \left[" in text and r"D_{KL} \left[q(z|y,w)||p(z) \right]" in text
    batch = parity_batch(digits_train.first(5))
    e = {m: normal(model.experts[m], batch) for m in mods}
    for given in subsets(list(mods))[1:]:
        expected = product(STANDARD, *(e[m] for m in given))
        params = model.inference_for(given).get_params(batch)
        torch.testing.assert_close(params["loc"], expected.loc)
        torch.testing.assert_close(params["scale"], expected.scale)


def test_hierarchical_inference_is_over_the_top_latent(digits_train):
    model = HierarchicalJMVAE(digits_train.modalities, iterative_steps=2, **TINY)
    assert set(model.latents) == {"z1", "z2"}
    assert model.inference_for(["x", "y"]) is model.q2
    q_y = model.inference_for(["y"])
    assert isinstance(q_y, IterativeSampling) and q_y.transition is model.q1 and q_y.var == ["z2"]
    batch = digits_train.first(5)
    latents = model.sample_latents(batch, ["y"], n_samples=2)
    assert latents["z2"].shape == (10, 4) and latents["z1"].shape == (10, 4)
    # eq. (A.2): z2 ~ q(z2|x,w), then z1 ~ p(z1|z2), replayed with the same seed
    torch.manual_seed(8)
    latents = model.sample_latents(batch, ["x", "y"])
    torch.manual_seed(8)
    with torch.no_grad():
        z2 = normal(model.q2, batch).sample()
        z1 = normal(model.p_z1, {"z2": z2}).sample()
    torch.testing.assert_close(latents["z2"], z2)
    torch.testing.assert_close(latents["z1"], z1)
    # encode of the full inference: both layers; of a subset: the top layer
    means = model.encode(batch)
    torch.testing.assert_close(means["z1"], model.q1.sample_mean(batch))
    torch.testing.assert_close(means["z2"], model.q2.sample_mean(batch))
    assert set(model.encode(batch, sample=True)) == {"z1", "z2"}
    assert set(model.encode(batch, given=["x"])) == {"z2"}
    out = model.generate(batch, given=["y"], targets=["x", "y"])
    assert out["x"].shape == (5, 1, 8, 8) and out["y"].shape == (5, 10)


def test_hierarchical_features_run_once_per_step(digits_train):
    model = HierarchicalJMVAE(digits_train.modalities, **TINY)
    assert model.q1.network.features is model.q2.network.features  # one module: shared parameters
    calls = [0]
    model.features.body.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    model.train_step(digits_train.first(8))
    assert calls[0] == 1  # h_1 shared by q(z1|x,w) and q(z2|x,w) within the step
    model.encode(digits_train.first(8))
    assert calls[0] == 3  # outside a loss evaluation nothing is memoised


def test_each_network_runs_once_per_step(digits_train):
    model = JMVAEKL(digits_train.modalities, **TINY)
    calls: dict[str, int] = {}
    nets = {"q": model.q.network, "qx": model.experts["x"].network, "qy": model.experts["y"].network}
    nets.update({f"p{m}": d.network for m, d in model.decoders.items()})
    for key, net in nets.items():
        net.register_forward_hook(lambda *_, key=key: calls.__setitem__(key, calls.get(key, 0) + 1))
    model.train_step(digits_train.first(8))
    assert calls == {"q": 1, "qx": 1, "qy": 1, "px": 1, "py": 1}


# ---------------------------------------------------------------------- surface
@pytest.mark.parametrize("name", JOINT_MODELS)
def test_generation_from_every_subset_to_every_modality(digits_train, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, **options(name))
    batch = digits_train.first(5)
    for given in subsets(["x", "y"]):
        for targets in (["x"], ["y"], ["x", "y"]):
            out = model.generate(batch, given=given, targets=targets, n=5)
            assert sorted(out) == sorted(targets), (given, targets)
            if "x" in out:
                assert out["x"].shape == (5, 1, 8, 8) and 0 <= out["x"].min() and out["x"].max() <= 1
            if "y" in out:
                assert out["y"].shape == (5, 10)
                torch.testing.assert_close(out["y"].sum(1), torch.ones(5))
    assert model.reconstruct(batch)["x"].shape == (5, 1, 8, 8)


@pytest.mark.parametrize("name", [*JOINT_MODELS, "mfm"])
def test_inferring_from_a_modality_the_batch_lacks_names_it(digits_train, name):
    model = build_model(name, digits_train.modalities, **options(name))
    only_y = {"y": digits_train.first(3)["y"]}
    message = r"inferred from \['x'\], but the batch lacks \['x'\] \(it holds \['y'\]\)"
    with pytest.raises(KeyError, match=message):
        model.generate(only_y, given=["x"], targets=["y"], n=3)
    with pytest.raises(KeyError, match=message):
        model.encode(only_y, given=["x"])
    with pytest.raises(KeyError, match="lacks \\['x'\\]"):
        model.encode(only_y)  # every modality by default


@pytest.mark.parametrize("name", ["jmvae", "jmvae-kl", "telbo", "mvae", "mmvae", "mopoe", "mvtcae"])
def test_three_modalities(digits_train, name):
    mods = with_parity(digits_train.modalities)
    extra = {"groups": [["x"], ["y", "w"]]} if name in ("jmvae-kl", "telbo") else {}
    extra = {"subsets": [["y", "w"]]} if name == "mvae" else extra
    torch.manual_seed(0)
    model = build_model(name, mods, **options(name), **extra)
    batch = parity_batch(digits_train.first(4))
    assert model.train_step(batch) > 0
    for given in subsets(["x", "y", "w"]):
        out = model.generate(batch, given=given, targets=["x", "y", "w"], n=4)
        assert out["x"].shape == (4, 1, 8, 8) and out["y"].shape == (4, 10) and out["w"].shape == (4, 2), (
            given
        )


def near_deterministic(encoder) -> None:
    """Make a Gaussian encoder's scale ~1e-4 so that its samples are its means."""
    last = [m for m in encoder.network.modules() if isinstance(m, torch.nn.Linear)][-1]
    half = last.out_features // 2
    with torch.no_grad():
        last.weight[half:] = 0.0
        last.bias[half:] = -30.0


@pytest.mark.parametrize(
    "name, given",
    [
        ("jmvae", ["y"]),
        ("jmvae-kl", ["x"]),
        ("mvae", ["y"]),
        ("telbo", ["y"]),
        ("mmvae", ["x"]),
        ("mopoe", ["y"]),
        ("mvtcae", ["x", "y"]),
    ],
)
def test_sample_latents_rows_are_sample_major(digits_train, name, given):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, **options(name))
    batch = digits_train.first(4)
    if name == "jmvae":  # make q(z|x,y) ignore x so that the imputations do not matter
        x_body_out = model.q.network.bodies[0][0].net[-1]  # the x body's last layer
        with torch.no_grad():
            x_body_out.weight.zero_()
            x_body_out.bias.zero_()
        near_deterministic(model.q)
    else:
        encoders = model.experts.values()
        for encoder in encoders:
            near_deterministic(encoder)
    means = model.encode(batch, given=given)["z"]
    latents = model.sample_latents(batch, given, n_samples=3)["z"]
    assert latents.shape == (12, 4)
    for s in range(3):
        torch.testing.assert_close(latents[s * 4 : (s + 1) * 4], means, atol=1e-2, rtol=0)
    assert not torch.allclose(means[0], means[1], atol=1e-2)  # the check can tell rows apart


@pytest.mark.parametrize("name", JOINT_MODELS)
def test_short_training_improves_the_test_loss(digits_train, digits_test, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, lr=3e-3, **options(name))
    trainer = Trainer(model, digits_train, digits_test, epochs=3, batch_size=64, progress=False)
    before = trainer.test_loss()
    history = trainer.fit()
    assert history[-1]["test_loss"] < 0.8 * before, (name, before, history)


@pytest.mark.parametrize("name", JOINT_MODELS)
def test_checkpoint_round_trip(digits_train, name):
    torch.manual_seed(0)
    extra = {"groups": [["x", "y"]]} if name == "jmvae-kl" else {}
    model = build_model(name, digits_train.modalities, **options(name), **extra)
    batch = digits_train.first(6)
    model.train_step(batch)
    config = json.loads(json.dumps(model.config))
    fresh = build_model(name, digits_train.modalities, **config)
    fresh.load_state(model.state())
    for given in (["x", "y"], ["y"]):
        torch.manual_seed(1)
        a = model.generate(batch, given=given)
        torch.manual_seed(1)
        b = fresh.generate(batch, given=given)
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    torch.manual_seed(2)
    loss_a = model.test_step(batch)
    torch.manual_seed(2)
    assert fresh.test_step(batch) == pytest.approx(loss_a)


@requires_cuda
@pytest.mark.parametrize("name", JOINT_MODELS)
def test_on_cuda(digits_train, name):
    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, **options(name)).to("cuda")
    batch = digits_train.first(8)
    assert model.train_step(batch) > 0 and model.device.type == "cuda"
    for given in subsets(["x", "y"]):
        out = model.generate(batch, given=given, n=8)
        assert out["x"].device.type == "cuda" and out["x"].shape == (8, 1, 8, 8)
    assert model.sample_latents(batch, ["y"], n_samples=2)[model.latents[0]].shape[0] == 16
