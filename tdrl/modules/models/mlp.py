"""The multi-layer perceptron used to build actors and critics (TorchRL's ``MLP``)."""
from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tdrl.modules.models.utils import (
    LazyMapping,
    ModelConfigError,
    create_on_device,
    per_layer_kwargs,
)

__all__ = ["MLP"]

_DEFAULT_WIDTH = 32


def _mlp_widths(depth: int | None, num_cells: int | Sequence[int] | None) -> list[int]:
    if num_cells is None:
        n = 0 if depth is None else int(depth)
        if n < 0:
            raise ModelConfigError(f"MLP needs depth >= 0, got {depth}")
        return [_DEFAULT_WIDTH] * n
    if isinstance(num_cells, Sequence):
        widths = [int(c) for c in num_cells]
        if depth is not None and int(depth) != len(widths):
            raise ModelConfigError(
                f"MLP: depth={depth} disagrees with num_cells={widths} ({len(widths)} layers); "
                "give a matching depth, or one int num_cells together with the depth"
            )
    else:
        if depth is None:
            raise ModelConfigError(
                f"MLP got num_cells={num_cells} (one int) without a depth: pass depth=..., "
                "or a list with one width per hidden layer"
            )
        if int(depth) < 0:
            raise ModelConfigError(f"MLP needs depth >= 0, got {depth}")
        widths = [int(num_cells)] * int(depth)
    if any(w <= 0 for w in widths):
        raise ModelConfigError(f"MLP needs positive num_cells, got {widths}")
    return widths


class MLP(nn.Sequential):
    """A multi-layer perceptron, as TorchRL's ``MLP``.

    Each hidden block is ``layer, [Dropout], [norm], activation`` (TorchRL's order,
    so state-dict keys match); the output layer is followed by the same block
    only with ``activate_last_layer=True``. Several inputs are concatenated along
    the last dimension (``mlp(obs, action)``).

    Args:
        in_features: input size; ``None`` makes the first layer lazy (its lazy
            twin from ``LazyMapping``: ``nn.LazyLinear``, ``NoisyLazyLinear``).
        out_features: output size: an int, or a shape the output is reshaped to.
        depth: number of hidden layers. With neither ``depth`` nor ``num_cells``
            the network is one layer; with ``depth`` alone each hidden layer has 32 cells.
        num_cells: one int (needs ``depth``) or one width per hidden layer.
        activation_class: class or factory of the activation (default ``nn.Tanh``); a
            factory may return a plain function.
        activation_kwargs: one dict, or one per activation (``depth + activate_last_layer``).
        norm_class, norm_kwargs: optional normalisation layer after each hidden
            layer (kwargs as ``activation_kwargs``).
        dropout: dropout probability; ``None`` (default) adds no dropout layer.
        bias_last_layer: whether the output layer has a bias.
        single_bias_last_layer: only ``False`` is supported (as in TorchRL).
        layer_class: class or factory of the linear layers (``nn.Linear``, ``NoisyLinear``...).
        layer_kwargs: one dict, or one per linear layer (``depth + 1``); a ``"bias"``
            entry overrides the default bias of that layer.
        activate_last_layer: add a block after the output layer too.
        device: where to create the layers.

    Examples:
        >>> import torch
        >>> from tdrl.modules import MLP
        >>> mlp = MLP(in_features=4, out_features=2, depth=2, num_cells=32)
        >>> [m.__class__.__name__ for m in mlp]
        ['Linear', 'Tanh', 'Linear', 'Tanh', 'Linear']
        >>> mlp(torch.zeros(5, 4)).shape
        torch.Size([5, 2])
        >>> MLP(in_features=3, out_features=(2, 3), num_cells=[8, 8])(torch.zeros(1, 3)).shape
        torch.Size([1, 2, 3])
        >>> len(MLP(in_features=3, out_features=6))   # no depth, no num_cells: one layer
        1
        >>> mlp[:-1]                                     # a slice is a plain nn.Sequential
        Sequential(
          (0): Linear(in_features=4, out_features=32, bias=True)
          (1): Tanh()
          (2): Linear(in_features=32, out_features=32, bias=True)
          (3): Tanh()
        )
        >>> mlp = MLP(out_features=2, num_cells=[8], dropout=0.1, norm_class=torch.nn.BatchNorm1d,
        ...           norm_kwargs={"num_features": 8})
        >>> [m.__class__.__name__ for m in mlp]
        ['LazyLinear', 'Dropout', 'BatchNorm1d', 'Tanh', 'Linear']
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | Sequence[int] | torch.Size | None = None,
        depth: int | None = None,
        num_cells: int | Sequence[int] | None = None,
        activation_class: type[nn.Module] | Callable[..., Any] = nn.Tanh,
        activation_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        norm_class: type[nn.Module] | Callable[..., Any] | None = None,
        norm_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        dropout: float | None = None,
        bias_last_layer: bool = True,
        single_bias_last_layer: bool = False,
        layer_class: type[nn.Module] | Callable[..., Any] = nn.Linear,
        layer_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        activate_last_layer: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if out_features is None:
            raise ModelConfigError("MLP needs out_features (an int or a shape)")
        if single_bias_last_layer:
            raise NotImplementedError(
                "MLP(single_bias_last_layer=True) is not supported (TorchRL does not "
                "implement it either); use bias_last_layer"
            )
        if dropout is not None and not 0.0 <= float(dropout) < 1.0:
            raise ModelConfigError(f"MLP needs 0 <= dropout < 1, got {dropout}")
        widths = _mlp_widths(depth, num_cells)
        if isinstance(out_features, numbers.Integral):
            out_shape = torch.Size([int(out_features)])
        else:
            out_shape = torch.Size(int(d) for d in out_features)
        if out_shape.numel() <= 0:
            raise ModelConfigError(f"MLP needs a non-empty out_features, got {out_features}")
        n_hidden = len(widths)
        n_blocks = n_hidden + int(bool(activate_last_layer))
        act_kw = per_layer_kwargs(activation_kwargs, n_blocks, "activation_kwargs")
        norm_kw = per_layer_kwargs(norm_kwargs, n_blocks, "norm_kwargs")
        lay_kw = per_layer_kwargs(layer_kwargs, n_hidden + 1, "layer_kwargs")

        layers: list[nn.Module] = []
        sizes = [in_features, *widths, out_shape.numel()]
        for i in range(n_hidden + 1):
            n_in, n_out = sizes[i], sizes[i + 1]
            kw = lay_kw[i]
            bias = kw.pop("bias", bias_last_layer if i == n_hidden else True)
            if n_in is None:
                lazy = LazyMapping.get(layer_class)
                if lazy is None:
                    raise ModelConfigError(
                        f"MLP(in_features=None) needs a lazy version of "
                        f"{getattr(layer_class, '__name__', layer_class)}; known: "
                        f"{[c.__name__ for c in LazyMapping]}. Pass in_features instead"
                    )
                layers.append(create_on_device(lazy, device, n_out, bias=bias, **kw))
            else:
                layers.append(create_on_device(layer_class, device, n_in, n_out, bias=bias, **kw))
            if i < n_hidden or activate_last_layer:
                if dropout is not None:
                    layers.append(create_on_device(nn.Dropout, device, p=dropout))
                if norm_class is not None:
                    layers.append(create_on_device(norm_class, device, **norm_kw[i]))
                layers.append(create_on_device(activation_class, device, **act_kw[i]))
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_features
        self.depth = n_hidden
        self.num_cells = widths
        self.activation_class = activation_class
        self.norm_class = norm_class
        self.dropout = dropout
        self.bias_last_layer = bias_last_layer
        self.single_bias_last_layer = single_bias_last_layer
        self.layer_class = layer_class
        self.activation_kwargs = activation_kwargs
        self.norm_kwargs = norm_kwargs
        self.layer_kwargs = layer_kwargs
        self.activate_last_layer = activate_last_layer
        # an int gives a flat output; a shape (even of one dim) reshapes to it
        self._out_shape = None if isinstance(out_features, numbers.Integral) else out_shape

    def __getitem__(self, idx: int | slice) -> nn.Module:
        # a slice is a plain nn.Sequential of those layers (no output reshape)
        if isinstance(idx, slice):
            return nn.Sequential(*list(self)[idx])
        return super().__getitem__(idx)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not inputs:
            raise TypeError("MLP.forward needs at least one input tensor")
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)
        out = super().forward(x)
        if self._out_shape is not None:
            out = out.reshape(*out.shape[:-1], *self._out_shape)
        return out
