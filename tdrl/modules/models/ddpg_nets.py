"""DDPG actor and critic networks (Lillicrap et al. 2015), as TorchRL's ``Ddpg*`` classes.

Each network's last layer starts small and uniform (``U(-scale/2, scale/2)``), as in
the paper, so the initial actions and Q-values are near zero.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tdrl.modules.models.conv import ConvNet
from tdrl.modules.models.mlp import MLP
from tdrl.modules.models.utils import SquashDims, when_initialized

__all__ = ["DdpgCnnActor", "DdpgCnnQNet", "DdpgMlpActor", "DdpgMlpQNet", "ddpg_init_last_layer"]


def ddpg_init_last_layer(
    module: nn.Sequential, scale: float = 6e-4, device: torch.device | str | None = None
) -> None:
    """Draws the last ``Linear`` / ``Conv2d`` of ``module`` uniform in ``[-scale/2, scale/2]``.

    ``device`` is accepted for TorchRL compatibility; the values are drawn where the layer lives.

    Examples:
        >>> from tdrl.modules import MLP
        >>> from tdrl.modules.models.ddpg_nets import ddpg_init_last_layer
        >>> mlp = MLP(in_features=4, out_features=2, num_cells=[8])
        >>> ddpg_init_last_layer(mlp, scale=1e-3)
        >>> bool(mlp[-1].weight.abs().max() <= 5e-4)
        True
    """
    layer = next(
        (m for m in reversed(list(module)) if isinstance(m, (nn.Linear, nn.Conv2d))), None
    )
    if layer is None:
        raise RuntimeError(
            f"ddpg_init_last_layer found no nn.Linear / nn.Conv2d in "
            f"{[type(m).__name__ for m in module]}"
        )

    def init(m: nn.Module) -> None:
        m.weight.uniform_(-scale / 2, scale / 2)
        if m.bias is not None:
            m.bias.uniform_(-scale / 2, scale / 2)

    when_initialized(layer, init)


def _conv_defaults(channels: list[int], use_avg_pooling: bool) -> dict[str, Any]:
    return {
        "in_features": None,
        "num_cells": channels,
        "kernel_sizes": [8, 4, 3],
        "strides": [4, 2, 1],
        "paddings": [0, 0, 1],
        "activation_class": nn.ELU,
        "norm_class": None,
        "aggregator_class": nn.AdaptiveAvgPool2d if use_avg_pooling else SquashDims,
        "aggregator_kwargs": {"output_size": (1, 1)} if use_avg_pooling else {"ndims_in": 3},
        "squeeze_output": use_avg_pooling,
    }


def _mlp_defaults(out_features: int, num_cells: Any, depth: int | None = 2) -> dict[str, Any]:
    kw = {
        "in_features": None,
        "out_features": out_features,
        "num_cells": num_cells,
        "activation_class": nn.ELU,
        "bias_last_layer": True,
    }
    if depth is not None:
        kw["depth"] = depth
    return kw


class DdpgCnnActor(nn.Module):
    """DDPG actor on images: ``observation -> (action, hidden)``.

    Args:
        action_dim: size of the action.
        conv_net_kwargs: overrides of the ``ConvNet`` arguments (defaults: lazy input,
            ``num_cells=[32, 64, 64]``, kernels 8/4/3, strides 4/2/1, paddings 0/0/1, ELU,
            flattened output).
        mlp_net_kwargs: overrides of the ``MLP`` arguments (defaults: lazy input, two
            hidden layers of 200, ELU).
        use_avg_pooling: aggregate the feature map by average pooling instead of flattening.
        device: where to create the layers.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DdpgCnnActor
        >>> action, hidden = DdpgCnnActor(action_dim=4)(torch.randn(10, 3, 64, 64))
        >>> action.shape, hidden.shape
        (torch.Size([10, 4]), torch.Size([10, 2304]))
    """

    def __init__(
        self,
        action_dim: int,
        conv_net_kwargs: dict[str, Any] | None = None,
        mlp_net_kwargs: dict[str, Any] | None = None,
        use_avg_pooling: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        conv = {**_conv_defaults([32, 64, 64], use_avg_pooling), **(conv_net_kwargs or {})}
        mlp = {**_mlp_defaults(action_dim, 200), **(mlp_net_kwargs or {})}
        self.convnet = ConvNet(device=device, **conv)
        self.mlp = MLP(device=device, **mlp)
        ddpg_init_last_layer(self.mlp, 6e-4)

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.convnet(observation)
        return self.mlp(hidden), hidden


class DdpgMlpActor(nn.Module):
    """DDPG actor on vectors: an MLP (400, 300 ELU units by default) from observation to action.

    Args:
        action_dim: size of the action.
        mlp_net_kwargs: overrides of the ``MLP`` arguments.
        device: where to create the layers.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DdpgMlpActor
        >>> DdpgMlpActor(action_dim=4)(torch.zeros(10, 6)).shape
        torch.Size([10, 4])
    """

    def __init__(
        self,
        action_dim: int,
        mlp_net_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        mlp = {**_mlp_defaults(action_dim, [400, 300]), **(mlp_net_kwargs or {})}
        self.mlp = MLP(device=device, **mlp)
        ddpg_init_last_layer(self.mlp, 6e-3)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.mlp(observation)


class DdpgCnnQNet(nn.Module):
    """DDPG critic on images: ``(observation, action) -> value``; the action joins after the ConvNet.

    Args:
        conv_net_kwargs: overrides of the ``ConvNet`` arguments (defaults as
            :class:`DdpgCnnActor` but ``num_cells=[32, 64, 128]`` and average pooling).
        mlp_net_kwargs: overrides of the ``MLP`` arguments (defaults: two hidden layers of 200, output 1).
        use_avg_pooling: average-pool the feature map (default ``True``) or flatten it.
        device: where to create the layers.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DdpgCnnQNet
        >>> DdpgCnnQNet()(torch.zeros(1, 3, 64, 64), torch.zeros(1, 4)).shape
        torch.Size([1, 1])
    """

    def __init__(
        self,
        conv_net_kwargs: dict[str, Any] | None = None,
        mlp_net_kwargs: dict[str, Any] | None = None,
        use_avg_pooling: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        conv = {**_conv_defaults([32, 64, 128], use_avg_pooling), **(conv_net_kwargs or {})}
        mlp = {**_mlp_defaults(1, 200), **(mlp_net_kwargs or {})}
        self.convnet = ConvNet(device=device, **conv)
        self.mlp = MLP(device=device, **mlp)
        ddpg_init_last_layer(self.mlp, 6e-4)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.convnet(observation), action], -1))


class DdpgMlpQNet(nn.Module):
    """DDPG critic on vectors: ``mlp2(cat(mlp1(observation), action))``.

    Args:
        mlp_net_kwargs_net1: overrides of the observation network (defaults: one
            lazy layer of 400 ELU units, activated).
        mlp_net_kwargs_net2: overrides of the joint network (defaults: one hidden
            layer of 300, output 1).
        device: where to create the layers.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DdpgMlpQNet
        >>> DdpgMlpQNet()(torch.zeros(1, 32), torch.zeros(1, 4)).shape
        torch.Size([1, 1])
    """

    def __init__(
        self,
        mlp_net_kwargs_net1: dict[str, Any] | None = None,
        mlp_net_kwargs_net2: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        net1 = {**_mlp_defaults(400, [], depth=0), "activate_last_layer": True}
        net1.update(mlp_net_kwargs_net1 or {})
        net2 = {**_mlp_defaults(1, [300], depth=None), **(mlp_net_kwargs_net2 or {})}
        self.mlp1 = MLP(device=device, **net1)
        self.mlp2 = MLP(device=device, **net2)
        ddpg_init_last_layer(self.mlp2, 6e-3)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp2(torch.cat([self.mlp1(observation), action], -1))
