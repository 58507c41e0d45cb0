"""``--vec envpool``: Atari training envs stepped by envpool, behind the recipes' vector-env API.

:class:`EnvPoolVecEnv` runs ``ALE/<Game>-v5`` games in envpool's C++ thread
pool, configured as :func:`~tdrl.recipes.atari.make_atari_env`'s training
variant (30 no-ops, 4 frames per action with a max over the last two, 84x84
grayscale, FIRE on reset, a lost life ends the episode, rewards clipped to
their sign, 4 stacked frames, sticky actions 0.25), and presents what the
recipes read from gymnasium's same-step vector env:

- ``step`` returns the next episode's first observation where an episode
  ended, the last one in ``info["final_obs"]`` (mask ``info["_final_obs"]``);
  envpool itself resets an ended env on the *next* call, so the wrapper sends
  that call (for the ended envs only) within the same ``step``;
- ``info["final_info"]["episode_score"]`` / ``["episode_steps"]`` (masks
  ``"_episode_score"`` / ``"_episode_steps"``): the unclipped score and the
  length in agent steps of a game, on the step where the whole game ends;
- ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i`` (envpool takes seeds
  only when it is built, so a new seed rebuilds the pool; it takes int32
  seeds: ``s`` is taken modulo ``2**31 - 1 - num_envs``).

envpool cannot save its emulators, so a pickled :class:`EnvPoolVecEnv` (a
checkpoint) keeps only its settings: unpickled, it starts new games (seeded
from the run's seed and the step count) the first time :func:`restart_obs`
is called, and the recipes continue from those. Evaluation, ``tdrl eval`` and
``--render-gif`` keep playing tdrl's gymnasium envs. envpool is imported only
when a pool is built; without it, :class:`~tdrl.recipes.config.TrainError`
names the install command.

Examples:
    >>> import pytest; _ = pytest.importorskip("envpool", reason="the envpool extra")
    >>> envs = EnvPoolVecEnv("ALE/Breakout-v5", 2)
    >>> obs, _ = envs.reset(seed=0)
    >>> obs.shape, obs.dtype, envs.single_action_space
    ((2, 4, 84, 84), dtype('uint8'), Discrete(4))
    >>> envs.close()
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np

from tdrl.recipes.config import TrainError

__all__ = [
    "ENVPOOL_INSTALL",
    "VEC_CHOICES",
    "EnvPoolVecEnv",
    "check_vec",
    "envpool_task",
    "restart_obs",
]

ENVPOOL_INSTALL = "pip install -e '.[envpool]' (or: pip install envpool)"

# --vec: gymnasium's SyncVectorEnv (every env id) or envpool (Atari ids)
VEC_CHOICES = ("sync", "envpool")

# envpool's Atari options for tdrl's training preprocessing (tdrl.recipes.atari)
ATARI_TRAIN_OPTIONS: dict[str, Any] = {
    "noop_max": 30,
    "frame_skip": 4,
    "img_height": 84,
    "img_width": 84,
    "gray_scale": True,
    "stack_num": 4,
    "use_fire_reset": True,
    "episodic_life": True,
    "reward_clip": True,
    "repeat_action_probability": 0.25,
    "max_episode_steps": 27_000,  # = ALE v5's 108,000 frames at 4 frames per step
    "use_inter_area_resize": True,
}


def envpool_task(env_id: str) -> str:
    """envpool's task id for an ``ALE/<Game>-v5`` id; :class:`TrainError` for any other id.

    Examples:
        >>> envpool_task("ALE/Breakout-v5")
        'Breakout-v5'
        >>> envpool_task("MinAtar/Breakout-v1")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --vec envpool runs Atari games (ALE/<Game>-v5) only, got 'MinAtar/Breakout-v1'; valid --vec choices for it: sync
    """
    if not (env_id.startswith("ALE/") and env_id.endswith("-v5")):
        raise TrainError(
            f"--vec envpool runs Atari games (ALE/<Game>-v5) only, got {env_id!r}; "
            "valid --vec choices for it: sync"
        )
    return env_id[len("ALE/"):]


def import_envpool() -> Any:
    """Import ``envpool`` or raise :class:`TrainError` naming the install command."""
    try:
        import envpool
    except ImportError:
        raise TrainError(f"--vec envpool needs the envpool extra: {ENVPOOL_INSTALL}") from None
    return envpool


def check_vec(cfg: Any) -> None:
    """Check ``cfg.vec`` against the env id, ``--workers`` and the installed packages.

    Raises :class:`TrainError` before anything is written; ``--vec sync`` always passes.

    Examples:
        >>> from types import SimpleNamespace
        >>> check_vec(SimpleNamespace(vec="sync", env="CartPole-v1"))
        >>> check_vec(SimpleNamespace(vec="gpu", env="CartPole-v1"))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: invalid --vec 'gpu'; valid choices: sync, envpool
        >>> check_vec(SimpleNamespace(vec="envpool", env="ALE/Breakout-v5", workers=2))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --vec envpool does not run with --workers ...
    """
    vec = getattr(cfg, "vec", "sync")
    if vec not in VEC_CHOICES:
        raise TrainError(f"invalid --vec {vec!r}; valid choices: {', '.join(VEC_CHOICES)}")
    if vec == "sync":
        return
    task = envpool_task(cfg.env)
    if getattr(cfg, "workers", 0):
        raise TrainError(
            "--vec envpool does not run with --workers (envpool already steps its envs on "
            "threads of this process); use --num-envs N, or --vec sync with --workers"
        )
    if importlib.util.find_spec("envpool") is None:
        raise TrainError(f"--vec envpool needs the envpool extra: {ENVPOOL_INSTALL}")
    known = import_envpool().list_all_envs()
    if task not in known:
        games = sorted(t for t in known if t.endswith("-v5"))
        raise TrainError(f"envpool has no Atari game {task!r} (for {cfg.env}); it has e.g. "
                         f"{', '.join(games[:5])}")


def restart_obs(envs: Any) -> np.ndarray | None:
    """First observations of new games if ``envs`` was unpickled from a checkpoint (envpool).

    Returns ``None`` for any other vector env (gymnasium's pickles its games
    exactly). The recipes call it when they resume and continue from these
    observations; it warns that the games in progress were dropped.

    Examples:
        >>> restart_obs(object()) is None
        True
    """
    if not getattr(envs, "restored", False):
        return None
    return envs.restart()


class EnvPoolVecEnv:
    """``num_envs`` Atari games in envpool, with gymnasium's same-step autoreset (see module).

    ``options`` override :data:`ATARI_TRAIN_OPTIONS` (envpool's keyword names).
    """

    def __init__(self, env_id: str, num_envs: int, **options: Any) -> None:
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        self.env_id, self.task = env_id, envpool_task(env_id)
        self.num_envs = int(num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.options = {**ATARI_TRAIN_OPTIONS, **options}
        spec = import_envpool().make_spec(self.task, **self.options)
        self.single_observation_space = spec.observation_space
        self.single_action_space = spec.action_space
        self.observation_space = gym.vector.utils.batch_space(spec.observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(spec.action_space, num_envs)
        self.seed: int | None = None
        self.steps = 0  # vector steps since the pool was built
        self.restored = False
        self._pool: Any = None
        self._score = np.zeros(self.num_envs, dtype=np.float64)

    def _build(self, seed: int) -> None:
        self.close()
        # envpool takes int32 seeds (env i plays seed + i); tdrl's run seeds go up to 2**32 - 1
        self._pool = import_envpool().make(
            self.task, env_type="gymnasium", num_envs=self.num_envs, batch_size=self.num_envs,
            seed=int(seed) % (2**31 - 1 - self.num_envs), **self.options,
        )
        self.seed, self.steps, self.restored = int(seed), 0, False
        self._score[:] = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start new games in every env; ``seed``: env ``i`` plays from ``seed + i``."""
        if options:
            raise ValueError(f"EnvPoolVecEnv.reset takes no options, got {sorted(options)}")
        if seed is not None or self._pool is None:
            self._build(0 if seed is None else seed)
        else:  # envpool restarts the games of an explicit reset
            self._score[:] = 0.0
        obs, info = self._pool.reset()
        return obs, self._info(info)

    def restart(self) -> np.ndarray:
        """After unpickling: new games from a seed of the run's seed and step count."""
        seed = int(np.random.SeedSequence([self.seed or 0, self.steps]).generate_state(1)[0])
        warnings.warn(
            f"--vec envpool: envpool cannot save its emulators, so the resumed run plays new "
            f"games (the {self.num_envs} games in progress at the checkpoint were dropped)",
            RuntimeWarning, stacklevel=2,
        )
        obs, _ = self.reset(seed=seed)
        return obs

    @staticmethod
    def _info(info: dict) -> dict:
        return {k: v for k, v in info.items() if k in ("lives", "elapsed_step")}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One step of every env; ended envs start their next episode in this same step."""
        if self._pool is None:
            raise RuntimeError("EnvPoolVecEnv: call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(
                f"EnvPoolVecEnv.step: expected {self.num_envs} actions, got shape {actions.shape}"
            )
        obs, reward, terminated, truncated, raw = self._pool.step(actions)
        self.steps += 1
        self._score += raw["reward"]  # the game's unclipped rewards
        info = self._info(raw)
        done = terminated | truncated
        if done.any():
            ended = np.flatnonzero(done).astype(np.int32)
            game_over = done & ((raw["terminated"] > 0) | truncated)
            info["final_obs"] = np.array([None] * self.num_envs, dtype=object)
            for i in ended:
                info["final_obs"][i] = obs[i]
            info["_final_obs"] = done.copy()
            info["final_info"] = {
                "episode_score": np.where(game_over, self._score, 0.0),
                "_episode_score": game_over,
                "episode_steps": np.where(game_over, raw["elapsed_step"], 0).astype(np.int64),
                "_episode_steps": game_over,
            }
            # envpool resets an ended env on its next call (the action is ignored): make it now
            self._pool.send(np.zeros(len(ended), dtype=np.int32), ended)
            first, _, _, _, first_info = self._pool.recv()
            order = np.asarray(first_info["env_id"])
            obs = obs.copy()
            obs[order] = first
            for key in info:  # as gymnasium's: an ended env's info is its reset's
                if key in first_info:
                    info[key][order] = first_info[key]
            self._score[game_over] = 0.0
            self._score[order] += first_info["reward"]
        return obs, reward, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        """Close the pool (a closed env can be reset again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "_pool"}
        state["_pool"] = None  # envpool's emulators cannot be pickled
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.restored = True  # restart_obs() builds the pool with new games
