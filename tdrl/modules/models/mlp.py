"""Plain torch networks used to build actors and critics."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """A multi-layer perceptron, as TorchRL's ``MLP``.

    Args:
        in_features: input size; ``None`` uses a lazy first layer.
        out_features: output size, an int or a shape (the output is reshaped to it).
        depth: number of hidden layers (default 3 when ``num_cells`` is an int).
        num_cells: hidden width (int) or one width per hidden layer (sequence).
        activation_class: activation after each hidden layer (default ``nn.Tanh``).
        activation_kwargs, norm_class, norm_kwargs, dropout, bias_last_layer,
        layer_class, layer_kwargs, activate_last_layer, device: as their names say.

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
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | Sequence[int] | None = None,
        depth: int | None = None,
        num_cells: int | Sequence[int] | None = None,
        activation_class: type[nn.Module] = nn.Tanh,
        activation_kwargs: dict[str, Any] | None = None,
        norm_class: type[nn.Module] | None = None,
        norm_kwargs: dict[str, Any] | None = None,
        dropout: float | None = None,
        bias_last_layer: bool = True,
        layer_class: type[nn.Module] = nn.Linear,
        layer_kwargs: dict[str, Any] | None = None,
        activate_last_layer: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if out_features is None:
            raise ValueError("MLP needs out_features (an int or a shape)")
        if isinstance(num_cells, Sequence):
            widths = list(num_cells)
            if depth is not None and depth != len(widths):
                raise ValueError(
                    f"depth={depth} disagrees with num_cells={widths} ({len(widths)} layers)"
                )
        else:
            width = 32 if num_cells is None else int(num_cells)
            n = 3 if depth is None else int(depth)
            if n < 0:
                raise ValueError(f"depth must be >= 0, got {depth}")
            widths = [width] * n
        if any(w <= 0 for w in widths):
            raise ValueError(f"num_cells must be positive, got {widths}")
        out_shape = (
            torch.Size([out_features]) if isinstance(out_features, int) else torch.Size(out_features)
        )
        layers: list[nn.Module] = []
        sizes = [in_features, *widths, out_shape.numel()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            kwargs = dict(layer_kwargs or {})
            bias = bias_last_layer if last else True
            if n_in is None:
                layers.append(nn.LazyLinear(n_out, bias=bias, device=device))
            else:
                layers.append(layer_class(n_in, n_out, bias=bias, device=device, **kwargs))
            if not last or activate_last_layer:
                if norm_class is not None:
                    layers.append(norm_class(**(norm_kwargs or {})))
                layers.append(activation_class(**(activation_kwargs or {})))
                if dropout:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.out_features = out_shape

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)
        out = super().forward(x)
        if len(self.out_features) > 1:
            out = out.reshape(*out.shape[:-1], *self.out_features)
        return out
