"""Disentanglement metrics on data with known ground-truth factors, for any representation.

A *representation* is any callable ``represent(observations) -> np.ndarray`` of shape
``(n, code_dim)``; :func:`representation_from_model` makes one from a zoo model (posterior
means of ``z``). A *ground truth* is any object with the interface of
``pixyz_zoo.datasets.ground_truth.GroundTruthData``: ``factor_names``, ``factor_sizes``,
``num_factors``, ``sample_factors(n, rng)`` (integer factor values, ``(n, num_factors)``) and
``sample_observations_from_factors(factors, rng)`` (a tensor, ``(n, ...)``).

Every metric is a function ``(ground_truth, represent, rng, **options) -> dict[str, float]``
with the defaults of disentanglement_lib (Locatello et al. 2019, "Challenging Common Assumptions
in the Unsupervised Learning of Disentangled Representations"), which are the ones the papers'
tables use:

============================  =================================================================
:func:`beta_vae_score`        Higgins et al. 2017 (beta-VAE), Section 3
:func:`factor_vae_score`      Kim & Mnih 2018 (FactorVAE), Section 4
:func:`mutual_information_gap` Chen et al. 2018 (beta-TCVAE), Section 5 (MIG)
:func:`dci`                   Eastwood & Williams 2018 (DCI framework), Section 3
:func:`sap_score`             Kumar et al. 2018 (DIP-VAE), Section 3 (SAP)
:func:`compute_all`           all five, flat keys; ``quick=True`` for tests and CI
============================  =================================================================

All randomness (factors, observations, the classifiers' seeds) comes from the
``np.random.Generator`` passed in, so a metric is reproducible given ``rng``'s seed.
Observations are generated and represented ``max_rows`` at a time (memory stays bounded for
images; a model's own batching is set in :func:`representation_from_model`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from pixyz_zoo.checks import check_count, check_integer

Represent = Callable[[torch.Tensor], np.ndarray]
"""``represent(observations) -> codes``: a batch of observations to an ``(n, code_dim)`` array."""

DCI_PREDICTORS = ("gbt", "random_forest")


class GroundTruth(Protocol):
    """The part of ``GroundTruthData`` the metrics use."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]

    @property
    def num_factors(self) -> int: ...

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator
    ) -> torch.Tensor: ...


# ---------------------------------------------------------------------- representations
def representation_from_model(
    model: Any, variable: str = "x", batch_size: int = 256, latent: str = "z"
) -> Represent:
    """The posterior means ``E_q[z|variable]`` of a zoo model as a representation function.

    Observations are encoded ``batch_size`` at a time through ``model.encode({variable: obs},
    given=[variable])`` (the model moves them to its device) and returned as a NumPy array on
    the CPU. Multimodal models infer from ``variable`` alone.
    """
    batch_size = check_count(batch_size, "batch_size")
    if variable not in getattr(model, "modalities", [variable]):
        raise KeyError(
            f"variable={variable!r} is not a modality of {type(model).__name__}; it has "
            f"{sorted(model.modalities)}: name the one its codes are inferred from"
        )
    if latent not in getattr(model, "latents", [latent]):
        raise KeyError(f"latent={latent!r} is not a latent of {type(model).__name__}; it has {model.latents}")

    def represent(observations: torch.Tensor) -> np.ndarray:
        codes = []
        for start in range(0, len(observations), batch_size):
            batch = {variable: observations[start : start + batch_size]}
            out = model.encode(batch, given=[variable])
            if latent not in out:
                raise KeyError(
                    f"the model's encoder gives {sorted(out)}, not {latent!r}; pass latent=<one of them>"
                )
            codes.append(out[latent].detach().flatten(1).cpu().numpy())
        if not codes:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(codes, axis=0)

    return represent


def _seed(rng: np.random.Generator) -> int:
    """A seed for a scikit-learn estimator, drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


def _check_arguments(ground_truth: Any, represent: Any, rng: Any, **counts: int) -> None:
    """Refuse, naming what to pass, what a metric cannot use: a dataset in place of its ground truth,
    a model in place of a representation function, a seed in place of a generator, a count (of
    examples, of a batch's rows) that is not an integer >= 1 or ``num_bins`` < 2."""
    for name, value in counts.items():
        check_integer(value, name, 2 if name == "num_bins" else 1)
    if not all(hasattr(ground_truth, name) for name in ("num_factors", "sample_factors")):
        fix = (
            "pass the dataset's .ground_truth (the process that generates its examples)"
            if hasattr(ground_truth, "ground_truth")
            else "pass data.ground_truth of a dataset that has one (dsprites-procedural, colored-shapes, "
            "dsprites)"
        )
        raise TypeError(
            f"ground_truth must be a dataset's ground truth, got {type(ground_truth).__name__}: {fix}"
        )
    if isinstance(represent, torch.nn.Module) or not callable(represent):
        raise TypeError(
            "represent must be a function from observations to codes, got "
            f"{type(represent).__name__}: pass representation_from_model(model) for a zoo model"
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a np.random.Generator, got {type(rng).__name__}; pass np.random.default_rng(seed)"
        )


def _as_codes(codes: Any, n: int) -> np.ndarray:
    """Check a representation's output: a finite ``(n, code_dim)`` array (float64)."""
    if torch.is_tensor(codes):
        codes = codes.detach().cpu().numpy()
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] != n:
        raise ValueError(
            f"the representation returned shape {codes.shape} for {n} observations; it must return "
            f"an array of shape ({n}, code_dim) (flatten multi-dimensional codes)"
        )
    if not np.isfinite(codes).all():
        raise ValueError(f"the representation returned {int((~np.isfinite(codes)).sum())} NaN/inf values")
    return codes


def represent_factors(
    ground_truth: GroundTruth,
    represent: Represent,
    factors: np.ndarray,
    rng: np.random.Generator,
    max_rows: int = 4096,
) -> np.ndarray:
    """Codes ``(n, code_dim)`` of observations drawn for ``factors``, ``max_rows`` at a time."""
    n = len(factors)
    if n == 0:
        raise ValueError("no factors to represent")
    codes = []
    for start in range(0, n, max_rows):
        chunk = factors[start : start + max_rows]
        observations = ground_truth.sample_observations_from_factors(chunk, rng)
        codes.append(_as_codes(represent(observations), len(chunk)))
    widths = {c.shape[1] for c in codes}
    if len(widths) > 1:
        raise ValueError(f"the representation returned codes of different sizes {sorted(widths)}")
    return np.concatenate(codes, axis=0)


def sample_codes(
    ground_truth: GroundTruth,
    represent: Represent,
    n: int,
    rng: np.random.Generator,
    max_rows: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` independent draws: codes ``(n, code_dim)`` and their factors ``(n, num_factors)``."""
    factors = np.asarray(ground_truth.sample_factors(n, rng))
    return represent_factors(ground_truth, represent, factors, rng, max_rows), factors


def _points_per_chunk(rows_per_point: int, max_rows: int) -> int:
    return max(1, max_rows // rows_per_point)


# ---------------------------------------------------------------------- BetaVAE score
def _beta_vae_points(
    ground_truth: GroundTruth,
    represent: Represent,
    n: int,
    batch_size: int,
    rng: np.random.Generator,
    max_rows: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (feature, label) points: mean |z1 - z2| over ``batch_size`` pairs sharing one factor."""
    features, labels = [], []
    step = _points_per_chunk(2 * batch_size, max_rows)
    for start in range(0, n, step):
        p = min(step, n - start)
        index = rng.integers(ground_truth.num_factors, size=p)
        first = np.asarray(ground_truth.sample_factors(p * batch_size, rng)).reshape(p, batch_size, -1)
        second = np.asarray(ground_truth.sample_factors(p * batch_size, rng)).reshape(p, batch_size, -1)
        points = np.arange(p)
        second[points, :, index] = first[points, :, index]
        both = np.concatenate([first.reshape(p * batch_size, -1), second.reshape(p * batch_size, -1)])
        codes = represent_factors(ground_truth, represent, both, rng, max_rows)
        z1, z2 = codes[: p * batch_size], codes[p * batch_size :]
        features.append(np.abs(z1 - z2).reshape(p, batch_size, -1).mean(axis=1))
        labels.append(index)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(
    ground_truth: GroundTruth,
    represent: Represent,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    max_iter: int = 1000,
    max_rows: int = 4096,
) -> dict[str, float]:
    """BetaVAE score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts...", Sec. 3).

    One *point*: draw a factor index k uniformly, ``batch_size`` pairs of factor vectors that
    agree on factor k (everything else independent), encode both observations of each pair and
    take the feature ``mean_pairs |z1 - z2|`` (code_dim values); its label is k. A linear
    classifier (scikit-learn ``LogisticRegression``, L2, C=1, lbfgs, ``max_iter`` iterations
    instead of the default 100 so that near-separable data converges) is trained on ``num_train``
    points and scored on ``num_eval`` fresh points. Defaults (64 / 10000 / 5000) are
    disentanglement_lib's; the paper used L = 64 pairs too. Chance level is about
    1 / num_factors (the most frequent label).

    Cost: ``2 * batch_size * (num_train + num_eval)`` observations are represented (1.92 million
    at the defaults).

    Returns ``train_accuracy`` and ``eval_accuracy`` (the score).
    """
    _check_arguments(
        ground_truth,
        represent,
        rng,
        batch_size=batch_size,
        num_train=num_train,
        num_eval=num_eval,
        max_iter=max_iter,
        max_rows=max_rows,
    )
    x_train, y_train = _beta_vae_points(ground_truth, represent, num_train, batch_size, rng, max_rows)
    x_eval, y_eval = _beta_vae_points(ground_truth, represent, num_eval, batch_size, rng, max_rows)
    classifier = LogisticRegression(max_iter=max_iter, random_state=_seed(rng))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x_train, y_train)
    return {
        "train_accuracy": float(classifier.score(x_train, y_train)),
        "eval_accuracy": float(classifier.score(x_eval, y_eval)),
    }


# ---------------------------------------------------------------------- FactorVAE score
def _factor_vae_votes(
    ground_truth: GroundTruth,
    represent: Represent,
    n: int,
    batch_size: int,
    global_variances: np.ndarray,
    active: np.ndarray,
    rng: np.random.Generator,
    max_rows: int,
) -> np.ndarray:
    """Vote counts ``(num_factors, num_active_dims)`` from ``n`` batches with one fixed factor."""
    votes = np.zeros((ground_truth.num_factors, int(active.sum())), dtype=np.int64)
    step = _points_per_chunk(batch_size, max_rows)
    for start in range(0, n, step):
        p = min(step, n - start)
        index = rng.integers(ground_truth.num_factors, size=p)
        factors = np.asarray(ground_truth.sample_factors(p * batch_size, rng)).reshape(p, batch_size, -1)
        points = np.arange(p)
        factors[points, :, index] = factors[points, 0, index][:, None]
        codes = represent_factors(ground_truth, represent, factors.reshape(p * batch_size, -1), rng, max_rows)
        local = codes.reshape(p, batch_size, -1).var(axis=1, ddof=1)
        dims = np.argmin(local[:, active] / global_variances[active], axis=1)
        np.add.at(votes, (index, dims), 1)
    return votes


def factor_vae_score(
    ground_truth: GroundTruth,
    represent: Represent,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    max_rows: int = 4096,
) -> dict[str, float]:
    """FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising", Section 4).

    The global variance of each code dimension is estimated (ddof=1) from
    ``num_variance_estimate`` independent samples. Collapsed dimensions, those whose global
    *standard deviation* is below ``prune_threshold`` (0.05, as in disentanglement_lib), are
    dropped. One *vote*: draw a factor index k, a batch of ``batch_size`` factor vectors sharing
    factor k's value, encode them, divide each active dimension's variance within the batch by
    its global variance and vote (k, argmin dimension). The majority-vote classifier maps each
    dimension to the factor that voted for it most often on ``num_train`` votes; the score is
    its accuracy on ``num_eval`` fresh votes. Defaults are disentanglement_lib's (the paper used
    batches of L = 100 and 800 votes).

    When no dimension is active (e.g. a constant code) every accuracy is 0 and
    ``num_active_dims`` is 0, as in disentanglement_lib.

    Returns ``train_accuracy``, ``eval_accuracy`` (the score) and ``num_active_dims``.
    """
    _check_arguments(
        ground_truth,
        represent,
        rng,
        batch_size=batch_size,
        num_train=num_train,
        num_eval=num_eval,
        num_variance_estimate=num_variance_estimate,
        max_rows=max_rows,
    )
    codes, _ = sample_codes(ground_truth, represent, num_variance_estimate, rng, max_rows)
    global_variances = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    train = _factor_vae_votes(
        ground_truth, represent, num_train, batch_size, global_variances, active, rng, max_rows
    )
    classifier = np.argmax(train, axis=0)
    dims = np.arange(train.shape[1])
    evaluation = _factor_vae_votes(
        ground_truth, represent, num_eval, batch_size, global_variances, active, rng, max_rows
    )
    return {
        "train_accuracy": float(train[classifier, dims].sum() / train.sum()),
        "eval_accuracy": float(evaluation[classifier, dims].sum() / evaluation.sum()),
        "num_active_dims": float(active.sum()),
    }


# ---------------------------------------------------------------------- MIG
def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Bin each column of ``codes`` into ``num_bins`` equal-width bins over its own range.

    Returns integer bin labels in ``1..num_bins`` (the column maximum falls into the last bin);
    a constant column falls into one bin. This is disentanglement_lib's histogram discretiser.
    """
    num_bins = check_integer(num_bins, "num_bins", 2)
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins=num_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def discrete_mutual_information(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) of every discrete code column with every factor column.

    Returns ``(code_dim, num_factors)``.
    """
    return np.array(
        [
            [mutual_info_score(factors[:, k], codes[:, j]) for k in range(factors.shape[1])]
            for j in range(codes.shape[1])
        ]
    ).reshape(codes.shape[1], factors.shape[1])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of each column of a discrete array, ``(num_columns,)``."""
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Per-factor normalised gap ``(I(z_top1; v) - I(z_top2; v)) / H(v)`` (NaN for constant v)."""
    mi = discrete_mutual_information(discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    ranked = np.sort(mi, axis=0)[::-1]
    second = ranked[1] if len(ranked) > 1 else np.zeros_like(ranked[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(entropy > 0, (ranked[0] - second) / np.where(entropy > 0, entropy, 1.0), np.nan)


def mutual_information_gap(
    ground_truth: GroundTruth,
    represent: Represent,
    rng: np.random.Generator,
    num_train: int = 10000,
    num_bins: int = 20,
    max_rows: int = 4096,
) -> dict[str, float]:
    """Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

    ``num_train`` independent samples are encoded; each code dimension is discretised into
    ``num_bins`` equal-width bins over its observed range (:func:`discretize`); the plug-in
    mutual information of every (dimension, factor) pair and the entropy of every factor are
    computed with scikit-learn's ``mutual_info_score``. MIG is the mean over factors of the gap
    between the two most informative dimensions divided by the factor's entropy. Defaults
    (10000 samples, 20 bins) are disentanglement_lib's; the paper computed the exact MI of the
    encoder's Gaussian posterior instead of binning means. Factors with zero entropy in the
    sample are left out of the mean; with a single code dimension the second MI is 0.

    Note that binning caps the score: a factor with more than ``num_bins`` values cannot be fully
    captured by one dimension (dSprites' 40 orientations give at most log 20 / log 40 = 0.81).

    Returns ``mig`` and ``mig_<factor name>`` per factor.
    """
    _check_arguments(ground_truth, represent, rng, num_train=num_train, num_bins=num_bins, max_rows=max_rows)
    codes, factors = sample_codes(ground_truth, represent, num_train, rng, max_rows)
    gaps = mig_from_codes(codes, factors, num_bins)
    result = {"mig": float(np.nanmean(gaps)) if np.isfinite(gaps).any() else math.nan}
    for name, gap in zip(ground_truth.factor_names, gaps, strict=True):
        result[f"mig_{name}"] = float(gap)
    return result


# ---------------------------------------------------------------------- DCI
def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Shannon entropy in ``base`` of ``p`` normalised along ``axis`` (after adding 1e-11)."""
    p = p + 1e-11
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / math.log(base)


def dci_disentanglement(importance: np.ndarray) -> float:
    """Disentanglement of an importance matrix ``(code_dim, num_factors)`` (Eastwood & Williams).

    ``sum_i rho_i (1 - H_K(P_i.))``: each code's importance over the K factors, normalised, has
    its entropy (base K) subtracted from 1; codes are weighted by their share rho_i of the total
    importance. An all-zero matrix is treated as uniform (score 0), as in disentanglement_lib.
    """
    importance = np.abs(np.asarray(importance, dtype=np.float64))
    if importance.sum() == 0:
        importance = np.ones_like(importance)
    num_factors = importance.shape[1]
    per_code = (
        1.0 - _entropy(importance, num_factors, axis=1) if num_factors > 1 else np.ones(len(importance))
    )
    weights = importance.sum(axis=1) / importance.sum()
    return float(np.sum(per_code * weights))


def dci_completeness(importance: np.ndarray) -> float:
    """Completeness of an importance matrix ``(code_dim, num_factors)`` (Eastwood & Williams).

    ``1 - H_D(P_.k)`` per factor (entropy in base D = code_dim of the factor's normalised column),
    averaged with weights equal to each factor's share of the total importance, as in
    disentanglement_lib. With tree importances every column sums to 1, so this is the plain mean
    over factors. An all-zero matrix is treated as uniform (score 0).
    """
    importance = np.abs(np.asarray(importance, dtype=np.float64))
    if importance.sum() == 0:
        importance = np.ones_like(importance)
    code_dim = importance.shape[0]
    per_factor = (
        1.0 - _entropy(importance, code_dim, axis=0) if code_dim > 1 else np.ones(importance.shape[1])
    )
    weights = importance.sum(axis=0) / importance.sum()
    return float(np.sum(per_factor * weights))


def _dci_predictor(predictor: str, seed: int, options: Mapping[str, Any] | None) -> Any:
    options = dict(options or {})
    if predictor == "gbt":
        return GradientBoostingClassifier(random_state=seed, **options)
    if predictor == "random_forest":
        options.setdefault("n_estimators", 50)
        options.setdefault("max_depth", 8)
        options.setdefault("max_features", None)
        return RandomForestClassifier(random_state=seed, **options)
    raise ValueError(f"unknown DCI predictor {predictor!r}; choose one of {', '.join(DCI_PREDICTORS)}")


def dci_importance(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    rng: np.random.Generator,
    predictor: str = "gbt",
    predictor_options: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, float, float]:
    """Importance matrix ``(code_dim, num_factors)`` and mean train / test accuracy.

    One classifier per factor predicts the factor's value from the whole code; its
    ``feature_importances_`` (impurity-based, normalised to sum 1, all zero when no split was
    made) form the factor's column.
    """
    importance = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    train_accuracy, test_accuracy = [], []
    for k in range(factors_train.shape[1]):
        model = _dci_predictor(predictor, _seed(rng), predictor_options)
        model.fit(codes_train, factors_train[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_accuracy.append(np.mean(model.predict(codes_train) == factors_train[:, k]))
        test_accuracy.append(np.mean(model.predict(codes_test) == factors_test[:, k]))
    return importance, float(np.mean(train_accuracy)), float(np.mean(test_accuracy))


def dci(
    ground_truth: GroundTruth,
    represent: Represent,
    rng: np.random.Generator,
    num_train: int = 10000,
    num_test: int = 5000,
    predictor: str = "gbt",
    predictor_options: Mapping[str, Any] | None = None,
    max_rows: int = 4096,
) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018,
    "A Framework for the Quantitative Evaluation of Disentangled Representations").

    One classifier per factor is trained on ``num_train`` samples to predict the factor's value
    from the code; their feature importances form the ``(code_dim, num_factors)`` importance
    matrix (:func:`dci_importance`), scored by :func:`dci_disentanglement` and
    :func:`dci_completeness`. Informativeness is the classifiers' mean accuracy on ``num_test``
    fresh samples (``informativeness``, the same as ``informativeness_test``) and on the training
    samples (``informativeness_train``); higher is better (the paper reports a prediction error).

    ``predictor="gbt"`` (default, as in disentanglement_lib): scikit-learn's
    ``GradientBoostingClassifier`` with its default settings (100 stages of depth-3 regression
    trees, learning rate 0.1). The paper used lasso and random forests on continuous factors.
    ``predictor="random_forest"``: ``RandomForestClassifier`` with 50 trees of depth <= 8 that
    consider every code dimension at every split (``max_features=None``; with scikit-learn's
    default of sqrt(code_dim) candidates, splits forced onto uninformative dimensions give them
    importance and a perfect code scores only about 0.8). It fits one tree for all classes
    instead of one per class, so it is an order of magnitude faster on many-valued factors; its
    numbers are not comparable with published GBT numbers. ``predictor_options`` go to the
    estimator's constructor and override these settings (e.g. ``{"n_estimators": 20}``).

    Cost: gradient boosting fits ``100 * num_classes`` trees per factor on ``num_train`` rows
    (one per class and stage), so it dominates the evaluation: on dSprites' factor sizes
    (3, 6, 40, 32, 32) at the default 10000 samples it takes minutes on one CPU core (see
    ``benchmarks/metric_timing.py``); use smaller ``num_train`` or the random forest for
    quick checks.
    """
    _check_arguments(ground_truth, represent, rng, num_train=num_train, num_test=num_test, max_rows=max_rows)
    codes_train, factors_train = sample_codes(ground_truth, represent, num_train, rng, max_rows)
    codes_test, factors_test = sample_codes(ground_truth, represent, num_test, rng, max_rows)
    importance, train_accuracy, test_accuracy = dci_importance(
        codes_train, factors_train, codes_test, factors_test, rng, predictor, predictor_options
    )
    return {
        "disentanglement": dci_disentanglement(importance),
        "completeness": dci_completeness(importance),
        "informativeness": test_accuracy,
        "informativeness_train": train_accuracy,
        "informativeness_test": test_accuracy,
    }


# ---------------------------------------------------------------------- SAP
def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Score of each single code dimension for each factor, ``(code_dim, num_factors)``.

    Discrete factors: test accuracy of a linear SVM on the one dimension (``LinearSVC(C=0.01,
    class_weight="balanced")``, one-vs-rest, as in disentanglement_lib; every fit uses
    ``random_state=seed``, so identical dimensions get identical scores). Continuous factors: the
    squared correlation R^2 on the training samples (0 for a constant dimension).
    """
    code_dim, num_factors = codes_train.shape[1], factors_train.shape[1]
    scores = np.zeros((code_dim, num_factors))
    for i in range(code_dim):
        for k in range(num_factors):
            if continuous_factors:
                cov = np.cov(codes_train[:, i], factors_train[:, k], ddof=1)
                if cov[0, 0] > 1e-12 and cov[1, 1] > 0:
                    scores[i, k] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1])
                continue
            classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(codes_train[:, i : i + 1], factors_train[:, k])
            scores[i, k] = np.mean(classifier.predict(codes_test[:, i : i + 1]) == factors_test[:, k])
    return scores


def sap_from_score_matrix(scores: np.ndarray) -> float:
    """Mean over factors of the difference between the two highest scores in its column."""
    ranked = np.sort(np.asarray(scores, dtype=np.float64), axis=0)
    second = ranked[-2] if len(ranked) > 1 else np.zeros(ranked.shape[1])
    return float(np.mean(ranked[-1] - second))


def sap_score(
    ground_truth: GroundTruth,
    represent: Represent,
    rng: np.random.Generator,
    num_train: int = 10000,
    num_test: int = 5000,
    continuous_factors: bool = False,
    max_rows: int = 4096,
) -> dict[str, float]:
    """Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of
    Disentangled Latent Concepts from Unlabeled Observations", Section 3).

    A score matrix (:func:`sap_score_matrix`) of how well each single code dimension predicts
    each factor, from ``num_train`` training and ``num_test`` test samples (disentanglement_lib's
    defaults); SAP is the mean over factors of the gap between the best and second-best
    dimension. The ground truth's factors are discrete, so the default is the classification
    variant (linear SVM accuracy); ``continuous_factors=True`` uses R^2 as in the paper's
    regression case.

    Note on the scale: an independent dimension predicts a uniform factor with about
    1 / num_values accuracy, so even a perfect code scores at most about
    ``mean_k (1 - 1 / size_k)`` (0.5 for a binary factor), and a one-vs-rest linear classifier on
    one dimension separates middle values poorly, so a perfect code of a many-valued factor
    scores lower still.

    Returns ``sap``.
    """
    _check_arguments(ground_truth, represent, rng, num_train=num_train, num_test=num_test, max_rows=max_rows)
    codes_train, factors_train = sample_codes(ground_truth, represent, num_train, rng, max_rows)
    codes_test, factors_test = sample_codes(ground_truth, represent, num_test, rng, max_rows)
    scores = sap_score_matrix(
        codes_train, factors_train, codes_test, factors_test, continuous_factors, seed=_seed(rng)
    )
    return {"sap": sap_from_score_matrix(scores)}


# ---------------------------------------------------------------------- all together
FULL_SETTINGS: dict[str, dict[str, Any]] = {
    "beta_vae": {},
    "factor_vae": {},
    "mig": {},
    "dci": {},
    "sap": {},
}
"""Options of each metric in :func:`compute_all`: the standard defaults."""

QUICK_SETTINGS: dict[str, dict[str, Any]] = {
    "beta_vae": {"num_train": 500, "num_eval": 250},
    "factor_vae": {"num_train": 500, "num_eval": 250, "num_variance_estimate": 2000},
    "mig": {"num_train": 2000},
    "dci": {"num_train": 1000, "num_test": 500, "predictor_options": {"n_estimators": 10}},
    "sap": {"num_train": 1000, "num_test": 500},
}
"""Options of each metric in :func:`compute_all` with ``quick=True``: small sample counts and 10
boosting stages instead of 100 for DCI (noisy numbers, for smoke tests and CI only; about 3 s on
dSprites' factor sizes without a network, against about 2 minutes at the standard settings)."""


def compute_all(
    ground_truth: GroundTruth,
    represent: Represent,
    rng: np.random.Generator,
    quick: bool = False,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """All five metrics with flat keys.

    Keys: ``beta_vae_score``, ``factor_vae_score`` (eval accuracies), ``mig``,
    ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness`` (test accuracy),
    ``sap``. ``quick=True`` uses :data:`QUICK_SETTINGS` instead of the standard defaults;
    ``options`` overrides a metric's options by name, e.g. ``{"dci": {"predictor":
    "random_forest"}}``. The metrics draw from ``rng`` one after the other.
    """
    _check_arguments(ground_truth, represent, rng)
    settings = {k: dict(v) for k, v in (QUICK_SETTINGS if quick else FULL_SETTINGS).items()}
    for name, values in (options or {}).items():
        if name not in settings:
            raise KeyError(f"unknown metric {name!r} in options; choose from {sorted(settings)}")
        settings[name].update(values)
    beta = beta_vae_score(ground_truth, represent, rng, **settings["beta_vae"])
    factor = factor_vae_score(ground_truth, represent, rng, **settings["factor_vae"])
    mig = mutual_information_gap(ground_truth, represent, rng, **settings["mig"])
    dci_scores = dci(ground_truth, represent, rng, **settings["dci"])
    sap = sap_score(ground_truth, represent, rng, **settings["sap"])
    return {
        "beta_vae_score": beta["eval_accuracy"],
        "factor_vae_score": factor["eval_accuracy"],
        "mig": mig["mig"],
        "dci_disentanglement": dci_scores["disentanglement"],
        "dci_completeness": dci_scores["completeness"],
        "dci_informativeness": dci_scores["informativeness"],
        "sap": sap["sap"],
    }
