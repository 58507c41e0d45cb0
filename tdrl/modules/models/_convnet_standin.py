"""A stand-in for ``ConvNet`` (TorchRL's ``models.ConvNet``) until the networks branch provides it.

Only :mod:`tdrl.modules.models.multiagent` falls back to it; it takes ConvNet's
arguments, builds ``Conv2d`` (``LazyConv2d`` without ``in_features``) + activation
(+ norm) blocks and flattens the last three dimensions, and accepts any number of
leading batch dimensions.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["ConvNet"]


def _per_layer(name: str, value: Any, depth: int) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, (str, tuple)):
        if len(value) != depth:
            raise ValueError(f"{name} has {len(value)} entries, expected depth={depth}")
        return list(value)
    return [value] * depth


class ConvNet(nn.Sequential):
    """Conv2d blocks then a flatten of (channels, height, width); leading dims kept.

    Examples:
        >>> import torch
        >>> from tdrl.modules.models._convnet_standin import ConvNet
        >>> net = ConvNet(in_features=3, num_cells=[8, 8], kernel_sizes=3)
        >>> net(torch.zeros(2, 5, 3, 9, 9)).shape
        torch.Size([2, 5, 200])
    """

    def __init__(
        self,
        in_features: int | None = None,
        depth: int | None = None,
        num_cells: Sequence[int] | int | None = None,
        kernel_sizes: Sequence[int | Sequence[int]] | int = 3,
        strides: Sequence[int] | int = 1,
        paddings: Sequence[int] | int = 0,
        activation_class: type[nn.Module] = nn.ELU,
        activation_kwargs: dict | list[dict] | None = None,
        norm_class: type[nn.Module] | None = None,
        norm_kwargs: dict | list[dict] | None = None,
        bias_last_layer: bool = True,
        aggregator_class: type[nn.Module] | None = None,
        aggregator_kwargs: dict | None = None,
        squeeze_output: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if num_cells is None:
            num_cells = [32] * (depth or 3)
        if isinstance(num_cells, int):
            if depth is None:
                raise ValueError("ConvNet: an int num_cells needs depth")
            num_cells = [num_cells] * depth
        cells = list(num_cells)
        if depth is not None and depth != len(cells):
            raise ValueError(f"depth={depth} disagrees with num_cells={cells}")
        if not cells:
            raise ValueError("ConvNet needs at least one layer")
        n = len(cells)
        kernels = _per_layer("kernel_sizes", kernel_sizes, n)
        strides_ = _per_layer("strides", strides, n)
        pads = _per_layer("paddings", paddings, n)
        acts = _per_layer("activation_kwargs", activation_kwargs or {}, n)
        norms = _per_layer("norm_kwargs", norm_kwargs or {}, n)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([in_features, *cells[:-1]], cells)):
            bias = bias_last_layer or i < n - 1
            conv_kw = dict(kernel_size=kernels[i], stride=strides_[i], padding=pads[i], bias=bias)
            if c_in is None:
                layers.append(nn.LazyConv2d(c_out, device=device, **conv_kw))
            else:
                layers.append(nn.Conv2d(c_in, c_out, device=device, **conv_kw))
            layers.append(activation_class(**acts[i]))
            if norm_class is not None:
                layers.append(norm_class(**norms[i]))
        if aggregator_class is not None:
            layers.append(aggregator_class(**(aggregator_kwargs or {})))
        super().__init__(*layers)
        self.squash = aggregator_class is None
        self.squeeze_output = squeeze_output
        self.out_features = cells[-1]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.ndim < 3:
            raise ValueError(f"ConvNet expects [*batch, C, H, W], got shape {tuple(inputs.shape)}")
        lead = inputs.shape[:-3]
        x = inputs.reshape(math.prod(lead), *inputs.shape[-3:])
        out = super().forward(x)
        if self.squash:
            out = out.flatten(-3, -1)
        out = out.reshape(*lead, *out.shape[1:])
        return out.squeeze() if self.squeeze_output else out
