"""PPO's math on fixed values: clipped surrogate, advantage normalisation, value loss, entropy
bonus, schedules, and the ``dones`` GAE sees at terminations and time-limit truncations.

Each test plants the policy and value heads (zero weights, known biases), so that the logits and
the state value are known constants whatever the trunk computes, and feeds ``PPO.update`` (or
``PPO.collect``) a hand-made batch (or env). Expected values are computed here from the
definitions, with plain Python / torch, never with the recipe's own functions.
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torch import nn

from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.ppo import PPO, PPOConfig

OBS_DIM = 4
DISCRETE = EnvInfo(gym.spaces.Box(-1, 1, (OBS_DIM,)), gym.spaces.Discrete(3), None)
LOGITS = [0.5, -1.0, 2.0]  # the planted policy head: these logits for every observation
VALUE = 2.0  # the planted value head: V(s) = 2 for every observation


def _last_linear(module: nn.Module) -> nn.Linear:
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


def _make(**overrides) -> PPO:
    """A PPO on the 3-action space with the heads planted (logits ``LOGITS``, value ``VALUE``)."""
    kw = dict(num_envs=2, n_steps=3, batch_size=6, epochs=1, total_steps=6000, anneal_lr=False,
              anneal_clip=False, max_grad_norm=1e6)
    kw.update(overrides)
    algo = PPO(PPOConfig(**kw), DISCRETE)
    with torch.no_grad():
        head = _last_linear(algo.policy)
        head.weight.zero_()
        head.bias.copy_(torch.tensor(LOGITS))
        v = _last_linear(algo.value)
        v.weight.zero_()
        v.bias.fill_(VALUE)
    return algo


def _log_softmax(logits: list[float]) -> list[float]:
    z = math.log(sum(math.exp(x) for x in logits))
    return [x - z for x in logits]


def _batch(actions, ratios, advantages, targets) -> TensorDict:
    """A flat rollout whose stored log-probs make pi_new(a|s) / pi_old(a|s) = ``ratios``."""
    n = len(actions)
    logp = _log_softmax(LOGITS)
    old = [logp[a] - math.log(r) for a, r in zip(actions, ratios)]
    return TensorDict(
        {
            "observation": torch.linspace(-1, 1, n * OBS_DIM).reshape(n, OBS_DIM),
            "action": torch.tensor(actions),
            "sample_log_prob": torch.tensor(old),
            "advantage": torch.tensor(advantages, dtype=torch.float32),
            "value_target": torch.tensor(targets, dtype=torch.float32),
            "state_value": torch.full((n,), VALUE),  # what the planted head gave the rollout
        },
        batch_size=[n],
    )


def _surrogate(ratios, advantages, eps) -> float:
    """-mean(min(r A, clip(r, 1 - eps, 1 + eps) A)), term by term."""
    terms = [min(r * a, min(max(r, 1 - eps), 1 + eps) * a) for r, a in zip(ratios, advantages)]
    return -sum(terms) / len(terms)


def _normalized(advantages) -> list[float]:
    n = len(advantages)
    mean = sum(advantages) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in advantages) / (n - 1))  # unbiased, as torch.std
    return [(a - mean) / (std + 1e-8) for a in advantages]


# ratios below, inside and above [0.8, 1.2], with advantages of both signs
ACTIONS = [0, 1, 2, 0, 1, 2]
RATIOS = [1.5, 0.5, 1.5, 0.5, 1.1, 0.9]
ADVANTAGES = [2.0, 2.0, -1.0, -1.0, 3.0, -3.0]
TARGETS = [1.0, 3.0, 2.5, 0.0, -1.0, 2.0]


def test_clipped_surrogate_without_normalisation_on_fixed_values():
    algo = _make(norm_adv=False, clip=0.2)
    try:
        row = algo.update(_batch(ACTIONS, RATIOS, ADVANTAGES, TARGETS))
    finally:
        algo.close()
    # term by term, min(r A, clip(r) A):
    #   A=+2 r=1.5 -> min(3.0, 2.4) = 2.4 (clipped above)   A=+2 r=0.5 -> min(1.0, 1.6) = 1.0
    #   A=-1 r=1.5 -> min(-1.5, -1.2) = -1.5                 A=-1 r=0.5 -> min(-0.5, -0.8) = -0.8
    #   A=+3 r=1.1 -> 3.3 (inside)                           A=-3 r=0.9 -> -2.7 (inside)
    assert row["policy_loss"] == pytest.approx(-(2.4 + 1.0 - 1.5 - 0.8 + 3.3 - 2.7) / 6, abs=1e-5)
    assert row["policy_loss"] == pytest.approx(_surrogate(RATIOS, ADVANTAGES, 0.2), abs=1e-5)
    # |r - 1| > 0.2 for the first four; KL estimate mean((r - 1) - log r)
    assert row["clip_frac"] == pytest.approx(4 / 6)
    kl = sum((r - 1) - math.log(r) for r in RATIOS) / 6
    assert row["approx_kl"] == pytest.approx(kl, abs=1e-5)


def test_clipped_surrogate_with_advantage_normalisation_on_fixed_values():
    algo = _make(norm_adv=True, clip=0.2)
    try:
        row = algo.update(_batch(ACTIONS, RATIOS, ADVANTAGES, TARGETS))
    finally:
        algo.close()
    expected = _surrogate(RATIOS, _normalized(ADVANTAGES), 0.2)
    assert row["policy_loss"] == pytest.approx(expected, abs=1e-5)
    # and it is not the unnormalised value (the test can tell the two apart)
    assert abs(expected - _surrogate(RATIOS, ADVANTAGES, 0.2)) > 0.1


def test_minibatch_advantage_normalisation_is_per_minibatch():
    """Minibatches of 2: whatever the shuffle pairs, each normalised pair is (+1/sqrt2, -1/sqrt2).

    All ratios 1.5 (above 1 + eps): the positive one is clipped to 1.2, the negative one is not,
    so every minibatch's loss is -(1.2 - 1.5) / (2 sqrt 2); without normalisation it would be
    -1.2 * (mean of the raw positive advantages). The learning rate is set to 0 so that the
    minibatches after the first see the same policy.
    """
    algo = _make(norm_adv=True, clip=0.2, batch_size=2, n_steps=2)
    algo.cfg.lr = 0.0
    try:
        row = algo.update(_batch([0, 1, 2, 0], [1.5] * 4, [10.0, 20.0, 30.0, 40.0], [0.0] * 4))
    finally:
        algo.close()
    assert row["policy_loss"] == pytest.approx(-(1.2 - 1.5) / (2 * math.sqrt(2)), abs=1e-5)


def test_value_loss_is_the_mean_squared_error_weighted_by_vf_coef():
    """Logged value loss = mean (target - V)^2; its gradient on the value bias is
    vf_coef * d/dV = vf_coef * mean(2 (V - target))."""
    algo = _make(vf_coef=0.5)
    try:
        row = algo.update(_batch(ACTIONS, [1.0] * 6, [0.0] * 6, TARGETS))
        grad = _last_linear(algo.value).bias.grad
    finally:
        algo.close()
    assert row["value_loss"] == pytest.approx(sum((t - VALUE) ** 2 for t in TARGETS) / 6, abs=1e-5)
    expected_grad = 0.5 * sum(2 * (VALUE - t) for t in TARGETS) / 6
    assert float(grad) == pytest.approx(expected_grad, abs=1e-5)


def _entropy(logits: list[float]) -> float:
    p = [math.exp(x) for x in _log_softmax(logits)]
    return -sum(pi * math.log(pi) for pi in p)


def test_entropy_bonus_gradient_and_step_raise_the_entropy():
    """With zero advantages and vf_coef 0 the only loss is -ent_coef * H: its gradient on the
    logits is ent_coef * p_j (log p_j + H) (dH/dz_j = -p_j (log p_j + H)), and one Adam step
    raises the entropy."""
    ent_coef = 0.1
    algo = _make(ent_coef=ent_coef, vf_coef=0.0, lr=1e-2)
    before = _entropy(LOGITS)
    try:
        row = algo.update(_batch(ACTIONS, RATIOS, [0.0] * 6, TARGETS))
        grad = _last_linear(algo.policy).bias.grad.tolist()
    finally:
        algo.close()
    logp = _log_softmax(LOGITS)
    expected = [ent_coef * math.exp(lp) * (lp + before) for lp in logp]
    assert grad == pytest.approx(expected, abs=1e-6)
    # the log holds the minibatch's entropy before its step; the step raised it
    assert row["entropy"] == pytest.approx(before, abs=1e-6)
    with torch.no_grad():
        batch = _batch(ACTIONS, RATIOS, [0.0] * 6, TARGETS)
        logits = algo.agent(batch.select("observation"))["logits"]
        after = torch.distributions.Categorical(logits=logits).entropy()
    assert after.min().item() > before + 1e-3


def test_without_entropy_bonus_zero_advantages_leave_the_policy_unchanged():
    """The control for the test above: ent_coef 0, zero advantages -> no gradient, no change."""
    algo = _make(ent_coef=0.0, vf_coef=0.0, lr=1e-2)
    try:
        row = algo.update(_batch(ACTIONS, RATIOS, [0.0] * 6, TARGETS))
    finally:
        algo.close()
    assert row["entropy"] == pytest.approx(_entropy(LOGITS), abs=1e-6)


def test_explained_variance_is_the_rollouts_values_against_the_targets():
    """1 - Var(target - V_rollout) / Var(target), on the values the rollout stored (unbiased
    variances; a constant target logs 0)."""
    targets = [1.0, 3.0, 0.5, 2.5, 4.0, -1.0]
    values = [1.5, 2.0, 0.0, 2.0, 3.0, 0.0]
    batch = _batch(ACTIONS, RATIOS, ADVANTAGES, targets)
    batch["state_value"] = torch.tensor(values)
    algo = _make()
    try:
        row = algo.update(batch)
        flat = algo.update(_batch(ACTIONS, RATIOS, ADVANTAGES, [2.0] * 6))
    finally:
        algo.close()

    def var(xs):
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)

    residual = [t - v for t, v in zip(targets, values)]
    assert row["explained_var"] == pytest.approx(1 - var(residual) / var(targets), abs=1e-6)
    assert flat["explained_var"] == 0.0


def test_learning_rate_and_clip_range_anneal_linearly():
    """A quarter of the way through: lr and clip at 3/4 of their initial values."""
    algo = _make(norm_adv=False, clip=0.2, lr=4e-3, anneal_lr=True, anneal_clip=True)
    algo.global_step = algo.cfg.total_steps // 4
    try:
        row = algo.update(_batch(ACTIONS, RATIOS, ADVANTAGES, TARGETS))
        lr = algo.optimizer.param_groups[0]["lr"]
    finally:
        algo.close()
    assert row["lr"] == pytest.approx(3e-3) and lr == pytest.approx(3e-3)
    assert row["policy_loss"] == pytest.approx(_surrogate(RATIOS, ADVANTAGES, 0.15), abs=1e-5)
    assert abs(_surrogate(RATIOS, ADVANTAGES, 0.15) - _surrogate(RATIOS, ADVANTAGES, 0.2)) > 0.01


# ----------------------------------------------------------------------------- GAE dones
class _ScriptedEnvs:
    """A vector env replaying fixed (reward, terminated, truncated) steps for 2 sub-envs."""

    def __init__(self, rewards, terminated, truncated) -> None:
        self.rewards, self.terminated, self.truncated = rewards, terminated, truncated
        self.t = 0

    def step(self, actions):
        t, n = self.t, len(self.rewards[0])
        self.t += 1
        obs = np.full((n, OBS_DIM), 0.1 * self.t, dtype=np.float32)
        done = np.array(self.terminated[t]) | np.array(self.truncated[t])
        final = np.array([np.full(OBS_DIM, -0.5, dtype=np.float32) if d else None for d in done],
                         dtype=object)
        return (obs, np.array(self.rewards[t], dtype=np.float64), np.array(self.terminated[t]),
                np.array(self.truncated[t]), {"final_obs": final})

    def close(self) -> None:
        pass


# sub-env 0 is cut by the time limit after step 1; sub-env 1 terminates after step 2, and at
# step 0 is both terminated and truncated (a termination: no bootstrap)
REWARDS = [[1.0, 2.0], [3.0, -1.0], [0.5, 4.0], [2.0, 1.0]]
TERMINATED = [[False, True], [False, False], [False, True], [False, False]]
TRUNCATED = [[False, True], [True, False], [False, False], [False, False]]
GAMMA, LAM, SCALE = 0.5, 0.8, 0.5


def _expected_gae() -> list[list[float]]:
    """A_t = sum_k (gamma lam)^k delta_{t+k}, the sum stopping at the step that ends the episode
    (terminated or truncated); delta = r + gamma V(s') [not ended] - V(s), and a truncated step's
    reward carries gamma * V(final observation)."""
    T, N = len(REWARDS), 2
    out = [[0.0] * N for _ in range(T)]
    for n in range(N):
        deltas, ends = [], []
        for t in range(T):
            r = SCALE * REWARDS[t][n]
            term, trunc = TERMINATED[t][n], TRUNCATED[t][n]
            if trunc and not term:
                r += GAMMA * VALUE  # bootstrapped from the final observation
            ended = term or trunc
            deltas.append(r + (0.0 if ended else GAMMA * VALUE) - VALUE)
            ends.append(ended)
        for t in range(T):
            total, k = 0.0, t
            while True:
                total += (GAMMA * LAM) ** (k - t) * deltas[k]
                if ends[k] or k == T - 1:
                    break
                k += 1
            out[t][n] = total
    return out


def test_gae_dones_end_the_sum_at_terminations_and_truncations():
    algo = _make(n_steps=4, batch_size=8, gamma=GAMMA, gae_lambda=LAM, reward_scale=SCALE)
    algo.envs.close()
    algo.envs = _ScriptedEnvs(REWARDS, TERMINATED, TRUNCATED)
    try:
        batch = algo.collect()
    finally:
        algo.close()
    expected = torch.tensor(_expected_gae())
    torch.testing.assert_close(batch["advantage"], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch["value_target"], expected + VALUE, atol=1e-5, rtol=0)
    # hand check of one entry: sub-env 0, step 0: delta0 = 0.5 + 0.5*2 - 2 = -0.5, then step 1 is
    # the truncated one, delta1 = 1.5 + 0.5*2 (bootstrap) + 0 - 2 = 0.5: A = -0.5 + 0.4 * 0.5
    assert float(batch["advantage"][0, 0]) == pytest.approx(-0.3, abs=1e-6)


def test_gae_dones_from_remote_batches_end_the_sum_at_truncations():
    """--workers rollouts (collect_remote) see the same dones from the collector's ``done``."""
    algo = _make(n_steps=4, batch_size=8, gamma=GAMMA, gae_lambda=LAM, reward_scale=SCALE)
    T, N = 4, 2
    term, trunc = torch.tensor(TERMINATED), torch.tensor(TRUNCATED)
    batch = TensorDict(
        {
            "observation": torch.zeros(T, N, OBS_DIM),
            "action": torch.zeros(T, N, dtype=torch.long),
            "sample_log_prob": torch.zeros(T, N),
            "state_value": torch.full((T, N, 1), VALUE),
            "next": {
                "observation": torch.ones(T, N, OBS_DIM),
                "reward": torch.tensor(REWARDS),
                "terminated": term,
                "truncated": trunc,
                "done": term | trunc,
            },
        },
        batch_size=[T, N],
    )
    algo.batches = iter([batch])
    try:
        out = algo.collect_remote()
    finally:
        algo.close()
    torch.testing.assert_close(out["advantage"], torch.tensor(_expected_gae()), atol=1e-5, rtol=0)
