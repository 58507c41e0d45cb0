"""``TruncatedNormal``: a normal restricted to ``[low, high]`` and renormalized."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch import distributions as D
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from tdrl.modules.distributions._common import (
    _EMPTY,
    _resolve_params,
    _ScaleLike,
    _sum_dims,
)
from tdrl.modules.distributions.bounds import BoundedSupportMixin
from tdrl.modules.distributions.safe_tanh import LOG_2, LOG_SQRT_2PI

__all__ = ["TruncatedNormal"]


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate on both sides of ``-log 2``."""
    return torch.where(x > -LOG_2, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


class TruncatedNormal(BoundedSupportMixin, D.Distribution):
    """A normal distribution restricted to ``[low, high]`` and renormalized.

    The last dim is the event (``log_prob`` sums over it). Standardized bounds
    ``a = (low - loc) / scale`` and ``b = (high - loc) / scale`` are mirrored
    (``[a, b] -> [-b, -a]`` when ``a > 0``) so that every CDF is evaluated in
    the left tail, where ``log_ndtr``/``ndtri`` are accurate; draws use the
    inverse CDF and are differentiable with respect to ``loc`` and ``scale``.

    Args:
        loc (Tensor): location of the untruncated normal.
        scale (Tensor, float or callable): its standard deviation.
        upscale (Tensor or float, optional): ``a`` in ``loc = a * tanh(loc / a)``.
            Defaults to ``5.0``.
        low (Tensor or float, optional): lower bound. Defaults to ``-1.0``.
        high (Tensor or float, optional): upper bound. Defaults to ``1.0``.
        tanh_loc (bool, optional): rescale ``loc`` as above. Defaults to ``False``.
        validate_args (bool, optional): check that ``scale > 0`` and ``loc`` has
            no NaN, raising a ``ValueError`` naming the bad entries (two kernels
            and one device sync; never under ``torch.compile``). Defaults to
            ``None``: check while autograd records (every loss computation),
            skip under ``torch.no_grad()`` (data collection).

    ``log_prob`` is ``-inf`` outside ``[low, high]``; ``mode`` is ``loc``
    clamped to the bounds; ``deterministic_sample`` is the (closed-form) mean.

    Examples:
        >>> import torch
        >>> d = TruncatedNormal(torch.zeros(2, 3), torch.ones(2, 3), low=0.0, high=1.0)
        >>> x = d.rsample()
        >>> bool(((x >= 0) & (x <= 1)).all()), d.log_prob(x).shape
        (True, torch.Size([2]))
        >>> d.mode
        tensor([[0., 0., 0.],
                [0., 0., 0.]])
        >>> d.log_prob(torch.full((2, 3), 1.5))
        tensor([-inf, -inf])
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True
    _validate_args = False

    def __init__(
        self,
        loc: Tensor,
        scale: _ScaleLike,
        upscale: Tensor | float = 5.0,
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        tanh_loc: bool = False,
        validate_args: bool | None = None,
    ) -> None:
        self.upscale, self.tanh_loc = upscale, tanh_loc
        self._low, self._high = low, high
        self._validate = validate_args
        self._set_params(loc, scale)

    def _set_params(self, loc: Tensor, scale: _ScaleLike) -> None:
        loc, scale, b = _resolve_params(self, loc, scale, bounded=True)
        self.loc, self.scale = loc, scale
        self._bounds = b
        self.__dict__.pop("_std", None)  # drop the lazily computed standardized bounds
        shape = loc.shape
        ed = min(1, len(shape))
        self._sum = _sum_dims(ed)
        super().__init__(shape[: len(shape) - ed], shape[len(shape) - ed :], validate_args=False)

    def update(self, loc: Tensor, scale: _ScaleLike) -> None:
        """Replaces ``loc`` and ``scale`` in place (``tanh_loc``, bounds and checks apply again).

        Examples:
            >>> d = TruncatedNormal(torch.zeros(2), torch.ones(2))
            >>> d.update(torch.full((2,), 5.0), torch.ones(2))
            >>> d.mode
            tensor([1., 1.])
        """
        self._set_params(loc, scale)

    @property
    def device(self) -> torch.device:
        """The device of the parameters."""
        return self.loc.device

    # standardized, mirrored bounds and log-normalizer -------------------------------
    @lazy_property
    def _std(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        b = self._bounds
        a = (b.lo - self.loc) / self.scale
        bb = (b.hi - self.loc) / self.scale
        flip = a > 0
        a_m = torch.where(flip, -bb, a)
        b_m = torch.where(flip, -a, bb)
        log_cdf_a = torch.special.log_ndtr(a_m)
        log_cdf_b = torch.special.log_ndtr(b_m)
        log_z = log_cdf_b + _log1mexp(log_cdf_a - log_cdf_b)
        return flip, a_m, b_m, log_cdf_a, log_z, bb

    def _sum_event(self, x: Tensor) -> Tensor:
        return x if self._sum is None else x.sum(self._sum)

    def log_prob(self, value: Tensor) -> Tensor:
        b = self._bounds
        _, _, _, _, log_z, _ = self._std
        z = (value - self.loc) / self.scale
        lp = -0.5 * z * z - LOG_SQRT_2PI - self.scale.log() - log_z
        # -inf outside [low, high]; a NaN value is neither inside nor outside and stays NaN
        outside = (value < b.lo) | (value > b.hi)
        lp = torch.where(outside, torch.full_like(lp, -math.inf), lp)
        return self._sum_event(lp)

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        flip, a_m, b_m, log_cdf_a, log_z, _ = self._std
        loc = self.loc
        shape = self._extended_shape(sample_shape)
        uni = torch.rand(shape, dtype=loc.dtype, device=loc.device)
        p = torch.exp(log_cdf_a) + uni * torch.exp(log_z)
        eps = torch.special.ndtri(p.clamp(max=1.0))
        eps = torch.minimum(torch.maximum(eps, a_m), b_m)
        eps = torch.where(flip, -eps, eps)
        b = self._bounds
        x = torch.addcmul(loc, self.scale, eps)
        return torch.clamp(x, b.lo, b.hi)

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def _phi_terms(self) -> tuple[Tensor, Tensor, Tensor]:
        """Mirrored ``(phi(a) - phi(b)) / Z`` and ``(a phi(a) - b phi(b)) / Z``, and ``flip``."""
        flip, a_m, b_m, _, log_z, _ = self._std
        pa = torch.exp(-0.5 * a_m * a_m - LOG_SQRT_2PI - log_z)
        pb = torch.exp(-0.5 * b_m * b_m - LOG_SQRT_2PI - log_z)
        m = pa - pb
        apa = torch.where(torch.isinf(a_m), torch.zeros_like(pa), a_m * pa)
        bpb = torch.where(torch.isinf(b_m), torch.zeros_like(pb), b_m * pb)
        return m, apa - bpb, flip

    @property
    def mean(self) -> Tensor:
        m, _, flip = self._phi_terms()
        m = torch.where(flip, -m, m)
        b = self._bounds
        return torch.clamp(torch.addcmul(self.loc, self.scale, m), b.lo, b.hi)

    @property
    def variance(self) -> Tensor:
        m, ab, _ = self._phi_terms()
        return (self.scale * self.scale * (1.0 + ab - m * m)).clamp_min(0.0)

    @property
    def mode(self) -> Tensor:
        b = self._bounds
        return torch.clamp(self.loc, b.lo, b.hi)

    @property
    def deterministic_sample(self) -> Tensor:
        """The mean."""
        return self.mean

    def entropy(self) -> Tensor:
        _, ab, _ = self._phi_terms()
        log_z = self._std[4]
        h = (0.5 + LOG_SQRT_2PI) + self.scale.log() + log_z + 0.5 * ab
        return self._sum_event(h)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TruncatedNormal:
        shape = torch.Size(batch_shape) + self._event_shape
        b = self._bounds
        return TruncatedNormal(
            self.loc.expand(shape), self.scale.expand(shape), low=b.low, high=b.high
        )
