"""Percentile-range value normaliser (the return scaling of DreamerV3)."""
from __future__ import annotations

import torch

from tdrl.modules.value_norm.base import ValueNorm

__all__ = ["PercentileValueNorm"]


class PercentileValueNorm(ValueNorm):
    """Scales values by a debiased EMA of the spread between two percentiles of the targets.

    Each batch contributes its ``low`` and ``high`` quantiles (per element of
    :attr:`shape`) to debiased EMAs ``L`` and ``H``. ``normalize(x) = x / S`` with
    ``S = max(H - L, limit)``: large returns are scaled down, small ones are never
    scaled up (Hafner et al. 2023, "Mastering Diverse Domains through World Models":
    5th / 95th percentiles, decay 0.99, limit 1). Outliers move the scale much less
    than they move a standard deviation. There is no shift, so the sign of a value
    is kept.

    Keyword Args:
        shape, epsilon, device: see :class:`ValueNorm`.
        low, high: the two quantiles, ``0 <= low < high <= 1`` (default 0.05 / 0.95).
        decay: EMA decay in ``[0, 1)`` (default 0.99).
        limit: the smallest scale, > 0 (default 1.0).

    Examples:
        >>> import torch
        >>> from tdrl.modules import PercentileValueNorm
        >>> vn = PercentileValueNorm(shape=1)
        >>> vn.update(torch.linspace(0, 100, 101).unsqueeze(-1))
        >>> vn.scale()
        tensor([90.])
        >>> vn.normalize(torch.tensor([[45.0]]))
        tensor([[0.5000]])
        >>> vn.denormalize(vn.normalize(torch.tensor([[45.0]])))
        tensor([[45.]])
    """

    def __init__(
        self,
        *,
        shape: int | tuple[int, ...] = 1,
        low: float = 0.05,
        high: float = 0.95,
        decay: float = 0.99,
        limit: float = 1.0,
        epsilon: float = 1e-5,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(shape=shape, epsilon=epsilon, device=device)
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not limit > 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self.low, self.high, self.decay, self.limit = float(low), float(high), float(decay), float(limit)
        self.register_buffer("running_low", torch.zeros(self.shape, device=device))
        self.register_buffer("running_high", torch.zeros(self.shape, device=device))
        self.register_buffer("debiasing_term", torch.zeros((), device=device))

    @torch.no_grad()
    def update(self, value_target: torch.Tensor) -> None:
        """Folds the batch's ``low`` / ``high`` quantiles into the EMAs."""
        self._reduce_dims(value_target)
        x = value_target.detach().to(self.running_low.dtype)
        flat = x.reshape(-1, *self.shape)
        q = torch.tensor([self.low, self.high], dtype=flat.dtype, device=flat.device)
        lo, hi = torch.quantile(flat, q, dim=0)
        self.running_low.lerp_(lo, 1.0 - self.decay)
        self.running_high.lerp_(hi, 1.0 - self.decay)
        self.debiasing_term.mul_(self.decay).add_(1.0 - self.decay)

    def scale(self) -> torch.Tensor:
        """``max(H - L, limit)`` from the debiased EMAs (``limit`` before any update)."""
        w = self.debiasing_term.clamp(min=self.epsilon)
        spread = (self.running_high - self.running_low) / w
        return spread.clamp(min=self.limit)

    def normalize(self, value_target: torch.Tensor) -> torch.Tensor:
        """``x / S``."""
        return value_target / self.scale()

    def denormalize(self, normalised_value: torch.Tensor) -> torch.Tensor:
        """``y * S``."""
        return normalised_value * self.scale()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, low={self.low}, high={self.high}, "
            f"decay={self.decay}, limit={self.limit}"
        )
