"""MinAtar through the ``minatar`` package, with channels-first ``uint8`` frames.

``minatar`` registers ``MinAtar/<Game>-v0`` (all 6 actions) and ``-v1`` (the
game's minimal action set) for Asterix, Breakout, Freeway, Seaquest and
SpaceInvaders when :func:`import_minatar` calls its ``register_envs()``; its
frames are ``bool (10, 10, C)``. :func:`make_minatar_env` makes one and wraps
it with :class:`ChannelsFirst`: ``uint8 (C, 10, 10)`` with values 0/1 (and
:class:`RenderUint8`: ``render()`` gives ``uint8`` RGB frames, 10x upscaled). The
games keep MinAtar's defaults (sticky actions with probability 0.1, difficulty
ramping) and their own episode ends (no time limit is added). Rewards are the
game's (0 or 1 per step), so training and evaluation use the same env. Needs
the ``minatar`` extra.

Examples:
    >>> import pytest; _ = pytest.importorskip("minatar", reason="the minatar extra")
    >>> env = make_minatar_env("MinAtar/Breakout-v1")
    >>> obs, _ = env.reset(seed=0)
    >>> obs.shape, obs.dtype, env.action_space
    ((4, 10, 10), dtype('uint8'), Discrete(3))
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from tdrl.recipes.config import TrainError

__all__ = [
    "MINATAR_INSTALL",
    "ChannelsFirst",
    "RenderUint8",
    "import_minatar",
    "make_minatar_env",
]

MINATAR_INSTALL = "pip install 'tdrl[minatar]' (or: pip install minatar)"


def import_minatar() -> Any:
    """Import ``minatar`` and register its ``MinAtar/...`` ids, or raise :class:`TrainError`.

    Examples:
        >>> import pytest; _ = pytest.importorskip("minatar", reason="the minatar extra")
        >>> import_minatar().__name__, "MinAtar/Breakout-v1" in gym.registry
        ('minatar', True)
    """
    try:
        import minatar
        from minatar.gym import register_envs
    except ImportError:
        raise TrainError(f"MinAtar envs need the minatar extra: {MINATAR_INSTALL}") from None
    if "MinAtar/Breakout-v1" not in gym.registry:
        register_envs()
    return minatar


class ChannelsFirst(gym.ObservationWrapper):
    """``(H, W, C)`` frames (bool or uint8) become ``uint8 (C, H, W)`` with the same values.

    Examples:
        >>> frame = np.zeros((10, 10, 2), dtype=bool)
        >>> frame[3, 4, 1] = True
        >>> out = ChannelsFirst.to_channels_first(frame)
        >>> out.shape, out.dtype, int(out[1, 3, 4]), int(out.sum())
        ((2, 10, 10), dtype('uint8'), 1, 1)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
            raise ValueError(f"ChannelsFirst needs a (H, W, C) Box observation space, got {space}")
        h, w, c = space.shape
        high = 1 if space.dtype == np.bool_ else 255
        self.observation_space = gym.spaces.Box(0, high, (c, h, w), np.uint8)

    @staticmethod
    def to_channels_first(frame: np.ndarray) -> np.ndarray:
        """``frame`` (H, W, C) as a contiguous ``uint8`` (C, H, W) array."""
        # transpose, not np.moveaxis: the same view without moveaxis's axis normalisation
        # (a few percent of a MinAtar PPO step)
        return np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The frame, channels first, ``uint8``."""
        return self.to_channels_first(observation)


class RenderUint8(gym.Wrapper):
    """``render()`` as ``uint8 (H*scale, W*scale, 3)``: minatar renders float ``(10, 10, 3)``.

    Examples:
        >>> import pytest; _ = pytest.importorskip("minatar", reason="the minatar extra")
        >>> env = make_minatar_env("MinAtar/Breakout-v1", render_mode="rgb_array")
        >>> _ = env.reset(seed=0)
        >>> frame = env.render()
        >>> frame.shape, frame.dtype
        ((100, 100, 3), dtype('uint8'))
    """

    def __init__(self, env: gym.Env, scale: int = 10) -> None:
        super().__init__(env)
        self.scale = scale
        self.metadata = {**env.metadata, "render_fps": env.metadata.get("render_fps") or 15}

    def render(self) -> Any:
        """The rendered frame, ``uint8`` and upscaled ``scale`` times (other modes unchanged)."""
        frame = self.env.render()
        if self.render_mode != "rgb_array" or frame is None:
            return frame
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            frame = np.rint(np.clip(frame, 0.0, 1.0) * 255).astype(np.uint8)
        return frame.repeat(self.scale, axis=0).repeat(self.scale, axis=1)


def make_minatar_env(env_id: str = "MinAtar/Breakout-v1", **kwargs: Any) -> gym.Env:
    """One MinAtar env with ``uint8 (C, 10, 10)`` observations (raises :class:`TrainError`).

    Keyword arguments go to ``gymnasium.make`` (e.g. ``render_mode="rgb_array"``,
    ``sticky_action_prob=0.0``).

    Examples:
        >>> import pytest; _ = pytest.importorskip("minatar", reason="the minatar extra")
        >>> make_minatar_env("MinAtar/SpaceInvaders-v1").observation_space
        Box(0, 1, (6, 10, 10), uint8)
        >>> make_minatar_env("MinAtar/Pong-v1")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: unknown MinAtar game 'MinAtar/Pong-v1'; choose from MinAtar/Asterix-v0, ...
    """
    import_minatar()
    if env_id not in gym.registry or not env_id.startswith("MinAtar/"):
        ids = sorted(i for i in gym.registry if i.startswith("MinAtar/"))
        raise TrainError(f"unknown MinAtar game {env_id!r}; choose from {', '.join(ids)}")
    # gymnasium's passive checker only warns that minatar renders floats without a render_fps,
    # which RenderUint8 fixes
    kwargs.setdefault("disable_env_checker", True)
    return ChannelsFirst(RenderUint8(gym.make(env_id, **kwargs)))
