"""Recurrent PPO on the masked-velocity tasks: learning evidence, and sb3-contrib side by side.

Three parts, each skippable, in one invocation:

- ``learn``: ``tdrl train ppo --env CartPoleNoVel-v1`` with and without
  ``--recurrent lstm`` for each seed (the env's defaults are RL-Zoo's ppo_lstm
  CartPoleNoVel settings: 100k steps, 8 envs x 32 steps, 20 epochs, batch 256,
  gamma 0.98, lambda 0.8, lr and clip annealed from 1e-3 / 0.2, LSTM 64,
  observations normalized), and ``PendulumNoVel-v1 --recurrent lstm``
  (100k steps). Each run is its own process (``nice``, one torch thread), at
  most ``--parallel`` at once; a run directory that already holds a
  ``summary.json`` is reused, not rerun.
- ``sb3``: sb3-contrib's ``RecurrentPPO`` (``MlpLstmPolicy``, RL-Zoo's
  ppo_lstm CartPoleNoVel entry: the same numbers, ``VecNormalize`` on
  observations only, LSTM 64 with a separate critic LSTM, ReLU, pi/vf [64])
  on CartPoleNoVel for the same seeds, measured as tdrl measures itself:
  steps/s over the whole ``learn()``, the wall time at which the mean of the
  last 10 finished training episodes first reaches 475, and the mean of 10
  deterministic episodes (the env seeds of tdrl's final evaluation, the LSTM
  state carried and reset at episode starts).
- ``speed``: the steps/s ratio measured in one process, robust to a shared
  machine: tdrl's ``PPO.iterate()`` (collect 8 x 32 + 20 epochs) and
  sb3-contrib's ``learn()`` of the same 256 steps, at the same settings, in
  alternating blocks, in CPU time of this thread (``time.thread_time``), median
  block. Also splits tdrl's time into collection and update.
- ``report``: the table (markdown) of both, and the tdrl / sb3 steps/s ratios.

    python benchmarks/recurrent.py --out /work/runs/recurrent           # everything
    python benchmarks/recurrent.py --parts learn --seeds 0 1 2
    python benchmarks/recurrent.py --parts sb3 report --seeds 0
    python benchmarks/recurrent.py --total-steps 4096 --seeds 0 --out /tmp/r  # a smoke test

Wall times depend on the machine and on what else runs on it; the ratio is
measured in one invocation, ideally with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = 475.0
# RL-Zoo hyperparams/ppo_lstm.yml, CartPoleNoVel-v1
ZOO = dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8,
           lr=1e-3, clip=0.2, ent_coef=0.0, lstm=64)
# (name, env, tdrl flags)
RUNS = [
    ("cartpolenovel-lstm", "CartPoleNoVel-v1", ["--recurrent", "lstm"]),
    ("cartpolenovel-ff", "CartPoleNoVel-v1", []),
    ("pendulumnovel-lstm", "PendulumNoVel-v1", ["--recurrent", "lstm", "--total-steps",
                                                "100000"]),
]


def tdrl_cmd(env: str, flags: list[str], seed: int, out: Path, total: int | None) -> list[str]:
    cmd = ["nice", "-n", "5", sys.executable, "-m", "tdrl", "train", "ppo", "--env", env,
           *flags, "--seed", str(seed), "--threads", "1", "--out", str(out), "--no-progress"]
    if total is not None:
        cmd += ["--total-steps", str(total)]
    return cmd


def run_tdrl(name: str, env: str, flags: list[str], seed: int, root: Path,
             total: int | None) -> dict:
    out = root / f"{name}-s{seed}"
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    cmd = tdrl_cmd(env, flags, seed, out, total)
    (root / f"{name}-s{seed}.cmd").write_text(" ".join(cmd) + "\n")
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*cmd, "--force"], cwd=ROOT, capture_output=True, text=True,
                          env=env_vars)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads((out / "summary.json").read_text())


def sb3_worker(seed: int, total: int, out: Path) -> None:
    """Child process: one sb3-contrib RecurrentPPO run on CartPoleNoVel, summary to ``out``."""
    import numpy as np
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from tdrl.recipes.envs import EVAL_SEED_OFFSET
    from tdrl.recipes.envs import make_vec_env as tdrl_vec_env
    from tdrl.recipes.novel_envs import register_builtin_envs

    torch.set_num_threads(1)
    register_builtin_envs()

    class Solved(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.recent: list[float] = []
            self.step = self.wall = None

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            if self.step is None:
                for info in self.locals["infos"]:
                    ep = info.get("episode")
                    if ep is not None:
                        self.recent = [*self.recent[-9:], float(ep["r"])]
                        if len(self.recent) == 10 and sum(self.recent) / 10 >= THRESHOLD:
                            self.step, self.wall = self.num_timesteps, time.perf_counter() - self.t0
            return True

    h = ZOO
    venv = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=h["n_envs"], seed=seed),
                        norm_obs=True, norm_reward=False)
    model = RecurrentPPO(
        "MlpLstmPolicy", venv, n_steps=h["n_steps"], batch_size=h["batch_size"],
        n_epochs=h["n_epochs"], gamma=h["gamma"], gae_lambda=h["gae_lambda"],
        ent_coef=h["ent_coef"], learning_rate=lambda p: p * h["lr"],
        clip_range=lambda p: p * h["clip"], seed=seed, device="cpu", verbose=0,
        policy_kwargs=dict(ortho_init=False, activation_fn=torch.nn.ReLU,
                           lstm_hidden_size=h["lstm"], enable_critic_lstm=True,
                           net_arch=dict(pi=[64], vf=[64])),
    )
    cb = Solved()
    t0 = time.perf_counter()
    model.learn(total_timesteps=total, callback=cb)
    wall = time.perf_counter() - t0
    # deterministic evaluation on tdrl's final-eval seeds, one episode per env
    venv.training = False
    envs = tdrl_vec_env("CartPoleNoVel-v1", 10)
    obs, _ = envs.reset(seed=seed + EVAL_SEED_OFFSET)
    state, starts = None, np.ones(10, dtype=bool)
    returns, running = np.zeros(10), np.ones(10, dtype=bool)
    while running.any():
        action, state = model.predict(venv.normalize_obs(obs), state=state, episode_start=starts,
                                     deterministic=True)
        obs, reward, term, trunc, _ = envs.step(action)
        starts = term | trunc
        returns[running] += reward[running]
        running &= ~starts
    envs.close()
    out.write_text(json.dumps({
        "seed": seed, "total_steps": total, "wall_s": round(wall, 3),
        "steps_per_s": round(total / wall, 1), "solved_at_step": cb.step,
        "solved_at_s": None if cb.wall is None else round(cb.wall, 3),
        "final_eval_return": float(returns.mean()), "final_eval_returns": returns.tolist(),
    }, indent=2) + "\n")


def speed(rounds: int = 5, block: int = 4) -> dict:
    """CPU seconds per 256-step iteration, tdrl vs sb3-contrib, alternating blocks (one process)."""
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.novel_envs import register_builtin_envs
    from tdrl.recipes.ppo import PPO, PPOConfig

    torch.set_num_threads(1)
    register_builtin_envs()
    cfg = PPOConfig(env="CartPoleNoVel-v1", recurrent="lstm", normalize_obs=True,
                    total_steps=100_000)
    algo = PPO(cfg, probe_env(cfg.env))
    h = ZOO
    venv = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=h["n_envs"], seed=0),
                        norm_obs=True, norm_reward=False)
    model = RecurrentPPO(
        "MlpLstmPolicy", venv, n_steps=h["n_steps"], batch_size=h["batch_size"],
        n_epochs=h["n_epochs"], gamma=h["gamma"], gae_lambda=h["gae_lambda"],
        learning_rate=h["lr"], clip_range=h["clip"], seed=0, device="cpu", verbose=0,
        policy_kwargs=dict(ortho_init=False, activation_fn=torch.nn.ReLU,
                           lstm_hidden_size=h["lstm"], enable_critic_lstm=True,
                           net_arch=dict(pi=[64], vf=[64])),
    )
    steps = h["n_envs"] * h["n_steps"]
    model.learn(steps, reset_num_timesteps=True)  # warm-up
    algo.iterate()
    ours, theirs, coll, upd = [], [], [], []
    for _ in range(rounds):
        t = time.thread_time()
        for _ in range(block):
            t1 = time.thread_time()
            batch = algo.collect()
            t2 = time.thread_time()
            algo.update(batch)
            coll.append(t2 - t1)
            upd.append(time.thread_time() - t2)
        ours.append((time.thread_time() - t) / block)
        t = time.thread_time()
        model.learn(steps * block, reset_num_timesteps=False)
        theirs.append((time.thread_time() - t) / block)
    algo.close()
    med = statistics.median
    return {"steps_per_iteration": steps, "tdrl_s": med(ours), "sb3_s": med(theirs),
            "tdrl_collect_s": med(coll), "tdrl_update_s": med(upd),
            "tdrl_steps_per_cpu_s": steps / med(ours), "sb3_steps_per_cpu_s": steps / med(theirs),
            "ratio": med(theirs) / med(ours), "load_average": os.getloadavg()[0]}


def run_sb3(seed: int, root: Path, total: int) -> dict:
    out = root / f"sb3-cartpolenovel-lstm-s{seed}.json"
    if out.exists():
        return json.loads(out.read_text())
    code = ("import sys; sys.path.insert(0, 'benchmarks'); from recurrent import sb3_worker; "
            f"from pathlib import Path; sb3_worker({seed}, {total}, Path({str(out)!r}))")
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["nice", "-n", "5", sys.executable, "-c", code], cwd=ROOT,
                          capture_output=True, text=True, env=env_vars)
    if proc.returncode != 0:
        raise RuntimeError(f"sb3 seed {seed} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(out.read_text())


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def report(rows: dict[str, list[dict]]) -> str:
    lines = ["| run | seeds | final eval (each seed) | solved at step (median) | solved at s "
             "(median) | steps/s (median) |", "|---|---|---|---|---|---|"]
    for name, runs in rows.items():
        if not runs:
            continue
        solved = [r["solved_at_step"] for r in runs if r.get("solved_at_step") is not None]
        solved_s = [r["solved_at_s"] for r in runs if r.get("solved_at_s") is not None]
        evals = ", ".join(f"{r['final_eval_return']:.1f}" for r in runs)
        lines.append(
            f"| {name} | {len(runs)} | {evals} | "
            f"{_fmt(statistics.median(solved) if solved else None, '.0f')} "
            f"({len(solved)}/{len(runs)} solved) | "
            f"{_fmt(statistics.median(solved_s) if solved_s else None)} | "
            f"{_fmt(statistics.median(r['steps_per_s'] for r in runs))} |")
    ours, theirs = rows.get("cartpolenovel-lstm"), rows.get("sb3-recurrentppo-cartpolenovel")
    if ours and theirs:
        ratio = (statistics.median(r["steps_per_s"] for r in ours)
                 / statistics.median(r["steps_per_s"] for r in theirs))
        lines.append(f"\ntdrl / sb3-contrib steps/s (medians): {ratio:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))  # the checkout this script is in, for the in-process parts
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["learn", "sb3", "speed", "report"],
                   choices=["learn", "sb3", "speed", "report"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--runs", nargs="+", default=[r[0] for r in RUNS],
                   choices=[r[0] for r in RUNS])
    p.add_argument("--parallel", type=int, default=2, help="learning runs at once")
    p.add_argument("--total-steps", type=int, default=None, help="override (smoke tests)")
    p.add_argument("--out", type=Path, default=Path("/work/runs/recurrent"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, env, flags, seed) for name, env, flags in RUNS if name in args.runs
            for seed in args.seeds]
    rows: dict[str, list[dict]] = {}
    if "learn" in args.parts:
        with ThreadPoolExecutor(args.parallel) as pool:
            done = list(pool.map(lambda j: (j[0], run_tdrl(*j, args.out, args.total_steps)),
                                 jobs))
        for name, summary in done:
            rows.setdefault(name, []).append(summary)
    if "sb3" in args.parts:
        total = args.total_steps or 100_000
        rows["sb3-recurrentppo-cartpolenovel"] = [run_sb3(s, args.out, total) for s in args.seeds]
    if "speed" in args.parts:
        res = speed()
        (args.out / "speed.json").write_text(json.dumps(res, indent=2) + "\n")
    if "report" in args.parts:
        for name, _, _ in RUNS:  # runs finished earlier (reused)
            if name not in rows:
                found = [args.out / f"{name}-s{s}" / "summary.json" for s in args.seeds]
                rows[name] = [json.loads(f.read_text()) for f in found if f.exists()]
        if "sb3-recurrentppo-cartpolenovel" not in rows:
            found = [args.out / f"sb3-cartpolenovel-lstm-s{s}.json" for s in args.seeds]
            rows["sb3-recurrentppo-cartpolenovel"] = [json.loads(f.read_text()) for f in found
                                                      if f.exists()]
        text = report(rows)
        if (args.out / "speed.json").exists():
            sp = json.loads((args.out / "speed.json").read_text())
            text += (
                f"\nCPU time per 256-step iteration (one process, alternating blocks, median): "
                f"tdrl {sp['tdrl_s'] * 1e3:.0f} ms (collect {sp['tdrl_collect_s'] * 1e3:.0f}, "
                f"update {sp['tdrl_update_s'] * 1e3:.0f}), sb3-contrib {sp['sb3_s'] * 1e3:.0f} ms "
                f"-> tdrl {sp['ratio']:.2f}x sb3-contrib's steps per CPU second")
        print(text)
        (args.out / "report.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
