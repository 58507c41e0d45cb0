"""The ``tdrl`` command line: parsing, error cases (clear message, nothing written), eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tdrl.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
TINY_PPO = [
    "--total-steps",
    "512",
    "--num-envs",
    "2",
    "--n-steps",
    "64",
    "--batch-size",
    "64",
    "--epochs",
    "1",
    "--eval-episodes",
    "2",
    "--no-progress",
]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.exists() else {}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "tiny"
    assert main(["train", "ppo", *TINY_PPO, "--out", str(out)]) == 0
    return out


# ----------------------------------------------------------------------------- parsing
def test_parser_defaults_are_none_so_explicit_flags_are_detectable():
    args = build_parser().parse_args(["train", "dqn"])
    assert args.algo == "dqn" and args.lr is None and args.seed is None and args.out is None
    args = build_parser().parse_args(["train", "ppo", "--no-anneal-lr", "--hidden", "32,16"])
    assert args.anneal_lr is False and args.hidden == (32, 16)


def test_help_lists_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "ppo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "--total-steps",
        "--num-envs",
        "--resume",
        "--force",
        "(default: 0.98)",
        "(default: 32)",
        "Pendulum-v1",
    ):
        assert text in out


@pytest.mark.parametrize(
    "argv",
    [
        ["train"],
        ["train", "a2c"],
        ["train", "ppo", "--resume", "--force"],
        ["train", "ppo", "--hidden", "0,4"],
        ["train", "ppo", "--hidden", "a,b"],
        ["train", "ppo", "--activation", "sigmoid"],
        ["train", "ppo", "--seed", "x"],
        ["eval"],
    ],
)
def test_bad_syntax_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "expected positive layer sizes such as 64,64, got '0'"),
        ("a,b", "expected comma-separated integers such as 64,64, got 'a,b'"),
    ],
)
def test_layer_sizes_error_says_what_is_expected(value, message, capsys):
    with pytest.raises(SystemExit):
        main(["train", "ppo", "--hidden", value])
    err = capsys.readouterr().err
    assert f"argument --hidden: {message}" in err and "_parse_ints" not in err


# ----------------------------------------------------------------------------- error cases
def test_unknown_env_suggests_close_matches_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", "ppo", "--env", "CartPol-v1", "--out", str(out)], capsys)
    assert code == 2
    assert "unknown environment id 'CartPol-v1'" in err and "close matches: CartPole-v1" in err
    assert not out.exists()


def test_unknown_env_case_insensitive_match(tmp_path, capsys):
    code, _, err = run(
        ["train", "dqn", "--env", "cartpole-v1", "--out", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "CartPole-v1" in err


def test_default_out_dir_not_created_on_failure(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["train", "ppo", "--env", "NoSuchEnv-v9"], capsys)
    assert code == 2 and "unknown environment id" in err
    assert list(tmp_path.iterdir()) == []


def test_dqn_refuses_continuous_actions(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", "dqn", "--env", "Pendulum-v1", "--out", str(out)], capsys)
    assert code == 2
    assert "dqn needs a discrete action space" in err and "Pendulum-v1" in err and "Box" in err
    assert "tdrl train ppo --env Pendulum-v1" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num-envs", "0"], "--num-envs must be > 0, got 0"),
        (["--total-steps", "-5"], "--total-steps must be > 0, got -5"),
        (["--batch-size", "512"], "--batch-size 512 must be <= num_envs * n_steps = 256"),
        (["--gamma", "1.5"], "--gamma must be in [0, 1], got 1.5"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--device", "gpu0"], "invalid --device 'gpu0'"),
        (["--device", "meta"], "unsupported --device 'meta': the recipes train on cpu"),
        (["--threads", "0"], "--threads must be > 0"),
        (["--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
        (["--clip", "nan"], "--clip must be a finite number, got nan"),
        (["--lr", "inf"], "--lr must be a finite number, got inf"),
        (["--ent-coef", "nan"], "--ent-coef must be a finite number, got nan"),
        (["--vf-coef", "nan"], "--vf-coef must be a finite number, got nan"),
        (["--lr", "1e30"], "--lr must be in [0, 1], got 1e+30"),
        (["--clip", "1.5"], "--clip must be in [0, 1], got 1.5"),
        (["--ent-coef", "-0.1"], "--ent-coef must be in [0, inf], got -0.1"),
        (["--log-std-init=-inf"], "--log-std-init must be a finite number, got -inf"),
    ],
)
def test_ppo_bad_values(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    code, _, err = run(["train", "ppo", *flags, "--out", str(out)], capsys)
    assert code == 2 and message in err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--eps-end", "2"], "--eps-end must be in [0, 1], got 2.0"),
        (["--tau", "0"], "--tau must be in (0, 1], got 0.0"),
        (["--buffer-size", "0"], "--buffer-size must be > 0"),
        (["--learning-starts", "-1"], "--learning-starts must be >= 0"),
        (["--lr", "1e30"], "--lr must be in [0, 1], got 1e+30"),
        (["--tau", "nan"], "--tau must be a finite number, got nan"),
        (["--max-grad-norm", "inf"], "--max-grad-norm must be a finite number, got inf"),
    ],
)
def test_dqn_bad_values(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    code, _, err = run(["train", "dqn", *flags, "--out", str(out)], capsys)
    assert code == 2 and message in err
    assert not out.exists()


def test_cuda_unavailable_is_a_clear_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():  # pragma: no cover - CPU CI
        return
    code, _, err = run(["train", "ppo", "--device", "cuda", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "CUDA is not available" in err


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run(["train", "ppo", "--out", str(f)], capsys)
    assert code == 2 and "is not a directory" in err
    assert f.read_text() == "x"


def test_existing_run_needs_resume_or_force(tiny_run, capsys):
    before = snapshot(tiny_run)
    code, _, err = run(["train", "ppo", "--out", str(tiny_run)], capsys)
    assert code == 2
    assert "already holds a run" in err and "--resume" in err and "--force" in err
    assert snapshot(tiny_run) == before


def test_resume_without_checkpoint(tmp_path, capsys):
    code, _, err = run(["train", "ppo", "--out", str(tmp_path), "--resume"], capsys)
    assert code == 2 and f"no checkpoint at {tmp_path / 'checkpoint.pt'}" in err


def test_resume_with_other_algorithm(tiny_run, capsys):
    before = snapshot(tiny_run)
    code, _, err = run(["train", "dqn", "--out", str(tiny_run), "--resume"], capsys)
    assert code == 2 and "holds a ppo run" in err
    assert snapshot(tiny_run) == before


def test_resume_cannot_change_hyperparameters(tiny_run, capsys):
    before = snapshot(tiny_run)
    code, _, err = run(["train", "ppo", "--out", str(tiny_run), "--resume", "--lr", "0.5"], capsys)
    assert code == 2
    assert "cannot change these options when resuming: --lr 0.5 (run has 0.001)" in err
    assert snapshot(tiny_run) == before


def test_resume_of_finished_run_is_a_no_op(tiny_run, capsys):
    before = snapshot(tiny_run)
    code, out, _ = run(["train", "ppo", "--out", str(tiny_run), "--resume"], capsys)
    assert code == 0 and "already finished at step 512" in out
    assert snapshot(tiny_run) == before


def test_force_starts_over(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY_PPO, "--out", str(out)]) == 0
    (out / "metrics.csv").write_text("junk\n")
    (out / "keep.txt").write_text("not ours")
    assert main(["train", "ppo", *TINY_PPO, "--out", str(out), "--force"]) == 0
    assert (out / "metrics.csv").read_text().startswith("step,wall_s,")
    assert (out / "keep.txt").read_text() == "not ours"
    capsys.readouterr()


# ----------------------------------------------------------------------------- eval
def test_eval_errors(tmp_path, capsys):
    code, _, err = run(["eval", str(tmp_path / "missing")], capsys)
    assert code == 2 and "is not a directory" in err
    code, _, err = run(["eval", str(tmp_path)], capsys)
    assert code == 2 and "no checkpoint at" in err


def test_eval_rejects_nonpositive_episodes(tiny_run, capsys):
    code, _, err = run(["eval", str(tiny_run), "--episodes", "0"], capsys)
    assert code == 2 and "--episodes must be > 0" in err


def test_eval_json_matches_summary(tiny_run, capsys):
    code, out, _ = run(["eval", str(tiny_run), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert result["episodes"] == summary["final_eval_episodes"] == 2
    assert result["returns"] == summary["final_eval_returns"]
    assert result["mean_return"] == summary["final_eval_return"]


def test_eval_render_gif(tiny_run, tmp_path, capsys):
    gif = tmp_path / "sub" / "episode.gif"
    try:
        import pygame  # noqa: F401
    except ImportError:
        code, _, err = run(["eval", str(tiny_run), "--render-gif", str(gif)], capsys)
        assert code == 2 and "cannot render CartPole-v1" in err and "pygame" in err
        assert not gif.exists()
        return
    code, out, _ = run(["eval", str(tiny_run), "--episodes", "1", "--render-gif", str(gif)], capsys)
    assert code == 0 and f"wrote {gif}" in out
    data = gif.read_bytes()
    assert data[:6] == b"GIF89a"
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames > 1


# ----------------------------------------------------------------------------- entry points
def test_python_dash_m_and_light_import():
    """One interpreter: importing the CLI stays light, then ``python -m tdrl`` (via runpy)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = (
        "import runpy, sys, tdrl.cli; "
        "heavy = [m for m in ('gymnasium', 'matplotlib', 'rich') if m in sys.modules]; "
        "print(heavy, flush=True); "
        "sys.argv = ['tdrl', 'train', 'dqn', '--env', 'Foo-v0']; "
        "runpy.run_module('tdrl', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == "[]"
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("tdrl: error: unknown environment id 'Foo-v0'")
    assert "Traceback" not in proc.stderr


def test_progress_bar_quiet_when_not_a_tty(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY_PPO[:-1], "--out", str(out)]) == 0  # no --no-progress
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "final eval return" in captured.out
    assert main(["train", "ppo", *TINY_PPO[:-1], "--progress", "--out", str(out), "--force"]) == 0
    err = capsys.readouterr().err
    assert "ppo CartPole-v1" in err and "512/512 steps" in err and "steps/s" in err


def test_resume_finished_run_without_summary_finalizes(tmp_path, capsys):
    """Killed during the final evaluation: --resume only redoes the evaluation and files."""
    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY_PPO, "--out", str(out)]) == 0
    first = json.loads((out / "summary.json").read_text())
    (out / "summary.json").unlink()
    (out / "learning_curve.png").unlink()
    rows = (out / "metrics.csv").read_text()
    assert main(["train", "ppo", "--out", str(out), "--resume", "--no-progress"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["final_eval_returns"] == first["final_eval_returns"]
    assert again["total_steps"] == first["total_steps"] == 512
    assert (out / "metrics.csv").read_text() == rows
    assert (out / "learning_curve.png").exists()
    capsys.readouterr()
