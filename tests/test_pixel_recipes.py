"""Pixels (issue 20) in the recipes: `tdrl train ppo|dqn` on MinAtar and Atari ids, uint8 end to end.

Tiny budgets: each run is a few hundred steps with a checkpoint in the middle; the tests
check resume exactness, `tdrl eval`, `tdrl export` + `tdrl eval --policy` and the frames'
dtype, not learning (the 1M-step MinAtar runs are in the README).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from train_helpers import crash_run, metrics_rows

from tdrl.cli import main
from tdrl.recipes import get_recipe
from tdrl.recipes.config import TrainError
from tdrl.recipes.runfiles import load_checkpoint

needs_minatar = pytest.mark.skipif(
    importlib.util.find_spec("minatar") is None, reason="the minatar extra is not installed"
)
needs_ale = pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None, reason="the atari extra is not installed"
)
QUIET = ["--no-progress", "--threads", "1"]
TINY = {
    "ppo": ["--total-steps", "512", "--num-envs", "2", "--n-steps", "64", "--batch-size", "64",
            "--epochs", "1", "--checkpoint-every", "256", *QUIET],
    "dqn": ["--total-steps", "640", "--learning-starts", "160", "--log-every", "160",
            "--checkpoint-every", "320", "--buffer-size", "2000", "--target-update", "200",
            *QUIET],
}
# Atari's Nature CNN costs ~4 GFLOP a DQN gradient step on 1 CPU thread: few of them here
SHORTER = {"ppo": ["--total-steps", "256", "--n-steps", "32", "--checkpoint-every", "128"],
           "dqn": ["--total-steps", "256", "--learning-starts", "192", "--log-every", "64",
                   "--checkpoint-every", "128"]}
ENVS = {"minatar": ("MinAtar/Breakout-v1", ["--eval-episodes", "3"]),
        "atari": ("ALE/Breakout-v5", ["--eval-episodes", "1"])}
CASES = {
    f"{algo}-{family}": (
        algo, [*TINY[algo], "--env", env, *extra, *(SHORTER[algo] if family == "atari" else [])]
    )
    for family, (env, extra) in ENVS.items()
    for algo in ("ppo", "dqn")
}
CRASH_AT = {"minatar": 320, "atari": 128}
MARKS = {"minatar": needs_minatar, "atari": needs_ale}


def _json(argv: list[str], capsys) -> dict:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=MARKS[name.split("-")[1]]) for name in CASES],
)
def run(request, tmp_path_factory) -> tuple[str, list[str], Path]:
    algo, flags = CASES[request.param]
    out = tmp_path_factory.mktemp(request.param) / "run"
    assert main(["train", algo, *flags, "--out", str(out)]) == 0
    return algo, flags, out


def test_resume_is_exact(run, tmp_path, monkeypatch):
    """A run stopped after its first checkpoint resumes to the same metrics and evaluation."""
    algo, flags, full = run
    crash_at = CRASH_AT["atari" if "ALE/Breakout-v5" in flags else "minatar"]
    crashed = tmp_path / "crashed"
    crash_run(monkeypatch, algo, [*flags, "--out", str(crashed)], at_step=crash_at)
    assert not load_checkpoint(crashed / "checkpoint.pt")["finished"]
    assert main(["train", algo, "--out", str(crashed), "--resume", *QUIET]) == 0
    assert metrics_rows(crashed / "metrics.csv") == metrics_rows(full / "metrics.csv")
    done = [json.loads((d / "summary.json").read_text()) for d in (full, crashed)]
    assert done[0]["final_eval_returns"] == done[1]["final_eval_returns"]


def test_eval_and_exported_policy_replay_the_final_evaluation(run, capsys):
    """`tdrl eval` and the exported ONNX file (uint8 input) give the final evaluation's returns."""
    _, _, out = run
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["train_return_last100"]) or summary["episodes"] == 0
    assert _json(["eval", str(out), "--json"], capsys)["returns"] == summary["final_eval_returns"]
    assert main(["export", str(out), "--format", "onnx"]) == 0
    capsys.readouterr()
    meta = json.loads((out / "policy.onnx.json").read_text())
    assert meta["inputs"][0]["dtype"] == "uint8"
    assert meta["inputs"][0]["shape"] in ([4, 10, 10], [4, 84, 84])
    result = _json(["eval", str(out), "--policy", str(out / "policy.onnx"), "--json"], capsys)
    assert result["returns"] == summary["final_eval_returns"]


@needs_minatar
def test_render_gif_shows_the_game(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "run"
    assert main(["train", "ppo", *CASES["ppo-minatar"][1], "--out", str(out)]) == 0
    gif = tmp_path / "ep.gif"
    assert main(["eval", str(out), "--render-gif", str(gif)]) == 0
    capsys.readouterr()
    image = Image.open(gif)
    assert image.size == (100, 100) and image.n_frames > 1  # MinAtar's 10x10 board, 10x upscaled


# ----------------------------------------------------------------------------- uint8 end to end
@needs_minatar
def test_ppo_rollout_and_dqn_replay_keep_uint8_frames():
    from tdrl.recipes.dqn import DQN, DQNConfig
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.ppo import PPO, PPOConfig

    env = probe_env("MinAtar/Breakout-v1")
    ppo = PPO(PPOConfig(env="MinAtar/Breakout-v1", num_envs=2, n_steps=8, batch_size=16,
                        hidden=(32,), total_steps=16), env)
    batch = ppo.collect()
    assert batch["observation"].dtype == torch.uint8 and batch["observation"].shape == (8, 2, 4,
                                                                                          10, 10)
    ppo.close()
    dqn = DQN(DQNConfig(env="MinAtar/Breakout-v1", num_envs=2, buffer_size=64, hidden=(32,),
                        n_step=1, learning_starts=0), env)
    for _ in range(4):
        dqn.env_step()
    stored = dqn.buffer.sample(4)
    assert stored["observation"].dtype == torch.uint8
    assert stored["next_observation"].dtype == torch.uint8
    dqn.close()


@needs_ale
def test_dqn_atari_replay_stores_each_frame_once():
    from tdrl.recipes.dqn import DQN, DQNConfig
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.frame_replay import FrameReplay

    env = probe_env("ALE/Breakout-v5")
    dqn = DQN(DQNConfig(env="ALE/Breakout-v5", num_envs=2, buffer_size=200, hidden=(32,),
                        n_step=1, learning_starts=0), env)
    assert isinstance(dqn.buffer, FrameReplay)
    for _ in range(50):
        dqn.env_step()
    # 100 transitions of 8 frames each; distinct frames: about one per step (plus resets)
    assert len(dqn.buffer) == 100 and dqn.buffer.frames_written < 130
    batch = dqn.buffer.sample(16)
    assert batch["observation"].dtype == torch.uint8 and batch["observation"].shape[1:] == (4, 84,
                                                                                          84)
    # a frame stack shifts by one frame a step (within one training episode)
    same = batch["observation"][:, 1:] == batch["next_observation"][:, :-1]
    assert bool(same.all())
    dqn.close()


# ----------------------------------------------------------------------------- trunks / checks
def test_image_trunk_kinds_layouts_and_scaling():
    from tdrl.recipes.trunks import ScaleFrames, build_trunk, image_layout, obs_kind

    atari = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    minatar = gym.spaces.Box(0, 1, (4, 10, 10), np.uint8)
    last = gym.spaces.Box(0, 255, (64, 48, 3), np.uint8)
    assert [obs_kind(s) for s in (atari, minatar, last)] == ["image"] * 3
    assert obs_kind(gym.spaces.Box(0, 1, (4, 10, 10), np.float32)) == "vector"
    assert image_layout(last.shape) == (True, (3, 64, 48))
    for space, convs in ((atari, 3), (minatar, 1), (last, 3)):
        body = build_trunk(space, hidden=(16,), activation="relu")
        frames = torch.as_tensor(np.stack([space.sample() for _ in range(2)]))
        out = body.net(frames)
        assert out.shape == (2, 16) and body.features == 16
        assert sum(isinstance(m, torch.nn.Conv2d) for m in body.net.modules()) == convs
        # uint8 frames and the same values as floats give the same features
        torch.testing.assert_close(body.net(frames.float()), out)
    scaled = ScaleFrames(1.0)(torch.ones(1, 4, 10, 10, dtype=torch.uint8))
    assert scaled.dtype == torch.float32 and scaled.max().item() == 1.0


def test_image_trunk_refusals():
    from tdrl.recipes.ppo import PPOConfig
    from tdrl.recipes.ppo_agent import build_agent
    from tdrl.recipes.trunks import build_trunk

    small = gym.spaces.Box(0, 1, (4, 10, 10), np.uint8)
    with pytest.raises(TrainError, match="'nature' CNN does not fit 10x10 frames"):
        build_trunk(small, hidden=(8,), activation="relu", cnn="nature")
    with pytest.raises(TrainError, match="--normalize-obs is for vector observations"):
        build_agent(PPOConfig(normalize_obs=True), small, gym.spaces.Discrete(3))


def test_ppo_head_activation_defaults_to_the_trunks():
    from tdrl.recipes.ppo import PPOConfig
    from tdrl.recipes.ppo_agent import build_agent

    space, actions = gym.spaces.Box(0, 1, (4, 10, 10), np.uint8), gym.spaces.Discrete(3)

    def kinds(part: torch.nn.Module) -> list[str]:
        return [type(m).__name__ for m in part.modules() if type(m) in (torch.nn.ReLU,
                                                                         torch.nn.Tanh)]

    for head_act, want in (("", "ReLU"), ("tanh", "Tanh")):
        cfg = PPOConfig(hidden=(16,), activation="relu", head_hidden=(8, 8),
                        head_activation=head_act)
        parts = build_agent(cfg, space, actions)
        assert kinds(parts.trunk) == ["ReLU", "ReLU"]  # conv + the 16 layer
        assert kinds(parts.policy) == kinds(parts.value) == [want, want]
        td = parts.agent(TensorDict(observation=torch.zeros(2, 4, 10, 10, dtype=torch.uint8),
                                    batch_size=[2]))
        assert td["logits"].shape == (2, 3) and td["state_value"].shape == (2, 1)
    with pytest.raises(TrainError, match=r"invalid --head-activation 'sigmoid'; valid choices: "
                                         r"'' \(none\), tanh, relu, elu"):
        PPOConfig(head_activation="sigmoid").validate()


@needs_minatar
def test_family_defaults_apply_to_every_game():
    from tdrl.recipes.loop import plan_run

    ppo = plan_run(get_recipe("ppo"), {"env": "MinAtar/Asterix-v1"}, out="/tmp/unused").cfg
    assert (ppo.num_envs, ppo.n_steps, ppo.epochs, ppo.clip, ppo.ent_coef, ppo.hidden) == (
        8, 128, 4, 0.1, 0.01, (128,))
    assert (ppo.activation, ppo.head_hidden, ppo.head_activation) == ("relu", (64, 64), "tanh")
    atari = plan_run(get_recipe("ppo"), {"env": "ALE/Pong-v5"}, out="/tmp/unused").cfg
    assert (atari.hidden, atari.head_hidden, atari.head_activation) == ((512,), (), "")
    dqn = plan_run(get_recipe("dqn"), {"env": "MinAtar/Freeway-v1", "seed": 1},
                   out="/tmp/unused").cfg
    assert (dqn.learning_starts, dqn.buffer_size, dqn.batch_size, dqn.target_update) == (
        5000, 100_000, 32, 1000)


def test_game_score_counts_whole_games_only():
    from tdrl.recipes.blocks import EpisodeStats

    stats = EpisodeStats(num_envs=2, threshold=None, game_score=True)
    life_lost = {"final_info": {"_episode_score": np.array([False, False])}}
    stats.update(np.array([1.0, 1.0]), np.array([True, False]), 2, 0.0, life_lost)
    assert stats.episodes == 0
    game_over = {"final_info": {"episode_score": np.array([0.0, 42.0]),
                                "_episode_score": np.array([False, True]),
                                "episode_steps": np.array([0, 300])}}
    stats.update(np.array([1.0, 1.0]), np.array([False, True]), 4, 0.0, game_over)
    assert (stats.episodes, stats.last(100), stats.summary()["length_mean"]) == (1, 42.0, 300.0)


def test_frame_tensor_dtype_is_kept():
    from tdrl.recipes.blocks import deterministic_act
    from tdrl.recipes.trunks import build_trunk

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, td: TensorDict) -> TensorDict:
            seen.append(td["observation"].dtype)
            td["action"] = torch.zeros(td.batch_size[0], dtype=torch.long)
            return td

    deterministic_act(Spy(), "cpu")(np.zeros((2, 4, 10, 10), np.uint8))
    assert seen == [torch.uint8]
    assert build_trunk(gym.spaces.Box(0, 1, (4, 10, 10), np.uint8), hidden=(4,),
                       activation="relu").kind == "image"


def test_dqn_image_networks_plain_and_dueling():
    from tdrl.modules import DuelingCnnDQNet
    from tdrl.recipes.dqn import DQNConfig, build_qnet, prepare
    from tdrl.recipes.envs import EnvInfo
    from tdrl.recipes.trunks import ScaleFrames

    space, actions = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4)
    frames = torch.as_tensor(np.stack([space.sample() for _ in range(3)]))
    for dueling in (False, True):
        cfg = DQNConfig(hidden=(32,), dueling=dueling)
        qnet = build_qnet(cfg, space, actions)
        net = qnet[0].module
        assert isinstance(net, DuelingCnnDQNet) == dueling
        assert any(isinstance(m, ScaleFrames) for m in net.modules())
        values = qnet(TensorDict(observation=frames, batch_size=[3]))["action_value"]
        assert values.shape == (3, 4) and values.dtype == torch.float32
        prepare(cfg, EnvInfo(space, actions, None))
