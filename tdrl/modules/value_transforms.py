"""Invertible element-wise transforms of value targets (TorchRL's ``modules.value_transforms``).

A critic can regress a squashed target ``f(G)`` and its predictions are mapped back
with ``f.inverse`` before they bootstrap another target.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from tdrl.modules import functional as F

__all__ = [
    "ValueTransform",
    "IdentityValueTransform",
    "SymLogValueTransform",
    "SignedHyperbolicValueTransform",
    "ComposeValueTransform",
]


class ValueTransform(nn.Module, metaclass=ABCMeta):
    """Abstract base: ``forward`` maps raw values to the prediction space, ``inverse`` back.

    Examples:
        >>> import torch
        >>> from tdrl.modules import ValueTransform
        >>> class Halve(ValueTransform):
        ...     def forward(self, value):
        ...         return value / 2
        ...     def inverse(self, value):
        ...         return value * 2
        >>> Halve().inverse(Halve()(torch.tensor([4.0])))
        tensor([4.])
    """

    @abstractmethod
    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """Raw values -> transformed values."""

    @abstractmethod
    def inverse(self, value: torch.Tensor) -> torch.Tensor:
        """Transformed values -> raw values."""


class IdentityValueTransform(ValueTransform):
    """Leaves values as they are (a placeholder where a transform is expected).

    Examples:
        >>> import torch
        >>> from tdrl.modules import IdentityValueTransform
        >>> IdentityValueTransform()(torch.tensor([-1.0, 2.0]))
        tensor([-1.,  2.])
    """

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """Returns ``value``."""
        return value

    def inverse(self, value: torch.Tensor) -> torch.Tensor:
        """Returns ``value``."""
        return value


class SymLogValueTransform(ValueTransform):
    """:func:`~tdrl.modules.functional.symlog` forward, :func:`~tdrl.modules.functional.symexp` back.

    Examples:
        >>> import torch
        >>> from tdrl.modules import SymLogValueTransform
        >>> t = SymLogValueTransform()
        >>> t(torch.tensor([-100.0, 0.0, 100.0]))
        tensor([-4.6151,  0.0000,  4.6151])
        >>> t.inverse(t(torch.tensor([7.0])))
        tensor([7.])
    """

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """``symlog(value)``."""
        return F.symlog(value)

    def inverse(self, value: torch.Tensor) -> torch.Tensor:
        """``symexp(value)``."""
        return F.symexp(value)


class SignedHyperbolicValueTransform(ValueTransform):
    """:func:`~tdrl.modules.functional.signed_hyperbolic` forward, its parabolic inverse back.

    Args:
        epsilon: the linear term's weight, > 0 (default ``1e-3``).

    Examples:
        >>> import torch
        >>> from tdrl.modules import SignedHyperbolicValueTransform
        >>> t = SignedHyperbolicValueTransform(epsilon=1e-3)
        >>> t(torch.tensor([-100.0, 0.0, 100.0]))
        tensor([-9.1499,  0.0000,  9.1499])
        >>> SignedHyperbolicValueTransform(epsilon=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: epsilon must be positive, got -1.0.
    """

    def __init__(self, epsilon: float = 1e-3) -> None:
        super().__init__()
        F._check_epsilon(epsilon)
        self.epsilon = float(epsilon)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """``signed_hyperbolic(value, epsilon)``."""
        return F.signed_hyperbolic(value, self.epsilon)

    def inverse(self, value: torch.Tensor) -> torch.Tensor:
        """``signed_parabolic(value, epsilon)``."""
        return F.signed_parabolic(value, self.epsilon)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"


class ComposeValueTransform(ValueTransform):
    """Chains transforms: forward in the given order, inverse in the reverse order.

    Args:
        *transforms: one or more :class:`ValueTransform` instances.

    Examples:
        >>> import torch
        >>> from tdrl.modules import (ComposeValueTransform, SignedHyperbolicValueTransform,
        ...     SymLogValueTransform)
        >>> t = ComposeValueTransform(SignedHyperbolicValueTransform(), SymLogValueTransform())
        >>> t(torch.tensor([-100.0, 0.0, 100.0]))
        tensor([-2.3175,  0.0000,  2.3175])
        >>> t.inverse(t(torch.tensor([-100.0, 0.0, 100.0])))
        tensor([-100.0000,    0.0000,  100.0000])
        >>> ComposeValueTransform(torch.nn.Identity())
        Traceback (most recent call last):
        ...
        TypeError: ComposeValueTransform takes ValueTransform instances, got Identity at position 0
    """

    def __init__(self, *transforms: ValueTransform) -> None:
        super().__init__()
        if not transforms:
            raise ValueError("ComposeValueTransform needs at least one transform, got none.")
        for i, t in enumerate(transforms):
            if not isinstance(t, ValueTransform):
                raise TypeError(
                    "ComposeValueTransform takes ValueTransform instances, got "
                    f"{type(t).__name__} at position {i}"
                )
        self.transforms = nn.ModuleList(transforms)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """Applies each transform in order."""
        for t in self.transforms:
            value = t(value)
        return value

    def inverse(self, value: torch.Tensor) -> torch.Tensor:
        """Applies each inverse, last transform first."""
        for t in reversed(self.transforms):
            value = t.inverse(value)
        return value
