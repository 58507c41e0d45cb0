"""The README's training tables from one invocation: CartPole, Pendulum and HalfCheetah.

Runs ``train_cartpole.py`` (tdrl PPO/DQN vs SB3), ``pendulum.py`` (tdrl PPO
vs SB3 PPO with gSDE) and ``halfcheetah.py`` (tdrl SAC/PPO vs SB3,
interleaved), one after the other, each in its own process with its own
output shown as it runs, then prints the three markdown tables (and writes
every result as JSON with ``--json``). SB3 runs when it is installed.

    make bench-train                  # the full budgets: about 30 min on a quiet 2-core machine
    python benchmarks/training.py --only halfcheetah --sac-steps 0
    python benchmarks/training.py --seeds 0 --cartpole-steps 2000 --pendulum-steps 2048 \\
        --sac-steps 1000 --ppo-steps 2048 --eval-episodes 1   # a smoke test of the pipeline
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUITES = ("cartpole", "pendulum", "halfcheetah")
CARTPOLE_RUNS = {
    "tdrl-ppo": "tdrl PPO (RL-Zoo hyperparameters, shared trunk)",
    "sb3-ppo": "SB3 PPO (RL-Zoo)",
    "tdrl-dqn": "tdrl DQN (defaults)",
    "sb3-dqn": "SB3 DQN (RL-Zoo)",
}
PENDULUM_RUNS = {"tdrl-ppo": "tdrl PPO (defaults)", "sb3-ppo-gsde": "SB3 PPO (RL-Zoo, gSDE)"}


def run_script(script: str, args: list[str], json_path: Path) -> dict[str, Any]:
    """``python benchmarks/SCRIPT ARGS --json PATH`` (output shown live); returns the JSON."""
    cmd = [sys.executable, str(HERE / script), *args, "--json", str(json_path)]
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, cwd=HERE.parent, check=True)
    return json.loads(json_path.read_text())


def fmt(value: float | None, spec: str) -> str:
    return "never" if value is None else format(value, spec)


def cartpole_table(result: dict[str, Any]) -> list[str]:
    table = result["table"]
    lines = [
        "| run | steps | solved | solved_at_s | solved_at_step | steps/s | final eval | worst seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in CARTPOLE_RUNS.items():
        a = table.get(name)
        if a is None:
            continue
        lines.append(
            f"| {label} | {a['total_steps']:,} | {a['solved']}/{a['seeds']} | "
            f"{fmt(a['median_solved_at_s'], '.1f')} | {fmt(a['median_solved_at_step'], ',.0f')} | "
            f"{a['median_steps_per_s']:,.0f} | {a['median_final_eval']:.0f} | "
            f"{a['min_final_eval']:.1f} |"
        )
    ratios = []
    for algo in ("ppo", "dqn"):
        ours, theirs = table.get(f"tdrl-{algo}"), table.get(f"sb3-{algo}")
        if ours and theirs:
            line = f"{algo.upper()}: {ours['median_steps_per_s'] / theirs['median_steps_per_s']:.2f}x "
            line += "SB3's steps/s"
            if ours["median_solved_at_s"] and theirs["median_solved_at_s"]:
                ratio = ours["median_solved_at_s"] / theirs["median_solved_at_s"]
                line += f", solves in {ratio:.2f}x SB3's wall time"
            ratios.append(line + ".")
    if ratios:
        lines += ["", " ".join(ratios)]
    return lines


def pendulum_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| run | steps | final eval per seed | median steps/s | median wall (s) |",
        "|---|---|---|---|---|",
    ]
    for name, runs in result["runs"].items():
        evals = " / ".join(f"{r['final_eval_return']:.1f}" for r in runs)
        lines.append(
            f"| {PENDULUM_RUNS.get(name, name)} | {runs[0]['total_steps']:,} | {evals} | "
            f"{statistics.median(r['steps_per_s'] for r in runs):,.0f} | "
            f"{statistics.median(r['wall_s'] for r in runs):.0f} |"
        )
    return lines


def halfcheetah_table(result: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "| algorithm | run | steps | final eval | steps/s | tdrl / SB3 steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for algo, rows in result.items():
        by_name = {r["name"]: r for r in rows}
        ratio = ""
        if "tdrl" in by_name and "sb3" in by_name:
            ratio = f"{by_name['tdrl']['steps_per_s'] / by_name['sb3']['steps_per_s']:.2f}x"
        for r in rows:
            lines.append(
                f"| {algo.upper()} | {'tdrl' if r['name'] == 'tdrl' else 'SB3'} | "
                f"{r['steps']:,} | {r['eval']:.1f} ± {r['eval_std']:.1f} | "
                f"{r['steps_per_s']:,.0f} | {ratio if r['name'] == 'tdrl' else ''} |"
            )
    loads = [r["load"] for rows in result.values() for r in rows]
    if loads:
        lines.append(f"\n(seed {rows[0]['seed']}, load average {statistics.mean(loads):.1f} "
                     f"during training)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SUITES, default=list(SUITES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="CartPole and Pendulum seeds (HalfCheetah runs the first)")
    parser.add_argument("--sb3", action=argparse.BooleanOptionalAction, default=None,
                        help="run SB3 alongside (default: when stable-baselines3 is installed)")
    parser.add_argument("--cartpole-steps", type=int, help="override the CartPole budgets")
    parser.add_argument("--pendulum-steps", type=int, help="override the Pendulum budgets")
    parser.add_argument("--sac-steps", type=int, help="HalfCheetah SAC steps (0 skips)")
    parser.add_argument("--ppo-steps", type=int, help="HalfCheetah PPO steps (0 skips)")
    parser.add_argument("--eval-episodes", type=int, help="HalfCheetah evaluation episodes")
    parser.add_argument("--json", metavar="PATH", help="also write every result as JSON")
    args = parser.parse_args()
    sb3 = args.sb3 if args.sb3 is not None else importlib.util.find_spec("stable_baselines3")
    seeds = [str(s) for s in args.seeds]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "cartpole" in args.only:
            flags = ["--seeds", *seeds, *([] if sb3 else ["--no-sb3"])]
            if args.cartpole_steps:
                flags += ["--total-steps", str(args.cartpole_steps)]
            results["cartpole"] = run_script("train_cartpole.py", flags, Path(tmp, "c.json"))
        if "pendulum" in args.only:
            flags = ["--seeds", *seeds, *(["--sb3"] if sb3 else [])]
            if args.pendulum_steps:
                flags += ["--total-steps", str(args.pendulum_steps)]
            results["pendulum"] = run_script("pendulum.py", flags, Path(tmp, "p.json"))
        if "halfcheetah" in args.only:
            flags = ["--seed", seeds[0], "--sb3" if sb3 else "--no-sb3"]
            for name in ("sac_steps", "ppo_steps", "eval_episodes"):
                if getattr(args, name) is not None:
                    flags += ["--" + name.replace("_", "-"), str(getattr(args, name))]
            results["halfcheetah"] = run_script("halfcheetah.py", flags, Path(tmp, "h.json"))
    print(f"\n# Training benchmarks ({len(seeds)} seed(s), 1 torch thread, {os.cpu_count()} cores, "
          f"load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end, "
          f"{(time.perf_counter() - t0) / 60:.0f} min)")
    for key, title, table in (
        ("cartpole", "CartPole-v1 (medians over seeds)", cartpole_table),
        ("pendulum", "Pendulum-v1", pendulum_table),
        ("halfcheetah", "HalfCheetah-v5 (interleaved with SB3, same settings)", halfcheetah_table),
    ):
        if key in results:
            print(f"\n### {title}\n")
            print("\n".join(table(results[key])))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
