"""Networks a user built, for a recipe's ``module`` option (``tdrl.train(..., module=...)``).

The ``module`` field of a config is a string, like ``env``:

- ``package.module:make_agent``: a factory another process can import, called
  as ``make_agent(observation_space, action_space)`` to build the network (the
  CLI's ``--module``); nothing else is stored;
- ``python:<ClassName>``: a module object handed to :func:`tdrl.train` (a pair
  ``(actor, critic)`` of TensorDict modules becomes an ``ActorCriticWrapper``). A copy
  of it (as given, before training) is pickled into every checkpoint under
  ``"user_module"``, so ``--resume``, ``tdrl eval``, ``tdrl export`` and
  :func:`tdrl.load` rebuild it from the run directory. Checkpoints are pickles:
  only load run directories you wrote.

The trained weights always come from the checkpoint's ``model`` state dict.

Examples:
    >>> import torch
    >>> module_id = module_id_for(torch.nn.Linear(2, 2))
    >>> module_id
    'python:Linear'
    >>> type(build_user_module(module_id, None, None)).__name__
    'Linear'
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from tdrl.recipes.config import TrainError
from tdrl.recipes.env_ids import PYTHON_PREFIX, _importable_name, _split

__all__ = [
    "build_user_module", "checkpoint_entry", "module_id_for", "pair_to_module",
    "restore_from_checkpoint",
]

# python:<name> -> the module as the user gave it (copied before each build)
_TEMPLATES: dict[str, nn.Module] = {}


def module_id_for(module: Any) -> str:
    """The config's ``module`` string for what a user passed as ``module=``.

    Examples:
        >>> module_id_for("my_package.nets:make_agent")
        'my_package.nets:make_agent'
        >>> module_id_for(3)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: module= must be a torch module or an importable factory (observation_space, action_space) -> module, got int
    """
    if isinstance(module, str):
        return module
    module = pair_to_module(module)
    if isinstance(module, nn.Module):
        module_id = PYTHON_PREFIX + type(module).__name__
        _TEMPLATES[module_id] = copy.deepcopy(module)
        return module_id
    if callable(module) and not inspect.isclass(module):
        name = _importable_name(module)
        if name is not None:
            return name
        raise TrainError(
            "module=: a factory must be importable from a module (not a lambda, a nested "
            "function or a function of __main__); or pass the built module itself"
        )
    raise TrainError(
        "module= must be a torch module or an importable factory (observation_space, "
        f"action_space) -> module, got {type(module).__name__}"
    )


def pair_to_module(obj: Any) -> Any:
    """An ``(actor, critic)`` pair of modules as an ``ActorCriticWrapper``; anything else as is.

    Examples:
        >>> from tdrl.modules import SafeModule, ValueOperator
        >>> actor = SafeModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["action"])
        >>> type(pair_to_module((actor, ValueOperator(nn.Linear(3, 1), ["observation"])))).__name__
        'ActorCriticWrapper'
    """
    if isinstance(obj, tuple | list) and len(obj) == 2 and all(
            isinstance(m, nn.Module) for m in obj):
        from tdrl.modules import ActorCriticWrapper

        try:
            return ActorCriticWrapper(*obj)
        except TypeError as err:
            raise TrainError(f"module=: the (actor, critic) pair: {err}") from None
    return obj


def build_user_module(module_id: str, observation_space: Any, action_space: Any) -> nn.Module:
    """A fresh copy of the user's network for ``module_id`` (raises :class:`TrainError`).

    Examples:
        >>> build_user_module("python:Nothing", None, None)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: module 'python:Nothing' was passed as a Python object in another process and this run directory has no copy of it; pass module= again
    """
    if module_id.startswith(PYTHON_PREFIX):
        if module_id not in _TEMPLATES:
            raise TrainError(
                f"module {module_id!r} was passed as a Python object in another process and this "
                "run directory has no copy of it; pass module= again"
            )
        return copy.deepcopy(_TEMPLATES[module_id])
    module, name = _split(module_id)
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        raise TrainError(f"--module {module_id!r}: {module.__name__!r} has no factory {name!r}")
    built = pair_to_module(factory(observation_space, action_space))
    if not isinstance(built, nn.Module):
        raise TrainError(
            f"--module {module_id!r} returned a {type(built).__name__}, not a torch module"
        )
    return built


def checkpoint_entry(module_id: str) -> nn.Module | None:
    """What a checkpoint keeps of the user's network: the template of a ``python:`` module."""
    return _TEMPLATES.get(module_id) if module_id.startswith(PYTHON_PREFIX) else None


def restore_from_checkpoint(module_id: str, state: Mapping[str, Any]) -> None:
    """Register the ``python:`` module a checkpoint carries (resume, eval, export, load)."""
    template = state.get("user_module")
    if module_id.startswith(PYTHON_PREFIX) and template is not None:
        _TEMPLATES[module_id] = template
