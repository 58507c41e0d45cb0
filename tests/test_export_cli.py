"""``tdrl export`` and ``tdrl eval --policy``: the exported file replays the run's final evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdrl.cli import main

TINY_PPO = ["--total-steps", "512", "--num-envs", "2", "--n-steps", "64", "--batch-size", "64",
            "--epochs", "1", "--eval-episodes", "3", "--no-progress", "--threads", "1"]
TINY_DQN = ["--total-steps", "600", "--learning-starts", "100", "--eval-episodes", "3",
            "--no-progress", "--threads", "1"]
TINY_SAC = ["--total-steps", "300", "--learning-starts", "100", "--hidden", "16,16",
            "--batch-size", "32", "--eval-episodes", "3", "--no-progress", "--threads", "1"]
RUNS = {
    "ppo-cartpole": ["ppo", "--env", "CartPole-v1", *TINY_PPO],
    "sac-pendulum": ["sac", "--env", "Pendulum-v1", *TINY_SAC],
    "ppo-pendulum": ["ppo", "--env", "Pendulum-v1", *TINY_PPO],
    "dqn-cartpole": ["dqn", "--env", "CartPole-v1", *TINY_DQN],
}


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module", params=list(RUNS))
def run_dir(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(request.param) / "run"
    assert main(["train", *RUNS[request.param], "--out", str(out)]) == 0
    return out


def _eval_policy(run_dir: Path, policy: Path, capsys) -> dict:
    code, out, err = _run(["eval", str(run_dir), "--policy", str(policy), "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_exported_onnx_replays_final_eval(run_dir, capsys):
    code, out, _ = _run(["export", str(run_dir), "--format", "onnx"], capsys)
    assert code == 0
    path = run_dir / "policy.onnx"
    assert out.strip() == f"wrote {path} and policy.onnx.json"
    meta = json.loads((run_dir / "policy.onnx.json").read_text())
    assert meta["inputs"][0]["name"] == "observation" and meta["onnx_opset"] == 18
    summary = json.loads((run_dir / "summary.json").read_text())
    result = _eval_policy(run_dir, path, capsys)
    assert result["policy"] == str(path) and result["episodes"] == summary["final_eval_episodes"]
    # continuous policies compute in float64 on both sides (the final evaluation and the file),
    # so onnxruntime's last-bit differences from torch vanish in the float32 actions
    continuous = meta["env"] == "Pendulum-v1"
    assert meta["compute_dtype"] == ("float64" if continuous else "float32")
    assert [o["dtype"] for o in meta["outputs"]] == ["float32" if continuous else "int64"]
    if continuous:
        assert meta["action_space"]["low"] == [-2.0] and meta["action_space"]["high"] == [2.0]
    assert result["returns"] == summary["final_eval_returns"]
    assert result["mean_return"] == summary["final_eval_return"]


def test_exported_pt2_replays_final_eval_exactly(run_dir, tmp_path, capsys):
    path = tmp_path / "sub" / "p.pt2"
    assert _run(["export", str(run_dir), "--format", "pt2", "--out", str(path)], capsys)[0] == 0
    assert json.loads((tmp_path / "sub" / "p.pt2.json").read_text())["format"] == "pt2"
    summary = json.loads((run_dir / "summary.json").read_text())
    result = _eval_policy(run_dir, path, capsys)
    assert result["returns"] == summary["final_eval_returns"]
    assert result["mean_return"] == summary["final_eval_return"]


def test_export_and_eval_policy_errors(tmp_path, capsys):
    code, _, err = _run(["export", str(tmp_path / "missing")], capsys)
    assert code == 2 and "is not a directory" in err
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--format", "tflite"])
    capsys.readouterr()


def test_eval_policy_missing_file(run_dir, tmp_path, capsys):
    code, _, err = _run(["eval", str(run_dir), "--policy", str(tmp_path / "nope.onnx")], capsys)
    assert code == 2 and "--policy: no exported policy at" in err
    code, _, err = _run(["eval", str(run_dir), "--policy", str(tmp_path / "p.tflite")], capsys)
    assert code == 2 and "unknown suffix '.tflite'" in err


def test_eval_act_runs_box_policies_in_float64_and_keeps_discrete_acts():
    import gymnasium as gym
    import numpy as np
    import torch
    from tensordict import TensorDict

    from tdrl.envs.utils import ExplorationType, set_exploration_type
    from tdrl.recipes import get_recipe
    from tdrl.recipes.envs import EnvInfo
    from tdrl.recipes.eval_act import eval_act
    from tdrl.recipes.ppo import PPOConfig, build_agent

    recipe, cfg = get_recipe("ppo"), PPOConfig()
    box = EnvInfo(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)), None)
    torch.manual_seed(0)
    state = build_agent(cfg, *box[:2]).agent.state_dict()
    obs = np.random.default_rng(0).normal(size=(64, 3))  # float64: cast to float32 first
    got = eval_act(recipe, cfg, box, state, "cpu")(obs)
    policy = recipe.make_policy(cfg, box, state, torch.device("cpu")).double()
    td = TensorDict(observation=torch.as_tensor(obs, dtype=torch.float32).double(), batch_size=[64])
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        expected = policy(td)["action"].float().numpy()
    assert got.dtype == np.float32 and got.shape == (64, 1)
    np.testing.assert_array_equal(got, expected)
    assert all(p.dtype == torch.float32 for p in state.values() if p.is_floating_point())
    discrete = EnvInfo(box.observation_space, gym.spaces.Discrete(2), None)
    state = build_agent(cfg, *discrete[:2]).agent.state_dict()

    def own_act(o):
        return o

    assert eval_act(recipe, cfg, discrete, state, "cpu", fallback=own_act) is own_act
    act = eval_act(recipe, cfg, discrete, state, "cpu")  # tdrl eval: the recipe's make_act
    assert act(obs.astype(np.float32)).dtype == np.int64
