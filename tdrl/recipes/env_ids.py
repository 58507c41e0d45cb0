"""Env ids beyond gymnasium's registry: ``module:Class``, ``module:EnvId-v0`` and Python objects.

A recipe's ``env`` is always a string, so it goes into ``config.json`` and
checkpoints unchanged. Three kinds of string are understood:

- a registered gymnasium id, ``CartPole-v1``;
- ``package.module:Name``: the module is imported first. When ``Name`` is an
  attribute of it (a ``gymnasium.Env`` subclass or a factory returning an env)
  the env is that object called with no arguments; otherwise ``Name`` must be
  an id the import registered (gymnasium's own ``module:id`` convention, what
  ``--env-module`` builds);
- ``python:Name``: an env handed over as a Python object (an instance, a
  lambda, a class from ``__main__``) by :func:`tdrl.train`. It exists in this
  process only: a resumed run or a Ray worker elsewhere needs it passed again.

Examples:
    >>> import gymnasium as gym
    >>> env_id = register_object(lambda: gym.make("CartPole-v1"), name="MyCartPole")
    >>> env_id
    'python:MyCartPole'
    >>> make_env(env_id).observation_space.shape
    (4,)
    >>> make_env("gymnasium.envs.classic_control:CartPoleEnv").action_space
    Discrete(2)
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from tdrl.recipes.config import TrainError

__all__ = ["env_id_for", "make_env", "register_object", "resolve_env_id"]

PYTHON_PREFIX = "python:"
# python:<name> -> factory, for envs handed over as Python objects (this process only)
_OBJECTS: dict[str, Callable[[], Any]] = {}


def register_object(factory: Callable[[], Any], name: str) -> str:
    """Register an env factory under ``python:<name>`` (this process only); returns the id.

    Registering the same name again replaces the factory (the latest object wins).

    Examples:
        >>> import gymnasium as gym
        >>> register_object(lambda: gym.make("Pendulum-v1"), name="P")
        'python:P'
    """
    env_id = PYTHON_PREFIX + name
    _OBJECTS[env_id] = factory
    return env_id


def _importable_name(obj: Any) -> str | None:
    """``module:qualname`` when ``obj`` can be imported by that name from another process."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname or "." in qualname:
        return None
    try:
        found = getattr(importlib.import_module(module), qualname, None)
    except ImportError:
        return None
    return f"{module}:{qualname}" if found is obj else None


def env_id_for(env: Any) -> str:
    """The ``env`` string of a config for what a user passed as ``env=``.

    A string is returned as is. A ``gymnasium.Env`` subclass or a factory
    function that another process can import becomes ``module:Name``; anything
    else (an env instance, a lambda, a class defined in ``__main__``) is
    registered in this process as ``python:<Name>`` (an instance is deep-copied
    for each env of the vector env).

    Examples:
        >>> from gymnasium.envs.classic_control import CartPoleEnv
        >>> env_id_for("CartPole-v1"), env_id_for(CartPoleEnv)
        ('CartPole-v1', 'gymnasium.envs.classic_control.cartpole:CartPoleEnv')
        >>> env_id_for(CartPoleEnv())
        'python:CartPoleEnv'
        >>> env_id_for(3)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: env must be an env id, a gymnasium.Env (class or instance) or a factory returning one, got int
    """
    import gymnasium as gym

    if isinstance(env, str):
        return env
    if isinstance(env, gym.Env):
        instance = env
        return register_object(lambda: copy.deepcopy(instance), type(env).__name__)
    if callable(env):
        name = _importable_name(env)
        if name is not None:
            return name
        label = getattr(env, "__name__", type(env).__name__)
        if label == "<lambda>":
            label = "lambda"
        return register_object(env, label)
    raise TrainError(
        "env must be an env id, a gymnasium.Env (class or instance) or a factory returning "
        f"one, got {type(env).__name__}"
    )


def resolve_env_id(env_id: str, env_module: str | None = None) -> str:
    """Prefix ``env_id`` with ``env_module`` (``--env-module``): gymnasium's ``module:id``.

    Examples:
        >>> resolve_env_id("MyEnv-v0", "my_package")
        'my_package:MyEnv-v0'
        >>> resolve_env_id("CartPole-v1")
        'CartPole-v1'
    """
    if not env_module:
        return env_id
    if ":" in env_id:
        raise TrainError(f"--env {env_id!r} already names a module; drop --env-module")
    return f"{env_module}:{env_id}"


def _split(env_id: str) -> tuple[Any, str]:
    """``(imported module, name)`` of a ``module:name`` id (raises :class:`TrainError`)."""
    module_name, _, name = env_id.partition(":")
    if not module_name or not name:
        raise TrainError(f"env {env_id!r}: expected package.module:Name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise TrainError(
            f"env {env_id!r}: cannot import module {module_name!r} ({err}); install it or "
            "put it on PYTHONPATH"
        ) from None
    return module, name


def user_factory(env_id: str) -> Callable[..., Any] | None:
    """The factory behind a ``module:Name`` or ``python:Name`` id, ``None`` for gymnasium ids.

    ``module:id`` where the import registered ``id`` with gymnasium also gives
    ``None`` (``gymnasium.make`` handles it). Raises :class:`TrainError` when
    the id cannot be resolved.

    Examples:
        >>> user_factory("CartPole-v1") is None
        True
        >>> user_factory("gymnasium.envs.classic_control:NoSuchEnv")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: env 'gymnasium.envs.classic_control:NoSuchEnv': module 'gymnasium.envs.classic_control' has no attribute 'NoSuchEnv' and registered no env id 'NoSuchEnv'
    """
    if env_id.startswith(PYTHON_PREFIX):
        if env_id not in _OBJECTS:
            raise TrainError(
                f"env {env_id!r} was passed as a Python object in another process; pass the "
                "same object again as env= (tdrl.train(..., env=..., resume=True))"
            )
        return _OBJECTS[env_id]
    if ":" not in env_id:
        return None
    import gymnasium as gym

    module, name = _split(env_id)
    obj = getattr(module, name, None)
    if obj is not None and (inspect.isclass(obj) or callable(obj)):
        return obj
    if name in gym.registry:
        return None
    raise TrainError(
        f"env {env_id!r}: module {module.__name__!r} has no attribute {name!r} and registered "
        f"no env id {name!r}"
    )


def make_env(env_id: str, **kwargs: Any) -> Any:
    """One env for ``env_id`` (any kind above); picklable as ``functools.partial(make_env, id)``.

    Examples:
        >>> make_env("CartPole-v1").spec.id
        'CartPole-v1'
    """
    import gymnasium as gym

    from tdrl.recipes.novel_envs import register_builtin_envs

    register_builtin_envs()  # tdrl's own ids (CartPoleNoVel-v1...), in every process
    factory = user_factory(env_id)
    if factory is None:
        return gym.make(env_id, **kwargs)
    env = factory(**kwargs)
    if not isinstance(env, gym.Env):
        raise TrainError(f"env {env_id!r} made a {type(env).__name__}, not a gymnasium.Env")
    return env
