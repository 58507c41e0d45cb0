"""tdrl.train(module=...): PPO trains a user-built ActorValueOperator, checked before any step."""
from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from train_helpers import assert_eval_and_pt2_replay, metrics_rows
from user_nets import make_agent, make_c51_qnet, make_qnet

import tdrl
from tdrl.cli import main
from tdrl.recipes import user_module
from tdrl.recipes.config import TrainError
from tdrl.recipes.envs import probe_env

CARTPOLE = (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
RUN = {"total_steps": 512, "n_steps": 32, "epochs": 2, "eval_episodes": 3, "log": None}


def test_ppo_trains_a_user_operator_and_every_command_rebuilds_it(tmp_path, monkeypatch, capsys):
    agent = make_agent(*CARTPOLE)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    run = tmp_path / "run"
    result = tdrl.train("ppo", env="CartPole-v1", module=agent, out=run, **RUN)
    config = json.loads((run / "config.json").read_text())
    assert config["module"] == "python:ActorValueOperator"
    assert config["discrete_dist"] == "categorical"  # index actions, from the user's head
    assert all(torch.equal(v, before[k]) for k, v in agent.state_dict().items())  # a copy trains
    trained = torch.load(run / "checkpoint.pt", weights_only=False)["algo_state"]["model"]
    assert any(not torch.equal(trained[k], before[k]) for k in before)
    monkeypatch.setattr(user_module, "_TEMPLATES", {})  # a new process: only the run dir knows it
    policy = tdrl.load(run)
    widths = [m.out_features for m in policy.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 2]  # the user's trunk and logits head (the recipe's is 64-64)
    assert policy(TensorDict({"observation": torch.zeros(5, 4)}, [5]))["action"].shape == (5,)
    assert_eval_and_pt2_replay(run, result.summary["final_eval_return"], capsys)
    monkeypatch.setattr(user_module, "_TEMPLATES", {})
    resumed = tdrl.train("ppo", out=run, resume=True, total_steps=1024, log=None)
    assert resumed.summary["total_steps"] == 1024


def test_cli_module_factory(tmp_path):
    argv = ["train", "ppo", "--module", "user_nets:make_agent", "--out", str(tmp_path / "run"),
            "--total-steps", "256", "--n-steps", "32", "--epochs", "1", "--eval-episodes", "2"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["config"]["module"] == "user_nets:make_agent"
    assert "user_module" in torch.load(tmp_path / "run/checkpoint.pt", weights_only=False)
    assert torch.load(tmp_path / "run/checkpoint.pt", weights_only=False)["user_module"] is None


@pytest.mark.parametrize(
    ("module", "kwargs", "message"),
    [
        (make_agent(*CARTPOLE, obs_key="obs"), {},
         "module=: the operator reads ['obs'], but PPO gives it only 'observation'"),
        (make_agent(*CARTPOLE, log_prob=False), {},
         "module=: the operator wrote no 'sample_log_prob' (build the ProbabilisticActor with "
         "return_log_prob=True); it wrote ["),
        (make_agent(*CARTPOLE, n_actions=3), {},
         "module=: the policy's distribution has 3 categories; Discrete(2) needs 2"),
        (make_agent(gym.spaces.Box(-1, 1, (5,)), CARTPOLE[1]), {},
         "module=: the operator failed on a batch of 2 observations of shape (4,): RuntimeError"),
        (torch.nn.Linear(4, 2), {}, "PPO trains an ActorValueOperator (trunk, policy head, "
         "value head), got Linear"),
        (make_agent(*CARTPOLE), {"normalize_obs": True},
         "--normalize-obs applies to the recipe's own network only"),
        (lambda o, a: make_agent(o, a), {}, "module=: a factory must be importable"),
        ("user_nets:nope", {}, "--module 'user_nets:nope': 'user_nets' has no factory 'nope'"),
    ],
)
def test_a_user_module_that_does_not_fit_is_refused_before_anything_is_written(
        tmp_path, module, kwargs, message):
    with pytest.raises(TrainError, match=re.escape(message)):
        tdrl.train("ppo", env="CartPole-v1", module=module, out=tmp_path / "run", log=None,
                   **kwargs)
    assert not (tmp_path / "run").exists()


def test_wrong_action_shape_for_the_env_is_named(tmp_path):
    agent = make_agent(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2))  # for Pendulum's obs
    with pytest.raises(TrainError, match=re.escape(
            "module=: the action has shape (2,) for a batch of 2; Box(-2.0, 2.0, (1,), float32) "
            "needs (2, 1)")):
        tdrl.train("ppo", env="Pendulum-v1", module=agent, out=tmp_path / "run", log=None)
    assert not (tmp_path / "run").exists()


def test_dqn_trains_a_user_qvalue_actor_and_every_command_rebuilds_it(tmp_path, monkeypatch,
                                                                      capsys):
    run = tmp_path / "run"
    result = tdrl.train("dqn", module=make_qnet(*CARTPOLE), out=run, total_steps=1024,
                        learning_starts=128, train_freq=64, gradient_steps=8, eval_episodes=2,
                        log=None)
    assert result.summary["config"]["module"] == "python:QValueActor"
    monkeypatch.setattr(user_module, "_TEMPLATES", {})
    widths = [m.out_features for m in tdrl.load(run).modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 2]  # the user's network (the recipe's is 128-128)
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_return"] == result.summary["final_eval_return"]
    assert main(["export", str(run), "--format", "pt2"]) == 0
    resumed = tdrl.train("dqn", out=run, resume=True, total_steps=2048, log=None)
    assert resumed.summary["total_steps"] == 2048


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (make_qnet(*CARTPOLE, action_space_kind="one_hot"),
         "module=: the actor writes actions of shape (2, 2) (torch.int64); DQN stores index "
         "actions: build the QValueActor with action_space='categorical'"),
        (make_qnet(*CARTPOLE, n=3), "module=: the network gives action values of shape (2, 3) "
         "for a batch of 2; Discrete(2) needs (2, 2)"),
        (make_agent(*CARTPOLE), "module=: DQN trains a QValueActor or a "
         "DistributionalQValueActor, got ActorValueOperator"),
        (make_c51_qnet(*CARTPOLE, support=torch.tensor([0.0, 1.0, 3.0])),
         "module=: the DistributionalQValueActor's support must be evenly spaced and increasing "
         "(C51 projects onto it), got [0.0, 1.0, 3.0]"),
        (make_c51_qnet(*CARTPOLE, n=3), "module=: the network gives action values of shape "
         "(2, 51, 3) for a batch of 2; Discrete(2) needs (2, 51, 2) (atoms, actions)"),
    ],
)
def test_dqn_refuses_a_q_network_that_does_not_fit(tmp_path, module, message):
    with pytest.raises(TrainError, match=re.escape(message)):
        tdrl.train("dqn", module=module, out=tmp_path / "run", log=None)
    assert not (tmp_path / "run").exists()



def test_dqn_trains_a_user_distributional_actor_with_c51(tmp_path, monkeypatch, capsys):
    from tdrl.api import load_run
    from tdrl.recipes.dqn import DQN
    from tdrl.recipes.dqn_distributional import C51Update

    run, qnet = tmp_path / "run", make_c51_qnet(*CARTPOLE)
    # no schedule that depends on --total-steps, so a shorter run resumed is the longer one
    flags = {"learning_starts": 128, "train_freq": 64, "gradient_steps": 8, "log_every": 256,
             "eval_episodes": 2, "log": None, "anneal_lr": False, "eps_init": 0.1, "eps_end": 0.1}
    result = tdrl.train("dqn", module=qnet, out=run, total_steps=1024, **flags)
    assert result.summary["config"]["module"] == "python:DistributionalQValueActor"
    rows = metrics_rows(run / "metrics.csv")
    assert rows[-1]["updates"] == "112" and 0 < float(rows[-1]["loss"]) < float(np.log(51))
    monkeypatch.setattr(user_module, "_TEMPLATES", {})
    policy = tdrl.load(run)
    assert type(policy.module).__name__ == "DistributionalQValueActor"
    assert_eval_and_pt2_replay(run, result.summary["final_eval_return"], capsys)
    # resume: the same rows as one uninterrupted run
    tdrl.train("dqn", module=qnet, out=tmp_path / "part", total_steps=512, **flags)
    monkeypatch.setattr(user_module, "_TEMPLATES", {})
    tdrl.train("dqn", out=tmp_path / "part", resume=True, total_steps=1024, log=None)
    assert metrics_rows(tmp_path / "part/metrics.csv") == rows
    _, cfg, _ = load_run(run)
    algo = DQN(cfg, probe_env("CartPole-v1"))
    assert isinstance(algo.train_step, C51Update)
    algo.close()


def test_ppo_trains_a_policy_value_pair(tmp_path, monkeypatch):
    """TorchRL's docs' pair: a ProbabilisticActor and a ValueOperator, both on observation."""
    from tdrl.modules import ProbabilisticActor, SafeModule, ValueOperator

    policy = ProbabilisticActor(
        SafeModule(torch.nn.Linear(4, 2), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=torch.distributions.Categorical,
        return_log_prob=True)
    value = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation"])
    run = tmp_path / "run"
    result = tdrl.train("ppo", env="CartPole-v1", module=(policy, value), out=run, **RUN)
    assert result.summary["config"]["module"] == "python:ActorCriticWrapper"
    monkeypatch.setattr(user_module, "_TEMPLATES", {})
    loaded = tdrl.load(run)
    assert loaded(TensorDict({"observation": torch.zeros(3, 4)}, [3]))["action"].shape == (3,)
    bad = ValueOperator(torch.nn.Linear(4, 1), in_keys=["obs"])
    with pytest.raises(TrainError, match=re.escape(
            "module=: the (policy, value) pair must both read 'observation'")):
        tdrl.train("ppo", env="CartPole-v1", module=(policy, bad), out=tmp_path / "bad", **RUN)
    assert not (tmp_path / "bad").exists()
