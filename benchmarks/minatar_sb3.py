"""SB3's PPO on MinAtar Breakout at tdrl's MinAtar settings: the reference beside issue 20's bars.

Trains Stable-Baselines3's ``PPO`` (``CnnPolicy`` with tdrl's MinAtar trunk as features
extractor: 16@3x3/1 + ReLU, 128 + ReLU; orthogonal init as SB3 does; ``--heads linear``:
linear policy and value heads on it, tdrl's MinAtar network until the heads changed;
``--heads sb3``: SB3's default of a 64x64 tanh MLP per head, tdrl's MinAtar default now) on
``MinAtar/Breakout-v1``
with the hyperparameters ``tdrl train ppo`` takes for MinAtar ids (8 envs x 128 steps,
4 epochs x 4 minibatches, lr 2.5e-4 and clip 0.1 both annealed, entropy 0.01, ...), then
plays 10 games with the deterministic policy and 10 with sampled actions. Writes
``<out>/episodes.csv`` (step, game score of each training episode) and ``<out>/summary.json``
(final evaluations and the mean of the last 100 training episodes), which
``benchmarks/minatar_curves.py`` draws beside tdrl's runs.

    PYTHONPATH=. python benchmarks/minatar_sb3.py [--steps 1000000] [--seed 0] [--out /work/runs/pixels/sb3-ppo-minatar-breakout-s0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ENV = "MinAtar/Breakout-v1"


def _extractor() -> type:
    from pixels import minatar_extractor  # benchmarks/ is on the path when run as a script
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    return minatar_extractor(BaseFeaturesExtractor)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from tdrl.recipes import get_recipe
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.minatar_env import make_minatar_env

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/work/runs/pixels/sb3-ppo-minatar-breakout-s0")
    p.add_argument("--heads", choices=["linear", "sb3"], default="linear",
                   help="linear: policy and value heads straight on the trunk (tdrl's earlier "
                        "MinAtar network); sb3: SB3's default for a custom features extractor, "
                        "a 64x64 tanh MLP per head (tdrl's MinAtar default)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    d = get_recipe("ppo").defaults_for(ENV, probe_env(ENV).action_space)
    envs = make_vec_env(lambda: make_minatar_env(ENV), n_envs=d["num_envs"], seed=args.seed)
    model = PPO(
        "CnnPolicy", envs, n_steps=d["n_steps"], batch_size=d["batch_size"],
        n_epochs=d["epochs"], learning_rate=lambda f: f * d["lr"],
        clip_range=(lambda f: f * d["clip"]) if d["anneal_clip"] else d["clip"],
        ent_coef=d["ent_coef"], vf_coef=d["vf_coef"], max_grad_norm=d["max_grad_norm"],
        gamma=d["gamma"], gae_lambda=d["gae_lambda"], device="cpu", seed=args.seed,
        policy_kwargs={"features_extractor_class": _extractor(),
                       "features_extractor_kwargs": {"features_dim": d["hidden"][-1]},
                       "normalize_images": False,
                       **({"net_arch": []} if args.heads == "linear" else {})},
    )
    episodes: list[tuple[int, float]] = []

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodes.append((self.num_timesteps, float(info["episode"]["r"])))
            return True

    start = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=Record())
    seconds = time.perf_counter() - start
    with open(out / "episodes.csv", "w") as f:
        f.write("step,score\n")
        f.writelines(f"{s},{r}\n" for s, r in episodes)
    evals = {}
    for name, deterministic in (("deterministic", True), ("sampled", False)):
        env = Monitor(make_minatar_env(ENV))
        env.reset(seed=args.seed)
        scores, _ = evaluate_policy(model, env, n_eval_episodes=10, deterministic=deterministic,
                                    return_episode_rewards=True)
        evals[name] = [float(s) for s in scores]
    summary = {
        "steps": int(model.num_timesteps), "seconds": round(seconds, 1), "seed": args.seed,
        "episodes": len(episodes), "heads": args.heads,
        "train_return_last100": float(np.mean([r for _, r in episodes[-100:]])),
        "final_eval_deterministic": float(np.mean(evals["deterministic"])),
        "final_eval_sampled": float(np.mean(evals["sampled"])),
        "final_eval_returns": evals,
        "settings": {k: d[k] for k in ("num_envs", "n_steps", "batch_size", "epochs", "lr",
                                       "clip", "ent_coef", "vf_coef", "gamma", "gae_lambda")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "final_eval_returns"}))
    return summary


if __name__ == "__main__":
    main()
