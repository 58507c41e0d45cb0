"""Q-networks: dueling MLP / CNN heads (Wang et al. 2016) and the distributional DQN log-softmax."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.modules.models.conv import ConvNet
from tdrl.modules.models.mlp import MLP
from tdrl.modules.models.utils import when_initialized
from tdrl.modules.tensordict_module.core import TDRLModuleBase, normalize_keys, read_key

__all__ = ["DistributionalDQNnet", "DuelingCnnDQNet", "DuelingMlpDQNet"]


def _zero_biases(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
            when_initialized(m, lambda layer: layer.bias.zero_())


class _Dueling(nn.Module):
    """``Q = V + A - mean(A)`` over a shared feature network."""

    features: nn.Module
    advantage: nn.Module
    value: nn.Module

    def _heads(
        self, out_features: int | Sequence[int], out_features_value: int, kwargs: dict[str, Any],
        device: torch.device | str | None,
    ) -> None:
        self.out_features = out_features
        self.out_features_value = out_features_value
        self.advantage = MLP(out_features=out_features, device=device, **kwargs)
        self.value = MLP(out_features=out_features_value, device=device, **kwargs)
        _zero_biases(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        adv = self.advantage(h)
        return self.value(h) + adv - adv.mean(dim=-1, keepdim=True)


_HEAD_DEFAULTS = {"depth": 1, "activation_class": nn.ELU, "num_cells": 512, "bias_last_layer": True}


class DuelingMlpDQNet(_Dueling):
    """Dueling Q-network on vectors: an MLP trunk, then value and advantage MLP heads.

    ``Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)``. Every bias starts at zero.

    Args:
        out_features: number of actions (an int, or a shape for the advantages).
        out_features_value: size of the value head (default 1).
        mlp_kwargs_feature: overrides of the trunk's ``MLP`` arguments (defaults:
            ``num_cells=[256, 256]``, ``out_features=256``, ``nn.ELU``, ``activate_last_layer=True``).
        mlp_kwargs_output: overrides of each head's arguments (defaults: ``depth=1``,
            ``num_cells=512``, ``nn.ELU``).
        device: where to create the layers.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DuelingMlpDQNet
        >>> net = DuelingMlpDQNet(out_features=3, mlp_kwargs_feature={"num_cells": [16]},
        ...                       mlp_kwargs_output={"num_cells": 8})
        >>> net(torch.zeros(5, 4)).shape
        torch.Size([5, 3])
        >>> net.value[0].bias.abs().sum().item()
        0.0
    """

    def __init__(
        self,
        out_features: int | Sequence[int],
        out_features_value: int = 1,
        mlp_kwargs_feature: dict[str, Any] | None = None,
        mlp_kwargs_output: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        feat = {
            "num_cells": [256, 256],
            "out_features": 256,
            "activation_class": nn.ELU,
            "activate_last_layer": True,
        }
        feat.update(mlp_kwargs_feature or {})
        self.features = MLP(device=device, **feat)
        self._heads(out_features, out_features_value, {**_HEAD_DEFAULTS, **(mlp_kwargs_output or {})}, device)


class DuelingCnnDQNet(_Dueling):
    """Dueling Q-network on images: a ConvNet trunk, then value and advantage MLP heads.

    Args:
        out_features: number of actions.
        out_features_value: size of the value head (default 1).
        cnn_kwargs: overrides of the ``ConvNet`` arguments (defaults: the DQN paper's
            ``num_cells=[32, 64, 64]``, ``kernel_sizes=[8, 4, 3]``, ``strides=[4, 2, 1]``,
            lazy input channels).
        mlp_kwargs: overrides of each head's ``MLP`` arguments (defaults: ``depth=1``,
            ``num_cells=512``, ``nn.ELU``).
        device: where to create the layers.

    Inputs are ``[*batch, C, H, W]``; every bias starts at zero.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DuelingCnnDQNet
        >>> net = DuelingCnnDQNet(out_features=6)
        >>> net(torch.zeros(2, 4, 84, 84)).shape
        torch.Size([2, 6])
        >>> net.features[0].bias.abs().sum().item()
        0.0
    """

    def __init__(
        self,
        out_features: int,
        out_features_value: int = 1,
        cnn_kwargs: dict[str, Any] | None = None,
        mlp_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        cnn = {"num_cells": [32, 64, 64], "strides": [4, 2, 1], "kernel_sizes": [8, 4, 3]}
        cnn.update(cnn_kwargs or {})
        self.features = ConvNet(device=device, **cnn)
        self._heads(out_features, out_features_value, {**_HEAD_DEFAULTS, **(mlp_kwargs or {})}, device)


class DistributionalDQNnet(TDRLModuleBase):
    """Log-softmax over the atoms of distributional action values ``[*batch, atoms, actions]``.

    Put it between a network that outputs one logit per (atom, action) and a
    ``DistributionalQValueModule``.

    Args:
        in_keys: keys to read (default ``["action_value"]``).
        out_keys: keys to write (default: the same).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import DistributionalDQNnet
        >>> td = DistributionalDQNnet()(TensorDict(action_value=torch.randn(10, 5, 3), batch_size=[10]))
        >>> torch.allclose(td["action_value"].exp().sum(-2), torch.ones(10, 3))
        True
    """

    def __init__(
        self,
        *,
        in_keys: NestedKey | Sequence[NestedKey] | None = None,
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
    ) -> None:
        super().__init__()
        ins = normalize_keys(in_keys if in_keys is not None else ["action_value"], "in_keys")
        outs = normalize_keys(out_keys if out_keys is not None else list(ins), "out_keys")
        if len(ins) != len(outs):
            raise ValueError(
                f"DistributionalDQNnet needs as many out_keys as in_keys, got {ins} and {outs}"
            )
        self.in_keys, self.out_keys = ins, outs

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        for k_in, k_out in zip(self.in_keys, self.out_keys):
            q = read_key(td, k_in, self)
            if q.ndim < 2:
                raise RuntimeError(
                    f"DistributionalDQNnet needs {k_in!r} with at least 2 dims "
                    f"(*batch, atoms, actions), got shape {tuple(q.shape)}"
                )
            td.set(k_out, F.log_softmax(q, dim=-2))
        return td
