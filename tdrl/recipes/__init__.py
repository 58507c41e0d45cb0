"""Training recipes, one readable file per algorithm (CleanRL style), and their registry.

The command line (``tdrl train NAME``, ``tdrl eval``) and the tests find a
recipe only through this registry: :func:`get_recipe` returns its
:class:`~tdrl.recipes.protocol.Recipe` record, :func:`recipe_names` lists them.

How to add a recipe
-------------------
1. Write ``tdrl/recipes/NAME.py`` top to bottom like ``ppo.py``: a config
   dataclass deriving from :class:`~tdrl.recipes.config.CommonConfig` (each
   field one ``--flag``, its help in ``metadata["help"]``, a ``validate()``
   that calls ``super().validate()``); the networks; an algorithm class with
   the :class:`~tdrl.recipes.protocol.Algorithm` methods (``iterate``, ``act``,
   ``state_dict``/``load_state_dict`` with the policy weights under
   ``"model"``, ``close``, ``global_step``, ``stats``, ``loss_columns``),
   built as ``Algo(cfg, env, clock)``; a ``make_act(cfg, env, model_state,
   device)`` for ``tdrl eval``; and at the end ``RECIPE = Recipe(...)``.
2. Add ``"NAME": "tdrl.recipes.NAME"`` to ``BUILTIN`` below (or call
   :func:`register` with the record from your own package). The CLI then
   offers ``tdrl train NAME`` with every config field as a flag; nothing in
   the CLI or the run loop changes. Plumbing lives in small modules:
   :mod:`~tdrl.recipes.config` (flags, checks), :mod:`~tdrl.recipes.envs`
   (vector envs, evaluation), :mod:`~tdrl.recipes.blocks` (episode stats,
   Adam, schedules), :mod:`~tdrl.recipes.replay` (replay buffer),
   :mod:`~tdrl.recipes.nstep` (n-step returns),
   :mod:`~tdrl.recipes.runfiles` (checkpoints, metrics),
   :mod:`~tdrl.recipes.report` (progress bar, plots, GIFs),
   :mod:`~tdrl.recipes.finite` (NaN/inf checks: call ``check_finite`` once per
   batch on what the algorithm produces; the loop scans every checkpoint),
   :mod:`~tdrl.recipes.plan` (checking a run before anything is written) and
   :mod:`~tdrl.recipes.loop` (running it).

Recipes import gymnasium when used, so they are loaded on demand.

Examples:
    >>> from tdrl.recipes import get_recipe, recipe_names
    >>> recipe_names()
    ('ppo', 'dqn', 'sac')
    >>> get_recipe("ppo").name, get_recipe("ppo").action_spaces
    ('ppo', ('discrete', 'box'))
"""

from __future__ import annotations

import importlib

from tdrl.recipes.protocol import Algorithm, Recipe

# name -> module defining ``RECIPE`` (imported on first use)
BUILTIN: dict[str, str] = {
    "ppo": "tdrl.recipes.ppo",
    "dqn": "tdrl.recipes.dqn",
    "sac": "tdrl.recipes.sac",
}
_REGISTERED: dict[str, Recipe] = {}

__all__ = ["BUILTIN", "Algorithm", "Recipe", "get_recipe", "recipe_names", "register"]


def register(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the registry (``tdrl train recipe.name`` then trains it).

    Examples:
        >>> import dataclasses
        >>> ppo = get_recipe("ppo")
        >>> register(dataclasses.replace(ppo, name="ppo2")).name in recipe_names()
        True
        >>> unregister("ppo2")
        >>> register(ppo)
        Traceback (most recent call last):
        ...
        ValueError: a recipe named 'ppo' is already registered
    """
    if recipe.name in BUILTIN or recipe.name in _REGISTERED:
        raise ValueError(f"a recipe named {recipe.name!r} is already registered")
    _REGISTERED[recipe.name] = recipe
    return recipe


def unregister(name: str) -> None:
    """Remove a recipe added with :func:`register`."""
    _REGISTERED.pop(name, None)


def recipe_names() -> tuple[str, ...]:
    """Names of the available recipes, built-in first."""
    return (*BUILTIN, *_REGISTERED)


def get_recipe(name: str) -> Recipe:
    """The :class:`Recipe` registered as ``name`` (importing its module on first use).

    Examples:
        >>> get_recipe("a2c")
        Traceback (most recent call last):
        ...
        ValueError: unknown algorithm 'a2c'; choose one of: ppo, dqn, sac
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(recipe_names())}")
    return importlib.import_module(BUILTIN[name]).RECIPE
