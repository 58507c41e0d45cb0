"""Exploration types, shared with tensordict's interaction type.

``ExplorationType`` *is* :class:`tensordict.nn.InteractionType`, and the
context manager and getter are tensordict's, so ``set_exploration_type`` and
``tensordict.nn.set_interaction_type`` flip one and the same switch.

Examples:
    >>> from tdrl.envs.utils import ExplorationType, exploration_type, set_exploration_type
    >>> from tensordict.nn.probabilistic import interaction_type, set_interaction_type
    >>> print(exploration_type())
    None
    >>> with set_exploration_type(ExplorationType.RANDOM):
    ...     print(exploration_type() is ExplorationType.RANDOM, interaction_type())
    True random
    >>> with set_interaction_type("mode"):
    ...     print(exploration_type() is ExplorationType.MODE)
    True
    >>> @set_exploration_type(ExplorationType.DETERMINISTIC)
    ... def act():
    ...     return exploration_type()
    >>> act() is ExplorationType.DETERMINISTIC
    True
"""
from __future__ import annotations

from typing import Any

from tensordict.nn.probabilistic import InteractionType as ExplorationType
from tensordict.nn.probabilistic import interaction_type as exploration_type
from tensordict.nn.probabilistic import set_interaction_type as set_exploration_type

__all__ = ["ExplorationType", "exploration_type", "set_exploration_type"]


def __getattr__(name: str) -> Any:
    """``RandomPolicy`` at TorchRL's ``envs.utils`` path (it lives in tdrl.modules; lazy, so
    that importing this module never pulls the modules in).

    Examples:
        >>> from tdrl.envs.utils import RandomPolicy
        >>> from tdrl.modules import RandomPolicy as FromModules
        >>> RandomPolicy is FromModules
        True
    """
    if name == "RandomPolicy":
        from tdrl.modules.tensordict_module.random_policy import RandomPolicy

        return RandomPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
