"""Environments for the recipes: id checks, probing, vector envs, deterministic evaluation.

gymnasium is imported inside the functions, so importing this module stays cheap.

Examples:
    >>> env = probe_env("CartPole-v1")
    >>> env.observation_space.shape, action_kind(env.action_space), env.reward_threshold
    ((4,), 'discrete', 475.0)
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from tdrl.recipes.config import NonFiniteError, TrainError
from tdrl.recipes.env_ids import make_env, user_factory

__all__ = [
    "EVAL_SEED_OFFSET",
    "MAX_PARAMETERS",
    "ActFn",
    "EnvInfo",
    "action_kind",
    "check_action_space",
    "check_env_id",
    "check_env_reset",
    "check_env_step",
    "check_network_size",
    "check_policy_action",
    "env_factory",
    "evaluate",
    "final_observations",
    "is_discrete",
    "make_vec_env",
    "probe_env",
]

# The largest networks check_network_size lets a run build (parameters over all its MLPs).
MAX_PARAMETERS = 10**9

# The final evaluation (and ``tdrl eval``) resets env i with ``seed + EVAL_SEED_OFFSET + i``.
EVAL_SEED_OFFSET = 1_000_003

# A deterministic policy: a batch of observations (numpy) -> a batch of env actions.
ActFn = Callable[[np.ndarray], np.ndarray]


class EnvInfo(NamedTuple):
    """What a recipe needs to know about its env before building networks."""

    observation_space: Any
    action_space: Any
    reward_threshold: float | None


def check_env_id(env_id: str) -> None:
    """Raise :class:`TrainError` with close matches when ``env_id`` is not registered.

    Examples:
        >>> check_env_id("CartPole-v1")
        >>> check_env_id("CartPol-v1")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: unknown environment id 'CartPol-v1'; close matches: CartPole-v1, ...
    """
    import gymnasium as gym

    from tdrl.recipes.novel_envs import register_builtin_envs

    register_builtin_envs()
    if not isinstance(env_id, str) or not env_id.strip():
        raise TrainError(f"--env must be a non-empty environment id, got {env_id!r}")
    if ":" in env_id:  # module:Name or python:Name (raises when it cannot be resolved)
        if user_factory(env_id) is not None:
            return
        env_id = env_id.partition(":")[2]  # an id the module's import registered
    if env_id in gym.registry:
        return
    ids = sorted(gym.registry)
    lowered = {i.lower(): i for i in ids}
    matches = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.6)
    for m in difflib.get_close_matches(env_id.lower(), list(lowered), n=5, cutoff=0.6):
        if lowered[m] not in matches:
            matches.append(lowered[m])
    hint = (
        f"close matches: {', '.join(matches[:5])}"
        if matches
        else "list the ids with: python -c 'import gymnasium; gymnasium.pprint_registry()'"
    )
    raise TrainError(f"unknown environment id {env_id!r}; {hint}")


def env_factory(env_id: str, train: bool = True, **kwargs: Any) -> Callable[[], Any]:
    """A picklable no-argument factory of one env for ``env_id``.

    ``ALE/...`` and ``MinAtar/...`` ids go to
    :func:`~tdrl.recipes.pixels.make_pixel_env` (``train=False``: the evaluation
    variant, whole games with the game's own rewards); every other id to
    :func:`~tdrl.recipes.env_ids.make_env` (``train`` does not matter there).

    Examples:
        >>> env_factory("CartPole-v1")().spec.id
        'CartPole-v1'
        >>> env_factory("ALE/Breakout-v5", train=False).keywords
        {'train': False}
    """
    from tdrl.recipes.pixels import make_pixel_env, pixel_family

    if pixel_family(env_id) is not None:
        return functools.partial(make_pixel_env, env_id, train=train, **kwargs)
    return functools.partial(make_env, env_id, **kwargs)


def _supported_obs(space: Any) -> bool:
    """A flat ``Box`` (vector) or a 3-D ``uint8`` ``Box`` (image frames)."""
    import gymnasium as gym

    if not isinstance(space, gym.spaces.Box):
        return False
    return len(space.shape) == 1 or (len(space.shape) == 3 and space.dtype == np.uint8)


def probe_env(env_id: str) -> EnvInfo:
    """Make one env to read its spaces and reward threshold (raises :class:`TrainError`).

    Examples:
        >>> obs_space, act_space, threshold = probe_env("CartPole-v1")
        >>> obs_space.shape, act_space.n, threshold
        ((4,), np.int64(2), 475.0)
        >>> import pytest; _ = pytest.importorskip("minatar", reason="the minatar extra")
        >>> probe_env("MinAtar/Breakout-v1").observation_space
        Box(0, 1, (4, 10, 10), uint8)
    """
    from tdrl.recipes.pixels import pixel_family

    if pixel_family(env_id) is None:  # pixel ids are checked by their own factories
        check_env_id(env_id)
    try:
        env = env_factory(env_id)()
    except TrainError:
        raise
    except Exception as err:  # missing extras (box2d, mujoco...) and the like
        raise TrainError(f"cannot create environment {env_id!r}: {err}") from None
    try:
        obs_space, act_space, spec = env.observation_space, env.action_space, env.spec
    finally:
        env.close()
    if not _supported_obs(obs_space):
        raise TrainError(
            f"{env_id} has observation space {obs_space}; the recipes need a flat Box "
            "observation (vector of floats) or uint8 image frames (a 3-D Box: C,H,W or H,W,C)"
        )
    return EnvInfo(obs_space, act_space, getattr(spec, "reward_threshold", None))


def is_discrete(space: Any) -> bool:
    """True for a gymnasium ``Discrete`` space.

    Examples:
        >>> import gymnasium as gym
        >>> is_discrete(gym.spaces.Discrete(3)), is_discrete(gym.spaces.Box(-1, 1, (2,)))
        (True, False)
    """
    import gymnasium as gym

    return isinstance(space, gym.spaces.Discrete)


def action_kind(space: Any) -> str | None:
    """``"discrete"`` (``Discrete``), ``"box"`` (1-D ``Box``) or ``None`` (anything else).

    Examples:
        >>> import gymnasium as gym
        >>> action_kind(gym.spaces.Box(-1, 1, (2,))), action_kind(gym.spaces.Box(-1, 1, (2, 2)))
        ('box', None)
    """
    import gymnasium as gym

    if is_discrete(space):
        return "discrete"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "box"
    return None


def check_action_space(
    env_id: str, space: Any, algo: str, allowed: Sequence[str], alternatives: Sequence[str] = ()
) -> None:
    """Check that ``algo`` (which supports the kinds ``allowed``) can act in ``space``.

    ``alternatives`` names the recipes that do support the space (for the hint).

    Examples:
        >>> import gymnasium as gym
        >>> check_action_space("Pendulum-v1", gym.spaces.Box(-2, 2, (1,)), "dqn", ["discrete"],
        ...                    ["ppo"])
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: dqn needs a discrete action space, but Pendulum-v1 has ...
    """
    kind = action_kind(space)
    if kind == "discrete" and space.start != 0:
        raise TrainError(f"{env_id} has a Discrete action space starting at {space.start}; only 0")
    if kind is not None and kind in allowed:
        if kind == "box":
            _check_box_bounds(env_id, space)
        return
    names = {"discrete": "Discrete", "box": "1-D Box"}
    if kind is None or len(allowed) > 1:
        raise TrainError(
            f"{algo} supports {' and '.join(names[k] for k in allowed)} action spaces, "
            f"but {env_id} has {space}"
        )
    described = {"box": "continuous", "discrete": "discrete"}
    wanted = {"box": "continuous (1-D Box)", "discrete": "discrete"}[allowed[0]]
    hint = "".join(f"; use `tdrl train {a} --env {env_id}` instead" for a in alternatives[:1])
    raise TrainError(
        f"{algo} needs a {wanted} action space, but {env_id} has {space} ({described[kind]}){hint}"
    )


def _check_box_bounds(env_id: str, space: Any) -> None:
    """A continuous action space the policy can squash into: finite, ``low < high``, and a
    width and centre that float32 can hold (``+-3e38`` overflows to inf)."""
    low = np.asarray(space.low, dtype=np.float64).reshape(-1)
    high = np.asarray(space.high, dtype=np.float64).reshape(-1)
    if low.size == 0:
        raise TrainError(f"{env_id} has an empty Box action space {space}; need >= 1 dimension")
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise TrainError(
            f"{env_id} has an unbounded Box action space {space}; need finite bounds"
        )
    bad = np.flatnonzero(~(low < high))
    if bad.size:
        i = int(bad[0])
        raise TrainError(
            f"{env_id} has a degenerate Box action space {space}: low must be < high in every "
            f"dimension, got low={low[i]:g} >= high={high[i]:g} at index {i}"
        )
    limit = float(np.finfo(np.float32).max)
    if not (np.abs(high - low) <= limit).all() or not (np.abs(high + low) <= limit).all():
        raise TrainError(
            f"{env_id} has a Box action space {space} whose width (high - low) overflows "
            f"float32 (max {limit:.3g}); rescale the actions (e.g. a RescaleAction wrapper)"
        )


def check_network_size(cfg: Any, obs_space: Any, action_space: Any) -> None:
    """Refuse ``--hidden`` / ``--head-hidden`` sizes whose networks cannot be trained here.

    Estimates the parameters of the largest network stack a recipe builds (three
    MLPs from the observation through the hidden layers to the actions, as SAC's
    actor and twin critics) and the memory to train them (weights, gradients,
    Adam's two moments and a target copy: 20 bytes per float32 parameter);
    raises :class:`TrainError` above :data:`MAX_PARAMETERS` or the machine's memory.

    Examples:
        >>> import gymnasium as gym
        >>> from types import SimpleNamespace
        >>> spaces = gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2)
        >>> check_network_size(SimpleNamespace(hidden=(64, 64)), *spaces)
        >>> check_network_size(SimpleNamespace(hidden=(10**6, 10**6)), *spaces)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --hidden 1000000,1000000 makes networks of about 3e+12 parameters ...
    """
    hidden = tuple(getattr(cfg, "hidden", ())) + tuple(getattr(cfg, "head_hidden", ()))
    obs_dim = int(np.prod(obs_space.shape))
    out = int(action_space.n) if is_discrete(action_space) else 2 * int(np.prod(action_space.shape))
    sizes = [obs_dim + (0 if is_discrete(action_space) else out), *hidden, out]
    params = 3 * sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    need = 20 * params
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not POSIX
        memory = None
    if params > MAX_PARAMETERS or (memory and need > memory):
        flags = ", ".join(
            f"--{k.replace('_', '-')} {','.join(map(str, v))}"
            for k in ("hidden", "head_hidden") if (v := getattr(cfg, k, ()))
        )
        room = f" and this machine has {memory / 2**30:.0f} GiB of memory" if memory else ""
        raise TrainError(
            f"{flags} makes networks of about {params:.0e} parameters (about "
            f"{need / 2**30:,.0f} GiB to train); the limit is {MAX_PARAMETERS:.0e} parameters"
            f"{room}"
        )


def make_vec_env(
    env_id: str, num_envs: int, train: bool = True, *, vec: str = "sync", **make_kwargs: Any
) -> Any:
    """A gymnasium ``SyncVectorEnv`` in same-step autoreset mode.

    ``train=False`` makes the evaluation variant of pixel envs (:func:`env_factory`).
    ``vec="envpool"`` (``--vec envpool``, Atari training envs only): an
    :class:`~tdrl.recipes.envpool_vec.EnvPoolVecEnv` with the same interface.

    When a sub-env ends, ``step`` returns the first observation of the next
    episode and puts the last one in ``info["final_obs"]`` (masked by
    ``info["_final_obs"]``), which the recipes use to bootstrap truncated
    episodes. The env factories are ``functools.partial`` objects, so the whole
    vector env pickles (checkpoints store it to resume exactly).

    Examples:
        >>> envs = make_vec_env("CartPole-v1", 3)
        >>> obs, _ = envs.reset(seed=0)
        >>> obs.shape, envs.single_action_space
        ((3, 4), Discrete(2))
        >>> envs.close()
    """
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    if vec != "sync":
        from tdrl.recipes.envpool_vec import EnvPoolVecEnv, check_vec

        check_vec(SimpleNamespace(vec=vec, env=env_id))
        if not train:
            raise TrainError("--vec envpool makes training envs only; evaluation plays "
                             "gymnasium envs (vec='sync')")
        return EnvPoolVecEnv(env_id, num_envs, **make_kwargs)
    fns = [env_factory(env_id, train, **make_kwargs) for _ in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def final_observations(info: dict, done: np.ndarray) -> np.ndarray:
    """Stack ``info["final_obs"]`` for the envs flagged in ``done`` (same-step autoreset).

    Examples:
        >>> info = {"final_obs": np.array([None, np.ones(2)], dtype=object)}
        >>> final_observations(info, np.array([False, True]))
        array([[1., 1.]])
    """
    return np.stack([info["final_obs"][i] for i in np.flatnonzero(done)])


def check_env_step(
    obs: np.ndarray, reward: np.ndarray, step: int, final_obs: np.ndarray | None = None
) -> None:
    """Raise :class:`~tdrl.recipes.config.NonFiniteError` if the env returned NaN or inf.

    ``final_obs``: the last observations of the episodes that ended at this step
    (same-step autoreset puts them in ``info``; ``obs`` then holds the next
    episodes' reset observations). The recipes call it on every vector step
    (one ``isfinite`` reduction per array).

    Examples:
        >>> check_env_step(np.zeros((2, 3)), np.ones(2), step=2)
        >>> check_env_step(np.zeros((2, 3)), np.array([1.0, np.inf]), step=2)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.NonFiniteError: non-finite reward from the env at step 2
        >>> check_env_step(np.zeros((2, 3)), np.ones(2), 2, final_obs=np.full((1, 3), np.nan))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.NonFiniteError: non-finite final observation of an ended episode from the env at step 2
    """
    if obs.dtype.kind == "f" and not np.isfinite(obs).all():  # integer frames are finite
        raise NonFiniteError("observation from the env", step)
    if not np.isfinite(reward).all():
        raise NonFiniteError("reward from the env", step)
    if final_obs is not None and final_obs.dtype.kind == "f" and not np.isfinite(final_obs).all():
        raise NonFiniteError("final observation of an ended episode from the env", step)


def check_env_reset(obs: np.ndarray, step: int = 0) -> None:
    """Raise :class:`~tdrl.recipes.config.NonFiniteError` if ``reset()`` returned NaN or inf.

    Examples:
        >>> check_env_reset(np.array([[0.0, np.nan]]))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.NonFiniteError: non-finite reset observation from the env at step 0
    """
    if obs.dtype.kind == "f" and not np.isfinite(obs).all():
        raise NonFiniteError("reset observation from the env", step)


def check_policy_action(action: np.ndarray) -> None:
    """Raise a ``ValueError`` if the policy produced a NaN/inf action (before the env sees it).

    The run loop names the cause (:func:`tdrl.recipes.finite.diagnose`): the
    weights if they hold a NaN/inf, else the policy's outputs.

    Examples:
        >>> check_policy_action(np.array([[0.5]], dtype=np.float32))
        >>> check_policy_action(np.array([[np.nan]], dtype=np.float32))
        Traceback (most recent call last):
        ...
        ValueError: the policy's actions hold a non-finite value (nan)
    """
    if action.dtype.kind == "f" and not np.isfinite(action).all():
        bad = action[~np.isfinite(action)].reshape(-1)[0]
        raise ValueError(f"the policy's actions hold a non-finite value ({bad})")


def evaluate(act: ActFn, env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Returns of ``episodes`` episodes (one per sub-env, env ``i`` reset with ``seed + i``).

    ``act`` maps a batch of observations to a batch of env actions; the
    recipes pass their deterministic policy. A stateful ``act`` (a recurrent
    policy, :class:`~tdrl.recipes.memory.PolicyAct`) has ``reset(done)``: it is
    called with ``None`` before the first step and with the ended envs after each.
    Pixel envs play their evaluation variant (whole games, the game's own score).

    Examples:
        >>> rets = evaluate(lambda obs: np.zeros(len(obs), dtype=np.int64), "CartPole-v1", 3, 0)
        >>> rets.shape, bool((rets > 0).all())
        ((3,), True)
    """
    envs = make_vec_env(env_id, episodes, train=False)
    # a policy with memory (recurrent) starts fresh and forgets the episodes that end
    reset = getattr(act, "reset", lambda done=None: None)
    try:
        obs, _ = envs.reset(seed=seed)
        reset(None)
        returns = np.zeros(episodes, dtype=np.float64)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            obs, reward, terminated, truncated, _ = envs.step(act(obs))
            reset(terminated | truncated)
            returns[running] += reward[running]
            running &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()
