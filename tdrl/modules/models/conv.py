"""Convolutional networks: ``ConvNet`` (2d, alias ``Conv2dNet``) and ``Conv3dNet``, as TorchRL's.

Both take any number of leading batch dimensions (``[B, T, C, H, W]`` for a batch of
trajectories): they are merged into one before the convolutions and restored after,
so the output is ``[*batch, features]`` (TorchRL PR #686's bug was that they were not).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tdrl.modules.models.mlp import MLP
from tdrl.modules.models.utils import (
    ModelConfigError,
    SquashDims,
    Squeeze2dLayer,
    SqueezeLayer,
    create_on_device,
    per_layer_kwargs,
)
from tdrl.modules.tensordict_module.core import hook_free

__all__ = ["Conv2dNet", "Conv3dNet", "ConvNet"]

_Int = int | Sequence[int]


def _per_layer(
    cls_name: str,
    depth: int | None,
    fields: dict[str, Any],
) -> tuple[int, dict[str, list[Any]]]:
    """Resolves the depth and expands every int field to one entry per layer."""
    if depth is None:
        lengths = {k: len(v) for k, v in fields.items() if isinstance(v, (list, tuple))}
        if not lengths:
            raise ModelConfigError(
                f"{cls_name}: depth=None requires one of the input args (num_cells, "
                f"kernel_sizes, strides, paddings) to be a list or tuple; got "
                + ", ".join(f"{k}={v!r}" for k, v in fields.items())
            )
        depth = list(lengths.values())[-1]
    depth = int(depth)
    if depth == 0:
        raise ModelConfigError(f"Null depth is not permitted with {cls_name}: it needs >= 1 layer")
    if depth < 0:
        raise ModelConfigError(f"{cls_name} needs depth >= 1, got {depth}")
    out: dict[str, list[Any]] = {}
    for name, value in fields.items():
        if isinstance(value, (list, tuple)):
            if len(value) != depth:
                raise ModelConfigError(
                    f"{cls_name}: depth={depth} but {name}={list(value)} has {len(value)} "
                    f"entries; consider matching or specifying a constant {name} "
                    "(one int used for every layer)"
                )
            out[name] = list(value)
        else:
            out[name] = [value] * depth
    return depth, out


class _ConvStack(nn.Sequential):
    """The shared body of ``ConvNet`` and ``Conv3dNet`` (``_conv`` / ``_lazy`` set the dimension)."""

    _conv: type[nn.Module] = nn.Conv2d
    _lazy: type[nn.Module] = nn.LazyConv2d
    _spatial = 2

    def __init__(
        self,
        in_features: int | None = None,
        depth: int | None = None,
        num_cells: _Int | None = None,
        kernel_sizes: _Int | Sequence[Sequence[int]] = 3,
        strides: _Int = 1,
        paddings: _Int = 0,
        activation_class: type[nn.Module] | Callable[..., Any] = nn.ELU,
        activation_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        norm_class: type[nn.Module] | Callable[..., Any] | None = None,
        norm_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        bias_last_layer: bool = True,
        aggregator_class: type[nn.Module] | Callable[..., Any] | None = SquashDims,
        aggregator_kwargs: dict[str, Any] | None = None,
        squeeze_output: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        name = type(self).__name__
        if num_cells is None:
            num_cells = [32] * (3 if depth is None else int(depth))
        depth, f = _per_layer(
            name,
            depth,
            {
                "num_cells": num_cells,
                "kernel_sizes": kernel_sizes,
                "strides": strides,
                "paddings": paddings,
            },
        )
        if any(int(c) <= 0 for c in f["num_cells"]):
            raise ModelConfigError(f"{name} needs positive num_cells, got {f['num_cells']}")
        act_kw = per_layer_kwargs(activation_kwargs, depth, "activation_kwargs")
        norm_kw = per_layer_kwargs(norm_kwargs, depth, "norm_kwargs")
        if aggregator_kwargs is None:
            aggregator_kwargs = {"ndims_in": self._spatial + 1}
        layers: list[nn.Module] = []
        channels_in = in_features
        for i in range(depth):
            conv_kw = {
                "kernel_size": f["kernel_sizes"][i],
                "stride": f["strides"][i],
                "padding": f["paddings"][i],
                "bias": bias_last_layer if i == depth - 1 else True,
                "device": device,
            }
            out_c = int(f["num_cells"][i])
            if channels_in is None:
                layers.append(self._lazy(out_c, **conv_kw))
            else:
                layers.append(self._conv(int(channels_in), out_c, **conv_kw))
            layers.append(create_on_device(activation_class, device, **act_kw[i]))
            if norm_class is not None:
                layers.append(create_on_device(norm_class, device, **norm_kw[i]))
            channels_in = out_c
        if aggregator_class is not None:
            layers.append(create_on_device(aggregator_class, device, **aggregator_kwargs))
        if squeeze_output:
            layers.append(self._squeeze())
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = int(f["num_cells"][-1])
        self.depth = depth
        self.num_cells = f["num_cells"]
        self.kernel_sizes = f["kernel_sizes"]
        self.strides = f["strides"]
        self.paddings = f["paddings"]
        self.activation_class = activation_class
        self.activation_kwargs = activation_kwargs if activation_kwargs is not None else {}
        self.norm_class = norm_class
        self.norm_kwargs = norm_kwargs if norm_kwargs is not None else {}
        self.bias_last_layer = bias_last_layer
        self.aggregator_class = aggregator_class
        self.aggregator_kwargs = aggregator_kwargs
        self.squeeze_output = squeeze_output

    def _squeeze(self) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # nn.Module.__call__ minus its bookkeeping while neither the network nor torch
        # globally carries a hook (as tdrl's tensordict modules do)
        if hook_free(self):
            return self.forward(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def __getitem__(self, idx: int | slice) -> nn.Module:
        # a slice is a plain nn.Sequential of those layers
        if isinstance(idx, slice):
            return nn.Sequential(*list(self)[idx])
        return super().__getitem__(idx)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        core = self._spatial + 1  # channels + spatial dims
        if inputs.ndim < core:
            raise ValueError(
                f"The input value of {type(self).__name__} must have at least {core} dimensions "
                f"(channels and {self._spatial} spatial dims, after any batch dims), "
                f"got shape {tuple(inputs.shape)}"
            )
        batch = inputs.shape[:-core]
        if len(batch) > 1:
            return self._layers(inputs.flatten(0, len(batch) - 1)).unflatten(0, batch)
        return self._layers(inputs)

    def _layers(self, x: torch.Tensor) -> torch.Tensor:
        # nn.Sequential's loop, minus nn.Module.__call__ for hook-free layers (a layer
        # with hooks, lazy ones included, still goes through __call__)
        for m in self._modules.values():
            x = m.forward(x) if hook_free(m) else m(x)
        return x


class ConvNet(_ConvStack):
    """A 2d convolutional network, as TorchRL's ``ConvNet``: blocks of ``Conv2d, activation, [norm]``.

    Args:
        in_features: input channels; ``None`` makes the first convolution lazy.
        depth: number of convolutions; ``None`` reads it from the list arguments.
        num_cells: output channels, one int (needs ``depth``) or one per layer
            (default 32 per layer, three layers without a depth).
        kernel_sizes, strides, paddings: one value for every layer, or one per layer
            (a kernel may be rectangular, ``(2, 3)``).
        activation_class, activation_kwargs: activation after each convolution
            (default ``nn.ELU``; kwargs: one dict or one per layer).
        norm_class, norm_kwargs: optional normalisation after each activation.
        bias_last_layer: whether the last convolution has a bias.
        aggregator_class, aggregator_kwargs: final layer (default ``SquashDims`` of the
            channel and spatial dims); ``None`` keeps the feature map.
        squeeze_output: append a ``Squeeze2dLayer``.
        device: where to create the layers.

    Inputs are ``[*batch, C, H, W]`` with any number of batch dims (none included).

    Examples:
        >>> import torch
        >>> from tdrl.modules import ConvNet
        >>> net = ConvNet(in_features=3, num_cells=[8, 16], kernel_sizes=[3, (2, 3)])
        >>> net
        ConvNet(
          (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))
          (1): ELU(alpha=1.0)
          (2): Conv2d(8, 16, kernel_size=(2, 3), stride=(1, 1))
          (3): ELU(alpha=1.0)
          (4): SquashDims()
        )
        >>> net(torch.zeros(4, 3, 10, 10)).shape               # 16 * 7 * 6
        torch.Size([4, 672])
        >>> net(torch.zeros(5, 4, 3, 10, 10)).shape            # batch x time
        torch.Size([5, 4, 672])
    """

    _conv = nn.Conv2d
    _lazy = nn.LazyConv2d
    _spatial = 2

    def _squeeze(self) -> nn.Module:
        return Squeeze2dLayer()

    @classmethod
    def default_atari_dqn(cls, num_actions: int) -> nn.Sequential:
        """The network of the DQN paper (Mnih et al. 2015): three ReLU convolutions, one 512 layer.

        Examples:
            >>> import torch
            >>> from tdrl.modules import ConvNet
            >>> ConvNet.default_atari_dqn(6)(torch.zeros(2, 4, 84, 84)).shape
            torch.Size([2, 6])
        """
        cnn = cls(
            activation_class=nn.ReLU,
            num_cells=[32, 64, 64],
            kernel_sizes=[8, 4, 3],
            strides=[4, 2, 1],
        )
        mlp = MLP(activation_class=nn.ReLU, out_features=num_actions, num_cells=[512])
        return nn.Sequential(cnn, mlp)


Conv2dNet = ConvNet


class Conv3dNet(_ConvStack):
    """A 3d convolutional network, as TorchRL's ``Conv3dNet``: ``Conv3d, activation, [norm]`` blocks.

    The arguments are those of :class:`ConvNet`; inputs are ``[*batch, C, D, H, W]``
    and the default aggregator flattens the last four dims. ``squeeze_output``
    appends ``SqueezeLayer((-3, -2, -1))``.

    Examples:
        >>> import torch
        >>> from tdrl.modules import Conv3dNet
        >>> net = Conv3dNet(in_features=2, num_cells=[4], kernel_sizes=3)
        >>> net(torch.zeros(5, 2, 6, 6, 6)).shape               # 4 * 4 * 4 * 4
        torch.Size([5, 256])
        >>> net(torch.zeros(3, 6, 6))
        Traceback (most recent call last):
        ...
        ValueError: The input value of Conv3dNet must have at least 4 dimensions (channels and 3 spatial dims, after any batch dims), got shape (3, 6, 6)
    """

    _conv = nn.Conv3d
    _lazy = nn.LazyConv3d
    _spatial = 3

    def _squeeze(self) -> nn.Module:
        return SqueezeLayer((-3, -2, -1))
