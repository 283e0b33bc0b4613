"""JMVAE-GAN: the discriminator, the adversarial terms, the two optimiser steps, state, sharpness."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from pixyz_zoo import runs
from pixyz_zoo.datasets import DATASETS
from pixyz_zoo.distributions.celeba_networks import DiscriminatorNet
from pixyz_zoo.evaluation.sharpness import laplacian_variance
from pixyz_zoo.losses.gan import DISCRIMINATOR_LOSS_AT_CHANCE, AdversarialGeneratorLoss, FeatureLogLikelihood
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import MODELS, build_model
from pixyz_zoo.models.base import NonFiniteLossError, ZooModel
from pixyz_zoo.run_spec import RunSpec
from pixyz_zoo.training import load_checkpoint
from tests.conftest import requires_cuda
from tests.test_resume_exact import fit_interrupted

MODALITIES = {"x": Modality("x", (3, 32, 32), "gaussian"), "w": Modality("w", (16,), "gaussian")}
SMALL_D = {"discriminator_channels": [8, 16, 16, 16], "discriminator_hidden": 32}
TINY = {"z_dim": 4, "hidden": [32], "arch": "conv", **SMALL_D}


def random_batch(n: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "w": torch.randn(n, 16, generator=g).sign()}


# ---------------------------------------------------------------------- the discriminator
@pytest.mark.parametrize(
    "shape,paper,convs",
    [((3, 32, 32), True, 4), ((3, 64, 64), True, 4), ((1, 8, 8), False, 2), ((1, 28, 28), False, 3)],
)
def test_the_discriminator_is_the_papers_network_where_it_fits(shape, paper, convs) -> None:
    net = DiscriminatorNet(shape)
    assert net.paper_network is paper
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == convs
    x = torch.randn(5, *shape)
    assert net(x).shape == (5,)  # one logit per image, no sigmoid
    assert net.features(x).shape == (5, net.feature_dim)
    if paper:
        assert net.spec == "C64R-C128BR-C256BR-C256BR-F-D1024R-D1S"
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [1024, 1]
    assert not any(isinstance(m, nn.Sigmoid) for m in net.modules())


def test_the_discriminator_refuses_images_too_small_for_a_convolution() -> None:
    with pytest.raises(ValueError, match="at least 4x4 pixels"):
        DiscriminatorNet((3, 3, 3))


# ---------------------------------------------------------------------- the losses, in closed form
class ConstantLogit(nn.Module):
    """A discriminator whose logit is ``value`` for every image (and features = the pixels)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.value)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@pytest.mark.parametrize("logit", [-3.0, 0.0, 2.5])
def test_the_adversarial_terms_have_the_non_saturating_and_cross_entropy_forms(logit: float) -> None:
    model = build_model("jmvae-gan", MODALITIES, **TINY)
    loss = AdversarialGeneratorLoss(model.q, model.decoders["x"], model.prior, ConstantLogit(logit))
    batch = random_batch(4)
    # generator: -log D(fake_q) - log D(fake_p) = 2 softplus(-l); falls as D calls the fakes real
    expected = 2 * math.log1p(math.exp(-logit))
    assert torch.allclose(loss.eval(batch), torch.full((4,), expected), atol=1e-5)
    # discriminator: -log D(x) - 2 log(1 - D(fake)) = softplus(-l) + 2 softplus(l)
    expected_d = math.log1p(math.exp(-logit)) + 2 * math.log1p(math.exp(logit))
    assert float(loss.discriminator_loss(batch)) == pytest.approx(expected_d, abs=1e-5)
    if logit == 0.0:
        assert expected_d == pytest.approx(DISCRIMINATOR_LOSS_AT_CHANCE)


def test_the_encoder_gets_no_adversarial_gradient_and_the_decoder_does() -> None:
    model = build_model("jmvae-gan", MODALITIES, **TINY)
    model.adversarial.eval(random_batch(8)).mean().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.q.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoders["x"].parameters())
    assert all(p.grad is None for p in model.decoders["w"].parameters())


def test_print_shows_the_adversarial_term_in_the_loss() -> None:
    model = build_model("jmvae-gan", MODALITIES, **TINY)
    latex = model.loss_latex
    assert r"\log D(\bar{x}(z))" in latex and r"\mathrm{sg}[q](z|x,w)" in latex and r"\gamma" in latex
    assert r"\log p(x|z)" in latex  # the pixel likelihood by default
    text = str(model)
    assert latex in text and "gamma=1" in text and "Discriminator" in text


# ---------------------------------------------------------------------- the two steps
def generator_loss(model: ZooModel, batch: dict[str, torch.Tensor]) -> float:
    """``-log D`` of a reconstruction and a prior sample, at fixed draws (computed here, not by the loss)."""
    torch.manual_seed(123)
    with torch.no_grad():
        fakes = model.adversarial.fakes(model.feed(batch))
        return float(sum(-F.logsigmoid(model.discriminator(fake)).mean() for fake in fakes))


def discriminator_loss(model: ZooModel, batch: dict[str, torch.Tensor]) -> float:
    """``-log D(x) - log(1 - D(fake))`` summed over both kinds of fake, at fixed draws."""
    torch.manual_seed(123)
    with torch.no_grad():
        fakes = model.adversarial.fakes(model.feed(batch))
        real = -F.logsigmoid(model.discriminator(batch["x"])).mean()
        return float(real + sum(-F.logsigmoid(-model.discriminator(fake)).mean() for fake in fakes))


def test_model_steps_with_the_discriminator_fixed_lower_the_generators_loss() -> None:
    torch.manual_seed(0)
    model = build_model("jmvae-gan", MODALITIES, **TINY, gamma=100.0)
    batch = random_batch(16)
    for _ in range(3):  # a discriminator that tells the untrained decoder's images apart
        model.discriminator_step(model.feed(batch))
    d_state = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    before = generator_loss(model, batch)
    for _ in range(5):
        model.generator_step(model.feed(batch))
    after = generator_loss(model, batch)
    assert after < before - 0.1, (before, after)
    # the model's step leaves the discriminator's parameters alone
    params = dict(model.discriminator.named_parameters())
    assert all(torch.equal(params[k], d_state[k]) for k in params)


def test_discriminator_steps_with_the_generator_fixed_lower_its_loss() -> None:
    torch.manual_seed(0)
    model = build_model("jmvae-gan", MODALITIES, **TINY)
    batch = random_batch(16)
    model_state = {k: v.clone() for k, v in model.distributions.state_dict().items()}
    before = discriminator_loss(model, batch)
    for _ in range(5):
        model.discriminator_step(model.feed(batch))
    after = discriminator_loss(model, batch)
    assert after < before - 0.1, (before, after)
    params = dict(model.distributions.named_parameters())
    assert all(torch.equal(params[k], model_state[k]) for k in params)


def test_train_step_takes_both_steps_and_reports_the_epochs_discriminator_loss() -> None:
    torch.manual_seed(0)
    model = build_model("jmvae-gan", MODALITIES, **TINY)
    batch = random_batch(8)
    d_before = [p.clone() for p in model.discriminator.parameters()]
    q_before = [p.clone() for p in model.q.parameters()]
    losses = [model.train_step(batch) for _ in range(2)]
    assert all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(q_before, model.q.parameters(), strict=True))
    metrics = model.epoch_metrics()
    assert set(metrics) == {"discriminator_loss", "generator_adversarial_loss"}
    assert 0 < metrics["discriminator_loss"] < 10 * DISCRIMINATOR_LOSS_AT_CHANCE
    assert model.epoch_metrics() == {}  # reset


def test_a_non_finite_discriminator_loss_is_refused_before_any_step() -> None:
    model = build_model("jmvae-gan", MODALITIES, **TINY)
    with torch.no_grad():
        model.discriminator.head[-1].bias.fill_(float("nan"))
    before = [p.clone() for p in model.discriminator.parameters()]
    with pytest.raises(NonFiniteLossError, match="discriminator"):
        model.discriminator_step(model.feed(random_batch(4)))
    after = list(model.discriminator.parameters())
    assert all(
        torch.allclose(a, b, rtol=0, atol=0, equal_nan=True) for a, b in zip(before, after, strict=True)
    )


# ---------------------------------------------------------------------- feature reconstruction
def test_feature_reconstruction_replaces_the_images_pixel_likelihood() -> None:
    torch.manual_seed(0)
    model = build_model("jmvae-gan", MODALITIES, **TINY, reconstruction="feature")
    latex = model.loss_latex
    assert r"\mathrm{Dis}_l(x)" in latex and r"\log p(x|z)" not in latex and r"\log p(w|z)" in latex
    assert math.isfinite(model.train_step(random_batch(8)))
    # the term is log N(Dis_l(x); Dis_l(xbar(z)), I), here with the pixels as features
    term = FeatureLogLikelihood(model.decoders["x"], ConstantLogit(0.0))
    batch, z = random_batch(4), torch.randn(4, 4)
    mean = model.decoders["x"].sample_mean({"z": z})
    expected = torch.distributions.Normal(mean.flatten(1), 1.0).log_prob(batch["x"].flatten(1)).sum(1)
    assert torch.allclose(term.eval({"x": batch["x"], "z": z}), expected, atol=1e-3)
    with pytest.raises(ValueError, match="'pixel' or 'feature'"):
        build_model("jmvae-gan", MODALITIES, **TINY, reconstruction="features")


# ---------------------------------------------------------------------- errors
def test_a_dataset_without_an_image_is_refused_naming_datasets_with_one() -> None:
    no_image = {"a": Modality("a", (12, 4), "gaussian"), "w": Modality("w", (16,), "gaussian")}
    with pytest.raises(ValueError, match="no image modality.*attribute-shapes, celeba, digits"):
        build_model("jmvae-gan", no_image)
    two_images = {**MODALITIES, "s": Modality("s", (1, 8, 8), "bernoulli")}
    with pytest.raises(ValueError, match=r"has 2: \['x', 's'\]; choose one with the option image"):
        build_model("jmvae-gan", two_images, **TINY)
    model = build_model("jmvae-gan", two_images, **TINY, image="s")
    assert model.discriminator.image_shape == (1, 8, 8)
    with pytest.raises(ValueError, match="not an image"):
        build_model("jmvae-gan", MODALITIES, **TINY, image="w")


def test_the_registry_and_the_cli_options_know_the_model() -> None:
    assert MODELS["jmvae-gan"].name == "jmvae-gan"
    with pytest.raises(ValueError, match="reconstruction='x'"):
        build_model("jmvae-gan", MODALITIES, reconstruction="x")


# ---------------------------------------------------------------------- state and resume
def test_the_discriminator_and_its_optimiser_are_in_the_state() -> None:
    torch.manual_seed(0)
    model = build_model("jmvae-gan", MODALITIES, **TINY)
    batch = random_batch(8)
    model.train_step(batch)
    buffer = io.BytesIO()  # through torch.save as a checkpoint (state() holds live tensors)
    torch.save(model.state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["discriminator_optimizer"]["state"], "Adam has moments"
    torch.manual_seed(1)
    other = build_model("jmvae-gan", MODALITIES, **TINY)
    other.load_state(state)
    x = batch["x"]
    model.discriminator.eval(), other.discriminator.eval()
    assert torch.equal(model.discriminator(x), other.discriminator(x))
    torch.manual_seed(5)
    model.train_step(batch)
    torch.manual_seed(5)
    other.train_step(batch)
    assert torch.equal(model.discriminator(x), other.discriminator(x))


def test_a_run_resumed_through_fit_run_equals_an_uninterrupted_one(tmp_path, monkeypatch) -> None:
    fit = dict(
        dataset="digits",
        batch_size=32,
        device="cpu",
        options={"z_dim": 2, "hidden": [16], "discriminator_channels": [8, 8], "discriminator_hidden": 16},
        train_examples=64,
        test_examples=32,
    )
    spec = RunSpec.from_settings("jmvae-gan", epochs=2, **fit)
    runs.fit_run(spec, tmp_path / "whole", progress=False)
    fit_interrupted(spec, tmp_path / "parts", monkeypatch)
    runs.fit_run(spec, tmp_path / "parts", progress=False)
    got, expected = load_checkpoint(tmp_path / "parts"), load_checkpoint(tmp_path / "whole")
    assert got["epoch"] == expected["epoch"] == 2
    for key in ("distributions", "discriminator"):
        for name, value in expected["state"][key].items():
            assert torch.equal(got["state"][key][name], value), (key, name)
    moments = expected["state"]["discriminator_optimizer"]["state"]
    assert moments and all(
        torch.equal(got["state"]["discriminator_optimizer"]["state"][i]["exp_avg"], m["exp_avg"])
        for i, m in moments.items()
    )
    records = [r["discriminator_loss"] for r in got["history"]]
    assert records == [r["discriminator_loss"] for r in expected["history"]] and len(records) == 2


@requires_cuda
def test_on_cuda() -> None:
    torch.manual_seed(0)
    model = build_model("jmvae-gan", MODALITIES, **TINY).to("cuda")
    assert next(model.discriminator.parameters()).device.type == "cuda"
    assert math.isfinite(model.train_step(random_batch(8)))
    assert model.epoch_metrics()["discriminator_loss"] > 0
    assert model.generate(random_batch(4), given=["w"])["x"].device.type == "cuda"


# ---------------------------------------------------------------------- sharpness
def test_laplacian_variance_matches_scipy_and_falls_with_blur() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 12, 10, generator=g) * 2 - 1
    got = laplacian_variance(images)
    for image, value in zip(images.numpy(), got, strict=True):
        luminance = image.astype(np.float64).mean(0)
        expected = ndimage.laplace(luminance)[1:-1, 1:-1].var()  # the valid region only
        assert float(value) == pytest.approx(expected, rel=1e-5)
    # the mean over channels: a grey image scores as its single channel
    assert torch.allclose(laplacian_variance(images.mean(1, keepdim=True)), got)
    blurred = torch.from_numpy(ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 1, 1)))
    assert (laplacian_variance(blurred) < 0.5 * got).all()
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        laplacian_variance(images[0])


# ---------------------------------------------------------------------- stability and sharpness
def coloured_blobs(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Sharp-edged discs of 4 colours, 2 sizes, 4 quadrants, on a dark or bright background (no noise),
    with those 8 binary attributes in {-1, 1} (the CelebA form of ``attribute-shapes``)."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
    colour = torch.randint(0, 4, (n,), generator=g)
    large, right, bottom = (torch.rand(n, generator=g) < 0.5 for _ in range(3))
    bright = torch.rand(n, generator=g) < 0.4
    radius = torch.where(large, 7.0, 4.0) + torch.rand(n, generator=g)
    cx = torch.where(right, 22.0, 10.0) + 3 * (torch.rand(n, generator=g) - 0.5)
    cy = torch.where(bottom, 22.0, 10.0) + 3 * (torch.rand(n, generator=g) - 0.5)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    inside = (xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2 <= radius[:, None, None] ** 2
    mask = inside.float()[:, None]
    background = torch.where(bright, 0.4, -0.6)[:, None, None, None]
    x = background * (1 - mask) + colours[colour][:, :, None, None] * mask
    attributes = [
        F.one_hot(colour, 4).bool(),
        large[:, None],
        right[:, None],
        bottom[:, None],
        bright[:, None],
    ]
    return {"x": x, "w": torch.cat(attributes, 1).float() * 2 - 1}


def attribute_image_data() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """512 training and 64 test examples of ``attribute-shapes`` once it is registered, else blobs."""
    if "attribute-shapes" in DATASETS:
        load = DATASETS["attribute-shapes"].loader  # the spec's load_attribute_shapes(split, ..., n=)
        return load("train", n=512).first(512), load("test", n=64).first(64), "attribute-shapes"
    return coloured_blobs(512, 1), coloured_blobs(64, 2), "coloured blobs"


def train_briefly(name: str, train: dict, steps: int, **options) -> tuple[ZooModel, list[float]]:
    torch.manual_seed(0)
    modalities = {
        "x": Modality("x", (3, 32, 32), "gaussian"),
        "w": Modality("w", train["w"].shape[1:], "gaussian"),
    }
    model = build_model(name, modalities, z_dim=16, hidden=[128], arch="conv", **options)
    discriminator_losses = []
    for step in range(steps):
        start = (step * 32) % len(train["x"])
        model.train_step({k: v[start : start + 32] for k, v in train.items()})
        discriminator_losses += list(model.epoch_metrics().values())[:1]  # this step's loss
    return model, discriminator_losses


@pytest.mark.slow
def test_jmvae_gan_trains_stably_and_generates_sharper_images_than_jmvae_kl() -> None:
    """192 steps of 32 (12 epochs of 512 examples), the same networks and seeds for both models.

    Bound: the discriminator's loss is 3 ln 2 (2.08) at chance and 0 when it wins; a loss above
    10 x 3 ln 2 would mean that it assigns the wrong label with a mean probability above
    1 - e^{-6.9} on its three terms, a diverged game. The images are generated from the test
    attributes w (z ~ q(z|w), decoder means) and scored by the variance of the Laplacian.
    """
    train, test, _ = attribute_image_data()
    kl, _ = train_briefly("jmvae-kl", train, 192)
    discriminator = {"discriminator_channels": [16, 32, 64, 64], "discriminator_hidden": 128}
    gan, losses = train_briefly("jmvae-gan", train, 192, **discriminator)
    assert len(losses) == 192 and all(math.isfinite(v) for v in losses)
    assert max(losses) < 10 * DISCRIMINATOR_LOSS_AT_CHANCE, max(losses)
    torch.manual_seed(1)
    sharp_kl = laplacian_variance(kl.generate(test, given=["w"], targets=["x"])["x"]).mean()
    torch.manual_seed(1)
    sharp_gan = laplacian_variance(gan.generate(test, given=["w"], targets=["x"])["x"]).mean()
    print(
        f"sharpness jmvae-kl {sharp_kl:.4f} jmvae-gan {sharp_gan:.4f}; "
        f"discriminator loss {min(losses):.3f}-{max(losses):.3f}"
    )
    assert sharp_gan > 1.5 * sharp_kl, (float(sharp_kl), float(sharp_gan))
