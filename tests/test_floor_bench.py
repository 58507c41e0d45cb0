"""The hand-written updates of ``benchmarks/`` do tdrl's math: equal losses and parameters.

``benchmarks/floor.py`` times tdrl's PPO, DQN and SAC updates against plain-torch
copies of them; these checks (the same ones it runs before timing) keep the
copies honest at tiny sizes. No timing here.
"""

from __future__ import annotations

import pathlib
import sys

import pytest
import torch

pytest.importorskip("gymnasium")
BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import floor_checks  # noqa: E402

TINY = {"total_steps": 10_000, "num_envs": 2, "n_steps": 8, "hidden": (8, 8)}


@pytest.mark.parametrize("batch_size", [16, 4], ids=["whole-rollout", "minibatches"])
def test_ppo_update_equals_by_hand(batch_size):
    algo = floor_checks.build("ppo", "CartPole-v1", batch_size=batch_size, epochs=3, **TINY)
    try:
        assert floor_checks.check_ppo(algo) < 1e-6
    finally:
        algo.close()


def test_ppo_rollout_equals_by_hand():
    algo = floor_checks.build("ppo", "CartPole-v1", batch_size=16, epochs=1, **TINY)
    try:
        assert floor_checks.check_ppo_collect(algo) < 1e-5
    finally:
        algo.close()


def test_dqn_train_step_equals_by_hand():
    algo = floor_checks.build("dqn", "CartPole-v1", total_steps=1_000, learning_starts=0,
                              batch_size=8, buffer_size=500, hidden=(16, 16))
    try:
        floor_checks.fill(algo, 32)
        assert floor_checks.check_dqn(algo) < 1e-6
    finally:
        algo.close()


def test_sac_update_equals_by_hand():
    algo = floor_checks.build("sac", "Pendulum-v1", total_steps=200, learning_starts=0,
                              batch_size=8, hidden=(16, 16))
    try:
        floor_checks.fill(algo, 32)
        assert floor_checks.check_sac(algo) < 1e-5
    finally:
        algo.close()


def test_check_catches_a_different_update():
    """A by-hand update that differs (another learning rate) fails the check, naming it."""
    algo = floor_checks.build("dqn", "CartPole-v1", total_steps=1_000, learning_starts=0,
                              batch_size=8, buffer_size=500, hidden=(16, 16))
    try:
        floor_checks.fill(algo, 32)
        hand = floor_checks.HandDQN.from_tdrl(algo)
        hand.optimizer.param_groups[0]["lr"] /= 2  # the only difference
        rng = torch.get_rng_state()
        loss_t, _ = algo.train_step()
        torch.set_rng_state(rng)  # the same minibatch
        loss_h, _ = hand.train_step()
        assert float(loss_t) == float(loss_h)  # same batch, same weights before the step
        params = [p for m in algo.q_values.modules() if hasattr(m, "weight") for p in
                  (m.weight, m.bias)]
        with pytest.raises(AssertionError, match="dqn parameter"):
            floor_checks._compare("dqn parameter", params, hand.params)
    finally:
        algo.close()


@pytest.mark.parametrize("name", ["ppo_by_hand", "dqn_by_hand", "sac_by_hand", "floor_checks"])
def test_by_hand_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
