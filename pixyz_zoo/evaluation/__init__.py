"""Model-agnostic evaluation: every metric uses only the zoo model surface."""

from pixyz_zoo.evaluation.likelihood import (
    elbo_estimate,
    evaluate_log_likelihood,
    iwae_bound,
    log_weights,
)

__all__ = ["elbo_estimate", "evaluate_log_likelihood", "iwae_bound", "log_weights"]

from pixyz_zoo.evaluation.disentanglement import (  # noqa: E402
    beta_vae_score,
    compute_all,
    dci,
    dci_completeness,
    dci_disentanglement,
    dci_importance,
    discretize,
    factor_vae_score,
    mig_from_codes,
    mutual_information_gap,
    representation_from_model,
    sap_score,
    sap_score_matrix,
)

__all__ += [
    "beta_vae_score",
    "compute_all",
    "dci",
    "dci_completeness",
    "dci_disentanglement",
    "dci_importance",
    "discretize",
    "factor_vae_score",
    "mig_from_codes",
    "mutual_information_gap",
    "representation_from_model",
    "sap_score",
    "sap_score_matrix",
]
