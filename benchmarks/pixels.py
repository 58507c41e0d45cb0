"""Pixels: tdrl vs Stable-Baselines3, env steps per second of PPO and DQN on image observations.

One invocation times short training runs of both libraries, interleaved
(tdrl, SB3, tdrl, SB3...: a busy machine slows both alike), on

- ``MinAtar/Breakout-v1``: tdrl's channels-first ``uint8`` env for both; SB3's
  policy gets a features extractor with tdrl's MinAtar convolutions (16@3x3/1,
  then 128: SB3's NatureCNN needs >= 36x36 frames);
- ``ALE/Breakout-v5``: tdrl's own wrappers vs SB3's ``make_atari_env``
  (``AtariWrapper``: no-ops, skip 4 with max-pool, life loss, fire, 84x84
  grayscale, clipped rewards) + ``VecFrameStack(4)`` and ``CnnPolicy``
  (NatureCNN + 512). SB3's needs ``opencv-python``.

Both sides run tdrl's per-family defaults (``ENV_DEFAULTS["ALE/*"]`` /
``["MinAtar/*"]``: CleanRL's / RL-Zoo's Atari PPO, RL-Zoo's Atari DQN) on one
torch thread, for ``--steps`` env steps (DQN learning after a quarter of them).
Prints one row per (algo, env): steps/s of each and the ratio tdrl / SB3.

    PYTHONPATH=. python benchmarks/pixels.py [--envs minatar,atari] [--algos ppo,dqn] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import nn

ENV_IDS = {"minatar": "MinAtar/Breakout-v1", "atari": "ALE/Breakout-v5"}
STEPS = {("ppo", "minatar"): 8192, ("dqn", "minatar"): 8000,
         ("ppo", "atari"): 2048, ("dqn", "atari"): 2000}


def _defaults(algo: str, env_id: str) -> dict[str, Any]:
    from tdrl.recipes import get_recipe
    from tdrl.recipes.envs import probe_env

    recipe = get_recipe(algo)
    return dict(recipe.defaults_for(env_id, probe_env(env_id).action_space))


def run_tdrl(algo: str, env_id: str, steps: int, vec: str = "sync") -> float:
    """Env steps per second of ``tdrl train`` (the algorithm object, no run directory)."""
    from tdrl.recipes import get_recipe
    from tdrl.recipes.config import resolve_config
    from tdrl.recipes.envs import probe_env

    recipe = get_recipe(algo)
    env = probe_env(env_id)
    explicit: dict[str, Any] = {"env": env_id, "total_steps": steps, "threads": 1, "vec": vec}
    if algo == "dqn":
        explicit.update(learning_starts=steps // 4, buffer_size=steps, log_every=steps // 8)
    cfg = resolve_config(recipe.config, explicit, recipe.defaults_for(env_id, env.action_space))
    cfg.validate()
    algo_obj = recipe.algorithm(cfg, env)
    start = time.perf_counter()
    while algo_obj.global_step < steps:
        algo_obj.iterate()
    elapsed = time.perf_counter() - start
    done = algo_obj.global_step
    algo_obj.close()
    return done / elapsed


class MinAtarCNN:  # built lazily: stable_baselines3 is imported inside run_sb3
    """SB3 features extractor with tdrl's MinAtar trunk: 16@3x3/1 + ReLU, then 128 + ReLU."""

    @staticmethod
    def make(base: type) -> type:
        class _Net(base):
            def __init__(self, observation_space: Any, features_dim: int = 128) -> None:
                super().__init__(observation_space, features_dim)
                c, h, w = observation_space.shape
                self.net = nn.Sequential(
                    nn.Conv2d(c, 16, 3), nn.ReLU(), nn.Flatten(),
                    nn.Linear(16 * (h - 2) * (w - 2), features_dim), nn.ReLU(),
                )

            def forward(self, obs: torch.Tensor) -> torch.Tensor:
                return self.net(obs)

        return _Net


def _sb3_envs(env_id: str, n: int, seed: int) -> Any:
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    if env_id.startswith("ALE/"):
        from tdrl.recipes.atari import import_ale

        import_ale()
        envs = make_atari_env(env_id, n_envs=n, seed=seed,
                              env_kwargs={"frameskip": 1, "repeat_action_probability": 0.25})
        return VecFrameStack(envs, 4)
    from tdrl.recipes.minatar_env import make_minatar_env

    return make_vec_env(lambda: make_minatar_env(env_id), n_envs=n, seed=seed)


def run_sb3(algo: str, env_id: str, steps: int) -> float:
    """Env steps per second of SB3's PPO / DQN with the same settings."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    d = _defaults(algo, env_id)
    minatar = env_id.startswith("MinAtar/")
    policy_kwargs: dict[str, Any] = {}
    if minatar:
        policy_kwargs = {"features_extractor_class": MinAtarCNN.make(BaseFeaturesExtractor),
                         "features_extractor_kwargs": {"features_dim": d["hidden"][-1]},
                         "normalize_images": False}
        if algo == "dqn":
            policy_kwargs["net_arch"] = []
    envs = _sb3_envs(env_id, d["num_envs"], seed=0)
    if algo == "ppo":
        model = PPO(
            "CnnPolicy", envs, n_steps=d["n_steps"], batch_size=d["batch_size"],
            n_epochs=d["epochs"], learning_rate=lambda f: f * d["lr"],
            clip_range=(lambda f: f * d["clip"]) if d["anneal_clip"] else d["clip"],
            ent_coef=d["ent_coef"], vf_coef=d["vf_coef"], max_grad_norm=d["max_grad_norm"],
            gamma=d["gamma"], gae_lambda=d["gae_lambda"], policy_kwargs=policy_kwargs,
            device="cpu", seed=0,
        )
    else:
        model = DQN(
            "CnnPolicy", envs, buffer_size=steps, learning_rate=d["lr"],
            batch_size=d["batch_size"], learning_starts=steps // 4,
            train_freq=max(1, d["train_freq"] // d["num_envs"]),
            gradient_steps=d["gradient_steps"], target_update_interval=d["target_update"],
            exploration_fraction=d["exploration_fraction"],
            exploration_final_eps=d["eps_end"], gamma=d["gamma"],
            max_grad_norm=d["max_grad_norm"], policy_kwargs=policy_kwargs,
            optimize_memory_usage=False, device="cpu", seed=0,
        )
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    done = model.num_timesteps
    envs.close()
    return done / elapsed


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", default="minatar,atari")
    p.add_argument("--algos", default="ppo,dqn")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every run's --steps")
    p.add_argument("--vec", default="sync", help="tdrl's training vector env (envpool: Atari)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for family in args.envs.split(","):
        for algo in args.algos.split(","):
            env_id = ENV_IDS[family]
            steps = int(STEPS[(algo, family)] * args.scale)
            ours, theirs = [], []
            for _ in range(args.repeats):
                ours.append(run_tdrl(algo, env_id, steps, args.vec))
                theirs.append(run_sb3(algo, env_id, steps))
            row = {
                "algo": algo, "env": env_id, "steps": steps,
                "tdrl_steps_per_s": round(statistics.median(ours), 1),
                "sb3_steps_per_s": round(statistics.median(theirs), 1),
            }
            row["ratio"] = round(row["tdrl_steps_per_s"] / row["sb3_steps_per_s"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"{'algo':5} {'env':22} {'tdrl steps/s':>13} {'SB3 steps/s':>12} {'tdrl/SB3':>9}")
    for r in rows:
        print(f"{r['algo']:5} {r['env']:22} {r['tdrl_steps_per_s']:13.1f} "
              f"{r['sb3_steps_per_s']:12.1f} {r['ratio']:9.2f}")
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
