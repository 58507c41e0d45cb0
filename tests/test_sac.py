"""SAC: learning (CI-sized, both trunk modes), exact resume, the Q-value getter, twin critics
and the MuJoCo env path."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from train_helpers import crash_run

from tdrl.cli import main
from tdrl.modules import (
    MLP,
    ActorCriticOperator,
    NormalParamExtractor,
    ProbabilisticActor,
    SafeModule,
    TanhNormal,
    ValueOperator,
)
from tdrl.recipes.envs import EVAL_SEED_OFFSET, evaluate
from tdrl.recipes.runfiles import WALL_COLUMNS, load_checkpoint
from tdrl.recipes.twin_q import TwinQ

QUIET = ["--no-progress"]
# CI budget: small networks, 3000 steps; random play scores about -1200 on these episodes
SAC_CI = ["--seed", "0", "--total-steps", "3000", "--hidden", "64,64", "--batch-size", "64",
          "--log-every", "500", "--eval-episodes", "5", *QUIET]  # fmt: skip
SMALL_SAC = ["--total-steps", "1200", "--checkpoint-every", "600", "--log-every", "300",
             "--learning-starts", "200", "--hidden", "16,16", "--batch-size", "32",
             "--eval-episodes", "2", *QUIET]  # fmt: skip


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def metrics_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for c in WALL_COLUMNS:
            r.pop(c)
    return rows


def random_pendulum_return(episodes: int, seed: int) -> float:
    rng = np.random.default_rng(0)

    def act(obs):
        return rng.uniform(-2.0, 2.0, (len(obs), 1)).astype(np.float32)

    return float(evaluate(act, "Pendulum-v1", episodes, seed).mean())


# ----------------------------------------------------------------------------- learning
# separate networks get 4,000 steps: at 3,000 their return still swings with last-bit rounding
# (seeds 0-2: -970 / -528 / -758 at 3,000; -343 / -195 / -151 at 4,000)
@pytest.mark.parametrize(("trunk", "steps"), [("--no-shared-trunk", 4000), ("--shared-trunk", 3000)])
def test_sac_pendulum_improves_over_random(trunk, steps, tmp_path):
    out = tmp_path / "run"
    args = ["train", "sac", *SAC_CI, trunk, "--total-steps", str(steps), "--out", str(out)]
    assert main(args) == 0
    s = summary(out)
    assert s["total_steps"] == steps and s["config"]["shared_trunk"] == (trunk == "--shared-trunk")
    random_return = random_pendulum_return(5, s["seed"] + EVAL_SEED_OFFSET)
    assert random_return < -1000
    assert s["final_eval_return"] > random_return + 250
    rows = metrics_rows(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(500, steps + 1, 500))
    assert int(rows[-1]["updates"]) == steps - 100  # one update per env step after learning_starts
    alphas = [float(r["alpha"]) for r in rows]
    assert alphas[-1] < alphas[0] < 1.0  # the temperature was tuned down from 1


# ----------------------------------------------------------------------------- resume
def test_sac_crash_then_resume_matches_uninterrupted_run(tmp_path, monkeypatch, capsys):
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert main(["train", "sac", *SMALL_SAC, "--out", str(full)]) == 0
    crash_run(monkeypatch, "sac", [*SMALL_SAC, "--out", str(crashed)], at_step=900)
    saved = load_checkpoint(crashed / "checkpoint.pt")
    assert saved["global_step"] == 600 and not saved["finished"]
    assert len(saved["algo_state"]["buffer"]["storage"]) == 600

    assert main(["train", "sac", "--out", str(crashed), "--resume", *QUIET]) == 0
    assert "resuming" in capsys.readouterr().out
    assert metrics_rows(crashed / "metrics.csv") == metrics_rows(full / "metrics.csv")
    assert summary(crashed)["final_eval_returns"] == summary(full)["final_eval_returns"]
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(crashed / "checkpoint.pt")
    for part in ("model", "target"):
        for key, value in a["algo_state"][part].items():
            assert torch.equal(value, b["algo_state"][part][key]), (part, key)
    assert torch.equal(a["algo_state"]["log_alpha"], b["algo_state"]["log_alpha"])


def test_sac_follows_the_algorithm_protocol():
    from tdrl.recipes import Algorithm, get_recipe
    from tdrl.recipes.envs import probe_env

    recipe = get_recipe("sac")
    assert recipe.action_spaces == ("box",) and recipe.config.__name__ == "SACConfig"
    cfg = recipe.config(total_steps=48, learning_starts=16, batch_size=8, hidden=(8, 8),
                        log_every=48)  # fmt: skip
    algo = recipe.algorithm(cfg, probe_env("Pendulum-v1"), None)
    try:
        assert isinstance(algo, Algorithm)
        row = algo.iterate()
        assert set(row) == set(algo.loss_columns) and row["updates"] == 32
        assert all(np.isfinite(row[k]) for k in algo.loss_columns)
        actions = algo.act(np.zeros((3, 3), dtype=np.float32))
        assert actions.shape == (3, 1) and np.all(np.abs(actions) < 2.0)
        state = algo.state_dict()
        assert state["model"].keys() == algo.agent.state_dict().keys()
    finally:
        algo.close()


def test_sac_refuses_discrete_actions_and_bad_flags(capsys):
    assert main(["train", "sac", "--env", "CartPole-v1", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "sac needs a continuous (1-D Box) action space, but CartPole-v1 has Discrete(2)" in err
    assert main(["train", "sac", "--tau", "0", *QUIET]) == 2
    assert "--tau must be in (0, 1], got 0.0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the Q getter
def _operator() -> ActorCriticOperator:
    trunk = SafeModule(torch.nn.Linear(3, 8), in_keys=["observation"], out_keys=["hidden"])
    policy = ProbabilisticActor(
        SafeModule(
            torch.nn.Sequential(torch.nn.Linear(8, 2), NormalParamExtractor()),
            in_keys=["hidden"],
            out_keys=["loc", "scale"],
        ),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        return_log_prob=True,
    )
    critic = ValueOperator(
        MLP(in_features=9, out_features=1, num_cells=[4]), in_keys=["hidden", "action"]
    )
    return ActorCriticOperator(trunk, policy, critic)


def test_qvalue_operator_scores_the_given_action_and_leaves_it_untouched():
    torch.manual_seed(0)
    op = _operator()
    obs, action = torch.randn(5, 3), torch.rand(5, 1) * 2 - 1
    kept = action.clone()
    td = op.get_qvalue_operator()(TensorDict(observation=obs, action=action, batch_size=[5]))
    assert td["action"] is action and torch.equal(action, kept)
    assert "loc" not in td.keys() and "sample_log_prob" not in td.keys()
    trunk, _, critic = op.module
    expected = critic.module(torch.cat([trunk.module(obs), action], -1))
    torch.testing.assert_close(td["state_action_value"], expected)
    # a Q-loss through it trains the trunk and the critic, never the policy head
    td["state_action_value"].sum().backward()
    assert all(p.grad is not None for p in op.trunk_parameters())
    assert all(p.grad is not None for p in op.value_parameters())
    assert all(p.grad is None for p in op.policy_parameters())
    # TorchRL's getter (kept for compatibility) re-runs the policy and replaces the action
    td2 = op.get_critic_operator()(TensorDict(observation=obs, action=kept, batch_size=[5]))
    assert not torch.equal(td2["action"], kept)


# ----------------------------------------------------------------------------- parts
def test_twin_q_equals_two_separate_mlps_and_frozen_stops_weight_grads():
    torch.manual_seed(0)
    q = TwinQ(5, (7, 6))
    obs, act = torch.randn(2, 4, 3), torch.randn(2, 4, 2, requires_grad=True)
    out = q(obs, act)
    assert out.shape == (2, 4, 2)
    x = torch.cat([obs, act], -1)
    for k in range(2):
        h = x
        for i, (w, b) in enumerate(zip(q.weights, q.biases)):
            h = h @ w[k] + b[k, 0]
            h = h.relu() if i < 2 else h
        torch.testing.assert_close(out[..., k], h.squeeze(-1))
    with q.frozen():
        q(obs, act).sum().backward()
    assert act.grad is not None and all(w.grad is None for w in q.parameters())
    q(obs, act).sum().backward()
    assert all(w.grad is not None for w in q.parameters())


# ----------------------------------------------------------------------------- MuJoCo
HAVE_MUJOCO = importlib.util.find_spec("mujoco") is not None


@pytest.mark.skipif(not HAVE_MUJOCO, reason="mujoco not installed: pip install -e '.[mujoco]'")
@pytest.mark.parametrize(
    "algo, flags",
    [
        ("sac", ["--total-steps", "300", "--learning-starts", "200", "--hidden", "16,16",
                 "--batch-size", "32", "--log-every", "100"]),
        ("ppo", ["--total-steps", "256", "--num-envs", "2", "--n-steps", "128", "--epochs", "1",
                 "--batch-size", "64"]),
    ],
)  # fmt: skip
def test_halfcheetah_runs_and_evals(algo, flags, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", algo, "--env", "HalfCheetah-v5", *flags, "--eval-episodes", "1"]
    assert main([*argv, "--out", str(out), *QUIET]) == 0
    s = summary(out)
    assert s["env"] == "HalfCheetah-v5" and np.isfinite(s["final_eval_return"])
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mean_return"] == s["final_eval_return"]  # float64 evaluation on both sides
