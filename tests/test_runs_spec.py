"""The run description: what config.json holds, what a resume compares, what a new setting needs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pixyz_zoo.cli import main
from pixyz_zoo.run_spec import (
    DataSpec,
    Difference,
    ModelSpec,
    RunSpec,
    TrainSpec,
    integer_at_least,
    setting,
    spec_differences,
)
from pixyz_zoo.runs import fit_run, read_config, train_run
from pixyz_zoo.training import load_checkpoint

#: every setting away from its default
SPEC = RunSpec(
    model=ModelSpec("vae", {"z_dim": 2, "hidden": (16,)}),
    data=DataSpec(
        dataset="trimodal-digits",
        root="somewhere",
        binarize="fixed",
        download=True,
        train_examples=64,
        test_examples=32,
        modalities=["m", "s"],
    ),
    train=TrainSpec(epochs=3, batch_size=32, seed=4, warmup_epochs=1.5),
    device="cpu",
)

#: config.json of a run written before the run description existed (``train_run("vae", run, epochs=1,
#: batch_size=64, options={"z_dim": 2, "hidden": [16]}, device="cpu", test_examples=32)``): data keys
#: left out when not given
OLD_CONFIG = {
    "model": "vae",
    "options": {
        "observed": "x",
        "z_dim": 2,
        "hidden": [16],
        "arch": "mlp",
        "decoder_scale": None,
        "beta": 1.0,
        "lr": 0.001,
        "clip_grad_norm": None,
    },
    "data": {
        "dataset": "digits",
        "root": None,
        "binarize": "dynamic",
        "download": False,
        "test_examples": 32,
    },
    "train": {"epochs": 1, "batch_size": 64, "seed": 0, "warmup_epochs": 0.0},
    "device": "cpu",
    "modalities": {"x": {"shape": [1, 8, 8], "likelihood": "bernoulli", "labels": []}},
    "environment": {"torch": "2.14.1+cu130", "python": "3.11.7", "device": "cpu"},
}


def test_a_spec_survives_config_json():
    text = json.dumps(SPEC.to_config())
    assert RunSpec.from_config(json.loads(text)) == SPEC
    config = json.loads(text)
    assert set(config) == {"model", "options", "data", "train", "device"}
    assert config["data"]["modalities"] == ["m", "s"] and config["options"]["hidden"] == [16]
    assert config["train"] == {
        "epochs": 3,
        "batch_size": 32,
        "seed": 4,
        "warmup_epochs": 1.5,
        "world_size": 1,
        "check_every": 50,
        "precision": "fp32",
    }


def test_flat_settings_build_the_same_spec():
    flat = RunSpec.from_settings(
        "vae", options={"z_dim": 2, "hidden": (16,)}, dataset="trimodal-digits", data_root="somewhere",
        binarize="fixed", download=True, train_examples=64, test_examples=32, modalities=("m", "s"),
        epochs=3, batch_size=32, seed=4, warmup_epochs=1.5, device="cpu",
    )  # fmt: skip
    assert flat == SPEC
    assert SPEC.replace(epochs=5).train == TrainSpec(epochs=5, batch_size=32, seed=4, warmup_epochs=1.5)
    with pytest.raises(TypeError, match=r"unknown run setting\(s\) \['epoch'\]"):
        SPEC.replace(epoch=5)


def test_a_spec_is_checked_as_it_is_made():
    with pytest.raises(ValueError) as error:
        RunSpec.from_settings("vae", epochs=0, seed=-1, binarize="maybe", test_examples=0)
    message = str(error.value)
    for text in (
        "epochs (--epochs) must be an integer >= 1, got 0",
        "seed (--seed) must be an integer >= 0, got -1",
        "binarize (--binarize) must be one of dynamic, fixed, none, got 'maybe'",
        "test_examples (--test-examples) must be an integer >= 1, got 0",
    ):
        assert text in message
    with pytest.raises(KeyError, match="unknown dataset 'cifar'"):
        RunSpec.from_settings("vae", dataset="cifar")
    with pytest.raises(TypeError, match=r"has no option\(s\) \['zdim'\]"):
        RunSpec.from_settings("vae", options={"zdim": 2})
    with pytest.raises(ValueError, match="warmup_epochs"):
        SPEC.replace(warmup_epochs=-1.0)  # a changed spec is checked again


def test_a_resume_comparison_names_exactly_the_differing_settings(tmp_path):
    asked = SPEC.replace(
        epochs=30,  # a resume may change these three
        device="auto",
        download=False,
        batch_size=16,
        data_root=str(tmp_path),
        modalities=["m"],
        options={"z_dim": 3, "hidden": [16], "beta": 1.0},  # hidden as stored, beta the model's default
    )
    assert spec_differences(SPEC, asked) == [
        Difference("data_root", "--data-root", "somewhere", str(tmp_path)),
        Difference("modalities", "--modalities", ["m", "s"], ["m"]),
        Difference("batch_size", "--batch-size", 32, 16),
        Difference("z_dim", "-o", 2, 3),
    ]
    assert spec_differences(SPEC, SPEC.replace(model="beta-vae", options={}))[0] == Difference(
        "model", "MODEL", "vae", "beta-vae"
    )
    # the same folder spelled otherwise is the same data root
    assert spec_differences(SPEC, SPEC.replace(data_root="./somewhere/")) == []


@dataclass(frozen=True)
class AccumulatingTrainSpec(TrainSpec):
    """A training part with one more setting (a trainer taking ``accumulate`` would read it)."""

    accumulate: int = field(default=1, metadata=setting(check=integer_at_least(1)))


@dataclass(frozen=True)
class AccumulatingRunSpec(RunSpec):
    train: AccumulatingTrainSpec = field(default_factory=AccumulatingTrainSpec)


def test_a_new_field_is_serialised_checked_and_compared_without_other_changes():
    spec = AccumulatingRunSpec.from_settings("vae", accumulate=2, epochs=3)
    assert "accumulate" in AccumulatingRunSpec.settings()  # `train` fills it from args.accumulate
    config = spec.to_config()
    assert config["train"]["accumulate"] == 2
    assert AccumulatingRunSpec.from_config(json.loads(json.dumps(config))) == spec
    assert spec_differences(spec, spec.replace(accumulate=4)) == [
        Difference("accumulate", "--accumulate", 2, 4)
    ]
    with pytest.raises(ValueError, match=r"accumulate \(--accumulate\) must be an integer >= 1, got 0"):
        spec.replace(accumulate=0)
    # a config.json from before the field gets its default; one with a setting unknown here is refused
    assert AccumulatingRunSpec.from_config(SPEC.to_config()).train.accumulate == 1
    with pytest.raises(ValueError, match=r"config.json's train has unknown setting\(s\) \['accumulate'\]"):
        RunSpec.from_config(config)


def test_a_config_json_written_before_the_spec_loads_and_resumes(tmp_path, capsys):
    spec = RunSpec.from_config(OLD_CONFIG)
    assert spec == RunSpec.from_settings(
        "vae", options=OLD_CONFIG["options"], epochs=1, batch_size=64, device="cpu", test_examples=32
    )
    # a run with those settings, its config.json replaced by the old one, continues
    run = tmp_path / "run"
    small = spec.replace(options={"z_dim": 2, "hidden": [16]})
    train_run(small, run, progress=False)
    assert read_config(run)["options"] == OLD_CONFIG["options"]
    (run / "config.json").write_text(json.dumps(OLD_CONFIG))
    assert main(["train", "vae", "--resume", str(run), "--batch-size", "32", "--no-eval"]) == 1
    assert "--batch-size 32 (the run has 64)" in capsys.readouterr().err
    with pytest.raises(FileExistsError, match="test_examples: 32 there, None asked"):
        fit_run(small.replace(epochs=2, test_examples=None), run, progress=False)
    fit_run(small.replace(epochs=2), run, progress=False)
    assert load_checkpoint(run)["epoch"] == 2
    config = read_config(Path(run))
    assert config["train"]["epochs"] == 2 and config["resumed"][0]["from_epoch"] == 1
    assert RunSpec.from_config(config) == spec.replace(epochs=2)
