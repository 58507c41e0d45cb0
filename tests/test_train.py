"""Training recipes: learning (CI-sized), run files, action spaces."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import (
    DQN_CI,
    PPO_CI,
    QUIET,
    metrics_rows,
    summary,
)

from tdrl.cli import main
from tdrl.recipes.config import config_from_dict
from tdrl.recipes.envs import EVAL_SEED_OFFSET, EnvInfo, evaluate
from tdrl.recipes.runfiles import (
    load_checkpoint,
    read_metrics,
)


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ppo") / "run"
    assert main(["train", "ppo", *PPO_CI, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dqn") / "run"
    assert main(["train", "dqn", *DQN_CI, "--out", str(out)]) == 0
    return out


def random_cartpole_return(seed: int) -> float:
    rng = np.random.default_rng(0)
    return float(evaluate(lambda o: rng.integers(0, 2, len(o)), "CartPole-v1", 10, seed).mean())


# ----------------------------------------------------------------------------- learning
def test_ppo_cartpole_reaches_200(ppo_run):
    s = summary(ppo_run)
    m = read_metrics(ppo_run / "metrics.csv")
    assert s["total_steps"] == 20224  # rounded up to whole 256-step iterations
    assert np.nanmax(m["return_mean"]) >= 200
    assert s["final_eval_return"] >= 200


def test_dqn_improves_over_random(dqn_run):
    s = summary(dqn_run)
    random_return = random_cartpole_return(s["config"]["seed"] + EVAL_SEED_OFFSET)
    assert random_return < 40
    assert s["final_eval_return"] > 3 * random_return
    m = read_metrics(dqn_run / "metrics.csv")
    assert np.nanmax(m["return_mean"]) > 3 * random_return
    # epsilon annealed from 1 to its floor over the first 16% of the run
    assert m["epsilon"][0] < 1.0 and m["epsilon"][-1] == pytest.approx(0.04)


# ----------------------------------------------------------------------------- run files
def test_run_files_and_summary(ppo_run):
    for name in (
        "config.json",
        "metrics.csv",
        "summary.json",
        "checkpoint.pt",
        "learning_curve.png",
    ):
        assert (ppo_run / name).is_file(), name
    assert not list(ppo_run.glob(".*tmp*"))  # atomic writes leave no temp files behind
    s = summary(ppo_run)
    for key in (
        "algo",
        "env",
        "seed",
        "total_steps",
        "wall_s",
        "steps_per_s",
        "solved_at_step",
        "solved_at_s",
        "final_eval_return",
    ):
        assert key in s, key
    assert (s["algo"], s["env"], s["seed"]) == ("ppo", "CartPole-v1", 4)
    assert s["reward_threshold"] == 475.0
    assert s["steps_per_s"] == pytest.approx(s["total_steps"] / s["wall_s"], rel=1e-3)
    assert (s["solved_at_step"] is None) == (s["solved_at_s"] is None)
    config = json.loads((ppo_run / "config.json").read_text())
    assert config["algo"] == "ppo" and config["n_steps"] == 32 and config["gae_lambda"] == 0.8
    assert (ppo_run / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_metrics_columns_and_steps(ppo_run):
    rows = metrics_rows(ppo_run / "metrics.csv", drop_wall=False)
    assert list(rows[0]) == [
        "step",
        "wall_s",
        "episodes",
        "return_mean",
        "return_std",
        "length_mean",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_frac",
        "explained_var",
        "lr",
        "steps_per_s",
    ]
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(256, 20224 + 1, 256))
    walls = [float(r["wall_s"]) for r in rows]
    assert walls == sorted(walls)
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == pytest.approx(1e-3 * (1 - 256 / 20000), rel=1e-4) and lrs[-1] == 0.0


def test_solved_at_matches_metrics(ppo_run):
    """The CI run solves: solved_at is the first step where the last-10 mean reached 475."""
    s = summary(ppo_run)
    assert s["solved_at_step"] is not None, "PPO seed 4 solves CartPole within 20k steps"
    m = read_metrics(ppo_run / "metrics.csv")
    first_row = int(np.argmax(m["return_mean"] >= 475))
    assert m["return_mean"][first_row] >= 475
    assert m["step"][first_row] - 256 < s["solved_at_step"] <= m["step"][first_row]
    assert 0 < s["solved_at_s"] <= s["wall_s"]


def test_eval_reproduces_final_eval_return(ppo_run, dqn_run, capsys):
    for run in (ppo_run, dqn_run):
        assert main(["eval", str(run), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["mean_return"] == summary(run)["final_eval_return"]
        assert result["returns"] == summary(run)["final_eval_returns"]
    assert main(["eval", str(ppo_run)]) == 0
    out = capsys.readouterr().out
    assert "deterministic return" in out and "over 10 episodes" in out


# ----------------------------------------------------------------------------- action spaces
def test_ppo_continuous_pendulum_smoke(tmp_path):
    out = tmp_path / "pend"
    argv = [
        "train",
        "ppo",
        "--env",
        "Pendulum-v1",
        "--total-steps",
        "1024",
        "--num-envs",
        "2",
        "--n-steps",
        "256",
        "--batch-size",
        "128",
        "--epochs",
        "2",
        "--eval-episodes",
        "2",
        *QUIET,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    s = summary(out)
    assert s["reward_threshold"] is None and s["solved_at_step"] is None
    assert -2000 < s["final_eval_return"] < 0
    config = s["config"]
    assert (config["gamma"], config["gae_lambda"], config["epochs"]) == (0.9, 0.95, 2)
    # the deterministic policy respects the env's bounds
    import gymnasium as gym

    from tdrl.recipes import ppo

    state = load_checkpoint(out / "checkpoint.pt")
    cfg = config_from_dict(ppo.PPOConfig, state["config"])
    env = gym.make("Pendulum-v1")
    info = EnvInfo(env.observation_space, env.action_space, None)
    act = ppo.make_act(cfg, info, state["algo_state"]["model"], "cpu")
    actions = act(np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 10)
    assert actions.shape == (64, 1) and np.all(np.abs(actions) <= 2.0)


def test_ppo_onehot_head(tmp_path):
    out = tmp_path / "onehot"
    argv = [
        "train",
        "ppo",
        "--discrete-dist",
        "onehot",
        "--total-steps",
        "1024",
        "--eval-episodes",
        "2",
        *QUIET,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert summary(out)["config"]["discrete_dist"] == "onehot"
    assert summary(out)["final_eval_return"] > 0


def test_dqn_learning_starts_zero_with_n_step_returns(tmp_path):
    # the first training phase can come before any n-step transition is complete
    out = tmp_path / "dqn0"
    argv = ["train", "dqn", "--learning-starts", "0", "--train-freq", "4", "--gradient-steps",
            "1", "--total-steps", "64", "--eval-episodes", "1", *QUIET, "--out", str(out)]
    assert main(argv) == 0
    assert summary(out)["total_steps"] == 64


def test_dqn_buffer_smaller_than_one_flush_is_refused(tmp_path, capsys):
    out = tmp_path / "tiny"
    argv = ["train", "dqn", "--buffer-size", "2", "--num-envs", "2", *QUIET, "--out", str(out)]
    assert main(argv) == 2
    assert "--buffer-size 2 must be >= num_envs * n_step" in capsys.readouterr().err
    assert not out.exists()


def test_ppo_uses_operator_get_dist(monkeypatch):
    """A user's operator: the loss goes through its policy's get_dist, not a re-implementation.

    (The recipe's own categorical agent runs on tensors, tdrl.recipes.ppo_calls; that it computes
    what get_dist gives is checked in tests/test_fastpath.py.)
    """
    import gymnasium as gym

    from tdrl.recipes import ppo

    calls = []
    cfg = ppo.PPOConfig(total_steps=256, epochs=1, module="user_nets:make_agent")
    algo = ppo.PPO(cfg, EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), 475.0))
    assert type(algo.calls).__name__ == "OperatorCalls"
    original = type(algo.policy).get_dist

    def spy(self, td):
        calls.append(td.batch_size)
        return original(self, td)

    monkeypatch.setattr(type(algo.policy), "get_dist", spy)
    algo.iterate()
    algo.close()
    assert torch.Size([256]) in calls
