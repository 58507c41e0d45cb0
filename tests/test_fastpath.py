"""The recipes' tensor fast paths compute what their module paths compute.

DQN's ``train_step`` / ``env_step``, SAC's ``update`` and PPO's ``collect`` / ``update`` call
the recipe-built networks as plain functions (:mod:`tdrl.recipes.fastpath`); each test runs
an algorithm on the fast path and a twin of it (same seed, same weights) on the generic
module path from the same torch RNG state, and compares what they produce.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tdrl.modules import MLP
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.ppo_agent import AgentParts
from tdrl.recipes.ppo_calls import OperatorCalls, TensorCalls

pytest.importorskip("gymnasium")

from tdrl.recipes.envs import probe_env  # noqa: E402
from tdrl.recipes.rng import seed_everything  # noqa: E402


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


def _build(algo: str, env_id: str, **overrides):
    from tdrl.recipes import get_recipe
    from tdrl.recipes.config import resolve_config

    env = probe_env(env_id)
    recipe = get_recipe(algo)
    explicit = {"env": env_id, "seed": 0, "threads": 1, **overrides}
    cfg = resolve_config(recipe.config, explicit, recipe.defaults_for(env_id, env.action_space))
    cfg.validate()
    seed_everything(0)
    return recipe.algorithm(cfg, env)


def _same(a, b):
    """Bit for bit: the fast paths run the very ops of the module paths (a seeded run of the
    recipe reproduces exactly)."""
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def _dqn_generic(algo):
    algo.q_fn, algo.target_q_fn, algo.fast_act = algo.q_values, algo.target_q_values, False


def test_dqn_fast_paths_equal_the_module_paths():
    fast = _build("dqn", "CartPole-v1", total_steps=2_000, learning_starts=0, batch_size=16,
                  buffer_size=500, hidden=(16, 16))
    slow = _build("dqn", "CartPole-v1", total_steps=2_000, learning_starts=0, batch_size=16,
                  buffer_size=500, hidden=(16, 16))
    try:
        assert fast.fast_act and fast.q_fn is not fast.q_values
        _dqn_generic(slow)
        slow.qnet.load_state_dict(fast.qnet.state_dict())
        slow.target.load_state_dict(fast.target.state_dict())
        with torch.no_grad():  # epsilon mid-way: both the greedy and the random branch run
            fast.egreedy.eps.fill_(0.5)
            slow.egreedy.eps.fill_(0.5)
        for _ in range(40):
            rng = torch.get_rng_state()
            fast.env_step()
            torch.set_rng_state(rng)
            slow.env_step()
        assert len(fast.buffer) == len(slow.buffer) > 0
        for key in fast.buffer.storage.keys():
            assert torch.equal(fast.buffer.storage[key], slow.buffer.storage[key]), key
        for _ in range(3):
            rng = torch.get_rng_state()
            out_fast = fast.train_step()
            torch.set_rng_state(rng)
            out_slow = slow.train_step()
            _same(out_fast, out_slow)
        _same(list(fast.qnet.parameters()), list(slow.qnet.parameters()))
        _same(fast.grad_norms, slow.grad_norms)
    finally:
        fast.close()
        slow.close()


def test_dqn_user_module_stays_on_the_module_path():
    algo = _build("dqn", "CartPole-v1", total_steps=1_000, buffer_size=500,
                  module="user_nets:make_qnet")
    try:
        assert not algo.fast_act and algo.q_fn is algo.q_values
    finally:
        algo.close()


def test_sac_fast_update_equals_the_operator_update():
    fast = _build("sac", "Pendulum-v1", total_steps=200, learning_starts=0, batch_size=8,
                  hidden=(16, 16))
    slow = _build("sac", "Pendulum-v1", total_steps=200, learning_starts=0, batch_size=8,
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
            _same([out_fast], [out_slow])
        _same(list(fast.agent.parameters()), list(slow.agent.parameters()))
        _same(list(fast.target_agent.parameters()), list(slow.target_agent.parameters()))
        _same([fast.log_alpha], [slow.log_alpha])
    finally:
        fast.close()
        slow.close()


def test_sac_shared_trunk_stays_on_the_operator_path():
    algo = _build("sac", "Pendulum-v1", total_steps=200, hidden=(16, 16), shared_trunk=True)
    try:
        assert algo.fast is None
    finally:
        algo.close()


def _ppo_pair(**overrides):
    kw = {"total_steps": 10_000, "num_envs": 2, "n_steps": 8, "hidden": (8, 8), **overrides}
    fast, slow = _build("ppo", "CartPole-v1", **kw), _build("ppo", "CartPole-v1", **kw)
    assert isinstance(fast.calls, TensorCalls)
    parts = AgentParts(slow.agent, slow.common, slow.policy, slow.value, slow.trunk, slow.obs_norm)
    slow.calls = OperatorCalls(parts, slow.memory)
    slow.agent.load_state_dict(fast.agent.state_dict())
    return fast, slow


@pytest.mark.parametrize("overrides", [
    {"batch_size": 16, "epochs": 2},
    {"batch_size": 4, "epochs": 2, "ent_coef": 0.01},
    {"batch_size": 16, "epochs": 1, "norm_adv": False, "anneal_lr": False},
    {"batch_size": 8, "epochs": 2, "normalize_obs": True},
], ids=["whole-rollout", "minibatches-entropy", "no-norm", "normalized-obs"])
def test_ppo_fast_collect_and_update_equal_the_operator_path(overrides):
    fast, slow = _ppo_pair(**overrides)
    try:
        for _ in range(2):
            rng = torch.get_rng_state()
            batch_fast = fast.collect()
            torch.set_rng_state(rng)
            batch_slow = slow.collect()
            assert sorted(batch_fast.keys()) == sorted(batch_slow.keys())
            assert batch_fast.batch_size == batch_slow.batch_size
            for key in batch_slow.keys():
                _same([batch_fast[key]], [batch_slow[key]])
            assert torch.equal(fast.obs, slow.obs) and fast.global_step == slow.global_step
            rng = torch.get_rng_state()
            row_fast = fast.update(batch_fast)
            torch.set_rng_state(rng)
            row_slow = slow.update(batch_slow)
            assert sorted(row_fast) == sorted(row_slow)
            for key in row_slow:
                assert row_fast[key] == row_slow[key], key
            _same(list(fast.agent.parameters()), list(slow.agent.parameters()))
        stats_fast, stats_slow = fast.stats.state_dict(), slow.stats.state_dict()
        assert sorted(stats_fast) == sorted(stats_slow)
        for key, value in stats_slow.items():
            np.testing.assert_array_equal(np.asarray(stats_fast[key]), np.asarray(value))
    finally:
        fast.close()
        slow.close()


@pytest.mark.parametrize("overrides", [
    {"discrete_dist": "onehot"},
    {"module": "user_nets:make_agent"},
    {"recurrent": "gru"},
], ids=["onehot", "user-module", "recurrent"])
def test_ppo_other_agents_stay_on_the_operator_path(overrides):
    algo = _build("ppo", "CartPole-v1", total_steps=10_000, num_envs=2, n_steps=8,
                  batch_size=16, **overrides)
    try:
        assert isinstance(algo.calls, OperatorCalls)
    finally:
        algo.close()
