"""A training step evaluates the loss expression through ``loss_evaluator``: the value and the
gradients of ``loss.eval``, to the bit, for every registered model; Pixyz's own ``eval`` where the
evaluator does not know a node."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from pixyz.distributions import Normal
from pixyz.losses import Expectation, KullbackLeibler, LogProb, Parameter
from pixyz.losses.losses import Loss

from pixyz_zoo.datasets import DATASETS, load_dataset
from pixyz_zoo.distributions import MLP, GaussianEncoder, decoder_for, decoder_network
from pixyz_zoo.distributions.shared_parameters import shared_parameters
from pixyz_zoo.losses.evaluation import loss_evaluator
from pixyz_zoo.modalities import Modality
from pixyz_zoo.models import MODELS, build_model, model_options
from pixyz_zoo.models.base import ZooModel, argument_validation

TINY = {"hidden": [16], "z_dim": 2, "style_dim": 2}


@functools.cache
def offline_data(name: str) -> Any:
    return load_dataset(name, "train").subset(slice(0, 16))


def model_on_an_offline_dataset(name: str) -> tuple[ZooModel, Any]:
    """``name`` built (tiny) on the first offline dataset it accepts, and that dataset."""
    options = {k: v for k, v in TINY.items() if k in model_options(name)}
    for dataset in sorted(n for n, spec in DATASETS.items() if spec.offline):
        data = offline_data(dataset)
        if MODELS[name].needs_labels and data.labels is not None:
            data = data.with_labels()
        extra = {"target": next(iter(data.modalities))} if "target" in model_options(name) else {}
        try:
            return build_model(name, data.modalities, **options, **extra), data
        except (ValueError, KeyError):
            continue
    raise AssertionError(f"no offline dataset fits {name}")


def value_and_gradients(model: ZooModel, evaluate: Any, inputs: dict) -> tuple[torch.Tensor, list]:
    """The loss (as a training step evaluates it, seed fixed) and every parameter's gradient."""
    model.distributions.train()
    model.optimizer.zero_grad()
    torch.manual_seed(0)
    with shared_parameters(), argument_validation(False):
        loss = evaluate(inputs)
    loss.backward()
    grads = [None if p.grad is None else p.grad.clone() for p in model.distributions.parameters()]
    return loss.detach(), grads


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_training_loss_is_pixyzs_eval_to_the_bit(name):
    torch.manual_seed(1)
    model, data = model_on_an_offline_dataset(name)
    model.prepare(data)
    inputs = model.feed({k: data.first(8)[k] for k in model.modalities})
    expected, expected_grads = value_and_gradients(model, model.loss_cls.eval, inputs)
    value, grads = value_and_gradients(model, model.training_loss_evaluator, inputs)
    assert torch.equal(value, expected), (float(value), float(expected))
    assert len(grads) == len(expected_grads)
    for got, want in zip(grads, expected_grads, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            assert torch.equal(got, want)


class CountingEval:
    """Counts the calls of ``Loss.eval`` (Pixyz's per-node evaluation)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        original = Loss.eval

        def counted(loss: Loss, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(type(loss).__name__)
            return original(loss, *args, **kwargs)

        monkeypatch.setattr(Loss, "eval", counted)


def test_pixyzs_nodes_are_not_walked_at_each_step(monkeypatch, digits_train):
    """The VAE's and JMVAE-kl's expressions hold only nodes the evaluator knows: a step calls no
    ``Loss.eval`` (before, Pixyz's walk called it once per node)."""
    counting = CountingEval(monkeypatch)
    for name in ("vae", "jmvae-kl"):
        model = build_model(name, digits_train.modalities, z_dim=2, hidden=[16])
        inputs = model.feed(digits_train.first(8))
        model.loss_cls.eval(inputs)
        assert len(counting.calls) >= 8, counting.calls  # the expression's nodes
        counting.calls.clear()
        model.training_loss_evaluator(inputs)
        assert counting.calls == []


def small_vae_parts() -> tuple[GaussianEncoder, Any, Normal]:
    image = Modality("x", (1, 8, 8), "bernoulli")
    q = GaussianEncoder(MLP(64, 4, [8]), cond_var=["x"])
    p = decoder_for(image, decoder_network(image, 2, hidden=[8]))
    prior = Normal(loc=torch.tensor(0.0), scale=torch.tensor(1.0), var=["z"], features_shape=[2], name="p")
    return q, p, prior


def test_several_samples_unknown_nodes_and_keyword_arguments_match_pixyz(monkeypatch):
    q, p, prior = small_vae_parts()
    x = torch.bernoulli(torch.full((5, 1, 8, 8), 0.5))

    class Doubled(Loss):  # a node the evaluator does not know: evaluated by its own eval
        def __init__(self, inner: Loss) -> None:
            super().__init__(inner.input_var)
            self.inner = inner

        @property
        def _symbol(self) -> Any:
            return 2 * self.inner._symbol

        def forward(self, x_dict: dict, **kwargs: Any) -> tuple[torch.Tensor, dict]:
            return 2 * self.inner.eval(x_dict), {}

    loss = (
        Expectation(q, -LogProb(p), sample_shape=(3,))
        + Parameter("beta") * KullbackLeibler(q, prior)
        + Doubled(KullbackLeibler(q, prior))
    ).mean()
    evaluate = loss_evaluator(loss)
    for kwargs in ({}, {"unused": 1}):
        torch.manual_seed(0)
        expected = loss.eval({"x": x, "beta": 0.5}, **kwargs)
        torch.manual_seed(0)
        assert torch.equal(evaluate({"x": x, "beta": 0.5}, **kwargs), expected)
    counting = CountingEval(monkeypatch)
    loss_evaluator(loss)({"x": x, "beta": 0.5})
    assert counting.calls == ["Doubled", "AnalyticalKullbackLeibler"]  # the unknown node's subtree


def test_missing_inputs_get_pixyzs_error():
    q, p, prior = small_vae_parts()
    loss = (Parameter("beta") * KullbackLeibler(q, prior)).mean()
    with pytest.raises(ValueError, match="Input keys are not valid"):
        loss_evaluator(loss)({"x": torch.zeros(2, 1, 8, 8)})
