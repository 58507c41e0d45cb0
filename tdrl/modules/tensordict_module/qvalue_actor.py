"""Q-value actors: a network that writes action values, then the greedy Q-value step."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.modules.tensordict_module.common import SafeModule
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    get_or_none,
    hook_free,
    missing_key_error,
    normalize_keys,
    set_value,
    write_outputs,
)
from tdrl.modules.tensordict_module.qvalue_module import (
    DistributionalQValueModule,
    QValueModule,
    mask_missing_error,
)
from tdrl.modules.tensordict_module.sequence import SafeSequential

__all__ = ["QValueActor", "DistributionalQValueActor"]


def _sibling(key: NestedKey, name: str) -> NestedKey:
    """``name`` next to ``key``: ``("agent", "action") -> ("agent", name)``."""
    if isinstance(key, tuple) and len(key) > 1:
        return (*key[:-1], name)
    return name


def _action_key_from_spec(spec: TensorSpec | None) -> NestedKey:
    """The action key of an actor: ``"action"``, or the single leaf of a Composite spec."""
    if isinstance(spec, Composite):
        keys = list(spec.keys(include_nested=True, leaves_only=True))
        if "action" in keys:
            return "action"
        if len(keys) == 1:
            return normalize_keys(keys[0], "spec key")[0]
        raise KeyError(
            "a Composite spec given to a Q-value actor must hold an 'action' entry or a single "
            f"leaf (the action); its keys: {keys}"
        )
    return "action"


def _network_step(
    module: Any,
    in_keys: Sequence[NestedKey] | None,
    action_value_key: NestedKey | None,
    default_value_key: NestedKey,
    owner: str,
) -> tuple[TensorDictModuleBase, NestedKey]:
    """Returns the network as a TensorDict module and the key its action values land in."""
    if isinstance(module, TensorDictModuleBase):
        outs = list(module.out_keys)
        if action_value_key is not None:
            key = normalize_keys(action_value_key, "action_value_key")[0]
            if key not in outs:
                raise KeyError(
                    f"{owner}: action_value_key {key!r} is not among the module's out_keys {outs}"
                )
        elif default_value_key in outs:
            key = default_value_key
        elif len(outs) == 1:
            key = outs[0]
        else:
            raise KeyError(
                f"{owner}: cannot tell which of the module's out_keys {outs} holds the action "
                "values; pass action_value_key"
            )
        if in_keys is not None and normalize_keys(in_keys, "in_keys") != list(module.in_keys):
            raise ValueError(
                f"{owner}: in_keys={list(in_keys)} only apply to a plain nn.Module; the given "
                f"TensorDict module reads its own in_keys {list(module.in_keys)}"
            )
        return module, key
    if not callable(module) or isinstance(module, type):
        raise TypeError(f"{owner}: module must be an nn.Module or a TensorDict module, got {module!r}")
    key = normalize_keys(
        action_value_key if action_value_key is not None else default_value_key,
        "action_value_key",
    )[0]
    keys = in_keys if in_keys is not None else ["observation"]
    return SafeModule(module, in_keys=keys, out_keys=[key]), key


def _actor_steps(
    owner: str,
    head_cls: type[QValueModule],
    writes: str,
    module: Any,
    in_keys: Sequence[NestedKey] | None,
    action_value_key: NestedKey | None,
    out_keys: Any,
    spec: TensorSpec | None,
    with_chosen: bool,
    **head_kwargs: Any,
) -> tuple[TensorDictModuleBase, NestedKey, QValueModule]:
    """The network step, its action-value key and the Q-value step (``head_cls``) of an actor.

    ``writes`` lists the actor's outputs for the error raised when ``out_keys`` is given.
    """
    if out_keys is not None:
        raise TypeError(
            f"{owner} does not take out_keys: it writes {writes} "
            f"(use {head_cls.__name__} for custom keys)"
        )
    action_key = _action_key_from_spec(spec)
    net, value_key = _network_step(
        module, in_keys, action_value_key, _sibling(action_key, "action_value"), owner
    )
    keys = [action_key, value_key]
    if with_chosen:
        keys.append(_sibling(action_key, "chosen_action_value"))
    head = head_cls(action_value_key=value_key, out_keys=keys, spec=spec, **head_kwargs)
    return net, value_key, head


class QValueActor(SafeSequential):
    """A Q-value actor: a network that writes action values, then :class:`QValueModule`.

    ``module`` is either a plain ``nn.Module`` (wrapped so that it reads
    ``in_keys``, default ``["observation"]``, and writes ``action_value_key``,
    default ``"action_value"``) or a TensorDict module. For a TensorDict
    module, the Q-value step reads ``action_value_key`` if given (it must be
    one of the module's out_keys), else its ``"action_value"`` output, else
    its only output; the module itself is not modified. The actor's out_keys
    are the module's other out_keys followed by ``"action"``, the action-value
    key and ``"chosen_action_value"`` (a rewritten key takes its last place, as
    in ``tensordict.nn``), so a call with tensors returns them in that order. With a ``Composite`` spec, its ``"action"``
    entry (or single leaf, e.g. ``("agent", "action")``) names the action key,
    and the chosen value goes next to it. ``out_keys`` cannot be passed.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torch import nn
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules.tensordict_module.actors import QValueActor
        >>> from tdrl.utils import detailed_repr
        >>> printing = detailed_repr().set()  # print TensorDicts as TorchRL's page does
        >>> td = TensorDict({'observation': torch.randn(5, 4)}, [5])
        >>> # with a regular nn.Module
        >>> module = nn.Linear(4, 4)
        >>> action_spec = OneHot(4)
        >>> qvalue_actor = QValueActor(module=module, spec=action_spec)
        >>> td = qvalue_actor(td)
        >>> print(td)
        TensorDict(
            fields={
                action: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.int64, is_shared=False),
                action_value: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                chosen_action_value: Tensor(shape=torch.Size([5, 1]), device=cpu, dtype=torch.float32, is_shared=False),
                observation: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([5]),
            device=None,
            is_shared=False)
        >>> # with a TensorDictModule
        >>> from tensordict.nn import TensorDictModule
        >>> td = TensorDict({'obs': torch.randn(5, 4)}, [5])
        >>> module = TensorDictModule(lambda x: x, in_keys=["obs"], out_keys=["action_value"])
        >>> action_spec = OneHot(4)
        >>> qvalue_actor = QValueActor(module=module, spec=action_spec)
        >>> td = qvalue_actor(td)
        >>> print(td)
        TensorDict(
            fields={
                action: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.int64, is_shared=False),
                action_value: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                chosen_action_value: Tensor(shape=torch.Size([5, 1]), device=cpu, dtype=torch.float32, is_shared=False),
                obs: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([5]),
            device=None,
            is_shared=False)
        >>> printing.unset()
    """

    def __init__(
        self,
        module: nn.Module | TensorDictModuleBase,
        *,
        in_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
        action_space: str | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        var_nums: int | Sequence[int] | None = None,
        out_keys: Any = None,
        strict_shape: bool | str | None = None,
    ) -> None:
        net, _, head = _actor_steps(
            type(self).__name__, QValueModule,
            "the action, the action values and the chosen action value",
            module, in_keys, action_value_key, out_keys, spec, with_chosen=True,
            action_space=action_space, action_mask_key=action_mask_key, var_nums=var_nums,
            safe=safe, strict_shape=strict_shape,
        )
        super().__init__(net, head)

    def _rebuild(self) -> None:
        super()._rebuild()
        # fused path: network wrapped here (one input, one output) + Q-value step
        net, head = self.module[0], self.module[-1]
        self._fused = None
        if (
            len(self.module) == 2
            and type(net) is SafeModule
            and type(head) is QValueModule
            and net._kw_names is None
            and len(net.in_keys) == 1
            and net.out_keys == [head._value_key]
            and not net._projector
        ):
            self._fused = (net, head, net._call, net.in_keys[0], head._value_key)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        fused = self._fused
        if fused is None:
            return super()._run(td)
        net, head, call, in_key, value_key = fused
        if not (hook_free(net) and hook_free(head)):
            return super()._run(td)
        for key in self._late_inputs:  # the mask: checked before anything is written
            if get_or_none(td, key) is None:
                raise mask_missing_error(head, key, td)
        obs = get_or_none(td, in_key)
        if obs is None:
            raise missing_key_error(net, in_key, td)
        values = call(obs)
        if type(values) is not torch.Tensor:
            write_outputs(td, [value_key], values, net)
            return head._run(td)
        set_value(td, value_key, values)
        return head._act(td, values)

    @property
    def qvalue_module(self) -> QValueModule:
        """The Q-value step (the last module)."""
        return self.module[-1]


class _AtomLogSoftmax(TDRLModuleBase):
    """Log-softmax over the atoms (dimension -2) of distributional action values, in place."""

    def __init__(self, key: NestedKey) -> None:
        super().__init__()
        self.in_keys = [key]
        self.out_keys = [key]
        self._key = key

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        values = get_or_none(td, self._key)
        if values is None:
            raise missing_key_error(self, self._key, td)
        return set_value(td, self._key, torch.log_softmax(values, dim=-2))


class DistributionalQValueActor(SafeSequential):
    """A distributional Q-value actor: network, log-softmax over atoms, then the Q-value step.

    The network writes ``[..., n_atoms, n_actions]`` logits under
    ``action_value_key``; with ``make_log_softmax=True`` (default) they are
    turned into log-probabilities along dimension -2; then
    :class:`DistributionalQValueModule` writes the action maximising the
    expected value over ``support``. Module and key rules are those of
    :class:`QValueActor`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torch import nn
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules import DistributionalQValueActor
        >>> net = nn.Sequential(nn.Linear(4, 3 * 2), nn.Unflatten(-1, (3, 2)))
        >>> actor = DistributionalQValueActor(net, support=torch.linspace(-1, 1, 3), spec=OneHot(2))
        >>> td = actor(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))
        >>> td["action"].shape, td["action_value"].shape
        (torch.Size([5, 2]), torch.Size([5, 3, 2]))
        >>> bool(torch.allclose(td["action_value"].exp().sum(-2), torch.ones(5, 2)))
        True
    """

    def __init__(
        self,
        module: nn.Module | TensorDictModuleBase,
        support: torch.Tensor,
        *,
        in_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
        var_nums: int | Sequence[int] | None = None,
        action_space: str | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        make_log_softmax: bool = True,
        out_keys: Any = None,
        strict_shape: bool | str | None = None,
    ) -> None:
        net, value_key, head = _actor_steps(
            type(self).__name__, DistributionalQValueModule, "the action and the action values",
            module, in_keys, action_value_key, out_keys, spec, with_chosen=False,
            action_space=action_space, action_mask_key=action_mask_key, var_nums=var_nums,
            safe=safe, support=support, strict_shape=strict_shape,
        )
        modules = [net, _AtomLogSoftmax(value_key), head] if make_log_softmax else [net, head]
        super().__init__(*modules)
        self.make_log_softmax = make_log_softmax

    @property
    def qvalue_module(self) -> DistributionalQValueModule:
        """The Q-value step (the last module)."""
        return self.module[-1]


