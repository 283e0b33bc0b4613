"""Interpretation (Tsai et al. 2019, sec. 4): the Gaussian mutual-information estimator against
closed forms, both methods on a linear stand-in model whose answer is known, and on a trained MFM."""

from __future__ import annotations

import math

import pytest
import torch

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)
from pixyz_zoo.evaluation.interpretation import (
    factor_information,
    gaussian_mutual_information,
    gradient_contributions,
    information_ratios,
    rank_modalities,
)

# ------------------------------------------------------------------ the estimator


def samples_with_covariance(cov: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` rows whose sample covariance (normalised by ``n - 1``) is exactly ``cov`` (float64)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, len(cov), generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    u, s, vt = torch.linalg.svd(z, full_matrices=False)
    white = u * math.sqrt(n - 1)  # z^T z / (n - 1) = I exactly
    return white @ torch.linalg.cholesky(cov).T


def canonical_pair(rho: list[float], p: int, q: int, n: int = 500, seed: int = 0):
    """``a`` (n, p), ``b`` (n, q): unit variances, canonical correlations ``rho``, then mixed by
    random invertible maps (the mutual information is invariant to them)."""
    cov = torch.eye(p + q, dtype=torch.float64)
    for i, r in enumerate(rho):
        cov[i, p + i] = cov[p + i, i] = r
    x = samples_with_covariance(cov, n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    mix_a = torch.randn(p, p, generator=g, dtype=torch.float64) + 3 * torch.eye(p, dtype=torch.float64)
    mix_b = torch.randn(q, q, generator=g, dtype=torch.float64) + 3 * torch.eye(q, dtype=torch.float64)
    return x[:, :p], x[:, p:], x[:, :p] @ mix_a, x[:, p:] @ mix_b


@pytest.mark.parametrize("rho,p,q", [([0.5], 1, 1), ([0.9, 0.3], 2, 3), ([0.99, 0.6, 0.1], 4, 3)])
def test_gaussian_estimate_matches_the_closed_form_of_jointly_gaussian_vectors(rho, p, q):
    """I = -1/2 sum log(1 - rho_i^2), exact when the sample covariance is the population's."""
    a, b, mixed_a, mixed_b = canonical_pair(rho, p, q)
    expected = -0.5 * sum(math.log(1 - r * r) for r in rho)
    assert gaussian_mutual_information(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert gaussian_mutual_information(mixed_a, mixed_b) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert gaussian_mutual_information(b, a) == pytest.approx(expected, rel=1e-9, abs=1e-12)  # symmetric
    # float32 input is computed in float64 (a looser tolerance: the input was rounded)
    assert gaussian_mutual_information(mixed_a.float(), mixed_b.float()) == pytest.approx(expected, rel=1e-4)


def test_noise_on_b_is_added_in_closed_form():
    """B + sigma eps: unit-variance B has correlation rho / sqrt(1 + sigma^2) with A."""
    a, b, _, _ = canonical_pair([0.8, 0.4], 2, 2)
    for sigma in (0.5, 1.0, 3.0):
        expected = -0.5 * sum(math.log(1 - r * r / (1 + sigma**2)) for r in (0.8, 0.4))
        assert gaussian_mutual_information(a, b, noise=sigma) == pytest.approx(expected, rel=1e-9)


def test_degenerate_cases():
    a, b, _, _ = canonical_pair([0.7], 1, 1)
    expected = -0.5 * math.log(1 - 0.49)
    # a dead (constant) feature adds nothing
    padded = torch.cat([a, torch.full_like(a, 3.0)], 1)
    assert gaussian_mutual_information(padded, b) == pytest.approx(expected, rel=1e-9)
    assert gaussian_mutual_information(torch.ones(10, 2), torch.randn(10, 3)) == 0.0
    # an exact linear relation without noise is infinite, with noise finite
    assert gaussian_mutual_information(a, 2 * a) == math.inf
    assert math.isfinite(gaussian_mutual_information(a, 2 * a, noise=1.0))
    # also through random maps, whose rounding leaves the canonical correlation a little below 1 by an
    # amount that depends on the linear algebra kernels (one of these gave 49.7 nats where rho >= 1
    # was required exactly; 1 x 2a gave 17.7 with MKL's SSE4.2 kernels on one thread)
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        x, mix = (
            torch.randn(500, 3, generator=g, dtype=torch.float64),
            torch.randn(3, 4, generator=g, dtype=torch.float64),
        )
        assert (
            gaussian_mutual_information(x, x @ mix + 1.0)
            == gaussian_mutual_information(x @ mix, x)
            == math.inf
        )
    # independent samples: close to 0 (the bias is about p q / (2 n) nats)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20000, 2, generator=g), torch.randn(20000, 2, generator=g)
    assert 0 <= gaussian_mutual_information(x, y) < 1e-3
    with pytest.raises(ValueError, match="same examples"):
        gaussian_mutual_information(torch.zeros(3, 1), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="at least 2 examples"):
        gaussian_mutual_information(torch.zeros(1, 1), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="noise must be"):
        gaussian_mutual_information(a, b, noise=-1.0)
    with pytest.raises(ValueError, match="NaN/inf"):
        gaussian_mutual_information(torch.tensor([[0.0], [math.nan]]), torch.zeros(2, 1))


# ------------------------------------------------------------------ a stand-in with a known answer


class LinearStandIn:
    """The MFM surface around a linear decoder: ``x_hat_m[t] = A_m[t] f_y + B_m[t] f_a^m``.

    Codes are read from the batch (``zy``, ``z_l``, ...), features are ``f = 2 z``. Only the
    ``informative`` modality depends strongly on ``f_y`` (on steps 2 and 3); the others weakly
    (``0.1`` of the scale) on every step; every modality depends on its own ``f_a^m``.
    """

    data_modalities = ["l", "a", "v"]
    discriminative_latent = "z_y"

    def __init__(self, informative: str = "a", steps: int = 6, k: int = 2, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.dims = {"l": 3, "a": 2, "v": 4}
        self.k = k
        self.A, self.B = {}, {}
        for m, d in self.dims.items():
            a = torch.randn(steps, d, k, generator=g)
            if m == informative:
                a[[0, 1, 4, 5]] = 0.0
            else:
                a = 0.1 * a
            self.A[m], self.B[m] = a, torch.randn(steps, d, k, generator=g)

    def style_latent(self, m: str) -> str:
        return f"z_{m}"

    def infer_latents(self, batch, given=None):
        return {"z_y": batch["zy"], **{f"z_{m}": batch[f"z_{m}"] for m in self.data_modalities}}

    def factor_features(self, latents):
        return {k: 2 * v for k, v in latents.items()}

    def decode_features(self, features, m):
        f_y, f_a = features["z_y"], features[f"z_{m}"]
        return torch.einsum("tdk,nk->ntd", self.A[m], f_y) + torch.einsum("tdk,nk->ntd", self.B[m], f_a)

    def batch(self, n: int, seed: int = 1) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        names = ["zy", *(f"z_{m}" for m in self.data_modalities)]
        return {name: torch.randn(n, self.k, generator=g) for name in names}

    def exact_information(self, m: str, noise: float) -> tuple[float, float]:
        """I(f_y; X_m), I(f_a^m; X_m) for f = 2 z, z ~ N(0, I), X = A f_y + B f_a + noise eps."""
        a = 2 * self.A[m].reshape(-1, self.k).double()
        b = 2 * self.B[m].reshape(-1, self.k).double()
        eye = torch.eye(len(a), dtype=torch.float64)
        total = torch.logdet(a @ a.T + b @ b.T + noise**2 * eye)
        return (
            float(0.5 * (total - torch.logdet(b @ b.T + noise**2 * eye))),
            float(0.5 * (total - torch.logdet(a @ a.T + noise**2 * eye))),
        )


@pytest.mark.parametrize("informative", ["l", "a", "v"])
def test_both_methods_rank_the_modality_that_depends_on_f_y_first(informative):
    model = LinearStandIn(informative)
    batch = model.batch(4000)
    ratios = information_ratios(model, batch)
    assert rank_modalities(ratios)[0] == informative, ratios
    contributions = gradient_contributions(model, model.batch(8))
    assert rank_modalities(contributions)[0] == informative, contributions
    raw = gradient_contributions(model, model.batch(8), whiten=False)
    assert rank_modalities(raw)[0] == informative, raw
    assert set(ratios) == set(contributions) == {"l", "a", "v"}


def test_information_terms_match_the_linear_gaussian_closed_form():
    model = LinearStandIn("a")
    terms = factor_information(model, model.batch(20000), noise=1.0)
    for m in ("l", "a", "v"):
        i_y, i_a = model.exact_information(m, 1.0)
        assert terms[m]["discriminative"] == pytest.approx(i_y, rel=0.05, abs=0.01), m
        assert terms[m]["generative"] == pytest.approx(i_a, rel=0.05, abs=0.01), m
        assert terms[m]["ratio"] == pytest.approx(terms[m]["discriminative"] / terms[m]["generative"])
    assert terms["a"]["ratio"] > 2 * max(terms["l"]["ratio"], terms["v"]["ratio"])


def test_information_reads_a_dataset_batch_by_batch():
    """A dataset gives the same estimate as its examples in one batch."""
    model = LinearStandIn("v")
    batch = model.batch(600)

    class Data:
        def batches(self, batch_size):
            for start in range(0, 600, batch_size):
                yield {k: v[start : start + batch_size] for k, v in batch.items()}

    whole, parts = information_ratios(model, batch), information_ratios(model, Data(), batch_size=70)
    for m in whole:
        assert parts[m] == pytest.approx(whole[m], rel=1e-5)


def test_gradient_contributions_are_the_jacobian_norms_per_step():
    """Linear decoder: d x_hat_m[t] / d f_y = A_m[t], whatever the batch; whitened: A_m[t] C^{1/2}."""
    model = LinearStandIn("a")
    batch = model.batch(5)
    out = gradient_contributions(model, batch, whiten=False)
    for m in ("l", "a", "v"):
        assert out[m].shape == (6,)
        assert torch.allclose(out[m], model.A[m].flatten(1).norm(dim=1), rtol=1e-5)
    assert out["a"][[0, 1, 4, 5]].abs().max() == 0 and out["a"][2:4].min() > 0  # the label steps
    generative = gradient_contributions(model, batch, factor="generative", modalities=["v"], whiten=False)
    assert list(generative) == ["v"]
    assert torch.allclose(generative["v"], model.B["v"].flatten(1).norm(dim=1), rtol=1e-5)
    # whitened: with respect to u, f_y = mean + C^{1/2} u, C the covariance of f_y = 2 z_y over the batch
    values, vectors = torch.linalg.eigh(torch.cov((2 * batch["zy"]).T.double()))
    root = (vectors * values.sqrt()) @ vectors.T
    whitened = gradient_contributions(model, batch)
    for m in ("l", "a", "v"):
        expected = (model.A[m].double() @ root).flatten(1).norm(dim=1)
        assert torch.allclose(whitened[m].double(), expected, rtol=1e-5)
    # a factor that does not vary in the batch contributes nothing once whitened
    still = {**batch, "zy": batch["zy"][:1].expand(5, -1)}
    assert all(float(v.abs().max()) == 0 for v in gradient_contributions(model, still).values())
    assert float(gradient_contributions(model, still, whiten=False)["a"].sum()) > 0


def test_interpretation_refuses_what_it_cannot_read():
    model = LinearStandIn()
    with pytest.raises(TypeError, match="lacks .*decode_features.*factorised multimodal model"):
        information_ratios(object(), {})
    with pytest.raises(KeyError, match=r"\['w'\] are not data modalities of the model"):
        gradient_contributions(model, model.batch(2), modalities=["w"])
    with pytest.raises(ValueError, match="factor must be 'discriminative' or 'generative'"):
        gradient_contributions(model, model.batch(2), factor="style")
    with pytest.raises(TypeError, match="batch dict or a dataset"):
        information_ratios(model, [1, 2])
    with pytest.raises(ValueError, match="2 or more examples"):
        gradient_contributions(model, model.batch(1))
    assert gradient_contributions(model, model.batch(1), whiten=False)["a"].shape == (6,)


def test_rank_modalities():
    assert rank_modalities({"l": 0.1, "a": 2.0, "v": 1.0}) == ["a", "v", "l"]
    assert rank_modalities({"l": torch.tensor([1.0, 1.0]), "a": torch.tensor([0.0, 3.0])}) == ["a", "l"]


# ------------------------------------------------------------------ a trained MFM


def trained_lstm_mfm(seed: int, informative: str):
    """MFM (arch="lstm") trained briefly on a small multimodal-sequences, and its test split."""
    from pixyz_zoo.datasets.sequences import make_multimodal_sequences
    from pixyz_zoo.models import build_model

    train = make_multimodal_sequences(600, "train", seed=seed, informative=informative, length=8)
    test = make_multimodal_sequences(300, "test", seed=seed, informative=informative, length=8)
    torch.manual_seed(seed)
    options = dict(z_dim=4, style_dim=4, hidden=[16], arch="lstm", surrogate=False, lr=1e-2)
    model = build_model("mfm", train.modalities, **options)
    g = torch.Generator().manual_seed(seed)
    for _ in range(25):
        for batch in train.batches(50, shuffle=True, generator=g):
            model.train_step(batch)
    return model, test


@pytest.mark.slow
def test_both_methods_find_the_informative_modality_of_a_trained_lstm_mfm():
    """The modality made the most informative about the label on purpose comes first by the
    information ratio and by the gradient-based contribution over time. With these settings, over
    seeds 0-2 and each data modality made the informative one (9 models), the informative modality's
    ratio exceeded the next one's by a factor 4.2 to 10.5 and its summed contribution by 3.5 to 8.1."""
    model, test = trained_lstm_mfm(seed=0, informative="a")
    assert model.test_metrics(test)["label_accuracy"] > 0.9
    ratios = information_ratios(model, test)
    assert rank_modalities(ratios)[0] == "a", ratios
    over_time = gradient_contributions(model, test.first(128))
    assert all(v.shape == (8,) and bool((v > 0).all()) for v in over_time.values())
    assert rank_modalities(over_time)[0] == "a", over_time
