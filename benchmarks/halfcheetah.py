"""HalfCheetah-v5 (MuJoCo): tdrl SAC and PPO against SB3 at the same settings, interleaved.

Needs the ``mujoco`` extra (``pip install -e '.[mujoco]'``) and, for the
comparison, ``stable-baselines3``. Each agent pair is trained in alternating
chunks in one process (see ``sac_pendulum.py``), so the steps/s ratio is
measured under the same machine load; the budget is fixed and small (this
is a speed comparison plus the return reached after that budget, not a
converged result).

- SAC: RL-Zoo's HalfCheetah settings (SB3 defaults: 256x256, batch 256, lr
  3e-4, tau 0.005, automatic entropy, one gradient step per env step) with
  ``learning_starts`` 10,000 (uniform random actions until then).
- PPO: SB3's PPO defaults on one env (n_steps 2048, batch 64, 10 epochs, lr
  3e-4, gamma 0.99, GAE 0.95, clip 0.2, no annealing, state-independent std
  starting at 1) with observation normalisation on both sides (tdrl's
  ``--normalize-obs``, SB3's ``VecNormalize(norm_reward=False)``; RL-Zoo
  normalises MuJoCo observations); tdrl's PPO shares one 64x64 tanh trunk
  between the heads, SB3's has separate 64x64 policy and value networks.

    python benchmarks/halfcheetah.py                           # SAC 15k steps, PPO 20,480
    python benchmarks/halfcheetah.py --sac-steps 11000 --ppo-steps 0
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from typing import Any

import torch
from sac_pendulum import SB3Run, TdrlRun, interleave, report, sb3_available

ENV = "HalfCheetah-v5"
SAC_FLAGS = ["--learning-starts", "10000"]
PPO_FLAGS = ["--num-envs", "1", "--n-steps", "2048", "--batch-size", "64", "--epochs", "10",
             "--lr", "3e-4", "--no-anneal-lr", "--gamma", "0.99", "--gae-lambda", "0.95",
             "--clip", "0.2", "--no-anneal-clip", "--reward-scale", "1",
             "--no-state-dependent-std", "--log-std-init", "0", "--hidden", "64,64",
             "--normalize-obs"]  # fmt: skip


def sb3_sac(seed: int) -> Any:
    from stable_baselines3 import SAC

    return SAC("MlpPolicy", ENV, learning_starts=10_000, seed=seed, device="cpu", verbose=0)


def sb3_ppo(seed: int) -> Any:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env(ENV, n_envs=1, seed=seed), norm_obs=True, norm_reward=False)
    return PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0)


class SB3NormRun(SB3Run):
    """An SB3 run on a ``VecNormalize`` env: evaluation normalises with its (frozen) statistics."""

    def act(self, obs: Any) -> Any:
        return self.model.predict(self.model.get_env().normalize_obs(obs), deterministic=True)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sac-steps", type=int, default=15_000, help="0 skips SAC")
    parser.add_argument("--ppo-steps", type=int, default=20_480, help="0 skips PPO")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--sb3", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--json", metavar="PATH", help="also write the result rows as JSON")
    args = parser.parse_args()
    args.sb3 = sb3_available(args.sb3)
    torch.set_num_threads(1)
    print(f"{ENV}, seed {args.seed}, 1 thread, load average at start {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict[str, Any]]] = {}
    for algo, steps, flags, chunk, sb3, sb3_run in (
        ("sac", args.sac_steps, SAC_FLAGS, 1_000, sb3_sac, SB3Run),
        ("ppo", args.ppo_steps, PPO_FLAGS, 2_048, sb3_ppo, SB3NormRun),
    ):
        if steps <= 0:
            continue
        runs: list[Any] = [TdrlRun(algo, ENV, args.seed, steps, flags)]
        if args.sb3:
            runs.append(sb3_run(functools.partial(sb3, args.seed)))
        print(f"{algo}: {steps:,} steps", flush=True)
        results[algo] = interleave(runs, ENV, args.seed, steps, chunk, args.eval_episodes)
        report(results[algo], algo)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
