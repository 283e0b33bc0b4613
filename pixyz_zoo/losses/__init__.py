"""Loss expressions and custom Pixyz ``Loss`` classes."""

from pixyz_zoo.losses.elbo import negative_elbo, sum_losses

__all__ = ["negative_elbo", "sum_losses"]
