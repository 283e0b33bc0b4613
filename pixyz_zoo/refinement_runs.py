"""``pixyz-zoo evaluate RUN --refine-steps T``: the bound after 0..T refinement steps of a run's model.

For any run whose model infers a Gaussian posterior, the test ELBO after each of ``0..T``
gradient steps (Adam on the posterior's mean and log-scale, started from the amortised encoder;
:func:`~pixyz_zoo.evaluation.amortization.refinement_curve`) is added to the run's
``metrics.json`` as ``refined_elbo_step_t`` and to ``report.md`` as a table. A model with its own
learned refinement (``iterative-vae``) also gets ``model_refined_elbo_step_t``: its update
network's bound after each of its own steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pixyz_zoo.distributions.refinement import RefinedGaussian
from pixyz_zoo.evaluation.amortization import refinement_curve
from pixyz_zoo.runs import METRICS, REPORT, load_run, write_json

__all__ = ["check_refine_steps", "evaluate_refinement_run"]


def check_refine_steps(steps: Any) -> int:
    """``--refine-steps`` as an int ``>= 0`` or a clear error (before anything is evaluated)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(
            f"--refine-steps takes the number of refinement steps T, an integer >= 0, got {steps!r}; "
            "use 0 (the default) for no refinement"
        )
    return steps


def evaluate_refinement_run(
    run_dir: str | os.PathLike,
    steps: int,
    device: str | None = None,
    rule: str = "adam",
    lr: float | None = None,
    samples: int = 1,
    k: int = 10,
    batch_size: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Add the test ELBO after ``0..steps`` refinement steps to the run's metrics and report.

    ``k`` log-weights per example and step estimate each bound (the test batches and their
    binarisation are those of ``evaluate_run``). Returns the updated metrics.
    """
    check_refine_steps(steps)
    run_dir = Path(run_dir)
    _, _, model, test = load_run(run_dir, device)
    common = dict(k=k, batch_size=batch_size, progress=progress)
    curve = refinement_curve(model, test, steps=steps, rule=rule, lr=lr, samples=samples, **common)
    path = run_dir / METRICS
    metrics: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    metrics = {key: value for key, value in metrics.items() if "refine" not in key}  # a rerun replaces
    metrics.update(refine_rule=curve["rule"], refine_lr=curve["lr"], refine_samples=samples, refine_k=k)
    metrics.update({f"refined_elbo_step_{t}": value for t, value in enumerate(curve["elbo"])})
    own = None
    if isinstance(model.inference, RefinedGaussian):
        own = refinement_curve(model, test, rule="model", **common)
        metrics.update({f"model_refined_elbo_step_{t}": value for t, value in enumerate(own["elbo"])})
    write_json(path, metrics)
    report = run_dir / REPORT
    if report.exists():
        text = report.read_text().split("\n## Refinement\n")[0].rstrip("\n") + "\n"
        report.write_text(text + render_refinement(curve, own))
    return metrics


def render_refinement(curve: dict[str, Any], own: dict[str, Any] | None) -> str:
    """The report section: the test ELBO after each refinement step."""
    lines = [
        "",
        "## Refinement",
        "",
        f"Test ELBO (nats per example, {curve['k']} samples per example and step) after t steps of "
        f"{curve['rule']} (step size {curve['lr']}) on the posterior's mean and log-scale, started from "
        "the amortised encoder"
        + (", and after t steps of the model's own learned refinement" if own is not None else "")
        + ".",
        "",
        "| t | gradient steps |" + (" learned refinement |" if own is not None else ""),
        "|---|---|" + ("---|" if own is not None else ""),
    ]
    for t, value in enumerate(curve["elbo"]):
        learned = ""
        if own is not None:
            learned = f" {own['elbo'][t]:.4f} |" if t < len(own["elbo"]) else " |"
        lines.append(f"| {t} | {value:.4f} |{learned}")
    if own is not None:
        lines += [f"| {t} | |  {v:.4f} |" for t, v in enumerate(own["elbo"]) if t >= len(curve["elbo"])]
    return "\n".join(lines) + "\n"
