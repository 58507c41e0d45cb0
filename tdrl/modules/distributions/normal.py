"""``IndependentNormal``: a normal whose trailing dims form the event."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch import distributions as D

from tdrl.modules.distributions._common import (
    _EMPTY,
    _event_dims,
    _noise,
    _resolve_params,
    _ScaleLike,
    _sum_dims,
)
from tdrl.modules.distributions.safe_tanh import LOG_SQRT_2PI

__all__ = ["IndependentNormal"]


class IndependentNormal(D.Independent):
    """A normal distribution whose last ``event_dim`` dims form the event.

    Args:
        loc (Tensor): the mean.
        scale (Tensor, float or callable): the standard deviation (a number is
            broadcast, a callable is called on ``loc``).
        upscale (Tensor or float, optional): ``a`` in ``loc = a * tanh(loc / a)``.
            Defaults to ``5.0``.
        tanh_loc (bool, optional): if ``True``, ``loc`` is rescaled as above.
            Defaults to ``False``.
        event_dim (int, optional): number of trailing event dims. Defaults to
            ``1`` (``0`` for a 0-dim ``loc``).
        validate_args (bool, optional): check that ``scale > 0`` and ``loc`` has
            no NaN, raising a ``ValueError`` naming the bad entries (two kernels
            and one device sync; never under ``torch.compile``). Defaults to
            ``None``: check while autograd records (every loss computation),
            skip under ``torch.no_grad()`` (data collection).

    ``mode``, ``mean`` and ``deterministic_sample`` are ``loc``. Built on
    :class:`torch.distributions.Independent` of a ``Normal`` (constructed
    without ``broadcast_all``/validation), with a direct ``log_prob``.

    Examples:
        >>> import torch
        >>> d = IndependentNormal(torch.zeros(5, 2), torch.ones(5, 2))
        >>> x = d.rsample()
        >>> x.shape, d.log_prob(x).shape
        (torch.Size([5, 2]), torch.Size([5]))
        >>> round(d.log_prob(torch.zeros(5, 2))[0].item(), 4)  # -log(2 pi)
        -1.8379
    """

    _validate_args = False

    def __init__(
        self,
        loc: Tensor,
        scale: _ScaleLike,
        upscale: Tensor | float = 5.0,
        tanh_loc: bool = False,
        event_dim: int = 1,
        validate_args: bool | None = None,
    ) -> None:
        self.upscale = upscale
        self.tanh_loc = tanh_loc
        self._event_dim_arg = event_dim
        self._validate = validate_args
        self._set_params(loc, scale)

    def _set_params(self, loc: Tensor, scale: _ScaleLike) -> None:
        loc, scale, _ = _resolve_params(self, loc, scale, bounded=False)
        ndim = loc.ndim
        event_dim = self._event_dim_arg
        # the default (1) falls back to 0 for a 0-dim loc; other values are checked
        ed = _event_dims(0 if event_dim == 1 and ndim == 0 else event_dim, ndim,
                         "IndependentNormal", "event_dim")
        # Normal(loc, scale) without broadcast_all: the shapes already match.
        base = D.Normal.__new__(D.Normal)
        base.loc, base.scale = loc, scale
        D.Distribution.__init__(base, loc.shape, validate_args=False)
        shape = loc.shape
        self.base_dist = base
        self.reinterpreted_batch_ndims = ed
        self._sum = _sum_dims(ed)
        self._neg_const = -(shape[ndim - ed :].numel()) * LOG_SQRT_2PI
        D.Distribution.__init__(self, shape[: ndim - ed], shape[ndim - ed :], validate_args=False)

    def update(self, loc: Tensor, scale: _ScaleLike) -> None:
        """Replaces ``loc`` and ``scale`` in place (``tanh_loc`` and the checks apply again).

        Examples:
            >>> d = IndependentNormal(torch.zeros(2), 1.0)
            >>> d.update(torch.ones(2), torch.ones_like)
            >>> d.mean
            tensor([1., 1.])
        """
        self._set_params(loc, scale)

    @property
    def device(self) -> torch.device:
        """The device of the parameters."""
        return self.base_dist.loc.device

    @property
    def loc(self) -> Tensor:
        return self.base_dist.loc

    @property
    def scale(self) -> Tensor:
        return self.base_dist.scale

    def _lp_from_z(self, z: Tensor) -> Tensor:
        v = torch.addcmul(self.base_dist.scale.log(), z, z, value=0.5)
        if self._sum is not None:
            v = v.sum(self._sum)
        return torch.rsub(v, self._neg_const)

    def log_prob(self, value: Tensor) -> Tensor:
        base = self.base_dist
        return self._lp_from_z((value - base.loc) / base.scale)

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        base = self.base_dist
        shape = self._extended_shape(sample_shape) if sample_shape else base.loc.shape
        return torch.addcmul(base.loc, base.scale, _noise(base.loc, shape, sample_shape))

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(rsample(sample_shape), log_prob of that draw)`` in one pass."""
        base = self.base_dist
        shape = self._extended_shape(sample_shape) if sample_shape else base.loc.shape
        z = _noise(base.loc, shape, sample_shape)
        return torch.addcmul(base.loc, base.scale, z), self._lp_from_z(z)

    @property
    def mode(self) -> Tensor:
        return self.base_dist.loc

    @property
    def deterministic_sample(self) -> Tensor:
        """The mean ``loc``."""
        return self.base_dist.loc

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> IndependentNormal:
        shape = torch.Size(batch_shape) + self.event_shape
        return IndependentNormal(
            self.loc.expand(shape), self.scale.expand(shape),
            event_dim=self.reinterpreted_batch_ndims,
        )
