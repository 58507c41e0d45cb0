"""`--vec envpool` (issue 20): Atari training envs in envpool behind the recipes' vector-env API.

The refusals run everywhere; the rest is skipped when envpool (the `envpool` extra) or ale-py
(the `atari` extra, for the gymnasium evaluation envs) is not installed.
"""
from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tdrl
from tdrl.cli import main
from tdrl.recipes.config import TrainError
from tdrl.recipes.runfiles import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
needs_envpool = pytest.mark.skipif(
    importlib.util.find_spec("envpool") is None or importlib.util.find_spec("ale_py") is None,
    reason="the envpool and atari extras are not installed",
)
needs_minatar = pytest.mark.skipif(
    importlib.util.find_spec("minatar") is None, reason="the minatar extra is not installed"
)
QUIET = ["--no-progress", "--threads", "1"]
ATARI = ["--env", "ALE/Breakout-v5", "--vec", "envpool", "--eval-episodes", "1", *QUIET]
TINY = {
    "ppo": ["--total-steps", "256", "--num-envs", "2", "--n-steps", "32", "--batch-size", "64",
            "--epochs", "1", "--checkpoint-every", "128", *ATARI],
    "dqn": ["--total-steps", "256", "--learning-starts", "192", "--log-every", "64",
            "--checkpoint-every", "128", "--buffer-size", "2000", "--target-update", "200",
            "--n-step", "3", *ATARI],  # n-step: resuming drops the restarted games' pending steps
}


# ----------------------------------------------------------------------------- refusals
def test_import_tdrl_does_not_import_envpool():
    code = ("import sys, tdrl, tdrl.recipes.envpool_vec, tdrl.recipes.loop; "
            "print('envpool' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True)
    assert out.stdout.strip() == "False"


def test_missing_envpool_names_the_extra(monkeypatch, tmp_path, capsys):
    from tdrl.recipes.envs import make_vec_env

    monkeypatch.setitem(sys.modules, "envpool", None)  # import envpool -> ImportError
    with pytest.raises(TrainError, match=r"pip install -e '\.\[envpool\]'"):
        make_vec_env("ALE/Breakout-v5", 2, vec="envpool")
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "envpool" else _find_spec(name, *a))
    if importlib.util.find_spec("ale_py") is not None:
        out = tmp_path / "run"
        assert main(["train", "ppo", "--out", str(out), *TINY["ppo"]]) == 2
        assert "pip install -e '.[envpool]'" in capsys.readouterr().err
        assert not out.exists()


_find_spec = importlib.util.find_spec


@pytest.mark.parametrize("env_id", ["CartPole-v1", pytest.param("MinAtar/Breakout-v1",
                                                                marks=needs_minatar)])
def test_ids_envpool_lacks_are_refused_before_anything_is_written(env_id, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", "--env", env_id, "--vec", "envpool", "--out", str(out),
                 *QUIET]) == 2
    err = capsys.readouterr().err
    assert f"--vec envpool runs Atari games (ALE/<Game>-v5) only, got '{env_id}'" in err
    assert "valid --vec choices for it: sync" in err
    assert not out.exists()


def test_bad_vec_value_names_the_choices():
    from tdrl.recipes.ppo import PPOConfig

    with pytest.raises(TrainError, match="invalid --vec 'gpu'; valid choices: sync, envpool"):
        PPOConfig(vec="gpu").validate()
    with pytest.raises(SystemExit):
        main(["train", "ppo", "--vec", "gpu"])


@needs_envpool
def test_workers_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY["ppo"], "--workers", "2", "--out", str(out)]) == 2
    assert "--vec envpool does not run with --workers" in capsys.readouterr().err
    assert not out.exists()


@needs_envpool
def test_evaluation_envs_stay_on_gymnasium():
    from tdrl.recipes.envs import make_vec_env

    with pytest.raises(TrainError, match="training envs only"):
        make_vec_env("ALE/Breakout-v5", 1, train=False, vec="envpool")


# ----------------------------------------------------------------------------- the vector env
def _play(envs, steps: int, seed: int = 0):
    """Random actions; yields each step's (actions, result)."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.integers(0, envs.single_action_space.n, envs.num_envs)
        yield actions, envs.step(actions)


@needs_envpool
def test_frames_are_uint8_stacks_like_the_gymnasium_env():
    from tdrl.recipes.envs import make_vec_env

    pool, gym_envs = make_vec_env("ALE/Breakout-v5", 3, vec="envpool"), make_vec_env(
        "ALE/Breakout-v5", 3)
    try:
        assert pool.single_observation_space == gym_envs.single_observation_space
        assert pool.single_action_space == gym_envs.single_action_space
        obs, _ = pool.reset(seed=0)
        ref, _ = gym_envs.reset(seed=0)
        assert obs.dtype == np.uint8 and obs.shape == (3, 4, 84, 84)
        assert (obs[:, 0] == obs[:, 3]).all()  # a new game: the stack is its first frame
        # the same screen (walls, bricks, score) up to the ball and paddle after random no-ops
        assert np.mean(np.abs(obs.astype(int) - ref.astype(int)) > 8) < 0.02
    finally:
        pool.close()
        gym_envs.close()


@needs_envpool
def test_same_step_autoreset_lives_and_game_scores():
    """Ended envs come back reset in the same step; a lost life is an episode, a game a score."""
    from tdrl.recipes.envpool_vec import EnvPoolVecEnv

    n = 4
    envs = EnvPoolVecEnv("ALE/Breakout-v5", n)
    raw = EnvPoolVecEnv("ALE/Breakout-v5", n, reward_clip=False)  # same games, raw rewards
    envs.reset(seed=5)
    _, info = raw.reset(seed=5)
    lives = info["lives"].copy()
    score, steps = np.zeros(n), np.zeros(n, dtype=np.int64)
    life_ends = games = 0
    try:
        for (_, (obs, reward, term, trunc, info)), (_, (_, raw_reward, *_)) in zip(
            _play(envs, 1500), _play(raw, 1500)
        ):
            assert obs.dtype == np.uint8 and obs.shape == (n, 4, 84, 84)
            assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
            score += raw_reward
            steps += 1
            done = term | trunc
            if not done.any():
                assert "final_obs" not in info
                lives = info["lives"].copy()
                continue
            final = info["final_info"]
            assert (info["_final_obs"] == done).all()
            for i in np.flatnonzero(done):
                assert info["final_obs"][i].shape == (4, 84, 84)
                assert not np.array_equal(info["final_obs"][i], obs[i])
                if final["_episode_score"][i]:  # the game is over: all lives lost
                    games += 1
                    assert final["episode_score"][i] == score[i]
                    assert final["episode_steps"][i] == steps[i]
                    assert (obs[i, 0] == obs[i, 3]).all() and info["lives"][i] == 5
                    score[i], steps[i] = 0.0, 0
                else:  # a lost life: the same game goes on
                    life_ends += 1
                    assert term[i] and info["lives"][i] == lives[i] - 1
            assert not final["_episode_score"][~done].any()
            lives = info["lives"].copy()
        assert games >= 2 and life_ends >= 4 * games
    finally:
        envs.close()
        raw.close()


@needs_envpool
def test_reset_seed_replays_the_same_games():
    from tdrl.recipes.envpool_vec import EnvPoolVecEnv

    envs = EnvPoolVecEnv("ALE/Breakout-v5", 2)
    try:
        runs = []
        for _ in range(2):
            first, _ = envs.reset(seed=2**32 - 1)  # tdrl's largest seed fits envpool's int32
            runs.append([first] + [r[0] for _, r in _play(envs, 60)])
        assert all(np.array_equal(a, b) for a, b in zip(*runs))
    finally:
        envs.close()


@needs_envpool
def test_unpickled_envs_restart_new_games_with_a_warning():
    from tdrl.recipes.envpool_vec import EnvPoolVecEnv, restart_obs

    envs = EnvPoolVecEnv("ALE/Breakout-v5", 2)
    envs.reset(seed=1)
    list(_play(envs, 30))
    copy = pickle.loads(pickle.dumps(envs))
    envs.close()
    assert copy.restored and copy.num_envs == 2
    with pytest.raises(RuntimeError, match="call reset"):
        copy.step(np.zeros(2, np.int64))
    with pytest.warns(RuntimeWarning, match="envpool cannot save its emulators"):
        obs = restart_obs(copy)
    assert obs.shape == (2, 4, 84, 84) and (obs[:, 0] == obs[:, 3]).all()
    assert restart_obs(copy) is None  # once
    assert copy.step(np.zeros(2, np.int64))[0].shape == (2, 4, 84, 84)
    copy.close()


# ----------------------------------------------------------------------------- the recipes
@pytest.fixture(scope="module", params=[pytest.param(a, marks=needs_envpool)
                                        for a in ("ppo", "dqn")])
def run(request, tmp_path_factory):
    algo = request.param
    out = tmp_path_factory.mktemp(algo) / "run"
    if algo == "ppo":
        assert main(["train", algo, *TINY[algo], "--out", str(out)]) == 0
    else:  # the Python API mirrors the flags
        result = tdrl.train(algo, env="ALE/Breakout-v5", vec="envpool", total_steps=256,
                            learning_starts=192, log_every=64, checkpoint_every=128,
                            buffer_size=2000, target_update=200, n_step=3, eval_episodes=1,
                            threads=1,
                            out=out, log=None)
        assert result.status == "finished"
    return algo, out


def test_recipe_trains_and_reports_game_scores(run):
    algo, out = run
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert config["vec"] == "envpool" and summary["total_steps"] == 256
    state = load_checkpoint(out / "checkpoint.pt")
    assert type(state["algo_state"]["envs"]).__name__ == "EnvPoolVecEnv"


def test_eval_and_export_play_the_gymnasium_games(run, capsys):
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["returns"] == summary["final_eval_returns"]
    assert main(["export", str(out), "--format", "onnx"]) == 0
    capsys.readouterr()
    assert json.loads((out / "policy.onnx.json").read_text())["inputs"][0]["dtype"] == "uint8"
    assert main(["eval", str(out), "--policy", str(out / "policy.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["returns"] == summary["final_eval_returns"]


def test_resume_restarts_the_games(run, tmp_path, monkeypatch):
    """Up to the checkpoint the run is the uninterrupted one; resumed, it plays new games."""
    from train_helpers import crash_run, metrics_rows

    algo, full = run
    crashed = tmp_path / "crashed"
    crash_run(monkeypatch, algo, [*TINY[algo], "--out", str(crashed)], at_step=128)
    before = metrics_rows(crashed / "metrics.csv")
    assert before and before == metrics_rows(full / "metrics.csv")[: len(before)]
    with pytest.warns(RuntimeWarning, match="envpool cannot save its emulators"):
        assert main(["train", algo, "--out", str(crashed), "--resume", *QUIET]) == 0
    summary = json.loads((crashed / "summary.json").read_text())
    assert summary["total_steps"] == 256
    rows = metrics_rows(crashed / "metrics.csv")
    assert int(rows[-1]["step"]) == 256 and rows[: len(before)] == before
