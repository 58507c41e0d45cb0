"""Bad files and paths around a run: ``tdrl export``, ``tdrl eval`` and the run files.

Every case asserts the exit status (2: bad input, refused; 1: a run that started
and failed), the message (it names the file and what is wrong), that no traceback
reaches stderr, and what is on disk afterwards: nothing that held results is
overwritten with less. Running as root, ``chmod`` does not stop writes, so
unwritable places are a path under a regular file or a directory where a file is
expected.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tdrl.cli import main

TINY = ["--total-steps", "256", "--num-envs", "2", "--n-steps", "64", "--batch-size", "64",
        "--epochs", "1", "--eval-episodes", "2", "--no-progress", "--threads", "1"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` -> its bytes (None for a directory); ``.lock`` holds a pid."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.name != ".lock"
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny PPO run on CartPole and one on Pendulum, each exported as .onnx and .pt2."""
    out = {}
    for env in ("CartPole-v1", "Pendulum-v1"):
        run_dir = tmp_path_factory.mktemp(env) / "run"
        assert main(["train", "ppo", "--env", env, *TINY, "--out", str(run_dir)]) == 0
        for fmt in ("onnx", "pt2"):
            assert main(["export", str(run_dir), "--format", fmt]) == 0
        out[env] = run_dir
    return out


@pytest.fixture
def cartpole(runs, tmp_path) -> Path:
    """A private copy of the CartPole run (tests change its files)."""
    return Path(shutil.copytree(runs["CartPole-v1"], tmp_path / "cartpole"))


# ----------------------------------------------------------------------------- tdrl export
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_under_a_regular_file(cartpole, tmp_path, capsys, fmt):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    before = snapshot(cartpole)
    out = blocker / "sub" / f"policy.{fmt}"
    code, _, err = run(["export", cartpole, "--format", fmt, "--out", out], capsys)
    assert code == 2
    assert f"tdrl: error: cannot write {out}: {blocker} is not a directory" in err
    assert blocker.read_text() == "not a directory" and snapshot(cartpole) == before


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_to_an_existing_directory(cartpole, tmp_path, capsys, fmt):
    plain = tmp_path / "plain"
    named = tmp_path / f"policy.{fmt}"  # a directory with the file's name
    for d in (plain, named):
        d.mkdir()
        (d / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = run(["export", cartpole, "--format", fmt, "--out", plain], capsys)
    assert code == 2
    assert f"cannot write {plain}: the export path must end in .{fmt} for format {fmt}" in err
    code, _, err = run(["export", cartpole, "--format", fmt, "--out", named], capsys)
    assert code == 2 and f"cannot write {named}: {named} is a directory" in err
    side = tmp_path / f"p.{fmt}.json"
    side.mkdir()  # the sidecar's place is taken
    code, _, err = run(["export", cartpole, "--format", fmt, "--out", tmp_path / f"p.{fmt}"],
                       capsys)
    assert code == 2 and f"{side} is a directory" in err
    assert not (tmp_path / f"p.{fmt}").exists()
    side.rmdir()
    assert snapshot(tmp_path) == before


def test_a_failed_export_write_keeps_the_previous_pair(cartpole, tmp_path, capsys, monkeypatch):
    out = tmp_path / "p.pt2"
    assert run(["export", cartpole, "--format", "pt2", "--out", out], capsys)[0] == 0
    before = snapshot(tmp_path)
    assert before["p.pt2"] and json.loads(before["p.pt2.json"])["format"] == "pt2"

    def disk_full(program, path):
        Path(path).write_bytes(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.export, "save", disk_full)
    code, _, err = run(["export", cartpole, "--format", "pt2", "--out", out], capsys)
    assert code == 2 and f"cannot write {out}: No space left on device" in err
    assert snapshot(tmp_path) == before  # the old pair, and no temp file left


def _edit_checkpoint(run_dir: Path, how: str) -> bytes:
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    model = state["algo_state"]["model"]
    first = next(iter(model))
    if how == "missing key":
        del model[first]
    else:
        model[first] = torch.zeros(3, 3)
    torch.save(state, run_dir / "checkpoint.pt")
    return (run_dir / "checkpoint.pt").read_bytes()


EDITS = {"missing key": "Missing key(s)", "wrong shape": "size mismatch"}


@pytest.mark.parametrize("how", list(EDITS))
def test_export_and_eval_of_a_checkpoint_with_wrong_weights(cartpole, tmp_path, capsys, how):
    data = _edit_checkpoint(cartpole, how)
    before = snapshot(cartpole)
    out = tmp_path / "p.onnx"
    for argv in (["export", cartpole, "--out", out], ["eval", cartpole]):
        code, _, err = run(argv, capsys)
        assert code == 2
        assert f"{cartpole}/checkpoint.pt: its weights do not fit the run's policy" in err
        assert EDITS[how] in err and "left untouched" in err
    assert not out.exists() and (cartpole / "checkpoint.pt").read_bytes() == data
    assert snapshot(cartpole) == before


# ----------------------------------------------------------------------------- tdrl eval --policy
def test_eval_with_a_policy_of_another_env(runs, capsys):
    cartpole, pendulum = runs["CartPole-v1"], runs["Pendulum-v1"]
    for fmt in ("onnx", "pt2"):
        policy = pendulum / f"policy.{fmt}"
        code, _, err = run(["eval", cartpole, "--policy", policy], capsys)
        assert code == 2
        assert (f"--policy {policy} does not fit this run: it was exported from a run on "
                "'Pendulum-v1', this run is on 'CartPole-v1'") in err


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_eval_with_a_truncated_policy(cartpole, capsys, fmt):
    policy = cartpole / f"policy.{fmt}"
    data = policy.read_bytes()[: policy.stat().st_size // 2]
    policy.write_bytes(data)
    before = snapshot(cartpole)
    code, _, err = run(["eval", cartpole, "--policy", policy], capsys)
    assert code == 2
    assert f"--policy: cannot load {policy}: " in err and "a truncated file" in err
    assert snapshot(cartpole) == before


def _sidecar_cases(runs: dict[str, Path]) -> dict:
    def shape(meta):
        meta["inputs"][0]["shape"] = [5]

    def env(meta):
        meta["env"] = "Pendulum-v1"

    return {
        "input shape edited": (shape, "does not match policy.{fmt}: input 'observation' has "
                               "shape [4] in the file, [5] in the sidecar"),
        "env edited": (env, "does not fit this run: it was exported from a run on "
                       "'Pendulum-v1', this run is on 'CartPole-v1'"),
        "not JSON": (b"\x00\xffgarbage", "is not valid JSON"),
        "not an object": ("[1, 2]", "is not a JSON object (a list)"),
        "no inputs": ('{"env": "CartPole-v1"}', "has no valid 'inputs'"),
        "missing": (None, "no sidecar"),
    }


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize("case", list(_sidecar_cases({})))
def test_eval_with_an_edited_or_missing_sidecar(cartpole, capsys, fmt, case):
    edit, message = _sidecar_cases({})[case]
    policy, side = cartpole / f"policy.{fmt}", cartpole / f"policy.{fmt}.json"
    if edit is None:
        side.unlink()
    elif callable(edit):
        meta = json.loads(side.read_text())
        edit(meta)
        side.write_text(json.dumps(meta))
    else:
        side.write_bytes(edit if isinstance(edit, bytes) else edit.encode())
    before = snapshot(cartpole)
    code, _, err = run(["eval", cartpole, "--policy", policy], capsys)
    assert code == 2
    assert message.format(fmt=fmt) in err and str(side) in err
    assert snapshot(cartpole) == before


def test_eval_with_a_summary_that_is_not_an_object(cartpole, capsys):
    (cartpole / "summary.json").write_text("[1, 2, 3]\n")
    before = snapshot(cartpole)
    code, out, _ = run(["eval", cartpole], capsys)
    assert code == 0 and "deterministic return" in out
    assert f"({cartpole}/summary.json holds no final_eval_return to compare with)" in out
    assert snapshot(cartpole) == before


# ----------------------------------------------------------------------------- the run files
def test_resume_with_binary_garbage_after_the_metrics(cartpole, capsys):
    metrics = cartpole / "metrics.csv"
    good = metrics.read_bytes()
    metrics.write_bytes(good + bytes(range(256)) + b"\n\x00\x01,\xfe\xff\n")
    code, out, _ = run(["train", "ppo", "--out", cartpole, "--resume", "--total-steps", "512",
                        "--no-progress"], capsys)
    assert code == 0 and "torn or malformed row(s) from" in out
    data = metrics.read_bytes()
    assert data.startswith(good)  # every good row kept, then the resumed ones
    assert len(data.splitlines()) == len(good.splitlines()) + 2
    assert json.loads((cartpole / "summary.json").read_text())["total_steps"] == 512


def test_learning_curve_replaced_by_a_directory_keeps_the_final_results(cartpole, capsys):
    png = cartpole / "learning_curve.png"
    png.unlink()
    png.mkdir()
    (png / "keep.txt").write_text("mine")
    argv = ["train", "ppo", "--out", cartpole, "--resume", "--total-steps", "512", "--no-progress"]
    code, _, err = run(argv, capsys)
    assert code == 1 and f"cannot write {png}: Is a directory" in err
    summary = json.loads((cartpole / "summary.json").read_text())
    assert summary["status"] == "failed" and "learning_curve.png" in summary["failure"]["message"]
    assert summary["total_steps"] == 512 and len(summary["final_eval_returns"]) == 2
    assert isinstance(summary["final_eval_return"], float)
    assert (png / "keep.txt").read_text() == "mine"
    shutil.rmtree(png)  # fixed: --resume finishes the run (evaluation, summary, curve)
    assert run(argv, capsys)[0] == 0
    summary2 = json.loads((cartpole / "summary.json").read_text())
    assert summary2["status"] == "finished" and png.read_bytes()[:4] == b"\x89PNG"
    assert summary2["final_eval_returns"] == summary["final_eval_returns"]


@pytest.mark.parametrize("how", list(EDITS))
def test_resume_from_a_checkpoint_with_wrong_weights(cartpole, capsys, how):
    _edit_checkpoint(cartpole, how)
    before = snapshot(cartpole)
    code, _, err = run(["train", "ppo", "--out", cartpole, "--resume", "--total-steps", "512",
                        "--no-progress"], capsys)
    assert code == 2
    assert f"{cartpole}/checkpoint.pt: its state does not fit the run's algorithm" in err
    assert EDITS[how] in err
    assert snapshot(cartpole) == before
