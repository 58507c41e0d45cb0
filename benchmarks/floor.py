"""The floor: tdrl's training updates and collection against the same code written by hand.

Run: ``.venv/bin/python benchmarks/floor.py`` (or ``make bench-floor``).

For each built-in recipe at its defaults (PPO on CartPole-v1: 64x64 tanh trunk,
20 epochs of the whole 256-step rollout; DQN on CartPole-v1: 128x128 Double
DQN, batch 64; SAC on Pendulum-v1: 256x256, batch 256) it

1. builds tdrl's algorithm and its plain-torch twin from ``ppo_by_hand``,
   ``dqn_by_hand`` and ``sac_by_hand`` (bare weight tensors and ``F.linear``,
   no TensorDict, no tdrl modules) with tdrl's weights copied in, and checks
   that one update of each on the same batch and RNG state gives the same
   losses and parameters (``floor_checks``: rtol 1e-5, atol 1e-6; the largest
   absolute difference is printed), and for PPO that one rollout from the same
   env seed and RNG state is the same;
2. times the recipe's own update method (``PPO.update`` on a ``PPO.collect``
   rollout, ``DQN.train_step``, ``SAC.update``) against the hand-written one in
   alternating blocks, one torch thread, in CPU time of this thread
   (``time.thread_time``: other processes on the shared machine disturb it
   less than wall time), keeping the median block;
3. times one collection step the same way for PPO (``PPO.collect``: one
   32 x 8 rollout with GAE) and DQN (``DQN.env_step``: one epsilon-greedy step
   of 4 envs into the replay), against the hand-written loop over an identical
   gymnasium vector env, and the bare ``env.step`` loop with random actions
   (the env's share); and PPO's whole training iteration (``PPO.iterate``:
   rollout + update, 256 env steps) against the hand-written rollout + update
   and SB3's ``learn`` loop at the same settings, as env steps per second;
4. with ``--profile`` (default on), counts per update the Python function calls
   (cProfile) and ATen ops (torch.profiler) of both, and lists the ATen ops
   tdrl runs more often than the hand-written update.

The last line is ``floor: ppo X.XXx, dqn X.XXx, sac X.XXx``: tdrl's time per
update divided by the hand-written one (1.00x = no overhead).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dqn_by_hand import HandDQN  # noqa: E402
from floor_checks import (  # noqa: E402
    build,
    check_dqn,
    check_ppo,
    check_ppo_collect,
    check_sac,
    fill,
    ppo_flat,
)
from floor_sb3 import sb3_available, sb3_dqn, sb3_ppo, sb3_ppo_iteration, sb3_sac  # noqa: E402
from ppo_by_hand import HandPPO  # noqa: E402
from sac_by_hand import HandSAC  # noqa: E402

from tdrl.recipes.envs import make_vec_env  # noqa: E402

Fn = Callable[[int], None]


def alternate(fns: dict[str, Fn], rounds: int, block: int) -> dict[str, float]:
    """Median thread CPU ms per call of each ``fn(block)``, over ``rounds`` alternating blocks."""
    for fn in fns.values():
        fn(max(1, block // 5))  # warm-up
    per = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.thread_time()
            fn(block)
            per[name].append((time.thread_time() - t0) / block * 1e3)
    return {name: statistics.median(v) for name, v in per.items()}


def aten_counts(fn: Fn, n: int) -> Counter:
    """ATen op calls per ``fn`` call (torch.profiler, CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(n)
    return Counter({e.key: e.count / n for e in prof.key_averages() if e.key.startswith("aten::")})


def _package(path: str) -> str:
    if path == "~":
        return "builtins"
    for name in ("tdrl", "tensordict", "torch", "gymnasium", "numpy"):
        if f"/{name}/" in path:
            return name
    return "other"


def python_calls(fn: Fn, n: int) -> tuple[float, str, list[str]]:
    """Python calls per ``fn`` call (cProfile), calls by package, top tdrl/tensordict/torch frames."""
    prof = cProfile.Profile()
    prof.enable()
    fn(n)
    prof.disable()
    stats = pstats.Stats(prof).stats
    by_pkg: Counter = Counter()
    for (path, _, _), (_, calls, *_) in stats.items():
        by_pkg[_package(path)] += calls / n
    split = ", ".join(f"{k} {v:,.0f}" for k, v in by_pkg.most_common())
    ours = [(k, v) for k, v in stats.items() if _package(k[0]) in ("tdrl", "tensordict", "torch")]
    ours.sort(key=lambda kv: -kv[1][2])  # by own time
    top = [f"{f[2]} ({os.path.basename(f[0])}:{f[1]}) x{c[1] / n:.0f}" for f, c in ours[:8]]
    # (name, file:line, calls per fn call), the costliest first
    return sum(by_pkg.values()), split, top


def profile_pair(label: str, tdrl: Fn, hand: Fn, n: int) -> None:
    """Print Python calls and ATen ops per update, and the ops tdrl runs in excess."""
    (py_t, split_t, top_t), (py_h, split_h, _) = python_calls(tdrl, n), python_calls(hand, n)
    ops_t, ops_h = aten_counts(tdrl, n), aten_counts(hand, n)
    print(f"  {label} profile per call: tdrl {py_t:,.0f} Python calls, "
          f"{sum(ops_t.values()):,.0f} ATen ops; by hand {py_h:,.0f} Python calls, "
          f"{sum(ops_h.values()):,.0f} ATen ops")
    print(f"    Python calls by package: tdrl's {split_t}; by hand {split_h}")
    extra = sorted(((ops_t[k] - ops_h.get(k, 0), k) for k in ops_t), reverse=True)
    print("    ATen ops tdrl runs more: " + ", ".join(
        f"{k.removeprefix('aten::')} +{d:.0f}" for d, k in extra[:10] if d >= 0.5))
    print("    tdrl/tensordict/torch Python frames by own time: " + "; ".join(top_t[:8]))


def report(label: str, ms: dict[str, float]) -> float:
    t, h = ms["tdrl"], ms["hand"]
    extra = "".join(f", {k} {v:.3f} ms" for k, v in ms.items() if k not in ("tdrl", "hand"))
    print(f"  {label}: tdrl {t:.3f} ms, by hand {h:.3f} ms{extra} -> {t / h:.2f}x", flush=True)
    return t / h


def bare_env(env_id: str, n_envs: int, seed: int) -> Fn:
    """``n`` steps of a fresh vector env with random actions: the env's own cost."""
    envs = make_vec_env(env_id, n_envs)
    envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    space = envs.single_action_space

    def run(n: int) -> None:
        for _ in range(n):
            envs.step(rng.integers(0, space.n, n_envs))

    return run


def with_sb3(fns: dict[str, Fn], make: Callable[[int], Fn] | None, seed: int) -> dict[str, Fn]:
    return {**fns, "sb3": make(seed)} if make else fns


def vs_sb3(ms: dict[str, float]) -> float | None:
    """SB3's time per update over the hand-written one (how far below SB3 the floor is)."""
    return ms["sb3"] / ms["hand"] if "sb3" in ms else None


def ppo(rounds: int, block: int, prof: bool, seed: int, sb3: bool) -> tuple:
    algo = build("ppo", "CartPole-v1", seed)
    rollout = check_ppo_collect(algo)  # first: it needs the envs as just reset
    print(f"PPO CartPole-v1 (64x64 tanh, {algo.cfg.epochs} epochs, batch {algo.cfg.batch_size}"
          f" of {algo.cfg.num_envs * algo.cfg.n_steps}): check max abs diff: update "
          f"{check_ppo(algo):.2g}, rollout {rollout:.2g}", flush=True)
    hand = HandPPO.from_tdrl(algo)
    batch = algo.collect()
    flat, progress = ppo_flat(batch), algo.global_step / algo.cfg.total_steps

    def tdrl_update(n: int) -> None:
        for _ in range(n):
            algo.update(batch)

    def hand_update(n: int) -> None:
        for _ in range(n):
            hand.update(flat, progress)

    ms_update = alternate(with_sb3({"tdrl": tdrl_update, "hand": hand_update},
                                   sb3 and sb3_ppo, seed), rounds, block)
    ratio = report("update", ms_update)
    envs = make_vec_env("CartPole-v1", algo.cfg.num_envs)
    obs = torch.as_tensor(envs.reset(seed=seed)[0], dtype=torch.float32)
    returns = np.zeros(algo.cfg.num_envs, dtype=np.float32)
    state = {"obs": obs}

    def tdrl_collect(n: int) -> None:
        for _ in range(n):
            algo.collect()

    def hand_collect(n: int) -> None:
        for _ in range(n):
            state["obs"] = hand.collect(envs, state["obs"], algo.cfg.n_steps, returns)[1]

    env_only = bare_env("CartPole-v1", algo.cfg.num_envs, seed)
    ms = alternate({"tdrl": tdrl_collect, "hand": hand_collect,
                    "env.step only": lambda n: env_only(n * algo.cfg.n_steps)}, rounds, block)
    collect = report(f"collect ({algo.cfg.n_steps} steps x {algo.cfg.num_envs} envs)", ms)
    steps = algo.cfg.n_steps * algo.cfg.num_envs

    def tdrl_iteration(n: int) -> None:  # the training loop: rollout + update
        for _ in range(n):
            algo.iterate()

    def hand_iteration(n: int) -> None:
        for _ in range(n):
            flat_n, state["obs"] = hand.collect(envs, state["obs"], algo.cfg.n_steps, returns)
            hand.update(flat_n, progress)

    ms_iter = alternate(with_sb3({"tdrl": tdrl_iteration, "hand": hand_iteration},
                                 sb3 and sb3_ppo_iteration, seed), rounds, block)
    report(f"training iteration ({steps} env steps: collect + update)", ms_iter)
    rate = {k: steps / v * 1e3 for k, v in ms_iter.items()}
    print("  steps/s (thread CPU): " + ", ".join(f"{k} {v:,.0f}" for k, v in rate.items())
          + ("" if "sb3" not in rate else
             f"; tdrl / SB3 {rate['tdrl'] / rate['sb3']:.2f}x, by hand / SB3 "
             f"{rate['hand'] / rate['sb3']:.2f}x"), flush=True)
    if prof:
        profile_pair("update", tdrl_update, hand_update, 2)
        profile_pair("collect", tdrl_collect, hand_collect, 2)
    algo.close()
    return ratio, collect, vs_sb3(ms_update)


def dqn(rounds: int, block: int, prof: bool, seed: int, sb3: bool) -> tuple:
    algo = build("dqn", "CartPole-v1", seed)
    fill(algo, algo.cfg.learning_starts)
    print(f"DQN CartPole-v1 (128x128, Double DQN, batch {algo.cfg.batch_size}): check max abs "
          f"diff {check_dqn(algo):.2g}", flush=True)
    hand = HandDQN.from_tdrl(algo)

    def tdrl_update(n: int) -> None:
        for _ in range(n):
            algo.train_step()

    def hand_update(n: int) -> None:
        for _ in range(n):
            hand.train_step()

    ms_update = alternate(with_sb3({"tdrl": tdrl_update, "hand": hand_update}, sb3 and sb3_dqn,
                                   seed), rounds, 20 * block)
    ratio = report("update", ms_update)
    n_envs = algo.cfg.num_envs
    envs = make_vec_env("CartPole-v1", n_envs)
    state = {"obs": torch.as_tensor(envs.reset(seed=seed)[0], dtype=torch.float32)}
    returns = np.zeros(n_envs, dtype=np.float32)

    def tdrl_step(n: int) -> None:
        for _ in range(n):
            algo.env_step()

    def hand_step(n: int) -> None:
        eps = float(algo.egreedy.eps)
        for _ in range(n):
            state["obs"] = hand.env_step(envs, state["obs"], eps, returns)

    ms = alternate({"tdrl": tdrl_step, "hand": hand_step,
                    "env.step only": bare_env("CartPole-v1", n_envs, seed)}, rounds, 50 * block)
    collect = report(f"env_step ({n_envs} envs, 3-step returns)", ms)
    if prof:
        profile_pair("update", tdrl_update, hand_update, 50)
        profile_pair("env_step", tdrl_step, hand_step, 200)
    algo.close()
    return ratio, collect, vs_sb3(ms_update)


def sac(rounds: int, block: int, prof: bool, seed: int, sb3: bool) -> tuple:
    algo = build("sac", "Pendulum-v1", seed)
    fill(algo, 1_000)
    print(f"SAC Pendulum-v1 (256x256, batch {algo.cfg.batch_size}): check max abs diff "
          f"{check_sac(algo):.2g}", flush=True)
    hand = HandSAC.from_tdrl(algo)
    storage = {k: v[: len(algo.buffer)].clone() for k, v in algo.buffer.storage.items()}

    def tdrl_update(n: int) -> None:
        for _ in range(n):
            algo.update()

    def hand_update(n: int) -> None:  # sampling from a dict of tensors, as tdrl's replay does
        for _ in range(n):
            idx = torch.randint(0, len(algo.buffer), (algo.cfg.batch_size,))
            hand.update({k: v[idx] for k, v in storage.items()})

    ms_update = alternate(with_sb3({"tdrl": tdrl_update, "hand": hand_update}, sb3 and sb3_sac,
                                   seed), rounds, 5 * block)
    ratio = report("update", ms_update)
    if prof:
        profile_pair("update", tdrl_update, hand_update, 10)
    algo.close()
    return ratio, None, vs_sb3(ms_update)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating blocks per side")
    parser.add_argument("--block", type=int, default=4,
                        help="PPO updates / collects per block (DQN x20 / x50, SAC x5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="count Python calls and ATen ops per update (cProfile, torch.profiler)")
    parser.add_argument("--sb3", action=argparse.BooleanOptionalAction, default=None,
                        help="also time SB3's updates (default: when stable-baselines3 is "
                        "installed)")
    parser.add_argument("--algos", default="ppo,dqn,sac",
                        help="comma-separated subset of ppo,dqn,sac to time")
    args = parser.parse_args()
    sb3 = sb3_available() if args.sb3 is None else args.sb3
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} cores, "
          f"load average {load0[0]:.1f}; times are CPU ms of this thread, median block")
    chosen = args.algos.split(",")
    unknown = sorted(set(chosen) - {"ppo", "dqn", "sac"})
    if unknown:
        parser.error(f"--algos: unknown {unknown}; choose from ppo, dqn, sac")
    res = {name: fn(args.rounds, args.block, args.profile, args.seed, sb3)
           for name, fn in (("ppo", ppo), ("dqn", dqn), ("sac", sac)) if name in chosen}
    if sb3:
        print("hand-written floor against SB3 (SB3 time / hand time per update): " + ", ".join(
            f"{name} {r[2]:.2f}x" for name, r in res.items()))
    print("collection: " + ", ".join(f"{name} {r[1]:.2f}x" for name, r in res.items()
                                     if r[1] is not None)
          + f" (load average {os.getloadavg()[0]:.1f})")
    print("floor: " + ", ".join(f"{name} {r[0]:.2f}x" for name, r in res.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
