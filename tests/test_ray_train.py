"""`tdrl train ppo|dqn --workers N` on a local Ray instance (2 CPUs, started once per module).

The training runs call the CLI in this process, so they reuse the module's
Ray session; the Ctrl-C test runs the CLI as a child process with its own.
Run serially (``make test-ray``: ``-p no:xdist``); every test has a hard time
limit (pytest-timeout's ``thread`` method: Ray's blocking calls swallow the
``signal`` method's exception, so only ending the process turns a stall into
a failure).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tdrl.cli import main
from tdrl.collectors import WorkerError
from tdrl.recipes import ppo
from tdrl.recipes.runfiles import WALL_COLUMNS, load_checkpoint, read_metrics

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'tdrl[ray]'")

pytestmark = pytest.mark.timeout(180, method="thread")
RAY_INIT = {  # as in tests/test_ray_collector.py
    "num_cpus": 2,
    "include_dashboard": False,
    "logging_level": "warning",
    "object_store_memory": 200 * 1024**2,
}
QUIET = ["--no-progress"]
# the CI bar of tests/test_train.py (seed 2, 20k steps, 256-step rollouts), from 2 x 4 envs
PPO_CI = ["--seed", "2", "--total-steps", "20000", "--num-envs", "4", *QUIET]
SMALL = ["--total-steps", "1536", "--num-envs", "2", "--n-steps", "64", "--epochs", "2", *QUIET]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(**RAY_INIT)
    yield
    ray.shutdown()


def rows(path: Path) -> dict[str, list[float]]:
    """metrics.csv without its clock columns (``nan`` -> None, to compare with ==)."""
    return {
        k: [None if np.isnan(x) else float(x) for x in v]
        for k, v in read_metrics(path).items()
        if k not in WALL_COLUMNS
    }


def test_ppo_two_workers_reaches_the_ci_bar(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "ppo", *PPO_CI, "--workers", "2", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    m = read_metrics(out / "metrics.csv")
    assert s["total_steps"] == 20224  # whole 2 x 4 x 32-step iterations
    assert s["config"]["workers"] == 2
    assert np.nanmax(m["return_mean"]) >= 200
    assert s["final_eval_return"] >= 200


def test_same_seed_same_workers_same_metrics(tmp_path):
    short = [*SMALL, "--total-steps", "768"]  # the last --total-steps wins
    for name in ("a", "b"):
        assert main(["train", "ppo", *short, "--workers", "2", "--out", str(tmp_path / name)]) == 0
    a, b = rows(tmp_path / "a" / "metrics.csv"), rows(tmp_path / "b" / "metrics.csv")
    assert len(a["step"]) == 3 and a == b


def test_sigkilled_worker_is_redone_and_the_run_finishes(tmp_path, monkeypatch, capsys):
    calls = []
    original = ppo.PPO.collect_remote

    def kill_worker_1_on_third_batch(self):
        calls.append(1)
        if len(calls) == 3:
            os.kill(self.collector.worker_info()[1]["pid"], signal.SIGKILL)
        return original(self)

    monkeypatch.setattr(ppo.PPO, "collect_remote", kill_worker_1_on_third_batch)
    out = tmp_path / "run"
    assert main(["train", "ppo", *SMALL, "--workers", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "collector worker 1: its process died" in err
    assert "its share of the batch (128 env steps) is redone" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["total_steps"] == 1536
    assert rows(out / "metrics.csv")["step"] == [256.0 * k for k in range(1, 7)]


def test_worker_that_keeps_failing_stops_the_run_after_a_checkpoint(tmp_path, monkeypatch, capsys):
    calls = []
    original = ppo.PPO.collect_remote

    def fail_on_third_batch(self):
        calls.append(1)
        if len(calls) == 3:
            raise WorkerError(1, 3, "RuntimeError: the simulator exploded")
        return original(self)

    monkeypatch.setattr(ppo.PPO, "collect_remote", fail_on_third_batch)
    out = tmp_path / "run"
    assert main(["train", "ppo", *SMALL, "--workers", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert (
        "collector worker 1 failed 3 times in a row; last error: RuntimeError: the simulator exploded"
        in err
    )
    assert "holds the last good checkpoint (step 512)" in err
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["global_step"] == 512 and state["config"]["workers"] == 2
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "failed" and "worker 1" in s["failure"]["message"]


@pytest.mark.timeout(300, method="thread")
def test_dqn_two_apex_workers_learn_and_resume(tmp_path, capsys):
    # 2 workers x 4 envs x 32 steps per batch (= --train-freq 256); 6000 -> 6144 steps
    out = tmp_path / "run"
    argv = ["train", "dqn", "--env", "CartPole-v1", "--workers", "2", "--out", str(out), *QUIET]
    assert main([*argv, "--total-steps", "6000"]) == 0
    s = json.loads((out / "summary.json").read_text())
    m = read_metrics(out / "metrics.csv")
    assert s["total_steps"] == 6144 and s["config"]["workers"] == 2
    assert s["config"]["sync_every"] == 128
    # a random policy averages ~22 on CartPole; the greedy learner is far above it
    assert s["final_eval_return"] >= 150
    assert np.nanmax(m["return_mean"]) >= 100
    assert np.isnan(m["epsilon"]).all()  # the workers act with their own Ape-X epsilons
    # one 128-update phase per 256-step batch from the batch that crosses --learning-starts 1000
    assert m["updates"][-1] == 128 * (6144 - 768) // 256
    # resume (not bit-exact: the batch in flight at the checkpoint is dropped)
    assert main(["train", "dqn", "--out", str(out), "--resume", "--total-steps", "7000", *QUIET]) == 0
    assert "resuming dqn on CartPole-v1 from step 6,144" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    m = read_metrics(out / "metrics.csv")
    assert s["total_steps"] == 7168 and s["status"] == "finished"
    assert m["step"][-2:].tolist() == [6144.0, 7168.0] and m["updates"][-1] == 128 * (7168 - 768) // 256


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_shuts_down_workers_and_leaves_no_ray_process(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "tdrl",
        "train",
        "ppo",
        "--workers",
        "1",
        "--num-envs",
        "2",
        "--total-steps",
        "10000000",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--out",
        str(out),
        *QUIET,
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own Ray
    proc = subprocess.Popen(
        cmd,
        start_new_session=True,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        seen: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            seen |= _descendants(proc.pid)
            metrics = out / "metrics.csv"
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        seen |= _descendants(proc.pid)
        assert len(seen) >= 3  # raylet, GCS, the worker...
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        stdout, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "stopped by SIGINT" in stdout
    time.sleep(1.0)
    left = sorted(p for p in seen if _alive(p))
    assert not left, [Path(f"/proc/{p}/cmdline").read_text() for p in left]


def test_normalize_obs_with_workers(tmp_path):
    """--normalize-obs on Ray workers: the learner adds each collected batch to the statistics
    (after normalising it as the workers did) and sends them with the weights."""
    out = tmp_path / "run"
    argv = ["train", "ppo", *SMALL, "--workers", "2", "--normalize-obs", "--out", str(out)]
    assert main(argv) == 0
    model = load_checkpoint(out / "checkpoint.pt")["algo_state"]["model"]
    (count,) = [v for k, v in model.items() if k.endswith("count")]
    assert count.item() == 1536  # every observation acted on, once
    assert json.loads((out / "summary.json").read_text())["config"]["normalize_obs"] is True
