"""Issue 20's Atari check at full size: 20k env steps of ``ALE/Breakout-v5`` for PPO and DQN.

For each recipe, with its Atari defaults (the Nature CNN, the training wrappers), it

1. trains ``--steps`` env steps (default 20,000) with a checkpoint every quarter;
2. trains the same run again, stopped by an exception after its first checkpoint, and
   resumes it with ``--resume``: the two ``metrics.csv`` and final evaluations must be equal;
3. replays the final evaluation with ``tdrl eval`` and with the exported ONNX policy
   (``tdrl export`` + ``tdrl eval --policy``, ``uint8`` input): equal returns again;

and prints one line per recipe (time, steps/s, final evaluation, whether each check held),
then a Markdown table for the README. DQN's ``learning_starts`` (100k at the Atari defaults)
is set to 2,000 (or an eighth of ``--steps``) so that gradient steps happen inside the 20k steps.
The CI tests (``tests/test_pixel_recipes.py``) run the same checks with a few hundred steps.

    PYTHONPATH=. python benchmarks/atari_20k.py [--steps 20000] [--out /tmp/atari20k] [--algos ppo dqn]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tdrl.cli import main as cli
from tdrl.recipes import get_recipe


def _cli(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(argv)
    if code != 0:
        raise SystemExit(f"tdrl {' '.join(argv)} exited with {code}")
    return out.getvalue()


def _rows(path: Path) -> list[list[str]]:
    """metrics.csv without the wall-clock columns (they differ between runs)."""
    lines = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if name not in ("wall_s", "steps_per_s")]
    return [[row[i] for i in keep] for row in lines]


def check(algo: str, steps: int, root: Path, eval_episodes: int) -> dict[str, Any]:
    """Train, crash-and-resume, eval and export one recipe; returns the measurements."""
    flags = ["--env", "ALE/Breakout-v5", "--total-steps", str(steps), "--seed", "0",
             "--checkpoint-every", str(steps // 4), "--eval-episodes", str(eval_episodes),
             "--threads", "1", "--no-progress"]
    if algo == "dqn":  # the Atari default (100k) would leave no gradient step in the run
        flags += ["--learning-starts", str(min(2000, steps // 8))]
    full, crashed = root / f"{algo}-full", root / f"{algo}-crashed"
    for d in (full, crashed):
        shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    _cli(["train", algo, *flags, "--out", str(full)])
    seconds = time.perf_counter() - t0
    summary = json.loads((full / "summary.json").read_text())

    cls = get_recipe(algo).algorithm
    original = cls.iterate
    crash_at = steps // 4 + 1

    def crash(self: Any) -> Any:
        if self.global_step >= crash_at:
            raise RuntimeError("simulated crash")
        return original(self)

    cls.iterate = crash
    try:
        _cli(["train", algo, *flags, "--out", str(crashed)])
        raise SystemExit("the simulated crash did not happen")
    except RuntimeError:
        pass
    finally:
        cls.iterate = original
    _cli(["train", algo, "--out", str(crashed), "--resume", "--no-progress", "--threads", "1"])
    resumed = json.loads((crashed / "summary.json").read_text())
    resume_exact = (_rows(full / "metrics.csv") == _rows(crashed / "metrics.csv")
                    and resumed["final_eval_returns"] == summary["final_eval_returns"])

    evaluated = json.loads(_cli(["eval", str(full), "--json"]))["returns"]
    _cli(["export", str(full), "--format", "onnx"])
    meta = json.loads((full / "policy.onnx.json").read_text())
    onnx = json.loads(_cli(["eval", str(full), "--policy", str(full / "policy.onnx"),
                            "--json"]))["returns"]
    return {
        "algo": algo, "steps": summary["total_steps"], "seconds": round(seconds, 1),
        "steps_per_s": round(summary["total_steps"] / seconds, 1),
        "episodes": summary["episodes"], "train_return_last100": summary["train_return_last100"],
        "final_eval_returns": summary["final_eval_returns"],
        "resume_exact": resume_exact, "eval_equal": evaluated == summary["final_eval_returns"],
        "onnx_equal": onnx == summary["final_eval_returns"],
        "onnx_input": f"{meta['inputs'][0]['dtype']} {meta['inputs'][0]['shape']}",
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/atari20k"))
    parser.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn"])
    parser.add_argument("--eval-episodes", type=int, default=3)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for algo in args.algos:
        r = check(algo, args.steps, args.out, args.eval_episodes)
        print(json.dumps(r), flush=True)
        results.append(r)
    print("\n| algo | steps | time (s) | steps/s | training episodes (games) | final eval "
          "| resume exact | `tdrl eval` equal | ONNX (input) equal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['algo'].upper()} | {r['steps']:,} | {r['seconds']} | {r['steps_per_s']} "
              f"| {r['episodes']} | {r['final_eval_returns']} | {r['resume_exact']} "
              f"| {r['eval_equal']} | {r['onnx_equal']} ({r['onnx_input']}) |")
    ok = all(r["resume_exact"] and r["eval_equal"] and r["onnx_equal"] for r in results)
    print("atari_20k:", "all checks hold" if ok else "A CHECK FAILED")
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
