"""The recipes' tensor fast paths compute what their module paths compute.

DQN's ``train_step`` / ``env_step``, SAC's ``update`` and PPO's ``collect`` / ``update`` call
the recipe-built networks as plain functions (:mod:`tdrl.recipes.fastpath`); each test runs
an algorithm on the fast path and a twin of it (same seed, same weights) on the generic
module path from the same torch RNG state, and compares what they produce.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tdrl.modules import MLP
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.ppo_calls import OperatorCalls

pytest.importorskip("gymnasium")

from fastpath_helpers import (  # noqa: E402
    build,
    check_dqn_pair,
    check_ppo_pair,
    dqn_pair,
    ppo_pair,
    same,
)


@settings(max_examples=20, deadline=None)
@given(
    cells=st.lists(st.integers(1, 6), max_size=3),
    act=st.sampled_from([nn.ReLU, nn.Tanh, nn.ELU]),
    last=st.booleans(),
    batch=st.integers(1, 5),
)
def test_plain_forward_equals_the_module(cells, act, last, batch):
    torch.manual_seed(len(cells))
    net = MLP(in_features=3, out_features=2, num_cells=cells, activation_class=act,
              activate_last_layer=last)
    x = torch.randn(batch, 3, requires_grad=True)
    fn = plain_forward(net)
    out_fast, out_mod = fn(x), net(x)
    assert torch.equal(out_fast, out_mod)
    g_fast = torch.autograd.grad(out_fast.sum(), [x, *net.parameters()])
    g_mod = torch.autograd.grad(out_mod.sum(), [x, *net.parameters()])
    for a, b in zip(g_fast, g_mod):
        assert torch.equal(a, b)


@pytest.mark.parametrize("acts", [[nn.ReLU], [nn.Tanh], [nn.ELU], [nn.ReLU, nn.Tanh],
                                  [nn.Tanh, nn.ReLU, nn.ELU]], ids=lambda a: "-".join(
                                      c.__name__ for c in a))
def test_plain_forward_in_place_activations_keep_values_and_gradients(acts):
    # the first activation after a Linear runs in place; those after it must not
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), *[a() for a in acts], nn.Linear(4, 2), *[a() for a in acts])
    x = torch.randn(5, 3, requires_grad=True)
    out_fast, out_mod = plain_forward(net)(x), net(x)
    assert torch.equal(out_fast, out_mod)
    g_fast = torch.autograd.grad(out_fast.pow(2).sum(), [x, *net.parameters()])
    g_mod = torch.autograd.grad(out_mod.pow(2).sum(), [x, *net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(g_fast, g_mod))


def test_plain_forward_follows_in_place_weight_updates():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    fn = plain_forward(net)
    with torch.no_grad():
        net[2].bias.fill_(5.0)
        net[0].weight.zero_()
        net[0].bias.zero_()
    assert fn(torch.ones(3, 2)).tolist() == [[5.0]] * 3


@pytest.mark.parametrize("net", [
    nn.Sequential(nn.Linear(2, 2), nn.Dropout()),
    nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)),
    nn.Sequential(nn.ReLU(), nn.Linear(2, 2)),
    nn.Sequential(),
    MLP(in_features=2, out_features=(2, 3), num_cells=[4]),
    nn.Conv1d(1, 1, 1),
], ids=["dropout", "norm", "activation-first", "empty", "reshaped-output", "conv"])
def test_plain_forward_declines_other_networks(net):
    assert plain_forward(net) is None


def test_dqn_fast_paths_equal_the_module_paths():
    fast, slow = dqn_pair("CartPole-v1", total_steps=2_000, learning_starts=0, batch_size=16,
                          buffer_size=500, hidden=(16, 16))
    check_dqn_pair(fast, slow, env_steps=40, train_steps=3)


def test_dqn_user_module_stays_on_the_module_path():
    algo = build("dqn", "CartPole-v1", total_steps=1_000, buffer_size=500,
                  module="user_nets:make_qnet")
    try:
        assert not algo.fast_act and algo.q_fn is algo.q_values
    finally:
        algo.close()


def test_sac_fast_update_equals_the_operator_update():
    fast = build("sac", "Pendulum-v1", total_steps=200, learning_starts=0, batch_size=8,
                  hidden=(16, 16))
    slow = build("sac", "Pendulum-v1", total_steps=200, learning_starts=0, batch_size=8,
                  hidden=(16, 16))
    try:
        assert fast.fast is not None
        slow.fast = None
        slow.agent.load_state_dict(fast.agent.state_dict())
        slow.target_agent.load_state_dict(fast.target_agent.state_dict())
        for _ in range(16):
            rng = torch.get_rng_state()
            fast.env_step()
            torch.set_rng_state(rng)
            slow.env_step()
        for key in fast.buffer.storage.keys():
            assert torch.equal(fast.buffer.storage[key], slow.buffer.storage[key]), key
        for _ in range(3):
            rng = torch.get_rng_state()
            out_fast = fast.update()
            torch.set_rng_state(rng)
            out_slow = slow.update()
            same([out_fast], [out_slow])
        same(list(fast.agent.parameters()), list(slow.agent.parameters()))
        same(list(fast.target_agent.parameters()), list(slow.target_agent.parameters()))
        same([fast.log_alpha], [slow.log_alpha])
    finally:
        fast.close()
        slow.close()


def test_sac_shared_trunk_stays_on_the_operator_path():
    algo = build("sac", "Pendulum-v1", total_steps=200, hidden=(16, 16), shared_trunk=True)
    try:
        assert algo.fast is None
    finally:
        algo.close()


def _ppo_pair(**overrides):
    kw = {"total_steps": 10_000, "num_envs": 2, "n_steps": 8, "hidden": (8, 8), **overrides}
    return ppo_pair("CartPole-v1", **kw)


@pytest.mark.parametrize("overrides", [
    {"batch_size": 16, "epochs": 2},
    {"batch_size": 4, "epochs": 2, "ent_coef": 0.01},
    {"batch_size": 16, "epochs": 1, "norm_adv": False, "anneal_lr": False},
    {"batch_size": 8, "epochs": 2, "normalize_obs": True},
], ids=["whole-rollout", "minibatches-entropy", "no-norm", "normalized-obs"])
def test_ppo_fast_collect_and_update_equal_the_operator_path(overrides):
    check_ppo_pair(*_ppo_pair(**overrides))


@pytest.mark.parametrize("overrides", [
    {"discrete_dist": "onehot"},
    {"module": "user_nets:make_agent"},
    {"recurrent": "gru"},
], ids=["onehot", "user-module", "recurrent"])
def test_ppo_other_agents_stay_on_the_operator_path(overrides):
    algo = build("ppo", "CartPole-v1", total_steps=10_000, num_envs=2, n_steps=8,
                  batch_size=16, **overrides)
    try:
        assert isinstance(algo.calls, OperatorCalls)
    finally:
        algo.close()
