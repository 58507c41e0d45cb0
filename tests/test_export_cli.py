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
RUNS = {
    "ppo-cartpole": ["ppo", "--env", "CartPole-v1", *TINY_PPO],
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
    if meta["env"] == "Pendulum-v1":
        # onnxruntime's Gemm/Tanh kernels round differently from torch's by <= 1 ulp on some
        # actions; over 200-step episodes the returns agree to ~1e-8 relative, not bit for bit
        assert meta["action_space"]["low"] == [-2.0] and meta["action_space"]["high"] == [2.0]
        assert result["returns"] == pytest.approx(summary["final_eval_returns"], rel=1e-6)
    else:
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
