"""Training recipes, one readable file per algorithm (CleanRL style).

Each recipe module exposes ``Config`` (a dataclass, one CLI flag per field),
``ENV_DEFAULTS``/``env_defaults``, ``validate``, ``ACTION_SPACES``,
``Algorithm`` (driven by :func:`tdrl.recipes.common.run_training`) and
``make_act`` (deterministic policy from saved weights). Recipes import
gymnasium, so they are loaded on demand.

Examples:
    >>> from tdrl.recipes import ALGOS, get_recipe
    >>> ALGOS
    ('ppo', 'dqn', 'sac')
    >>> get_recipe("ppo").NAME
    'ppo'
"""

from __future__ import annotations

import importlib
from types import ModuleType

ALGOS = ("ppo", "dqn", "sac")

__all__ = ["ALGOS", "get_recipe"]


def get_recipe(name: str) -> ModuleType:
    """Import and return the recipe module for algorithm ``name``.

    Examples:
        >>> get_recipe("a2c")
        Traceback (most recent call last):
        ...
        ValueError: unknown algorithm 'a2c'; choose one of: ppo, dqn, sac
    """
    if name not in ALGOS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGOS)}")
    return importlib.import_module(f"tdrl.recipes.{name}")
