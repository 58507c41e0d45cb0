"""Training recipes: resume after a crash or SIGTERM, reproducibility, checkpoints."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
from train_helpers import (
    QUIET,
    ROOT,
    SMALL_DQN,
    SMALL_PPO,
    crash_run,
    metrics_rows,
    summary,
)

from tdrl.cli import main
from tdrl.recipes import runfiles
from tdrl.recipes.config import CheckpointError, WriteError
from tdrl.recipes.runfiles import (
    load_checkpoint,
    save_checkpoint,
)


# ----------------------------------------------------------------------------- reproducibility + resume
@pytest.mark.parametrize(
    "algo, flags",
    [("ppo", SMALL_PPO), ("ppo", [*SMALL_PPO, "--normalize-obs"]), ("dqn", SMALL_DQN)],
    ids=["ppo", "ppo-normalize-obs", "dqn"],
)
def test_crash_then_resume_matches_uninterrupted_run(algo, flags, tmp_path, monkeypatch, capsys):
    """Same seed -> same metrics.csv; a run killed after its first checkpoint resumes exactly."""
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert main(["train", algo, *flags, "--out", str(full)]) == 0
    crash_run(monkeypatch, algo, [*flags, "--out", str(crashed)], at_step=1500)
    saved = load_checkpoint(crashed / "checkpoint.pt")
    assert saved["global_step"] in (1000, 1024) and not saved["finished"]
    assert len(metrics_rows(crashed / "metrics.csv")) > 0

    assert main(["train", algo, "--out", str(crashed), "--resume", *QUIET]) == 0
    assert "resuming" in capsys.readouterr().out
    assert summary(crashed)["total_steps"] == summary(full)["total_steps"]
    assert metrics_rows(crashed / "metrics.csv") == metrics_rows(full / "metrics.csv")
    assert summary(crashed)["final_eval_returns"] == summary(full)["final_eval_returns"]
    assert summary(crashed)["solved_at_step"] == summary(full)["solved_at_step"]
    # the optimizer state was restored, not re-initialised
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(crashed / "checkpoint.pt")
    for key in a["algo_state"]["model"]:
        assert torch.equal(a["algo_state"]["model"][key], b["algo_state"]["model"][key]), key


def test_different_seeds_differ(tmp_path):
    runs = []
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        argv = [
            "train",
            "ppo",
            "--seed",
            str(seed),
            "--total-steps",
            "512",
            "--epochs",
            "1",
            "--eval-episodes",
            "1",
            *QUIET,
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        runs.append(metrics_rows(out / "metrics.csv"))
    assert runs[0] != runs[1]


def test_sigterm_saves_checkpoint_and_resume_finishes(tmp_path, capsys):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "tdrl",
        "train",
        "ppo",
        "--total-steps",
        "200000",
        "--checkpoint-every",
        "512",
        "--eval-episodes",
        "2",
        *QUIET,
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        metrics = out / "metrics.csv"  # wait for 3 iterations: past the checkpoint at 512
        while not (metrics.exists() and len(metrics.read_text().splitlines()) > 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no third iteration within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM received" in stderr and "Traceback" not in stderr
    assert "stopped by SIGTERM" in stdout and "--resume" in stdout
    state = load_checkpoint(out / "checkpoint.pt")
    step = state["global_step"]
    assert 512 <= step < 200000 and not state["finished"]
    assert not (out / "summary.json").exists()
    rows = metrics_rows(out / "metrics.csv")
    assert int(rows[-1]["step"]) == step  # the save happened after the last logged iteration
    # resume with a shorter budget (allowed override) to finish quickly
    target = step + 512
    argv = ["train", "ppo", "--out", str(out), "--resume", "--total-steps", str(target), *QUIET]
    assert main(argv) == 0
    capsys.readouterr()
    assert summary(out)["total_steps"] == target
    steps = [int(r["step"]) for r in metrics_rows(out / "metrics.csv")]
    assert steps == sorted(set(steps)) and steps[-1] == target


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "not-a-tdrl-file"])
def test_corrupt_checkpoint_is_a_clear_error_and_left_alone(damage, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "ppo",
                "--total-steps",
                "512",
                "--epochs",
                "1",
                "--eval-episodes",
                "1",
                "--checkpoint-every",
                "256",
                *QUIET,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ckpt = out / "checkpoint.pt"
    good = ckpt.read_bytes()
    if damage == "garbage":
        bad = b"\x00not a checkpoint" * 10
    elif damage == "truncated":
        bad = good[: len(good) // 2]
    elif damage == "empty":
        bad = b""
    else:
        torch.save({"weights": torch.zeros(2)}, ckpt)
        bad = ckpt.read_bytes()
    ckpt.write_bytes(bad)
    metrics_before = (out / "metrics.csv").read_bytes()
    capsys.readouterr()
    for argv in (
        ["train", "ppo", "--out", str(out), "--resume", "--total-steps", "1024"],
        ["eval", str(out)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"checkpoint {ckpt} is corrupt or unreadable" in err
        assert "left untouched" in err
        assert ckpt.read_bytes() == bad
        assert (out / "metrics.csv").read_bytes() == metrics_before


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temp file."""
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"global_step": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runfiles.os, "fsync", boom)
    with pytest.raises(WriteError, match=f"cannot write {path}: disk full"):
        save_checkpoint(path, {"global_step": 2})
    assert torch.load(path, weights_only=False)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_load_checkpoint_version_mismatch(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"format": runfiles.CHECKPOINT_FORMAT, "version": 99}, path)
    with pytest.raises(CheckpointError, match="format version 99, expected 1"):
        load_checkpoint(path)
