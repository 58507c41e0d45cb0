"""``RandomPolicy`` (uniform actions from a spec) and filling exploration specs from an env."""
from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.modules.tensordict_module.exploration import (
    AdditiveGaussianModule,
    EGreedyModule,
    OrnsteinUhlenbeckProcessModule,
)

__all__ = ["RandomPolicy", "set_exploration_modules_spec_from_env"]

# the attributes read from an env (or anything else), in order of preference
_ACTION_SPEC_ATTRS = ("action_spec_unbatched", "action_spec", "full_action_spec")
_EXPLORATION = (AdditiveGaussianModule, EGreedyModule, OrnsteinUhlenbeckProcessModule)


def _spec_of(source: Any, attrs: tuple[str, ...], caller: str) -> TensorSpec:
    """The first spec ``source`` exposes among ``attrs`` (``source`` itself if it is a spec)."""
    if isinstance(source, TensorSpec):
        return source
    for attr in attrs:
        spec = getattr(source, attr, None)
        if spec is not None:
            if not isinstance(spec, TensorSpec):
                raise TypeError(
                    f"{caller}: {type(source).__name__}.{attr} must be a TensorSpec, got "
                    f"{type(spec).__name__}"
                )
            return spec
    raise TypeError(
        f"{caller}: {type(source).__name__} exposes no action spec (looked for the attributes "
        f"{list(attrs)}); pass an environment or a TensorSpec"
    )


class RandomPolicy:
    """A policy that writes uniformly random actions drawn from an action spec.

    A leaf spec writes ``action_key``; a :class:`~tdrl.data.Composite` (e.g. an env's
    ``full_action_spec``) writes all its entries. The sample gets the input's batch size
    unless the spec already starts with it (a batched env's spec). ``action_spec=None``
    is filled later by :meth:`set_action_spec_from_env` (as collectors do); calling the
    policy before that raises ``RuntimeError``.

    Args:
        action_spec: the spec to sample from (cloned), or None.
        action_key: where a leaf spec's sample is written (default ``"action"``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Bounded
        >>> from tdrl.modules import RandomPolicy
        >>> policy = RandomPolicy(Bounded(-1.0, 1.0, shape=(3,)))
        >>> td = policy(TensorDict(batch_size=[4]))
        >>> td["action"].shape, bool(td["action"].abs().max() <= 1)
        (torch.Size([4, 3]), True)
        >>> RandomPolicy()(TensorDict())
        Traceback (most recent call last):
        ...
        RuntimeError: RandomPolicy.action_spec is not set: pass action_spec=... or call set_action_spec_from_env(env) (collectors do this for you)
    """

    def __init__(self, action_spec: TensorSpec | None = None, action_key: NestedKey = "action"):
        if action_spec is not None and not isinstance(action_spec, TensorSpec):
            raise TypeError(
                f"RandomPolicy: action_spec must be a TensorSpec or None, got "
                f"{type(action_spec).__name__}"
            )
        self.action_spec = None if action_spec is None else action_spec.clone()
        self.action_key = action_key

    def set_action_spec_from_env(self, env: Any) -> None:
        """Take the spec of ``env`` (its ``full_action_spec``, else its ``action_spec``).

        Does nothing when the spec is already set.

        Examples:
            >>> from types import SimpleNamespace
            >>> from tdrl.data import Categorical, Composite
            >>> env = SimpleNamespace(full_action_spec=Composite(action=Categorical(2)))
            >>> policy = RandomPolicy()
            >>> policy.set_action_spec_from_env(env)
            >>> list(policy.action_spec.keys())
            ['action']
        """
        if self.action_spec is None:
            spec = _spec_of(env, ("full_action_spec", "action_spec"), "RandomPolicy")
            self.action_spec = spec.clone()

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        spec = self.action_spec
        if spec is None:
            raise RuntimeError(
                "RandomPolicy.action_spec is not set: pass action_spec=... or call "
                "set_action_spec_from_env(env) (collectors do this for you)"
            )
        if not isinstance(td, TensorDictBase):
            raise TypeError(f"RandomPolicy expects a TensorDict, got {type(td).__name__}")
        batch = td.batch_size
        shape = None if spec.shape[: len(batch)] == batch else batch
        if isinstance(spec, Composite):
            return td.update(spec.rand(shape))
        return td.set(self.action_key, spec.rand(shape))

    def __repr__(self) -> str:
        return f"RandomPolicy(action_key={self.action_key!r}, action_spec={self.action_spec!r})"


def set_exploration_modules_spec_from_env(policy: nn.Module | RandomPolicy, env: Any) -> None:
    """Give the action spec of ``env`` to every exploration module of ``policy`` that has none.

    ``env`` is anything exposing an action spec: its ``action_spec_unbatched``,
    ``action_spec`` or ``full_action_spec`` (the first one present) is used, or a
    :class:`~tdrl.data.TensorSpec` itself. Exploration modules (``AdditiveGaussianModule``,
    ``EGreedyModule``, ``OrnsteinUhlenbeckProcessModule``) whose spec is already set are
    left alone; a ``RandomPolicy`` without a spec takes the env's.

    Examples:
        >>> from types import SimpleNamespace
        >>> from tensordict.nn import TensorDictSequential
        >>> from tdrl.data import Bounded
        >>> from tdrl.modules import AdditiveGaussianModule, set_exploration_modules_spec_from_env
        >>> noise = AdditiveGaussianModule(spec=None)
        >>> policy = TensorDictSequential(noise)
        >>> env = SimpleNamespace(action_spec=Bounded(-2.0, 2.0, shape=(1,)))
        >>> set_exploration_modules_spec_from_env(policy, env)
        >>> noise.spec["action"].high
        tensor([2.])
        >>> set_exploration_modules_spec_from_env(policy, object())
        Traceback (most recent call last):
        ...
        TypeError: set_exploration_modules_spec_from_env: object exposes no action spec (looked for the attributes ['action_spec_unbatched', 'action_spec', 'full_action_spec']); pass an environment or a TensorSpec
    """
    caller = "set_exploration_modules_spec_from_env"
    if isinstance(policy, RandomPolicy):
        spec = _spec_of(env, ("full_action_spec", "action_spec"), caller)
        if policy.action_spec is None:
            policy.action_spec = spec.clone()
        return
    if not isinstance(policy, nn.Module):
        raise TypeError(f"{caller}: policy must be an nn.Module, got {type(policy).__name__}")
    spec = _spec_of(env, _ACTION_SPEC_ATTRS, caller)
    pending = [m for m in policy.modules() if isinstance(m, _EXPLORATION) and m.spec is None]
    for module in pending:
        module.spec = spec
