"""The multimodal VAE with a refined teacher and distilled students (``iterative-multimodal``)."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as td

from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.distributions import ProductOfGaussianExperts
from pixyz_zoo.distributions.refinement import LOG_SCALE_RANGE, RefinedGaussian
from pixyz_zoo.distributions.shared_parameters import shared_parameters
from pixyz_zoo.models import build_model
from pixyz_zoo.models.distilled import DistilledMultimodalVAE
from pixyz_zoo.models.refinement import posterior_parameters


@pytest.fixture(scope="module")
def data():
    return load_dataset("trimodal-digits", "train")


@pytest.fixture()
def batch(data):
    return data.first(6)


def tiny(data, **options) -> DistilledMultimodalVAE:
    torch.manual_seed(0)
    options = {"z_dim": 3, "hidden": [16], "refine_steps": 2, **options}
    return build_model("iterative-multimodal", data.modalities, **options)


def params(q, batch):
    with torch.no_grad(), shared_parameters():
        return posterior_parameters(q, batch)


def perturbed(batch, modality):
    out = dict(batch)
    out[modality] = batch[modality].flip(0)  # other examples' values of that modality only
    return out


def test_teacher_reads_every_modality_and_students_only_their_own(data, batch):
    model = tiny(data)
    for m in model.modalities:
        teacher, student = model.teacher_for(m), model.inference_for([m])
        assert set(teacher.cond_var) == set(model.modalities)
        assert student.cond_var == [m]
        for other in model.modalities:
            if other == m:
                continue
            changed = perturbed(batch, other)
            # the student's posterior does not move when another modality changes ...
            for a, b in zip(params(student, batch), params(student, changed), strict=True):
                assert torch.equal(a, b)
            # ... the refined teacher's does (its refinement uses the multimodal ELBO)
            loc, _ = params(teacher, batch)
            loc_changed, _ = params(teacher, changed)
            assert not torch.allclose(loc, loc_changed)


def test_student_inference_does_not_touch_other_modalities(data, batch):
    """Encoding from one modality works with the others absent from the batch."""
    model = tiny(data)
    for m in model.modalities:
        z = model.encode({m: batch[m]}, [m])["z"]
        assert z.shape == (len(batch[m]), 3)


def test_subsets_are_products_of_the_students(data, batch):
    model = tiny(data)
    q = model.inference_for(["m", "t"])
    assert isinstance(q, ProductOfGaussianExperts)
    loc, scale = params(q, batch)
    (lm, sm), (lt, st) = params(model.students["m"], batch), params(model.students["t"], batch)
    precision = sm**-2 + st**-2
    torch.testing.assert_close(scale, precision**-0.5)
    torch.testing.assert_close(loc, (lm * sm**-2 + lt * st**-2) / precision)
    joint = model.inference_for(list(model.modalities))
    assert isinstance(joint, ProductOfGaussianExperts) and set(joint.cond_var) == set(model.modalities)


def test_zero_steps_distils_from_the_unrefined_teacher(data, batch):
    model = tiny(data, refine_steps=0)
    for m in model.modalities:
        teacher = model.teacher_for(m)
        for a, b in zip(params(teacher, batch), params(model.teacher_initial[m], batch), strict=True):
            assert torch.equal(a, b)
        # and the teacher then reads its own modality only
        for a, b in zip(
            params(teacher, batch), params(teacher, perturbed(batch, "s" if m != "s" else "m")), strict=True
        ):
            assert torch.equal(a, b)


def _negative_elbo(model, batch, loc, scale):
    """-ELBO of every modality (weights 1, beta 1) with one reparameterised sample, by hand."""
    z = td.Normal(loc, scale).rsample((1,))[0]
    log_lik = sum(model.decoders[m].get_log_prob({m: batch[m], "z": z}) for m in model.modalities)
    kl = td.kl_divergence(td.Normal(loc, scale), td.Normal(0.0, 1.0)).sum(-1)
    return -log_lik + kl


def _kl(a, b):
    return td.kl_divergence(td.Normal(*a), td.Normal(*b)).sum(-1)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_loss_by_hand_on_a_tiny_batch(data, direction):
    """One SGD refinement step (log-scale clamped as the rule does): the loss is
    (1/M) sum_m (F(lambda_0^m) + F(lambda_1^m)) / 2
    + alpha sum_m KL(teacher_m || student_m) (or reversed), with the same random draws."""
    batch = data.first(4)
    lr, alpha = 0.05, 0.7
    model = tiny(data, refine_steps=1, refine_rule="sgd", refine_lr=lr, alpha=alpha, distillation=direction)
    model.distributions.eval()
    torch.manual_seed(123)
    value = model.test_step(batch)

    torch.manual_seed(123)
    teacher_terms, distill = [], 0.0
    for m in model.modalities:
        with torch.no_grad():
            loc0, scale0 = posterior_parameters(model.teacher_initial[m], batch)
        log_scale0 = scale0.log().requires_grad_()
        loc0 = loc0.clone().requires_grad_()
        f0 = _negative_elbo(model, batch, loc0, log_scale0.exp())
        g_loc, g_log_scale = torch.autograd.grad(f0.sum(), [loc0, log_scale0])
        with torch.no_grad():
            loc1 = loc0 - lr * g_loc
            scale1 = (log_scale0 - lr * g_log_scale).clamp(*LOG_SCALE_RANGE).exp()
            f1 = _negative_elbo(model, batch, loc1, scale1)
            teacher_terms.append((f0.mean() + f1.mean()) / 2)
            student = posterior_parameters(model.students[m], batch)
            pair = ((loc1, scale1), student) if direction == "forward" else (student, (loc1, scale1))
            distill = distill + _kl(*pair)
    expected = sum(teacher_terms) / len(teacher_terms) + alpha * distill.mean()
    assert value == pytest.approx(float(expected), rel=1e-5)


def test_distillation_moves_the_students_towards_the_teachers(data, batch):
    model = tiny(data, refine_steps=1)

    def kls():
        out = {}
        torch.manual_seed(0)  # the same draws in the refinement: the same teachers each time
        for m in model.modalities:
            with torch.no_grad(), shared_parameters():
                out[m] = float(
                    _kl(params(model.teacher_for(m), batch), params(model.students[m], batch)).mean()
                )
        return out

    before = kls()
    # the students alone trained on the distillation term, the teachers fixed
    distill_only = model.loss_cls.loss2
    students = model.with_loss(distill_only, {"alpha": 1.0})
    students.optimizer = torch.optim.Adam(
        [p for s in model.students.values() for p in s.parameters()], lr=1e-3
    )
    for _ in range(30):
        torch.manual_seed(0)
        students.train_step(batch)
    after = kls()
    for m in model.modalities:
        assert after[m] < 0.75 * before[m], (m, before, after)


@pytest.mark.parametrize("rule", ["adam", "learned"])
def test_stop_gradient_keeps_the_distillation_out_of_the_teacher(data, batch, rule):
    for teacher_gradient in (False, True):
        model = tiny(data, refine_steps=2, refine_rule=rule, teacher_gradient=teacher_gradient)
        model.distributions.zero_grad()
        with shared_parameters():
            loss = model.loss_cls.loss2.eval(model.feed(batch))
        loss.backward()

        def reached(modules):
            return any(p.grad is not None and p.grad.abs().sum() > 0 for m in modules for p in m.parameters())

        assert all(reached([s]) for s in model.students.values())
        assert not reached(model.decoders.values())  # never the decoders
        assert reached(model.teacher_initial.values()) == teacher_gradient
        if rule == "learned":
            assert reached([model.rule]) == teacher_gradient


def test_straight_through_teacher_has_the_refined_value(data, batch):
    model = tiny(data, refine_steps=2, teacher_gradient=True)
    for m in model.modalities:
        torch.manual_seed(1)
        refined = params(model.teacher_for(m), batch)
        torch.manual_seed(1)
        target = params(model._target(m), batch)
        for a, b in zip(refined, target, strict=True):
            torch.testing.assert_close(a, b)


def test_joint_teacher_serves_every_student(data, batch):
    model = tiny(data, teacher_init="joint")
    teachers = {id(model.teacher_for(m)) for m in model.modalities}
    assert len(teachers) == 1 and list(model.teacher_initial) == ["joint"]
    assert set(model.teacher_initial["joint"].cond_var) == set(model.modalities)


def test_training_lowers_the_loss_and_prints_the_whole_objective(data):
    model = tiny(data, refine_steps=1)
    batch = data.first(32)
    first = model.train_step(batch)
    for _ in range(15):
        last = model.train_step(batch)
    assert last < first
    text = str(model)
    for m in model.modalities:
        assert rf"\lambda_0 \text{{ of }} q(z|{m})" in text  # one teacher term per start
        assert r"\mathrm{sg}[q_{T}]" in text and rf"\hat{{q}}(z|{m})" in text
    assert "KL(teacher || student)" in text
    assert isinstance(model.teacher_for("m"), RefinedGaussian)


def test_own_refinements_are_the_teachers_and_their_curves_start_at_the_initial_encoders(data, batch):
    from pixyz_zoo.evaluation.amortization import refinement_trajectory

    model = tiny(data)
    own = model.own_refinements()
    assert list(own) == [f"teacher_{m}" for m in model.modalities]
    assert all(own[f"teacher_{m}"] is model.teacher_for(m) for m in model.modalities)
    assert list(tiny(data, teacher_init="joint").own_refinements()) == ["teacher_joint"]
    teacher = own["teacher_s"]
    torch.manual_seed(1)
    trajectory = refinement_trajectory(model, batch, steps=5, rule=teacher)  # past its T = 2
    assert len(trajectory) == 6
    for a, b in zip(trajectory[0], params(model.teacher_initial["s"], batch), strict=True):
        assert torch.equal(a, b)  # lambda_0: the teacher's own initial encoder q(z|s)
    torch.manual_seed(1)
    again = refinement_trajectory(model, batch, rule=teacher)  # its own T by default
    assert len(again) == 3
    for a, b in zip(trajectory[2], again[2], strict=True):
        assert torch.equal(a, b)  # the teacher's own steps (its rule, its objective), same draws
    assert not torch.equal(trajectory[5][0], trajectory[2][0])
    torch.manual_seed(1)
    for a, b in zip(again[2], params(teacher, batch), strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)  # what the teacher gives in the model


@pytest.mark.parametrize(
    "option, value",
    [
        ("teacher_init", "prior"),
        ("distillation", "symmetric"),
        ("refine_rule", "newton"),
        ("refine_steps", -1),
    ],
)
def test_bad_options_are_refused_with_the_choices(data, option, value):
    with pytest.raises(ValueError, match=str(value) if option != "refine_steps" else "refine_steps=-1"):
        tiny(data, **{option: value})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_on_cuda(data):
    model = tiny(data).to("cuda")
    batch = data.first(8)
    assert torch.isfinite(torch.tensor(model.train_step(batch)))
    assert model.encode(batch, ["m"])["z"].device.type == "cuda"
