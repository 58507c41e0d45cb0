"""Hostile use of a run directory: races, held locks, finished runs, leftovers, wrong blame and
values that used to pass the checks. Each case asserts the exit status, the message, that no
traceback is printed, and what is on disk afterwards (nothing lost, nothing half-written)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from tdrl.cli import main
from tdrl.recipes import get_recipe
from tdrl.recipes.config import TrainError
from tdrl.recipes.loop import plan_run, train
from tdrl.recipes.runfiles import RunLock, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--num-envs", "2", "--n-steps", "64", "--batch-size", "64", "--epochs", "1",
        "--eval-episodes", "1", "--no-progress"]  # PPO, 128 env steps per iteration
QUIET = {"progress": False, "log": lambda s: None}


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of ``run`` (but the lock's pid) with its bytes and mtime."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run.iterdir())
            if p.name != ".lock"}


def finished_run(out: Path, steps: int = 256) -> dict:
    assert main(["train", "ppo", *TINY, "--total-steps", str(steps), "--out", str(out)]) == 0
    return snapshot(out)


def steps_in_metrics(out: Path) -> list[int]:
    return [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]


# ----------------------------------------------------------------------------- the lock first
def test_resume_reads_the_checkpoint_under_the_lock(tmp_path, capsys):
    """Two resumes racing: the one that waited continues from the other's newer checkpoint
    (it used to restart from the state it had read before the lock and cut the metrics)."""
    out = tmp_path / "run"
    finished_run(out, 256)
    recipe = get_recipe("ppo")
    late = plan_run(recipe, {"total_steps": 512}, out=out, resume=True)
    assert main(["train", "ppo", "--out", str(out), "--resume", "--total-steps", "384",
                 "--no-progress"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["global_step"] == 384
    lines: list[str] = []
    assert train(late, progress=False, log=lines.append) == 0
    assert "resuming ppo on CartPole-v1 from step 384" in lines[0]
    assert steps_in_metrics(out) == [128, 256, 384, 512]
    assert json.loads((out / "summary.json").read_text())["total_steps"] == 512
    capsys.readouterr()


def test_a_new_run_never_overwrites_a_run_that_appeared_after_its_checks(tmp_path, capsys):
    out = tmp_path / "run"
    late = plan_run(get_recipe("ppo"), {"total_steps": 128, "num_envs": 2, "n_steps": 64,
                                        "batch_size": 64, "epochs": 1}, out=out)
    before = finished_run(out, 256)  # another invocation finished a run there meanwhile
    with pytest.raises(TrainError, match="already holds a run") as err:
        train(late, **QUIET)
    assert err.value.exit_status == 2
    assert snapshot(out) == before


def test_a_finished_run_is_never_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    before = finished_run(out, 256)
    capsys.readouterr()
    assert main(["train", "ppo", *TINY, "--total-steps", "128", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "Traceback" not in err
    assert snapshot(out) == before
    # resuming a finished run with its own budget changes nothing either
    assert main(["train", "ppo", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "already finished at step 256" in capsys.readouterr().out
    assert snapshot(out) == before


@pytest.mark.parametrize("extra", [["--force", *TINY, "--total-steps", "128"],
                                   ["--resume"], ["--resume", "--total-steps", "512"],
                                   [*TINY, "--total-steps", "128"]],
                         ids=["force", "resume", "resume-longer", "new"])
def test_a_held_lock_refuses_everything_before_reading_the_directory(extra, tmp_path, capsys):
    out = tmp_path / "run"
    finished_run(out, 128)
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint: reading it would say so")
    before = snapshot(out)
    capsys.readouterr()
    owner = RunLock(out).acquire()
    try:
        assert main(["train", "ppo", "--out", str(out), *extra]) == 2
    finally:
        owner.release()
    err = capsys.readouterr().err
    assert f"{out} is in use by another run (pid {os.getpid()})" in err, err
    assert "corrupt" not in err and "Traceback" not in err
    assert snapshot(out) == before


def test_two_invocations_racing_exactly_one_proceeds(tmp_path):
    out = tmp_path / "run"
    finished_run(out, 128)
    cmd = [sys.executable, "-m", "tdrl", "train", "ppo", *TINY, "--force", "--total-steps",
           "10000000", "--checkpoint-every", "10000000", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 240
        while all(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "neither invocation stopped"
            time.sleep(0.1)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        _, err = loser.communicate()
        assert loser.returncode == 2, err
        assert f"is in use by another run (pid {winner.pid})" in err and "Traceback" not in err
        assert winner.poll() is None  # the owner trains on
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.communicate(timeout=60)


def test_a_rival_names_the_owner_even_between_its_lock_and_its_pid(tmp_path):
    """The owner takes the lock, then writes its pid: a rival in between reads on until the
    pid is there; a finished owner leaves the file empty (no stale pid to name)."""
    import fcntl
    import threading

    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    assert (tmp_path / ".lock").read_text() == ""  # released: emptied
    with open(tmp_path / ".lock", "r+") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, pid not written yet

        def write_pid() -> None:
            time.sleep(0.2)
            owner.write("4242\n")
            owner.flush()

        writer = threading.Thread(target=write_pid)
        writer.start()
        with pytest.raises(TrainError, match=r"is in use by another run \(pid 4242\)"):
            RunLock.check(tmp_path)
        writer.join()


def test_a_refused_resume_leaves_no_lock_file_behind(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "ppo", "--out", str(empty), "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert list(empty.iterdir()) == []
    missing = tmp_path / "missing"
    assert main(["train", "ppo", "--out", str(missing), "--resume"]) == 2
    assert not missing.exists()


# ----------------------------------------------------------------------------- leftovers
def test_stale_temp_files_of_dead_writers_are_removed_when_the_lock_is_taken(tmp_path, capsys):
    out = tmp_path / "run"
    finished_run(out, 128)
    # a writer killed with kill -9 mid-write leaves its temp file behind
    writer = subprocess.Popen([sys.executable, "-c", "import os, time; open('.checkpoint.pt.tmp-'"
                               " + str(os.getpid()), 'wb').write(b'half'); time.sleep(600)"],
                              cwd=out)
    stale = out / f".checkpoint.pt.tmp-{writer.pid}"
    while not stale.exists():
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    live = out / f".policy.onnx.tmp-{os.getppid()}"  # a live process's write in progress
    live.write_bytes(b"in progress")
    assert main(["train", "ppo", "--out", str(out), "--resume", "--total-steps", "256",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert not stale.exists() and live.exists()
    assert not [p for p in out.iterdir() if ".tmp-" in p.name and p != live]


def test_a_missing_env_module_is_not_called_a_corrupt_checkpoint(tmp_path, capsys, monkeypatch):
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "tdrl_hostile_envmod.py").write_text(
        "import gymnasium as gym\n"
        "class Env(gym.Wrapper):\n"
        "    def __init__(self):\n"
        "        super().__init__(gym.make('CartPole-v1'))\n"
    )
    monkeypatch.syspath_prepend(str(mod))
    gym.register("TdrlHostileEnvMod-v0", entry_point="tdrl_hostile_envmod:Env")
    out = tmp_path / "run"
    try:
        assert main(["train", "ppo", *TINY, "--env", "TdrlHostileEnvMod-v0", "--total-steps",
                     "128", "--out", str(out)]) == 0
        ckpt = (out / "checkpoint.pt").read_bytes()
        monkeypatch.delitem(sys.modules, "tdrl_hostile_envmod")
        monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(mod)])
        capsys.readouterr()
        for argv in (["eval", str(out)], ["train", "ppo", "--out", str(out), "--resume",
                                          "--total-steps", "256"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert "tdrl_hostile_envmod" in err and "looks intact" in err, err
            assert "corrupt" not in err and "Delete it" not in err and "Traceback" not in err
            assert (out / "checkpoint.pt").read_bytes() == ckpt
    finally:
        gym.registry.pop("TdrlHostileEnvMod-v0", None)


# ----------------------------------------------------------------------------- refused up front
class _Bounds(gym.Wrapper):
    def __init__(self, low: float, high: float) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.action_space = gym.spaces.Box(np.float32(low), np.float32(high), (1,), np.float32)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ppo", "--env", ""], "--env must be a non-empty environment id"),
        (["dqn", "--env", " "], "--env must be a non-empty environment id"),
        (["ppo", "--hidden", "100000000,100000000"], "--hidden 100000000,100000000 makes"),
        (["sac", "--hidden", "200000,200000"], "limit is 1e+09 parameters"),
        (["ppo", "--head-hidden", "1000000,1000000"], "--head-hidden 1000000,1000000"),
        (["sac", "--env", "TdrlHostileBoundsEqual-v0"], "low must be < high in every dimension"),
        (["ppo", "--env", "TdrlHostileBoundsHuge-v0"], "overflows float32"),
    ],
    ids=["env-empty", "env-blank", "hidden", "hidden-sac", "head-hidden", "bounds-equal",
         "bounds-huge"],
)
def test_values_that_used_to_fail_later_are_refused_before_anything_is_written(
    argv, message, tmp_path, capsys
):
    gym.register("TdrlHostileBoundsEqual-v0", entry_point=_Bounds,
                 kwargs={"low": 1.0, "high": 1.0})
    gym.register("TdrlHostileBoundsHuge-v0", entry_point=_Bounds,
                 kwargs={"low": -3e38, "high": 3e38})
    out = tmp_path / "run"
    try:
        assert main(["train", *argv, "--out", str(out), "--no-progress"]) == 2
    finally:
        gym.registry.pop("TdrlHostileBoundsEqual-v0")
        gym.registry.pop("TdrlHostileBoundsHuge-v0")
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()
