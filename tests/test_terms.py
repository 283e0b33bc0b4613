"""A loss expression split into its terms (``losses.terms``), and the test objective term by term."""

from __future__ import annotations

import math

import pytest
import torch
from pixyz.distributions import Normal
from pixyz.losses import Expectation as E
from pixyz.losses import LogProb, Parameter
from pixyz.losses.losses import MinLoss

from pixyz_zoo.distributions.shared_parameters import shared_parameters
from pixyz_zoo.evaluation.objective import objective_term_means
from pixyz_zoo.losses.terms import additive_terms, term_evaluator
from pixyz_zoo.models import MODELS
from tests.registered_models import built

EPS = torch.finfo(torch.float64).eps


def densities():
    """Two one-dimensional Gaussians over ``x``: log-densities that are not scalars of the batch."""
    p = Normal(loc=torch.tensor(0.0), scale=torch.tensor(1.0), var=["x"], features_shape=[1], name="p")
    q = Normal(loc=torch.tensor(1.0), scale=torch.tensor(2.0), var=["x"], features_shape=[1], name="q")
    return LogProb(p), LogProb(q)


def test_sums_differences_negations_and_scalar_factors_are_split_in_order():
    log_p, log_q = densities()
    beta = Parameter("beta")
    loss = (-(log_p - 2 * log_q) + beta * (log_p + log_q) / 2).mean()
    terms = additive_terms(loss)
    x = {"x": torch.tensor([[0.5], [-1.0], [2.0]]), "beta": 3.0}
    lp, lq = (float(term.eval(x).mean()) for term in (log_p, log_q))
    values = [float(t.loss.eval(x)) for t in terms]
    assert values == pytest.approx([-lp, 2 * lq, 1.5 * lp, 1.5 * lq], rel=1e-6)
    assert sum(values) == pytest.approx(float(loss.eval(x)), rel=1e-6)
    # each formula as Pixyz prints it, without the batch mean the term is evaluated with (sympy may
    # order a product's factors either way: the pieces are checked, not their order)
    pieces = [
        [r"- \log p(x)"],
        [r"2 \log q(x)"],
        [r"\log p(x)", r"\beta", "2"],
        [r"\log q(x)", r"\beta", "2"],
    ]
    for term, wanted in zip(terms, pieces, strict=True):
        assert all(piece in term.text for piece in wanted) and "mean" not in term.text, term.text
    assert all(type(t.loss).__name__ == "BatchMean" for t in terms)


def test_an_expectation_is_split_at_the_sums_of_its_integrand_with_its_draws_shared():
    log_p, log_q = densities()
    q = Normal(loc="m", scale=torch.tensor(1.0), cond_var=["m"], var=["x"], features_shape=[1], name="r")
    alpha = Parameter("alpha")
    whole = (E(q, -log_p - alpha * (log_q + log_p)) * 3).mean()  # a scalar inside: not distributed
    terms, evaluate = additive_terms(whole), term_evaluator(whole)
    assert len(terms) == 2 and all(type(t.loss.loss1.loss1) is E for t in terms)
    assert r"\mathbb{E}_{r(x|m)} \left[- \log p(x) \right]" in terms[0].text and r"\alpha" in terms[1].text
    x = {"m": torch.randn(5, 1), "alpha": 0.5}
    torch.manual_seed(0)
    value = float(whole.eval(x))
    torch.manual_seed(0)
    values = [float(v) for v in evaluate(x)]
    assert sum(values) == pytest.approx(value, rel=1e-6)
    torch.manual_seed(0)
    alone = [float(t.loss.eval(x)) for t in terms]  # each term alone draws its own sample
    assert alone[0] == pytest.approx(values[0], rel=1e-6) and alone[1] != pytest.approx(values[1], rel=1e-3)


def test_the_zero_that_python_sum_starts_with_is_no_term():
    """``sum(losses)`` is ``0 + l1 + l2``: Pixyz's printed formula leaves the 0 out, and so do the terms
    (inside an expectation too, and as either operand of a difference)."""
    log_p, log_q = densities()
    q = Normal(loc="m", scale=torch.tensor(1.0), cond_var=["m"], var=["x"], features_shape=[1], name="r")
    loss = (E(q, -sum([log_p, log_q])) + (0 - log_q) + (log_p - 0)).mean()
    terms, evaluate = additive_terms(loss), term_evaluator(loss)
    assert [t.text for t in terms] == [
        r"\mathbb{E}_{r(x|m)} \left[- \log p(x) \right]",
        r"\mathbb{E}_{r(x|m)} \left[- \log q(x) \right]",
        r"- \log q(x)",
        r"\log p(x)",
    ]
    x = {"m": torch.randn(4, 1), "x": torch.randn(4, 1)}
    torch.manual_seed(0)
    value = float(loss.eval(x))
    torch.manual_seed(0)
    assert sum(float(v) for v in evaluate(x)) == pytest.approx(value, rel=1e-6)
    assert additive_terms((0 + log_p).mean())[0].text == r"\log p(x)"  # a lone term stays one
    assert len(additive_terms((1 + log_p).mean())) == 2  # any other constant is a term


def test_what_is_not_a_sum_is_one_term():
    log_p, log_q = densities()
    for loss in (log_p * log_q, MinLoss(log_p, log_q), log_p):  # a product of two densities, a min
        assert [t.loss for t in additive_terms(loss)] == [loss]


#: the number of terms of each registered model's test objective (tiny networks on digits or
#: trimodal-digits): one reconstruction per modality (the integrand of the expectation split), one
#: reconstruction and one KL per subset for MVAE and TELBO, beta-TCVAE's four terms inside its
#: expectation; MMVAE's stratified bound is one loss of the zoo's own.
TERM_COUNTS = {
    "annealed-vae": 2,
    "beta-tcvae": 4,
    "beta-vae": 2,
    "cmma": 2,
    "cvae": 2,
    "factor-vae": 3,
    "hierarchical-jmvae": 4,
    "iterative-multimodal": 4,
    "iterative-vae": 2,
    "jmvae": 3,
    "jmvae-gan": 6,
    "jmvae-kl": 5,
    "mfm": 4,
    "mmvae": 1,
    "mopoe": 5,
    "mvae": 7,
    "mvtcae": 5,
    "refined-vae": 2,
    "telbo": 7,
    "translation": 1,
    "vae": 2,
}


def test_every_registered_model_has_its_term_count():
    assert set(TERM_COUNTS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_terms_add_up_to_the_test_loss_in_the_same_draws(name):
    torch.manual_seed(0)
    model, data = built(name)
    model.prepare(data)
    batch = {n: t.double() for n, t in next(iter(data.batches(8))).items() if n in model.modalities}
    model.test_step(batch)  # fills the caches a test evaluation keeps (a refinement's result)
    with torch.no_grad(), shared_parameters(), model.testing():
        torch.manual_seed(1)
        total = float(model.test(model.feed(batch)))  # Pixyz's evaluation of the whole expression
    torch.manual_seed(1)
    values = model.test_term_values(batch)
    assert len(values) == TERM_COUNTS[name] == len(model.test_terms)
    assert all(math.isfinite(v) for v in values)
    assert abs(sum(values) - total) <= 64 * EPS * sum(map(abs, values)), (values, total)


def test_the_objective_terms_over_a_test_set_are_batch_size_weighted_means():
    torch.manual_seed(0)
    model, data = built("vae")
    model.distributions.float()  # the dataset's dtype
    data = data.subset(torch.arange(30))
    terms = objective_term_means(model, data, batch_size=20)  # batches of 20 and 10
    assert [t["term"] for t in terms] == [t.text for t in model.test_terms]
    kl = model.test_terms[1].loss  # the analytic KL: no draw
    with torch.no_grad():
        means = [float(kl.eval(model.feed({"x": b["x"]}))) for b in data.batches(20)]
    assert terms[1]["value"] == pytest.approx((20 * means[0] + 10 * means[1]) / 30, rel=1e-6)
    assert terms[1]["value"] != pytest.approx(sum(means) / 2, rel=1e-4)  # not a mean of batch means


def test_a_gan_model_evaluates_its_terms_with_the_discriminator_in_evaluation_mode():
    model, data = built("jmvae-gan")
    batch = {n: t.double() for n, t in next(iter(data.batches(8))).items() if n in model.modalities}
    model.discriminator.train()
    seen = []
    hook = model.discriminator.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    try:
        model.test_term_values(batch)
        model.test_step(batch)
    finally:
        hook.remove()
    assert seen and not any(seen)
    assert model.discriminator.training  # restored


def test_the_trainer_records_each_epochs_terms_and_their_sum_is_the_test_loss(digits_train, digits_test):
    from pixyz_zoo.models import build_model
    from pixyz_zoo.training import Trainer

    torch.manual_seed(0)
    model = build_model("mvae", digits_test.with_labels().modalities, hidden=[16], z_dim=2)
    train, test = digits_train.with_labels().subset(torch.arange(64)), digits_test.with_labels()
    trainer = Trainer(model, train, test, epochs=1, batch_size=32, progress=False)
    (record,) = trainer.fit()
    assert len(record["test_terms"]) == 7 and record["test_loss"] == sum(record["test_terms"])
    # the same test loss as Pixyz's evaluation of the whole objective on each batch (float32 rounding;
    # that the terms draw the same samples is checked in float64 above)
    torch.manual_seed(5)
    terms = trainer.test_terms()
    torch.manual_seed(5)
    whole = 0.0
    for batch in test.batches(32, generator=torch.Generator().manual_seed(trainer.seed + 1)):
        with torch.no_grad(), shared_parameters():
            whole += float(model.test(model.feed({n: batch[n] for n in model.modalities}))) * len(batch["y"])
    assert sum(terms) == pytest.approx(whole / len(test), rel=1e-5)
    assert trainer.test_loss() == pytest.approx(sum(terms), rel=1e-3)  # other draws


def test_the_training_curve_draws_each_term_beside_the_losses():
    from pixyz_zoo.plots import training_curve

    history = [
        {"epoch": e, "train_loss": 10.0 / e, "test_loss": 9.0 / e + 0.5, "test_terms": [9.0 / e, 0.5]}
        for e in (1, 2, 3)
    ]
    figure = training_curve(history)
    losses, terms = figure.axes
    assert [line.get_label() for line in terms.get_lines()] == ["T1", "T2"]
    assert list(terms.get_lines()[1].get_ydata()) == [0.5, 0.5, 0.5]
    assert terms.get_yscale() == "symlog"
    assert len(training_curve([{k: v for k, v in r.items() if k != "test_terms"} for r in history]).axes) == 1
    one_term = [{**r, "test_terms": [r["test_loss"]]} for r in history]  # a single term: the test loss
    assert len(training_curve(one_term).axes) == 1
    assert len(training_curve([]).axes) == 1  # no epoch yet: the losses' axes alone


def test_a_run_whose_history_predates_the_terms_resumes_and_reports(tmp_path, capsys):
    """A checkpoint written before the history held the terms: the resumed epochs add them, the
    report's per-epoch table and the figure's panel show what there is."""
    from pixyz_zoo.cli import main
    from pixyz_zoo.training import CHECKPOINT, load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    tiny = [
        "-o",
        "hidden=[8]",
        "--z-dim",
        "2",
        "--train-examples",
        "64",
        "--test-examples",
        "32",
        "--no-progress",
    ]
    assert main(["train", "vae", "--epochs", "1", "--out", str(run), "--no-eval", *tiny]) == 0
    payload = load_checkpoint(run)
    for record in payload["history"]:
        del record["test_terms"]
    save_checkpoint(run / CHECKPOINT, payload)
    assert (
        main(["train", "vae", "--resume", str(run), "--epochs", "2", "--iw-samples", "2", "--no-progress"])
        == 0
    )
    history = load_checkpoint(run)["history"]
    assert "test_terms" not in history[0] and len(history[1]["test_terms"]) == 2
    report = (run / "report.md").read_text()
    per_epoch = report.split("Per epoch")[1].split("## Training history")[0]
    assert "\n| 2 | " in per_epoch and "\n| 1 | " not in per_epoch
    assert (run / "figures" / "training_curve.png").exists()
