"""Loss expressions and custom Pixyz ``Loss`` classes."""

from pixyz_zoo.losses.elbo import negative_elbo, sum_losses
from pixyz_zoo.losses.iterative import IterativeInferenceLoss

__all__ = ["IterativeInferenceLoss", "negative_elbo", "sum_losses"]
