"""PPO collection throughput: local envs vs ``--workers 1`` vs ``--workers 2`` on Ray, one run.

Drives ``tdrl.recipes.ppo.PPO`` (the CLI's algorithm) for a few iterations in
each mode, after one warm-up iteration, and prints env steps/s and the
per-iteration split:

- collect: env steps + policy forward (in process, or the slowest worker);
- transfer: the rest of getting the batch into the learner (dispatch, weights
  read from the object store, result serialization, concatenation);
- update: GAE + the PPO epochs in the learner, plus the ``ray.put`` of the new weights;

and the bytes moved per iteration (batch in, weights out). Every worker runs
``--num-envs`` CartPole envs, so ``--workers 2`` collects twice the data per
iteration. One local Ray instance (``--num-cpus``) serves both Ray modes.

    python benchmarks/ray_collect.py                      # 16 envs x 64 steps per worker
    python benchmarks/ray_collect.py --num-envs 32 --iterations 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import torch

from tdrl.collectors import init_ray
from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.ppo import PPO, PPOConfig


def run_mode(workers: int, args: argparse.Namespace) -> dict:
    cfg = PPOConfig(
        num_envs=args.num_envs,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        epochs=args.epochs,
        workers=workers,
        total_steps=10**9,
        seed=0,
    )
    env = EnvInfo(gym.spaces.Box(-5, 5, (4,)), gym.spaces.Discrete(2), 475.0)
    algo = PPO(cfg, env)
    rows = []
    try:
        for i in range(args.iterations + 1):  # iteration 0 warms up (first weights, imports)
            start = time.perf_counter()
            batch = algo.collect() if algo.collector is None else algo.collect_remote()
            got = time.perf_counter()
            algo.update(batch)
            if algo.collector is not None:
                algo.collector.update_policy_weights_()
            done = time.perf_counter()
            if i == 0:
                continue
            timing = algo.collector.timing if algo.collector is not None else {}
            collect_s = timing.get("collect_s", got - start)
            rows.append(
                {
                    "steps": batch.numel(),
                    "total_s": done - start,
                    "collect_s": collect_s,
                    "transfer_s": (got - start) - collect_s,
                    "update_s": done - got,
                    "bytes_in": timing.get("bytes_in", 0),
                    "bytes_out": timing.get("bytes_out", 0),
                }
            )
    finally:
        algo.close()
    out = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    out["steps_per_s"] = out["steps"] / out["total_s"]
    out["collect_steps_per_s"] = out["steps"] / (out["collect_s"] + out["transfer_s"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=16, help="CartPole envs per worker")
    parser.add_argument("--n-steps", type=int, default=64, help="steps per env per iteration")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per mode")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import ray

    init_ray(num_cpus=args.num_cpus)
    results = {}
    try:
        for name, workers in (("local", 0), ("workers=1", 1), ("workers=2", 2)):
            results[name] = run_mode(workers, args)
    finally:
        ray.shutdown()
    print(
        f"PPO CartPole-v1, {args.num_envs} envs x {args.n_steps} steps per worker, "
        f"{args.epochs} epochs; medians of {args.iterations} iterations"
    )
    header = (
        f"{'mode':<10} {'steps/it':>8} {'env steps/s':>11} {'collect+xfer steps/s':>20} "
        f"{'collect ms':>10} {'transfer ms':>11} {'update ms':>9} {'batch KB':>8} {'weights KB':>10}"
    )
    print(header)
    for name, r in results.items():
        print(
            f"{name:<10} {r['steps']:>8.0f} {r['steps_per_s']:>11,.0f} "
            f"{r['collect_steps_per_s']:>20,.0f} {1e3 * r['collect_s']:>10.1f} "
            f"{1e3 * r['transfer_s']:>11.1f} {1e3 * r['update_s']:>9.1f} "
            f"{r['bytes_in'] / 1024:>8.1f} {r['bytes_out'] / 1024:>10.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
