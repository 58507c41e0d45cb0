"""PopArt-style value normaliser: debiased exponential moving averages of mean and mean square."""
from __future__ import annotations

import torch

from tdrl.modules.value_norm.base import ValueNorm

__all__ = ["PopArtValueNorm"]


class PopArtValueNorm(ValueNorm):
    """Tracks the target mean and second moment with debiased EMAs (van Hasselt et al. 2016).

    After each batch ``m <- beta m + (1 - beta) mean(x)``, ``q <- beta q + (1 - beta) mean(x^2)``
    and ``w <- beta w + (1 - beta)``; the estimates are ``mu = m / w`` and
    ``var = max(q / w - mu^2, epsilon)`` (``w`` is clamped at ``epsilon``), so the zero
    start does not bias early estimates. This is the value normaliser of MAPPO
    (Yu et al. 2022), whose default ``beta`` is ``0.99999``.

    Keyword Args:
        shape, epsilon, device: see :class:`ValueNorm`.
        beta: EMA decay in ``[0, 1)``; closer to 1 adapts more slowly.

    Examples:
        >>> import torch
        >>> from tdrl.modules import PopArtValueNorm
        >>> _ = torch.manual_seed(0)
        >>> vn = PopArtValueNorm(shape=1, beta=0.9)
        >>> x = torch.randn(1000, 1) * 5.0 + 2.0
        >>> for _ in range(20):
        ...     vn.update(x)
        >>> mean, var = vn._running_stats()
        >>> bool(abs(mean - x.mean()) < 1e-4), bool(abs(var.sqrt() - x.std(correction=0)) < 1e-3)
        (True, True)
        >>> torch.allclose(vn.denormalize(vn.normalize(x)), x, atol=1e-4)
        True
    """

    def __init__(
        self,
        *,
        shape: int | tuple[int, ...] = 1,
        beta: float = 0.99999,
        epsilon: float = 1e-5,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(shape=shape, epsilon=epsilon, device=device)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.beta = float(beta)
        self.register_buffer("running_mean", torch.zeros(self.shape, device=device))
        self.register_buffer("running_mean_sq", torch.zeros(self.shape, device=device))
        self.register_buffer("debiasing_term", torch.zeros((), device=device))

    def _running_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The debiased ``(mean, variance)`` estimates."""
        w = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / w
        var = (self.running_mean_sq / w - mean.square()).clamp(min=self.epsilon)
        return mean, var

    @torch.no_grad()
    def update(self, value_target: torch.Tensor) -> None:
        """Folds the batch mean and mean square of ``value_target`` into the EMAs."""
        dims = self._reduce_dims(value_target)
        x = value_target.detach().to(self.running_mean.dtype)
        mean = x.mean(dim=dims) if dims else x
        mean_sq = x.square().mean(dim=dims) if dims else x.square()
        self.running_mean.lerp_(mean, 1.0 - self.beta)
        self.running_mean_sq.lerp_(mean_sq, 1.0 - self.beta)
        self.debiasing_term.mul_(self.beta).add_(1.0 - self.beta)

    def normalize(self, value_target: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std``."""
        mean, var = self._running_stats()
        return (value_target - mean) * var.rsqrt()

    def denormalize(self, normalised_value: torch.Tensor) -> torch.Tensor:
        """``y * std + mean``."""
        mean, var = self._running_stats()
        return normalised_value * var.sqrt() + mean

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}"
