"""``Delta`` and ``TanhDelta``: point masses, for deterministic policies."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch import distributions as D
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from tdrl.modules.distributions._common import _EMPTY, _event_dims, _fit_bounds, _sum_dims
from tdrl.modules.distributions.bounds import BoundedSupportMixin, get_bounds
from tdrl.modules.distributions.safe_tanh import SafeTanhTransform, tanh_limit

__all__ = ["Delta", "TanhDelta"]


def _delta_shapes(
    param: Tensor,
    batch_shape: Sequence[int] | None,
    event_shape: Sequence[int] | None,
    cls: str,
) -> tuple[torch.Size, torch.Size]:
    shape = param.shape
    if batch_shape is None and event_shape is None:
        n = len(shape)
        return shape[: n - min(1, n)], shape[n - min(1, n) :]
    if event_shape is None:
        batch_shape = torch.Size(batch_shape)
        event_shape = shape[len(batch_shape) :]
    elif batch_shape is None:
        event_shape = torch.Size(event_shape)
        batch_shape = shape[: len(shape) - len(event_shape)]
    batch_shape, event_shape = torch.Size(batch_shape), torch.Size(event_shape)
    if batch_shape + event_shape != shape:
        raise ValueError(
            f"{cls}: batch_shape {tuple(batch_shape)} + event_shape {tuple(event_shape)} must "
            f"equal the shape of param {tuple(shape)}"
        )
    return batch_shape, event_shape


class Delta(D.Distribution):
    """A point mass at ``param``: every draw returns ``param``.

    Args:
        param (Tensor): the point.
        atol (float, optional): absolute tolerance of ``log_prob``'s match.
            Defaults to ``1e-6``.
        rtol (float, optional): relative tolerance. Defaults to ``1e-6``.
        batch_shape (torch.Size, optional): defaults to all dims of ``param``
            but the last.
        event_shape (torch.Size, optional): defaults to the last dim of ``param``.

    ``log_prob(x)`` is ``0`` where ``x`` matches ``param`` within
    ``atol + rtol * |param|`` on the whole event, ``-inf`` elsewhere (the log
    of the probability mass; TorchRL's returns ``+inf`` at the point, which
    poisons losses), and NaN for a value holding a NaN. ``rsample`` keeps the
    gradient to ``param`` (``has_rsample`` is ``True``); ``entropy`` is ``0``
    (the entropy of a point mass).

    Examples:
        >>> import torch
        >>> d = Delta(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> d.sample((3,)).shape, d.batch_shape, d.event_shape
        (torch.Size([3, 2, 2]), torch.Size([2]), torch.Size([2]))
        >>> d.log_prob(torch.tensor([[1.0, 2.0], [3.0, 5.0]]))
        tensor([0., -inf])
    """

    arg_constraints: dict = {}
    has_rsample = True
    support = constraints.real
    _validate_args = False

    def __init__(
        self,
        param: Tensor,
        atol: float = 1e-6,
        rtol: float = 1e-6,
        batch_shape: Sequence[int] | None = None,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(param, Tensor):
            raise TypeError(f"{type(self).__name__}: param must be a torch.Tensor, got "
                            f"{type(param).__name__}")
        bs, es = _delta_shapes(param, batch_shape, event_shape, type(self).__name__)
        self.param = param
        self.atol = atol
        self.rtol = rtol
        self._sum = _sum_dims(len(es))
        super().__init__(bs, es, validate_args=False)

    def _value(self) -> Tensor:
        return self.param

    def _expand_sample(self, sample_shape: Sequence[int]) -> Tensor:
        v = self._value()
        return v.expand(torch.Size(sample_shape) + v.shape) if sample_shape else v

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        return self._expand_sample(sample_shape)

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        with torch.no_grad():
            return self._expand_sample(sample_shape).detach()

    def _is_equal(self, value: Tensor) -> Tensor:
        """Whether ``value`` matches the point within ``atol + rtol * |point|`` on the whole event."""
        v = self._value()
        close = (value - v).abs() <= self.atol + self.rtol * v.abs()
        if self._sum is not None:
            close = close.all(self._sum)
        return close

    def log_prob(self, value: Tensor) -> Tensor:
        close = self._is_equal(value)
        v = self._value()
        out = torch.zeros(close.shape, dtype=v.dtype, device=v.device).masked_fill_(
            ~close, -math.inf
        )
        nan = value.isnan()  # a NaN is not "elsewhere": its log-prob stays NaN
        if self._sum is not None:
            nan = nan.any(self._sum)
        return out.masked_fill_(nan, math.nan)

    def update(self, param: Tensor) -> None:
        """Moves the point to ``param`` (same shape), in place.

        Examples:
            >>> d = Delta(torch.zeros(2))
            >>> d.update(torch.ones(2))
            >>> d.mode
            tensor([1., 1.])
        """
        if not isinstance(param, Tensor) or param.shape != self.param.shape:
            raise ValueError(
                f"{type(self).__name__}.update: param must be a tensor of shape "
                f"{tuple(self.param.shape)}, got "
                f"{tuple(param.shape) if isinstance(param, Tensor) else type(param).__name__}"
            )
        self.param = param
        for name in ("_point", "base_dist", "transforms"):  # lazily derived from param
            self.__dict__.pop(name, None)

    @property
    def device(self) -> torch.device:
        """The device of ``param``."""
        return self.param.device

    @property
    def mean(self) -> Tensor:
        return self._value()

    @property
    def mode(self) -> Tensor:
        return self._value()

    @property
    def deterministic_sample(self) -> Tensor:
        """The point itself."""
        return self._value()

    @property
    def variance(self) -> Tensor:
        return torch.zeros_like(self._value())

    def entropy(self) -> Tensor:
        v = self._value()
        return torch.zeros(self._batch_shape, dtype=v.dtype, device=v.device)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Delta:
        batch_shape = torch.Size(batch_shape)
        return Delta(
            self.param.expand(batch_shape + self._event_shape), self.atol, self.rtol,
            batch_shape, self._event_shape,
        )


class TanhDelta(BoundedSupportMixin, Delta):
    """A point mass at ``low + (high - low) * (tanh(param) + 1) / 2``.

    Args:
        param (Tensor): the pre-tanh point.
        low (Tensor or float, optional): lower bound. Defaults to ``-1.0``.
        high (Tensor or float, optional): upper bound. Defaults to ``1.0``.
        event_dims (int, optional): number of trailing event dims. Defaults to ``1``.
        atol (float, optional): absolute tolerance of ``log_prob``. Defaults to ``1e-6``.
        rtol (float, optional): relative tolerance. Defaults to ``1e-6``.
        safe (bool, optional): keep the point strictly inside ``(low, high)``
            (at worst the nearest representable value). Defaults to ``True``.

    ``log_prob`` is ``0`` at the point, ``-inf`` elsewhere (a point mass has no
    Jacobian term). ``param`` is the pre-tanh point; ``mode``, ``mean``,
    ``deterministic_sample`` and every draw are the squashed point.

    Examples:
        >>> import torch
        >>> d = TanhDelta(torch.zeros(2, 3), low=0.0, high=2.0)
        >>> d.deterministic_sample
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
        >>> d.log_prob(d.sample())
        tensor([0., 0.])
    """

    _bounds_param = "param"

    def __init__(
        self,
        param: Tensor,
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        event_dims: int = 1,
        atol: float = 1e-6,
        rtol: float = 1e-6,
        safe: bool = True,
    ) -> None:
        if not isinstance(param, Tensor):
            raise TypeError(f"TanhDelta: param must be a torch.Tensor, got {type(param).__name__}")
        b = get_bounds(low, high, param)
        if b.shape:
            param, _ = _fit_bounds(param, param, b, "TanhDelta")
        n = param.ndim
        ed = _event_dims(0 if event_dims == 1 and n == 0 else event_dims, n, "TanhDelta")
        super().__init__(param, atol, rtol, param.shape[: n - ed], param.shape[n - ed :])
        self._bounds = b
        self.safe = safe
        self.event_dims = ed

    @lazy_property
    def _point(self) -> Tensor:
        y = torch.tanh(self.param)
        b = self._bounds
        if b.unit:
            if self.safe:
                lim = tanh_limit(y.dtype)
                y = y.clamp(-lim, lim)
            return y
        lo, hi = b.inner(y.dtype) if self.safe else (b.lo, b.hi)
        return torch.clamp(b.shift + b.half * y, lo, hi)

    def _value(self) -> Tensor:
        return self._point

    @lazy_property
    def base_dist(self) -> Delta:
        """The pre-tanh point mass ``Delta(param)`` (TorchRL's transformed-distribution view)."""
        return Delta(self.param, self.atol, self.rtol, self._batch_shape, self._event_shape)

    @lazy_property
    def transforms(self) -> list[D.Transform]:
        """``[t]`` with ``t`` mapping the pre-tanh point onto ``(low, high)`` (``t.inv`` back).

        Examples:
            >>> d = TanhDelta(torch.tensor([[0.5, -1.0]]), low=0.0, high=2.0)
            >>> torch.allclose(d.transforms[0](d.param), d.mode)
            True
            >>> bool(d.base_dist._is_equal(d.transforms[0].inv(d.mode)).all())
            True
        """
        t = SafeTanhTransform() if self.safe else D.TanhTransform()
        b = self._bounds
        if not b.unit:
            t = D.ComposeTransform([t, D.AffineTransform(b.shift, b.half)])
        return [t]

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TanhDelta:
        shape = torch.Size(batch_shape) + self._event_shape
        b = self._bounds
        return TanhDelta(
            self.param.expand(shape), b.low, b.high, self.event_dims, self.atol, self.rtol,
            self.safe,
        )
