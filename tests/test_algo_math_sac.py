"""SAC's math on fixed values: the critic target with twin critics that disagree, the critic
loss, the actor loss and the temperature loss.

The critics are single linear layers (``hidden=()``) with planted weights, online and target
different; the replay buffer holds one hand-made transition; the policy is replaced by a stub
returning fixed actions and log-probabilities for s and s' (the sampled a ~ pi is the only
random part of the update). ``SAC.update`` then returns the critic and actor losses, and leaves
``log_alpha.grad`` (the temperature loss's gradient) and the stub's input gradients behind.
Expected values are computed here from the definitions.
"""
from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict

from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.sac import SAC, SACConfig
from tdrl.recipes.twin_q import TwinQ

PENDULUM = EnvInfo(gym.spaces.Box(-8, 8, (3,)), gym.spaces.Box(-2, 2, (1,)), None)
S, A = [1.0, 0.0, 0.0], [0.5]  # the replayed transition
S_NEXT, A_NEXT, LOGP_NEXT = [0.0, 1.0, 0.0], [-1.0], -1.2  # a' ~ pi(.|s')
A_PI, LOGP_PI = [1.5], -0.7  # a ~ pi(.|s)
REWARD, GAMMA, ALPHA = 1.0, 0.9, 0.5
# Q_k([s, a]) = w_k . [s, a] (biases 0)
ONLINE = [[2.0, 0.0, 0.0, -1.0], [4.0, 0.0, 0.0, 4.0]]
TARGET = [[0.0, 5.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]]


def _q(weights, s, a) -> list[float]:
    x = torch.tensor(s + a)
    return [float(torch.tensor(w) @ x) for w in weights]


def _plant(twin: TwinQ, weights) -> None:
    with torch.no_grad():
        twin.weights[0].copy_(torch.tensor(weights).unsqueeze(-1))
        twin.biases[0].zero_()


class _StubPolicy:
    """Fixed (action, log-prob) for s and s'; the s outputs are leaves that collect gradients."""

    def __init__(self, log_prob_key: str) -> None:
        self.key = log_prob_key
        self.a_pi = torch.tensor([A_PI], requires_grad=True)
        self.logp_pi = torch.tensor([LOGP_PI], requires_grad=True)

    def __call__(self, td: TensorDict) -> TensorDict:
        obs = td["observation"]
        if torch.equal(obs, torch.tensor([S])):
            td.set("action", self.a_pi)
            td.set(self.key, self.logp_pi)
        elif torch.equal(obs, torch.tensor([S_NEXT])):
            td.set("action", torch.tensor([A_NEXT]))
            td.set(self.key, torch.tensor([LOGP_NEXT]))
        else:
            raise AssertionError(f"unexpected observation {obs}")
        return td


def _run(terminated: bool, autotune: bool = True):
    algo = SAC(SACConfig(hidden=(), batch_size=1, gamma=GAMMA, init_alpha=ALPHA,
                         autotune=autotune), PENDULUM)
    _plant(algo.parts.twin, ONLINE)
    _plant([m for m in algo.target_agent.modules() if isinstance(m, TwinQ)][0], TARGET)
    stub = _StubPolicy(algo.log_prob_key)
    algo.parts = algo.parts._replace(policy=stub)
    algo.buffer.add(TensorDict(
        {
            "observation": torch.tensor([S]),
            "action": torch.tensor([A]),
            "reward": torch.tensor([REWARD]),
            "next_observation": torch.tensor([S_NEXT]),
            "terminated": torch.tensor([float(terminated)]),
        },
        batch_size=[1],
    ))
    try:
        logged = algo.update().tolist()
        grad_alpha = None if algo.log_alpha.grad is None else float(algo.log_alpha.grad)
        target_entropy = algo.target_entropy
    finally:
        algo.close()
    return logged, stub, grad_alpha, target_entropy


def test_fixture_twin_critics_disagree():
    """The target critics' min and max at (s', a') differ, as do the online ones at (s, a_pi),
    and the online critics at (s', a') differ from the target ones."""
    q_next = _q(TARGET, S_NEXT, A_NEXT)
    assert q_next == [5.0, 3.0]
    assert _q(ONLINE, S, A_PI) == [0.5, 10.0]
    assert _q(ONLINE, S_NEXT, A_NEXT) != q_next


@pytest.mark.parametrize("terminated", [False, True])
def test_critic_target_uses_min_of_target_twins_minus_alpha_log_pi(terminated):
    """y = r + gamma (1 - d) (min(Q1', Q2')(s', a') - alpha log pi(a'|s'));
    critic loss = 1/2 sum_k mean (Q_k(s, a) - y)^2 on the replayed action."""
    logged, _, _, _ = _run(terminated)
    critic_loss, _, alpha, _, q_mean = logged
    min_next = min(_q(TARGET, S_NEXT, A_NEXT))  # min(5, 3) = 3
    y = REWARD + GAMMA * (1.0 - terminated) * (min_next - ALPHA * LOGP_NEXT)
    assert y == pytest.approx(1.0 if terminated else 1.0 + 0.9 * (3.0 + 0.6))  # 4.24
    q1, q2 = _q(ONLINE, S, A)  # 1.5, 6.0
    assert critic_loss == pytest.approx(0.5 * ((q1 - y) ** 2 + (q2 - y) ** 2), abs=1e-5)
    assert q_mean == pytest.approx((q1 + q2) / 2) and alpha == pytest.approx(ALPHA)


def test_actor_loss_is_alpha_log_pi_minus_min_q_on_fixed_values():
    """actor loss = alpha log pi(a|s) - min_k Q_k(s, a), a ~ pi(.|s); its gradient reaches the
    log-prob (alpha) and the action (-dQ_argmin/da) but not the critic weights."""
    logged, stub, _, _ = _run(False)
    _, actor_loss, _, entropy, _ = logged
    q_pi = _q(ONLINE, S, A_PI)  # [0.5, 10.0]: critic 1 is the min
    assert actor_loss == pytest.approx(ALPHA * LOGP_PI - min(q_pi), abs=1e-6)  # -0.85
    assert entropy == pytest.approx(-LOGP_PI)
    assert float(stub.logp_pi.grad) == pytest.approx(ALPHA)
    assert float(stub.a_pi.grad) == pytest.approx(-ONLINE[0][3])  # -dQ1/da = +1


def test_temperature_loss_gradient_on_fixed_values():
    """alpha loss = -log_alpha (log pi(a|s) + target entropy): its gradient on log_alpha is
    -(log pi + target entropy); target entropy = -dim(A) + sum log((high - low) / 2)."""
    _, _, grad, target_entropy = _run(False)
    assert target_entropy == pytest.approx(-1.0 + math.log(2.0))
    assert grad == pytest.approx(-(LOGP_PI + (-1.0 + math.log(2.0))), abs=1e-6)  # 1.0069


def test_fixed_temperature_has_no_alpha_loss():
    logged, _, grad, _ = _run(False, autotune=False)
    assert grad is None and logged[2] == pytest.approx(ALPHA)
