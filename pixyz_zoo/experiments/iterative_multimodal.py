"""Multimodal iterative amortized inference against MoPoE, JMVAE-kl and MVTCAE (Oshima, Suzuki & Matsuo).

``pixyz-zoo reproduce iterative-multimodal`` trains, with the multimodal benchmark's networks,
budget and likelihood weights (``experiments.multimodal_benchmark``):

- the slides' comparison (slides 34-41, 61-65, 67-68): MoPoE, JMVAE-kl (its unimodal encoders are
  the "JMVAE student"), MVTCAE and ``iterative-multimodal`` (its distilled students);
- the T ablation (slides 53-58): ``iterative-multimodal`` trained with T in {1, 2, 4, 16};
- the open choices of the method, one changed at a time from the default: the teacher started at
  a joint encoder, the reverse distillation KL, the distillation's gradient reaching the teacher.

The ablations share one budget (``ablation_epochs``), shorter than the comparison's in the full
setting: the T = 16 teacher costs about 17 times the T = 0 one per step.

Settings. ``full``: ``trimodal-mnist`` (8,000 train / 2,000 test), 2x512 networks, z = 20, Adam
2e-3, batch 100, 25 epochs (ablations 10), teacher T = 4 with the learned update. ``quick``:
``trimodal-digits``, 2x128 networks, 20 epochs (ablations 4). ``smoke``: seconds.
"""

from __future__ import annotations

from typing import Any

from pixyz_zoo.experiments import ExperimentContext
from pixyz_zoo.experiments.multimodal_benchmark import settings as benchmark_settings
from pixyz_zoo.models import ZooModel

#: the slides' comparison: label -> registered model
COMPARED = {
    "MoPoE": "mopoe",
    "JMVAE student": "jmvae-kl",
    "MVTCAE": "mvtcae",
    "Iterative student": "iterative-multimodal",
}
#: the T ablation (slides 53-58)
ABLATION_STEPS = (1, 2, 4, 16)
#: the method's open choices, each changed alone from the default (run key -> options)
VARIANTS = {
    "iterative-joint-teacher": {"teacher_init": "joint"},
    "iterative-reverse-kl": {"distillation": "reverse"},
    "iterative-teacher-gradient": {"teacher_gradient": True},
}


def settings(ctx: ExperimentContext) -> dict[str, Any]:
    s = benchmark_settings(ctx)
    s.pop("mmvae_k")
    s.update(
        refine_steps=ctx.pick(4, 4, 1),
        ablation_steps=list(ctx.pick(ABLATION_STEPS, ABLATION_STEPS, (0, 1))),
        ablation_epochs=ctx.pick(10, 4, 1),
        n_gaps=ctx.pick(200, 64, 16),
        gap_k=ctx.pick(100, 20, 4),
    )
    return s


def model_options(s: dict[str, Any], weights: dict[str, float]) -> dict[str, Any]:
    """The options every compared model shares (the multimodal benchmark's)."""
    return {
        "z_dim": s["z_dim"],
        "hidden": s["hidden"],
        "lr": s["lr"],
        "decoder_scale": s["decoder_scale"],
        "likelihood_weights": weights,
    }


def fit(
    ctx: ExperimentContext,
    s: dict[str, Any],
    key: str,
    registered: str,
    weights: dict[str, float],
    epochs: int,
    **extra: Any,
) -> ZooModel:
    """Train (or load) the run ``key`` of ``registered`` with the shared options plus ``extra``."""
    return ctx.fit(
        key,
        registered,
        s["dataset"],
        epochs=epochs,
        batch_size=s["batch_size"],
        warmup_epochs=s["warmup_epochs"],
        train_examples=s["train_examples"],
        options={**model_options(s, weights), **extra},
    )


def train_models(
    ctx: ExperimentContext, s: dict[str, Any], weights: dict[str, float], part: str = "all"
) -> tuple[dict[str, ZooModel], dict[int, ZooModel], dict[str, ZooModel]]:
    """The compared models, the T ablation (T -> model) and the variants (run key -> model).

    ``part``: ``"compared"``, ``"ablations"`` or ``"all"`` (two processes can train the two parts
    side by side; each run is loaded when finished).
    """
    compared: dict[str, ZooModel] = {}
    ablation: dict[int, ZooModel] = {}
    variants: dict[str, ZooModel] = {}
    if part in ("compared", "all"):
        for label, registered in COMPARED.items():
            extra = {"refine_steps": s["refine_steps"]} if registered == "iterative-multimodal" else {}
            compared[label] = fit(ctx, s, registered, registered, weights, s["epochs"], **extra)
    if part in ("ablations", "all"):
        for steps in s["ablation_steps"]:
            ablation[steps] = fit(
                ctx,
                s,
                f"iterative-T{steps}",
                "iterative-multimodal",
                weights,
                s["ablation_epochs"],
                refine_steps=steps,
            )
        for key, options in VARIANTS.items():
            variants[key] = fit(
                ctx,
                s,
                key,
                "iterative-multimodal",
                weights,
                s["ablation_epochs"],
                refine_steps=s["refine_steps"],
                **options,
            )
    return compared, ablation, variants
