"""Refinement by inference gradients: RefinedGaussian, update rules, IterativeInferenceLoss, models."""

from __future__ import annotations

import json
import weakref

import pytest
import sympy
import torch
from pixyz.losses import Expectation as E
from pixyz.losses import KullbackLeibler, LogProb
from pixyz.losses.losses import Loss

from pixyz_zoo.distributions.refinement import (
    GaussianFromParameters,
    GradientStep,
    LearnedUpdate,
    RefinedGaussian,
)
from pixyz_zoo.distributions.shared_parameters import shared_parameters
from pixyz_zoo.distributions.text import loss_text
from pixyz_zoo.evaluation.amortization import refinement_curve
from pixyz_zoo.losses.iterative import IterativeInferenceLoss
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import VAE, build_model
from pixyz_zoo.models.iterative import IterativeVAE, RefinedVAE
from pixyz_zoo.models.refinement import elbo_refinement_loss, refined_inference
from tests.conftest import requires_cuda
from tests.linear_gaussian import linear_gaussian

TINY = {"z_dim": 4, "hidden": [16]}


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.distributions.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------------- convergence on a known posterior
@pytest.mark.parametrize("rule, lr", [("adam", 0.03), ("sgd", 0.02)])
def test_gradient_steps_reach_the_exact_posterior(rule, lr):
    lg = linear_gaussian()
    x = lg.sample(20)
    refined = refined_inference(lg.model, steps=200, rule=rule, lr=lr, samples=4)
    torch.manual_seed(0)
    with torch.no_grad():
        result = refined.run({"x": x}, keep=True)
    log_px = lg.log_px(x)
    before = (log_px - lg.elbo(x, *result.trajectory[0])).mean()
    after = (log_px - lg.elbo(x, result.loc, result.scale)).mean()
    assert before > 1.0  # the untrained encoder is far from the posterior
    assert 0 <= after < 0.06  # ELBO = log p(x) up to Monte Carlo noise of the steps
    loc, scale = lg.posterior(x)
    assert torch.allclose(result.loc, loc, atol=0.25) and torch.allclose(result.scale, scale, atol=0.15)


def test_learned_refinement_does_not_worsen_the_bound_after_training(digits_train, digits_test):
    torch.manual_seed(0)
    model = IterativeVAE(digits_train.modalities, refine_steps=3, **TINY)
    for _ in range(2):
        for batch in digits_train.batches(64, shuffle=True):
            model.train_step({"x": batch["x"]})
    curve = refinement_curve(model, digits_test, rule="model", k=20)
    assert len(curve["elbo"]) == 4
    # not worse, better (0.3 to 0.6 nats after 2 epochs over seeds 0-3 in a probe run)
    assert curve["elbo"][-1] >= curve["elbo"][0] + 0.1, curve["elbo"]
    assert min(curve["elbo"][1:]) >= curve["elbo"][0] - 0.05, curve["elbo"]


# ---------------------------------------------------------------------- what refinement must not touch
@pytest.mark.parametrize("rule", ["adam", "sgd", "learned"])
def test_refinement_never_changes_or_differentiates_the_decoder(digits_train, rule):
    torch.manual_seed(0)
    model = VAE(digits_train.modalities, **TINY)
    update = LearnedUpdate(4, (8,)) if rule == "learned" else rule
    refined = refined_inference(model, steps=4, rule=update)
    before = snapshot(model)
    x = digits_train.first(8)["x"]
    model.distributions.train()
    params = refined.get_params({"x": x})  # with gradients enabled, as in a training step
    refined.run({"x": x}, keep=True)
    assert_same(before, snapshot(model))
    assert all(p.grad is None for p in model.distributions.parameters())
    if params["loc"].requires_grad:  # a learned update keeps a graph to its own parameters only
        params["loc"].sum().backward()
    assert all(p.grad is None for p in model.p_x.parameters())
    assert (rule == "learned") == params["loc"].requires_grad


def test_training_the_iterative_vae_trains_the_decoder_on_the_final_step_only(digits_train):
    """Reference computation of Marino et al.'s gradients, step by step, against the loss's."""
    torch.manual_seed(0)
    model = IterativeVAE(digits_train.modalities, refine_steps=2, **TINY)
    refined, F_, post = model.refined, model.refined.loss, model.refined.posterior
    x = digits_train.first(8)["x"]
    encoder, update, decoder = (
        list(model.q.parameters()),
        list(model.rule.parameters()),
        list(model.p_x.parameters()),
    )

    model.distributions.zero_grad()
    torch.manual_seed(1)
    loss = model.loss_cls.eval({"x": x})
    loss.backward()
    got = [p.grad.clone() for p in encoder + update + decoder]

    def reference(backpropagate_trajectory: bool) -> list[torch.Tensor]:
        torch.manual_seed(1)
        loc, scale = refined.initial_parameters({"x": x})
        grads = [torch.zeros_like(p) for p in encoder + update + decoder]
        values = []
        for t in range(3):
            value = F_.eval({"x": x, **post.feed(loc, scale)})
            values.append(value.mean())
            wrt = encoder + update + (decoder if t == 2 else [])
            for i, g in enumerate(
                torch.autograd.grad(value.mean() / 3, wrt, retain_graph=True, allow_unused=True)
            ):
                if g is not None:
                    grads[i] += g
            if t == 2:
                for i, g in enumerate(torch.autograd.grad(value.mean() * 2 / 3, decoder, retain_graph=True)):
                    grads[len(encoder) + len(update) + i] += g
                break
            g_loc, g_scale = torch.autograd.grad(value.sum(), [loc, scale], retain_graph=True)
            if backpropagate_trajectory:
                new = model.rule(loc, scale.log(), g_loc, g_scale * scale, {})
            else:
                new = model.rule(loc.detach(), scale.detach().log(), g_loc, g_scale * scale.detach(), {})
            loc, scale = new[0], new[1].exp()
        assert torch.allclose(loss, sum(values) / 3)
        return grads

    for g, r in zip(got, reference(backpropagate_trajectory=False), strict=True):
        assert torch.allclose(g, r, atol=1e-6, rtol=1e-4)
    # the test can tell: backpropagating through the trajectory gives the encoder other gradients
    through = reference(backpropagate_trajectory=True)
    assert not all(torch.allclose(g, r, atol=1e-6, rtol=1e-4) for g, r in zip(got, through, strict=True))


def test_the_encoder_of_the_iterative_vae_learns_only_from_the_first_step(digits_train):
    torch.manual_seed(0)
    model = IterativeVAE(digits_train.modalities, refine_steps=3, **TINY)
    x = digits_train.first(8)["x"]
    model.distributions.zero_grad()
    torch.manual_seed(5)
    model.loss_cls.eval({"x": x}).backward()
    got = [p.grad.clone() for p in model.q.parameters()]
    torch.manual_seed(5)
    loc, scale = model.refined.initial_parameters({"x": x})
    first = model.refined.loss.eval({"x": x, **model.refined.posterior.feed(loc, scale)}).mean() / 4
    for g, r in zip(got, torch.autograd.grad(first, list(model.q.parameters())), strict=True):
        assert torch.allclose(g, r, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------- T = 0 is the VAE
@pytest.mark.parametrize("name, options", [("iterative-vae", {}), ("refined-vae", {"refine_train": True})])
def test_zero_steps_is_the_plain_vae_exactly(digits_train, name, options):
    x = digits_train.first(16)["x"]
    torch.manual_seed(0)
    vae = VAE(digits_train.modalities, **TINY)
    torch.manual_seed(0)
    other = build_model(name, digits_train.modalities, refine_steps=0, **TINY, **options)
    for part in ("q", "p_x"):
        assert_same(getattr(vae, part).state_dict(), getattr(other, part).state_dict())
    grads = []
    for model in (vae, other):
        model.distributions.zero_grad()
        torch.manual_seed(3)
        with shared_parameters():  # as in a training step: each network runs once
            loss = model.loss_cls.eval(model.feed({"x": x}))
        loss.backward()
        grads.append(
            (float(loss.detach()), [p.grad.clone() for p in [*model.q.parameters(), *model.p_x.parameters()]])
        )
    assert grads[0][0] == grads[1][0]
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        assert torch.equal(a, b)
    for model in (vae, other):
        torch.manual_seed(4)
        model.train_step({"x": x})
    for part in ("q", "p_x"):
        assert_same(getattr(vae, part).state_dict(), getattr(other, part).state_dict())
    torch.manual_seed(6)
    a = vae.test_step({"x": x})
    torch.manual_seed(6)
    assert a == other.test_step({"x": x})


# ---------------------------------------------------------------------- evaluation contexts, memory
def test_sample_and_log_prob_see_the_same_refined_posterior_in_evaluation(digits_train):
    torch.manual_seed(0)
    model = RefinedVAE(digits_train.modalities, refine_steps=3, refine_lr=0.3, **TINY)
    x = digits_train.first(8)["x"]
    q = model.inference
    with torch.no_grad():
        z = q.sample({"x": x}, return_all=False)
        log_q = q.get_log_prob({"x": x, **z})
        params = q.get_params({"x": x})
        fresh = q.run({"x": x})
    expected = torch.distributions.Normal(params["loc"], params["scale"]).log_prob(z["z"]).sum(1)
    assert torch.allclose(log_q, expected)
    assert not torch.allclose(fresh.loc, params["loc"])  # the refinement is stochastic: the cache matters


def test_refinement_runs_under_no_grad_and_in_eval_mode(digits_train):
    torch.manual_seed(0)
    model = IterativeVAE(digits_train.modalities, refine_steps=2, **TINY)
    batch = digits_train.first(8)
    with torch.no_grad():
        out = model.encode(batch)
        rec = model.reconstruct(batch)
        loss = model.test_step(batch)
    assert out["z"].shape == (8, 4) and not out["z"].requires_grad
    assert rec["x"].shape == (8, 1, 8, 8) and loss > 0


class SavedTensors:
    """Bytes of tensors the autograd graph holds for backward (live ones and the peak)."""

    def __init__(self) -> None:
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    class Box:
        def __init__(self, tensor: torch.Tensor) -> None:
            self.tensor = tensor

    def pack(self, tensor: torch.Tensor):
        box = self.Box(tensor)
        key, size = id(box), tensor.untyped_storage().nbytes()
        self.live[key] = size
        self.now += size
        self.peak = max(self.peak, self.now)
        weakref.finalize(box, self._free, key)
        return box

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key)

    @staticmethod
    def unpack(box):
        return box.tensor


@pytest.mark.parametrize("rule", ["learned", "adam"])
def test_memory_of_a_training_step_does_not_grow_with_the_steps(digits_train, rule):
    x = digits_train.first(32)["x"]
    peaks = {}
    for steps in (1, 4, 16):
        torch.manual_seed(0)
        options = {"refine_train": True} if rule == "adam" else {}
        model = build_model(
            "iterative-vae" if rule == "learned" else "refined-vae",
            digits_train.modalities,
            refine_steps=steps,
            **TINY,
            **options,
        )
        saved = SavedTensors()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
            model.train_step({"x": x})
        peaks[steps] = saved.peak
        assert saved.now == 0  # nothing kept after the step
    assert peaks[16] <= 1.05 * peaks[1], peaks


# ---------------------------------------------------------------------- printing
def test_print_shows_the_initial_distribution_the_driving_loss_and_t(digits_train):
    model = IterativeVAE(digits_train.modalities, refine_steps=3, **TINY)
    text = str(model)
    assert "Refinement:" in text and "T = 3" in text and "q(z|x)" in text
    assert "lambda_0" in text and r"\nabla_\lambda F" in text
    assert loss_text(model.refined.loss) in text  # F, as evaluated
    assert r"\frac{1}{4}\sum_{t=0}^{3}" in model.loss_latex
    assert "q_{T}(z|x)" in text
    text = str(RefinedVAE(digits_train.modalities, refine_steps=7, **TINY))
    assert "T = 7" in text and "ADAM" in text and "Refinement:" in text


# ---------------------------------------------------------------------- bad input
def test_negative_steps_are_a_clear_error(digits_train):
    model = VAE(digits_train.modalities, **TINY)
    for make in (
        lambda: refined_inference(model, steps=-1),
        lambda: refined_inference(model, steps=2).run({"x": digits_train.first(2)["x"]}, steps=-1),
    ):
        with pytest.raises(ValueError, match="T must be an integer >= 0.*use T = 0"):
            make()
    # a model's options are checked as build_model checks them, whether it is built by name or by class
    for name, make in (
        ("iterative-vae", lambda: IterativeVAE(digits_train.modalities, refine_steps=-1, **TINY)),
        ("refined-vae", lambda: RefinedVAE(digits_train.modalities, refine_steps=-2, **TINY)),
        ("iterative-vae", lambda: build_model("iterative-vae", digits_train.modalities, refine_steps=-1)),
    ):
        with pytest.raises(ValueError, match=rf"model '{name}': .*refine_steps=-\d .expected an int >= 0"):
            make()


def test_a_model_without_a_gaussian_posterior_is_a_clear_error():
    from pixyz_zoo.datasets import load_dataset

    data = load_dataset("trimodal-digits", "test")
    model = build_model("mmvae", data.modalities, z_dim=4, hidden=[8])
    with pytest.raises(TypeError, match="not a Gaussian.*Refine a model whose inference is Gaussian"):
        refined_inference(model, steps=2)
    with pytest.raises(TypeError, match="not a Gaussian"):
        refinement_curve(model, data, steps=1)


def test_a_loss_that_does_not_depend_on_the_posterior_is_a_clear_error(digits_train):
    model = VAE(digits_train.modalities, **TINY)
    wrong = E(model.q, -LogProb(model.p_x)) + KullbackLeibler(model.q, model.prior)
    with pytest.raises(ValueError, match="does not depend on the posterior's parameters.*mu_z.*E.posterior"):
        RefinedGaussian(model.q, wrong, 3, GradientStep())

    # reads the names but does not depend on them: caught at the first step
    class Ignores(Loss):
        _symbol = sympy.Symbol("ignores")

        def forward(self, x_dict, **kwargs):
            return x_dict["x"].flatten(1).sum(1), {}

    post = GaussianFromParameters("z")
    refined = RefinedGaussian(model.q, Ignores(["x", "mu_z", "sigma_z"]), 2, GradientStep(), posterior=post)
    with pytest.raises(ValueError, match="no gradient with respect to mu_z"):
        refined.run({"x": digits_train.first(2)["x"]})
    mean_loss, post = elbo_refinement_loss(model)
    with pytest.raises(ValueError, match="one value per example.*drop its .mean"):
        RefinedGaussian(model.q, mean_loss.mean(), 1, GradientStep(), posterior=post).run(
            {"x": digits_train.first(2)["x"]}
        )
    with pytest.raises(ValueError, match="unknown refinement rule 'newton'"):
        refined_inference(model, rule="newton")


# ---------------------------------------------------------------------- the other loss and models
def test_iterative_inference_loss_value_is_the_mean_over_steps(digits_train):
    torch.manual_seed(0)
    model = RefinedVAE(digits_train.modalities, refine_steps=2, refine_train=True, **TINY)
    assert isinstance(model.loss_cls, IterativeInferenceLoss)
    x = digits_train.first(8)["x"]
    torch.manual_seed(2)
    with torch.no_grad():
        value = model.loss_cls.eval({"x": x})
    torch.manual_seed(2)
    result = model.refined.run({"x": x})
    final = model.refined.loss.eval({"x": x, **model.refined.posterior.feed(result.loc, result.scale)})
    expected = (sum(v.mean() for v in result.losses) + final.mean()) / 3
    assert torch.allclose(value, expected)


def test_prior_initialised_iterative_vae_trains(digits_train):
    torch.manual_seed(0)
    model = IterativeVAE(digits_train.modalities, refine_steps=2, init="prior", **TINY)
    assert model.refined.initial is model.prior and "p(z)" in str(model)
    losses = [model.train_step({"x": b["x"]}) for b in digits_train.batches(128)]
    assert losses[-1] < losses[0]


def test_refinement_of_a_multimodal_models_unimodal_posterior():
    from pixyz_zoo.datasets import load_dataset

    data = load_dataset("trimodal-digits", "test")
    torch.manual_seed(0)
    model = build_model("mvae", data.modalities, z_dim=4, hidden=[8])
    curve = refinement_curve(model, data.subset(slice(0, 20)), steps=2, given=["m"], k=2)
    assert len(curve["elbo"]) == 3 and all(v < 0 for v in curve["elbo"])


@pytest.mark.parametrize("name", ["iterative-vae", "refined-vae"])
def test_refined_models_rebuild_from_their_checkpoint(digits_train, name):
    from pixyz_zoo.training import Trainer, model_from_checkpoint

    torch.manual_seed(0)
    model = build_model(name, digits_train.modalities, refine_steps=2, samples=2, **TINY)
    payload = Trainer(model, digits_train, epochs=0, progress=False).checkpoint_payload()
    again = model_from_checkpoint(payload)
    assert type(again) is type(model) and again.config == model.config
    assert again.refined.steps == 2 and again.inference is again.refined
    assert_same(snapshot(model), snapshot(again))


def count_calls(monkeypatch, module, name: str) -> list[int]:
    """Count the calls of ``module.name`` (one item appended per call)."""
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_cli_evaluate_reports_the_bound_after_each_refinement_step(tmp_path, capsys, monkeypatch):
    from pixyz_zoo import runs
    from pixyz_zoo.cli import main

    run = tmp_path / "run"
    args = ["train", "iterative-vae", "--epochs", "1", "--out", str(run), "--no-progress", "--no-eval"]
    assert (
        main([*args, "-o", "z_dim=3", "-o", "hidden=[8]", "-o", "refine_steps=2", "-o", "update_hidden=[8]"])
        == 0
    )
    builds, loads = (
        count_calls(monkeypatch, runs, "model_from_checkpoint"),
        count_calls(monkeypatch, runs, "load_data"),
    )
    assert main(["evaluate", str(run), "--iw-samples", "2", "--refine-steps", "3", "--no-progress"]) == 0
    assert (len(builds), len(loads)) == (1, 1)  # the evaluation and the refinement share one loaded run
    out = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert [f"refined_elbo_step_{t}" in metrics for t in range(5)] == [True] * 4 + [False]
    # its own learned update, trained with T = 2, continued to the T = 3 asked for
    assert [f"model_refined_elbo_step_{t}" in metrics for t in range(5)] == [True] * 4 + [False]
    assert metrics["model_refine_rule"] == "learned update" and metrics["model_refine_steps"] == 2
    assert metrics["refine_rule"] == "adam" and metrics["refine_lr"] == 0.01 and "test_elbo" in metrics
    assert "Test ELBO after t refinement steps:" in out and "\n     3  " in out  # steps 0..3 in a table
    report = (run / "report.md").read_text()
    assert "## Refinement" in report and "learned update (its T = 2)" in report
    assert "![refinement](figures/refinement.png)" in report and (run / "figures/refinement.png").is_file()
    # evaluated again without refinement: no refinement metric, section or figure is left over
    assert main(["evaluate", str(run), "--iw-samples", "2", "--no-progress"]) == 0
    assert not [key for key in json.loads((run / "metrics.json").read_text()) if "refine" in key]
    assert "## Refinement" not in (run / "report.md").read_text()
    assert not (run / "figures/refinement.png").exists()
    assert main(["evaluate", str(run), "--refine-steps", "-1", "--no-progress"]) == 1
    assert "--refine-steps takes the number of refinement steps T, an integer >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--refine-lr", "0.1"], "--refine-lr sets how the posterior is refined: give --refine-steps T"),
        (["--refine-rule", "sgd", "--refine-lr", "0.1"], "--refine-rule and --refine-lr set how"),
        (["--refine-steps", "2", "--refine-rule", "newton"], "--refine-rule takes one of adam, sgd, got"),
        (["--refine-steps", "2", "--refine-lr", "0"], "--refine-lr takes the refinement's step size, a"),
        (["--refine-steps", "2", "--refine-lr", "inf"], "a number > 0, got inf"),
    ],
)
def test_cli_refinement_flags_are_checked_before_any_evaluation(tmp_path, capsys, flags, message):
    from pixyz_zoo.cli import main

    assert main(["evaluate", str(tmp_path / "no-run"), *flags, "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "no-run").exists()


def test_cli_refuses_to_refine_a_mixture_posterior_before_evaluating_the_run(tmp_path, capsys, monkeypatch):
    from pixyz_zoo import runs
    from pixyz_zoo.cli import main

    run = tmp_path / "run"
    train = ["train", "mopoe", "--dataset", "trimodal-digits", "--epochs", "1", "--out", str(run)]
    tiny = ["-o", "z_dim=2", "-o", "hidden=[8]", "--train-examples", "32", "--test-examples", "10"]
    assert main([*train, *tiny, "--no-progress", "--no-eval"]) == 0
    loads = count_calls(monkeypatch, runs, "load_data")
    assert main(["evaluate", str(run), "--iw-samples", "2", "--refine-steps", "2", "--no-progress"]) == 1
    message = "the inference of mopoe, q(z|m,s,t) is a MixtureOfExperts over ['z'], not a Gaussian"
    err = capsys.readouterr().err
    assert message in err and "Refine a model whose inference is Gaussian (vae," in err
    assert "pass a Gaussian initial distribution" not in err  # no distribution is passed on a command line
    assert not (run / "metrics.json").exists() and not loads  # refused before any evaluation or data


def steps(run) -> list[list[float]]:
    """Per step t, the refined bounds of ``metrics.json``: gradient steps, then each teacher."""
    metrics = json.loads((run / "metrics.json").read_text())
    labels = ["", "teacher_m_", "teacher_s_", "teacher_t_"]
    return [[metrics[f"{label}refined_elbo_step_{t}"] for label in labels] for t in range(3)]


def test_cli_evaluate_refines_the_teachers_of_a_distilled_model(tmp_path, capsys):
    from pixyz_zoo.cli import main

    run = tmp_path / "run"
    train = ["train", "iterative-multimodal", "--dataset", "trimodal-digits", "--epochs", "1"]
    train += ["--out", str(run)]
    tiny = ["-o", "z_dim=2", "-o", "hidden=[8]", "-o", "refine_steps=1", "--train-examples", "64"]
    assert main([*train, *tiny, "--test-examples", "20", "--no-progress", "--no-eval"]) == 0
    flags = ["--refine-steps", "2", "--refine-rule", "sgd", "--refine-lr", "0.05"]
    assert main(["evaluate", str(run), "--iw-samples", "2", *flags, "--no-progress"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("Test ELBO after t refinement steps:") :].splitlines()
    assert table[1].split() == ["t", "gradient", "steps", "teacher_m", "teacher_s", "teacher_t"]
    # steps 0..2 (the T asked for; the teachers' own T is 1) of every column, then the table ends
    assert [row.split() for row in table[2:6]][:3] == [
        [str(t), *(f"{metrics_value:.4f}" for metrics_value in row)] for t, row in enumerate(steps(run))
    ]
    assert table[5] == ""
    assert "refined_elbo_step" not in out  # the steps are in the table, not one line each
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["refine_rule"] == "sgd" and metrics["refine_lr"] == 0.05
    assert "model_refined_elbo_step_0" not in metrics  # its inference at test time is not refined
    for m in ("m", "s", "t"):
        assert metrics[f"teacher_{m}_refine_rule"] == "adam steps of 0.1"
        assert metrics[f"teacher_{m}_refine_steps"] == 1
        assert [f"teacher_{m}_refined_elbo_step_{t}" in metrics for t in range(4)] == [True] * 3 + [False]
    header = next(line for line in (run / "report.md").read_text().splitlines() if line.startswith("| t |"))
    assert header.count(" | ") == 4  # t, the gradient steps and one column per teacher
    assert r"teacher_m: q_{T}(z\|" in header  # a formula's bar is escaped in the table
    assert (run / "figures/refinement.png").is_file()


# ---------------------------------------------------------------------- CUDA
@requires_cuda
@pytest.mark.cuda
def test_iterative_vae_on_cuda(digits_train):
    torch.manual_seed(0)
    model = IterativeVAE(digits_train.modalities, refine_steps=3, **TINY).to("cuda")
    batch = digits_train.first(16)
    assert model.train_step(batch) > 0
    assert model.encode(batch)["z"].device.type == "cuda"
    refined = refined_inference(model, steps=3)
    with torch.no_grad():
        assert refined.run({"x": batch["x"].cuda()}).loc.device.type == "cuda"


@requires_cuda
@pytest.mark.cuda
def test_cuda_memory_of_a_training_step_does_not_grow_with_the_steps(digits_train):
    x = digits_train.first(64)["x"].cuda()
    peaks = {}
    for steps in (1, 16):
        torch.manual_seed(0)
        model = IterativeVAE(digits_train.modalities, refine_steps=steps, z_dim=16, hidden=[256]).to("cuda")
        model.train_step({"x": x})  # optimiser state allocated
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        model.train_step({"x": x})
        torch.cuda.synchronize()
        peaks[steps] = torch.cuda.max_memory_allocated() - base
    assert peaks[16] <= 1.1 * peaks[1] + 2**20, peaks


def test_own_refinements_name_the_rule_each_model_refines_with(digits_train):
    assert VAE(digits_train.modalities, **TINY).own_refinements() == {}
    for model, name in [
        (
            RefinedVAE(digits_train.modalities, refine_steps=3, refine_rule="sgd", refine_lr=0.2, **TINY),
            "sgd steps of 0.2",
        ),
        (IterativeVAE(digits_train.modalities, refine_steps=2, update_hidden=[8], **TINY), "learned update"),
    ]:
        own = model.own_refinements()
        assert list(own) == ["model"] and own["model"] is model.inference
        assert own["model"].rule.description == name


def test_conditioning_variables_have_a_fixed_order_whatever_the_loss_lists():
    """Pixyz's expectations list their inputs in set order, which changes with the process's string
    hashing: the refined posterior's conditioning variables (and so its printed formula) are its
    initial distribution's, then the loss's others sorted."""

    class Listed(Loss):
        def __init__(self, names: list[str]) -> None:
            super().__init__(input_var=names)

        @property
        def _symbol(self):
            return sympy.Symbol("F")

        def forward(self, x_dict, **kwargs):
            return x_dict["mu_z"].sum(-1), {}

    initial = VAE({"x": Modality("x", (3,), "gaussian")}, z_dim=2, hidden=[4]).q
    orders = [["t", "mu_z", "b", "sigma_z", "x"], ["b", "x", "sigma_z", "t", "mu_z"]]
    refined = [RefinedGaussian(initial, Listed(names), 1, GradientStep(0.1)) for names in orders]
    assert [q.cond_var for q in refined] == [["x", "b", "t"]] * 2
    assert refined[0].prob_text == refined[1].prob_text == "q_{T}(z|x,b,t)"


def test_a_mixture_of_one_expert_is_refined_as_its_gaussian_expert():
    """MoPoE's ``q(z|m)`` is a mixture of one expert: it was refused as "a Mixture ... not a
    Gaussian"; it refines as that expert, while the mixture over every subset stays refused."""
    from pixyz_zoo.datasets import load_dataset
    from pixyz_zoo.models import build_model
    from pixyz_zoo.models.refinement import amortized_posterior

    data = load_dataset("trimodal-digits", "test", binarize="fixed").subset(slice(0, 8))
    model = build_model("mopoe", data.modalities, z_dim=2, hidden=[8])
    assert amortized_posterior(model, ["m"]) is model.experts["m"]
    curve = refinement_curve(model, data, steps=2, given=["m"], k=2)
    assert len(curve["elbo"]) == 3 and torch.isfinite(torch.tensor(curve["elbo"])).all()
    with pytest.raises(TypeError, match="not a Gaussian over one latent"):
        amortized_posterior(model)
    with pytest.raises(TypeError, match="not a Gaussian over one latent"):
        amortized_posterior(model, ["m", "s"])
