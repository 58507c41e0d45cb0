"""DQN's math on fixed values: the (Double) DQN target with the stored n-step discount, n-step
transitions across episode ends as stored in the replay buffer, and the epsilon / lr schedules.

The Q-networks are single linear layers (``hidden=()``) with planted weights, and the replay
buffer holds one hand-made transition (every sampled row is that one), so ``train_step``'s loss
is a known function of the target. Expected values are computed here from the definitions.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from tdrl.recipes.dqn import DQN, DQNConfig
from tdrl.recipes.envs import EnvInfo

CARTPOLE = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), 475.0)
S = [1.0, 0.0, 0.0, 0.0]
S_NEXT = [0.0, 1.0, 0.0, 0.0]
# Q(x) = W x: column 0 gives Q(s, .), column 1 gives Q(s', .)
ONLINE_W = [[100.0, 5.0, 0.0, 0.0], [40.0, 3.0, 0.0, 0.0]]  # Q(s) = [100, 40], Q(s') = [5, 3]
TARGET_W = [[7.0, 2.0, 0.0, 0.0], [-3.0, 9.0, 0.0, 0.0]]  # Q_targ(s') = [2, 9]: argmaxes differ
ACTION, REWARD, GAMMA, N_STEP = 1, 1.5, 0.5, 3


def _plant(linear_actor, weight) -> None:
    layer = linear_actor[0].module[0]
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.zero_()


def _algo(**overrides) -> DQN:
    kw = dict(hidden=(), num_envs=1, batch_size=4, gamma=GAMMA, n_step=N_STEP, tau=1.0,
              max_grad_norm=1e6)
    kw.update(overrides)
    algo = DQN(DQNConfig(**kw), CARTPOLE)
    _plant(algo.qnet, ONLINE_W)
    _plant(algo.target, TARGET_W)
    return algo


def _one_transition(terminated: bool, discount: float) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.tensor([S]),
            "action": torch.tensor([ACTION]),
            "reward": torch.tensor([REWARD]),
            "next_observation": torch.tensor([S_NEXT]),
            "terminated": torch.tensor([terminated]),
            "discount": torch.tensor([discount]),
        },
        batch_size=[1],
    )


def _expected_target(double: bool, terminated: bool, discount: float) -> float:
    """r + discount * Q_targ(s', a*) * (1 - terminated); a* = argmax Q_online(s') (Double DQN)
    or argmax Q_targ(s') (plain DQN, i.e. max_a Q_targ(s', a))."""
    s_next = torch.tensor(S_NEXT)
    q_online_next = torch.tensor(ONLINE_W) @ s_next
    q_target_next = torch.tensor(TARGET_W) @ s_next
    a_star = int(q_online_next.argmax()) if double else int(q_target_next.argmax())
    return REWARD + discount * float(q_target_next[a_star]) * (1.0 - float(terminated))


@pytest.mark.parametrize(
    ("double", "terminated", "target"),
    [
        # Double DQN: a* = argmax [5, 3] = 0 -> Q_targ(s', 0) = 2: 1.5 + 0.125 * 2
        (True, False, 1.75),
        # plain DQN: max [2, 9] = 9: 1.5 + 0.125 * 9
        (False, False, 2.625),
        # a termination stops the bootstrap
        (True, True, 1.5),
        (False, True, 1.5),
    ],
)
def test_dqn_target_uses_the_stored_nstep_discount_and_the_online_argmax(
    double, terminated, target
):
    """The loss is Huber(Q(s, a) - target) with Q(s, a=1) = 40 far above every target, so
    loss = 40 - target - 0.5 pins the target (gamma**3 = 0.125 is the stored discount)."""
    discount = GAMMA**N_STEP
    assert _expected_target(double, terminated, discount) == pytest.approx(target)
    algo = _algo(double_dqn=double)
    algo.buffer.add(_one_transition(terminated, discount))
    try:
        loss, q_mean = algo.train_step()
    finally:
        algo.close()
    assert float(q_mean) == pytest.approx(40.0)
    assert float(loss) == pytest.approx(40.0 - target - 0.5, abs=1e-5)


def test_online_and_target_argmaxes_disagree_in_the_fixture():
    """The Double-DQN case above can tell the two networks' argmaxes apart."""
    s_next = torch.tensor(S_NEXT)
    assert int((torch.tensor(ONLINE_W) @ s_next).argmax()) != int(
        (torch.tensor(TARGET_W) @ s_next).argmax()
    )


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_stored_nstep_transitions_across_an_episode_end(end):
    """n = 3, gamma = 0.5: five steps, the episode ending after step 3 (index 3). Steps 1..3 are
    flushed at the end with horizons 3, 2, 1 and discounts gamma**3, gamma**2, gamma; step 4
    (the next episode) is still pending; no reward of step 4 leaks into the earlier returns."""
    algo = _algo(buffer_size=16)
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0]
    try:
        for t, r in enumerate(rewards):
            ends = t == 3
            algo.store(
                torch.full((1, 4), float(t)),
                torch.tensor([t % 2]),
                np.array([r]),
                np.full((1, 4), t + 0.5, dtype=np.float32),
                np.array([ends and end == "terminated"]),
                np.array([ends]),
            )
        stored = algo.buffer.storage[: len(algo.buffer)]
    finally:
        algo.close()
    term = end == "terminated"
    assert stored["observation"][:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert stored["reward"].tolist() == pytest.approx(
        [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4 + 0.25 * 8, 4 + 0.5 * 8, 8.0]
    )
    assert stored["discount"].tolist() == pytest.approx([0.125, 0.125, 0.25, 0.5])
    assert stored["terminated"].tolist() == [False, term, term, term]
    # the bootstrap observation: 3 steps later, or the episode's final observation
    assert stored["next_observation"][:, 0].tolist() == [2.5, 3.5, 3.5, 3.5]


def test_one_step_transitions_store_gamma():
    algo = _algo(n_step=1, buffer_size=8)
    try:
        algo.store(torch.zeros(1, 4), torch.tensor([0]), np.array([1.0]),
                   np.ones((1, 4), dtype=np.float32), np.array([False]), np.array([False]))
        stored = algo.buffer.storage[:1]
    finally:
        algo.close()
    assert stored["discount"].tolist() == [GAMMA] and stored["reward"].tolist() == [1.0]


def test_epsilon_anneals_linearly_over_the_exploration_fraction():
    """eps = 1 - (1 - 0.04) * steps / (0.5 * 100), then stays at 0.04 (4 env steps per call)."""
    algo = DQN(DQNConfig(hidden=(8,), num_envs=4, total_steps=100, exploration_fraction=0.5,
                         eps_init=1.0, eps_end=0.04, buffer_size=200), CARTPOLE)
    try:
        for _ in range(5):  # 20 env steps
            algo.env_step()
        mid = float(algo.egreedy.eps)
        for _ in range(10):  # 60 env steps: past the 50 of the schedule
            algo.env_step()
        end = float(algo.egreedy.eps)
    finally:
        algo.close()
    assert mid == pytest.approx(1.0 - 0.96 * 20 / 50)
    assert end == pytest.approx(0.04)


def test_learning_rate_decays_linearly_and_reaches_the_optimizer():
    cfg = dict(hidden=(8,), num_envs=4, total_steps=80, log_every=20, learning_starts=0,
               train_freq=20, gradient_steps=1, batch_size=4, buffer_size=100, lr=2e-3, n_step=1)
    algo = DQN(DQNConfig(**cfg), CARTPOLE)
    try:
        row = algo.iterate()  # one training phase at step 20: lr = 2e-3 * (1 - 20 / 80)
        used = algo.optimizer.param_groups[0]["lr"]
    finally:
        algo.close()
    assert row["updates"] == 1
    assert used == pytest.approx(1.5e-3) and row["lr"] == pytest.approx(1.5e-3)
    fixed = DQN(DQNConfig(**{**cfg, "anneal_lr": False}), CARTPOLE)
    fixed.global_step = 60
    try:
        assert fixed.lr() == 2e-3
    finally:
        fixed.close()
