"""Sanity checks of the disentanglement metrics, in the spirit of disentanglement_lib's tests.

The fake ground truth's observations *are* its factor values, so a representation can be any
function of the factors: the identity code must score near 1, a constant code near 0 (or chance
for the classifier-based scores), noise low; copying every factor into two dimensions kills MIG
and SAP but keeps the information; a random rotation of the factors lowers disentanglement.
Sample counts are small so the file runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixyz_zoo.datasets.ground_truth import FactorsAsObservations
from pixyz_zoo.evaluation import (
    beta_vae_score,
    compute_all,
    dci,
    dci_completeness,
    dci_disentanglement,
    discretize,
    factor_vae_score,
    mig_from_codes,
    mutual_information_gap,
    representation_from_model,
    sap_score,
)
from pixyz_zoo.evaluation.disentanglement import sap_from_score_matrix, sap_score_matrix
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import build_model

SIZES = (3, 4, 5, 6)
GROUND_TRUTH = FactorsAsObservations(SIZES)
_S = np.array(SIZES, dtype=np.float64)
_MEAN, _STD = (_S - 1) / 2, np.sqrt((_S**2 - 1) / 12)  # of a uniform factor on 0..size-1
_ROTATION = np.linalg.qr(np.random.default_rng(123).normal(size=(len(SIZES), len(SIZES))))[0]
_NOISE = np.random.default_rng(7)


def identity(obs: torch.Tensor) -> np.ndarray:
    """The factors themselves, standardised to mean 0 and variance 1."""
    return (obs.numpy().astype(np.float64) - _MEAN) / _STD


REPRESENTATIONS = {
    "identity": identity,
    "constant": lambda obs: np.zeros((len(obs), len(SIZES))),
    "random": lambda obs: _NOISE.normal(size=(len(obs), len(SIZES))),
    "duplicated": lambda obs: np.repeat(identity(obs), 2, axis=1),  # f0, f0, f1, f1, ...
    "mixed": lambda obs: identity(obs) @ _ROTATION,
}

SMALL = {
    "beta_vae": {"num_train": 300, "num_eval": 200},
    "factor_vae": {"num_train": 300, "num_eval": 200, "num_variance_estimate": 1000},
    "mig": {"num_train": 2000},
    # 10 boosting stages instead of 100 keeps DCI under a second per representation
    "dci": {"num_train": 500, "num_test": 250, "predictor_options": {"n_estimators": 10}},
    "sap": {"num_train": 1000, "num_test": 500},
}


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, float]]:
    """Every metric on every representation (computed once for the module)."""
    out = {}
    for name, represent in REPRESENTATIONS.items():
        rng = np.random.default_rng(0)
        beta = beta_vae_score(GROUND_TRUTH, represent, rng, **SMALL["beta_vae"])
        factor = factor_vae_score(GROUND_TRUTH, represent, rng, **SMALL["factor_vae"])
        mig = mutual_information_gap(GROUND_TRUTH, represent, rng, **SMALL["mig"])
        dci_scores = dci(GROUND_TRUTH, represent, rng, **SMALL["dci"])
        sap = sap_score(GROUND_TRUTH, represent, rng, **SMALL["sap"])
        out[name] = {
            "beta_vae": beta["eval_accuracy"],
            "factor_vae": factor["eval_accuracy"],
            "num_active_dims": factor["num_active_dims"],
            "mig": mig["mig"],
            "dci_disentanglement": dci_scores["disentanglement"],
            "dci_completeness": dci_scores["completeness"],
            "dci_informativeness": dci_scores["informativeness"],
            "sap": sap["sap"],
        }
    print({name: {k: round(v, 3) for k, v in values.items()} for name, values in out.items()})
    return out


CHANCE = float(np.mean(1 / _S))  # majority-class accuracy averaged over factors (about 0.24)


def test_identity_code_scores_near_one(scores):
    s = scores["identity"]
    assert s["beta_vae"] >= 0.9
    assert s["factor_vae"] >= 0.9
    assert s["num_active_dims"] == len(SIZES)
    assert s["mig"] >= 0.9
    assert s["dci_disentanglement"] >= 0.9
    assert s["dci_completeness"] >= 0.9
    assert s["dci_informativeness"] >= 0.9
    # SAP cannot reach 1 on discrete factors: an independent dimension already predicts a factor
    # of K values with accuracy ~1/K, and a one-vs-rest linear SVM on one dimension separates the
    # middle values of a many-valued factor poorly. Here the perfect dimension's accuracy is about
    # (1.0, 1.0, 0.38, 0.34) for sizes (3, 4, 5, 6) and the runner-up's about (0.33, 0.25, 0.2,
    # 0.18), so SAP ~ mean(0.67, 0.75, 0.18, 0.16) ~ 0.44; noise and duplicates score ~0.
    assert s["sap"] >= 0.35


def test_identity_code_sap_with_the_r2_score_is_near_one():
    result = sap_score(GROUND_TRUTH, identity, np.random.default_rng(0), 1000, 500, continuous_factors=True)
    assert result["sap"] >= 0.95


def test_constant_code_scores_zero_or_chance(scores):
    s = scores["constant"]
    assert s["beta_vae"] <= CHANCE + 0.15  # the classifier predicts one factor index
    assert s["factor_vae"] == 0.0 and s["num_active_dims"] == 0  # no active dimension to vote
    assert s["mig"] == 0.0
    assert s["dci_disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert s["dci_completeness"] == pytest.approx(0.0, abs=1e-6)
    assert s["dci_informativeness"] <= CHANCE + 0.1
    assert s["sap"] == 0.0


def test_random_code_scores_low(scores):
    s = scores["random"]
    assert s["beta_vae"] <= CHANCE + 0.15
    assert s["factor_vae"] <= CHANCE + 0.15
    assert s["mig"] <= 0.05
    assert s["dci_disentanglement"] <= 0.2
    assert s["dci_completeness"] <= 0.2
    assert s["dci_informativeness"] <= CHANCE + 0.1
    assert s["sap"] <= 0.1


def test_duplicated_code_kills_mig_and_sap_but_keeps_information(scores):
    s, ident = scores["duplicated"], scores["identity"]
    assert s["mig"] <= 0.02
    assert s["sap"] <= 0.02
    assert s["dci_informativeness"] >= 0.9
    assert s["dci_disentanglement"] >= 0.9  # each dimension still describes one factor ...
    assert s["dci_completeness"] <= ident["dci_completeness"] - 0.2  # ... but each factor uses two
    assert s["beta_vae"] >= 0.9 and s["factor_vae"] >= 0.9


def test_mixed_code_is_less_disentangled_than_identity(scores):
    s, ident = scores["mixed"], scores["identity"]
    assert s["dci_disentanglement"] <= ident["dci_disentanglement"] - 0.3
    assert s["dci_completeness"] <= ident["dci_completeness"] - 0.3
    assert s["mig"] <= ident["mig"] - 0.3
    assert s["sap"] <= ident["sap"] - 0.1
    # a rotation loses no information; 10 stages of axis-aligned trees recover most of it (0.85)
    assert s["dci_informativeness"] >= 0.7
    # The BetaVAE and FactorVAE scores need not drop: a rotation that keeps one dominant factor
    # per dimension still lets them identify the fixed factor (a known blind spot).


# ---------------------------------------------------------------------- hand-made inputs
def test_discretize_uses_equal_width_bins_over_each_column():
    values = np.linspace(0.0, 1.0, 200)
    labels = discretize(np.stack([values, np.full(200, 3.0), 10 * values - 5], axis=1), num_bins=20)
    assert labels[:, 0].min() == 1 and labels[:, 0].max() == 20  # the maximum is in the last bin
    assert np.all(np.bincount(labels[:, 0])[1:] == 10)  # equal widths: 10 evenly spaced values each
    assert len(np.unique(labels[:, 1])) == 1  # a constant column is one bin
    np.testing.assert_array_equal(labels[:, 2], labels[:, 0])  # invariant to shift and scale
    factor = np.arange(7).repeat(3)[:, None]  # up to 20 integer values stay distinguishable
    assert len(np.unique(discretize(factor))) == 7


def test_mig_on_hand_made_codes():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(4, size=4000), rng.integers(5, size=4000)], axis=1)
    noise = rng.normal(size=4000)
    perfect = mig_from_codes(np.stack([factors[:, 0], factors[:, 1], noise], axis=1), factors)
    np.testing.assert_allclose(perfect, 1.0, atol=0.01)
    swapped = mig_from_codes(factors[:, ::-1].astype(float), factors)
    np.testing.assert_allclose(swapped, 1.0, atol=0.01)  # the order of the dimensions is irrelevant
    copied = mig_from_codes(np.repeat(factors, 2, axis=1).astype(float), factors)
    np.testing.assert_allclose(copied, 0.0, atol=1e-12)
    with_constant = mig_from_codes(factors[:, :1].astype(float), np.stack([factors[:, 0], 0 * noise], 1))
    assert with_constant[0] == pytest.approx(1.0) and math.isnan(with_constant[1])  # one dim: gap to 0


def test_dci_scores_on_hand_made_importance_matrices():
    assert dci_disentanglement(np.eye(4)) == pytest.approx(1.0)
    assert dci_completeness(np.eye(4)) == pytest.approx(1.0)
    assert dci_disentanglement(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)
    assert dci_completeness(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)
    assert dci_disentanglement(np.zeros((4, 3))) == pytest.approx(0.0, abs=1e-9)  # no importance at all
    assert dci_completeness(np.zeros((4, 3))) == pytest.approx(0.0, abs=1e-9)
    # one factor spread over two codes: each code is pure, the factor is not captured by one code
    spread = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert dci_disentanglement(spread) == pytest.approx(1.0)
    assert dci_completeness(spread) == pytest.approx(0.0, abs=1e-9)
    # by hand: code 0 is (1/2, 1/2) -> 0, code 1 is (0, 1) -> 1, equal weights -> D = 1/2;
    # factor 0 is (1, 0) -> 1 with weight 1/4, factor 1 is (1/3, 2/3) -> 1 - H_2 with weight 3/4
    matrix = np.array([[0.5, 0.5], [0.0, 1.0]])
    h = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))
    assert dci_disentanglement(matrix) == pytest.approx(0.5)
    assert dci_completeness(matrix) == pytest.approx(0.25 + 0.75 * (1 - h))


def test_sap_from_hand_made_score_matrices():
    scores = np.array([[0.9, 0.1], [0.2, 0.6], [0.3, 0.5]])
    assert sap_from_score_matrix(scores) == pytest.approx(((0.9 - 0.3) + (0.6 - 0.5)) / 2)
    assert sap_from_score_matrix(np.array([[0.7, 0.4]])) == pytest.approx(0.55)  # one code: gap to 0
    codes = np.repeat(np.arange(4), 50)[:, None] * np.ones((1, 2))
    factors = np.repeat(np.arange(4), 50)[:, None]
    matrix = sap_score_matrix(codes, factors, codes, factors)
    assert matrix[0, 0] == matrix[1, 0]  # identical dimensions score identically


# ---------------------------------------------------------------------- options and the surface
SMALL_GROUND_TRUTH = FactorsAsObservations((2, 3))


def small_identity(obs: torch.Tensor) -> np.ndarray:
    return (obs.numpy() - np.array([0.5, 1.0])) / np.array([0.5, 0.8])


def test_dci_with_the_standard_gradient_boosting_settings():
    result = dci(SMALL_GROUND_TRUTH, small_identity, np.random.default_rng(0), num_train=300, num_test=150)
    assert result["disentanglement"] >= 0.9 and result["completeness"] >= 0.9
    assert result["informativeness"] == result["informativeness_test"] >= 0.99
    assert result["informativeness_train"] >= 0.99


def test_compute_all_quick_on_a_small_ground_truth():
    result = compute_all(SMALL_GROUND_TRUTH, small_identity, np.random.default_rng(0), quick=True)
    assert set(result) == {
        "beta_vae_score",
        "factor_vae_score",
        "mig",
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness",
        "sap",
    }
    for key in ("beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "dci_completeness"):
        assert result[key] >= 0.9, key
    assert result["dci_informativeness"] >= 0.99
    # binary factor: 1 - 0.5; three values: 1 - 1/3 (1-D linear SVM separates three values)
    assert result["sap"] >= 0.45


def test_random_forest_predictor_and_options():
    result = dci(
        GROUND_TRUTH,
        identity,
        np.random.default_rng(0),
        300,
        150,
        predictor="random_forest",
        predictor_options={"n_estimators": 10},
    )
    assert result["disentanglement"] >= 0.9 and result["completeness"] >= 0.9
    assert result["informativeness"] >= 0.9
    with pytest.raises(ValueError, match="unknown DCI predictor"):
        dci(GROUND_TRUTH, identity, np.random.default_rng(0), 50, 50, predictor="lasso")
    with pytest.raises(KeyError, match="unknown metric"):
        compute_all(GROUND_TRUTH, identity, np.random.default_rng(0), options={"mig2": {}})


def test_metrics_are_reproducible_given_the_seed():
    a = mutual_information_gap(GROUND_TRUTH, identity, np.random.default_rng(3), num_train=500)
    b = mutual_information_gap(GROUND_TRUTH, identity, np.random.default_rng(3), num_train=500)
    assert a == b
    c = factor_vae_score(
        GROUND_TRUTH,
        identity,
        np.random.default_rng(3),
        num_train=50,
        num_eval=50,
        num_variance_estimate=200,
        max_rows=100,
    )  # chunking does not change the result
    d = factor_vae_score(
        GROUND_TRUTH, identity, np.random.default_rng(3), num_train=50, num_eval=50, num_variance_estimate=200
    )
    assert c["eval_accuracy"] == d["eval_accuracy"] == 1.0


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="default_rng"):
        mutual_information_gap(GROUND_TRUTH, identity, 0)
    with pytest.raises(ValueError, match=r"shape \(50,\)"):
        mutual_information_gap(GROUND_TRUTH, lambda obs: obs[:, 0].numpy(), np.random.default_rng(0), 50)
    with pytest.raises(ValueError, match="NaN"):
        mutual_information_gap(GROUND_TRUTH, lambda obs: obs.numpy() * np.nan, np.random.default_rng(0), 50)


def test_representation_from_model_gives_batched_posterior_means():
    torch.manual_seed(0)
    model = build_model("vae", {"x": Modality("x", (len(SIZES),), "gaussian")}, z_dim=2, hidden=[8])
    represent = representation_from_model(model, batch_size=7)
    obs = GROUND_TRUTH.sample(20, np.random.default_rng(0))[1]
    codes = represent(obs)
    assert isinstance(codes, np.ndarray) and codes.shape == (20, 2)
    np.testing.assert_allclose(codes, model.encode({"x": obs})["z"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codes, represent(obs), rtol=0, atol=0)  # means, not samples
    result = mutual_information_gap(GROUND_TRUTH, represent, np.random.default_rng(0), num_train=200)
    assert 0.0 <= result["mig"] <= 1.0
    with pytest.raises(KeyError, match="latent="):
        representation_from_model(model, latent="w")(obs)


def test_each_metric_names_what_to_pass_for_a_dataset_a_model_or_a_seed():
    """``compute_all(dataset, model, rng)`` failed with "'GroundTruthDataset' object has no attribute
    'num_factors'", ``mutual_information_gap(gt, model, rng)`` with "'BetaVAE' object is not callable";
    only a seed in place of the generator was named."""
    from pixyz_zoo.datasets import load_dataset

    data = load_dataset("dsprites-procedural", "test").subset(slice(0, 8))
    model = build_model("beta-vae", data.modalities, z_dim=2, hidden=[8])
    represent, rng = representation_from_model(model), np.random.default_rng(0)
    metrics = [beta_vae_score, factor_vae_score, mutual_information_gap, dci, sap_score, compute_all]
    for metric in metrics:
        with pytest.raises(TypeError, match=r"got GroundTruthDataset: pass the dataset's \.ground_truth"):
            metric(data, represent, rng)
        with pytest.raises(TypeError, match=r"ground_truth must be a dataset's ground truth, got BetaVAE"):
            metric(model, data, rng)
        with pytest.raises(TypeError, match=r"got BetaVAE: pass representation_from_model\(model\)"):
            metric(data.ground_truth, model, rng)
        with pytest.raises(TypeError, match=r"rng must be a np\.random\.Generator, got int"):
            metric(data.ground_truth, represent, 0)


def test_counts_bins_and_names_are_checked_before_the_metric_runs():
    """``num_train=0`` failed with "no factors to represent", ``batch_size=0`` with a
    ZeroDivisionError, ``num_bins=1`` gave a MIG of 0 for every representation and
    ``representation_from_model(model, variable="q")`` failed only when first called."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"num_train must be an integer >= 1, got 0"):
        mutual_information_gap(GROUND_TRUTH, identity, rng, num_train=0)
    with pytest.raises(ValueError, match=r"num_bins must be an integer >= 2, got 1"):
        mutual_information_gap(GROUND_TRUTH, identity, rng, num_train=50, num_bins=1)
    with pytest.raises(ValueError, match=r"num_bins must be an integer >= 2, got 0"):
        discretize(np.zeros((4, 2)), num_bins=0)
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        beta_vae_score(GROUND_TRUTH, identity, rng, batch_size=0, num_train=10, num_eval=10)
    with pytest.raises(ValueError, match=r"num_test must be an integer >= 1, got 0"):
        sap_score(GROUND_TRUTH, identity, rng, num_train=10, num_test=0)
    model = build_model("vae", {"x": Modality("x", (len(SIZES),), "gaussian")}, z_dim=2, hidden=[8])
    with pytest.raises(KeyError, match=r"variable='q' is not a modality of VAE; it has \['x'\]"):
        representation_from_model(model, variable="q")
