"""Twin (ensemble) Q-networks as stacked weights: one batched matmul per layer for all critics.

Examples:
    >>> import torch
    >>> from tdrl.recipes.twin_q import TwinQ
    >>> TwinQ(4, (8,))(torch.zeros(2, 4)).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["TwinQ"]


class TwinQ(nn.Module):
    """``num_q`` Q-networks with stacked weights, evaluated together in one ``bmm`` per layer.

    ``forward(*inputs)`` concatenates its inputs on the last dim and returns
    ``[..., num_q]``, one column per critic. Each critic is an MLP with ReLU
    activations initialised like ``nn.Linear``. Inside ``frozen()`` the
    forward reads detached weights: gradients reach the inputs only (the SAC
    actor loss).

    Examples:
        >>> q = TwinQ(4, (8, 8))
        >>> out = q(torch.zeros(5, 3), torch.zeros(5, 1))
        >>> out.shape
        torch.Size([5, 2])
        >>> a = torch.zeros(5, 1, requires_grad=True)
        >>> with q.frozen():
        ...     q(torch.zeros(5, 3), a).sum().backward()
        >>> a.grad is not None, q.weights[0].grad is None
        (True, True)
    """

    def __init__(self, in_features: int, num_cells: tuple[int, ...], num_q: int = 2) -> None:
        super().__init__()
        sizes = [in_features, *num_cells, 1]
        self.num_q = num_q
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(
                nn.Parameter(torch.empty(num_q, fan_in, fan_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(num_q, 1, fan_out).uniform_(-bound, bound)))
        self._frozen = False

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within this block the forward uses detached weights."""
        self._frozen = True
        try:
            yield
        finally:
            self._frozen = False

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat(inputs, -1)
        lead = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1]).expand(self.num_q, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if self._frozen:
                w, b = w.detach(), b.detach()
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = x.relu_()  # in place: baddbmm's backward does not read its output
        return x.squeeze(-1).transpose(0, 1).reshape(*lead, self.num_q)
