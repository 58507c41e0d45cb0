"""`--workers` against a hostile env or cluster: what the README's run-directory rules promise.

- a NaN / inf from a worker's env is the env's data: exit 1 naming it, the worker and
  the step, ``"status": "failed"``, no restart, the last good checkpoint kept;
- a worker killed while its state is saved for a checkpoint is restarted and saved
  again, and one that keeps dying is a run failure (not a raw Ray error);
- ``--ray-address`` where nothing listens and ``--workers`` beyond the CPUs are refused
  (exit 2) within seconds, before anything is written.

One local Ray instance (2 CPUs) per module; its workers register the test envs of
tests/ray_nan_envs.py through Ray's process setup hook. Run serially (``make
test-ray``); every test has a hard time limit (pytest-timeout, ``thread`` method).
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray_nan_envs
import torch

from tdrl.cli import main
from tdrl.collectors import gym_vector_env
from tdrl.modules import MLP, QValueActor
from tdrl.recipes.config import RunFailure
from tdrl.recipes.remote import WorkerFailure, _RunCollector
from tdrl.recipes.runfiles import load_checkpoint, read_metrics

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'tdrl[ray]'")

pytestmark = pytest.mark.timeout(240, method="thread")
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
QUIET = ["--no-progress"]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    path = os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="warning",
        object_store_memory=200 * 1024**2,
        runtime_env={
            "env_vars": {"PYTHONPATH": path},
            "worker_process_setup_hook": "ray_nan_envs.register",
        },
    )
    yield
    ray.shutdown()


def assert_failed_run(out: Path, err: str, what: str, step: int) -> None:
    """Exit-1 run failure: the message, summary.json and the kept step-0 checkpoint."""
    assert "Traceback" not in err
    assert "Ray restarts it" not in err  # the env's data is not retried as a crash
    assert f"{what} at step {step}" in err
    assert "holds the last good checkpoint (step 0)" in err
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "failed" and s["failure"]["step"] == step
    assert what in s["failure"]["message"] and s["failure"]["error"] == "NonFiniteError"
    assert load_checkpoint(out / "checkpoint.pt")["global_step"] == 0  # not the poisoned state
    assert len(read_metrics(out / "metrics.csv")["step"]) == 0


def test_nan_observation_on_a_ppo_worker_stops_the_run(tmp_path, capsys):
    # every sub-env's 40th step returns NaN: fleet step 40 x 2 envs = 80, in the first batch
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", ray_nan_envs.NAN_OBS, "--workers", "1", "--num-envs", "2",
            "--n-steps", "64", "--batch-size", "64", "--total-steps", "512", "--epochs", "1",
            "--out", str(out), *QUIET]
    assert main(argv) == 1
    err = capsys.readouterr().err
    found = re.search(r"non-finite (final )?observation from the env on collector worker 0 "
                      r"\(sub-env 0\) at step 80", err)
    assert found, err
    assert_failed_run(out, err, found.group(0).rsplit(" at step", 1)[0], 80)


def test_inf_reward_on_a_dqn_worker_stops_the_run(tmp_path, capsys):
    # 2 workers x 1 env: each sub-env's 40th step is the fleet's step 80
    out = tmp_path / "run"
    argv = ["train", "dqn", "--env", ray_nan_envs.INF_REWARD, "--workers", "2", "--num-envs", "1",
            "--total-steps", "2000", "--out", str(out), *QUIET]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # both workers turn bad at the same step: the first batch in names its worker
    found = re.search(r"non-finite (reward from the env on collector worker [01] \(sub-env 0\)) "
                      r"at step 80", err)
    assert found, err
    assert_failed_run(out, err, found.group(1), 80)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if stat == "Z":
            break
        time.sleep(0.05)


@pytest.mark.timeout(300, method="thread")  # two restarts: process starts on a loaded machine
def test_worker_killed_while_its_state_is_saved(capsys):
    torch.manual_seed(0)
    net = QValueActor(MLP(in_features=4, out_features=2, num_cells=[8]), in_keys=["observation"],
                      action_space="categorical")
    log: list[str] = []
    env_fn = functools.partial(gym_vector_env, "CartPole-v1", 2)
    with _RunCollector(env_fn, net, steps_per_batch=8, num_workers=2, num_cpus_per_worker=0.5,
                       policy_keys=["action"], log=log.append) as c:
        batches = iter(c)
        next(batches)
        old = c.worker_info()[1]["pid"]
        _kill(old)
        state = c.state_dict()  # worker 1 is restarted and saved again
        assert len(state["runners"]) == 2 and state["frames"] == 32
        assert c.worker_info()[1]["pid"] != old
        assert any("collector worker 1: its process died while saving its state" in line
                   for line in log), log
        c.load_state_dict(state)
        assert next(batches).batch_size == torch.Size([8, 4])
        # one that keeps dying: a run failure naming the worker, not a raw Ray error
        c.max_failures = 1
        _kill(c.worker_info()[0]["pid"])
        with pytest.raises(WorkerFailure, match=r"collector worker 0 failed 1 times in a row; "
                           r"last error: its process died while saving its state .*\(while "
                           r"saving a checkpoint\)") as info:
            c.state_dict()
        assert isinstance(info.value, RunFailure) and info.value.exit_status == 1


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_joining(address: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "tdrl", "train", "ppo", "--workers", "1", "--ray-address", address,
         "--out", str(out), *QUIET],
        capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=120,  # without the check, ray.init retries for minutes and ignores SIGTERM
    )


def test_ray_address_where_nothing_listens_fails_fast_before_writing(tmp_path):
    out = tmp_path / "run"
    address = f"127.0.0.1:{_unused_port()}"
    proc = _train_joining(address, out)
    assert proc.returncode == 2, proc.stderr
    assert f"tdrl: error: --ray-address: cannot reach a Ray cluster at {address}" in proc.stderr
    assert "Connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_ray_address_of_a_silent_server_fails_fast_before_writing(tmp_path):
    with socket.socket() as server:  # accepts connections (the backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        out = tmp_path / "run"
        proc = _train_joining(address, out)
    assert proc.returncode == 2, proc.stderr
    assert (f"tdrl: error: --ray-address: no Ray cluster answers at {address}: a server listens "
            "there but said nothing in 5 s") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_the_address_check_accepts_a_live_ray_cluster():
    from tdrl.collectors.ray_setup import check_ray_address

    check_ray_address(ray.get_runtime_context().gcs_address)  # the module's own instance


def test_more_workers_than_cpus_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", "--workers", "1000", "--out", str(out), *QUIET]) == 2
    err = capsys.readouterr().err
    assert "--workers 1000 needs 1000 CPUs (one per worker), but the running Ray session has 2" in err
    assert not out.exists()
