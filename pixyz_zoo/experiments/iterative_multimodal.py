"""Multimodal iterative amortized inference against MoPoE, JMVAE-kl and MVTCAE (Oshima, Suzuki & Matsuo).

``pixyz-zoo reproduce iterative-multimodal`` trains, with the multimodal benchmark's networks,
budget and likelihood weights (``experiments.multimodal_benchmark``):

- the slides' comparison (slides 34-41, 61-65, 67-68): MoPoE, JMVAE-kl (its unimodal encoders are
  the "JMVAE student"), MVTCAE and ``iterative-multimodal`` (its distilled students);
- the T ablation (slides 53-58): ``iterative-multimodal`` trained with T in {1, 2, 4, 16};
- the open choices of the method, one changed at a time from the default: the teacher started at
  a joint encoder, the reverse distillation KL, the distillation's gradient reaching the teacher,
  the learned update rule instead of Adam steps.

The ablations share one budget (``ablation_epochs``), shorter than the comparison's in the full
setting: the T = 16 teacher costs about 17 times the T = 0 one per step.

Measured on the compared models (:func:`measure_model`): every metric of
:func:`~pixyz_zoo.evaluation.multimodal.evaluate_multimodal` with the benchmark's sample sizes
(coherence, FD, probes, cosine, likelihoods); the teacher-student KL per modality
(:func:`~pixyz_zoo.evaluation.distillation.teacher_student_kl`: JMVAE's joint encoder vs its
unimodal encoders, the refined teacher vs its students, MVTCAE's product of experts vs its experts;
MoPoE has no Gaussian teacher); the amortization gaps of the joint and unimodal inferences before
and after refinement against ``q*(z|X)``
(:func:`~pixyz_zoo.evaluation.amortization.inference_gaps`, :func:`gap_posteriors`; MoPoE's
mixture joint gives ``q*`` no Gaussian start, so its gaps are reported as not measured). The T
ablation and the variants get the coherence, FD and probes, the KL and the gaps, summarised by
:data:`SUMMARY`.

The report puts the slides' tables (:data:`SLIDE_TABLES`: slides 37, 38, 40, 64, 65, 68) beside
the numbers measured here. The slides' FID is on Inception features, the FD here on the zoo
classifiers' features: the orderings of the models compare (:func:`table_ordering`), the values do
not. The slides' two hypotheses (slide 33) are stated from the measured numbers by
:func:`hypotheses`, each variant against the default at the same budget by
:func:`variant_findings`. Figures: the "accuracy of inference" picture of slides 21-27 from the
measured gaps (:func:`accuracy_panels`), the probes with the slides' numbers, the FD, the
coherence, the summary against T, and cross-modal generations per T (slides 53-58) and per model.

Settings. ``full``: ``trimodal-mnist`` (8,000 train / 2,000 test), 2x512 networks, z = 20, Adam
2e-3, batch 100, 25 epochs (ablations 10), teacher T = 4 Adam steps of 0.1. ``quick``:
``trimodal-digits``, 2x128 networks, 12 epochs (ablations 3). ``smoke``: seconds. The wall time
of each setting is recorded in ``benchmarks/iterative_multimodal.md``. ``--dataset`` replaces the
setting's dataset by another of ``TRIMODAL_DATASETS`` (e.g. the real ``mnist-svhn-text``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from pixyz.distributions.distributions import Distribution

from pixyz_zoo import plots
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.evaluation.amortization import inference_gaps
from pixyz_zoo.evaluation.distillation import teacher_student_kl
from pixyz_zoo.evaluation.multimodal import (
    METRICS,
    evaluate_multimodal,
    multimodal_table,
)
from pixyz_zoo.experiments import ExperimentContext, details, image, register_experiment
from pixyz_zoo.experiments.multimodal_benchmark import (
    TRIMODAL_DATASETS,
    coherence_figure,
    prepare,
    summary_row,
)
from pixyz_zoo.experiments.multimodal_benchmark import settings as benchmark_settings
from pixyz_zoo.markdown import markdown_cell, markdown_table
from pixyz_zoo.models import ZooModel
from pixyz_zoo.models.refinement import elbo_refinement_loss, refined_inference

#: the slides' comparison: label -> registered model
COMPARED = {
    "MoPoE": "mopoe",
    "JMVAE student": "jmvae-kl",
    "MVTCAE": "mvtcae",
    "Iterative student": "iterative-multimodal",
}
#: the T ablation (slides 53-58)
ABLATION_STEPS = (1, 2, 4, 16)
#: the method's open choices, each changed alone from the default (run key -> options)
VARIANTS = {
    "iterative-joint-teacher": {"teacher_init": "joint"},
    "iterative-reverse-kl": {"distillation": "reverse"},
    "iterative-teacher-gradient": {"teacher_gradient": True},
    "iterative-learned-update": {"refine_rule": "learned"},
}


def settings(ctx: ExperimentContext) -> dict[str, Any]:
    s = benchmark_settings(ctx)
    s.pop("mmvae_k")
    s.update(
        epochs=ctx.pick(s["epochs"], 12, s["epochs"]),  # quick: 12 of the benchmark's 20, to fit 6 minutes
        refine_steps=ctx.pick(4, 4, 1),
        ablation_steps=list(ctx.pick(ABLATION_STEPS, ABLATION_STEPS, (0, 1))),
        ablation_epochs=ctx.pick(10, 3, 1),
        n_gaps=ctx.pick(200, 64, 16),
        ablation_n_gaps=ctx.pick(100, 32, 16),  # the T ablation and the variants: half, for time
        gap_k=ctx.pick(100, 20, 4),
    )
    return s


def model_options(s: dict[str, Any], weights: dict[str, float]) -> dict[str, Any]:
    """The options every compared model shares (the multimodal benchmark's)."""
    return {
        "z_dim": s["z_dim"],
        "hidden": s["hidden"],
        "lr": s["lr"],
        "decoder_scale": s["decoder_scale"],
        "likelihood_weights": weights,
    }


def fit(
    ctx: ExperimentContext,
    s: dict[str, Any],
    key: str,
    registered: str,
    weights: dict[str, float],
    epochs: int,
    **extra: Any,
) -> ZooModel:
    """Train (or load) the run ``key`` of ``registered`` with the shared options plus ``extra``."""
    return ctx.fit(
        key,
        registered,
        s["dataset"],
        epochs=epochs,
        batch_size=s["batch_size"],
        warmup_epochs=s["warmup_epochs"],
        train_examples=s["train_examples"],
        options={**model_options(s, weights), **extra},
    )


def train_models(
    ctx: ExperimentContext, s: dict[str, Any], weights: dict[str, float], part: str = "all"
) -> tuple[dict[str, ZooModel], dict[int, ZooModel], dict[str, ZooModel]]:
    """The compared models, the T ablation (T -> model) and the variants (run key -> model).

    ``part``: ``"compared"``, ``"ablations"`` or ``"all"`` (two processes can train the two parts
    side by side; each run is loaded when finished).
    """
    compared: dict[str, ZooModel] = {}
    ablation: dict[int, ZooModel] = {}
    variants: dict[str, ZooModel] = {}
    if part in ("compared", "all"):
        for label, registered in COMPARED.items():
            extra = {"refine_steps": s["refine_steps"]} if registered == "iterative-multimodal" else {}
            compared[label] = fit(ctx, s, registered, registered, weights, s["epochs"], **extra)
    if part in ("ablations", "all"):
        for steps in s["ablation_steps"]:
            ablation[steps] = fit(
                ctx,
                s,
                f"iterative-T{steps}",
                "iterative-multimodal",
                weights,
                s["ablation_epochs"],
                refine_steps=steps,
            )
        for key, options in VARIANTS.items():
            variants[key] = fit(
                ctx,
                s,
                key,
                "iterative-multimodal",
                weights,
                s["ablation_epochs"],
                refine_steps=s["refine_steps"],
                **options,
            )
    return compared, ablation, variants


# ---------------------------------------------------------------------- the slides' numbers
#: the zoo's modalities of the trimodal datasets and their names on the slides
SLIDE_NAMES = {"m": "MNIST", "s": "SVHN", "t": "Text"}
#: the models of the slides' tables (MVTCAE appears only in the slides' pictures)
SLIDE_MODELS = ("MoPoE", "JMVAE student", "Iterative student")


@dataclass(frozen=True)
class SlideTable:
    """One of the slides' tables: the measured keys it corresponds to and the slides' numbers.

    ``values[model]``: one number per column, in the order of ``columns`` (keys of the measured
    rows, see :func:`measured_rows`).
    """

    slide: int
    title: str
    columns: tuple[str, ...]
    lower_is_better: bool
    values: dict[str, tuple[float, ...]]
    note: str = ""


FD_NOTE = (
    "FID (Inception) on the slides, FD on the zoo classifiers' features here: "
    "orderings compare, values do not"
)
#: The slides' numbers (Oshima, Suzuki & Matsuo), MNIST-SVHN-Text unless the note says otherwise.
#: Their FID is on Inception-v3 features; the FD here is on the zoo classifiers' features
#: (``evaluation.multimodal``): compare the orderings of the models, not the values.
SLIDE_TABLES: dict[str, SlideTable] = {
    "fd": SlideTable(
        37,
        "Cross-modal generation: FID on the slides, FD on the zoo classifiers' features here",
        ("fd[s->m]", "fd[t->m]", "fd[m->s]", "fd[t->s]"),
        True,
        {
            "MoPoE": (194.49, 199.69, 246.64, 246.85),
            "JMVAE student": (59.468, 48.680, 65.407, 63.345),
            "Iterative student": (49.957, 38.691, 60.328, 58.674),
        },
        FD_NOTE,
    ),
    "probe": SlideTable(
        38,
        "Latent linear probe of each modality's inference",
        ("probe[m]", "probe[s]", "probe[t]"),
        False,
        {
            "MoPoE": (0.9787, 0.7969, 0.9992),
            "JMVAE student": (0.9743, 0.7540, 0.9981),
            "Iterative student": (0.9811, 0.7937, 0.9999),
        },
    ),
    "cosine": SlideTable(
        40,
        "Cosine similarity of unimodal and joint latents",
        ("cosine[unimodal]",),
        False,
        {"MoPoE": (-4.795e-3,), "JMVAE student": (3.665e-3,), "Iterative student": (7.960e-3,)},
        "the slides' number is on CUB (one value per model); here the mean over the three modalities",
    ),
    "fd_pairs": SlideTable(
        64,
        "Cross-modal generation from pairs (product of the students): FID on the slides, FD here",
        ("fd[s,t->m]", "fd[m,t->s]"),
        True,
        {
            "MoPoE": (196.98, 252.50),
            "JMVAE student": (44.281, 75.465),
            "Iterative student": (44.026, 72.782),
        },
        FD_NOTE,
    ),
    "probe_pairs": SlideTable(
        65,
        "Latent linear probe of each pair's inference (product of the students)",
        ("probe[m,s]", "probe[s,t]", "probe[m,t]"),
        False,
        {
            "MoPoE": (0.9813, 0.9679, 0.9961),
            "JMVAE student": (0.9827, 0.9900, 0.9974),
            "Iterative student": (0.9857, 0.9926, 0.9980),
        },
    ),
    "kl": SlideTable(
        68,
        "Teacher-student KL(teacher || student) per modality (nats)",
        ("kl[m]", "kl[s]", "kl[t]"),
        True,
        {"JMVAE student": (46.434, 56.883, 74.996), "Iterative student": (44.022, 51.836, 71.108)},
        "JMVAE: joint encoder vs its unimodal encoders; Iterative: refined teacher vs its students; "
        "MVTCAE (not on the slides): its product of experts vs its experts; MoPoE: no Gaussian teacher. "
        "The KL's size depends on the latent size (the slides' is not given): compare orderings",
    ),
}

#: the summary metrics of the T ablation and of the variants (lower is better for the last three)
SUMMARY = (
    "coherence (cross, mean)",
    "FD (cross, mean)",
    "probe (unimodal, mean)",
    "teacher-student KL (mean)",
    "refined teacher gap (mean)",
)
SUMMARY_LOWER = ("FD (cross, mean)", "teacher-student KL (mean)", "refined teacher gap (mean)")
#: what each variant changes (the keys of VARIANTS)
VARIANT_TEXT = {
    "iterative-joint-teacher": "one teacher started at a joint encoder q(z|X)",
    "iterative-reverse-kl": "students distilled by KL(student || teacher)",
    "iterative-teacher-gradient": "the distillation's gradient also trains the teacher",
    "iterative-learned-update": "the teacher refined by Marino et al.'s learned update instead of Adam steps",
}
#: the six single-modality directions of slides 53-58, in the slides' order
DIRECTIONS = (("s", "m"), ("t", "m"), ("m", "s"), ("t", "s"), ("m", "t"), ("s", "t"))
#: the cross-modal pictures of the compared models (slides 36, 45-46, 61-63)
PICTURES = (*(((g,), t) for g, t in DIRECTIONS), (("s", "t"), "m"), (("m", "t"), "s"), (("m", "s"), "t"))
#: the metrics measured on the T ablation and the variants (no likelihoods, cosine, joint coherence)
ABLATION_METRICS = ("coherence", "fd", "probe")


def measurement(ctx: ExperimentContext) -> dict[str, Any]:
    """How the gaps are measured, beside ``settings`` (which the trained runs depend on): ``L[q]``
    from ``elbo_samples`` samples per example; ``q*`` by Adam on each example's parameters."""
    return {
        "elbo_samples": ctx.pick(20, 10, 2),
        "qstar": ctx.pick(
            {"max_steps": 1000, "lr": 1e-2, "samples": 4, "window": 50, "patience": 3, "tol": 1e-2},
            {"max_steps": 100, "lr": 2e-2, "samples": 4, "window": 25, "patience": 2, "tol": 2e-2},
            {"max_steps": 20, "lr": 2e-2, "samples": 2, "window": 5, "patience": 1, "tol": 1e-1},
        ),
    }


# ---------------------------------------------------------------------- what is measured on a model
def teacher_student_pairs(model: ZooModel) -> dict[str, tuple[Distribution, Distribution]] | None:
    """Modality -> (teacher, student): the refined teacher and its student (iterative), the joint
    encoder and the unimodal encoder (JMVAE-kl), the product of experts and the expert (MVTCAE);
    None for a model without a Gaussian teacher (MoPoE's joint is a mixture)."""
    names = list(model.modalities)
    if model.name == "iterative-multimodal":
        return {m: (model.teacher_for(m), model.students[m]) for m in names}
    if model.name in ("jmvae-kl", "mvtcae"):
        return {m: (model.joint, model.inference_for([m])) for m in names}
    return None


def gap_posteriors(model: ZooModel, steps: int) -> dict[str, Distribution]:
    """The posteriors whose multimodal ELBO is measured against ``q*(z|X)``, by label.

    ``joint``: the inference from every modality (JMVAE-kl's joint encoder, the product of the
    students or experts); ``m``: the unimodal inference used at test time (student, expert);
    JMVAE-kl: ``m refined``, its student refined by ``steps`` Adam steps on the ELBO of all
    modalities; iterative: ``k teacher start`` (the teacher's amortised start, ``k`` a modality or
    ``joint``) and ``k refined`` (the refined teacher); MoPoE: its unimodal experts only.
    """
    names = list(model.modalities)
    out: dict[str, Distribution] = {}
    if model.name == "mopoe":  # its unimodal inference is a one-expert mixture: the Gaussian expert
        return {m: model.experts[m] for m in names}
    out["joint"] = model.joint
    out.update({m: model.inference_for([m]) for m in names})
    if model.name == "jmvae-kl":
        for m in names:
            out[f"{m} refined"] = refined_inference(model, [m], steps, loss=elbo_refinement_loss(model))
    if model.name == "iterative-multimodal":
        for key, start in model.teacher_initial.items():
            out[f"{key} teacher start"] = start
            out[f"{key} refined"] = model.teacher_for(key if key in model.students else names[0])
    return out


def gap_summary(name: str, gaps: Mapping[str, Any] | None, names: Sequence[str]) -> dict[str, float]:
    """``gap[label]`` of every posterior, ``gap[student]`` (the mean over the unimodal inferences)
    and ``gap[teacher]`` (the distillation's teacher: JMVAE-kl's joint encoder, the iterative
    model's refined teachers (mean), MVTCAE's product of experts); NaN where not measured."""
    posteriors = (gaps or {}).get("posteriors", {})
    out = {f"gap[{label}]": float(v["gap"]) for label, v in posteriors.items()}
    out["gap[student]"] = _nanmean([out.get(f"gap[{m}]", math.nan) for m in names])
    if name == "iterative-multimodal":
        out["gap[teacher]"] = _nanmean([v for k, v in out.items() if k.endswith(" refined]")])
    else:
        out["gap[teacher]"] = out.get("gap[joint]", math.nan) if name in ("jmvae-kl", "mvtcae") else math.nan
    return out


def _nanmean(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(sum(finite) / len(finite)) if finite else math.nan


def measure_model(
    ctx: ExperimentContext,
    s: Mapping[str, Any],
    model: ZooModel,
    train: MultimodalDataset,
    test: MultimodalDataset,
    classifiers: Mapping[str, Any],
    metrics: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """``evaluate_multimodal`` (the multimodal benchmark's sample sizes), the teacher-student KL and
    the gaps (``inference_gaps`` on ``n_gaps`` test examples, IWAE with ``gap_k`` samples) of one model.

    A measure the model cannot give (MoPoE's gaps need a Gaussian joint for ``q*``) is recorded with
    its error under ``errors``."""
    m = measurement(ctx)
    errors: dict[str, str] = {}
    values = evaluate_multimodal(
        model,
        train,
        test,
        classifiers,
        n_test=s["n_test"],
        n_train=s["n_train_probe"],
        n_joint=s["n_joint"],
        n_likelihood=s["n_likelihood"],
        k=s["k"],
        seed=ctx.seed,
        metrics=metrics,
        errors=errors,
    )
    pairs = teacher_student_pairs(model)
    kl = None
    if pairs is None:
        errors["kl"] = f"{model.name} has no Gaussian teacher (its joint inference is a mixture)"
    else:
        torch.manual_seed(ctx.seed)  # a learned refinement samples z: the same draws on every invocation
        kl = teacher_student_kl(model, test, pairs, n=s["n_test"], batch_size=100, seed=ctx.seed)
    gaps = None
    try:
        torch.manual_seed(ctx.seed)
        gaps = inference_gaps(
            model,
            test,
            gap_posteriors(model, s["refine_steps"]),
            k=s["gap_k"],
            elbo_samples=m["elbo_samples"],
            batch_size=100,
            seed=ctx.seed,
            n=s["n_gaps"],
            **m["qstar"],
        )
    except TypeError as error:  # a model without a Gaussian joint has no q*(z|X) to start from
        errors["gaps"] = f"{type(error).__name__}: {error}"
    return {"metrics": values, "kl": kl, "gaps": gaps, "errors": errors}


def _checkpoint_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def measure_run(
    ctx: ExperimentContext,
    s: Mapping[str, Any],
    key: str,
    model: ZooModel,
    train: MultimodalDataset,
    test: MultimodalDataset,
    classifiers: Mapping[str, Any],
    metrics: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """:func:`measure_model` of the run ``key``, kept in ``OUT/measurements/key.json`` and loaded by a
    later invocation while the run's checkpoint, the sample sizes and the measurement are the same
    (a second invocation neither retrains nor re-measures)."""
    checkpoint = ctx.out / "runs" / key / "checkpoint.pt"
    fingerprint = {
        "checkpoint": _checkpoint_digest(checkpoint) if checkpoint.exists() else None,
        "measurement": measurement(ctx),
        "sizes": {
            k: s[k] for k in ("n_test", "n_train_probe", "n_joint", "n_likelihood", "k", "n_gaps", "gap_k")
        },
        "refine_steps": s["refine_steps"],
        "metrics": list(metrics),
        "seed": ctx.seed,
    }
    path = ctx.out / "measurements" / f"{key}.json"
    if fingerprint["checkpoint"] is not None and path.exists():
        stored = json.loads(path.read_text())
        if stored.get("fingerprint") == fingerprint:
            ctx.log(f"loaded the measurements of {key}")
            return stored["measured"]
    measured = measure_model(ctx, s, model, train, test, classifiers, metrics)
    if fingerprint["checkpoint"] is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fingerprint": fingerprint, "measured": measured}))
    return measured


def ablation_sizes(s: Mapping[str, Any]) -> dict[str, Any]:
    """``s`` with the gaps of the T ablation and the variants measured on ``ablation_n_gaps`` examples."""
    return {**s, "n_gaps": s["ablation_n_gaps"]}


def measured_row(name: str, measured: Mapping[str, Any], names: Sequence[str]) -> dict[str, float]:
    """One model's numbers as one flat dict: the ``evaluate_multimodal`` keys, ``cosine[unimodal]``,
    ``coherence[unimodal]`` (mean coherence of one modality generated from another), ``kl[m]`` and
    the ``gap[...]`` keys of :func:`gap_summary`."""
    metrics = measured["metrics"]
    row = dict(metrics)
    row["cosine[unimodal]"] = _nanmean([metrics.get(f"cosine[{m}]", math.nan) for m in names])
    row["coherence[unimodal]"] = _nanmean(
        [metrics.get(f"coherence[{a}->{b}]", math.nan) for a in names for b in names if a != b]
    )
    kl = measured.get("kl") or {}
    row.update({f"kl[{m}]": float(kl.get(m, math.nan)) for m in names})
    row.update(gap_summary(name, measured.get("gaps"), names))
    return row


def summary_metrics(row: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    """The ablation's summary (:data:`SUMMARY`) of one measured row (:func:`measured_row`)."""
    means = summary_row(dict(row), list(names))
    return {
        "coherence (cross, mean)": means["coherence (cross, mean)"],
        "FD (cross, mean)": means["FD (cross, mean)"],
        "probe (unimodal, mean)": means["probe (unimodal, mean)"],
        "teacher-student KL (mean)": _nanmean([row.get(f"kl[{m}]", math.nan) for m in names]),
        "refined teacher gap (mean)": row.get("gap[teacher]", math.nan),
    }


# ---------------------------------------------------------------------- findings, from the numbers
def _finite(value: Any) -> bool:
    return value is not None and not math.isnan(float(value))


def _number(value: float) -> str:
    return f"{value:.4g}"


def ordering(values: Mapping[str, float], lower_is_better: bool) -> list[str]:
    """The models from best to worst (the measured ones only)."""
    finite = {k: float(v) for k, v in values.items() if _finite(v)}
    return sorted(finite, key=lambda k: finite[k] if lower_is_better else -finite[k])


def table_ordering(table: SlideTable, rows: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Per column of a slides' table: the slides' order of their models, the measured order of the
    same models, and whether they agree (None when a model was not measured)."""
    models = list(table.values)
    sign = " < " if table.lower_is_better else " > "
    columns: dict[str, dict[str, Any]] = {}
    parts = []
    for index, column in enumerate(table.columns):
        slides = ordering({m: table.values[m][index] for m in models}, table.lower_is_better)
        here = ordering({m: rows.get(m, {}).get(column, math.nan) for m in models}, table.lower_is_better)
        holds = here == slides if len(here) == len(slides) else None
        columns[column] = {"slides": slides, "here": here, "holds": holds}
        verdict = {True: "as on the slides", False: "not as on the slides", None: "not measured"}[holds]
        parts.append(f"`{column}`: slides {sign.join(slides)}; here {sign.join(here) or '-'} ({verdict})")
    held = sum(c["holds"] is True for c in columns.values())
    measured = sum(c["holds"] is not None for c in columns.values())
    text = (
        f"Slide {table.slide} ({'lower' if table.lower_is_better else 'higher'} is better): the slides' "
        f"order of the models holds in {held} of {measured} measured columns. " + "; ".join(parts) + "."
    )
    return {"columns": columns, "held": held, "measured": measured, "text": text}


def compare(
    rows: Mapping[str, Mapping[str, float]], model: str, other: str, metrics: Sequence[tuple[str, bool]]
) -> dict[str, Any]:
    """Where ``model`` is better than ``other`` (``metrics``: (key, lower is better)); a metric
    missing or NaN for either is listed under ``missing``; a tie under ``equal`` (neither better
    nor worse)."""
    better, worse, missing, equal = [], [], [], []
    for key, lower in metrics:
        a, b = rows.get(model, {}).get(key, math.nan), rows.get(other, {}).get(key, math.nan)
        if not (_finite(a) and _finite(b)):
            missing.append(key)
            continue
        entry = {"metric": key, "value": float(a), "other": float(b)}
        if a == b:
            equal.append(entry)
            continue
        (better if (a < b if lower else a > b) else worse).append(entry)
    return {"better": better, "worse": worse, "missing": missing, "equal": equal}


def verdict(better: Sequence[Any], worse: Sequence[Any]) -> str:
    """``supported`` (better on every measured metric), ``not supported`` (on none), ``partly
    supported``, or ``not measured``."""
    if not better and not worse:
        return "not measured"
    if not worse:
        return "supported"
    return "not supported" if not better else "partly supported"


def _listing(entries: Sequence[Mapping[str, Any]]) -> str:
    return (
        ", ".join(f"`{e['metric']}` ({_number(e['value'])} vs {_number(e['other'])})" for e in entries)
        or "none"
    )


#: H1's metrics against MoPoE (slide 41): cross-modal FD (slide 37), the unimodal probes (slide 38),
#: the cosine of unimodal and joint latents (slide 40) and, not on the slides, the coherence of
#: one modality generated from another
H1_METRICS = (
    *((c, True) for c in SLIDE_TABLES["fd"].columns),
    *((c, False) for c in SLIDE_TABLES["probe"].columns),
    ("cosine[unimodal]", False),
    ("coherence[unimodal]", False),
)
#: H2's metrics against the JMVAE student: the slides' FD and probes (slides 37-38, 64-65) and the
#: teacher-student KL (slides 67-68)
H2_PERFORMANCE = tuple(
    (c, SLIDE_TABLES[t].lower_is_better)
    for t in ("fd", "probe", "fd_pairs", "probe_pairs")
    for c in SLIDE_TABLES[t].columns
)
H2_DISTILLATION = tuple((c, True) for c in SLIDE_TABLES["kl"].columns)
#: H2's mechanism (not on the slides): the teacher's and the students' amortization gaps
H2_MECHANISM = (("gap[teacher]", True), ("gap[student]", True))


def hypotheses(rows: Mapping[str, Mapping[str, float]], model: str = "Iterative student") -> dict[str, Any]:
    """The slides' two hypotheses (slide 33), each stated from the measured ``rows`` (label ->
    :func:`measured_row`): which metrics support it and which do not.

    H1, the iterative student obtains the shared representation from a single modality: against
    MoPoE, as slide 41 concludes from slides 37-40. H2, the iterative model infers better than
    JMVAE because the refinement fills the amortization gap of the joint encoder: against the JMVAE
    student on the probes and FD (slides 37-38, 64-65) and on the teacher-student KL (slides
    67-68); its status counts those. The mechanism itself (not measured on the slides) is stated
    apart: the refined teacher's gap against JMVAE's joint encoder's, the students' gaps.
    """
    h1 = compare(rows, model, "MoPoE", H1_METRICS)
    h1["status"] = verdict(h1["better"], h1["worse"])
    h1["sentence"] = (
        f"H1 (slide 33: the iterative student obtains the shared representation from one modality), "
        f"tested against MoPoE as slide 41 does: **{h1['status']}**. The iterative student is better on "
        f"{len(h1['better'])} of {len(h1['better']) + len(h1['worse'])} measured metrics: "
        f"{_listing(h1['better'])}; worse on {_listing(h1['worse'])}"
        + (f"; not measured: {', '.join(h1['missing'])}." if h1["missing"] else ".")
    )
    performance = compare(rows, model, "JMVAE student", H2_PERFORMANCE)
    distillation = compare(rows, model, "JMVAE student", H2_DISTILLATION)
    mechanism = compare(rows, model, "JMVAE student", H2_MECHANISM)
    better = performance["better"] + distillation["better"]
    worse = performance["worse"] + distillation["worse"]
    status = verdict(better, worse)
    mechanism_status = verdict(mechanism["better"], mechanism["worse"])
    sentence = (
        f"H2 (slide 33: the iterative model infers better than JMVAE because the refinement fills the "
        f"amortization gap of q(z|X)), tested against the JMVAE student: **{status}**. Probe and FD "
        f"(slides 37-38, 64-65): better on {_listing(performance['better'])}; worse on "
        f"{_listing(performance['worse'])}. Teacher-student KL (slides 67-68, lower is easier "
        f"distillation): lower on {_listing(distillation['better'])}; higher on "
        f"{_listing(distillation['worse'])}. The mechanism (not on the slides; gaps L[q*] - L[q] of "
        f"the multimodal ELBO, lower is better): **{mechanism_status}**; smaller for "
        f"{_listing(mechanism['better'])}; larger for {_listing(mechanism['worse'])} (`gap[teacher]`: "
        "the refined teacher against JMVAE's joint encoder; `gap[student]`: the unimodal inferences' mean)"
    )
    missing = performance["missing"] + distillation["missing"] + mechanism["missing"]
    sentence += f"; not measured: {', '.join(missing)}." if missing else "."
    h2 = {
        "status": status,
        "performance": performance,
        "distillation": distillation,
        "mechanism": {**mechanism, "status": mechanism_status},
        "sentence": sentence,
    }
    return {"H1": h1, "H2": h2}


def variant_findings(
    summaries: Mapping[str, Mapping[str, float]], default: str, texts: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Each variant against ``default`` (the same budget) on the summary metrics: where it is better,
    where worse, as a sentence. ``summaries``: run key -> :data:`SUMMARY` values (with ``default``)."""
    texts = dict(VARIANT_TEXT, **(texts or {}))
    metrics = [(k, k in SUMMARY_LOWER) for k in SUMMARY]
    out = {}
    for key in summaries:
        if key == default:
            continue
        found = compare(summaries, key, default, metrics)
        found["sentence"] = (
            f"`{key}` ({texts.get(key, key)}) against the default `{default}`: better on "
            f"{_listing(found['better'])}; worse on {_listing(found['worse'])}"
            + (f"; equal on {_listing(found['equal'])}" if found["equal"] else "")
            + (f"; not measured: {', '.join(found['missing'])}." if found["missing"] else ".")
        )
        out[key] = found
    return out


# ---------------------------------------------------------------------- figures and report
def accuracy_panels(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The panels of :func:`~pixyz_zoo.plots.inference_accuracy_figure` for JMVAE-kl and the iterative
    model, from the measured gaps (``results["gaps"]``)."""
    names = results["modalities"]
    steps = results["settings"]["refine_steps"]
    panels: dict[str, dict[str, Any]] = {}
    for label in ("JMVAE student", "Iterative student"):
        gaps = results["gaps"].get(label)
        if not gaps:
            continue
        elbo = {k: v["elbo"] for k, v in gaps["posteriors"].items()}
        points: dict[str, tuple[str, float]] = {}
        arrows: list[tuple[str, str, str]] = []
        if label == "JMVAE student":
            points["joint encoder"] = ("joint", elbo.get("joint", math.nan))
            for m in names:
                points[f"{m} student"] = (f"from {m}", elbo.get(m, math.nan))
                points[f"{m} student refined"] = (f"from {m}", elbo.get(f"{m} refined", math.nan))
                arrows.append(("joint encoder", f"{m} student", "distillation (training)"))
                arrows.append((f"{m} student", f"{m} student refined", "refinement (test time)"))
            title = f"JMVAE-kl (refinement at test time: {_steps(steps, 'Adam step')} on L(X))"
        else:
            points["product of students"] = ("joint", elbo.get("joint", math.nan))
            starts = [k[: -len(" teacher start")] for k in elbo if k.endswith(" teacher start")]
            for key in starts:
                column = "joint" if key == "joint" else f"from {key}"
                points[f"{key} teacher start"] = (column, elbo[f"{key} teacher start"])
                points[f"{key} refined teacher"] = (column, elbo.get(f"{key} refined", math.nan))
                arrows.append((f"{key} teacher start", f"{key} refined teacher", "refinement (training)"))
            for m in names:
                points[f"{m} student"] = (f"from {m}", elbo.get(m, math.nan))
                teacher = f"{m} refined teacher" if m in starts else "joint refined teacher"
                arrows.append((teacher, f"{m} student", "distillation (training)"))
            title = f"Iterative (teacher refined T = {steps} times in training, students distilled)"
        panels[title] = {"optimal": gaps["optimal"]["elbo"], "points": points, "arrows": arrows}
    return panels


def _steps(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def side_by_side(table: SlideTable, rows: Mapping[str, Mapping[str, float]], digits: int = 3) -> str:
    """A slides' table: per column the number measured here, then the slides' number."""
    header = ["model"]
    for column in table.columns:
        header += [f"{column} here", "slides"]
    body = []
    for label in rows:
        cells: list[Any] = [label]
        for index, column in enumerate(table.columns):
            value = rows[label].get(column, math.nan)
            slides = table.values.get(label)
            cells += [value if _finite(value) else None, slides[index] if slides else None]
        body.append(cells)
    return markdown_table(header, body, digits=digits)


def gaps_table(results: Mapping[str, Any]) -> str:
    """Every measured posterior's multimodal ELBO and gap to ``q*(z|X)``, per model; below the table,
    why a model's gaps were not measured."""
    body = []
    missing = []
    for label, gaps in results["gaps"].items():
        if not gaps:
            missing.append(f"- {label}: not measured ({results['errors'][label].get('gaps', 'no result')})")
            continue
        body.append([label, markdown_cell("q*(z|X)"), gaps["optimal"]["elbo"], 0.0])
        body.append([label, markdown_cell(f"log p(X) (IWAE-{gaps['k']}, q* proposal)"), gaps["log_px"], None])
        body += [[label, markdown_cell(name), v["elbo"], v["gap"]] for name, v in gaps["posteriors"].items()]
    table = markdown_table(["model", "posterior", "L(X) (nats)", "gap to q* (nats)"], body, digits=2)
    return table + ("\n\n" + "\n".join(missing) if missing else "")


def summary_table(
    summaries: Mapping[str, Mapping[str, float]], first: str, texts: Mapping[str, str] | None = None
) -> str:
    columns = list(SUMMARY)
    header = [first, *(texts is not None) * ["what changes"], *columns]
    body = []
    for key, row in summaries.items():
        cells: list[Any] = [key]
        if texts is not None:
            cells.append(markdown_cell(texts.get(key, "the default")))
        body.append(cells + [row.get(c) if _finite(row.get(c)) else None for c in columns])
    return markdown_table(header, body)


def ablation_figure(results: Mapping[str, Any]) -> Figure:
    ablation = results["ablation"]
    steps = ablation["steps"]
    return plots.metrics_by_steps_figure(
        steps,
        {name: [ablation["summary"][str(t)][name] for t in steps] for name in SUMMARY},
        lower_is_better=SUMMARY_LOWER,
        title=f"The T ablation ({results['settings']['ablation_epochs']} epochs each)",
    )


def _slides_reference(tables: Sequence[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in tables:
        table = SLIDE_TABLES[name]
        for model, values in table.values.items():
            out.setdefault(model, {}).update(dict(zip(table.columns, values, strict=True)))
    return out


def bars_figure(results: Mapping[str, Any], tables: Sequence[str], title: str, reference: bool) -> Figure:
    """Bars of the columns of the slides' ``tables`` per compared model; ``reference``: the slides'
    numbers as black marks (only where the values compare: the probes' accuracies)."""
    columns = [c for name in tables for c in SLIDE_TABLES[name].columns]
    rows = {label: {c: row.get(c, math.nan) for c in columns} for label, row in results["rows"].items()}
    return plots.metric_bars(
        rows,
        lower_is_better=[
            c for name in tables for c in SLIDE_TABLES[name].columns if SLIDE_TABLES[name].lower_is_better
        ],
        reference=_slides_reference(tables) if reference else None,
        reference_label="slides",
        ncols=3,
        title=title,
    )


def render_report(results: Mapping[str, Any]) -> str:
    """``report.md`` from ``results``: figures, the slides' tables side by side, the gaps, the T
    ablation, the variants, the findings, every metric, the settings."""
    s, figures, rows = results["settings"], results["figures"], results["rows"]
    names = results["modalities"]
    orderings = results["orderings"]
    tables = []
    for name, table in SLIDE_TABLES.items():
        note = f" *{table.note}.*" if table.note else ""
        tables.append(
            f"### Slide {table.slide}: {table.title}\n\n{side_by_side(table, rows)}\n\n"
            f"{orderings[name]['text']}{note}"
        )
    ablation, variants = results["ablation"], results["variants"]
    direction_links = markdown_table(
        ["direction (slides 53-58)", "T ablation", "compared models"],
        [
            [
                f"{SLIDE_NAMES.get(g, g)} -> {SLIDE_NAMES.get(t, t)} (`{g}->{t}`)",
                f"[grid]({figures[f'ablation_{g}_to_{t}']})" if figures.get(f"ablation_{g}_to_{t}") else "-",
                f"[grid]({figures[f'models_{g}_to_{t}']})" if figures.get(f"models_{g}_to_{t}") else "-",
            ]
            for g, t in DIRECTIONS
        ]
        + [
            [
                f"`{','.join(g)}->{t}` (slides 61-63)",
                "-",
                f"[grid]({figures[key]})" if figures.get(key) else "-",
            ]
            for g, t in PICTURES[len(DIRECTIONS) :]
            for key in [f"models_{'_'.join(g)}_to_{t}"]
        ],
    )
    families = [
        ("Coherence (classifier accuracy on generated views)", ["coherence", "joint_coherence"]),
        ("Fréchet distance on the zoo classifiers' features (lower is better)", ["fd"]),
        ("Latent linear probe", ["probe"]),
        ("Cosine similarity of subset and joint latent means", ["cosine"]),
        ("Test ELBO of each subset (nats, unweighted)", ["elbo"]),
        (f"Test IWAE, k = {s['k']}", ["iwae"]),
    ]
    every = "\n\n".join(details(t, multimodal_table(results["metrics"], keys)) for t, keys in families)
    hypotheses = results["hypotheses"]
    return "\n\n".join(
        [
            "# Multimodal iterative amortized inference: MoPoE, JMVAE student, MVTCAE, iterative student",
            "Oshima, Suzuki & Matsuo's comparison (slides 34-41, 53-58, 61-68) on "
            f"`{s['dataset']}` (modalities "
            + ", ".join(f"`{m}` ({SLIDE_NAMES.get(m, m)})" for m in names)
            + "); the slides' numbers are on MNIST-SVHN-Text (CUB for the cosine). Zoo classifiers' accuracy "
            "on real test data: "
            + ", ".join(f"{m} {a:.3f}" for m, a in results["classifier_accuracy"].items())
            + ". The Fréchet distance here is on those classifiers' features, not Inception FID: compare "
            "the orderings of the models with the slides', not the values.",
            "## Figures\n\n"
            + image(
                "accuracy of inference: L(X) of each posterior, q* on top", figures.get("inference_accuracy")
            )
            + "\n\n"
            + image("latent linear probes, the slides' numbers as black marks", figures.get("probe"))
            + "\n\n"
            + image("cross-modal FD (zoo classifiers' features)", figures.get("fd"))
            + "\n\n"
            + image("coherence, given subset x generated view", figures.get("coherence"))
            + "\n\n"
            + image("summary metrics against T", figures.get("ablation"))
            + "\n\nCross-modal generations (the given view, the ground truth, one row per T or model):\n\n"
            + direction_links,
            "## The slides' tables, side by side\n\n" + "\n\n".join(tables),
            "## Amortization gaps\n\nThe ELBO of every modality L(X) under each posterior against the "
            f"per-example optimum q*(z|X) on {s['n_gaps']} test examples (`inference_gaps`; L[q] from "
            f"{results['measurement']['elbo_samples']} samples, q* and log p(X) from {s['gap_k']}). "
            "`m`: the unimodal inference used at test time (student, expert); `m refined`: JMVAE's student "
            f"refined by {_steps(s['refine_steps'], 'Adam step')} on L(X), the iterative model's refined "
            "teacher; "
            "`m teacher start`: the teacher's amortised start.\n\n" + gaps_table(results),
            f"## The T ablation\n\n{s['ablation_epochs']} epochs per run; gaps on "
            f"{s['ablation_n_gaps']} test examples. {ablation['text']}\n\n"
            + summary_table(ablation["summary"], "T"),
            "## The method's open choices\n\n"
            + summary_table(variants["summary"], "run", {k: VARIANT_TEXT.get(k, "-") for k in VARIANTS}),
            "## Findings\n\n"
            + "\n".join(f"- {h['sentence']}" for h in hypotheses.values())
            + "\n\nOrderings of the slides' tables:\n\n"
            + "\n".join(f"- {o['text']}" for o in orderings.values())
            + "\n\nThe open choices, each against the default at the same budget:\n\n"
            + "\n".join(f"- {v['sentence']}" for v in variants["findings"].values()),
            "## Every metric of the compared models\n\n" + every,
            "## Settings\n\n"
            + "\n".join(f"- {k}: {v}" for k, v in s.items())
            + "\n".join(f"\n- measurement {k}: {v}" for k, v in results["measurement"].items()),
        ]
    )


def _ablation_text(summaries: Mapping[str, Mapping[str, float]]) -> str:
    """Which T is best on each summary metric (computed)."""
    parts = []
    for name in SUMMARY:
        best = ordering({t: row.get(name, math.nan) for t, row in summaries.items()}, name in SUMMARY_LOWER)
        if best:
            parts.append(f"{name}: best at T = {best[0]}")
    return "Per metric, the best T: " + ("; ".join(parts) or "none measured") + "."


@register_experiment(
    "iterative-multimodal",
    "Multimodal iterative amortized inference (refined teacher, distilled students) against MoPoE, "
    "JMVAE-kl and MVTCAE: the slides' FD, probes, cosine, teacher-student KL, gaps, T ablation",
    datasets=TRIMODAL_DATASETS,
)
def reproduce_iterative_multimodal(ctx: ExperimentContext) -> dict[str, Any]:
    s = settings(ctx)
    ctx.log(f"settings: {s}")
    train, test, weights, classifiers, accuracy = prepare(ctx, s)
    names = list(train.modalities)
    compared, ablation, variants = train_models(ctx, s, weights)
    measured: dict[str, dict[str, Any]] = {}
    for label, model in compared.items():
        ctx.log(f"measuring {label}")
        measured[label] = measure_run(ctx, s, COMPARED[label], model, train, test, classifiers)
    rows = {label: measured_row(compared[label].name, m, names) for label, m in measured.items()}
    steps_rows: dict[str, dict[str, float]] = {}
    runs_measured: dict[str, dict[str, Any]] = {}
    for key, model in [*((f"iterative-T{t}", m) for t, m in ablation.items()), *variants.items()]:
        ctx.log(f"measuring {key}")
        runs_measured[key] = measure_run(
            ctx, ablation_sizes(s), key, model, train, test, classifiers, ABLATION_METRICS
        )
        steps_rows[key] = summary_metrics(measured_row(model.name, runs_measured[key], names), names)
    default = f"iterative-T{s['refine_steps']}"
    if default not in steps_rows:
        raise ValueError(
            f"the variants are compared with the run {default!r} (T = refine_steps), which the T ablation "
            f"{s['ablation_steps']} does not train; add refine_steps to ablation_steps"
        )
    ablation_summary = {str(t): steps_rows[f"iterative-T{t}"] for t in ablation}
    variant_summary = {default: steps_rows[default], **{k: steps_rows[k] for k in variants}}
    results: dict[str, Any] = {
        "settings": s,
        "measurement": measurement(ctx),
        "modalities": names,
        "likelihood_weights": weights,
        "classifier_accuracy": accuracy,
        "chance": 1.0 / len(test.classes) if test.classes else None,
        "slides": {
            name: {
                "slide": t.slide,
                "columns": list(t.columns),
                "values": {k: list(v) for k, v in t.values.items()},
            }
            for name, t in SLIDE_TABLES.items()
        },
        "metrics": {label: m["metrics"] for label, m in measured.items()},
        "teacher_student_kl": {label: m["kl"] for label, m in measured.items()},
        "gaps": {label: m["gaps"] for label, m in measured.items()},
        "errors": {label: m["errors"] for label, m in measured.items()},
        "rows": rows,
        "summary": {label: summary_metrics(row, names) for label, row in rows.items()},
        "orderings": {name: table_ordering(t, rows) for name, t in SLIDE_TABLES.items()},
        "hypotheses": hypotheses(rows),
        "ablation": {
            "steps": list(ablation),
            "summary": ablation_summary,
            "text": _ablation_text(ablation_summary),
            "measured": {str(t): runs_measured[f"iterative-T{t}"] for t in ablation},
        },
        "variants": {
            "default": default,
            "summary": variant_summary,
            "findings": variant_findings(variant_summary, default),
            "measured": {k: runs_measured[k] for k in variants},
        },
    }
    for h in results["hypotheses"].values():
        ctx.log(h["sentence"])
    figures: dict[str, str | None] = {
        "inference_accuracy": ctx.draw(
            "inference_accuracy", lambda: plots.inference_accuracy_figure(accuracy_panels(results))
        ),
        "probe": ctx.draw(
            "probe",
            lambda: bars_figure(
                results, ("probe", "probe_pairs"), "Latent linear probe (black: the slides)", True
            ),
        ),
        "fd": ctx.draw(
            "fd",
            lambda: bars_figure(
                results, ("fd", "fd_pairs"), "Cross-modal FD on the zoo classifiers' features", False
            ),
        ),
        "coherence": ctx.draw("coherence", lambda: coherence_figure(results)),
        "ablation": ctx.draw("ablation", lambda: ablation_figure(results)),
    }
    batch = test.first(s["grid_examples"])
    by_steps = {f"T={t}": model for t, model in ablation.items()}
    for g, t in DIRECTIONS:
        torch.manual_seed(ctx.seed)
        figures[f"ablation_{g}_to_{t}"] = ctx.draw(
            f"ablation_{g}_to_{t}",
            lambda g=g, t=t: plots.generations_by_model(
                by_steps,
                batch,
                [g],
                t,
                n=s["grid_examples"],
                title=f"{g} -> {t}: the iterative student per T",
            ),
        )
    for given, t in PICTURES:
        key = f"models_{'_'.join(given)}_to_{t}"
        torch.manual_seed(ctx.seed)
        figures[key] = ctx.draw(
            key,
            lambda given=given, t=t: plots.generations_by_model(
                compared, batch, list(given), t, n=s["grid_examples"], title=f"{','.join(given)} -> {t}"
            ),
        )
    results["figures"] = figures
    return ctx.finish(render_report(results), results)
