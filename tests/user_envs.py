"""Small custom gymnasium envs for the Python-API tests (importable as ``user_envs``)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class MatchSignEnv(gym.Env):
    """Reward 1 when the action (0/1) matches the sign of the observation; 8 steps an episode."""

    metadata: dict = {"render_modes": []}

    def __init__(self, length: int = 8) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.length, self.t = length, 0
        self.obs = np.zeros(2, dtype=np.float32)

    def _draw(self) -> np.ndarray:
        self.obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._draw(), {}

    def step(self, action):
        reward = float(int(action) == int(self.obs[0] > 0))
        self.t += 1
        return self._draw(), reward, False, self.t >= self.length, {}


def make_match_sign() -> MatchSignEnv:
    """A factory function (importable by name)."""
    return MatchSignEnv(length=8)


class DictObsEnv(MatchSignEnv):
    """Same env with a Dict observation space (unsupported by the recipes)."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))})
