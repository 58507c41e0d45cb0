"""CartPole-v1 training benchmark: tdrl PPO and DQN, side by side with SB3 when installed.

Runs ``tdrl train ppo`` and ``tdrl train dqn`` (their defaults) for 3 seeds,
each in its own process, one after the other, and prints per algorithm the
median ``solved_at_s``, ``solved_at_step``, steps/s and final eval return
(plus the worst seed's final eval). When ``stable-baselines3`` is importable
(benchmark-only extra: ``pip install stable-baselines3``) it also runs SB3 PPO
and DQN with the RL-Zoo CartPole-v1 hyperparameters in the same invocation,
measured the same way (last-10-episode mean reaching 475, wall clock of
``learn()``, 10 deterministic eval episodes on the same seeds as tdrl's final
eval), and prints the tdrl/SB3 ratios.

    python benchmarks/train_cartpole.py                  # everything, 3 seeds
    python benchmarks/train_cartpole.py --algos ppo --seeds 0 1 --no-sb3
    python benchmarks/train_cartpole.py --json results.json
    python benchmarks/train_cartpole.py --total-steps 2000 --seeds 0   # a smoke test

Every process uses one torch thread (``--threads``), which is fastest for
these small networks. Solve times are wall clock and depend on the machine
and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = 475.0

# RL-Zoo (rl-baselines3-zoo, hyperparams/ppo.yml and dqn.yml) CartPole-v1 entries.
SB3_PPO = dict(
    n_envs=8,
    total=100_000,
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
    lr=1e-3,
    clip=0.2,
)
SB3_DQN = dict(
    n_envs=1,
    total=50_000,
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    net_arch=[256, 256],
)


def run_tdrl(algo: str, seed: int, threads: int, workdir: Path, extra: list[str]) -> dict:
    out = workdir / f"{algo}-s{seed}"
    cmd = [
        sys.executable,
        "-m",
        "tdrl",
        "train",
        algo,
        "--seed",
        str(seed),
        "--threads",
        str(threads),
        "--out",
        str(out),
        "--force",
        "--no-progress",
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads((out / "summary.json").read_text())


def run_sb3_worker(algo: str, seed: int, threads: int, total: int | None = None) -> dict:
    """Runs in a child process: one SB3 training run, measured like tdrl's."""
    import numpy as np
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from tdrl.recipes.envs import EVAL_SEED_OFFSET, evaluate

    torch.set_num_threads(threads)

    class Solved(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.recent: list[float] = []
            self.solved_step = None
            self.solved_s = None
            self.t0 = None

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            if self.solved_step is None:
                for info in self.locals["infos"]:
                    ep = info.get("episode")
                    if ep is not None:
                        self.recent = [*self.recent[-9:], float(ep["r"])]
                        if len(self.recent) == 10 and sum(self.recent) / 10 >= THRESHOLD:
                            self.solved_step = self.num_timesteps
                            self.solved_s = time.perf_counter() - self.t0
            return True

    if algo == "ppo":
        h = SB3_PPO
        env = make_vec_env("CartPole-v1", n_envs=h["n_envs"], seed=seed)
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=h["n_steps"],
            batch_size=h["batch_size"],
            gae_lambda=h["gae_lambda"],
            gamma=h["gamma"],
            n_epochs=h["n_epochs"],
            ent_coef=h["ent_coef"],
            learning_rate=lambda p: p * h["lr"],
            clip_range=lambda p: p * h["clip"],
            seed=seed,
            device="cpu",
            verbose=0,
        )
    else:
        h = SB3_DQN
        env = make_vec_env("CartPole-v1", n_envs=h["n_envs"], seed=seed)
        model = DQN(
            "MlpPolicy",
            env,
            learning_rate=h["learning_rate"],
            batch_size=h["batch_size"],
            buffer_size=h["buffer_size"],
            learning_starts=h["learning_starts"],
            gamma=h["gamma"],
            target_update_interval=h["target_update_interval"],
            train_freq=h["train_freq"],
            gradient_steps=h["gradient_steps"],
            exploration_fraction=h["exploration_fraction"],
            exploration_final_eps=h["exploration_final_eps"],
            policy_kwargs=dict(net_arch=h["net_arch"]),
            seed=seed,
            device="cpu",
            verbose=0,
        )
    cb = Solved()
    t0 = time.perf_counter()
    model.learn(total_timesteps=total or h["total"], callback=cb)
    wall = time.perf_counter() - t0
    returns = evaluate(
        lambda obs: model.predict(obs, deterministic=True)[0],
        "CartPole-v1",
        10,
        seed + EVAL_SEED_OFFSET,
    )
    return {
        "algo": f"sb3-{algo}",
        "seed": seed,
        "total_steps": int(model.num_timesteps),
        "wall_s": wall,
        "steps_per_s": model.num_timesteps / wall,
        "solved_at_step": cb.solved_step,
        "solved_at_s": cb.solved_s,
        "final_eval_return": float(np.mean(returns)),
    }


def run_sb3(algo: str, seed: int, threads: int, total: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--sb3-worker", algo, str(seed), "--threads", str(threads)]
    if total:
        cmd += ["--total-steps", str(total)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"SB3 {algo} seed {seed} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs: list[dict]) -> dict:
    return {
        "seeds": len(runs),
        "solved": sum(r["solved_at_step"] is not None for r in runs),
        "median_solved_at_s": median([r["solved_at_s"] for r in runs]),
        "median_solved_at_step": median([r["solved_at_step"] for r in runs]),
        "median_steps_per_s": median([r["steps_per_s"] for r in runs]),
        "median_final_eval": median([r["final_eval_return"] for r in runs]),
        "min_final_eval": min(r["final_eval_return"] for r in runs),
        "total_steps": runs[0]["total_steps"],
    }


def fmt(v: float | None, spec: str) -> str:
    return "never" if v is None else format(v, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-sb3", action="store_true", help="skip SB3 even if installed")
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    parser.add_argument("--total-steps", type=int, help="override both sides' budgets (smoke tests)")
    parser.add_argument("--sb3-worker", nargs=2, metavar=("ALGO", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_worker:
        algo, seed = args.sb3_worker[0], int(args.sb3_worker[1])
        print(json.dumps(run_sb3_worker(algo, seed, args.threads, args.total_steps)))
        return 0

    try:
        import stable_baselines3  # noqa: F401

        have_sb3 = not args.no_sb3
    except ImportError:
        have_sb3 = False
        print("stable-baselines3 not installed: tdrl only (pip install stable-baselines3)")

    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for algo in args.algos:
            for seed in args.seeds:
                for impl in ["tdrl", "sb3"] if have_sb3 else ["tdrl"]:
                    t0 = time.perf_counter()
                    if impl == "tdrl":
                        extra = ["--total-steps", str(args.total_steps)] if args.total_steps else []
                        r = run_tdrl(algo, seed, args.threads, Path(tmp), extra)
                    else:
                        r = run_sb3(algo, seed, args.threads, args.total_steps)
                    results.setdefault(f"{impl}-{algo}", []).append(r)
                    print(
                        f"{impl:>4} {algo} seed {seed}: {r['steps_per_s']:7,.0f} steps/s, "
                        f"solved at {fmt(r['solved_at_step'], ',')} steps / "
                        f"{fmt(r['solved_at_s'], '.1f')} s, final eval "
                        f"{r['final_eval_return']:.1f} ({time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )

    table = {name: aggregate(runs) for name, runs in results.items()}
    print(f"\nCartPole-v1, {len(args.seeds)} seeds, {args.threads} torch thread(s), medians:")
    header = (
        f"{'run':<10} {'steps':>8} {'solved':>7} {'solved_at_s':>12} {'solved_at_step':>15} "
        f"{'steps/s':>9} {'final eval':>11} {'worst eval':>11}"
    )
    print(header)
    print("-" * len(header))
    for name, a in table.items():
        print(
            f"{name:<10} {a['total_steps']:>8,} {a['solved']:>4}/{a['seeds']:<2} "
            f"{fmt(a['median_solved_at_s'], '.1f'):>12} "
            f"{fmt(a['median_solved_at_step'], ',.0f'):>15} {a['median_steps_per_s']:>9,.0f} "
            f"{a['median_final_eval']:>11.1f} {a['min_final_eval']:>11.1f}"
        )
    if have_sb3:
        print("\ntdrl / SB3 ratios (medians):")
        for algo in args.algos:
            ours, theirs = table.get(f"tdrl-{algo}"), table.get(f"sb3-{algo}")
            if not ours or not theirs:
                continue
            sps = ours["median_steps_per_s"] / theirs["median_steps_per_s"]
            line = f"  {algo}: steps/s x{sps:.2f}"
            if ours["median_solved_at_s"] and theirs["median_solved_at_s"]:
                ratio = ours["median_solved_at_s"] / theirs["median_solved_at_s"]
                line += f", time to solve x{ratio:.2f} (below 1 = tdrl solves sooner)"
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
