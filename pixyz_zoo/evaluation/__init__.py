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

from pixyz_zoo.evaluation.latents import gaussian_kl_per_dimension, kl_per_dimension  # noqa: E402

__all__ += ["gaussian_kl_per_dimension", "kl_per_dimension"]

from pixyz_zoo.evaluation.classifier import (  # noqa: E402
    ModalityClassifier,
    cross_modal_accuracy,
    train_classifier,
)
from pixyz_zoo.evaluation.conditional import (  # noqa: E402
    conditional_log_likelihood,
    conditional_log_likelihood_table,
)
from pixyz_zoo.evaluation.editing import edit_attributes  # noqa: E402

__all__ += [
    "ModalityClassifier",
    "conditional_log_likelihood",
    "conditional_log_likelihood_table",
    "cross_modal_accuracy",
    "edit_attributes",
    "train_classifier",
]

from pixyz_zoo.evaluation.multimodal import (  # noqa: E402
    classifier_features,
    coherence,
    coherence_table,
    cross_modal_fd,
    evaluate_multimodal,
    frechet_distance,
    inception_features,
    joint_coherence,
    latent_cosine_similarity,
    latent_linear_probe,
    multimodal_table,
    nonempty_subsets,
    subset_log_likelihood,
    train_modality_classifiers,
)

__all__ += [
    "classifier_features",
    "coherence",
    "coherence_table",
    "cross_modal_fd",
    "evaluate_multimodal",
    "frechet_distance",
    "inception_features",
    "joint_coherence",
    "latent_cosine_similarity",
    "latent_linear_probe",
    "multimodal_table",
    "nonempty_subsets",
    "subset_log_likelihood",
    "train_modality_classifiers",
]

from pixyz_zoo.evaluation.amortization import (  # noqa: E402
    OptimalGaussian,
    amortization_gaps,
    bound_of_parameters,
    inference_gaps,
    optimal_gaussian,
    refinement_curve,
    refinement_trajectory,
)

__all__ += [
    "OptimalGaussian",
    "amortization_gaps",
    "bound_of_parameters",
    "inference_gaps",
    "optimal_gaussian",
    "refinement_curve",
    "refinement_trajectory",
]

from pixyz_zoo.evaluation.distillation import gaussian_kl_between, teacher_student_kl  # noqa: E402

__all__ += ["gaussian_kl_between", "teacher_student_kl"]
