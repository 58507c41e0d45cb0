"""What a run directory guarantees: one owner, a checkpoint from step 0, failures that keep the last
good checkpoint (non-finite values, disk full, read-only output), tolerant resume."""

from __future__ import annotations

import csv
import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from train_helpers import crash_run

from tdrl.cli import main
from tdrl.recipes import runfiles
from tdrl.recipes.runfiles import WALL_COLUMNS, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--num-envs", "2", "--n-steps", "64", "--batch-size", "64", "--epochs", "1",
        "--eval-episodes", "1", "--no-progress"]  # PPO, 128 env steps per iteration


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        out = list(csv.DictReader(f))
    for r in out:
        for c in WALL_COLUMNS:
            r.pop(c)
    return out


def start_long_run(out: Path) -> subprocess.Popen:
    """A PPO run in a child process, returned once it has logged its first iteration."""
    cmd = [sys.executable, "-m", "tdrl", "train", "ppo", *TINY, "--total-steps", "10000000",
           "--checkpoint-every", "10000000", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    metrics = out / "metrics.csv"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 1):
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the child run logged nothing within 120 s")
        time.sleep(0.05)
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


# ----------------------------------------------------------------------------- 1. one owner
def test_second_run_on_a_live_run_dir_is_refused_even_with_force(tmp_path, capsys):
    out = tmp_path / "run"
    proc = start_long_run(out)
    try:
        config = (out / "config.json").read_bytes()
        for extra in (["--force", *TINY, "--total-steps", "256"], ["--resume"]):
            assert main(["train", "ppo", "--out", str(out), *extra]) == 2
            err = capsys.readouterr().err
            assert f"{out} is in use by another run (pid {proc.pid})" in err, err
            assert "--force never overrides a live run" in err
        assert (out / "config.json").read_bytes() == config
        assert (out / "checkpoint.pt").exists() and (out / "metrics.csv").exists()
        assert proc.poll() is None  # the owner is still training
    finally:
        kill(proc)
    # kill -9 released the lock: the directory can be taken over now
    assert main(["train", "ppo", "--out", str(out), "--force", *TINY, "--total-steps", "128"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


# ----------------------------------------------------------------------------- 3. checkpoint at step 0
def test_run_killed_before_its_first_periodic_checkpoint_resumes_exactly(tmp_path, capsys):
    out, full = tmp_path / "killed", tmp_path / "full"
    kill(start_long_run(out))
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["global_step"] == 0 and not state["finished"]
    assert main(["train", "ppo", "--out", str(out), "--resume", "--total-steps", "384",
                 "--no-progress"]) == 0
    assert main(["train", "ppo", *TINY, "--total-steps", "384", "--out", str(full)]) == 0
    capsys.readouterr()
    assert rows(out / "metrics.csv") == rows(full / "metrics.csv")
    assert [r["step"] for r in rows(out / "metrics.csv")] == ["128", "256", "384"]
    s_out, s_full = (json.loads((d / "summary.json").read_text()) for d in (out, full))
    assert s_out["final_eval_returns"] == s_full["final_eval_returns"]


# ----------------------------------------------------------------------------- 2. non-finite values
class _Poisoned(gym.Wrapper):
    """CartPole whose observation or reward becomes NaN from the ``after``-th step on."""

    def __init__(self, what: str, after: int) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.what, self.after, self.t = what, after, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t >= self.after:
            if self.what == "observation":
                obs = np.full_like(obs, np.nan)
            else:
                reward = float("nan")
        return obs, reward, terminated, truncated, info


@pytest.fixture
def poisoned_env():
    ids = []

    def register(what: str, after: int) -> str:
        env_id = f"TdrlPoisoned{what.title()}{after}-v0"
        gym.register(env_id, entry_point=_Poisoned, kwargs={"what": what, "after": after})
        ids.append(env_id)
        return env_id

    yield register
    for env_id in ids:
        gym.registry.pop(env_id)


@pytest.mark.parametrize("algo, what", [("ppo", "observation"), ("dqn", "reward")])
def test_non_finite_env_output_stops_the_run_and_keeps_the_last_checkpoint(
    algo, what, poisoned_env, tmp_path, capsys
):
    env_id = poisoned_env(what, after=150)  # each of 2 envs: NaN at its 150th step = step 300
    out = tmp_path / "run"
    flags = TINY if algo == "ppo" else ["--num-envs", "2", "--learning-starts", "64",
                                        "--train-freq", "64", "--gradient-steps", "2",
                                        "--log-every", "128", "--eval-episodes", "1",
                                        "--no-progress"]
    argv = ["train", algo, "--env", env_id, *flags, "--total-steps", "1024",
            "--checkpoint-every", "128", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"tdrl: error: non-finite {what} from the env at step 300" in err, err
    assert "holds the last good checkpoint (step 256)" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure"]["step"] == 300
    assert summary["last_checkpoint_step"] == 256 and "final_eval_return" not in summary
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["global_step"] == 256
    assert all(torch.isfinite(v).all() for v in state["algo_state"]["model"].values())


def test_non_finite_loss_stops_the_run(tmp_path, capsys, monkeypatch):
    from tdrl.recipes import ppo

    original = ppo.PPO.update

    def diverging(self, batch):
        row = original(self, batch)
        if self.global_step >= 256:
            row["value_loss"] = float("inf")
        return row

    monkeypatch.setattr(ppo.PPO, "update", diverging)
    out = tmp_path / "run"
    argv = ["train", "ppo", *TINY, "--total-steps", "512", "--checkpoint-every", "10000",
            "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "non-finite value_loss (inf) at step 256" in err
    assert "holds the last good checkpoint (step 0)" in err
    assert json.loads((out / "summary.json").read_text())["failure"]["step"] == 256


# ----------------------------------------------------------------------------- 4. write failures
def _fail_replace(monkeypatch, target_name: str, code: int, after: int = 0) -> list[int]:
    """Make the atomic rename onto ``target_name`` fail with errno ``code`` after ``after`` calls."""
    real = runfiles.os.replace
    calls = [0]

    def replace(src, dst):
        if Path(dst).name == target_name:
            calls[0] += 1
            if calls[0] > after:
                raise OSError(code, runfiles.os.strerror(code))
        return real(src, dst)

    monkeypatch.setattr(runfiles.os, "replace", replace)
    return calls


def test_disk_full_at_the_final_save_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    # saves: step 0, periodic 256, periodic 512, then the final one fails
    _fail_replace(monkeypatch, "checkpoint.pt", errno.ENOSPC, after=3)
    argv = ["train", "ppo", *TINY, "--total-steps", "512", "--checkpoint-every", "256",
            "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    ckpt = out / "checkpoint.pt"
    assert f"cannot write {ckpt}: No space left on device (errno 28)" in err, err
    assert "holds the last good checkpoint (step 512)" in err
    assert "summary.json records the failure" in err
    assert load_checkpoint(ckpt)["global_step"] == 512
    assert not list(out.glob(".checkpoint.pt.tmp*"))
    monkeypatch.undo()
    assert main(["train", "ppo", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_read_only_out_is_a_clear_error(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    real_open = open

    def read_only_open(path, mode="r", *args, **kwargs):
        if Path(path).parent == out and any(m in mode for m in "wax+"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(runfiles, "open", read_only_open, raising=False)
    assert main(["train", "ppo", *TINY, "--total-steps", "128", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out / '.lock'}: Read-only file system (errno 30)" in err
    assert list(out.iterdir()) == []


def test_eval_gif_to_read_only_path_still_reports_the_evaluation(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY, "--total-steps", "128", "--out", str(out)]) == 0
    capsys.readouterr()
    gif = tmp_path / "episode.gif"
    _fail_replace(monkeypatch, gif.name, errno.EROFS)
    assert main(["eval", str(out), "--render-gif", str(gif)]) == 1
    captured = capsys.readouterr()
    assert "deterministic return" in captured.out
    assert f"cannot write {gif}: Read-only file system (errno 30)" in captured.err
    assert not gif.exists()


# ----------------------------------------------------------------------------- 6. damaged files
def test_resume_drops_torn_metrics_rows(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    crash_run(monkeypatch, "ppo", [*TINY, "--total-steps", "512", "--checkpoint-every", "128",
                                   "--out", str(out)], at_step=256)
    with open(out / "metrics.csv", "a") as f:
        f.write("128,0.5,1\n\x00\x00garbage,,\n")  # torn row, then garbage
    assert main(["train", "ppo", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "dropped 2 torn or malformed row(s)" in capsys.readouterr().out
    assert [r["step"] for r in rows(out / "metrics.csv")] == ["128", "256", "384", "512"]
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_without_model_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY, "--total-steps", "128", "--out", str(out)]) == 0
    ckpt = out / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=False)
    del state["algo_state"]["model"]
    torch.save(state, ckpt)
    edited = ckpt.read_bytes()
    capsys.readouterr()
    for argv in (["eval", str(out)], ["train", "ppo", "--out", str(out), "--resume",
                                      "--total-steps", "256"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"checkpoint {ckpt} lacks algo_state['model'] (present: " in err, err
        assert "left untouched" in err
        assert ckpt.read_bytes() == edited
