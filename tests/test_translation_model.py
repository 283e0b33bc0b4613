"""The purely generative translation baseline: its loss by hand, its training, its surface, its errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)
from pixyz_zoo.cli import main
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import build_model
from pixyz_zoo.models.translation import Translation

MODALITIES = {
    "a": Modality("a", (3,), "gaussian"),
    "b": Modality("b", (2, 2), "gaussian"),
    "c": Modality("c", (4,), "gaussian"),
    "y": Modality("y", (3,), "categorical"),
}


def tiny_batch(n: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {m: torch.randn(n, *MODALITIES[m].shape, generator=g) for m in ("a", "b", "c")}
    batch["y"] = F.one_hot(torch.randint(0, 3, (n,), generator=g), 3).float()
    return batch


def code(model: Translation, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """f = E(X_O) by hand: the observed modalities flattened and concatenated into the MLP."""
    inputs = torch.cat([batch[m].flatten(1) for m in model.observed], 1)
    return model.q.network.net(inputs)


def test_the_loss_is_minus_log_p_target_given_observed_by_hand():
    torch.manual_seed(0)
    model = Translation(MODALITIES, observed=["b", "a"], target="c", z_dim=3, hidden=[7], decoder_scale=0.5)
    batch = tiny_batch()
    assert model.observed == ["a", "b"]  # the data's order
    mean = model.p_t.network(code(model, batch))
    nll = 0.5 * ((batch["c"] - mean) / 0.5) ** 2 + math.log(0.5) + 0.5 * math.log(2 * math.pi)
    expected = nll.sum(1).mean()
    assert model.test_step(batch) == pytest.approx(float(expected.detach()), rel=1e-5)
    # a categorical target: -log softmax at the observed class
    model = Translation(MODALITIES, observed=["a", "c"], target="y", z_dim=3, hidden=[7])
    logits = model.p_t.network(code(model, batch))
    expected = -(torch.log_softmax(logits, -1) * batch["y"]).sum(1).mean()
    assert model.test_step(batch) == pytest.approx(float(expected.detach()), rel=1e-5)
    text = str(model)
    assert "p(y,f|a,c) = p(y|f)p(f|a,c)" in text and "q(f|a,c)" in text and "\\log p(y|f)" in text


def test_defaults_the_surface_and_the_code_name():
    model = Translation(MODALITIES, z_dim=2, hidden=[4])
    assert (
        model.target == "y"
        and model.observed == ["a", "b", "c"]
        and list(model.modalities) == list(MODALITIES)
    )
    batch = tiny_batch()
    out = model.generate(batch, given=["a", "b", "c"], targets=["y"])
    assert list(out) == ["y"] and out["y"].shape == (5, 3)
    assert torch.allclose(out["y"].sum(1), torch.ones(5))  # class probabilities
    assert torch.equal(model.generate(batch, given=model.observed)["y"], out["y"])  # target by default
    assert torch.equal(model.reconstruct(batch)["y"], out["y"])  # the only thing it generates
    assert torch.equal(model.generate(batch, given=list(MODALITIES))["y"], out["y"])  # y given: not read
    assert model.encode(batch, ["a", "b", "c"])["f"].shape == (5, 2)
    assert model.modalities_in_generative() == ["y"]
    # the code is never named like a modality
    named_f = {**MODALITIES, "f": Modality("f", (2,), "gaussian")}
    assert Translation(named_f, target="a", z_dim=2, hidden=[4]).code == "f_"
    # a subset of the data's modalities: the others are not the model's
    assert list(Translation(MODALITIES, observed=["a"], target="c", hidden=[4]).modalities) == ["a", "c"]


@pytest.mark.parametrize(
    "options,error,message",
    [
        ({"target": "q"}, KeyError, "target='q' is not a modality of the data: choose one of"),
        ({"observed": ["a", "w"]}, KeyError, "['w'] are not modalities of the data"),
        ({"observed": ["a", "c"], "target": "c"}, ValueError, "target 'c' is also observed"),
        ({"observed": []}, ValueError, "observed is empty"),
        ({"observed": ["a", "a"], "target": "c"}, ValueError, "names a modality twice"),
    ],
)
def test_option_errors(options, error, message):
    with pytest.raises(error) as caught:
        Translation(MODALITIES, **options)
    assert message in str(caught.value)


def test_usage_errors_name_the_fix():
    with pytest.raises(ValueError, match="needs at least 2 modalities"):
        Translation({"a": MODALITIES["a"]})
    model = Translation(MODALITIES, observed=["a", "b"], target="c", hidden=[4])
    batch = tiny_batch()
    with pytest.raises(ValueError, match=r"generates only its target 'c', not \['a'\].*target='a'"):
        model.generate(batch, given=["a", "b"], targets=["a"])
    with pytest.raises(ValueError, match=r"\['b'\] not given.*observed=\['a'\]"):
        model.generate(batch, given=["a"])
    with pytest.raises(ValueError, match="not given"):
        model.sample(4)  # no prior
    with pytest.raises(ValueError, match=r"observed=\['a', 3\]"):
        build_model("translation", MODALITIES, observed=["a", 3])  # the registry checks the types


def test_a_short_training_translates_better_than_the_mean_image():
    """x from its class y (the bundled digits, grey levels): near the class means (0.59 of the mean
    image's squared error on the test split), far below the mean image."""
    train, test = (
        load_dataset("digits", "train", binarize="none"),
        load_dataset("digits", "test", binarize="none"),
    )
    torch.manual_seed(0)
    model = Translation(train.modalities, observed=["y"], target="x", z_dim=8, hidden=[64], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for batch in train.batches(50, shuffle=True, generator=g):
            model.train_step(batch)
    metrics = model.test_metrics(test)
    assert metrics["reconstruction_squared_error_x"] < 0.75 * metrics["mean_squared_error_x"], metrics
    assert metrics["target_log_likelihood"] < 0 and "target_accuracy" not in metrics
    # the log-likelihood is minus the test loss
    losses = [model.test_step(b) * len(b["x"]) for b in test.batches(100)]
    assert metrics["target_log_likelihood"] == pytest.approx(-sum(losses) / len(test), rel=1e-5)


def test_cli_trains_and_evaluates_translation_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "translation", "--dataset", "trimodal-digits", "--epochs", "1", "--out", str(run)]
    args += ["--train-examples", "60", "--test-examples", "30", "--batch-size", "30", "--no-progress"]
    args += [
        "-o",
        "hidden=[16]",
        "-o",
        "z_dim=4",
        "-o",
        "observed=['m', 't']",
        "-o",
        "target=s",
        "--device",
        "cpu",
    ]
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "warning" not in err, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test_elbo" not in metrics and "no latent prior" in metrics["likelihood_bounds"]
    assert math.isfinite(metrics["target_log_likelihood"])
    assert metrics["reconstruction_squared_error_s"] > 0 and metrics["mean_squared_error_s"] > 0
    report = (run / "report.md").read_text()
    for figure in ("reconstruction_s", "samples_s", "graphical_model", "training_curve"):
        assert f"![{figure}](figures/{figure}.png)" in report
    assert "Figures not drawn" not in report
