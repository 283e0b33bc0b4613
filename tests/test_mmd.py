"""The biased MMD^2 estimator of WAE/MFM (pixyz_zoo.losses.mmd) against a brute-force computation."""

from __future__ import annotations

import math

import pytest
import torch
from pixyz.distributions import Deterministic
from pixyz.losses import MMD as PixyzMMD

from pixyz_zoo.distributions import standard_normal
from pixyz_zoo.losses.mmd import MaximumMeanDiscrepancy, biased_mmd2, gaussian_kernel


def brute_force_mmd2(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> float:
    """The V-statistic by a double loop over pairs, in plain Python floats."""

    def k(u: torch.Tensor, v: torch.Tensor) -> float:
        return math.exp(-sum((float(x) - float(y)) ** 2 for x, y in zip(u, v, strict=True)) / bandwidth**2)

    n, m = len(a), len(b)
    aa = sum(k(a[i], a[j]) for i in range(n) for j in range(n)) / n**2
    bb = sum(k(b[i], b[j]) for i in range(m) for j in range(m)) / m**2
    ab = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return aa + bb - 2 * ab


class Codes(Deterministic):
    """A deterministic 'encoder' whose codes are the input itself: q(z|x) = delta(z - x)."""

    def __init__(self) -> None:
        super().__init__(var=["z"], cond_var=["x"], name="q")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"z": x}


@pytest.mark.parametrize("bandwidth", [None, 0.7, 3.0])
def test_the_estimate_equals_a_double_loop_over_pairs(bandwidth: float | None) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
    expected = brute_force_mmd2(a, b, 3.0 if bandwidth is None else bandwidth)  # default: s = d = 3
    assert float(biased_mmd2(a, b, bandwidth)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_the_default_kernel_is_the_authors_mean_over_dimensions_divided_by_d() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = (
        torch.randn(4, 6, generator=g, dtype=torch.float64),
        torch.randn(5, 6, generator=g, dtype=torch.float64),
    )
    d = a.shape[1]
    authors = torch.exp(-((a[:, None] - b[None]) ** 2).mean(-1) / d)  # their compute_kernel
    torch.testing.assert_close(gaussian_kernel(a, b, d), authors, rtol=1e-12, atol=0)


def test_same_distribution_gives_nearly_zero_and_a_shift_makes_it_grow() -> None:
    g = torch.Generator().manual_seed(2)
    n, d = 500, 4
    prior = torch.randn(n, d, generator=g, dtype=torch.float64)
    same = torch.randn(n, d, generator=g, dtype=torch.float64)
    # two independent samples of N(0, I): the V-statistic's bias is about (2 - 2 E k) / n < 2/n
    assert 0.0 <= float(biased_mmd2(prior, same)) < 2.0 / n
    shifts = [0.0, 0.5, 1.0, 2.0, 4.0]
    values = [float(biased_mmd2(prior, same + shift)) for shift in shifts]
    assert all(later > earlier for earlier, later in zip(values[:-1], values[1:], strict=True)), values
    assert values[-1] > 100 * values[0]


def test_the_loss_reads_the_codes_draws_as_many_prior_samples_and_prints_the_aggregate() -> None:
    q, p = Codes(), standard_normal("z", 3)
    loss = MaximumMeanDiscrepancy(q, p)
    assert loss.loss_text == r"\mathrm{MMD}^2\left[q(z) \| p(z) \right]"
    x = torch.randn(6, 3, dtype=torch.float64)
    drawn = []
    original = loss.draw_prior

    def recording(n: int) -> torch.Tensor:
        drawn.append(original(n).double())
        return drawn[-1]

    loss.draw_prior = recording  # type: ignore[method-assign]
    value = loss.eval({"x": x})
    assert value.dim() == 0 and drawn[0].shape == (6, 3)
    assert float(value) == pytest.approx(brute_force_mmd2(drawn[0], x, 3.0), rel=1e-10)
    # gradients reach the codes
    x.requires_grad_(True)
    loss.eval({"x": x}).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_pixyz_mmd_normalises_by_the_feature_dimension_not_the_batch_size() -> None:
    """The docstring's statement about pixyz.losses.MMD, checked on its own output."""
    from pixyz.distributions import Normal

    n, d, s2 = 8, 3, 9.0
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 1.0
    p = Normal(loc="a", scale=torch.tensor(1e-12), var=["z"], cond_var=["a"], features_shape=[d], name="p")
    q = Normal(loc="b", scale=torch.tensor(1e-12), var=["z"], cond_var=["b"], features_shape=[d], name="q")
    value = float(PixyzMMD(p, q, sigma_sqr=s2).eval({"a": a, "b": b}))
    mean = {
        key: float(gaussian_kernel(u, v, math.sqrt(s2)).mean())
        for key, u, v in (("pp", a, a), ("qq", b, b), ("pq", a, b))
    }
    pixyz_formula = n**2 / (d * (d - 1)) * (mean["pp"] + mean["qq"]) - 2 * n**2 / d**2 * mean["pq"]
    assert value == pytest.approx(pixyz_formula, rel=1e-4)
    assert value != pytest.approx(float(biased_mmd2(a, b, math.sqrt(s2))), rel=0.1)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        MaximumMeanDiscrepancy(Codes(), standard_normal("z", 3), bandwidth=0.0)
    with pytest.raises(ValueError, match="same single variable"):
        MaximumMeanDiscrepancy(Codes(), standard_normal("w", 3))
    with pytest.raises(ValueError, match="different dimensions"):
        biased_mmd2(torch.zeros(3, 2), torch.zeros(3, 4))
