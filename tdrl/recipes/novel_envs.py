"""Masked-velocity tasks (partially observable): ``CartPoleNoVel-v1`` and ``PendulumNoVel-v1``.

The classic-control tasks with their velocity entries zeroed, as RL-Zoo uses
them to test recurrent policies: the observation keeps its size and space, but
an agent must infer the velocities from the history. Importing this module
registers both ids with gymnasium (so ``gymnasium.make(
"tdrl.recipes.novel_envs:CartPoleNoVel-v1")`` works anywhere); the recipes call
:func:`register_builtin_envs` wherever they check or make an env, in every
process (Ray workers included).

- ``CartPoleNoVel-v1``: CartPole-v1 with entries 1 (cart velocity) and 3 (pole
  angular velocity) zeroed; time limit 500, reward threshold 475.
- ``PendulumNoVel-v1``: Pendulum-v1 with entry 2 (angular velocity) zeroed;
  time limit 200, no reward threshold (as Pendulum-v1).

Examples:
    >>> import gymnasium as gym
    >>> register_builtin_envs()
    >>> env = gym.make("CartPoleNoVel-v1")
    >>> obs, _ = env.reset(seed=0)
    >>> obs.shape, float(obs[1]), float(obs[3]), env.spec.max_episode_steps
    ((4,), 0.0, 0.0, 500)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "BUILTIN_ENV_IDS",
    "MaskObservation",
    "make_cartpole_novel",
    "make_pendulum_novel",
    "register_builtin_envs",
]

# id -> (entry point in this module, max_episode_steps, reward_threshold)
BUILTIN_ENV_IDS: dict[str, tuple[str, int, float | None]] = {
    "CartPoleNoVel-v1": ("make_cartpole_novel", 500, 475.0),
    "PendulumNoVel-v1": ("make_pendulum_novel", 200, None),
}


class MaskObservation(gym.ObservationWrapper):
    """Zero the observation entries at ``indices`` (flat ``Box`` observations; space unchanged).

    Examples:
        >>> from gymnasium.envs.classic_control import PendulumEnv
        >>> env = MaskObservation(PendulumEnv(), [2])
        >>> obs, _ = env.reset(seed=1)
        >>> obs.shape, float(obs[2]), env.observation_space == PendulumEnv().observation_space
        ((3,), 0.0, True)
        >>> MaskObservation(PendulumEnv(), [3])
        Traceback (most recent call last):
        ...
        ValueError: MaskObservation: indices [3] out of range for an observation of shape (3,)
    """

    def __init__(self, env: gym.Env, indices: Sequence[int]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"MaskObservation needs a flat Box observation space, got {space}")
        bad = [i for i in indices if not 0 <= i < space.shape[0]]
        if bad:
            raise ValueError(
                f"MaskObservation: indices {bad} out of range for an observation of shape "
                f"{space.shape}"
            )
        self.indices = [int(i) for i in indices]

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The observation with the masked entries set to exactly 0."""
        masked = np.array(observation, copy=True)
        masked[self.indices] = 0  # +0.0 exactly (a product with 0 could give -0.0)
        return masked


def make_cartpole_novel(**kwargs: Any) -> gym.Env:
    """CartPole without the cart velocity (entry 1) and the pole angular velocity (entry 3).

    Returns the wrapped ``CartPoleEnv`` without a time limit: ``gymnasium.make
    ("CartPoleNoVel-v1")`` adds the 500-step limit.

    Examples:
        >>> env = make_cartpole_novel()
        >>> obs, _ = env.reset(seed=0)
        >>> obs[[1, 3]].tolist()
        [0.0, 0.0]
    """
    from gymnasium.envs.classic_control import CartPoleEnv

    return MaskObservation(CartPoleEnv(**kwargs), (1, 3))


def make_pendulum_novel(**kwargs: Any) -> gym.Env:
    """Pendulum without the angular velocity (entry 2); ``gymnasium.make`` adds the 200-step limit.

    Examples:
        >>> env = make_pendulum_novel()
        >>> obs, _ = env.reset(seed=0)
        >>> float(obs[2])
        0.0
    """
    from gymnasium.envs.classic_control import PendulumEnv

    return MaskObservation(PendulumEnv(**kwargs), (2,))


def register_builtin_envs() -> None:
    """Register tdrl's own env ids with gymnasium (idempotent, cheap after the first call).

    Examples:
        >>> register_builtin_envs()
        >>> gym.spec("PendulumNoVel-v1").max_episode_steps
        200
    """
    for env_id, (entry, max_steps, threshold) in BUILTIN_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=f"{__name__}:{entry}",
                max_episode_steps=max_steps,
                reward_threshold=threshold,
            )


register_builtin_envs()
