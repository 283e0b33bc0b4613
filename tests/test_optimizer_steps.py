"""The optimiser's part of a training step: the direct fused Adam step is ``optimizer.step()`` to the
bit, a skipped step changes nothing, and whatever the direct step does not cover goes through
``optimizer.step()``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pixyz_zoo.models.optimizer_steps import masked_step, zero_gradients


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.Linear(2, 2))  # the last: no grad


def backward(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    x = torch.randn(4, 5)
    model[2](model[1](model[0](x))).pow(2).sum().backward()


def torch_step(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """What the step was before the direct path: ``optimizer.step()`` with the flag as ``found_inf``."""
    optimizer.found_inf = skip.float()  # type: ignore[attr-defined]
    optimizer.step()
    del optimizer.found_inf  # type: ignore[attr-defined]


def assert_same(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    for group_a, group_b in zip(a.param_groups, b.param_groups, strict=True):
        for p, q in zip(group_a["params"], group_b["params"], strict=True):
            assert torch.equal(p, q)
            state_a, state_b = a.state.get(p, {}), b.state.get(q, {})
            assert state_a.keys() == state_b.keys()
            for key in state_a:
                assert torch.equal(state_a[key], state_b[key]), key


def pair(**options: object) -> tuple[list[nn.Module], list[torch.optim.Optimizer]]:
    model = network()
    models = [model, copy.deepcopy(model)]
    return models, [torch.optim.Adam(m.parameters(), fused=True, **options) for m in models]


@pytest.fixture
def step_calls(monkeypatch) -> list[torch.optim.Optimizer]:
    """The optimisers whose ``step()`` is called (Adam's, counted)."""
    calls, original = [], torch.optim.Adam.step

    def counted(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    return calls


@pytest.mark.parametrize(
    "options", [{"lr": 1e-2}, {"lr": 3e-3, "weight_decay": 0.1, "betas": (0.5, 0.9), "eps": 1e-3}]
)
def test_the_direct_step_is_the_torch_step_to_the_bit_and_a_skip_changes_nothing(step_calls, options):
    (direct, reference), (direct_opt, reference_opt) = pair(**options)
    for step, skip in enumerate([False, False, True, False, True, False]):
        for model, optimizer in ((direct, direct_opt), (reference, reference_opt)):
            zero_gradients(optimizer)
            backward(model, step)
        flag = torch.tensor(skip)
        before = [p.detach().clone() for p in direct.parameters()]
        masked_step(direct_opt, flag)
        torch_step(reference_opt, flag)
        assert_same(direct_opt, reference_opt)
        changed = [not torch.equal(b, p) for b, p in zip(before, direct.parameters(), strict=True)]
        assert changed == [not skip] * 4 + [False] * 2  # the last layer has no gradient
    # the first step creates the state through optimizer.step(); the others go direct
    assert [o for o in step_calls if o is direct_opt] == [direct_opt]
    assert float(direct_opt.state[direct[0].weight]["step"]) == 4  # two of six steps skipped
    assert not direct_opt.state.get(direct[3].weight)


def scheduled(optimizer: torch.optim.Optimizer) -> None:
    torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)


def post_hook(optimizer: torch.optim.Optimizer) -> None:
    optimizer.register_step_post_hook(lambda *args: optimizer.param_groups[0].__setitem__("lr", 1e-3))


@pytest.mark.parametrize(
    "options, attach",
    [({"amsgrad": True}, None), ({"maximize": True}, None), ({}, scheduled), ({}, post_hook)],
    ids=["amsgrad", "maximize", "lr-scheduler", "step-hook"],
)
def test_what_the_direct_step_does_not_cover_goes_through_optimizer_step(step_calls, options, attach):
    (direct, reference), (direct_opt, reference_opt) = pair(lr=1e-2, **options)
    for optimizer in (direct_opt, reference_opt):
        if attach is not None:
            attach(optimizer)
    for step, skip in enumerate([False, True, False]):
        for model, optimizer in ((direct, direct_opt), (reference, reference_opt)):
            zero_gradients(optimizer)
            backward(model, step)
        masked_step(direct_opt, torch.tensor(skip))
        torch_step(reference_opt, torch.tensor(skip))
        assert_same(direct_opt, reference_opt)
        assert direct_opt.param_groups[0]["lr"] == reference_opt.param_groups[0]["lr"]
    assert len([o for o in step_calls if o is direct_opt]) == 3


def test_zero_gradients_clears_every_gradient_and_keeps_an_optimisers_own_zero_grad():
    (model, _), (optimizer, _) = pair()
    backward(model, 0)
    zero_gradients(optimizer)
    assert all(p.grad is None for p in model.parameters())

    class Recorded(torch.optim.Adam):
        calls = 0

        def zero_grad(self, set_to_none: bool = True) -> None:
            Recorded.calls += 1
            super().zero_grad(set_to_none)

    recorded = Recorded(model.parameters())
    backward(model, 0)
    zero_gradients(recorded)
    assert Recorded.calls == 1 and all(p.grad is None for p in model.parameters())
    wrapped = torch.optim.Adam(model.parameters())
    wrapped.zero_grad = lambda set_to_none=True: Recorded.zero_grad(recorded)  # one set on the instance
    zero_gradients(wrapped)
    assert Recorded.calls == 2
