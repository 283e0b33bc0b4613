"""Model-agnostic evaluation: every metric uses only the zoo model surface."""

from pixyz_zoo.evaluation.likelihood import (
    elbo_estimate,
    evaluate_log_likelihood,
    iwae_bound,
    log_weights,
)

__all__ = ["elbo_estimate", "evaluate_log_likelihood", "iwae_bound", "log_weights"]
