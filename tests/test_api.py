"""The Python API (tdrl.train / tdrl.load): same runs as the CLI, any gymnasium env, callbacks."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from user_envs import DictObsEnv, MatchSignEnv, make_match_sign

import tdrl
from tdrl.cli import main
from tdrl.recipes import env_ids
from tdrl.recipes.config import TrainError
from tdrl.recipes.envs import EVAL_SEED_OFFSET, evaluate
from tdrl.recipes.runfiles import WALL_COLUMNS

TINY = {"total_steps": 512, "n_steps": 32, "epochs": 1, "eval_episodes": 2}
SMALL_ENV = {"total_steps": 64, "num_envs": 2, "n_steps": 16, "batch_size": 32, "epochs": 1,
             "eval_episodes": 2}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in WALL_COLUMNS} for row in csv.DictReader(f)]


def test_api_and_cli_write_identical_metrics(tmp_path):
    result = tdrl.train("ppo", env="CartPole-v1", out=tmp_path / "api", seed=3, log=None, **TINY)
    argv = ["train", "ppo", "--env", "CartPole-v1", "--out", str(tmp_path / "cli"), "--seed", "3",
            "--total-steps", "512", "--n-steps", "32", "--epochs", "1", "--eval-episodes", "2"]
    assert main(argv) == 0
    api_rows, cli_rows = _rows(tmp_path / "api/metrics.csv"), _rows(tmp_path / "cli/metrics.csv")
    assert len(api_rows) == 2 and api_rows == cli_rows
    cli_summary = json.loads((tmp_path / "cli/summary.json").read_text())
    assert result.summary["final_eval_returns"] == cli_summary["final_eval_returns"]
    assert result.summary["config"] == cli_summary["config"]
    assert result.status == "finished" and result.exit_status == 0
    assert result.run_dir == tmp_path / "api"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nsteps": 64}, "tdrl.train('ppo'): unknown option 'nsteps' (did you mean: n_steps?)"),
        ({"n_steps": "64"}, "n_steps= (--n-steps of tdrl train ppo) must be an integer, got '64'"),
        ({"n_steps": True}, "must be an integer, got True"),
        ({"hidden": (64, 0)}, "hidden= (--hidden of tdrl train ppo) must be positive layer sizes"),
        ({"hidden": (64, 1.5)}, "must be positive layer sizes such as (64, 64), got (64, 1.5)"),
        ({"lr": float("nan")}, "--lr must be a finite number, got nan"),
        ({"lr": "fast"}, "lr= (--lr of tdrl train ppo) must be a number, got 'fast'"),
        ({"activation": "gelu"}, "must be one of tanh, relu, elu, got 'gelu'"),
        ({"normalize_obs": 1}, "normalize_obs= (--normalize-obs of tdrl train ppo) must be True"),
        ({"logger": "csv,neptune"}, "--logger: unknown logger 'neptune'; choose from csv, "),
        ({"env": 3}, "env must be an env id, a gymnasium.Env (class or instance) or a factory"),
        ({"env": "CartPol-v1"}, "unknown environment id 'CartPol-v1'; close matches: CartPole-v1"),
        ({"env": "no_such_module_x:Env"}, "cannot import module 'no_such_module_x'"),
        ({"env": "user_envs:Nope"}, "module 'user_envs' has no attribute 'Nope' and registered no"),
        ({"env": DictObsEnv}, "has observation space Dict("),
        ({"env": ""}, "--env must be a non-empty environment id, got ''"),
        ({"env": MatchSignEnv(), "workers": 2}, "--workers: env 'python:MatchSignEnv' is a Python"),
    ],
)
def test_bad_arguments_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(TrainError, match=re.escape(message)):
        tdrl.train("ppo", out=tmp_path / "run", log=None, **kwargs)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("env", "env_id"),
    [
        (MatchSignEnv, "user_envs:MatchSignEnv"),
        (make_match_sign, "user_envs:make_match_sign"),
        ("user_envs:MatchSignEnv", "user_envs:MatchSignEnv"),
        (MatchSignEnv(), "python:MatchSignEnv"),
        (lambda: MatchSignEnv(length=4), "python:lambda"),
    ],
)
def test_any_gymnasium_env(tmp_path, env, env_id):
    result = tdrl.train("ppo", env=env, out=tmp_path / "run", log=None, **SMALL_ENV)
    assert result.summary["env"] == env_id
    assert json.loads((tmp_path / "run/config.json").read_text())["env"] == env_id
    assert result.summary["total_steps"] == 64
    length = 4 if env_id == "python:lambda" else 8
    returns = np.array(result.summary["final_eval_returns"])
    assert returns.shape == (2,) and ((returns >= 0) & (returns <= length)).all()
    assert result.summary["reward_threshold"] is None  # no registry entry, no threshold


def test_env_module_registers_the_id_for_api_cli_eval_and_export(tmp_path, capsys):
    result = tdrl.train("dqn", env="tdrl-test/MatchSign-v0", env_module="user_env_registry",
                        out=tmp_path / "api", total_steps=128, learning_starts=32,
                        eval_episodes=2, log=None)
    assert result.summary["env"] == "user_env_registry:tdrl-test/MatchSign-v0"
    argv = ["train", "dqn", "--env-module", "user_env_registry", "--env", "tdrl-test/MatchSign-v0",
            "--out", str(tmp_path / "cli"), "--total-steps", "128", "--learning-starts", "32",
            "--eval-episodes", "2"]
    assert main(argv) == 0
    assert _rows(tmp_path / "api/metrics.csv") == _rows(tmp_path / "cli/metrics.csv")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "cli"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mean_return"] == pytest.approx(result.summary["final_eval_return"])
    assert main(["export", str(tmp_path / "cli"), "--format", "pt2"]) == 0
    assert (tmp_path / "cli/policy.pt2").is_file()


def test_cli_env_class_path_in_a_fresh_process(tmp_path):
    tests_dir = str(Path(__file__).parent)
    root = str(Path(__file__).parents[1])
    proc = subprocess.run(
        [sys.executable, "-m", "tdrl", "train", "ppo", "--env", "user_envs:MatchSignEnv",
         "--out", str(tmp_path / "run"), "--total-steps", "64", "--num-envs", "2",
         "--n-steps", "16", "--batch-size", "32", "--epochs", "1", "--eval-episodes", "2"],
        capture_output=True, text=True, env={"PYTHONPATH": f"{root}:{tests_dir}", "PATH": ""},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["env"] == "user_envs:MatchSignEnv" and summary["status"] == "finished"


def test_python_object_env_must_be_passed_again_to_resume(tmp_path, monkeypatch):
    instance = MatchSignEnv()
    tdrl.train("ppo", env=instance, out=tmp_path / "run", log=None, **SMALL_ENV)
    monkeypatch.setattr(env_ids, "_OBJECTS", {})  # as in a new process
    with pytest.raises(TrainError, match=re.escape(
            "env 'python:MatchSignEnv' was passed as a Python object in another process; pass "
            "the same object again as env=")):
        tdrl.train("ppo", out=tmp_path / "run", resume=True, total_steps=128, log=None)
    resumed = tdrl.train("ppo", env=instance, out=tmp_path / "run", resume=True,
                         total_steps=128, log=None)
    assert resumed.summary["total_steps"] == 128
    assert [r["step"] for r in _rows(tmp_path / "run/metrics.csv")] == ["32", "64", "96", "128"]


def test_callbacks_see_every_row_and_can_stop_early_then_resume_continues(tmp_path):
    seen: list[tuple[int, dict]] = []

    def record(step, row):
        seen.append((step, row))

    def stop_after_two(step, row):
        return len(seen) < 2

    result = tdrl.train("ppo", out=tmp_path / "run", log=None, callbacks=[record, stop_after_two],
                        total_steps=1024, n_steps=32, epochs=1, eval_episodes=2)
    assert [s for s, _ in seen] == [256, 512]
    rows = _rows(tmp_path / "run/metrics.csv")
    assert [r["step"] for r in rows] == ["256", "512"]
    assert seen[1][1]["policy_loss"] == pytest.approx(float(rows[1]["policy_loss"]), rel=1e-6)
    assert result.summary["stopped_early_at_step"] == 512
    assert result.summary["total_steps"] == 512 and result.status == "finished"
    again = tdrl.train("ppo", out=tmp_path / "run", resume=True, log=None)
    assert again.summary["total_steps"] == 1024 and again.summary["stopped_early_at_step"] is None
    assert [r["step"] for r in _rows(tmp_path / "run/metrics.csv")] == ["256", "512", "768", "1024"]


def test_load_gives_the_deterministic_policy_of_the_final_evaluation(tmp_path):
    result = tdrl.train("ppo", env="Pendulum-v1", out=tmp_path / "run", log=None,
                        total_steps=256, n_steps=64, batch_size=64, epochs=1, eval_episodes=2)
    policy = tdrl.load(tmp_path / "run")
    assert result.policy.config == policy.config and policy.config["env"] == "Pendulum-v1"
    assert policy.step == 256 and policy.run_dir == tmp_path / "run"
    obs = torch.randn(5, 3)
    first = policy(TensorDict({"observation": obs}, [5]))["action"]
    second = policy(TensorDict({"observation": obs}, [5]))["action"]
    assert first.shape == (5, 1) and torch.equal(first, second)  # deterministic
    assert (first.abs() <= 2.0).all()
    returns = evaluate(policy.act, "Pendulum-v1", 2, 0 + EVAL_SEED_OFFSET)
    assert returns.tolist() == result.summary["final_eval_returns"]


def test_import_tdrl_does_not_load_the_training_stack():
    code = ("import sys, tdrl; bad = [m for m in ('gymnasium', 'tdrl.api', 'tdrl.recipes', "
            "'wandb', 'mlflow', 'tensorboard') if m in sys.modules]; print(bad); "
            "assert callable(tdrl.train) and callable(tdrl.load)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"
