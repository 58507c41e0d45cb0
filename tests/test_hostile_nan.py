"""Hostile runs: NaN/inf from the env (reset, step, reward, final observation) and from training
(loss, gradient, weights, distribution parameters) stop PPO, DQN and SAC the documented way.

Each case asserts the exit status (1), the message (what and the step), that stderr holds no
traceback, what is on disk afterwards (``summary.json`` "failed", the kept checkpoint free of any
NaN/inf) and that the kept checkpoint resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from tdrl.cli import main
from tdrl.recipes.finite import first_non_finite
from tdrl.recipes.runfiles import load_checkpoint

ARMED = {"on": True}  # read at step time, not pickled: disarm it to resume past the poison
VALUES = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


class Hostile(gym.Wrapper):
    """CartPole or Pendulum that emits ``value`` in ``where`` at its ``at``-th step (or reset).

    ``where``: ``reset`` (the ``at``-th reset, 1 = the first one), ``obs``, ``reward``,
    ``final-truncated`` / ``final-terminated`` (the episode is cut at that step and its last
    observation is poisoned; the next reset observation is clean), ``autoreset`` (the episode is
    cut at that step and the next episode's first observation is poisoned).
    """

    def __init__(self, base: str, where: str, at: int, value: str) -> None:
        super().__init__(gym.make(base))
        self.where, self.at, self.value = where, at, VALUES[value]
        self.t = self.resets = 0
        self.poison_next_reset = False

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.resets += 1
        hit = (self.where == "reset" and self.resets == self.at) or self.poison_next_reset
        self.poison_next_reset = False
        if hit and ARMED["on"]:
            obs = np.full_like(obs, self.value)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t != self.at or not ARMED["on"]:
            return obs, reward, terminated, truncated, info
        if self.where == "obs":
            obs = np.full_like(obs, self.value)
        elif self.where == "reward":
            reward = float(self.value)
        elif self.where.startswith("final"):
            obs = np.full_like(obs, self.value)
            terminated, truncated = self.where == "final-terminated", self.where == "final-truncated"
        elif self.where == "autoreset":
            truncated, self.poison_next_reset = True, True
        return obs, reward, terminated, truncated, info


@pytest.fixture(autouse=True)
def armed():
    ARMED["on"] = True
    yield
    ARMED["on"] = True


_IDS: list[str] = []


def hostile_env(base: str, where: str, at: int, value: str) -> str:
    env_id = f"TdrlHostile{base.split('-')[0]}-{where}-{at}-{value}-v0".replace("-inf", "minf")
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=Hostile,
                     kwargs={"base": base, "where": where, "at": at, "value": value})
        _IDS.append(env_id)
    return env_id


def teardown_module() -> None:
    for env_id in _IDS:
        gym.registry.pop(env_id, None)


# Tiny budgets; each iteration (metrics row) is 128 env steps for PPO and DQN, 100 for SAC.
FLAGS = {
    "ppo": ["--num-envs", "2", "--n-steps", "64", "--batch-size", "64", "--epochs", "1",
            "--checkpoint-every", "128", "--total-steps", "512"],
    "dqn": ["--num-envs", "2", "--learning-starts", "64", "--train-freq", "64",
            "--gradient-steps", "2", "--log-every", "128", "--checkpoint-every", "128",
            "--total-steps", "512"],
    "sac": ["--learning-starts", "50", "--batch-size", "16", "--hidden", "16,16",
            "--log-every", "100", "--checkpoint-every", "100", "--total-steps", "400"],
}
COMMON = ["--eval-episodes", "1", "--no-progress"]
BASE = {"ppo": "CartPole-v1", "dqn": "CartPole-v1", "sac": "Pendulum-v1"}
ENVS = {"ppo": 2, "dqn": 2, "sac": 1}  # sub-envs: the run's step is the sub-env's step x this


def assert_failed(out: Path, err: str, what: str, step: int, kept: int | None) -> dict:
    """The documented failure: message, no traceback, summary.json, a clean kept checkpoint."""
    assert f"tdrl: error: non-finite {what}" in err, err
    assert f"at step {step:,}" in err, err
    assert "Traceback" not in err, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"]["step"] == step, summary
    assert summary["last_checkpoint_step"] == kept
    assert "final_eval_return" not in summary
    if kept is None:
        assert not (out / "checkpoint.pt").exists() and "no checkpoint was saved" in err
        return summary
    assert f"holds the last good checkpoint (step {kept:,})" in err
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["global_step"] == kept
    # nothing anywhere: weights, optimizer, replay buffer, running statistics, episode stats
    assert first_non_finite(state["algo_state"]) is None
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert all(int(row.split(",")[0]) <= step for row in metrics[1:])
    return summary


def resume(out: Path, algo: str, capsys) -> None:
    """The kept checkpoint loads and training goes on to the end once the env is fixed."""
    ARMED["on"] = False
    assert main(["train", algo, "--out", str(out), "--resume", "--no-progress"]) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["total_steps"] >= 400


# ----------------------------------------------------------------------------- from the env
CASES = [  # where, value, the sub-env's step (or reset number), the message
    ("obs", "nan", 150, "observation from the env"),
    ("reward", "inf", 150, "reward from the env"),
    ("final-truncated", "-inf", 150, "final observation of an ended episode from the env"),
    ("final-terminated", "nan", 150, "final observation of an ended episode from the env"),
    ("autoreset", "inf", 150, "observation from the env"),
]


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
@pytest.mark.parametrize("where, value, at, what", CASES, ids=[c[0] for c in CASES])
def test_env_poison_stops_the_run_and_the_kept_checkpoint_resumes(
    algo, where, value, at, what, tmp_path, capsys
):
    env_id = hostile_env(BASE[algo], where, at, value)
    out = tmp_path / "run"
    code = main(["train", algo, "--env", env_id, *FLAGS[algo], *COMMON, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    step = at * ENVS[algo]  # 300 for PPO/DQN (2 envs), 150 for SAC
    kept = 256 if algo != "sac" else 100
    assert_failed(out, err, what, step, kept)
    resume(out, algo, capsys)


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_nan_first_reset_is_caught_before_the_step_0_checkpoint(algo, tmp_path, capsys):
    env_id = hostile_env(BASE[algo], "reset", 1, "nan")
    out = tmp_path / "run"
    argv = ["train", algo, "--env", env_id, *FLAGS[algo], *COMMON, "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert_failed(out, err, "reset observation from the env", 0, None)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json", "summary.json"]
    ARMED["on"] = False  # the directory can be restarted with --force
    assert main([*argv, "--force"]) == 0
    capsys.readouterr()


def test_ppo_continuous_final_observation_is_checked(tmp_path, capsys):
    env_id = hostile_env("Pendulum-v1", "final-truncated", 100, "nan")
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", env_id, "--num-envs", "2", "--n-steps", "64",
            "--batch-size", "64", "--epochs", "1", "--checkpoint-every", "128",
            "--total-steps", "256", *COMMON, "--out", str(out)]
    assert main(argv) == 1
    assert_failed(out, capsys.readouterr().err,
                  "final observation of an ended episode from the env", 200, 128)


# ----------------------------------------------------------------------------- from training
def test_sac_huge_lr_is_the_documented_failure_and_resumes(tmp_path, capsys):
    # NaN network outputs after the first update: TanhNormal used to refuse them with a traceback
    out = tmp_path / "a"
    argv = ["train", "sac", "--lr", "1e30", "--total-steps", "300", "--learning-starts", "100",
            "--batch-size", "32", "--hidden", "16,16", "--checkpoint-every", "100",
            "--log-every", "100", *COMMON,
            "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "non-finite distribution parameters or network output (" in err
    assert_failed(out, err, "", 101, 100)
    before = (out / "checkpoint.pt").read_bytes()
    # the kept checkpoint loads and the next iteration starts (and fails the same way: the
    # learning rate cannot change on resume)
    assert main(["train", "sac", "--out", str(out), "--resume", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "resuming" not in err and "at step 101" in err and "Traceback" not in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_ppo_reward_scale_overflow_is_the_documented_failure(tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["train", "ppo", "--env", "Pendulum-v1", "--reward-scale", "1e308", "--total-steps",
            "512", "--n-steps", "128", "--epochs", "2", *COMMON, "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "non-finite reward x --reward-scale 1e+308" in err
    assert_failed(out, err, "reward x --reward-scale", 4, 0)


def _poison_step(monkeypatch, module, attr: str, after: int, poison) -> None:
    """Wrap ``module.attr`` (a function) so that ``poison(result, args)`` runs from call ``after`` on."""
    real = getattr(module, attr)
    calls = [0]

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] >= after:
            result = poison(result, args)
        return result

    monkeypatch.setattr(module, attr, wrapped)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_nan_gradient_is_named(algo, tmp_path, capsys, monkeypatch):
    def nan_grad(norm, args):
        return torch.full_like(norm, float("nan"))

    from tdrl.recipes import dqn, ppo

    # the 3rd gradient step: PPO's 2nd update (two minibatches each), DQN's 2nd phase (two steps);
    # the recipes clip through tdrl._compat.clip_grad_norm_ (the name each recipe imported)
    for module in {"ppo": [ppo], "dqn": [dqn]}[algo]:
        _poison_step(monkeypatch, module, "clip_grad_norm_", 3, nan_grad)
    out = tmp_path / "run"
    assert main(["train", algo, *FLAGS[algo], *COMMON, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    step = json.loads((out / "summary.json").read_text())["failure"]["step"]
    assert step == 256 if algo == "ppo" else 128 < step < 256
    assert_failed(out, err, "gradient (norm) (nan)", step, 128)


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_nan_weights_are_named(algo, tmp_path, capsys, monkeypatch):
    def nan_weight(result, args):
        opt = args[0]
        with torch.no_grad():
            opt.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return result

    # after the last step of PPO's 2nd update or DQN's 2nd phase, after SAC's 3rd update (the
    # recipes' optimizer is a LeanAdam: its step() is the one every update calls)
    from tdrl.recipes.optim import LeanAdam

    _poison_step(monkeypatch, LeanAdam, "step", 3 if algo == "sac" else 4, nan_weight)
    out = tmp_path / "run"
    assert main(["train", algo, *FLAGS[algo], *COMMON, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "non-finite weights (" in err, err
    summary = json.loads((out / "summary.json").read_text())
    assert_failed(out, err, "weights (", summary["failure"]["step"],
                  summary["last_checkpoint_step"])


# ----------------------------------------------------------------------------- the kept state
@pytest.mark.parametrize(
    "algo, target, what",
    [("dqn", "buffer", "replay buffer"), ("sac", "buffer", "replay buffer"),
     ("ppo", "stats", "episode statistics"), ("ppo", "obs_norm", "weights")],
)
def test_a_poisoned_state_is_never_checkpointed(algo, target, what, tmp_path, capsys,
                                                monkeypatch):
    """Whatever slips past the checks, the checkpoint scan refuses to save it."""
    from tdrl.recipes import dqn, ppo, sac

    cls = {"ppo": ppo.PPO, "dqn": dqn.DQN, "sac": sac.SAC}[algo]
    real = cls.iterate

    def iterate(self):
        row = real(self)
        if self.global_step >= 200:  # silently poison the state (no check sees it)
            if target == "buffer":
                self.buffer.storage["reward"][0] = float("nan")
            elif target == "stats":
                self.stats.running_return[0] = float("inf")
            else:
                self.obs_norm.mean[0] = float("nan")
        return row

    monkeypatch.setattr(cls, "iterate", iterate)
    extra = ["--normalize-obs"] if target == "obs_norm" else []
    out = tmp_path / "run"
    assert main(["train", algo, *FLAGS[algo], *extra, *COMMON, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "in the state to checkpoint" in err, err
    kept = 128 if algo != "sac" else 100
    step = 256 if algo != "sac" else 200
    assert_failed(out, err, what, step, kept)
