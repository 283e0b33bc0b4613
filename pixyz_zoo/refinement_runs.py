"""``pixyz-zoo evaluate RUN --refine-steps T``: the bound after 0..T refinement steps of a run's model.

For any run whose model infers a Gaussian posterior, the test ELBO after each of ``0..T``
gradient steps (Adam or SGD of a given step size on the posterior's mean and log-scale, started
from the amortised encoder; :func:`~pixyz_zoo.evaluation.amortization.refinement_curve`) is added
to the run's ``metrics.json`` as ``refined_elbo_step_t``, to ``report.md`` as a table and drawn in
``figures/refinement.png``. A model with refinements of its own
(:meth:`~pixyz_zoo.models.base.ZooModel.own_refinements`: ``iterative-vae``'s learned update,
``refined-vae``'s steps, ``iterative-multimodal``'s teachers) also gets, per refinement ``LABEL``,
``LABEL_refined_elbo_step_t``: its bound after each of its own steps, for its own ``T``
(``LABEL_refine_steps``) or the ``T`` asked for, whichever is larger.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from pixyz_zoo.distributions.refinement import METHODS, RefinedGaussian
from pixyz_zoo.evaluation.amortization import refinement_curve
from pixyz_zoo.markdown import markdown_cell, markdown_table
from pixyz_zoo.models import ZooModel
from pixyz_zoo.models.refinement import amortized_posterior
from pixyz_zoo.runs import (
    FIGURES,
    METRICS,
    REFINEMENT_FIGURE,
    REPORT,
    LoadedRun,
    attempt_figure,
    load_run,
    write_json,
)

__all__ = [
    "check_refine_steps",
    "check_refinable",
    "check_refinement_options",
    "check_rule_and_lr",
    "evaluate_refinement_run",
    "refined_bounds",
]


def check_refine_steps(steps: Any) -> int:
    """``--refine-steps`` as an int ``>= 0`` or a clear error (before anything is evaluated)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(
            f"--refine-steps takes the number of refinement steps T, an integer >= 0, got {steps!r}; "
            "use 0 (the default) for no refinement"
        )
    return steps


def check_rule_and_lr(rule: str | None, lr: float | None) -> None:
    """``--refine-rule`` and ``--refine-lr`` (``None``: the default), or a clear error."""
    if rule is not None and rule not in METHODS:
        raise ValueError(f"--refine-rule takes one of {', '.join(METHODS)}, got {rule!r}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"--refine-lr takes the refinement's step size, a number > 0, got {lr!r}")


def check_refinement_options(steps: Any, rule: str | None, lr: float | None) -> None:
    """``--refine-steps``, ``--refine-rule`` and ``--refine-lr`` together, or a clear error."""
    check_refine_steps(steps)
    check_rule_and_lr(rule, lr)
    if steps == 0 and (rule is not None or lr is not None):
        given = " and ".join(flag for flag, value in (("--refine-rule", rule), ("--refine-lr", lr)) if value)
        verb = "set" if " and " in given else "sets"
        raise ValueError(f"{given} {verb} how the posterior is refined: give --refine-steps T (T >= 1) too")


def check_refinable(model: ZooModel) -> None:
    """Refuse, before a run is evaluated at all, a model that has no Gaussian posterior to refine (a
    ``TypeError`` that names the models that have one)."""
    amortized_posterior(model)


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
    loaded: LoadedRun | None = None,
) -> dict[str, Any]:
    """Add the test ELBO after ``0..steps`` refinement steps to the run's metrics, report and figures.

    ``rule`` and ``lr``: the gradient steps (default Adam, step size 0.01). ``k`` log-weights per
    example and step estimate each bound (the test batches and their binarisation are those of
    ``evaluate_run``). ``loaded``: as in ``evaluate_run``. Returns the updated metrics.
    """
    check_refine_steps(steps)
    check_rule_and_lr(rule, lr)
    run_dir = Path(run_dir)
    _, _, model, test = loaded or load_run(run_dir, device)
    common = dict(k=k, batch_size=batch_size, progress=progress)
    curve = refinement_curve(model, test, steps=steps, rule=rule, lr=lr, samples=samples, **common)
    own: dict[str, tuple[RefinedGaussian, dict[str, Any]]] = {}
    for label, refined in model.own_refinements().items():
        longest = max(steps, refined.steps)
        own[label] = refined, refinement_curve(model, test, steps=longest, rule=refined, **common)
    path = run_dir / METRICS
    metrics: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    metrics = {key: value for key, value in metrics.items() if "refine" not in key}  # a rerun replaces
    metrics.update(refine_rule=rule, refine_lr=curve["lr"], refine_samples=samples, refine_k=k)
    metrics.update({f"refined_elbo_step_{t}": value for t, value in enumerate(curve["elbo"])})
    for label, (refined, values) in own.items():
        metrics[f"{label}_refine_rule"] = refined.rule.description
        metrics[f"{label}_refine_steps"] = refined.steps
        metrics.update({f"{label}_refined_elbo_step_{t}": value for t, value in enumerate(values["elbo"])})
    write_json(path, metrics)
    figure = draw_refinement(run_dir / FIGURES / REFINEMENT_FIGURE, curve, own)
    report = run_dir / REPORT
    if report.exists():
        text = report.read_text().split("\n## Refinement\n")[0].rstrip("\n") + "\n"
        report.write_text(text + render_refinement(curve, own, figure is not None))
    return metrics


#: ``refined_elbo_step_t`` (gradient steps) and ``LABEL_refined_elbo_step_t`` (a model's own refinement)
REFINED_STEP = re.compile(r"(?:(\w+?)_)?refined_elbo_step_(\d+)$")


def refined_bounds(metrics: dict[str, Any]) -> dict[str, dict[int, float]]:
    """The refined bounds of :func:`evaluate_refinement_run`'s metrics: ``{"gradient steps" or
    LABEL: {t: bound}}``, in the order of the metrics."""
    curves: dict[str, dict[int, float]] = {}
    for key, value in metrics.items():
        refined = REFINED_STEP.match(key)
        if refined:
            curves.setdefault(refined.group(1) or "gradient steps", {})[int(refined.group(2))] = value
    return curves


def own_heading(label: str, refined: RefinedGaussian) -> str:
    """A column heading for one of the model's own refinements."""
    name = "the model's own" if label == "model" else label
    return f"{name}: {refined.prob_text}, {refined.rule.description} (its T = {refined.steps})"


def draw_refinement(
    path: Path, curve: dict[str, Any], own: dict[str, tuple[RefinedGaussian, dict[str, Any]]]
) -> Path | None:
    """``figures/refinement.png``: every curve of the report's table; ``None`` (with a warning
    line) where it cannot be drawn (:func:`~pixyz_zoo.runs.attempt_figure`)."""
    from pixyz_zoo.plots import save_figure
    from pixyz_zoo.plots.refinement import refinement_curves_figure

    curves = {f"{curve['rule']} from the amortised posterior": curve["elbo"]}
    curves.update({own_heading(label, refined): values["elbo"] for label, (refined, values) in own.items()})
    trained = {refined.steps for refined, _ in own.values()}
    marked = trained.pop() if len(trained) == 1 else None

    def draw() -> Path:
        title = "Test ELBO along the refinement"
        figure = refinement_curves_figure(
            curves, title=title, trained_steps=marked, trained_label="the model's own T"
        )
        return save_figure(figure, path)

    return attempt_figure(path.stem, draw)


def render_refinement(
    curve: dict[str, Any], own: dict[str, tuple[RefinedGaussian, dict[str, Any]]], drawn: bool = False
) -> str:
    """The report section: the test ELBO after each refinement step, one column per refinement."""
    columns = [curve["elbo"], *(values["elbo"] for _, values in own.values())]
    headings = ["gradient steps", *(markdown_cell(own_heading(label, r)) for label, (r, _) in own.items())]
    lines = [
        "",
        "## Refinement",
        "",
        f"Test ELBO (nats per example, {curve['k']} samples per example and step) after t "
        f"{curve['rule']} on the posterior's mean and log-scale, started from "
        "the amortised encoder"
        + (", and after t steps of each of the model's own refinements" if own else "")
        + ".",
        "",
    ]
    steps = range(max(len(values) for values in columns))
    rows = [[t, *(values[t] if t < len(values) else "" for values in columns)] for t in steps]
    lines.append(markdown_table(["t", *headings], rows, digits=4))
    if drawn:
        lines += ["", f"![refinement]({FIGURES}/{REFINEMENT_FIGURE})"]
    return "\n".join(lines) + "\n"
