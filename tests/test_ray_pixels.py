"""`tdrl train ppo|dqn --workers N` on MinAtar frames (Ray, started once per module; in RAY_TESTS).

The workers' collectors keep the frames uint8 (as the local rollout does); the run
finishes, evaluates and its metrics are the game's rewards (MinAtar: one life, unclipped).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tdrl.cli import main

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'tdrl[ray]'")
pytestmark = [
    pytest.mark.timeout(600, method="thread"),
    pytest.mark.skipif(importlib.util.find_spec("minatar") is None, reason="the minatar extra"),
]
RAY_INIT = {"num_cpus": 2, "include_dashboard": False, "logging_level": "warning",
            "object_store_memory": 200 * 1024**2}
QUIET = ["--no-progress", "--threads", "1", "--eval-episodes", "2"]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(**RAY_INIT)
    yield
    ray.shutdown()


def test_ppo_minatar_with_two_workers(tmp_path):
    out = tmp_path / "run"
    flags = ["--env", "MinAtar/Breakout-v1", "--total-steps", "512", "--num-envs", "2",
             "--n-steps", "64", "--batch-size", "128", "--epochs", "1", *QUIET]
    assert main(["train", "ppo", *flags, "--workers", "2", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["total_steps"] == 512 and s["config"]["workers"] == 2
    assert s["final_eval_episodes"] == 2


def test_dqn_minatar_with_one_worker(tmp_path, monkeypatch):
    from tdrl.recipes import dqn

    seen = []
    original = dqn.DQN.store

    def spy(self, obs, *args):
        seen.append(obs.dtype)
        return original(self, obs, *args)

    monkeypatch.setattr(dqn.DQN, "store", spy)
    out = tmp_path / "run"
    flags = ["--env", "MinAtar/Breakout-v1", "--total-steps", "640", "--learning-starts", "320",
             "--log-every", "320", "--buffer-size", "2000", *QUIET]
    assert main(["train", "dqn", *flags, "--workers", "1", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["total_steps"] >= 640
    assert seen and all(str(d) == "torch.uint8" for d in seen)  # the frames came back uint8
