"""Which losses are means over examples, and which estimate a term from the batch as a whole.

Data-parallel training splits each global batch between the processes and averages their
gradients: that is the one-process step on the global batch exactly when every loss a step
differentiates is a mean of per-example terms. A model whose training step couples the
examples (a term estimated from the batch as a whole: an MMD, a minibatch-weighted density, a
permutation across the batch; or batch normalisation) names it in ``ZooModel.batch_couplings()``,
and the data-parallel trainer warns (``distributed.batch_estimate_note``).

The declaration is checked against each registered model's losses: with the random draws fixed (the
same seed and batch shape), a mean of per-example terms changes by the sum of the changes of two
examples when both are replaced, so the mixed difference ``L(a', b') - L(a', b) - L(a, b') + L(a, b)``
is zero up to float rounding; a term that couples the examples makes it non-zero.
"""

from __future__ import annotations

import pytest
import torch

from pixyz_zoo import distributed
from pixyz_zoo.distributions.shared_parameters import shared_parameters
from pixyz_zoo.models import MODELS
from tests.registered_models import built

EPS = torch.finfo(torch.float64).eps


def losses(model, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Every loss a training step differentiates, evaluated on ``batch`` with the draws of seed 0."""
    values = {}
    for name in model.parallel_losses():
        torch.manual_seed(0)
        with shared_parameters():
            out = model.evaluate_loss(name, model.feed(batch))
        values[name] = float((out[0] if isinstance(out, tuple) else out).detach().double())
    return values


def mixed_differences(model, data) -> dict[str, tuple[float, float]]:
    """Per loss: the mixed difference over the two halves A and B of a batch of 8 (each half replaced
    by 4 other examples), and the loss's size."""
    model.prepare(data)  # data statistics the loss reads (beta-TCVAE's dataset size)
    model.distributions.train()
    rows = {n: t.double() for n, t in next(iter(data.batches(16))).items() if n in model.modalities}

    def rows_of(start: int) -> dict[str, torch.Tensor]:
        return {n: t[start : start + 4] for n, t in rows.items()}

    def batch(a: bool, b: bool) -> dict[str, torch.Tensor]:
        halves = [rows_of(8 if a else 0), rows_of(12 if b else 4)]
        return {n: torch.cat([h[n] for h in halves]) for n in rows}

    l00, l10, l01, l11 = (losses(model, batch(a, b)) for a, b in ((0, 0), (1, 0), (0, 1), (1, 1)))
    return {k: (l11[k] - l10[k] - l01[k] + l00[k], max(abs(v[k]) for v in (l00, l10, l01, l11))) for k in l00}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_model_names_exactly_what_couples_the_examples_of_a_batch(name):
    torch.manual_seed(0)
    model, data = built(name)
    differences = mixed_differences(model, data)
    # float64 rounding of four losses: a few units in the last place of their size
    coupled = {k: d for k, (d, size) in differences.items() if abs(d) > 1024 * EPS * size}
    couplings = model.batch_couplings()
    if not couplings:
        assert not coupled, f"{name}'s losses couple the examples: {coupled}; declare batch_estimate"
    else:
        assert coupled, f"{name} names {couplings}, yet every loss is a mean over examples: {differences}"


def test_the_couplings_named_and_the_note_under_data_parallelism():
    assert MODELS["vae"].batch_estimate is None and built("vae")[0].batch_couplings() == []
    assert built("mfm")[0].batch_couplings() == [MODELS["mfm"].batch_estimate]
    gan = built("jmvae-gan")[0]
    assert gan.batch_couplings() == ["the batch normalisation of the discriminator (1 layer)"]
    note = distributed.batch_estimate_note("mfm", ["the MMD"], 4, 100)
    assert note == (
        "mfm: the MMD: estimated over each process's 100 examples, not over the global batch of 400; the 4 "
        "processes train like the mean of 4 one-process steps at batch 100, not like one process at batch 400"
    )
    assert distributed.batch_estimate_note("mfm", ["the MMD"], 1, 100) is None
    assert distributed.batch_estimate_note("vae", [], 4, 100) is None


def test_the_report_of_a_data_parallel_run_says_what_each_process_estimated(tmp_path):
    from pixyz_zoo.runs import data_parallel_lines, render_report

    model = built("mfm")[0]
    config = {
        "model": "mfm",
        "options": {},
        "data": {"dataset": "trimodal-digits"},
        "train": {"batch_size": 64, "world_size": 2},
    }
    note = distributed.batch_estimate_note("mfm", model.batch_couplings(), 2, 64)
    lines = ["- data parallel: 2 processes at batch 64 each (global batch 128)", f"- {note}"]
    assert data_parallel_lines(config, model) == lines
    report = render_report(config, model, {}, [], {}, tmp_path)
    assert "\n".join(lines) in report
    assert data_parallel_lines(config, built("vae")[0]) == lines[:1]
    assert data_parallel_lines({**config, "train": {"batch_size": 64, "world_size": 1}}, model) == []
