"""Masked-velocity envs (issue 19): CartPoleNoVel-v1, PendulumNoVel-v1 through every path."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl.cli import main
from tdrl.recipes.env_ids import make_env
from tdrl.recipes.envs import check_env_id, make_vec_env, probe_env
from tdrl.recipes.novel_envs import MaskObservation, register_builtin_envs

ROOT = Path(__file__).resolve().parent.parent

# (masked id, underlying id, zeroed entries, time limit, reward threshold)
CASES = [
    ("CartPoleNoVel-v1", "CartPole-v1", [1, 3], 500, 475.0),
    ("PendulumNoVel-v1", "Pendulum-v1", [2], 200, None),
]


def rollout(env_id: str, seed: int, steps: int) -> list[np.ndarray]:
    """Observations of ``steps`` steps with actions from a seeded action space (resets on end)."""
    env = make_env(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        out.append(obs)
        if term or trunc:
            obs, _ = env.reset()
            out.append(obs)
    env.close()
    return out


@pytest.mark.parametrize(("env_id", "base_id", "zeroed", "limit", "threshold"), CASES)
def test_spaces_threshold_and_time_limit(env_id, base_id, zeroed, limit, threshold):
    env, base = make_env(env_id), make_env(base_id)
    assert env.observation_space == base.observation_space
    assert env.action_space == base.action_space
    assert env.spec.max_episode_steps == base.spec.max_episode_steps == limit
    assert env.spec.reward_threshold == base.spec.reward_threshold == threshold
    info = probe_env(env_id)
    assert info.reward_threshold == threshold
    assert info.observation_space.shape == base.observation_space.shape


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), case=st.sampled_from(CASES))
def test_masked_entries_zero_others_equal_to_base(seed, case):
    env_id, base_id, zeroed, _, _ = case
    masked, base = rollout(env_id, seed, 60), rollout(base_id, seed, 60)
    assert len(masked) == len(base)
    kept = [i for i in range(base[0].shape[0]) if i not in zeroed]
    for m, b in zip(masked, base):
        assert m.dtype == b.dtype and m.shape == b.shape
        assert np.all(m[zeroed] == 0) and not np.signbit(m[zeroed]).any()
        np.testing.assert_array_equal(m[kept], b[kept])
    # the base env's velocities are not all zero, so the mask really removed something
    assert any(np.any(b[zeroed] != 0) for b in base)


def test_cartpole_episode_ends_at_500_steps():
    env = make_env("CartPoleNoVel-v1")
    env.reset(seed=0)
    env.unwrapped.theta_threshold_radians = np.inf  # never falls: only the time limit ends it
    env.unwrapped.x_threshold = np.inf
    steps, trunc, term = 0, False, False
    while not (term or trunc):
        _, _, term, trunc, _ = env.step(steps % 2)
        steps += 1
    assert (steps, term, trunc) == (500, False, True)


def test_registration_is_idempotent_and_module_id_works():
    register_builtin_envs()
    register_builtin_envs()
    env = gym.make("tdrl.recipes.novel_envs:PendulumNoVel-v1")
    obs, _ = env.reset(seed=3)
    assert obs[2] == 0.0
    check_env_id("CartPoleNoVel-v1")
    with pytest.raises(Exception, match="CartPoleNoVel-v1"):
        check_env_id("CartPoleNoVl-v1")  # close match suggested


def test_mask_observation_refuses_bad_input():
    with pytest.raises(ValueError, match=r"indices \[4\] out of range .* shape \(4,\)"):
        MaskObservation(gym.make("CartPole-v1"), [1, 4])
    with pytest.raises(ValueError, match="flat Box"):
        MaskObservation(gym.make("FrozenLake-v1"), [0])


def test_vector_env_pickles_and_masks():
    envs = make_vec_env("CartPoleNoVel-v1", 2)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 4) and np.all(obs[:, [1, 3]] == 0)
    clone = pickle.loads(pickle.dumps(envs))
    a = envs.step(np.array([0, 1]))[0]
    b = clone.step(np.array([0, 1]))[0]
    np.testing.assert_array_equal(a, b)
    envs.close()
    clone.close()


def test_fresh_process_makes_env_without_importing_the_module():
    """A worker process only calls make_env (as Ray workers do): registration must follow."""
    code = (
        "import sys; from tdrl.recipes.env_ids import make_env; "
        "e = make_env('PendulumNoVel-v1'); o, _ = e.reset(seed=0); "
        "print(e.spec.id, float(o[2]), 'tdrl.recipes.novel_envs' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert out.stdout.split() == ["PendulumNoVel-v1", "0.0", "True"]


def test_import_tdrl_does_not_import_gymnasium():
    code = "import sys, tdrl; print('gymnasium' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"


def test_tiny_ppo_via_cli_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", "CartPoleNoVel-v1", "--total-steps", "512", "--num-envs",
            "2", "--n-steps", "64", "--batch-size", "64", "--epochs", "1", "--eval-episodes",
            "2", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["returns"] == summary["final_eval_returns"]
    assert all(1 <= r <= 500 for r in result["returns"])


def test_tiny_ppo_pendulum_novel_via_cli_subprocess(tmp_path):
    """``python -m tdrl train`` in a fresh process: registration via the recipe path only."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tdrl", "train", "ppo", "--env", "PendulumNoVel-v1",
           "--total-steps", "256", "--num-envs", "1", "--n-steps", "64", "--batch-size", "64",
           "--epochs", "1", "--eval-episodes", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_eval_episodes"] == 1
    assert summary["final_eval_return"] < 0  # Pendulum's rewards are all <= 0
