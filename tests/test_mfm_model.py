"""MFM (Tsai et al. 2019): which modalities each factor reads, the loss against a hand computation,
the ablations, surrogate inference, the sequence variant, labels in the data and the run code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import distributions as td

import pixyz_zoo  # noqa: F401  (Pixyz settings first)
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.losses.mmd import MaximumMeanDiscrepancy
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import MODELS, build_model
from pixyz_zoo.models.mfm import ABLATIONS, MFM

TINY = {"hidden": [16], "z_dim": 3, "style_dim": 2}


@pytest.fixture(scope="module")
def trimodal() -> tuple:
    """trimodal-digits (m, s, t) with its labels as the modality y, train and test."""
    train = load_dataset("trimodal-digits", "train", binarize="none").with_labels()
    test = load_dataset("trimodal-digits", "test", binarize="none").with_labels()
    return train, test


def sequences(lengths: tuple[int, int] = (5, 5)) -> dict[str, Modality]:
    return {
        "a": Modality("a", (lengths[0], 3), "gaussian"),
        "b": Modality("b", (lengths[1], 2), "gaussian"),
        "y": Modality("y", (4,), "categorical"),
    }


def sequence_batch(n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.nn.functional.one_hot(torch.randint(0, 4, (n,), generator=g), 4).float()
    return {"a": torch.randn(n, 5, 3, generator=g), "b": torch.randn(n, 5, 2, generator=g), "y": y}


# ---------------------------------------------------------------------- the factors and their inputs
def test_mfm_is_registered_with_its_factorisation(trimodal) -> None:
    train, _ = trimodal
    model = build_model("mfm", train.modalities, **TINY)
    assert MODELS["mfm"] is MFM and MFM.needs_labels and model.likelihood_not_applicable
    assert model.label == "y" and model.data_modalities == ["m", "s", "t"]
    assert model.discriminative_latent == "z_y"
    assert [model.style_latent(m) for m in "mst"] == ["z_{a_m}", "z_{a_s}", "z_{a_t}"]
    text = str(model)
    assert "p(m|z_{y},z_{a_m})" in text and "p(y|z_{y})" in text and "q(z_{y}|m,s,t)" in text
    assert "q(z_{a_s}|s)" in text and r"\hat{q}(z_{y},z_{a_s},z_{a_t}|m)" in text
    assert r"\mathrm{MMD}^2\left[q(z_{y}) \| p(z_{y}) \right]" in text
    assert r"\frac{\log p(s|z_{y},z_{a_s})}{3072}" in text and r"\mathrm{sg}" in text


@pytest.mark.parametrize("perturbed", ["m", "s", "t"])
def test_each_generative_factor_reads_only_its_own_modality(trimodal, perturbed: str) -> None:
    train, _ = trimodal
    torch.manual_seed(0)
    model = build_model("mfm", train.modalities, **TINY)
    batch = train.first(8)
    other = {**batch, perturbed: train.tensors[perturbed][100:108]}  # other examples' values of one modality
    before, after = model.encode(batch), model.encode(other)
    for m in "mst":
        z = model.style_latent(m)
        if m == perturbed:
            assert not torch.allclose(before[z], after[z])
        else:  # fails as soon as z_a^m sees another modality
            torch.testing.assert_close(before[z], after[z], rtol=0, atol=0)
    assert not torch.allclose(before["z_y"], after["z_y"])  # z_y reads every modality
    # a decoder reads its own factors only: p(m | z_y, z_a^m) ignores z_a^s
    latents = dict(before)
    changed = {**latents, "z_{a_s}": latents["z_{a_s}"] + 1.0}
    torch.testing.assert_close(model.decode(latents, ["m"])["m"], model.decode(changed, ["m"])["m"])
    assert not torch.allclose(model.decode(latents, ["s"])["s"], model.decode(changed, ["s"])["s"])


def test_surrogate_inference_reads_only_the_given_modalities(trimodal) -> None:
    train, _ = trimodal
    model = build_model("mfm", train.modalities, **TINY)
    batch = train.first(8)
    other = {**batch, "s": train.tensors["s"][100:108], "t": train.tensors["t"][100:108]}
    torch.testing.assert_close(model.encode(batch, given=["m"]), model.encode(other, given=["m"]))
    from_m = model.encode(batch, given=["m"])
    assert set(from_m) == {"z_y", "z_{a_m}", "z_{a_s}", "z_{a_t}"}
    torch.testing.assert_close(from_m["z_{a_m}"], model.encode(batch)["z_{a_m}"])  # its own encoder


# ---------------------------------------------------------------------- the loss by hand
def test_the_loss_equals_a_hand_computation(trimodal, monkeypatch: pytest.MonkeyPatch) -> None:
    train, _ = trimodal
    torch.manual_seed(0)
    model = build_model("mfm", train.modalities, label_weight=2.0, mmd_weight=0.5, **TINY)
    batch = train.first(5)
    g = torch.Generator().manual_seed(1)
    prior = {z: torch.randn(5, model.latent_sizes[z], generator=g) for z in model.latents}
    monkeypatch.setattr(MaximumMeanDiscrepancy, "draw_prior", lambda self, n: prior[self.p.var[0]][:n])
    value = float(model.loss_cls.eval(model.feed(batch)).detach())

    with torch.no_grad():
        x = {k: batch[k] for k in "msty"}
        z = {"z_y": model.encoders["z_y"].network(x["m"], x["s"], x["t"])}
        for m in "mst":
            z[f"z_{{a_{m}}}"] = model.encoders[f"z_{{a_{m}}}"].network(x[m])

        def out(m: str) -> torch.Tensor:  # the decoder network on its factors
            return model.decoders[m].network(z["z_y"], z[f"z_{{a_{m}}}"])

        log_m = td.Bernoulli(logits=out("m"), validate_args=False).log_prob(x["m"]).flatten(1).sum(1)
        log_s = td.Laplace(out("s"), 0.1).log_prob(x["s"]).flatten(1).sum(1)  # the default scale 0.1
        log_t = (torch.log_softmax(out("t"), -1) * x["t"]).flatten(1).sum(1)
        log_y = (torch.log_softmax(model.decoders["y"].network(z["z_y"]), -1) * x["y"]).sum(1)
        reconstruction = -(log_m / 64 + log_s / 3072 + log_t / (8 * 71) + 2.0 * log_y)

        def mmd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            d = a.shape[1]
            k = lambda u, v: torch.exp(-torch.cdist(u, v).pow(2) / d**2)  # noqa: E731
            return k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()

        penalty = sum(mmd(prior[name], code) for name, code in z.items())
        regression = torch.zeros(5)
        for subset, q_hat in model.surrogates.items():
            codes = q_hat.network(*(x[m] for m in subset)).split(q_hat.sizes, dim=-1)
            for name, code in zip(q_hat.var, codes, strict=True):
                regression += (code - z[name]).pow(2).sum(1)
        expected = (reconstruction + 0.5 * penalty + regression).mean()
    assert value == pytest.approx(float(expected), rel=1e-5)
    assert len(model.surrogates) == 6  # every proper non-empty subset of m, s, t


def test_the_surrogate_regression_does_not_move_the_full_data_encoders(trimodal) -> None:
    train, _ = trimodal
    model = build_model("mfm", train.modalities, label_weight=0.0, mmd_weight=0.0, **TINY)
    from pixyz_zoo.losses.surrogate import SurrogateRegression

    q_hat = model.surrogates[("m",)]
    loss = SurrogateRegression(q_hat, [model.encoders[z] for z in q_hat.var])
    loss.eval(model.feed(train.first(4))).mean().backward()
    assert all(p.grad is None for p in model.encoders["z_y"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in q_hat.parameters())


# ---------------------------------------------------------------------- the ablations
@pytest.mark.parametrize("variant", list(ABLATIONS))
def test_every_ablation_builds_prints_and_trains(trimodal, variant: str) -> None:
    train, _ = trimodal
    discriminative, generative = ABLATIONS[variant]
    torch.manual_seed(0)
    model = build_model(
        "mfm", train.modalities, discriminative_factor=discriminative, generative_factor=generative, **TINY
    )
    text = str(model)
    assert "Loss function:" in text and r"\log p(y|" in text
    assert math.isfinite(model.train_step(train.first(8)))
    expected = {
        "MA": {"z_{y_m}", "z_{y_s}", "z_{y_t}"},
        "MB": {"z_y"},
        "MC": {"z_{y_m}", "z_{y_s}", "z_{y_t}"},
        "MD": {"z_y"},
        "ME": {"z_y", "z_a"},
        "MFM": {"z_y", "z_{a_m}", "z_{a_s}", "z_{a_t}"},
    }[variant]
    assert set(model.latents) == expected
    generated = set(model.modalities_in_generative())
    assert generated == ({"y"} if generative == "none" else {"m", "s", "t", "y"})
    assert ("p(m|" in text) == (generative != "none")
    probs = model.generate(train.first(4), given=["t"], targets=["y"])["y"]
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    if generative != "none":
        assert model.reconstruct(train.first(4))["s"].shape == (4, 3, 32, 32)
        assert model.style_latent("m") in model.latents
    else:
        with pytest.raises(ValueError, match="no generative factor"):
            model.style_latent("m")
    if discriminative == "per-modality":
        with pytest.raises(ValueError, match="discriminative_latents"):
            _ = model.discriminative_latent


# ---------------------------------------------------------------------- surrogate inference
def test_surrogate_inference_reconstructs_a_missing_modality_better_than_the_mean_image(trimodal) -> None:
    """m and t of trimodal-digits: 200 steps on 300 examples, then m generated from t alone."""
    train, test = (d.select(["m", "t", "y"]) for d in trimodal)
    train = train.subset(slice(0, 300))
    torch.manual_seed(0)
    model = build_model("mfm", train.modalities, hidden=[64], z_dim=8, style_dim=4)
    generator, steps = torch.Generator().manual_seed(0), 0
    while steps < 200:
        for batch in train.batches(50, shuffle=True, generator=generator):
            model.train_step(batch)
            steps += 1
    batch = test.first(200)
    generated = model.generate(batch, given=["t"], targets=["m", "y"])
    error = (generated["m"] - batch["m"]).pow(2).flatten(1).sum(1).mean()
    mean_image = (train.tensors["m"].mean(0) - batch["m"]).pow(2).flatten(1).sum(1).mean()
    assert error < 0.9 * mean_image, (float(error), float(mean_image))  # measured: 3.45 against 4.73
    accuracy = (generated["y"].argmax(-1) == batch["y"].argmax(-1)).float().mean()
    assert accuracy > 0.5, float(accuracy)  # chance is 0.1


# ---------------------------------------------------------------------- bad input
def test_the_label_is_never_an_input_and_unknown_names_are_refused(trimodal) -> None:
    train, _ = trimodal
    model = build_model("mfm", train.modalities, **TINY)
    batch = train.first(4)
    for call in (
        lambda: model.encode(batch, given=["m", "y"]),
        lambda: model.generate(batch, given=["y"], targets=["m"]),
        lambda: model.infer_latents(batch, given=["y"]),
        lambda: model.inference_for(["s", "y"]),
    ):
        with pytest.raises(ValueError, match="predicts the label 'y'"):
            call()
    with pytest.raises(KeyError, match="unknown modality"):
        model.encode(batch, given=["q"])
    with pytest.raises(KeyError, match="unknown modality"):
        model.generate(batch, given=["m"], targets=["q"])
    no_surrogate = build_model("mfm", train.modalities, surrogate=False, **TINY)
    with pytest.raises(ValueError, match="surrogate=False"):
        no_surrogate.encode(batch, given=["m"])


def test_a_model_without_its_label_modality_is_refused(trimodal) -> None:
    train, _ = trimodal
    with pytest.raises(ValueError, match="with_labels"):
        build_model("mfm", train.select(["m", "s"]).modalities, **TINY)
    with pytest.raises(ValueError, match="one-hot class label"):
        build_model("mfm", train.modalities, label="t", **TINY)
    with pytest.raises(ValueError, match="label_weight"):
        build_model("mfm", train.modalities, likelihood_weights={"y": 2.0}, **TINY)


def test_the_sequence_variant_reads_sequences_with_lstms() -> None:
    torch.manual_seed(0)
    model = build_model("mfm", sequences(), arch="lstm", **TINY)
    batch = sequence_batch()
    assert math.isfinite(model.train_step(batch))
    assert isinstance(model.encoders["z_y"].network.lstm, torch.nn.LSTM)
    out = model.generate(batch, given=["a"], targets=["b", "y"])
    assert out["b"].shape == (6, 5, 2) and out["y"].shape == (6, 4)
    # every time step of a generated sequence depends on f_y (the gradient-based interpretation)
    features = {k: v.detach() for k, v in model.factor_features(model.infer_latents(batch)).items()}
    features["z_y"].requires_grad_(True)
    generated = model.decode_features(features, "a")
    for t in range(5):
        (gradient,) = torch.autograd.grad(generated[:, t].sum(), features["z_y"], retain_graph=True)
        assert gradient.abs().sum() > 0


def test_sequences_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"different lengths \(a: T=5, b: T=7\)"):
        build_model("mfm", sequences((5, 7)), arch="lstm", **TINY)


# ---------------------------------------------------------------------- labels in the data, the run code
def test_with_labels_and_select(trimodal) -> None:
    raw = load_dataset("trimodal-digits", "test")
    labelled = raw.with_labels()
    assert "y" not in raw.modalities and labelled.modalities["y"].shape == (10,)
    assert labelled.modalities["y"].labels == raw.classes
    torch.testing.assert_close(labelled.tensors["y"].argmax(1), raw.labels)
    assert labelled.with_labels() is labelled
    chosen = labelled.select(["t", "m"])
    assert list(chosen.modalities) == ["t", "m"] and set(next(chosen.batches(3))) == {"t", "m"}
    torch.testing.assert_close(chosen.labels, raw.labels)
    assert chosen.subset(slice(0, 4)).labels.tolist() == raw.labels[:4].tolist()
    with pytest.raises(KeyError, match="no modality"):
        labelled.select(["m", "q"])
    with pytest.raises(ValueError, match="has no class labels"):
        load_dataset("colored-shapes", "test").with_labels()
    with pytest.raises(ValueError, match="not a one-hot label"):
        labelled.with_labels("t")


def test_the_run_code_adds_the_labels_and_reports_accuracy_instead_of_bounds(tmp_path: Path) -> None:
    from pixyz_zoo.run_spec import RunSpec
    from pixyz_zoo.runs import evaluate_run, train_run

    run = tmp_path / "run"
    spec = RunSpec.from_settings(
        "mfm", dataset="trimodal-digits", epochs=1, batch_size=20, options=dict(TINY),
        train_examples=40, test_examples=20,
    )  # fmt: skip
    model, _ = train_run(spec, run, progress=False)
    assert "y" in model.modalities
    metrics = evaluate_run(run, progress=False)
    assert metrics["likelihood_bounds"].startswith("not computed: MFM's encoders are deterministic")
    assert "test_elbo" not in metrics and 0.0 <= metrics["label_accuracy_from_t"] <= 1.0
    assert json.loads((run / "metrics.json").read_text())["label_accuracy"] == metrics["label_accuracy"]
    assert "| likelihood_bounds | not computed" in (run / "report.md").read_text()


def test_a_dataset_without_labels_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from pixyz_zoo.run_spec import RunSpec
    from pixyz_zoo.runs import train_run

    run = tmp_path / "run"
    spec = RunSpec.from_settings("mfm", dataset="colored-shapes", epochs=1, options=dict(TINY))
    with pytest.raises(ValueError, match="neither a label modality 'y' nor class labels.*trimodal-digits"):
        train_run(spec, run, progress=False)
    assert not run.exists()
