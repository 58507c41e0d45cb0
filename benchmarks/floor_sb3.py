"""SB3's updates for ``benchmarks/floor.py``: where the hand-written floor sits against SB3.

Each function builds a stable-baselines3 model with the settings tdrl's recipe
uses on that env, trains it just far enough to have data (one PPO rollout,
1,000 DQN / SAC steps), and returns ``fn(n)`` running ``n`` of its updates:
``PPO.train()`` (all 20 epochs of one rollout), ``DQN.train(1, 64)`` and
``SAC.train(1, 256)``. Differences that stay: SB3's PPO policy has separate
64x64 tanh actor and critic networks (tdrl and the hand-written one share the
trunk), so it does about twice the matmul work per update.

    >>> sb3_available()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

Fn = Callable[[int], None]


def sb3_available() -> bool:
    """Whether stable-baselines3 is installed (the ``bench`` extra)."""
    return importlib.util.find_spec("stable_baselines3") is not None


def sb3_ppo(seed: int) -> Fn:
    """SB3 PPO on CartPole-v1 with RL-Zoo's (= tdrl's) settings; ``fn(n)``: ``n`` train() calls."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                n_epochs=20, ent_coef=0.0, learning_rate=lambda p: p * 1e-3,
                clip_range=lambda p: p * 0.2, seed=seed, device="cpu", verbose=0)
    model.learn(256)  # one rollout in the buffer (and one update)

    def run(n: int) -> None:
        for _ in range(n):
            model.train()

    return run


def sb3_ppo_iteration(seed: int) -> Fn:
    """SB3 PPO's training loop on CartPole-v1 (RL-Zoo settings): ``n`` iterations of
    ``collect_rollouts`` (32 steps x 8 envs) + ``train()``, through ``learn``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                n_epochs=20, ent_coef=0.0, learning_rate=lambda p: p * 1e-3,
                clip_range=lambda p: p * 0.2, seed=seed, device="cpu", verbose=0)
    model.learn(256)

    def run(n: int) -> None:
        model.learn(256 * n, reset_num_timesteps=False)

    return run


def sb3_dqn(seed: int) -> Fn:
    """SB3 DQN on CartPole-v1 with tdrl's network (128x128) and batch; ``n`` gradient steps."""
    from stable_baselines3 import DQN

    model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64,
                buffer_size=100_000, learning_starts=1_000, gamma=0.99, train_freq=256,
                gradient_steps=128, target_update_interval=10,
                policy_kwargs={"net_arch": [128, 128]}, seed=seed, device="cpu", verbose=0)
    model.learn(1_000)

    def run(n: int) -> None:
        model.train(gradient_steps=n, batch_size=64)

    return run


def sb3_sac(seed: int) -> Fn:
    """SB3 SAC on Pendulum-v1 (RL-Zoo: lr 1e-3, SB3 defaults); ``n`` gradient steps."""
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, seed=seed, device="cpu",
                verbose=0)
    model.learn(1_000)

    def run(n: int) -> None:
        model.train(gradient_steps=n, batch_size=256)

    return run
