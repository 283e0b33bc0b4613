"""Attribute MNIST with a 2-D latent: JMVAE-kl against TELBO (the Pixyz JMVAE article).

The image ``x`` (a 1 or a 2 on the left or right half of a wide canvas) has two attributes, the
position ``y1`` and the digit ``y2`` (``datasets.attribute_mnist``). Both models infer ``z``
(2-D) from the attributes by a product of experts with the prior,
``q(z|y1,y2) ∝ p(z) q~(z|y1) q~(z|y2)`` (option ``groups=[["x"], ["y1", "y2"]]``), and from the
image by ``q(z|x)``; JMVAE-kl trains them by eq. (10) of the JMVAE paper, TELBO by its triple
ELBO (Vedantam et al. 2018). Measured and drawn for each model:

- images generated from both attributes, from the position only, from the digit only;
- latents of the test set from ``q(z|x,y1,y2)``, ``q(z|x)``, ``q(z|y1,y2)``, ``q(z|y1)``,
  ``q(z|y2)``, coloured by the 4 attribute combinations;
- decision regions of ``p(y1|z)`` and ``p(y2|z)`` over the latent plane, with the test latents;
- images decoded on a lattice of the latent plane;
- accuracies: each attribute generated from ``x`` (argmax), and zoo classifiers' accuracy on the
  position and digit of ``x`` generated from both attributes (conditional coherence), drawn as
  bars at the top of ``report.md``.

Settings. ``full``: ``attribute-mnist`` (real MNIST 1s and 2s of the shared 10k split),
2x512 networks, 100 epochs. ``quick`` / ``smoke``: ``attribute-digits`` (the bundled 8x8 digits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from matplotlib.figure import Figure

from pixyz_zoo import plots
from pixyz_zoo.datasets.attribute_mnist import COMBINED_LABELS, combined_label
from pixyz_zoo.evaluation.classifier import cross_modal_accuracy, train_classifier
from pixyz_zoo.experiments import ExperimentContext, image, register_experiment
from pixyz_zoo.markdown import markdown_table

MODELS = {"JMVAE-kl": "jmvae-kl", "TELBO": "telbo"}
GROUPS = [["x"], ["y1", "y2"]]
INFERENCE = (("x", "y1", "y2"), ("x",), ("y1", "y2"), ("y1",), ("y2",))


def settings(ctx: ExperimentContext) -> dict[str, Any]:
    return {
        "dataset": ctx.pick("attribute-mnist", "attribute-digits", "attribute-digits"),
        "epochs": ctx.pick(100, 30, 2),
        "warmup_epochs": ctx.pick(10.0, 5.0, 0.0),
        "batch_size": ctx.pick(100, 64, 64),
        "z_dim": 2,
        "hidden": ctx.pick([512, 512], [256, 256], [32]),
        "lr": 1e-3,
        "classifier_epochs": ctx.pick(10, 30, 1),
        "extent": 3.0,
    }


def _conditions(k1: int = 2, k2: int = 2) -> dict[str, dict[str, torch.Tensor]]:
    """One batch per conditioning pattern, 8 examples per attribute combination."""
    eye1, eye2 = torch.eye(k1), torch.eye(k2)
    both = {
        "y1": eye1.repeat_interleave(k2, 0).repeat_interleave(8, 0),
        "y2": eye2.repeat(k1, 1).repeat_interleave(8, 0),
    }
    return {
        "both attributes": both,
        "position only": {"y1": eye1.repeat_interleave(16, 0)},
        "digit only": {"y2": eye2.repeat_interleave(16, 0)},
    }


def _rel(ctx: ExperimentContext, path: Any) -> str:
    return str(path.relative_to(ctx.out))


def accuracy_figure(results: Mapping[str, Any]) -> Figure:
    """Bars of each model's accuracies (attributes from the image; the zoo classifiers' position
    and digit on images generated from both attributes), from the experiment's ``results``."""
    return plots.metric_bars(
        {name: r["accuracy"] for name, r in results["models"].items()},
        ncols=4,
        title=f"Accuracies on {results['settings']['dataset']} (test set)",
    )


@register_experiment(
    "attribute-mnist",
    "JMVAE-kl vs TELBO on 2-attribute MNIST with a 2-D latent (product of experts over the "
    "attribute encoders with the prior): generation, latent scatter, decision regions",
)
def reproduce_attribute_mnist(ctx: ExperimentContext) -> dict[str, Any]:
    s = settings(ctx)
    ctx.log(f"settings: {s}")
    train = ctx.load(s["dataset"], "train")
    test = ctx.load(s["dataset"], "test", binarize="fixed")
    x = test.modalities["x"]
    classifiers = {
        name: train_classifier(
            train,
            input="x",
            label=name,
            epochs=s["classifier_epochs"],
            seed=ctx.seed,
            cache_dir=ctx.out / "classifiers",
        )
        for name in ("y1", "y2")
    }
    classifier_accuracy = {name: c.accuracy(test) for name, c in classifiers.items()}
    everything = test.first(len(test))
    combined = combined_label(everything)

    results: dict[str, Any] = {"settings": s, "classifier_test_accuracy": classifier_accuracy, "models": {}}
    figures: dict[str, str] = {}
    for name, registered in MODELS.items():
        model = ctx.fit(
            registered,
            registered,
            s["dataset"],
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            warmup_epochs=s["warmup_epochs"],
            options={"z_dim": 2, "hidden": s["hidden"], "lr": s["lr"], "groups": GROUPS},
        )
        torch.manual_seed(ctx.seed)
        accuracy = {
            "y1 from x": cross_modal_accuracy(model, test, ["x"], "y1"),
            "y2 from x": cross_modal_accuracy(model, test, ["x"], "y2"),
            "x from (y1, y2): position": cross_modal_accuracy(
                model, test, ["y1", "y2"], "x", classifier=classifiers["y1"]
            ),
            "x from (y1, y2): digit": cross_modal_accuracy(
                model, test, ["y1", "y2"], "x", classifier=classifiers["y2"]
            ),
        }
        results["models"][name] = {"accuracy": accuracy, "test_loss": model.test_step(everything)}
        ctx.log(f"{name}: {accuracy}")

        rows = {
            label: model.generate(batch, given=list(batch), targets=["x"])["x"].cpu()
            for label, batch in _conditions().items()
        }
        for label, images in rows.items():
            fig = plots.image_grid(images, modality=x, nrow=8, title=f"{name}: x from {label}")
            figures[f"{registered}_generate_{label.replace(' ', '_')}"] = _rel(
                ctx,
                plots.save_figure(fig, ctx.figures / f"{registered}_generate_{label.replace(' ', '_')}.png"),
            )
        means = {}
        for given in INFERENCE:
            codes = model.encode(everything, given=list(given))["z"].cpu()
            means[given] = codes
            key = f"{registered}_latents_{'_'.join(given)}"
            fig = plots.latent_scatter(
                codes,
                combined,
                COMBINED_LABELS,
                title=f"{name}: mean of q(z|{','.join(given)})",
                extent=s["extent"],
            )
            figures[key] = _rel(ctx, plots.save_figure(fig, ctx.figures / f"{key}.png"))
        for attribute in ("y1", "y2"):
            key = f"{registered}_regions_{attribute}"
            fig = plots.decision_regions(
                model,
                attribute,
                extent=s["extent"],
                codes=means[("x", "y1", "y2")],
                labels=everything[attribute],
                title=f"{name}: argmax p({attribute}|z) and q(z|x,y1,y2) means",
            )
            figures[key] = _rel(ctx, plots.save_figure(fig, ctx.figures / f"{key}.png"))
        key = f"{registered}_latent_grid"
        fig = plots.latent_grid(
            model, "x", extent=s["extent"], steps=12, title=f"{name}: p(x|z) on a latent grid"
        )
        figures[key] = _rel(ctx, plots.save_figure(fig, ctx.figures / f"{key}.png"))

    header = ["model", *next(iter(results["models"].values()))["accuracy"]]
    rows = [[name, *r["accuracy"].values()] for name, r in results["models"].items()]
    accuracy = ctx.draw("accuracy", lambda: accuracy_figure(results))
    report = [
        "# Attribute MNIST: JMVAE-kl vs TELBO with a 2-D latent",
        "",
        f"Data: `{s['dataset']}` ({len(train)} train / {len(test)} test). Settings: `{s}`.",
        f"Classifiers of x (trained by the zoo): position {classifier_accuracy['y1']:.3f}, "
        f"digit {classifier_accuracy['y2']:.3f} test accuracy on real images.",
        "",
        "## Accuracies",
        "",
        image("accuracies of each model", accuracy),
        "",
        markdown_table(header, rows),
        "",
        "## Figures",
    ]
    for name, registered in MODELS.items():
        report += ["", f"### {name}", ""]
        report += [image(key, path) for key, path in figures.items() if key.startswith(f"{registered}_")]
    results["figures"] = {"accuracy": accuracy, **figures}
    return ctx.finish("\n".join(report), results)
