"""Shared parts of the actor-critic operators: key checks, detached inputs, parameter groups.

The operators themselves live in :mod:`tdrl.modules.tensordict_module.actor_critic`.

Examples:
    >>> _leaf(("agent", "hidden"))
    'hidden'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.modules.tensordict_module.core import Step, produced
from tdrl.modules.tensordict_module.probabilistic import SafeProbabilisticTensorDictSequential
from tdrl.modules.tensordict_module.sequence import SafeSequential


# --- key helpers ------------------------------------------------------------------------
def _leaf(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]


def _check_td_module(module: Any, name: str, owner: str) -> None:
    if not isinstance(module, nn.Module) or not TensorDictModuleBase.is_tdmodule_compatible(
        module
    ):
        raise TypeError(
            f"{owner}: {name} must be a TensorDict module with in_keys and out_keys (e.g. a "
            f"SafeModule, a ProbabilisticActor or a ValueOperator), got {type(module).__name__}"
        )


def _check_connects(owner: str, role: str, head: Any, producer: str, written: list) -> None:
    """Raises when ``head`` reads nothing that ``written`` provides, naming the keys."""
    reads = list(head.in_keys)
    if any(produced(k, written) for k in reads):
        return
    missing = [k for k in reads if not produced(k, written)]
    raise ValueError(
        f"{owner}: the {role} reads {missing} but the {producer} does not write "
        f"{'it' if len(missing) == 1 else 'them'} (it writes {list(written)}); the {role} must "
        f"read what the {producer} writes"
    )


# --- steps ------------------------------------------------------------------------------
class _DetachedInputs:
    """A step that runs ``step`` on detached copies of ``keys``, then puts the originals back.

    The head sees values cut from the autograd graph, so its loss does not reach
    the modules that wrote ``keys``; the TensorDict keeps the original entries.
    """

    __slots__ = ("step", "keys")

    def __init__(self, step: Step, keys: Sequence[NestedKey]) -> None:
        self.step = step
        self.keys = tuple(keys)

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        saved = []
        for key in self.keys:
            value = td.get(key, None)
            if value is not None:
                saved.append((key, value))
                td.set(key, value.detach())
        td = self.step(td)
        for key, value in saved:
            td.set(key, value)
        return td

    def __repr__(self) -> str:
        return f"DetachedInputs({self.step!r}, keys={list(self.keys)})"


def _standalone(*modules: nn.Module) -> SafeSequential:
    """A ``SafeSequential`` of ``modules`` (the same objects, so the same parameters).

    When the last module is probabilistic (it has ``get_dist``), the result is a
    ``SafeProbabilisticTensorDictSequential`` whose last module is the one that
    builds the distribution, so ``get_dist``, ``log_prob`` and the exploration
    type work on it as on the head alone.
    """
    *first, last = modules
    if hasattr(last, "get_dist"):
        inner = getattr(last, "module", None)
        if isinstance(inner, nn.ModuleList) and len(inner) and hasattr(inner[-1], "get_dist"):
            return SafeProbabilisticTensorDictSequential(*first, *inner)
        return SafeProbabilisticTensorDictSequential(*modules)
    return SafeSequential(*modules)


# --- shared behaviour -------------------------------------------------------------------
def _unique(modules: Iterable[nn.Module | None], seen: set[int]) -> Iterator[nn.Parameter]:
    for m in modules:
        if m is None:
            continue
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                yield p


class _OperatorMixin:
    """Parameter groups and fixed layout shared by the three operators."""

    module: nn.ModuleList
    _getters: dict[str, SafeSequential]

    def _parts(self) -> tuple[nn.Module | None, nn.Module, nn.Module]:
        raise NotImplementedError

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        """The common operator's parameters (none for ``ActorCriticWrapper``)."""
        trunk, _, _ = self._parts()
        return _unique([trunk], set())

    def policy_parameters(self) -> Iterator[nn.Parameter]:
        """The policy head's parameters that the trunk does not own."""
        trunk, policy, _ = self._parts()
        seen = {id(p) for p in _unique([trunk], set())}
        return _unique([policy], seen)

    def value_parameters(self) -> Iterator[nn.Parameter]:
        """The value head's parameters that neither the trunk nor the policy head owns."""
        trunk, policy, value = self._parts()
        seen = {id(p) for p in _unique([trunk, policy], set())}
        return _unique([value], seen)

    def get_policy_head(self) -> nn.Module:
        """The policy head (the module given as ``policy_operator``)."""
        return self._parts()[1]

    def get_value_head(self) -> nn.Module:
        """The value head (the module given as ``value_operator``)."""
        return self._parts()[2]

    def append(self, module: TensorDictModuleBase) -> Any:
        raise TypeError(
            f"{type(self).__name__} has a fixed layout of {len(self.module)} parts and cannot "
            "be appended to; build a SafeSequential(operator, module) instead"
        )

    def train(self, mode: bool = True) -> Any:
        out = super().train(mode)  # type: ignore[misc]
        for seq in self.__dict__.get("_getters", {}).values():
            seq.training = mode
        return out
