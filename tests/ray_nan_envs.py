"""CartPole variants that emit a NaN / inf at a chosen step, for the Ray hostile tests.

Importing the module (or calling :func:`register`) registers them with gymnasium;
Ray workers call :func:`register` as their process setup hook (see
tests/test_ray_hostile.py), so the ids resolve in every process.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

NAN_OBS = "tdrl-hostile/NaNObsCartPole-v0"
INF_REWARD = "tdrl-hostile/InfRewardCartPole-v0"
#: every sub-env turns bad on its AT-th step (counted from construction, over episodes)
AT = 40


class BadAt(gym.Wrapper):
    """CartPole whose ``field`` ("obs" or "reward") becomes ``value`` on step ``at``."""

    def __init__(self, env: gym.Env, field: str, at: int, value: float) -> None:
        super().__init__(env)
        self.field, self.at, self.value, self.steps = field, at, value, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at:
            if self.field == "obs":
                obs = np.full_like(obs, self.value)
            else:
                reward = self.value
        return obs, reward, terminated, truncated, info


def _make(field: str, value: float, **kwargs) -> gym.Env:
    return BadAt(gym.make("CartPole-v1", **kwargs), field, AT, value)


def register() -> None:
    """Register the ids (idempotent)."""
    for env_id, field, value in ((NAN_OBS, "obs", float("nan")), (INF_REWARD, "reward", float("inf"))):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=_make, kwargs={"field": field, "value": value},
                         reward_threshold=475.0, max_episode_steps=500)


register()
