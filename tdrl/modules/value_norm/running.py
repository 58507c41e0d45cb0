"""Exact running mean / variance of value targets (no decay)."""
from __future__ import annotations

import math

import torch

from tdrl.modules.value_norm.base import ValueNorm

__all__ = ["RunningValueNorm"]


class RunningValueNorm(ValueNorm):
    """The exact mean and (population) variance of every target seen so far.

    Batches are merged with the parallel-variance formula (Chan et al. 1979), so the
    result does not depend on how the targets were split into batches or in which order
    they came. Buffers: ``mean``, ``m2`` (sum of squared deviations) and ``count``.

    Keyword Args:
        shape, epsilon, device: see :class:`ValueNorm`.

    Examples:
        >>> import torch
        >>> from tdrl.modules import RunningValueNorm
        >>> vn = RunningValueNorm(shape=1)
        >>> vn.update(torch.full((1000, 1), 1.0))
        >>> vn.update(torch.full((1000, 1), 5.0))
        >>> vn.mean.item(), vn._var().sqrt().item()
        (3.0, 2.0)
        >>> vn.normalize(torch.tensor([[5.0]]))
        tensor([[1.]])
        >>> vn.update(torch.zeros(3, 2))
        Traceback (most recent call last):
        ...
        ValueError: RunningValueNorm was built with shape=(1,), got a value_target of shape (3, 2) whose trailing shape is (2,)
    """

    def __init__(
        self,
        *,
        shape: int | tuple[int, ...] = 1,
        epsilon: float = 1e-5,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(shape=shape, epsilon=epsilon, device=device)
        self.register_buffer("mean", torch.zeros(self.shape, device=device))
        self.register_buffer("m2", torch.zeros(self.shape, device=device))
        self.register_buffer("count", torch.zeros((), device=device))

    @torch.no_grad()
    def update(self, value_target: torch.Tensor) -> None:
        """Merges the batch's count, mean and squared deviations into the totals."""
        dims = self._reduce_dims(value_target)
        x = value_target.detach().to(self.mean.dtype)
        n_b = float(math.prod(x.shape[d] for d in dims)) if dims else 1.0
        if n_b == 0:
            return
        mean_b = x.mean(dim=dims) if dims else x
        m2_b = (x - mean_b).square().sum(dim=dims) if dims else torch.zeros_like(x)
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean.add_(delta * (n_b / total))
        self.m2.add_(m2_b + delta.square() * (self.count * n_b / total))
        self.count.copy_(total)

    def _var(self) -> torch.Tensor:
        """``m2 / count``, floored at ``epsilon`` (``count`` counts as 1 before any update)."""
        return (self.m2 / self.count.clamp(min=1.0)).clamp(min=self.epsilon)

    def normalize(self, value_target: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std``."""
        return (value_target - self.mean) * self._var().rsqrt()

    def denormalize(self, normalised_value: torch.Tensor) -> torch.Tensor:
        """``y * std + mean``."""
        return normalised_value * self._var().sqrt() + self.mean
