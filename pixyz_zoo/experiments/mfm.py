"""Factorised multimodal representations (Tsai, Liang, Zadeh, Morency & Salakhutdinov, ICLR 2019).

``pixyz-zoo reproduce mfm`` trains the zoo's ``mfm`` model (a multimodal discriminative factor
``z_y`` inferred from every modality, a generative factor ``z_a^m`` per modality, a Wasserstein
autoencoder objective with MMD penalties, eq. 4, and surrogate inference for missing modalities,
eq. 5) and its baselines, on the modalities ``m`` and ``s`` of a trimodal digit dataset with the
digit as the label ``y`` (the paper's SVHN+MNIST experiment; ``trimodal-mnist`` by default, the
real ``mnist-svhn-text`` with ``--dataset``), and measures:

1. **Paired digits** (the paper's SVHN+MNIST experiment): unimodal (UM: from ``m`` alone, from ``s``
   alone, through surrogate inference) and multimodal (MM) test accuracy of MFM against a purely
   discriminative network of the same size (the ablation ``MB``: the same encoders, no generative
   factor; trained on both modalities for MM and on each single modality for UM); generation that
   swaps factors (:func:`~pixyz_zoo.plots.factor_swap_grid`), made quantitative with the zoo's
   digit classifiers: the class of an image decoded from the label factor of one example and the
   style factor of another; the reconstruction error of each modality (:data:`MEASURE`).
2. **Ablations** (the paper's models MA..ME beside MFM; :data:`VARIANTS`): the same data and budget;
   one table of accuracy and reconstruction; each of the paper's orderings (:data:`ORDERINGS`)
   stated from the numbers by :func:`ordering_findings`.
3. **Missing modalities**: each modality missing in turn: MFM's accuracy and the
   reconstruction error of the missing modality through surrogate inference, against the
   ``translation`` baseline (observed -> missing, trained on the reconstruction only), the purely
   discriminative baseline (observed -> label: the single-modality MB of 1.) and the training mean
   image; stated by :func:`missing_findings`.
4. **Time series** (the authors' model is sequential): MFM with LSTM encoders and decoders
   (``arch="lstm"``) on the generated ``multimodal-sequences``, one of whose modalities is made the
   most informative about the label by construction; its accuracy, the information-based ratios and
   the gradient-based contributions over time (``evaluation.interpretation``), and whether each
   finds that modality (:func:`interpretation_findings`).

Every sentence of ``report.md`` that states a finding is computed from the numbers.

Settings. ``full``: ``trimodal-mnist`` (8,000 train / 2,000 test), sized to finish in about 30-40
minutes on one CPU core (:func:`settings`); ``quick``: ``trimodal-digits`` (the bundled 8x8
digits), under 5 minutes on 2 cores; ``smoke``: seconds, a pipeline check whose numbers mean
nothing. The recorded full run: ``benchmarks/mfm.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from pixyz_zoo import plots
from pixyz_zoo.datasets.base import MultimodalDataset
from pixyz_zoo.evaluation.multimodal import train_modality_classifiers
from pixyz_zoo.experiments import ExperimentContext, details, image, register_experiment
from pixyz_zoo.experiments.multimodal_benchmark import TRIMODAL_DATASETS
from pixyz_zoo.markdown import markdown_table
from pixyz_zoo.models import ZooModel
from pixyz_zoo.plots.factors import swapped_pairs

#: the paper's ablation models as options of ``mfm``
VARIANTS: dict[str, dict[str, str]] = {
    "MA": {"discriminative_factor": "per-modality", "generative_factor": "none"},
    "MB": {"discriminative_factor": "multimodal", "generative_factor": "none"},
    "MC": {"discriminative_factor": "per-modality", "generative_factor": "shared"},
    "MD": {"discriminative_factor": "multimodal", "generative_factor": "shared"},
    "ME": {"discriminative_factor": "multimodal", "generative_factor": "multimodal"},
    "MFM": {"discriminative_factor": "multimodal", "generative_factor": "per-modality"},
}
#: what each variant is
VARIANT_TEXT = {
    "MA": "a discriminative factor per modality, no generative objective",
    "MB": "one multimodal discriminative factor, no generative objective (the discriminative network)",
    "MC": "one factor per modality for both generation and the label",
    "MD": "one multimodal factor generates every modality and predicts the label",
    "ME": "a multimodal discriminative factor and one multimodal generative factor",
    "MFM": "a multimodal discriminative factor and a generative factor per modality",
}
#: why a variant's reconstruction is not measured
NO_RECONSTRUCTION = (
    "no generative factor: trained without the reconstruction term, it has no decoder of the data"
)
#: the paper's orderings of its ablations: (better, worse, compared metrics, what the paper reads in it)
ORDERINGS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "MD",
        "MC",
        ("accuracy",),
        "a multimodal discriminative factor predicts better than modality-specific ones",
    ),
    (
        "MB",
        "MA",
        ("accuracy",),
        "a multimodal discriminative factor predicts better than modality-specific ones",
    ),
    ("MC", "MA", ("accuracy",), "adding the generative objective improves prediction"),
    ("ME", "MB", ("accuracy",), "adding the generative objective improves prediction"),
    (
        "ME",
        "MD",
        ("accuracy", "reconstruction"),
        "factorising into discriminative and generative factors improves prediction and reconstruction",
    ),
    (
        "MFM",
        "ME",
        ("accuracy", "reconstruction"),
        "modality-specific generative factors are better than one multimodal generative factor",
    ),
)
#: lower is better for these metrics (higher for the others)
LOWER_IS_BETTER = ("reconstruction",)
#: how reconstruction is measured
MEASURE = (
    "mean squared error per pixel between the decoder's mean and the test image (grey levels / colour "
    "values in [0, 1]; for the Bernoulli image `m` the decoder's probabilities), averaged over the test "
    "examples; lower is better"
)
#: the label added to the data
LABEL = "y"
#: the data modalities of the paired-digit experiments (MNIST-like and SVHN-like images)
PAIRED = ("m", "s")
#: the paper's names of the modalities
PAPER_NAMES = {"m": "MNIST", "s": "SVHN"}


def settings(ctx: ExperimentContext) -> dict[str, Any]:
    """The experiment's settings. ``full``: 2x256 networks and 30 epochs per image run, about 33
    minutes on one core (a trial with one torch thread: 1,790 s of training for the eleven runs, MFM
    351 s, 136 s for the two classifiers, 23 s of measures and figures; ``benchmarks/mfm.md``);
    ``quick``: the bundled 8x8 digits, about 3 minutes; ``smoke``: seconds."""
    return {
        "dataset": ctx.dataset_or("trimodal-mnist", "trimodal-digits", "trimodal-digits"),
        "modalities": list(PAIRED),
        "label": LABEL,
        "epochs": ctx.pick(30, 20, 1),
        "batch_size": ctx.pick(100, 64, 64),
        "z_dim": ctx.pick(16, 16, 4),
        "style_dim": ctx.pick(16, 16, 4),
        "hidden": ctx.pick([256, 256], [128, 128], [32]),
        "lr": ctx.pick(1e-3, 2e-3, 1e-3),
        "likelihood_weights": "per-dimension",
        "label_weight": 1.0,
        "mmd_weight": 1.0,
        "decoder_scale": 0.75,
        "train_examples": ctx.pick(None, None, 256),
        "test_examples": ctx.pick(None, None, 64),
        "classifier_epochs": ctx.pick(10, 10, 1),
        "classifier_examples": ctx.pick(None, None, 256),
        "n_test": ctx.pick(2000, 359, 64),
        "batch_eval": 500,
        "grid_examples": ctx.pick(8, 8, 4),
        "sequence_dataset": "multimodal-sequences",
        "sequence_epochs": ctx.pick(20, 10, 1),
        "sequence_hidden": ctx.pick([64], [32], [8]),
        "sequence_z_dim": ctx.pick(8, 8, 2),
        "sequence_train_examples": ctx.pick(None, None, 128),
        "sequence_test_examples": ctx.pick(None, None, 64),
        "n_sequences": ctx.pick(500, 200, 32),
    }


# ---------------------------------------------------------------------- training
def model_options(s: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The options every image run of ``mfm`` shares (factor sizes, networks, optimiser, decoders'
    scale, the weights of eq. 4) plus ``extra`` (e.g. an ablation's factors)."""
    return {
        "z_dim": s["z_dim"],
        "style_dim": s["style_dim"],
        "hidden": list(s["hidden"]),
        "lr": s["lr"],
        "decoder_scale": s["decoder_scale"],
        "likelihood_weights": s["likelihood_weights"],
        "label_weight": s["label_weight"],
        "mmd_weight": s["mmd_weight"],
        **extra,
    }


def sequence_options(s: Mapping[str, Any]) -> dict[str, Any]:
    """The options of MFM with LSTM networks on the sequences (the same weights of eq. 4)."""
    return {
        "arch": "lstm",
        "z_dim": s["sequence_z_dim"],
        "style_dim": s["sequence_z_dim"],
        "hidden": list(s["sequence_hidden"]),
        "lr": s["lr"],
        "likelihood_weights": s["likelihood_weights"],
        "label_weight": s["label_weight"],
        "mmd_weight": s["mmd_weight"],
    }


def fit(
    ctx: ExperimentContext,
    s: Mapping[str, Any],
    key: str,
    registered: str,
    dataset: str,
    options: Mapping[str, Any],
    modalities: Sequence[str] | None = None,
    sequences: bool = False,
) -> ZooModel:
    """Train (or load) the run ``OUT/runs/key`` of ``registered`` on ``dataset`` (only its
    ``modalities`` when given) with ``options``."""
    prefix = "sequence_" if sequences else ""
    return ctx.fit(
        key,
        registered,
        dataset,
        epochs=s[f"{prefix}epochs"],
        batch_size=s["batch_size"],
        train_examples=s[f"{prefix}train_examples"],
        test_examples=s[f"{prefix}test_examples"],
        modalities=None if modalities is None else list(modalities),
        options=dict(options),
    )


def train_models(ctx: ExperimentContext, s: Mapping[str, Any]) -> dict[str, ZooModel]:
    """Every run, by label: the ablation variants (``MA`` .. ``MFM``, reading ``m`` and ``s`` of the
    dataset; the run code adds the label ``y``), the purely discriminative network on each single
    modality (``MB[m]``, ``MB[s]``), the translation baselines (``translation[s->m]``,
    ``translation[m->s]``) and MFM with LSTM networks on the sequences (``MFM-lstm``). Each run has
    its own directory ``OUT/runs/KEY`` (a finished run is loaded)."""
    names = list(s["modalities"])
    models: dict[str, ZooModel] = {}
    for label, options in VARIANTS.items():
        models[label] = fit(ctx, s, label, "mfm", s["dataset"], model_options(s, **options), names)
    for m in names:
        options = model_options(s, **VARIANTS["MB"])
        models[f"MB[{m}]"] = fit(ctx, s, f"MB-{m}", "mfm", s["dataset"], options, [m])
    for target in names:
        observed = [m for m in names if m != target]
        options = {
            "observed": observed,
            "target": target,
            "z_dim": s["z_dim"],
            "hidden": list(s["hidden"]),
            "lr": s["lr"],
            "decoder_scale": s["decoder_scale"],
        }
        key = f"translation[{','.join(observed)}->{target}]"
        run = f"translation-{'-'.join(observed)}-to-{target}"
        models[key] = fit(ctx, s, run, "translation", s["dataset"], options, names)
    models["MFM-lstm"] = fit(
        ctx, s, "MFM-lstm", "mfm", s["sequence_dataset"], sequence_options(s), sequences=True
    )
    return models


# ---------------------------------------------------------------------- measurements
def _batches(
    data: MultimodalDataset, n: int, size: int
) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    n = min(n, len(data))
    out = []
    for start in range(0, n, size):
        stop = min(start + size, n)
        batch = {k: v[start:stop] for k, v in data.tensors.items()}
        out.append((batch, data.labels[start:stop]))
    return out


@torch.no_grad()
def accuracy(
    model: ZooModel, data: MultimodalDataset, given: Sequence[str], n: int, size: int = 500
) -> float:
    """Test accuracy of the label predicted from the modalities ``given`` (the class of highest
    probability of ``p(y | f_y)``; a proper subset goes through the model's surrogate inference)."""
    if data.labels is None:
        raise ValueError(f"{data.name!r} has no labels to measure an accuracy with")
    label = getattr(model, "label", LABEL)
    correct, total = 0, 0
    for batch, labels in _batches(data, n, size):
        probs = model.generate(batch, given=list(given), targets=[label], sample_latent=False)[label]
        correct += int((probs.argmax(-1).cpu() == labels).sum())
        total += len(labels)
    return correct / total


@torch.no_grad()
def reconstruction_error(
    model: ZooModel,
    inputs: MultimodalDataset,
    targets: MultimodalDataset,
    given: Sequence[str],
    target: str,
    n: int,
    size: int = 500,
) -> float:
    """:data:`MEASURE` of ``target`` generated from ``given`` (``inputs``: the data the model reads;
    ``targets``: the same examples as grey levels)."""
    total, count = 0.0, 0
    for (batch, _), (truth, _) in zip(_batches(inputs, n, size), _batches(targets, n, size), strict=True):
        mean = model.generate(batch, given=list(given), targets=[target], sample_latent=False)[target]
        error = (mean.cpu().float() - truth[target].float()) ** 2
        total += float(error.reshape(len(error), -1).mean(1).sum())
        count += len(error)
    return total / count


def mean_image_error(train: MultimodalDataset, test: MultimodalDataset, target: str, n: int) -> float:
    """:data:`MEASURE` of the training mean image used as the prediction of every test example."""
    mean = train.tensors[target].float().mean(0, keepdim=True)
    truth = test.tensors[target][:n].float()
    return float(((truth - mean) ** 2).reshape(len(truth), -1).mean(1).mean())


def has_decoders(model: ZooModel) -> bool:
    """Whether the model generates its data modalities (every variant but MA and MB)."""
    return model.config.get("generative_factor", "per-modality") != "none"


def variant_row(
    model: ZooModel,
    inputs: MultimodalDataset,
    targets: MultimodalDataset,
    names: Sequence[str],
    n: int,
    size: int,
    errors: dict[str, str],
) -> dict[str, float | None]:
    """One model's accuracy from every modality (``accuracy``), from each alone (``accuracy[m]``,
    through surrogate inference), and its reconstruction error of each modality from every modality
    (``reconstruction[m]``) and their mean (``reconstruction``); None where not measured (the reason
    in ``errors``)."""
    row: dict[str, float | None] = {"accuracy": accuracy(model, inputs, names, n, size)}
    for m in names:
        try:
            row[f"accuracy[{m}]"] = accuracy(model, inputs, [m], n, size)
        except (ValueError, KeyError, NotImplementedError) as error:
            row[f"accuracy[{m}]"] = None
            errors[f"accuracy[{m}]"] = f"{type(error).__name__}: {error}"
    if has_decoders(model):
        for m in names:
            row[f"reconstruction[{m}]"] = reconstruction_error(model, inputs, targets, names, m, n, size)
        row["reconstruction"] = _mean([row[f"reconstruction[{m}]"] for m in names])
    else:
        row.update({f"reconstruction[{m}]": None for m in names})
        row["reconstruction"] = None
        errors["reconstruction"] = NO_RECONSTRUCTION
    return row


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [float(v) for v in values if _finite(v)]
    return sum(finite) / len(finite) if finite else None


def _finite(value: Any) -> bool:
    try:
        return value is not None and not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def one_per_class(labels: torch.Tensor, classes: int, start: int = 0) -> list[int]:
    """The index of the first example of each class at or after ``start`` (classes in order;
    a class without such an example is left out)."""
    out = []
    for c in range(classes):
        found = (labels[start:] == c).nonzero()
        if len(found):
            out.append(start + int(found[0]))
    return out


@torch.no_grad()
def swap_measure(
    model: ZooModel,
    data: MultimodalDataset,
    classifiers: Mapping[str, Any],
    names: Sequence[str],
    n: int,
    size: int = 500,
) -> dict[str, dict[str, float]]:
    """Factor swapping made quantitative: for each modality, the first ``n`` test examples' style
    factors ``z_a^m`` are decoded with the label factor of ``n`` other test examples (example ``i``
    with ``(i + 1) mod n``'s label factor); the zoo's classifier of the modality names the digit of
    each generated image. ``label``: the fraction showing the label source's class; ``style``: the
    fraction showing the style source's class (pairs of different classes only); ``pairs``: how
    many such pairs; ``chance``: one over the number of classes."""
    n = min(n, len(data))
    order = torch.arange(n)
    partner = (order + 1) % n
    labels = data.labels[:n]
    differ = labels != labels[partner]
    out: dict[str, dict[str, float]] = {}
    for m in names:
        predicted = []
        for start in range(0, n, size):  # in batches: memory grows with the batch, not with n
            index = order[start : start + size]
            styles = {k: data.tensors[k][index] for k in names}
            labels_from = {k: data.tensors[k][partner[index]] for k in names}
            swapped = swapped_pairs(model, styles, labels_from, m)
            predicted.append(classifiers[m].predict(swapped).cpu())
        predicted = torch.cat(predicted)
        out[m] = {
            "label": float((predicted[differ] == labels[partner][differ]).float().mean())
            if differ.any()
            else math.nan,
            "style": float((predicted[differ] == labels[differ]).float().mean())
            if differ.any()
            else math.nan,
            "pairs": int(differ.sum()),
            "chance": 1.0 / len(data.classes) if data.classes else math.nan,
        }
    return out


# ---------------------------------------------------------------------- findings, from the numbers
def _number(value: Any) -> str:
    return "-" if not _finite(value) else f"{float(value):.4g}"


def compare_metric(better: Any, worse: Any, lower_is_better: bool) -> bool | None:
    """Whether ``better`` is strictly better than ``worse`` (None when either is not measured; a tie
    is not better)."""
    if not (_finite(better) and _finite(worse)):
        return None
    return float(better) < float(worse) if lower_is_better else float(better) > float(worse)


def status(holds: Sequence[bool | None]) -> str:
    """``holds`` (every measured comparison holds), ``does not hold`` (none), ``holds in part``, or
    ``not measured``."""
    measured = [h for h in holds if h is not None]
    if not measured:
        return "not measured"
    if all(measured):
        return "holds"
    return "does not hold" if not any(measured) else "holds in part"


def ordering_findings(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each of the paper's orderings (:data:`ORDERINGS`) on the measured ``rows`` (variant ->
    ``accuracy`` (higher is better), ``reconstruction`` (lower is better; None without decoders)):
    per metric the two values and whether the paper's order holds, the ordering's status and its
    sentence."""
    out: dict[str, dict[str, Any]] = {}
    for better, worse, metrics, meaning in ORDERINGS:
        compared: dict[str, dict[str, Any]] = {}
        for metric in metrics:
            a, b = rows.get(better, {}).get(metric), rows.get(worse, {}).get(metric)
            compared[metric] = {
                better: a if _finite(a) else None,
                worse: b if _finite(b) else None,
                "holds": compare_metric(a, b, metric in LOWER_IS_BETTER),
            }
        found = status([c["holds"] for c in compared.values()])
        parts = []
        for metric, c in compared.items():
            direction = "lower" if metric in LOWER_IS_BETTER else "higher"
            verdict = {True: "as in the paper", False: "not as in the paper", None: "not measured"}[
                c["holds"]
            ]
            parts.append(
                f"{metric} ({direction} is better) {_number(c[better])} for {better} vs {_number(c[worse])} "
                f"for {worse}: {verdict}"
            )
        sentence = f"{better} > {worse} (the paper: {meaning}): **{found}** here; " + "; ".join(parts) + "."
        out[f"{better} > {worse}"] = {
            "better": better,
            "worse": worse,
            "metrics": compared,
            "status": found,
            "sentence": sentence,
        }
    return out


def paired_findings(
    table: Mapping[str, Mapping[str, Any]], names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The paper's two readings of its SVHN+MNIST classification, on ``table`` (model -> ``MM`` and ``UM[m]``
    accuracies): multimodal accuracy above each unimodal one, for each model; MFM above the purely
    discriminative network on each column."""
    out: dict[str, dict[str, Any]] = {}
    for model, row in table.items():
        holds = [compare_metric(row.get("MM"), row.get(f"UM[{m}]"), False) for m in names]
        found = status(holds)
        values = ", ".join(f"UM[{m}] {_number(row.get(f'UM[{m}]'))}" for m in names)
        out[f"MM > UM ({model})"] = {
            "status": found,
            "holds": holds,
            "sentence": (
                f"Multimodal above unimodal accuracy for {model} (the paper: more modalities, better "
                f"prediction): **{found}**; MM {_number(row.get('MM'))} against {values}."
            ),
        }
    if "MFM" in table and "discriminative" in table:
        columns = ["MM", *(f"UM[{m}]" for m in names)]
        holds = [compare_metric(table["MFM"].get(c), table["discriminative"].get(c), False) for c in columns]
        found = status(holds)
        values = "; ".join(
            f"{c} {_number(table['MFM'].get(c))} vs {_number(table['discriminative'].get(c))}"
            for c in columns
        )
        out["MFM > discriminative"] = {
            "status": found,
            "holds": dict(zip(columns, holds, strict=True)),
            "sentence": (
                "MFM above the purely discriminative network of the same size (the paper: the "
                f"factorisation helps the discriminative factor): **{found}**; MFM vs discriminative: "
                f"{values}."
            ),
        }
    return out


def swap_findings(swap: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """Whether the label factor carries the digit in the swapped generations (in the paper's, the
    label factor sets the digit, the style factor the rest): per modality, the generated digit
    follows the label source more often than the style source and than chance."""
    out: dict[str, dict[str, Any]] = {}
    for m, v in swap.items():
        holds = [
            compare_metric(v.get("label"), v.get("style"), False),
            compare_metric(v.get("label"), v.get("chance"), False),
        ]
        found = status(holds)
        out[m] = {
            "status": found,
            "sentence": (
                f"`{m}` decoded from the label factor of one example and the style factor of another "
                f"({v.get('pairs', 0)} pairs of different digits): the zoo's classifier sees the label "
                f"source's digit in {_number(v.get('label'))} of them and the style source's in "
                f"{_number(v.get('style'))} (chance {_number(v.get('chance'))}); the label factor carries "
                f"the digit: **{found}**."
            ),
        }
    return out


def missing_findings(
    rows: Mapping[str, Mapping[str, Any]], full_accuracy: float | None
) -> dict[str, dict[str, Any]]:
    """Per missing modality (``rows[m]``: ``accuracy`` (MFM, surrogate inference), ``discriminative``
    (the MB of the observed modalities), ``reconstruction`` (MFM), ``translation``, ``mean image``):
    whether MFM reconstructs better than the translation baseline and the mean image, and predicts
    at least as well as the discriminative baseline; ``most costly``: the modality whose absence
    lowers MFM's accuracy most from ``full_accuracy`` (every modality observed)."""
    out: dict[str, dict[str, Any]] = {}
    for m, row in rows.items():
        checks = {
            "reconstruction below the translation baseline": compare_metric(
                row.get("reconstruction"), row.get("translation"), True
            ),
            "reconstruction below the mean image": compare_metric(
                row.get("reconstruction"), row.get("mean image"), True
            ),
            "accuracy at least the discriminative baseline's": None
            if not (_finite(row.get("accuracy")) and _finite(row.get("discriminative")))
            else float(row["accuracy"]) >= float(row["discriminative"]),
        }
        found = status(list(checks.values()))
        listing = "; ".join(
            f"{name}: {({True: 'yes', False: 'no', None: 'not measured'})[holds]}"
            for name, holds in checks.items()
        )
        out[m] = {
            "status": found,
            "checks": checks,
            "sentence": (
                f"`{m}` missing: MFM's surrogate inference reconstructs it with error "
                f"{_number(row.get('reconstruction'))} (translation {_number(row.get('translation'))}, mean "
                f"image {_number(row.get('mean image'))}) and predicts the label with accuracy "
                f"{_number(row.get('accuracy'))} (discriminative {_number(row.get('discriminative'))}): "
                f"{listing}; **{found}**."
            ),
        }
    drops = {
        m: float(full_accuracy) - float(row["accuracy"])
        for m, row in rows.items()
        if _finite(full_accuracy) and _finite(row.get("accuracy"))
    }
    if drops:
        worst = max(drops, key=lambda m: drops[m])
        tied = [m for m, d in drops.items() if d == drops[worst]]
        worst_text = (
            f"`{worst}`"
            if len(tied) == 1
            else "none above the others (" + ", ".join(f"`{m}`" for m in tied) + " tie)"
        )
        out["most costly"] = {
            "modality": worst if len(tied) == 1 else None,
            "drops": drops,
            "sentence": (
                f"The missing modality that costs MFM most accuracy: {worst_text} (from "
                f"{_number(full_accuracy)} with every modality: "
                + ", ".join(f"`{m}` missing: {_number(d)} lower" for m, d in drops.items())
                + ")."
            ),
        }
    return out


def most(values: Mapping[str, Any]) -> str | None:
    """The key of the largest finite value (None when none is finite)."""
    finite = {k: float(v) for k, v in values.items() if _finite(v)}
    return max(finite, key=lambda k: finite[k]) if finite else None


def interpretation_findings(
    ratios: Mapping[str, Any],
    contributions: Mapping[str, Any],
    informative: str | None,
    over_time: Mapping[str, Sequence[float]] | None = None,
    label_steps: Sequence[bool] | None = None,
) -> dict[str, dict[str, Any]]:
    """Whether each interpretation method names the modality made most informative by construction:
    ``ratios`` (modality -> information-based ratio) and ``contributions`` (modality -> mean
    gradient-based contribution over time). With ``over_time`` (modality -> contribution per step)
    and ``label_steps`` (the steps where the label acts, by construction): ``timing``, whether the
    label factor's contribution to each modality is larger on those steps than on the others."""
    out: dict[str, dict[str, Any]] = {}
    for method, values in (
        ("information-based ratio", ratios),
        ("gradient-based contribution", contributions),
    ):
        top = most(values)
        found = None if top is None or informative is None else top == informative
        verdict = {True: "found", False: "not found", None: "not measured"}[found]
        ranked = sorted(values.items(), key=lambda kv: -_sortable(kv[1]))
        out[method] = {
            "top": top,
            "informative": informative,
            "found": found,
            "sentence": (
                f"The {method} ranks "
                + ", ".join(f"`{k}` {_number(v)}" for k, v in ranked)
                + f"; its most informative modality `{top}`, by construction `{informative}`: **{verdict}**."
            ),
        }
    if over_time and label_steps is not None and any(label_steps) and not all(label_steps):
        means: dict[str, tuple[float, float]] = {}
        for m, series in over_time.items():
            on = [float(v) for v, flag in zip(series, label_steps, strict=True) if flag]
            off = [float(v) for v, flag in zip(series, label_steps, strict=True) if not flag]
            means[m] = (sum(on) / len(on), sum(off) / len(off))
        holds = [compare_metric(a, b, False) for a, b in means.values()]
        found = status(holds)
        acting = sum(map(bool, label_steps))
        out["timing"] = {
            "means": {m: {"label steps": a, "other steps": b} for m, (a, b) in means.items()},
            "status": found,
            "sentence": (
                f"The label factor's gradient-based contribution is larger on the {acting} steps where the "
                f"label acts (by construction) than on the other {len(label_steps) - acting}: **{found}**; "
                + ", ".join(f"`{m}` {_number(a)} vs {_number(b)}" for m, (a, b) in means.items())
                + "."
            ),
        }
    return out


def _sortable(value: Any) -> float:
    return float(value) if _finite(value) else -math.inf


def findings_from_results(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every finding of the experiment recomputed from the numbers of ``results`` (``results.json``),
    keyed ``part: name`` in the report's order: the paired-digit readings (:func:`paired_findings`,
    :func:`swap_findings`), the paper's orderings (:func:`ordering_findings`), the missing
    modalities (:func:`missing_findings`) and the interpretation (:func:`interpretation_findings`)."""
    names = results["modalities"]
    paired, rows = results["paired"], results["ablation"]["rows"]
    sequences = results["sequences"]
    parts = {
        "paired": paired_findings(paired["table"], names),
        "swap": swap_findings(paired["swap"]),
        "ablation": ordering_findings(rows),
        "missing": missing_findings(results["missing"]["rows"], rows.get("MFM", {}).get("accuracy")),
        "sequences": interpretation_findings(
            sequences["ratios"],
            sequences["contributions"],
            sequences["informative"],
            sequences.get("contributions_over_time"),
            sequences.get("label_steps"),
        ),
    }
    return {f"{part}: {key}": found for part, found in parts.items() for key, found in found.items()}


# ---------------------------------------------------------------------- report
def ablation_table(rows: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> str:
    header = [
        "model",
        "what it is",
        "accuracy (MM)",
        *(f"accuracy ({m} alone)" for m in names),
        *(f"reconstruction {m}" for m in names),
        "reconstruction (mean)",
    ]
    body = []
    for label, row in rows.items():
        body.append(
            [
                label,
                VARIANT_TEXT.get(label, "-"),
                row.get("accuracy"),
                *(row.get(f"accuracy[{m}]") for m in names),
                *(row.get(f"reconstruction[{m}]") for m in names),
                row.get("reconstruction"),
            ]
        )
    return markdown_table(header, body, digits=4)


def paired_table(table: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> str:
    header = [
        "model",
        *(f"UM: {m} ({PAPER_NAMES.get(m, m)}) alone" for m in names),
        "MM: " + " + ".join(names),
    ]
    body = [[label, *(row.get(f"UM[{m}]") for m in names), row.get("MM")] for label, row in table.items()]
    return markdown_table(header, body, digits=4)


def missing_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    header = [
        "missing",
        "observed",
        "accuracy: MFM (surrogate)",
        "accuracy: discriminative",
        "reconstruction: MFM (surrogate)",
        "reconstruction: translation",
        "reconstruction: mean image",
    ]
    body = [
        [
            m,
            row["observed"],
            row.get("accuracy"),
            row.get("discriminative"),
            row.get("reconstruction"),
            row.get("translation"),
            row.get("mean image"),
        ]
        for m, row in rows.items()
    ]
    return markdown_table(header, body, digits=4)


def render_report(results: Mapping[str, Any]) -> str:
    """``report.md`` from ``results``."""
    s, figures, names = results["settings"], results["figures"], results["modalities"]
    paired, ablation, missing, sequences = (
        results["paired"],
        results["ablation"],
        results["missing"],
        results["sequences"],
    )
    swap_links = "\n\n".join(
        image(f"{m}: fix z_a^{m}, vary the label factor", figures.get(f"swap_label_{m}"))
        + "\n\n"
        + image(f"{m}: fix the label factor, vary z_a^{m}", figures.get(f"swap_style_{m}"))
        for m in names
    )
    findings = [f["sentence"] for f in findings_from_results(results).values()]
    no_recon = [label for label, row in ablation["rows"].items() if row.get("reconstruction") is None]
    return "\n\n".join(
        [
            "# MFM: factorised multimodal representations (Tsai et al., ICLR 2019)",
            f"Dataset `{s['dataset']}`, modalities "
            + ", ".join(f"`{m}` ({PAPER_NAMES.get(m, m)}-like)" for m in names)
            + f" and the digit as the label `{s['label']}`: the paper's paired SVHN+MNIST experiment. "
            "Zoo classifiers' accuracy on real test images (they judge the swapped generations): "
            + ", ".join(f"{m} {a:.3f}" for m, a in results["classifier_accuracy"].items())
            + f". Reconstruction error: {MEASURE}.",
            "## 1. Paired digits: unimodal and multimodal classification\n\n"
            "Test accuracy from each modality alone (UM; MFM through surrogate inference, the discriminative "
            "network trained on that modality alone) and from both (MM), against the purely discriminative "
            "network of the same size (the ablation MB).\n\n"
            + paired_table(paired["table"], names)
            + "\n\n"
            + image("accuracy per model", figures.get("accuracy"))
            + "\n\nMFM's reconstruction error from both modalities: "
            + ", ".join(f"`{m}` {_number(v)}" for m, v in paired["reconstruction"].items())
            + ".\n\n"
            + image("MFM's reconstructions", figures.get("reconstructions"))
            + "\n\n### Factor swapping\n\n"
            "Each grid decodes one modality from the label factor of one test example and the "
            "modality-specific factor of another.\n\n" + swap_links,
            "## 2. Ablations\n\nThe same data, networks and budget for every model.\n\n"
            + ablation_table(ablation["rows"], names)
            + (f"\n\n{', '.join(no_recon)}: reconstruction `-`: {NO_RECONSTRUCTION}." if no_recon else "")
            + "\n\n"
            + image("ablation: accuracy and reconstruction", figures.get("ablation"))
            + "\n\nThe paper's orderings, here:\n\n"
            + "\n".join(f"- {f['sentence']}" for f in ablation["orderings"].values()),
            "## 3. Missing modalities\n\nEach modality missing in turn, observed the other: MFM's "
            "surrogate inference against the translation baseline (observed -> missing, trained on the "
            "reconstruction only), the purely discriminative network of the observed modality and the "
            "training mean image.\n\n"
            + missing_table(missing["rows"])
            + "\n\n"
            + "\n\n".join(image(f"{m} missing", figures.get(f"missing_{m}")) for m in missing["rows"]),
            "## 4. Time series and interpretation\n\n"
            f"MFM with LSTM encoders and decoders on `{sequences['dataset']}` (modalities "
            + ", ".join(f"`{m}`" for m in sequences["modalities"])
            + f"; most informative about the label by construction: `{sequences['informative']}`). "
            f"Test accuracy from every modality: {_number(sequences['accuracy'])}"
            + (
                "; from each alone: "
                + ", ".join(f"`{m}` {_number(v)}" for m, v in sequences.get("unimodal", {}).items())
                if sequences.get("unimodal")
                else ""
            )
            + ".\n\n"
            + markdown_table(
                ["modality", "information-based ratio", "gradient-based contribution (mean over time)"],
                [
                    [m, sequences["ratios"].get(m), sequences["contributions"].get(m)]
                    for m in sequences["modalities"]
                ],
                digits=4,
            )
            + "\n\nThe gradient-based contribution is taken with respect to `f_y` whitened over the "
            "test sequences (`gradient_contributions`' default), so that directions `f_y` never takes "
            "do not count.\n\n" + image("contributions over time", figures.get("contributions")),
            "## Findings\n\n" + "\n".join(f"- {f}" for f in findings),
            details(
                "Errors and measures not taken",
                "\n".join(f"- {k}: {v}" for k, v in results["errors"].items()) or "none",
            ),
            "## Settings\n\n" + "\n".join(f"- {k}: {v}" for k, v in s.items()),
        ]
    )


def accuracy_figure(results: Mapping[str, Any]) -> Any:
    table = results["paired"]["table"]
    return plots.metric_bars(
        {label: {k: (math.nan if v is None else v) for k, v in row.items()} for label, row in table.items()},
        ncols=3,
        title="Test accuracy: unimodal (UM) and multimodal (MM)",
    )


def ablation_figure(results: Mapping[str, Any]) -> Any:
    names = results["modalities"]
    rows = results["ablation"]["rows"]
    metrics = ["accuracy", *(f"accuracy[{m}]" for m in names), "reconstruction"]
    return plots.metric_bars(
        {
            label: {k: (math.nan if row.get(k) is None else row[k]) for k in metrics}
            for label, row in rows.items()
        },
        metrics=metrics,
        lower_is_better=["reconstruction"],
        ncols=2,
        digits=4,
        title="Ablations: test accuracy and reconstruction error",
    )


# ---------------------------------------------------------------------- the experiment
def load_data(ctx: ExperimentContext, s: Mapping[str, Any]) -> dict[str, MultimodalDataset]:
    """The image data: ``train`` (grey levels, for the mean image and the classifiers), ``test`` (what
    the models read: Bernoulli images binarised once with the seed), ``truth`` (the same test
    examples as grey levels, the targets of the reconstruction error)."""
    return {
        "train": ctx.load(s["dataset"], "train", binarize="none"),
        "test": ctx.load(s["dataset"], "test", binarize="fixed"),
        "truth": ctx.load(s["dataset"], "test", binarize="none"),
    }


def classifiers_for(
    ctx: ExperimentContext, s: Mapping[str, Any], train: MultimodalDataset, test: MultimodalDataset
) -> tuple[dict[str, Any], dict[str, float]]:
    """The zoo's classifiers of ``m`` and ``s`` (trained once, cached under ``OUT/classifiers``) and
    their test accuracy."""
    data = train if s["classifier_examples"] is None else train.subset(slice(0, s["classifier_examples"]))
    classifiers = train_modality_classifiers(
        data,
        cache_dir=ctx.out / "classifiers",
        epochs=s["classifier_epochs"],
        seed=ctx.seed,
        modalities=s["modalities"],
    )
    shown = test.subset(slice(0, min(s["n_test"], len(test))))
    return classifiers, {m: c.accuracy(shown) for m, c in classifiers.items()}


def measure_sequences(
    ctx: ExperimentContext, s: Mapping[str, Any], model: ZooModel, errors: dict[str, str]
) -> dict[str, Any]:
    """Part 4: the LSTM MFM's accuracy, the information-based ratios and the gradient-based
    contributions, and whether each finds the modality most informative by construction."""
    from pixyz_zoo.evaluation.interpretation import gradient_contributions, information_ratios

    data = ctx.load(s["sequence_dataset"], "test")
    data = data.subset(slice(0, min(s["n_sequences"], len(data))))
    names = list(model.data_modalities)
    informative = getattr(data, "informative_modality", None)
    out: dict[str, Any] = {
        "dataset": s["sequence_dataset"],
        "modalities": names,
        "informative": informative,
        "accuracy": accuracy(model, data, names, len(data)),
        "unimodal": {},
    }
    for m in names:
        try:
            out["unimodal"][m] = accuracy(model, data, [m], len(data))
        except (ValueError, KeyError, NotImplementedError) as error:
            errors[f"sequences accuracy[{m}]"] = f"{type(error).__name__}: {error}"
    ratios = information_ratios(model, data)
    over_time = gradient_contributions(model, {k: v for k, v in data.tensors.items()})
    series = {m: [float(x) for x in torch.as_tensor(v).reshape(-1)] for m, v in over_time.items()}
    out["ratios"] = {m: float(v) for m, v in ratios.items()}
    out["contributions_over_time"] = series
    out["contributions"] = {m: sum(v) / len(v) for m, v in series.items()}
    steps = getattr(data, "label_steps", None)
    out["label_steps"] = None if steps is None else [bool(v) for v in torch.as_tensor(steps).reshape(-1)]
    out["findings"] = interpretation_findings(
        out["ratios"], out["contributions"], informative, series, out["label_steps"]
    )
    return out


@register_experiment(
    "mfm",
    "MFM (Tsai et al. 2019): UM/MM accuracy against a discriminative network, factor swapping, the "
    "ablations MA..ME, missing modalities against translation and discriminative baselines, an LSTM "
    "variant on sequences with the information- and gradient-based interpretation",
    datasets=TRIMODAL_DATASETS,
)
def reproduce_mfm(ctx: ExperimentContext) -> dict[str, Any]:
    s = settings(ctx)
    ctx.log(f"settings: {s}")
    data = load_data(ctx, s)
    train, test, truth = data["train"], data["test"], data["truth"]
    names = list(s["modalities"])
    classifiers, classifier_accuracy = classifiers_for(ctx, s, train, test)
    ctx.log(f"classifiers' test accuracy: {classifier_accuracy}")
    models = train_models(ctx, s)
    n, size = s["n_test"], s["batch_eval"]
    errors: dict[str, str] = {}

    # 2. the ablations (1. reads MFM's and MB's rows)
    rows: dict[str, dict[str, Any]] = {}
    for label in VARIANTS:
        ctx.log(f"measuring {label}")
        own: dict[str, str] = {}
        rows[label] = variant_row(models[label], test, truth, names, n, size, own)
        errors.update({f"{label} {k}": v for k, v in own.items()})
    # 1. paired digits
    mfm = models["MFM"]
    table = {
        "MFM": {
            **{f"UM[{m}]": rows["MFM"].get(f"accuracy[{m}]") for m in names},
            "MM": rows["MFM"]["accuracy"],
        },
        "discriminative": {
            **{f"UM[{m}]": accuracy(models[f"MB[{m}]"], test, [m], n, size) for m in names},
            "MM": rows["MB"]["accuracy"],
        },
    }
    swap = swap_measure(mfm, test, classifiers, names, n, size)
    # 3. missing modalities
    missing: dict[str, dict[str, Any]] = {}
    for target in names:
        observed = [m for m in names if m != target]
        translation = models[f"translation[{','.join(observed)}->{target}]"]
        missing[target] = {
            "observed": ",".join(observed),
            "accuracy": rows["MFM"].get(f"accuracy[{observed[0]}]")
            if len(observed) == 1
            else accuracy(mfm, test, observed, n, size),
            "discriminative": table["discriminative"].get(f"UM[{observed[0]}]")
            if len(observed) == 1
            else None,
            "reconstruction": reconstruction_error(mfm, test, truth, observed, target, n, size),
            "translation": reconstruction_error(translation, test, truth, observed, target, n, size),
            "mean image": mean_image_error(train, truth, target, n),
        }
    # 4. sequences
    ctx.log("measuring the LSTM variant on the sequences")
    sequences = measure_sequences(ctx, s, models["MFM-lstm"], errors)

    results: dict[str, Any] = {
        "settings": s,
        "modalities": names,
        "measure": MEASURE,
        "classifier_accuracy": classifier_accuracy,
        "paired": {
            "table": table,
            "reconstruction": {m: rows["MFM"][f"reconstruction[{m}]"] for m in names},
            "swap": swap,
            "findings": paired_findings(table, names),
            "swap_findings": swap_findings(swap),
        },
        "ablation": {"rows": rows, "orderings": ordering_findings(rows)},
        "missing": {"rows": missing, "findings": missing_findings(missing, rows["MFM"]["accuracy"])},
        "sequences": sequences,
        "errors": errors,
    }
    for section in ("paired", "ablation", "missing"):
        for key in ("findings", "swap_findings", "orderings"):
            for found in results[section].get(key, {}).values():
                ctx.log(found["sentence"])

    # figures
    k = s["grid_examples"]
    figures: dict[str, str | None] = {
        "accuracy": ctx.draw("accuracy", lambda: accuracy_figure(results)),
        "ablation": ctx.draw("ablation", lambda: ablation_figure(results)),
        "reconstructions": ctx.draw(
            "reconstructions",
            lambda: plots.cross_modal_grid(
                mfm,
                test.first(k),
                names,
                targets=names,
                n=k,
                sample_latent=False,
                title="MFM: reconstructions from both modalities",
            ),
        ),
    }
    classes = len(test.classes) if test.classes else 10
    label_sources = one_per_class(test.labels, classes)
    style_sources = list(range(k))
    batch = {m: test.tensors[m] for m in names}
    pick = lambda index: {key: v[torch.as_tensor(index)] for key, v in batch.items()}  # noqa: E731
    for m in names:
        figures[f"swap_label_{m}"] = ctx.draw(
            f"swap_label_{m}",
            lambda m=m: plots.factor_swap_grid(
                mfm, pick(style_sources), pick(label_sources), m, vary="label"
            ),
        )
        figures[f"swap_style_{m}"] = ctx.draw(
            f"swap_style_{m}",
            lambda m=m: plots.factor_swap_grid(
                mfm, pick(list(range(k, 2 * k))), pick(label_sources), m, vary="style"
            ),
        )
    mean_images = {m: train.tensors[m].float().mean(0) for m in names}
    for target in names:
        observed = [m for m in names if m != target]
        translation = models[f"translation[{','.join(observed)}->{target}]"]
        figures[f"missing_{target}"] = ctx.draw(
            f"missing_{target}",
            lambda target=target, observed=observed, translation=translation: plots.missing_modality_grid(
                {"MFM (surrogate)": mfm, "translation": translation},
                test.first(k),
                observed,
                target,
                references={"mean image": mean_images[target]},
                n=k,
            ),
        )
    figures["contributions"] = ctx.draw(
        "contributions",
        lambda: plots.gradient_contributions_figure(
            sequences["contributions_over_time"],
            sequences["ratios"],
            sequences["informative"],
            highlight=sequences["label_steps"],
            ylabel="||d x_hat_m[t] / d f_y||, f_y whitened",
        ),
    )
    results["figures"] = figures
    return ctx.finish(render_report(results), results)
