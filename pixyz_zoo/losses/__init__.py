"""Loss expressions and custom Pixyz ``Loss`` classes."""

from pixyz_zoo.losses.elbo import negative_elbo, sum_losses
from pixyz_zoo.losses.iterative import IterativeInferenceLoss
from pixyz_zoo.losses.mmd import MaximumMeanDiscrepancy, biased_mmd2, gaussian_kernel
from pixyz_zoo.losses.surrogate import SurrogateRegression

__all__ = [
    "IterativeInferenceLoss",
    "MaximumMeanDiscrepancy",
    "SurrogateRegression",
    "biased_mmd2",
    "gaussian_kernel",
    "negative_elbo",
    "sum_losses",
]
