"""SAC on Pendulum-v1: tdrl against SB3, interleaved in one process, same settings.

RL-Zoo's Pendulum-v1 SAC: 20,000 steps, learning rate 1e-3, otherwise SB3's
SAC defaults (256x256 networks, batch 256, one gradient step per env step,
tau 0.005, automatic entropy, learning_starts 100, buffer 1e6), one thread.
For each seed both agents are built, then trained in alternating chunks of
``--chunk`` env steps, so that both see the same machine load; each keeps its
own RNG state between chunks, so each run is the run it would be alone
(tdrl's equals ``tdrl train sac --seed S``). Reports per seed the final
deterministic eval return (10 episodes, the same episode seeds for both),
steps/s (training time only) and the steps/s ratio, plus the load average.

Targets: final eval >= -200 in every seed; tdrl >= 2x SB3's steps/s.

    python benchmarks/sac_pendulum.py                       # 3 seeds, with SB3 if installed
    python benchmarks/sac_pendulum.py --seeds 0 --total-steps 3000   # a quick speed ratio
    python benchmarks/sac_pendulum.py --no-sb3 -- --shared-trunk     # extra tdrl flags
    python benchmarks/sac_pendulum.py --where-time    # where an update's time goes, both

``--where-time`` answers "why not faster": after 1,000 env steps each, it
times single gradient steps of both agents in alternating blocks (wall clock),
then profiles them and splits each update into its matrix multiplies
(``mm`` / ``addmm`` / ``bmm`` / ``baddbmm``) and everything else. Its last
line is the ceiling: SB3's wall time per update divided by tdrl's matmul
time alone, the steps/s ratio tdrl would reach if nothing but its
multiplies were left.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tdrl.recipes.config import resolve_config
from tdrl.recipes.envs import EVAL_SEED_OFFSET, evaluate, probe_env
from tdrl.recipes.rng import get_rng_state, seed_everything, set_rng_state

ENV = "Pendulum-v1"
TARGET = -200.0


class TdrlRun:
    """``tdrl train ALGO`` without the run files: the same config resolution and loop."""

    name = "tdrl"

    def __init__(self, algo: str, env_id: str, seed: int, total_steps: int, extra: list[str]):
        from tdrl.cli import build_parser
        from tdrl.recipes import get_recipe

        args = build_parser().parse_args(["train", algo, *extra])
        explicit = {k: v for k, v in vars(args).items() if v is not None}
        explicit.update(seed=seed, total_steps=total_steps, threads=1, env=env_id)
        env = probe_env(env_id)
        recipe = get_recipe(algo)
        cfg = resolve_config(recipe.config, explicit, recipe.defaults_for(env_id, env.action_space))
        cfg.validate()
        seed_everything(seed)
        self.algo = recipe.algorithm(cfg, env, time.perf_counter)
        self.rng = get_rng_state()
        self.steps = 0

    def train_until(self, step: int) -> None:
        while self.algo.global_step < step:
            self.algo.iterate()
        self.steps = self.algo.global_step

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.algo.act(obs)


class SB3Run:
    """A stable-baselines3 model trained chunk by chunk (``learn`` continues the run)."""

    name = "sb3"

    def __init__(self, make_model: Callable[[], Any]) -> None:
        self.model = make_model()
        self.rng = get_rng_state()
        self.steps = 0

    def train_until(self, step: int) -> None:
        self.model.learn(step - self.steps, reset_num_timesteps=self.steps == 0)
        self.steps = int(self.model.num_timesteps)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, deterministic=True)[0]


def interleave(
    runs: list[Any], env_id: str, seed: int, total_steps: int, chunk: int, episodes: int
) -> list[dict[str, Any]]:
    """Train ``runs`` in alternating chunks of ``chunk`` env steps, then evaluate each.

    Each run keeps its own RNG state between turns (as if it ran alone); the
    steps/s count training time only. Returns one result row per run.
    """
    train_s = {r.name: 0.0 for r in runs}
    loads = []
    step = 0
    while step < total_steps:
        step = min(step + chunk, total_steps)
        loads.append(os.getloadavg()[0])
        for r in runs:
            set_rng_state(r.rng)  # each run draws from its own RNG stream
            t0 = time.perf_counter()
            r.train_until(step)
            train_s[r.name] += time.perf_counter() - t0
            r.rng = get_rng_state()
    rows = []
    for r in runs:
        returns = evaluate(r.act, env_id, episodes, seed + EVAL_SEED_OFFSET)
        rows.append(
            {
                "name": r.name,
                "seed": seed,
                "steps": r.steps,
                "train_s": train_s[r.name],
                "steps_per_s": r.steps / train_s[r.name],
                "eval": float(returns.mean()),
                "eval_std": float(returns.std()),
                "load": float(np.mean(loads)),
            }
        )
    return rows


def report(rows: list[dict[str, Any]], label: str) -> None:
    """Print each row, and the tdrl/sb3 steps/s ratio when both ran."""
    for r in rows:
        print(
            f"  {label} {r['name']:<4} seed {r['seed']}: final eval {r['eval']:8.1f} +- "
            f"{r['eval_std']:6.1f}  {r['steps_per_s']:7.1f} steps/s  ({r['train_s']:.0f} s, "
            f"load {r['load']:.1f})",
            flush=True,
        )
    if len(rows) == 2:
        ratio = rows[0]["steps_per_s"] / rows[1]["steps_per_s"]
        print(f"  {label} seed {rows[0]['seed']}: tdrl/sb3 steps/s = {ratio:.2f}x", flush=True)


def sb3_available(wanted: bool | None) -> bool:
    import importlib.util

    if wanted is not None:
        return wanted
    found = importlib.util.find_spec("stable_baselines3") is not None
    if not found:
        print("stable-baselines3 not installed: tdrl only (pip install stable-baselines3)")
    return found


def sb3_sac_pendulum(seed: int) -> Any:
    """SB3's SAC with RL-Zoo's Pendulum-v1 settings (lr 1e-3, the rest SB3 defaults)."""
    from stable_baselines3 import SAC

    return SAC("MlpPolicy", ENV, learning_rate=1e-3, seed=seed, device="cpu", verbose=0)


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def profile_split(update: Callable[[int], None], n: int) -> tuple[float, float, int]:
    """Profile ``update(n)``: (self CPU ms per update, of which matmul ms, ATen ops per update)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        update(n)
    rows = [r for r in prof.key_averages() if r.key.startswith("aten::")]
    total = sum(r.self_cpu_time_total for r in rows)
    matmul = sum(r.self_cpu_time_total for r in rows if r.key in MATMULS)
    calls = sum(r.count for r in rows if r.self_cpu_time_total > 0)
    return total / n / 1e3, matmul / n / 1e3, round(calls / n)


def where_time(seed: int, rounds: int = 6, block: int = 50) -> None:
    """Per-update wall time of tdrl, SB3 and the hand-written update, then a profiled split."""
    from sac_by_hand import HandSAC  # the sibling script (benchmarks/ is on sys.path)

    tdrl = TdrlRun("sac", ENV, seed, 1_000, [])
    sb3 = SB3Run(functools.partial(sb3_sac_pendulum, seed))
    for run in (tdrl, sb3):
        set_rng_state(run.rng)
        run.train_until(1_000)
        run.rng = get_rng_state()

    def tdrl_update(n: int) -> None:
        for _ in range(n):
            tdrl.algo.update()

    def sb3_update(n: int) -> None:
        sb3.model.train(gradient_steps=n, batch_size=sb3.model.batch_size)

    cfg, space = tdrl.algo.cfg, tdrl.algo.action_space
    obs_dim, act_dim = tdrl.algo.obs.shape[-1], space.shape[-1]
    hand = HandSAC(obs_dim, act_dim, float(space.low[0]), float(space.high[0]), lr=cfg.lr)

    def torch_update(n: int) -> None:  # the same math by hand, on tdrl's replay buffer
        for _ in range(n):
            hand.update(tdrl.algo.buffer.sample(cfg.batch_size))

    updates = {"tdrl": tdrl_update, "sb3": sb3_update, "torch": torch_update}
    wall = {name: 0.0 for name in updates}
    for fn in updates.values():
        fn(10)  # warm-up
    for _ in range(rounds):
        for name, fn in updates.items():
            t0 = time.perf_counter()
            fn(block)
            wall[name] += time.perf_counter() - t0
    ms = {name: wall[name] / (rounds * block) * 1e3 for name in updates}
    split = {name: profile_split(fn, block) for name, fn in updates.items()}
    print(f"one gradient step (batch 256, 256x256), {rounds} alternating blocks of {block}:")
    for name in updates:
        prof_ms, mm_ms, ops = split[name]
        print(
            f"  {name:<5}: {ms[name]:6.2f} ms wall; profiled {prof_ms:6.2f} ms in {ops} ATen ops, "
            f"of which matmul {mm_ms:6.2f} ms ({100 * mm_ms / prof_ms:.0f}%)",
            flush=True,
        )
    print(f"  update steps/s ratio tdrl/sb3 (wall): {ms['sb3'] / ms['tdrl']:.2f}x")
    print(
        f"  hand-written torch/sb3 (wall): {ms['sb3'] / ms['torch']:.2f}x; "
        f"tdrl/hand-written torch: {ms['tdrl'] / ms['torch']:.2f}x the time"
    )
    print(
        f"  ceiling (SB3 wall / tdrl matmul alone): {ms['sb3'] / split['tdrl'][1]:.2f}x "
        f"(tdrl with zero cost besides its matrix multiplies)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--total-steps", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=1_000, help="env steps per turn")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument(
        "--sb3",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run SB3's SAC (default: when stable-baselines3 is installed)",
    )
    parser.add_argument(
        "--where-time",
        action="store_true",
        help="split one update of each agent into matmul and the rest (needs SB3), then exit",
    )
    parser.add_argument("extra", nargs="*", help="extra flags for tdrl train sac (after --)")
    args = parser.parse_args()
    args.sb3 = sb3_available(args.sb3)
    torch.set_num_threads(1)
    if args.where_time:
        if not args.sb3:
            parser.error("--where-time compares against SB3: pip install stable-baselines3")
        where_time(args.seeds[0])
        return 0
    print(
        f"{ENV} SAC, {args.total_steps:,} steps, 1 thread, {os.cpu_count()} cores, "
        f"load average at start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows = []
    for seed in args.seeds:
        runs: list[Any] = [TdrlRun("sac", ENV, seed, args.total_steps, args.extra)]
        if args.sb3:
            runs.append(SB3Run(functools.partial(sb3_sac_pendulum, seed)))
        seed_rows = interleave(runs, ENV, seed, args.total_steps, args.chunk, args.eval_episodes)
        report(seed_rows, "sac")
        rows += seed_rows
    print(f"\nsummary (target: final eval >= {TARGET:g} in every seed, >= 2x SB3 steps/s)")
    print("| agent | seeds | final eval per seed | median steps/s |")
    print("|---|---|---|---|")
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = [r for r in rows if r["name"] == name]
        evals = ", ".join(f"{r['eval']:.1f}" for r in mine)
        sps = statistics.median(r["steps_per_s"] for r in mine)
        print(f"| {name} | {len(mine)} | {evals} | {sps:.1f} |")
    if args.sb3:
        ratios = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(rows[::2], rows[1::2])]
        print(f"steps/s ratio tdrl/sb3 per seed: {', '.join(f'{x:.2f}x' for x in ratios)}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
