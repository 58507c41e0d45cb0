"""``--vec envpool`` vs gymnasium's vector envs on Atari Breakout: env-only and PPO training speed.

One invocation, alternating blocks (sync, async, envpool, sync, async...; a busy
machine slows each alike) of:

- **env only**: ``--num-envs`` (8) ``ALE/Breakout-v5`` training envs, uniformly random
  actions drawn beforehand, ``--env-steps`` vector steps timed after a warm-up:
  gymnasium's ``SyncVectorEnv`` and ``AsyncVectorEnv`` (one process per env) of
  tdrl's wrappers (:func:`tdrl.recipes.atari.make_atari_env`), both in same-step
  autoreset mode, vs :class:`tdrl.recipes.envpool_vec.EnvPoolVecEnv`;
- **PPO training**: tdrl's PPO with the Atari defaults (8 envs x 128 steps, Nature
  CNN, one torch thread; ``--ppo-n-steps`` shortens the rollouts) for ``--ppo-steps``
  env steps after one warm-up rollout and update, ``--vec sync`` vs
  ``--vec envpool`` (the algorithm object: no run directory).

Prints env steps/s (median over ``--repeats``), each row's ratio to the sync
row, for the env-only rows in this process the CPU seconds per 1,000 env steps
(envpool's threads included; async's worker processes are not), and the
machine's load average (``os.getloadavg``) before and after.

    PYTHONPATH=. python benchmarks/envpool_bench.py [--repeats 3] [--env-steps 500] [--ppo-steps 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np

ENV_ID = "ALE/Breakout-v5"


def make_envs(kind: str, n: int) -> Any:
    """``n`` training envs: ``sync`` / ``async`` (gymnasium, tdrl's wrappers) or ``envpool``."""
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode

    from tdrl.recipes.envs import env_factory, make_vec_env

    if kind == "async":
        fns = [env_factory(ENV_ID) for _ in range(n)]
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return make_vec_env(ENV_ID, n, vec=kind)


def env_rate(envs: Any, steps: int, seed: int, warmup: int = 20) -> tuple[float, float]:
    """Env steps per wall second of ``steps`` random vector steps (after ``warmup``), and
    this process's CPU seconds (all its threads, not child processes) per 1,000 env steps."""
    n = envs.num_envs
    actions = np.random.default_rng(seed).integers(0, 4, (warmup + steps, n))
    envs.reset(seed=seed)
    for a in actions[:warmup]:
        envs.step(a)
    start, cpu = time.perf_counter(), time.process_time()
    for a in actions[warmup:]:
        envs.step(a)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n * steps / wall, 1000 * cpu / (n * steps)


def ppo_rate(vec: str, steps: int, n_steps: int = 128) -> float:
    """Env steps per second of tdrl's PPO (Atari defaults) with ``--vec vec``."""
    from tdrl.recipes import get_recipe
    from tdrl.recipes.config import resolve_config
    from tdrl.recipes.envs import probe_env

    recipe = get_recipe("ppo")
    env = probe_env(ENV_ID)
    explicit = {"env": ENV_ID, "total_steps": steps, "threads": 1, "vec": vec,
                "n_steps": n_steps}
    cfg = resolve_config(recipe.config, explicit, recipe.defaults_for(ENV_ID, env.action_space))
    cfg.validate()
    algo = recipe.algorithm(cfg, env)
    algo.iterate()  # warm-up: the first rollout and update
    start, first = time.perf_counter(), algo.global_step
    while algo.global_step < steps:
        algo.iterate()
    rate = (algo.global_step - first) / (time.perf_counter() - start)
    algo.close()
    return rate


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--env-steps", type=int, default=500, help="vector steps per env-only block")
    p.add_argument("--ppo-steps", type=int, default=1024,
                   help="env steps per PPO block (0: skip); the first rollout is a warm-up")
    p.add_argument("--ppo-n-steps", type=int, default=128,
                   help="PPO rollout length per env (Atari default 128; 8 x 32 = one 256 batch)")
    p.add_argument("--kinds", default="sync,async,envpool")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    kinds = args.kinds.split(",")
    load_before = os.getloadavg()
    envs = {k: make_envs(k, args.num_envs) for k in kinds}
    env_rates: dict[str, list[float]] = {k: [] for k in kinds}
    env_cpu: dict[str, list[float]] = {k: [] for k in kinds}
    ppo_rates: dict[str, list[float]] = {k: [] for k in kinds if k != "async"}
    for r in range(args.repeats):
        for k in kinds:
            rate, cpu = env_rate(envs[k], args.env_steps, seed=r)
            env_rates[k].append(rate)
            env_cpu[k].append(cpu)
        if args.ppo_steps:
            for k in ppo_rates:
                ppo_rates[k].append(ppo_rate(k, args.ppo_steps, args.ppo_n_steps))
    for e in envs.values():
        e.close()
    load = [round(x, 1) for x in (*load_before, *os.getloadavg())]
    rows = []
    for what, rates in (("env only (random actions)", env_rates), ("tdrl PPO training", ppo_rates)):
        if not any(rates.values()):
            continue
        base = statistics.median(rates["sync"]) if rates.get("sync") else None
        for k, values in rates.items():
            median = statistics.median(values)
            rows.append({"what": what, "vec": k, "num_envs": args.num_envs,
                         "steps_per_s": round(median, 1),
                         "vs_sync": round(median / base, 2) if base else None,
                         "all": [round(v, 1) for v in values], "loadavg_before_after": load})
            if what.startswith("env") and k != "async":  # async: the CPU is the workers'
                rows[-1]["cpu_s_per_1k_steps"] = round(statistics.median(env_cpu[k]), 3)
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nload average (1, 5, 15 min) before {load[:3]}, after {load[3:]}")
    print(f"{'':28} {'vec':8} {'env steps/s':>12} {'vs sync':>8} {'CPU s / 1k steps':>17}")
    for r in rows:
        ratio = "" if r["vs_sync"] is None else f"{r['vs_sync']:.2f}"
        cpu = f"{r['cpu_s_per_1k_steps']:.3f}" if "cpu_s_per_1k_steps" in r else ""
        print(f"{r['what']:28} {r['vec']:8} {r['steps_per_s']:12.1f} {ratio:>8} {cpu:>17}")
    return rows


if __name__ == "__main__":
    main()
