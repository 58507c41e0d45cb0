"""Shared by tests/test_fastpath.py and tests/test_fastpath_pixels.py: a recipe's algorithm on its
tensor fast path and a twin on the module path, stepped from the same RNG states and compared bit
for bit (the fast paths run the very ops of the module paths, so seeded runs reproduce exactly)."""
from __future__ import annotations

import numpy as np
import torch

from tdrl.recipes import get_recipe
from tdrl.recipes.config import resolve_config
from tdrl.recipes.envs import probe_env
from tdrl.recipes.ppo_agent import AgentParts
from tdrl.recipes.ppo_calls import OperatorCalls, TensorCalls
from tdrl.recipes.rng import seed_everything


def build(algo: str, env_id: str, **overrides):
    """The recipe's algorithm object at its defaults for ``env_id`` (seed 0, one thread)."""
    env = probe_env(env_id)
    recipe = get_recipe(algo)
    explicit = {"env": env_id, "seed": 0, "threads": 1, **overrides}
    cfg = resolve_config(recipe.config, explicit, recipe.defaults_for(env_id, env.action_space))
    cfg.validate()
    seed_everything(0)
    return recipe.algorithm(cfg, env)


def same(a, b):
    """Bit for bit equal sequences of tensors."""
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def _storage(buffer) -> dict:
    inner = getattr(buffer, "transitions", buffer)  # FrameReplay keeps frame ids + frames
    out = dict(inner.storage.items())
    if inner is not buffer:
        out["frames"] = buffer.frames
    return out


def dqn_pair(env_id: str, **overrides):
    """DQN on its fast path and a twin on the module path, with the same weights."""
    fast, slow = build("dqn", env_id, **overrides), build("dqn", env_id, **overrides)
    assert fast.fast_act and fast.q_fn is not fast.q_values
    slow.q_fn, slow.target_q_fn, slow.fast_act = slow.q_values, slow.target_q_values, False
    slow.qnet.load_state_dict(fast.qnet.state_dict())
    slow.target.load_state_dict(fast.target.state_dict())
    return fast, slow


def check_dqn_pair(fast, slow, env_steps: int, train_steps: int) -> None:
    """``env_steps`` epsilon-greedy steps (epsilon 0.5: both branches run) and ``train_steps``
    gradient steps of both from the same RNG states: equal replay contents, losses, weights and
    gradient norms. Closes both."""
    try:
        with torch.no_grad():
            fast.egreedy.eps.fill_(0.5)
            slow.egreedy.eps.fill_(0.5)
        for _ in range(env_steps):
            rng = torch.get_rng_state()
            fast.env_step()
            torch.set_rng_state(rng)
            slow.env_step()
        assert len(fast.buffer) == len(slow.buffer) > 0
        stored_fast, stored_slow = _storage(fast.buffer), _storage(slow.buffer)
        for key, value in stored_slow.items():
            assert torch.equal(stored_fast[key], value), key
        for _ in range(train_steps):
            rng = torch.get_rng_state()
            out_fast = fast.train_step()
            torch.set_rng_state(rng)
            out_slow = slow.train_step()
            same(out_fast, out_slow)
        same(list(fast.qnet.parameters()), list(slow.qnet.parameters()))
        same(fast.grad_norms, slow.grad_norms)
    finally:
        fast.close()
        slow.close()


def ppo_pair(env_id: str, **overrides):
    """PPO on its ``TensorCalls`` and a twin on ``OperatorCalls``, with the same weights."""
    fast, slow = build("ppo", env_id, **overrides), build("ppo", env_id, **overrides)
    assert isinstance(fast.calls, TensorCalls)
    parts = AgentParts(slow.agent, slow.common, slow.policy, slow.value, slow.trunk, slow.obs_norm)
    slow.calls = OperatorCalls(parts, slow.memory)
    slow.agent.load_state_dict(fast.agent.state_dict())
    return fast, slow


def check_ppo_pair(fast, slow, iterations: int = 2) -> None:
    """``iterations`` rollouts + updates of both from the same RNG states: equal rollouts, logged
    rows, weights and episode statistics. Closes both."""
    try:
        for _ in range(iterations):
            rng = torch.get_rng_state()
            batch_fast = fast.collect()
            torch.set_rng_state(rng)
            batch_slow = slow.collect()
            assert sorted(batch_fast.keys()) == sorted(batch_slow.keys())
            assert batch_fast.batch_size == batch_slow.batch_size
            for key in batch_slow.keys():
                same([batch_fast[key]], [batch_slow[key]])
            assert torch.equal(fast.obs, slow.obs) and fast.global_step == slow.global_step
            rng = torch.get_rng_state()
            row_fast = fast.update(batch_fast)
            torch.set_rng_state(rng)
            row_slow = slow.update(batch_slow)
            assert sorted(row_fast) == sorted(row_slow)
            for key in row_slow:
                assert row_fast[key] == row_slow[key], key
            same(list(fast.agent.parameters()), list(slow.agent.parameters()))
        stats_fast, stats_slow = fast.stats.state_dict(), slow.stats.state_dict()
        assert sorted(stats_fast) == sorted(stats_slow)
        for key, value in stats_slow.items():
            np.testing.assert_array_equal(np.asarray(stats_fast[key]), np.asarray(value))
    finally:
        fast.close()
        slow.close()
