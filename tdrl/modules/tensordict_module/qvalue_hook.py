"""The Q-value step as forward hooks: ``QValueHook`` and ``DistributionalQValueHook``."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.data.tensor_specs import TensorSpec
from tdrl.modules.tensordict_module.qvalue_module import (
    DistributionalQValueModule,
    QValueModule,
)

__all__ = ["QValueHook", "DistributionalQValueHook"]


class QValueHook:
    """The Q-value step as a forward hook.

    Hooked on a plain ``nn.Module`` that returns action values, it replaces
    the output by ``(action, action_values, chosen_action_value)``, so a
    ``TensorDictModule`` around that module with out_keys
    ``["action", "action_value", "chosen_action_value"]`` writes all three.
    Hooked on a TensorDict module, it runs :class:`QValueModule` on the output
    TensorDict (masks are read from it). Arguments are those of :class:`QValueModule`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torch import nn
        >>> from tdrl.modules import QValueHook
        >>> net = nn.Linear(4, 4)
        >>> _ = net.register_forward_hook(QValueHook("one_hot"))
        >>> module = TensorDictModule(net, in_keys=["observation"],
        ...                           out_keys=["action", "action_value", "chosen_action_value"])
        >>> td = module(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))
        >>> td["action"].sum(-1)
        tensor([1, 1, 1, 1, 1])
    """

    _module_class: type[QValueModule] = QValueModule

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        var_nums: int | Sequence[int] | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
        **kwargs: Any,
    ) -> None:
        self.qvalue_model = self._module_class(
            action_space=action_space,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
            out_keys=out_keys,
            var_nums=var_nums,
            spec=spec,
            **kwargs,
        )

    def _from_tensor(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        action, chosen = self.qvalue_model._greedy(values, None)
        return action, values, chosen

    def __call__(self, net: nn.Module, observation: Any, values: Any) -> Any:
        m = self.qvalue_model
        if isinstance(values, TensorDictBase):
            return m._run(values)
        if m._mask_key is not None:
            raise ValueError(
                f"{type(self).__name__} with action_mask_key={m._mask_key!r} must be hooked on a "
                "TensorDict module (the mask is read from its output TensorDict); it was hooked "
                f"on {type(net).__name__}, which returned a {type(values).__name__}"
            )
        return self._from_tensor(values)


class DistributionalQValueHook(QValueHook):
    """The distributional Q-value step as a forward hook; see :class:`QValueHook`.

    On a plain module it returns ``(action, action_values)``.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DistributionalQValueHook
        >>> hook = DistributionalQValueHook("categorical", support=torch.tensor([0.0, 1.0]))
        >>> log_p = torch.tensor([[0.9, 0.2], [0.1, 0.8]]).log()  # atoms x actions
        >>> hook(None, None, log_p)[0]
        tensor(1)
    """

    _module_class = DistributionalQValueModule

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        support: torch.Tensor | None = None,
        var_nums: int | Sequence[int] | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
    ) -> None:
        super().__init__(
            action_space=action_space,
            var_nums=var_nums,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
            out_keys=out_keys,
            spec=spec,
            support=support,
        )

    def _from_tensor(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.qvalue_model
        action, _ = m._greedy(m.expected_values(values), None, raw=values)
        return action, values
