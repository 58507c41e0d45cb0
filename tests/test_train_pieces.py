"""Training recipes' pieces: metrics log, episode stats, GAE, truncation bootstrap, n-step returns."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl.recipes.blocks import EpisodeStats
from tdrl.recipes.config import TrainError
from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.runfiles import MetricsLog


# ----------------------------------------------------------------------------- pieces
def test_metrics_log_resume_truncates_rows_after_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, ["step", "x"])
    for step in (10, 20, 30, 40):
        log.write({"step": step, "x": step / 10})
    log.close()
    log = MetricsLog(path, ["step", "x"], resume_step=20)
    log.write({"step": 30, "x": -1})
    log.close()
    assert path.read_text() == "step,x\n10,1\n20,2\n30,-1\n"
    with pytest.raises(TrainError, match="has columns"):
        MetricsLog(path, ["step", "y"], resume_step=20)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 5), st.booleans(), st.booleans()), min_size=1, max_size=60),
    st.integers(1, 4),
)
def test_episode_stats_counts_episodes(steps, window):
    stats = EpisodeStats(num_envs=2, threshold=3.0, window=window)
    finished, running = [], [0.0, 0.0]
    for i, (r, d0, d1) in enumerate(steps):
        done = np.array([d0, d1])
        stats.update(np.array([r, 1.0]), done, step=2 * (i + 1), wall_s=float(i))
        running = [running[0] + r, running[1] + 1.0]
        for e in (0, 1):
            if done[e]:
                finished.append(running[e])
                running[e] = 0.0
        if stats.solved_at_step is None and len(finished) >= window:
            assert np.mean(finished[-window:]) < 3.0 or stats.solved_at_step == 2 * (i + 1)
    assert stats.episodes == len(finished)
    assert list(stats.recent) == pytest.approx(finished[-window:])
    first = next(
        (k for k in range(window, len(finished) + 1) if np.mean(finished[k - window : k]) >= 3.0),
        None,
    )
    assert (stats.solved_at_step is None) == (first is None)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 3),
    st.floats(0.5, 1.0),
    st.floats(0.0, 1.0),
    st.integers(0, 2**16),
)
def test_gae_matches_reference(T, N, gamma, lam, seed):
    from tdrl.recipes.ppo import PPO, PPOConfig

    g = torch.Generator().manual_seed(seed)
    rewards, values = torch.randn(T, N, generator=g), torch.randn(T, N, generator=g)
    dones = (torch.rand(T, N, generator=g) < 0.3).float()
    last = torch.randn(N, generator=g)
    algo = PPO.__new__(PPO)
    algo.cfg = PPOConfig(gamma=gamma, gae_lambda=lam)
    adv = algo.gae(rewards, values, dones, last)
    expected = np.zeros((T, N))
    for n in range(N):
        for t in range(T):  # direct sum of discounted TD errors until the episode ends
            total, discount = 0.0, 1.0
            for k in range(t, T):
                next_v = last[n] if k == T - 1 else values[k + 1, n]
                delta = rewards[k, n] + gamma * next_v * (1 - dones[k, n]) - values[k, n]
                total += discount * float(delta)
                if dones[k, n]:
                    break
                discount *= gamma * lam
            expected[t, n] = total
    assert np.allclose(adv.numpy(), expected, atol=1e-4)


def test_truncated_episodes_are_bootstrapped(monkeypatch):
    """Time-limit truncation adds gamma * V(final obs) to the last reward; termination does not."""
    import gymnasium as gym

    from tdrl.recipes import ppo

    gym.register(
        "TdrlShortCartPole-v0",
        entry_point="gymnasium.envs.classic_control:CartPoleEnv",
        max_episode_steps=3,
    )
    try:
        cfg = ppo.PPOConfig(
            env="TdrlShortCartPole-v0",
            num_envs=1,
            n_steps=3,
            batch_size=3,
            epochs=1,
            gamma=0.5,
            total_steps=3,
            reward_scale=1.0,
        )
        algo = ppo.PPO(cfg, EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None))
        captured = {}
        original = algo.gae

        def spy(rewards, values, dones, last_value):
            captured["rewards"] = rewards.clone()
            return original(rewards, values, dones, last_value)

        monkeypatch.setattr(algo, "gae", spy)
        torch.manual_seed(0)
        algo.collect()
        algo.close()
    finally:
        gym.registry.pop("TdrlShortCartPole-v0")
    r = captured["rewards"][:, 0]
    assert r[0] == 1.0 and r[1] == 1.0  # CartPole cannot fall in 3 steps: step 3 is truncated
    assert r[2] != 1.0 and math.isfinite(float(r[2]))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4),
    st.lists(
        st.tuples(st.floats(-3, 3), st.sampled_from(["", "term", "trunc"])), min_size=1, max_size=25
    ),
)
def test_nstep_returns_match_direct_sums(n, steps):
    """Every step becomes exactly one transition with the right n-step return and bootstrap."""
    from tdrl.recipes.dqn import NStepReturns

    gamma = 0.9
    ns = NStepReturns(n=n, gamma=gamma, num_envs=1)
    out = []
    episodes, current = [], []
    for t, (r, end) in enumerate(steps):
        obs = np.array([[float(t)]])
        term, done = end == "term", end != ""
        current.append((t, r))
        out += ns.push(
            obs, np.array([t % 2]), np.array([r]), obs + 0.5, np.array([term]), np.array([done])
        )
        if done:
            episodes.append((current, term))
            current = []
    complete = [(t, ep, term) for ep, term in episodes for t in range(len(ep))]
    assert len(out) == len(complete) + max(0, len(current) - (n - 1))
    by_start = {float(o[0][0]): o for o in out}
    for ep, term in episodes:
        for i, (t, _) in enumerate(ep):
            o = by_start[float(t)]
            horizon = ep[i : i + n]
            expected = sum(gamma**k * r for k, (_, r) in enumerate(horizon))
            assert o[2] == pytest.approx(expected)
            assert o[5] == pytest.approx(gamma ** len(horizon))
            ends_episode = i + n >= len(ep)
            assert o[4] == (term and ends_episode)  # only real terminations stop the bootstrap
            assert o[3][0] == pytest.approx(horizon[-1][0] + 0.5)
