"""The value-normaliser interface: ``update`` / ``normalize`` / ``denormalize``."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

__all__ = ["ValueNorm"]


class ValueNorm(nn.Module, metaclass=ABCMeta):
    """Abstract base of the value normalisers.

    A normaliser tracks the location and scale of the value targets seen in training:
    a critic regresses ``normalize(target)`` and its outputs go through ``denormalize``
    before they are used as values (GAE, TD targets). Every tensor passed in ends with
    :attr:`shape` (the per-element value shape, usually ``(1,)``); all leading
    dimensions are reduced by :meth:`update`. The statistics are buffers, so they
    follow ``.to()`` and are part of the ``state_dict``.

    Keyword Args:
        shape: the trailing value shape (default ``1``).
        epsilon: floor of the variance / scale (default ``1e-5``).
        device: where the statistics live.

    Examples:
        >>> import torch
        >>> from tdrl.modules import ValueNorm
        >>> ValueNorm(shape=1)
        Traceback (most recent call last):
        ...
        TypeError: Can't instantiate abstract class ValueNorm...
    """

    shape: tuple[int, ...]

    def __init__(
        self,
        *,
        shape: int | tuple[int, ...] = 1,
        epsilon: float = 1e-5,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if not shape or any(s <= 0 for s in shape):
            raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {shape}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.shape = shape
        self.epsilon = float(epsilon)

    @abstractmethod
    def update(self, value_target: torch.Tensor) -> None:
        """Folds a batch of targets (``[*batch, *shape]``) into the statistics."""

    @abstractmethod
    def normalize(self, value_target: torch.Tensor) -> torch.Tensor:
        """Maps real-scale values to the normalised scale."""

    @abstractmethod
    def denormalize(self, normalised_value: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`normalize`."""

    def _reduce_dims(self, value_target: torch.Tensor) -> tuple[int, ...]:
        """Checks ``value_target`` (trailing shape, finite) and returns its batch dims."""
        n = len(self.shape)
        trailing = tuple(value_target.shape[-n:]) if value_target.ndim >= n else None
        if trailing != self.shape:
            raise ValueError(
                f"{type(self).__name__} was built with shape={self.shape}, got a value_target "
                f"of shape {tuple(value_target.shape)} whose trailing shape is "
                f"{tuple(value_target.shape[-n:])}"
            )
        if not torch.isfinite(value_target).all():
            raise ValueError(
                f"{type(self).__name__}.update got a value_target with NaN or inf entries; "
                "the running statistics were left unchanged"
            )
        return tuple(range(value_target.ndim - n))

    def extra_repr(self) -> str:
        return f"shape={self.shape}, epsilon={self.epsilon}"
