"""Atari through ``ale-py`` with the standard DQN/PPO preprocessing, as plain gymnasium envs.

:func:`make_atari_env` makes ``ALE/<Game>-v5`` with ``frameskip=1`` and
grayscale frames (v5's sticky actions kept: ``repeat_action_probability=0.25``)
and wraps it, innermost first (:class:`PickleGameState` first of all, so that a
pickled env, in a checkpoint, continues the same game):

1. :class:`NoopReset` -- 1 to 30 no-ops (uniform, from the env's seeded RNG) after each reset;
2. :class:`MaxAndSkip` -- each action repeated 4 frames, rewards summed, the
   observation the pixelwise max of the last two frames (Atari sprites flicker);
3. :class:`GameScore` -- the unclipped score of the whole game in
   ``info["episode_score"]`` (and its length in agent steps in
   ``info["episode_steps"]``) on the step where the game really ends;
4. :class:`EpisodicLife` (training only) -- a lost life ends the episode for
   the learner; the next ``reset`` continues the same game;
5. :class:`FireReset` (games with FIRE) -- presses FIRE after each reset; the
   evaluation variant also presses it after a life loss, as the learner never
   had to (without it a deterministic policy can wait forever);
6. :class:`ClipReward` (training only) -- rewards become their sign;
7. :class:`ResizeFrame` -- 84x84 by area averaging;
8. :class:`StackFrames` -- the last 4 frames, oldest first: ``uint8 (4, 84, 84)``.

``train=False`` gives the evaluation variant: full games (all lives) and the
game's own rewards. Everything stays ``uint8``. Needs the ``atari`` extra.

Examples:
    >>> import pytest; _ = pytest.importorskip("ale_py", reason="the atari extra")
    >>> env = make_atari_env("ALE/Breakout-v5")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, obs.dtype, env.action_space, info["lives"]
    ((4, 84, 84), dtype('uint8'), Discrete(4), 5)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from tdrl.recipes.config import TrainError

__all__ = [
    "ATARI_INSTALL",
    "ClipReward",
    "EpisodicLife",
    "FireReset",
    "GameScore",
    "MaxAndSkip",
    "NoopReset",
    "PickleGameState",
    "ResizeFrame",
    "StackFrames",
    "import_ale",
    "make_atari_env",
]

ATARI_INSTALL = "pip install 'tdrl[atari]' (or: pip install ale-py)"


def import_ale() -> Any:
    """Import ``ale_py`` and register its ``ALE/...`` ids, or raise :class:`TrainError`.

    Examples:
        >>> import pytest; _ = pytest.importorskip("ale_py", reason="the atari extra")
        >>> import_ale().__name__, "ALE/Breakout-v5" in gym.registry
        ('ale_py', True)
    """
    try:
        import ale_py
    except ImportError:
        raise TrainError(f"Atari envs need the atari extra: {ATARI_INSTALL}") from None
    gym.register_envs(ale_py)
    return ale_py


class PickleGameState(gym.Wrapper):
    """Make a pickled copy of an ALE env continue the same game, RNGs included.

    ale-py's ``AtariEnv`` pickles as its constructor arguments only, so an
    unpickled copy (a checkpoint, a resumed run) starts from power-on. This
    wrapper also stores the emulator state with its RNG (sticky actions) and
    the env's ``np_random`` (no-op starts), and restores them on unpickling.
    """

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        raw = self.env.unwrapped
        state["_ale_state"] = raw.clone_state(include_rng=True)
        state["_np_random_state"] = raw.np_random.bit_generator.state
        return state

    def __setstate__(self, state: dict) -> None:
        ale_state, rng_state = state.pop("_ale_state"), state.pop("_np_random_state")
        self.__dict__.update(state)
        raw = self.env.unwrapped
        raw.restore_state(ale_state)
        raw.np_random.bit_generator.state = rng_state


class NoopReset(gym.Wrapper):
    """After ``reset``, take 1 to ``noop_max`` no-ops (action 0); the count is in ``self.noops``.

    Examples:
        >>> env = NoopReset(gym.make("CartPole-v1"), noop_max=3)
        >>> _ = env.reset(seed=0)
        >>> 1 <= env.noops <= 3
        True
    """

    def __init__(self, env: gym.Env, noop_max: int = 30) -> None:
        super().__init__(env)
        if noop_max < 1:
            raise ValueError(f"NoopReset: noop_max must be >= 1, got {noop_max}")
        self.noop_max = noop_max
        self.noops = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.noops = int(self.unwrapped.np_random.integers(1, self.noop_max + 1))
        for _ in range(self.noops):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat each action ``skip`` frames; sum the rewards; return the max of the last two frames.

    Stops early when the episode ends (then the max is over the frames seen).

    Examples:
        >>> env = MaxAndSkip(gym.make("CartPole-v1"), skip=2)
        >>> _ = env.reset(seed=0)
        >>> env.step(0)[1]  # two CartPole steps, reward 1 each
        2.0
    """

    def __init__(self, env: gym.Env, skip: int = 4) -> None:
        super().__init__(env)
        if skip < 1:
            raise ValueError(f"MaxAndSkip: skip must be >= 1, got {skip}")
        self.skip = skip

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        total, frames = 0.0, deque(maxlen=2)
        terminated = truncated = False
        info: dict = {}
        for _ in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            frames.append(obs)
            total += float(reward)
            if terminated or truncated:
                break
        return np.maximum(frames[0], frames[-1]), total, terminated, truncated, info


class GameScore(gym.Wrapper):
    """Put the game's unclipped score and length in ``info`` on the step where it really ends.

    Place it below :class:`EpisodicLife` and :class:`ClipReward`: it then sees
    whole games and raw rewards. Keys: ``info["episode_score"]`` (sum of
    rewards since the last real reset) and ``info["episode_steps"]`` (steps).

    Examples:
        >>> env = GameScore(gym.make("CartPole-v1"))
        >>> _ = env.reset(seed=0)
        >>> info, done = {}, False
        >>> while not done:
        ...     _, _, term, trunc, info = env.step(0)
        ...     done = term or trunc
        >>> info["episode_score"] == info["episode_steps"] > 0
        True
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.score, self.steps = 0.0, 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.score, self.steps = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.score += float(reward)
        self.steps += 1
        if terminated or truncated:
            info = {**info, "episode_score": self.score, "episode_steps": self.steps}
        return obs, reward, terminated, truncated, info


def _lives(env: gym.Env) -> int:
    return int(env.unwrapped.ale.lives())


class EpisodicLife(gym.Wrapper):
    """Training only: a lost life ends the episode; ``reset`` then continues the same game.

    ``reset`` restarts the game only after a real game end; after a life loss
    it takes one no-op step instead. ``self.game_over`` tells which.
    Needs an ALE env (it reads ``env.unwrapped.ale.lives()``).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives, self.game_over = 0, True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = _lives(self.env)
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        if self.game_over or kwargs.get("seed") is not None:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives, self.game_over = _lives(self.env), False
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE (then action 2) after ``reset``, for games that wait for it to start.

    With ``on_life_loss=True`` it also presses FIRE on the step where a life is
    lost (the evaluation variant: the learner, trained with
    :class:`EpisodicLife`, never had to serve by itself). Needs an ALE env whose
    action 1 is FIRE.
    """

    def __init__(self, env: gym.Env, on_life_loss: bool = False) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireReset needs action 1 = FIRE, got actions {meanings}")
        self.on_life_loss = on_life_loss
        self.lives = 0

    def _fire(self) -> tuple[Any, float, bool, bool, dict]:
        total, terminated, truncated = 0.0, False, False
        for action in (1, 2):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self._fire()
        if terminated or truncated:  # rare: the game ended while serving; start again
            self.env.reset(**kwargs)
            obs, _, _, _, info = self._fire()
        self.lives = _lives(self.env)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = _lives(self.env)
        if self.on_life_loss and not (terminated or truncated) and 0 < lives < self.lives:
            obs, fire_reward, terminated, truncated, info = self._fire()
            reward = float(reward) + fire_reward
        self.lives = _lives(self.env)
        return obs, reward, terminated, truncated, info


class ClipReward(gym.RewardWrapper):
    """Training only: each reward becomes its sign (-1, 0 or 1).

    Examples:
        >>> env = ClipReward(gym.make("Pendulum-v1"))
        >>> _ = env.reset(seed=0)
        >>> env.step(env.action_space.sample())[1]
        -1.0
    """

    def reward(self, reward: float) -> float:
        """The sign of ``reward``."""
        return float(np.sign(reward))


def _area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-resize weights as ``(index, weight)``, both ``(n_out, k)``: output ``i`` is
    ``sum_j weight[i, j] * input[index[i, j]]``, the mean of the inputs it covers (a banded
    gather, not a BLAS matmul: BLAS threads crawl on a busy machine)."""
    scale = n_in / n_out
    lo, hi = np.arange(n_out)[:, None] * scale, np.arange(1, n_out + 1)[:, None] * scale
    pixel = np.arange(n_in)[None, :]
    dense = np.clip(np.minimum(hi, pixel + 1) - np.maximum(lo, pixel), 0.0, None) / scale
    k = int((dense > 0).sum(1).max())
    index, weight = np.zeros((n_out, k), np.intp), np.zeros((n_out, k), np.float32)
    for i, row in enumerate(dense):
        nz = np.flatnonzero(row)
        index[i, : len(nz)], weight[i, : len(nz)] = nz, row[nz]
    return index, weight


class ResizeFrame(gym.ObservationWrapper):
    """Resize a 2-D ``uint8`` frame to ``size x size`` by area averaging (no OpenCV needed).

    Examples:
        >>> frame = np.zeros((210, 160), np.uint8)
        >>> frame[:105] = 200  # top half bright
        >>> small = ResizeFrame.resize(frame, 84)
        >>> small.shape, small.dtype, int(small[0, 0]), int(small[41, 0]), int(small[42, 0])
        ((84, 84), dtype('uint8'), 200, 200, 0)
    """

    def __init__(self, env: gym.Env, size: int = 84) -> None:
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)
        self._weights: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def resize(frame: np.ndarray, size: int) -> np.ndarray:
        """``frame`` (H, W) ``uint8`` resized to ``(size, size)`` ``uint8``."""
        rows, cols = _area_weights(frame.shape[0], size), _area_weights(frame.shape[1], size)
        return ResizeFrame._apply(frame, rows, cols)

    @staticmethod
    def _apply(frame: np.ndarray, rows: tuple, cols: tuple) -> np.ndarray:
        x = frame.astype(np.float32)
        x = np.einsum("ok,okw->ow", rows[1], x[rows[0]])
        x = np.einsum("ok,hok->ho", cols[1], x[:, cols[0]])
        return np.rint(x).astype(np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The resized frame."""
        if observation.ndim != 2:
            raise ValueError(
                f"ResizeFrame needs 2-D grayscale frames, got shape {observation.shape}"
            )
        for n in observation.shape:
            if n not in self._weights:
                self._weights[n] = _area_weights(n, self.size)
        h, w = observation.shape
        return self._apply(observation, self._weights[h], self._weights[w])


class StackFrames(gym.Wrapper):
    """Observe the last ``k`` frames, oldest first; ``reset`` fills the stack with the first one.

    Examples:
        >>> env = StackFrames(gym.make("CartPole-v1"), 3)
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape, bool((obs[0] == obs[2]).all())
        ((3, 4), True)
        >>> nxt = env.step(0)[0]
        >>> bool((nxt[:2] == obs[1:]).all())
        True
    """

    def __init__(self, env: gym.Env, k: int = 4) -> None:
        super().__init__(env)
        if k < 1:
            raise ValueError(f"StackFrames: k must be >= 1, got {k}")
        self.k = k
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            np.repeat(space.low[None], k, 0), np.repeat(space.high[None], k, 0), dtype=space.dtype
        )
        self._frames: deque = deque(maxlen=k)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._frames.extend([obs] * self.k)
        return np.stack(self._frames), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(obs)
        return np.stack(self._frames), reward, terminated, truncated, info


def make_atari_env(
    env_id: str = "ALE/Breakout-v5",
    *,
    train: bool = True,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    stack: int = 4,
    repeat_action_probability: float = 0.25,
    fire_on_life_loss: bool | None = None,
    **kwargs: Any,
) -> gym.Env:
    """``env_id`` (an ``ALE/...`` id) with the preprocessing above; ``train=False`` to evaluate.

    ``fire_on_life_loss`` defaults to ``not train``. Other keyword arguments
    (``render_mode="rgb_array"``, ``full_action_space``...) go to ``gymnasium.make``.
    Raises :class:`TrainError` without ale-py or for an id that is not ALE's.

    Examples:
        >>> import pytest; _ = pytest.importorskip("ale_py", reason="the atari extra")
        >>> env = make_atari_env("ALE/Pong-v5", train=False)
        >>> env.observation_space
        Box(0, 255, (4, 84, 84), uint8)
        >>> make_atari_env("ALE/Breakout-v4")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: make_atari_env needs an ALE/<Game>-v5 id, got 'ALE/Breakout-v4'
    """
    import_ale()
    if not (env_id.startswith("ALE/") and env_id.endswith("-v5")):
        raise TrainError(f"make_atari_env needs an ALE/<Game>-v5 id, got {env_id!r}")
    if env_id not in gym.registry:
        raise TrainError(f"unknown Atari game {env_id!r}; ale-py registers e.g. ALE/Breakout-v5")
    env = gym.make(
        env_id,
        frameskip=1,
        obs_type="grayscale",
        repeat_action_probability=repeat_action_probability,
        **kwargs,
    )
    env = NoopReset(PickleGameState(env), noop_max)
    env = MaxAndSkip(env, frame_skip)
    env = GameScore(env)
    if train:
        env = EpisodicLife(env)
    meanings = env.unwrapped.get_action_meanings()
    if len(meanings) >= 3 and meanings[1] == "FIRE":
        on_life_loss = not train if fire_on_life_loss is None else fire_on_life_loss
        env = FireReset(env, on_life_loss=on_life_loss)
    if train:
        env = ClipReward(env)
    env = ResizeFrame(env, screen_size)
    return StackFrames(env, stack)
