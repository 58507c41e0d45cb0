"""`--workers N` with user modules (module=): PPO's and DQN's Ray workers act with the user's network.

The workers get the algorithm's own copy of the network (pickled to them with the weights),
so a module object passed to ``tdrl.train`` works as well as an importable factory. SAC has
no ``--workers``. Run serially with the other Ray tests (``make test-ray``); one local
2-CPU Ray instance for the module, every test under a hard time limit.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
from train_helpers import metrics_rows
from user_nets import make_agent, make_c51_qnet, make_qnet

import tdrl

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'tdrl[ray]'")

pytestmark = pytest.mark.timeout(240, method="thread")
CARTPOLE = (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
RAY_INIT = {"num_cpus": 2, "include_dashboard": False, "logging_level": "warning",
            "object_store_memory": 200 * 1024**2}


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(**RAY_INIT)
    yield
    ray.shutdown()


def test_ppo_workers_act_with_the_user_operator(tmp_path):
    run = tmp_path / "run"
    result = tdrl.train("ppo", module=make_agent(*CARTPOLE), out=run, total_steps=512,
                        workers=2, num_envs=2, n_steps=32, batch_size=64, epochs=1, eval_episodes=1,
                        log=None)
    assert result.summary["config"]["workers"] == 2
    assert result.summary["config"]["module"] == "python:ActorValueOperator"
    assert [r["step"] for r in metrics_rows(run / "metrics.csv")] == ["128", "256", "384", "512"]


@pytest.mark.parametrize("make", [make_qnet, make_c51_qnet], ids=["qvalue", "distributional"])
def test_dqn_workers_act_with_the_user_q_network(tmp_path, make):
    run = tmp_path / "run"
    result = tdrl.train("dqn", module=make(*CARTPOLE), out=run, total_steps=1024, workers=2,
                        num_envs=2, learning_starts=256, train_freq=128, gradient_steps=4,
                        sync_every=4, log_every=512, eval_episodes=1, log=None)
    assert result.summary["config"]["workers"] == 2
    rows = metrics_rows(run / "metrics.csv")
    assert int(rows[-1]["step"]) >= 1024 and int(rows[-1]["updates"]) > 0
    assert float(rows[-1]["loss"]) > 0
