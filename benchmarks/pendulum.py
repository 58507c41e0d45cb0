"""Pendulum-v1 benchmark: ``tdrl train ppo --env Pendulum-v1`` (its defaults) over seeds.

Prints per seed and as medians the final deterministic eval return (10
episodes), steps/s and wall time; the target is a final eval return >= -300.
With ``--sb3`` (needs ``stable-baselines3``) it also runs SB3 PPO with the
RL-Zoo Pendulum-v1 hyperparameters (gSDE, 100k steps) for reference.

    python benchmarks/pendulum.py                 # 3 seeds
    python benchmarks/pendulum.py --seeds 0 --sb3
    python benchmarks/pendulum.py --seeds 0 --sb3 --total-steps 4096 --json out.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import train_cartpole  # the sibling benchmark script (benchmarks/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
TARGET = -300.0


def run_tdrl(seed: int, threads: int, workdir: Path, extra: list[str]) -> dict:
    """One ``tdrl train ppo --env Pendulum-v1`` run in a subprocess; returns its summary."""
    return train_cartpole.run_tdrl("ppo", seed, threads, workdir, ["--env", "Pendulum-v1", *extra])


def sb3_worker(seed: int, threads: int, total: int | None = None) -> dict:
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from tdrl.recipes.envs import EVAL_SEED_OFFSET, evaluate

    torch.set_num_threads(threads)
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=total or 100_000)
    wall = time.perf_counter() - t0
    returns = evaluate(
        lambda obs: model.predict(obs, deterministic=True)[0],
        "Pendulum-v1",
        10,
        seed + EVAL_SEED_OFFSET,
    )
    return {
        "algo": "sb3-ppo-gsde",
        "seed": seed,
        "total_steps": int(model.num_timesteps),
        "wall_s": wall,
        "steps_per_s": model.num_timesteps / wall,
        "final_eval_return": float(np.mean(returns)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sb3", action="store_true", help="also run SB3 PPO (RL-Zoo, gSDE)")
    parser.add_argument("--sb3-worker", type=int, metavar="SEED", help=argparse.SUPPRESS)
    parser.add_argument("--total-steps", type=int, help="override both sides' budgets (smoke tests)")
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    parser.add_argument("extra", nargs="*", help="extra flags for tdrl train (after --)")
    args = parser.parse_args()
    if args.sb3_worker is not None:
        print(json.dumps(sb3_worker(args.sb3_worker, args.threads, args.total_steps)))
        return 0
    rows = []
    if args.total_steps:
        args.extra = ["--total-steps", str(args.total_steps), *args.extra]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t0 = time.perf_counter()
            s = run_tdrl(seed, args.threads, Path(tmp), args.extra)
            rows.append(("tdrl-ppo", s))
            print(
                f"tdrl ppo seed {seed}: final eval {s['final_eval_return']:.1f} "
                f"(+- {s['final_eval_std']:.1f}), {s['total_steps']:,} steps, "
                f"{s['steps_per_s']:,.0f} steps/s, {s['wall_s']:.0f} s "
                f"({time.perf_counter() - t0:.0f} s total)",
                flush=True,
            )
            if args.sb3:
                cmd = [
                    sys.executable,
                    __file__,
                    "--sb3-worker",
                    str(seed),
                    "--threads",
                    str(args.threads),
                    *(["--total-steps", str(args.total_steps)] if args.total_steps else []),
                ]
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(("sb3-ppo-gsde", r))
                print(
                    f" sb3 ppo (gSDE) seed {seed}: final eval {r['final_eval_return']:.1f}, "
                    f"{r['total_steps']:,} steps, {r['steps_per_s']:,.0f} steps/s, "
                    f"{r['wall_s']:.0f} s",
                    flush=True,
                )
    print(f"\nPendulum-v1, {len(args.seeds)} seeds (target: final eval >= {TARGET:g} every seed)")
    for name in dict.fromkeys(n for n, _ in rows):
        runs = [r for n, r in rows if n == name]
        evals = [r["final_eval_return"] for r in runs]
        print(
            f"  {name:<13} steps {runs[0]['total_steps']:>8,}  median eval "
            f"{statistics.median(evals):8.1f}  worst {min(evals):8.1f}  median steps/s "
            f"{statistics.median(r['steps_per_s'] for r in runs):7,.0f}  median wall "
            f"{statistics.median(r['wall_s'] for r in runs):5.0f} s"
        )
    if args.json:
        runs_by_name: dict[str, list[dict]] = {}
        for name, r in rows:
            runs_by_name.setdefault(name, []).append(r)
        Path(args.json).write_text(json.dumps({"runs": runs_by_name}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
