"""Shared by the training tests: CI budgets, metrics.csv and summary.json readers, a crash."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tdrl.recipes.runfiles import WALL_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["--no-progress"]
# CI budgets (fixed seed): PPO with the RL-Zoo CartPole settings, schedule shortened.
PPO_CI = ["--seed", "4", "--total-steps", "20000", *QUIET]
DQN_CI = ["--seed", "0", "--total-steps", "6000", *QUIET]
SMALL_PPO = ["--total-steps", "4096", "--checkpoint-every", "1024", "--epochs", "4", *QUIET]
SMALL_DQN = [
    "--total-steps",
    "3000",
    "--checkpoint-every",
    "1000",
    "--learning-starts",
    "500",
    "--log-every",
    "250",
    "--gradient-steps",
    "16",
    *QUIET,
]


def metrics_rows(path: Path, drop_wall: bool = True) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if drop_wall:
        for r in rows:
            for c in WALL_COLUMNS:
                r.pop(c)
    return rows


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())



def assert_eval_and_pt2_replay(run: Path, expected: float, capsys) -> None:
    """`tdrl eval RUN` and the `.pt2` export (`tdrl eval --policy`) both give ``expected``, the
    run's final evaluation mean."""
    from tdrl.cli import main

    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_return"] == expected
    assert main(["export", str(run), "--format", "pt2"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--policy", str(run / "policy.pt2"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_return"] == expected


def crash_run(monkeypatch, algo: str, argv: list[str], at_step: int) -> None:
    """``tdrl train algo *argv`` stopped by a "simulated crash" raised from the algorithm's
    ``iterate`` once ``global_step`` reaches ``at_step`` (the run's checkpoints before it
    stay); ``iterate`` is restored afterwards."""
    from tdrl.cli import main
    from tdrl.recipes import get_recipe

    cls = get_recipe(algo).algorithm
    original = cls.iterate

    def crash(self):
        if self.global_step >= at_step:
            raise RuntimeError("simulated crash")
        return original(self)

    monkeypatch.setattr(cls, "iterate", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["train", algo, *argv])
    monkeypatch.setattr(cls, "iterate", original)
