"""Element-wise squashing functions for value targets (TorchRL's ``torchrl.modules.functional``).

``symlog`` / ``symexp`` (DreamerV3, Hafner et al. 2023) and ``signed_hyperbolic`` /
``signed_parabolic`` (Pohlen et al. 2018) are two inverse pairs. Each keeps the shape,
dtype and device of its input and has the exact derivative at zero (1 for ``symlog``,
``0.5 + epsilon`` for ``signed_hyperbolic``).
"""
from __future__ import annotations

import torch

__all__ = ["signed_hyperbolic", "signed_parabolic", "symexp", "symlog"]


def _check_epsilon(epsilon: float) -> None:
    if not epsilon > 0:  # also refuses NaN
        raise ValueError(f"epsilon must be positive, got {epsilon}.")


def symlog(value: torch.Tensor) -> torch.Tensor:
    """``sign(x) * log(1 + |x|)``: compresses large magnitudes, linear near zero.

    Examples:
        >>> import torch
        >>> from tdrl.modules.functional import symlog
        >>> symlog(torch.tensor([-100.0, 0.0, 100.0]))
        tensor([-4.6151,  0.0000,  4.6151])
    """
    # where() keeps the derivative 1 at the origin (sign() would give 0 there)
    return torch.where(value == 0, value, value.sign() * value.abs().log1p())


def symexp(value: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`symlog`: ``sign(y) * (exp(|y|) - 1)``.

    Examples:
        >>> import torch
        >>> from tdrl.modules.functional import symexp, symlog
        >>> symexp(symlog(torch.tensor([-100.0, 0.0, 100.0])))
        tensor([-100.0000,    0.0000,  100.0000])
    """
    return torch.where(value == 0, value, value.sign() * value.abs().expm1())


def signed_hyperbolic(value: torch.Tensor, epsilon: float = 1e-3) -> torch.Tensor:
    """``sign(x) * (sqrt(|x| + 1) - 1) + epsilon * x``, with ``epsilon > 0``.

    Written as ``x / (sqrt(|x| + 1) + 1) + epsilon * x`` (the same function): no
    cancellation for small ``|x|`` and no special case at zero.

    Examples:
        >>> import torch
        >>> from tdrl.modules.functional import signed_hyperbolic
        >>> signed_hyperbolic(torch.tensor([-100.0, 0.0, 100.0]))
        tensor([-9.1499,  0.0000,  9.1499])
        >>> signed_hyperbolic(torch.zeros(1), epsilon=0.0)
        Traceback (most recent call last):
        ...
        ValueError: epsilon must be positive, got 0.0.
    """
    _check_epsilon(epsilon)
    return value / (torch.sqrt(value.abs() + 1) + 1) + epsilon * value


def signed_parabolic(value: torch.Tensor, epsilon: float = 1e-3) -> torch.Tensor:
    """The inverse of :func:`signed_hyperbolic` for the same ``epsilon``.

    With ``a = |y|`` and ``d = sqrt((1 + 2 eps)^2 + 4 eps a)`` the inverse is
    ``s^2 - 1`` (``s = (d - 1) / (2 eps)``); it is computed as
    ``y * 4 (1 + eps + a) (s + 1) / ((1 + d) (1 + 2 eps + 2 a + d))``, which has no
    subtraction of nearly equal numbers for any ``y``.

    Examples:
        >>> import torch
        >>> from tdrl.modules.functional import signed_hyperbolic, signed_parabolic
        >>> signed_parabolic(signed_hyperbolic(torch.tensor([-100.0, 0.0, 100.0])))
        tensor([-100.0000,    0.0000,  100.0000])
    """
    _check_epsilon(epsilon)
    a = value.abs()
    d = torch.sqrt((1 + 2 * epsilon) ** 2 + 4 * epsilon * a)
    s = 2 * (1 + epsilon + a) / (1 + d)
    return value * (4 * (1 + epsilon + a) * (s + 1)) / ((1 + d) * (1 + 2 * epsilon + 2 * a + d))
