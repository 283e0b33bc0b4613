"""The teacher-student KL and the inference gaps of several posteriors against one q*(z|X)."""

from __future__ import annotations

import copy

import pytest
import torch
from pixyz.distributions import Normal

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.distributions.refinement import RefinedGaussian
from pixyz_zoo.evaluation import amortization_gaps, inference_gaps, teacher_student_kl
from pixyz_zoo.evaluation.amortization import optimal_gaussian
from pixyz_zoo.evaluation.distillation import gaussian_kl_between
from pixyz_zoo.evaluation.likelihood import evaluation_batches
from pixyz_zoo.models import build_model
from pixyz_zoo.models.refinement import elbo_refinement_loss, make_rule, refined_inference

QSTAR = {"max_steps": 400, "window": 20, "lr": 0.05}  # q* converges on these tiny models


@pytest.fixture(scope="module")
def digits20():
    return load_dataset("digits", "test").subset(slice(0, 20))


def jmvae(data, z_dim=2, seed=0):
    torch.manual_seed(seed)
    return build_model("jmvae-kl", data.modalities, z_dim=z_dim, hidden=[8])


class FixedGaussian(Normal):
    """``N(loc, scale^2)`` of given rows, whatever ``x``: a posterior set to known parameters."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__(var=["z"], cond_var=["x"], name="q_{fixed}")
        self.fixed_loc, self.fixed_scale = loc, scale

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loc": self.fixed_loc, "scale": self.fixed_scale}


# ---------------------------------------------------------------------- teacher-student KL
def test_kl_is_zero_for_a_student_equal_to_its_teacher(digits20):
    model = jmvae(digits20)
    q = model.inference_for(["x"])
    kl = teacher_student_kl(model, digits20, {"joint": (model.inference, model.inference), "x": (q, q)})
    assert kl == {"joint": 0.0, "x": 0.0}


def test_kl_is_the_closed_form_gaussian_kl_on_a_batch(digits20):
    model = jmvae(digits20)
    teacher, student = model.inference, model.inference_for(["y"])
    batch = next(evaluation_batches(digits20, 20, seed=3))
    with torch.no_grad():
        t = {k: v.double() for k, v in teacher.get_params({"x": batch["x"], "y": batch["y"]}).items()}
        s = {k: v.double() for k, v in student.get_params({"y": batch["y"]}).items()}
    by_hand = (
        torch.log(s["scale"] / t["scale"])
        + (t["scale"] ** 2 + (t["loc"] - s["loc"]) ** 2) / (2 * s["scale"] ** 2)
        - 0.5
    ).sum(dim=1)
    per_example = gaussian_kl_between(teacher, student, batch)
    assert per_example.dtype == torch.float64 and per_example.shape == (20,)
    assert torch.allclose(per_example, by_hand, rtol=1e-6, atol=1e-9)
    kl = teacher_student_kl(model, digits20, {"y": (teacher, student)}, batch_size=7, seed=3)
    assert kl["y"] == pytest.approx(float(by_hand.mean()), rel=1e-6)
    assert float(by_hand.mean()) > 1e-3  # an untrained model's encoders differ: not a trivial 0


def test_kl_is_nonnegative_and_grows_as_the_student_moves_away(digits20):
    model = jmvae(digits20)
    pairs = {m: (model.inference, model.inference_for([m])) for m in ("x", "y")}
    refined = refined_inference(model, None, steps=3, lr=0.1)
    pairs["refined-x"] = (refined, model.inference_for(["x"]))
    kl = teacher_student_kl(model, digits20, pairs)
    assert all(value >= 0 for value in kl.values()) and len(kl) == 3
    direction = [torch.randn_like(p) for p in model.inference.parameters()]
    values = []
    for size in (0.0, 0.05, 0.2, 1.0):
        student = copy.deepcopy(model.inference)
        with torch.no_grad():
            for p, d in zip(student.parameters(), direction, strict=True):
                p.add_(size * d)
        values.append(teacher_student_kl(model, digits20, {"s": (model.inference, student)})["s"])
    assert values[0] == 0.0 < values[1] < values[2] < values[3]


def test_a_refined_teacher_runs_its_refinement_and_zero_steps_is_its_encoder(digits20):
    model = jmvae(digits20)
    student = model.inference_for(["x"])
    kl = teacher_student_kl(
        model,
        digits20,
        {
            "encoder": (model.inference, student),
            "T=0": (refined_inference(model, None, steps=0), student),
            "T=5": (refined_inference(model, None, steps=5, lr=0.2), student),
        },
    )
    assert kl["T=0"] == pytest.approx(kl["encoder"], rel=1e-9)
    assert abs(kl["T=5"] - kl["encoder"]) > 1e-4


def test_n_takes_a_seeded_subsample(digits20):
    model = jmvae(digits20)
    pair = {"x": (model.inference, model.inference_for(["x"]))}
    assert teacher_student_kl(model, digits20, pair, n=100) == teacher_student_kl(model, digits20, pair)
    five = teacher_student_kl(model, digits20, pair, n=5, seed=1)
    index = torch.randperm(20, generator=torch.Generator().manual_seed(1))[:5].sort().values
    assert five == teacher_student_kl(model, digits20.subset(index), pair, seed=1)
    assert five != teacher_student_kl(model, digits20, pair, seed=1)


def test_teacher_student_kl_errors(digits20):
    data = load_dataset("trimodal-digits", "test").subset(slice(0, 4))
    mopoe = build_model("mopoe", data.modalities, z_dim=2, hidden=[8])
    mixture = mopoe.inference_for(list(data.modalities))
    with pytest.raises(
        TypeError, match="analytic for diagonal Gaussians; the teacher of 'all'.*not a Gaussian"
    ):
        teacher_student_kl(mopoe, data, {"all": (mixture, mopoe.inference_for(["m"]))})
    model, wider = jmvae(digits20), jmvae(digits20, z_dim=3)
    with pytest.raises(ValueError, match=r"latents \(20, 2\).*\(20, 3\).*the same latent"):
        teacher_student_kl(model, digits20, {"x": (model.inference, wider.inference_for(["x"]))})
    with pytest.raises(ValueError, match="non-empty mapping label -> \\(teacher, student\\)"):
        teacher_student_kl(model, digits20, {})
    with pytest.raises(TypeError, match="must be a \\(teacher, student\\) tuple"):
        teacher_student_kl(model, digits20, {"x": model.inference})


# ---------------------------------------------------------------------- inference gaps
def test_every_gap_is_nonnegative_against_a_converged_optimum(digits20):
    model = jmvae(digits20)
    loss, posterior = elbo_refinement_loss(model, None)
    refined_x = RefinedGaussian(
        model.inference_for(["x"]), loss, 5, make_rule("adam", 0.1), posterior=posterior
    )
    posteriors = {"joint": model.inference, "x": model.inference_for(["x"]), "y": model.inference_for(["y"])}
    posteriors["refined x"] = refined_x
    before = {k: v.clone() for k, v in model.distributions.state_dict().items()}
    gaps = inference_gaps(model, digits20, posteriors, k=200, elbo_samples=200, **QSTAR)
    assert gaps["optimal"]["converged_fraction"] == 1.0 and gaps["examples"] == 20
    assert set(gaps["posteriors"]) == set(posteriors)
    for label, row in gaps["posteriors"].items():
        assert row["gap"] >= -0.05, label
        assert row["gap"] == pytest.approx(gaps["optimal"]["elbo"] - row["elbo"])
    assert gaps["posteriors"]["joint"]["gap"] > 0.2  # an untrained encoder: far from q*
    assert gaps["posteriors"]["refined x"]["gap"] < gaps["posteriors"]["x"]["gap"]  # refinement helps
    assert gaps["log_px"] > gaps["optimal"]["elbo"]  # IWAE_k > the mean of the same k log-weights
    assert gaps["optimal"]["approximation_gap"] == pytest.approx(gaps["log_px"] - gaps["optimal"]["elbo"])
    after = model.distributions.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.distributions.parameters())


def test_a_posterior_at_the_optimum_has_no_gap(digits20):
    model = jmvae(digits20)
    batch = next(evaluation_batches(digits20, 20, seed=0))
    best = optimal_gaussian(model, batch, **QSTAR)
    at_optimum = FixedGaussian(best.loc, best.scale)
    gaps = inference_gaps(
        model, digits20, {"q*": at_optimum, "joint": model.inference}, k=400, elbo_samples=400, **QSTAR
    )
    assert abs(gaps["posteriors"]["q*"]["gap"]) < 0.05 < gaps["posteriors"]["joint"]["gap"]


@pytest.mark.parametrize("name", ["jmvae-kl", "iterative-vae"])
def test_one_posterior_gives_the_numbers_of_amortization_gaps(digits20, name):
    torch.manual_seed(0)
    modalities = digits20.modalities if name == "jmvae-kl" else {"x": digits20.modalities["x"]}
    options = {"refine_steps": 2} if name == "iterative-vae" else {}
    model = build_model(name, modalities, z_dim=2, hidden=[8], **options)
    data = digits20.subset(slice(0, 12))
    settings = {"k": 20, "elbo_samples": 20, "batch_size": 5, "seed": 5, "max_steps": 60, "window": 20}
    reference = amortization_gaps(model, data, **settings)
    gaps = inference_gaps(model, data, {"model": model.inference}, **settings)
    assert gaps["posteriors"]["model"]["elbo"] == pytest.approx(reference["elbo_model"], rel=1e-12)
    assert gaps["posteriors"]["model"]["gap"] == pytest.approx(reference["amortization_gap"], rel=1e-9)
    assert gaps["optimal"]["elbo"] == pytest.approx(reference["elbo_optimal"], rel=1e-12)
    assert gaps["log_px"] == pytest.approx(reference["log_px"], rel=1e-12)
    assert gaps["optimal"]["approximation_gap"] == pytest.approx(reference["approximation_gap"], rel=1e-9)
    assert gaps["examples"] == reference["examples"] == 12


def test_n_limits_the_examples_of_inference_gaps(digits20):
    model = jmvae(digits20)
    gaps = inference_gaps(
        model, digits20, {"x": model.inference_for(["x"])}, k=5, elbo_samples=5, n=6, max_steps=20
    )
    assert gaps["examples"] == 6 and gaps["k"] == 5 and gaps["optimiser"] == {"max_steps": 20}


def test_inference_gaps_errors(digits20):
    data = load_dataset("trimodal-digits", "test").subset(slice(0, 4))
    mopoe = build_model("mopoe", data.modalities, z_dim=2, hidden=[8])
    mixture = mopoe.inference_for(list(data.modalities))
    with pytest.raises(TypeError, match="the posterior 'all'.*MixtureOfExperts.*not a Gaussian"):
        inference_gaps(mopoe, data, {"all": mixture}, k=2)
    with pytest.raises(TypeError, match="q\\*\\(z\\|X\\) starts from the model's inference.*not a Gaussian"):
        inference_gaps(mopoe, data, {"m,s,t": mixture.experts[-1]}, k=2)  # the product of all experts
    model, wider = jmvae(digits20), jmvae(digits20, z_dim=3)
    with pytest.raises(ValueError, match="'wide'.*latents of shape \\(3,\\).*model's latent has \\(2,\\)"):
        inference_gaps(model, digits20, {"wide": wider.inference_for(["x"])}, k=2, max_steps=1)
    with pytest.raises(ValueError, match="non-empty mapping label -> Gaussian posterior"):
        inference_gaps(model, digits20, {})
    with pytest.raises(ValueError, match="elbo_samples must be an integer >= 1, got 0"):
        inference_gaps(model, digits20, {"x": model.inference_for(["x"])}, elbo_samples=0)
