"""LeanAdam (tdrl/recipes/optim.py): torch's fused Adam, bit for bit, with a short step path.

Every comparison is against ``torch.optim.Adam(fused=True)`` run side by side on a copy of
the same network with the same gradients. Under ``TDRL_COMPAT_FALLBACK=1`` the short path
declines (``fused_adam_step`` returns False) and the same assertions hold through torch's step.
"""
from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tdrl._compat import FORCE_FALLBACK
from tdrl.recipes import optim
from tdrl.recipes.optim import LeanAdam, make_adam


def _pair(seed: int = 0, **kw):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    twin = copy.deepcopy(net)
    return net, LeanAdam(net.parameters(), fused=True, **kw), twin, torch.optim.Adam(
        twin.parameters(), fused=True, **kw)


def _grads(net: nn.Module, x: torch.Tensor) -> None:
    for p in net.parameters():
        p.grad = None
    net(x).pow(2).sum().backward()


def _step_both(net, lean, twin, plain, x: torch.Tensor, steps: int) -> None:
    """``steps`` steps of each optimizer on the same input's gradients."""
    for _ in range(steps):
        _grads(net, x)
        _grads(twin, x)
        lean.step()
        plain.step()


def _same(a: nn.Module, b: nn.Module) -> None:
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@settings(max_examples=25, deadline=None)
@given(lrs=st.lists(st.floats(1e-5, 0.5), min_size=1, max_size=6),
       weight_decay=st.sampled_from([0.0, 0.01]), maximize=st.booleans(),
       seed=st.integers(0, 2**16))
def test_steps_equal_torch_fused_adam_bit_for_bit(lrs, weight_decay, maximize, seed):
    net, lean, twin, plain = _pair(seed, weight_decay=weight_decay, maximize=maximize,
                                   betas=(0.8, 0.99), eps=1e-5)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(seed))
    for lr in lrs:  # an annealed learning rate, set between steps as the recipes do
        for opt in (lean, plain):
            opt.param_groups[0]["lr"] = lr
        _grads(net, x)
        _grads(twin, x)
        lean.step()
        plain.step()
        _same(net, twin)
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(lean.state[p][key], plain.state[q][key], rtol=0, atol=0)


def test_the_short_path_is_taken_after_the_first_step(monkeypatch):
    calls = []
    real = optim.fused_adam_step

    def spy(*args, **kwargs):
        calls.append(len(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(optim, "fused_adam_step", spy)
    net, lean, twin, plain = _pair()
    _step_both(net, lean, twin, plain, torch.ones(2, 5), steps=3)
    assert calls == [4, 4]  # step 1 creates the state through torch's step; then the kernel
    # (under TDRL_COMPAT_FALLBACK the calls decline and torch's step runs)
    _same(net, twin)


def test_a_parameter_without_gradient_takes_torchs_step_and_stays_put():
    net, lean, twin, plain = _pair()
    x = torch.ones(2, 5)
    for step in range(3):
        _grads(net, x)
        _grads(twin, x)
        if step == 2:  # the first layer's bias gets no gradient this step
            net[0].bias.grad = twin[0].bias.grad = None
        before = net[0].bias.detach().clone()
        lean.step()
        plain.step()
    torch.testing.assert_close(net[0].bias, before, rtol=0, atol=0)
    _same(net, twin)


def test_groups_closures_hooks_and_state_dicts_behave_as_torchs():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    twin = copy.deepcopy(net)
    groups = lambda m: [{"params": m[0].parameters(), "lr": 0.1},  # noqa: E731
                        {"params": m[1].parameters(), "lr": 0.01}]
    lean, plain = LeanAdam(groups(net), fused=True), torch.optim.Adam(groups(twin), fused=True)
    seen = []
    lean.register_step_pre_hook(lambda opt, args, kwargs: seen.append("pre"))
    lean.register_step_post_hook(lambda opt, args, kwargs: seen.append("post"))
    x = torch.ones(2, 3)
    _step_both(net, lean, twin, plain, x, steps=2)
    # once a step (under TDRL_COMPAT_FALLBACK torch's step runs inside LeanAdam's: twice)
    assert seen == ["pre", "pre", "post", "post"] * 2 if FORCE_FALLBACK else ["pre", "post"] * 2
    _same(net, twin)

    def closure():
        lean.zero_grad()
        loss = net(x).sum()
        loss.backward()
        return loss

    assert lean.step(closure).item() == pytest.approx(net(x).sum().item(), abs=1.0)
    # the state dict is torch's: it moves both ways and the runs continue equal
    fresh_net, fresh_twin = copy.deepcopy(net), copy.deepcopy(net)
    moved = torch.optim.Adam(groups(fresh_twin), fused=True)
    moved.load_state_dict(copy.deepcopy(lean.state_dict()))  # (as a checkpoint file would:
    back = LeanAdam(groups(fresh_net), fused=True)           # no tensors shared between them)
    back.load_state_dict(copy.deepcopy(moved.state_dict()))
    _grads(fresh_net, x)
    _grads(fresh_twin, x)
    back.step()
    moved.step()
    _same(fresh_net, fresh_twin)


def test_make_adam_gives_a_lean_fused_adam_with_the_recipes_settings():
    opt = make_adam(nn.Linear(2, 2).parameters(), 3e-4, eps=1e-5)
    assert type(opt) is LeanAdam and isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert (group["lr"], group["eps"], group["fused"], group["amsgrad"]) == (3e-4, 1e-5, True,
                                                                            False)
