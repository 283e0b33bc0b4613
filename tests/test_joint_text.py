"""A model's joint names its variables as its factorisation does (pixyz_zoo.distributions.text)."""

from __future__ import annotations

import re

import pytest

import pixyz_zoo  # noqa: F401  (first: turns Pixyz's parameter cache off)
from pixyz_zoo.datasets import load_dataset
from pixyz_zoo.distributions.text import joint_text, joint_variables
from pixyz_zoo.models import MODELS, build_model
from tests.registered_models import built


def generative_line(model) -> str:
    lines = str(model).splitlines()
    return lines[lines.index("Generative model:") + 1].strip()


@pytest.mark.parametrize(
    "name,dataset,joint",
    [
        ("jmvae", "digits", "p(x,y,z) = p(x|z)p(y|z)p(z)"),
        ("mopoe", "trimodal-digits", "p(m,s,t,z) = p(m|z)p(s|z)p(t|z)p(z)"),
        (
            "hierarchical-jmvae",
            "trimodal-digits",
            "p(m,s,t,z_{1},z_{2}) = p(m|z_{1})p(s|z_{1})p(t|z_{1})p(z_{1}|z_{2})p(z_{2})",
        ),
        ("cvae", "digits", "p(x,z|y) = p(x|z,y)p(z)"),
        ("vae", "digits", "p(x,z) = p(x|z)p(z)"),
    ],
)
def test_printed_joints(name: str, dataset: str, joint: str) -> None:
    model = build_model(name, load_dataset(dataset, "test").modalities, hidden=[8])
    assert generative_line(model) == joint
    # the same distribution: Pixyz's text lists the same variables, in the order its graph met them
    pixyz = model.generative.prob_joint_factorized_and_text
    assert pixyz.split(" = ")[1:] == joint.split(" = ")[1:]
    assert sorted(model.generative.var) == sorted(joint_variables(model.generative))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_prints_its_joint_in_the_order_of_its_factors(name: str) -> None:
    model, _ = built(name)
    line = generative_line(model)
    assert line == joint_text(model.generative)
    joint, factorised = line.split(" = ") if " = " in line else (line, line)
    variables = re.match(r"p\(([^|)]*)", joint).group(1).split(",")
    named = [factor.split("|")[0].rstrip(")") for factor in re.findall(r"p\(([^)]*)\)", factorised)]
    assert variables == [v for group in named for v in group.split(",")]
