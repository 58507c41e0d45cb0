"""``tanh`` and ``atanh`` that stay invertible in floating point.

``tanh`` rounds to exactly ``+-1`` once ``|x|`` exceeds about 9 (float32) or 19
(float64), and ``atanh(+-1)`` is infinite. The helpers here clamp into
``[-(1 - eps), 1 - eps]`` and give the gradient of the unclamped function at
the clamped value, so that ``safeatanh(safetanh(x))`` has gradient 1 even
where ``tanh`` saturates. :class:`SafeTanhTransform` is the
:class:`torch.distributions.TanhTransform` built on them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import distributions as D

__all__ = [
    "LOG_2",
    "LOG_SQRT_2PI",
    "SafeTanhTransform",
    "log1m_tanh_sq",
    "safeatanh",
    "safeatanh_noeps",
    "safetanh",
    "safetanh_noeps",
    "tanh_limit",
]

LOG_2 = math.log(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

_LIMITS: dict[torch.dtype, float] = {}


def tanh_limit(dtype: torch.dtype) -> float:
    """Largest value ``1 - eps`` kept strictly below 1 in ``dtype`` (cached per dtype).

    Examples:
        >>> tanh_limit(torch.float32) < 1.0
        True
        >>> torch.tensor(tanh_limit(torch.float32)) < 1.0
        tensor(True)
    """
    lim = _LIMITS.get(dtype)
    if lim is None:
        lim = _LIMITS[dtype] = 1.0 - torch.finfo(dtype).eps
    return lim


def log1m_tanh_sq(u: Tensor) -> Tensor:
    """``log(1 - tanh(u) ** 2)``, finite and accurate for every finite ``u``.

    Uses ``log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2 u))``, which never
    forms ``1 - tanh(u)^2`` (that difference rounds to 0 once ``|u| > ~9`` in
    float32).

    Examples:
        >>> u = torch.tensor([0.0, 1.0, 30.0, -30.0])
        >>> out = log1m_tanh_sq(u)
        >>> bool(torch.isfinite(out).all())
        True
        >>> torch.allclose(out[:2], torch.log(1 - torch.tanh(u[:2]) ** 2))
        True
    """
    return 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))


class _ClampedTanh(torch.autograd.Function):
    """``clamp(tanh(x), -lim, lim)`` with the gradient ``1 - y^2`` of the clamped output."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, lim: float) -> Tensor:
        return x.tanh().clamp(-lim, lim)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        (y,) = ctx.saved_tensors
        return grad * (1.0 - y * y), None


class _ClampedAtanh(torch.autograd.Function):
    """``atanh(clamp(y, -lim, lim))`` with the gradient ``1 / (1 - y^2)`` at the clamped ``y``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(y: Tensor, lim: float) -> Tensor:
        return y.clamp(-lim, lim).atanh()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        y, lim = inputs
        ctx.save_for_backward(y)
        ctx.lim = lim

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        (y,) = ctx.saved_tensors
        yc = y.clamp(-ctx.lim, ctx.lim)
        return grad / (1.0 - yc * yc), None


def _lim(x: Tensor, eps: float | None) -> float:
    if eps is None:
        eps = torch.finfo(x.dtype).resolution
    elif not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    return 1.0 - eps


def safetanh(x: Tensor, eps: float | None = None) -> Tensor:
    """``tanh(x)`` clamped into ``[-(1 - eps), 1 - eps]``, differentiable as ``tanh``.

    The gradient is ``1 - y^2`` with ``y`` the (clamped) output, so it never
    vanishes exactly and matches :func:`safeatanh`'s. Works under
    :func:`torch.vmap`.

    Args:
        x (Tensor): input.
        eps (float, optional): distance kept from ``+-1``. Defaults to the
            resolution of ``x``'s dtype (``1e-6`` for float32).

    Examples:
        >>> x = torch.tensor([0.0, 0.5, 100.0], dtype=torch.float64, requires_grad=True)
        >>> y = safetanh(x, 1e-6)
        >>> y.detach()
        tensor([0.0000, 0.4621, 1.0000], dtype=torch.float64)
        >>> bool(y[2] < 1)
        True
        >>> safeatanh(y, 1e-6).sum().backward()
        >>> x.grad
        tensor([1., 1., 1.], dtype=torch.float64)
    """
    return _ClampedTanh.apply(x, _lim(x, eps))


def safeatanh(y: Tensor, eps: float | None = None) -> Tensor:
    """``atanh`` of ``y`` clamped into ``[-(1 - eps), 1 - eps]``: finite for every ``y``.

    The gradient is ``1 / (1 - y^2)`` at the clamped ``y``. Works under
    :func:`torch.vmap`.

    Args:
        y (Tensor): input, normally in ``[-1, 1]``.
        eps (float, optional): distance kept from ``+-1``. Defaults to the
            resolution of ``y``'s dtype.

    Examples:
        >>> y = torch.tensor([-1.0, 0.0, 1.0])
        >>> bool(torch.isfinite(safeatanh(y)).all())
        True
        >>> safeatanh(y)[1]
        tensor(0.)
    """
    return _ClampedAtanh.apply(y, _lim(y, eps))


def safetanh_noeps(x: Tensor) -> Tensor:
    """:func:`safetanh` with ``eps`` the resolution of ``x``'s dtype.

    Examples:
        >>> bool(safetanh_noeps(torch.tensor([50.0])) < 1)
        True
    """
    return safetanh(x)


def safeatanh_noeps(y: Tensor) -> Tensor:
    """:func:`safeatanh` with ``eps`` the resolution of ``y``'s dtype.

    Examples:
        >>> bool(torch.isfinite(safeatanh_noeps(torch.tensor([1.0]))))
        True
    """
    return safeatanh(y)


class SafeTanhTransform(D.TanhTransform):
    """:class:`torch.distributions.TanhTransform` that stays invertible in floating point.

    The forward map is :func:`safetanh` and the inverse :func:`safeatanh`
    (``eps`` = the dtype's resolution), so huge inputs map strictly inside
    ``(-1, 1)`` and ``+-1`` maps back to finite values.
    ``log_abs_det_jacobian`` is torch's stable ``2 (log 2 - x - softplus(-2x))``.

    Examples:
        >>> t = SafeTanhTransform()
        >>> y = t(torch.tensor([-1e6, 0.0, 1e6]))
        >>> bool(y.abs().max() < 1), y[1].item()
        (True, 0.0)
        >>> bool(torch.isfinite(t.inv(torch.tensor([-1.0, 1.0]))).all())
        True
    """

    def _call(self, x: Tensor) -> Tensor:
        return safetanh(x)

    def _inverse(self, y: Tensor) -> Tensor:
        return safeatanh(y)
