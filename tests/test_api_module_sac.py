"""tdrl.train("sac", module=...): a user's actor + Q(s, a) critic, checked before any step."""
from __future__ import annotations

import re

import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict
from train_helpers import assert_eval_and_pt2_replay, metrics_rows
from user_nets import make_agent, make_sac_pair

import tdrl
from tdrl.cli import main
from tdrl.recipes import user_module
from tdrl.recipes.config import TrainError
from tdrl.recipes.sac import SACConfig, build_agent
from tdrl.recipes.twin_q import TwinCritic

PENDULUM = (gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)))
RUN = {"env": "Pendulum-v1", "learning_starts": 100, "batch_size": 32, "log_every": 100,
       "eval_episodes": 1, "log": None}


@pytest.mark.parametrize("kind", ["pair", "operator"])
def test_sac_trains_user_networks_and_every_command_rebuilds_them(tmp_path, monkeypatch, capsys,
                                                                  kind):
    module = make_sac_pair(*PENDULUM, trunk=kind == "operator")
    before = [{k: v.clone() for k, v in m.state_dict().items()}
              for m in (module if kind == "pair" else [module])]
    run = tmp_path / "run"
    result = tdrl.train("sac", module=module, out=run, total_steps=300, **RUN)
    expected_id = "python:ActorCriticWrapper" if kind == "pair" else "python:ActorCriticOperator"
    assert result.summary["config"]["module"] == expected_id
    for m, b in zip(module if kind == "pair" else [module], before):  # a copy trained
        assert all(torch.equal(v, b[k]) for k, v in m.state_dict().items())
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert isinstance(state["user_module"], torch.nn.Module)
    twin_keys = [k for k in state["algo_state"]["model"] if ".critics.1." in k]
    assert twin_keys  # SAC added the second critic
    monkeypatch.setattr(user_module, "_TEMPLATES", {})  # a new process: only the run dir knows it
    policy = tdrl.load(run)
    out = policy(TensorDict({"observation": torch.zeros(5, 3)}, [5]))
    assert out["action"].shape == (5, 1) and bool(out["action"].abs().max() <= 2)
    assert_eval_and_pt2_replay(run, result.summary["final_eval_return"], capsys)


def test_resume_of_a_user_module_run_is_exact(tmp_path, monkeypatch):
    module = make_sac_pair(*PENDULUM)
    whole = tdrl.train("sac", module=module, out=tmp_path / "whole", total_steps=400, **RUN)
    tdrl.train("sac", module=module, out=tmp_path / "parts", total_steps=200, **RUN)
    monkeypatch.setattr(user_module, "_TEMPLATES", {})
    resumed = tdrl.train("sac", out=tmp_path / "parts", resume=True, total_steps=400, log=None)
    assert metrics_rows(tmp_path / "parts/metrics.csv") == metrics_rows(
        tmp_path / "whole/metrics.csv")
    assert resumed.summary["final_eval_returns"] == whole.summary["final_eval_returns"]


def test_cli_factory_returning_a_pair_gives_the_api_metrics(tmp_path):
    argv = ["train", "sac", "--module", "user_nets:make_sac_pair", "--out", str(tmp_path / "run"),
            "--total-steps", "200", "--learning-starts", "100", "--batch-size", "16",
            "--log-every", "100", "--eval-episodes", "1", "--no-progress"]
    assert main(argv) == 0
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=False)
    assert state["config"]["module"] == "user_nets:make_sac_pair" and state["user_module"] is None
    tdrl.train("sac", module="user_nets:make_sac_pair", out=tmp_path / "api", total_steps=200,
               learning_starts=100, batch_size=16, log_every=100, eval_episodes=1, log=None)
    rows = metrics_rows(tmp_path / "run/metrics.csv")
    assert len(rows) == 2 and rows[1]["updates"] == "100"
    assert rows == metrics_rows(tmp_path / "api/metrics.csv")


def test_one_critic_becomes_twins_with_fresh_weights_and_an_ensemble_is_kept():
    cfg = SACConfig(module=user_module.module_id_for(make_sac_pair(*PENDULUM)))
    parts = build_agent(cfg, *PENDULUM)
    assert isinstance(parts.twin, TwinCritic) and len(parts.twin.critics) == 2
    first, second = (list(c.parameters()) for c in parts.twin.critics)
    assert [p.shape for p in first] == [p.shape for p in second]
    assert not any(torch.equal(a, b) for a, b in zip(first, second))
    td = TensorDict(observation=torch.zeros(4, 3), action=torch.ones(4, 1), batch_size=[4])
    assert parts.qvalue(td)["state_action_value"].shape == (4, 2)
    cfg = SACConfig(module=user_module.module_id_for(make_sac_pair(*PENDULUM, twin=True)))
    parts = build_agent(cfg, *PENDULUM)
    assert len(parts.twin.critics) == 1  # [B, 2] already: the user's own twins, used as given
    assert parts.qvalue(td)["state_action_value"].shape == (4, 2)


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (make_sac_pair(*PENDULUM, critic_key="act"),
         "module=: the critic reads ['observation', 'act']; SAC's critic reads 'action' and the "
         "observation"),
        (make_sac_pair(*PENDULUM, critic_out="q"),
         "module=: the critic writes ['q']; SAC needs 'state_action_value', Q(s, a)"),
        (make_sac_pair(*PENDULUM, act_dim=2),
         "module=: the action has shape (2, 2) for a batch of 2; Box(-2.0, 2.0, (1,), float32) "
         "needs (2, 1)"),
        (make_sac_pair(*PENDULUM, log_prob=False),
         "module=: the actor wrote no 'sample_log_prob' (build the ProbabilisticActor with "
         "return_log_prob=True); it wrote ['action', 'loc', 'observation', 'scale']"),
        (make_sac_pair(*PENDULUM, dist="no_rsample"),
         "module=: the actor's NoRsampleTanhNormal cannot be reparameterized"),
        (make_sac_pair(*PENDULUM, dist="normal"),
         "module=: the actor's IndependentNormal has support IndependentConstraint(Real(), 1), "
         "which is not inside Box(-2.0, 2.0, (1,), float32); use TanhNormal(low=action_space.low, "
         "high=action_space.high)"),
        (make_sac_pair(*PENDULUM, scale_layer=True),
         "module=: SAC needs two critics and copies yours with fresh weights, but no "
         "reset_parameters() re-initialises ['module.w'] of the critic"),
        (make_sac_pair(gym.spaces.Box(-1, 1, (5,)), PENDULUM[1]),
         "module=: the critic failed on a batch of 2 (observation (3,), action (1,)): "
         "RuntimeError"),
        (make_agent(PENDULUM[0], gym.spaces.Discrete(2)),
         "module=: SAC trains an ActorCriticOperator (trunk, actor head, Q(s, a) critic head), an "
         "ActorCriticWrapper(actor, critic) or an (actor, critic) pair; got ActorValueOperator "
         "(an ActorValueOperator's value head is V(s); SAC's critic reads the action)"),
        (torch.nn.Linear(3, 1), "module=: SAC trains an ActorCriticOperator"),
    ],
)
def test_sac_refuses_networks_that_do_not_fit_before_anything_is_written(tmp_path, module,
                                                                          message):
    with pytest.raises(TrainError, match=re.escape(message)):
        tdrl.train("sac", module=module, out=tmp_path / "run", **RUN)
    assert not (tmp_path / "run").exists()


def test_shared_trunk_flag_with_a_user_module_is_refused(tmp_path):
    with pytest.raises(TrainError, match=re.escape(
            "--shared-trunk applies to the recipe's own networks only; with --module pass an "
            "ActorCriticOperator")):
        tdrl.train("sac", module=make_sac_pair(*PENDULUM), shared_trunk=True,
                   out=tmp_path / "run", **RUN)
    assert not (tmp_path / "run").exists()
