"""The support ``[low, high]`` of the bounded distributions, checked once and cached.

``TanhNormal``, ``TanhDelta`` and ``TruncatedNormal`` read and check their
bounds the same way through :func:`get_bounds`; :class:`BoundedSupportMixin`
gives them ``low``, ``high`` and ``support``.
"""
from __future__ import annotations

import math
import weakref
from numbers import Number
from typing import Any

import torch
from torch import Tensor
from torch.distributions import constraints

from tdrl._compat import is_compiling as _is_compiling

__all__ = ["BoundedSupportMixin", "Bounds", "get_bounds"]


class Bounds:
    """The interval ``[low, high]`` of a bounded distribution, prepared for the hot path.

    ``lo``/``hi`` are the bounds, ``shift = (hi + lo) / 2`` and
    ``half = (hi - lo) / 2`` map ``[-1, 1]`` onto ``[lo, hi]``. When both bounds
    are Python numbers, or tensors whose entries are all equal, they are kept as
    floats (``is_tensor`` False) and the map costs at most two scalar ops;
    ``unit`` is True for ``[-1, 1]``, where the map is skipped. ``shape`` is the
    broadcast shape of tensor bounds (``None`` for numbers); ``low``/``high``
    are the bounds as given.
    """

    __slots__ = (
        "low", "high", "lo", "hi", "shift", "half", "log_half", "inv_half", "unit",
        "is_tensor", "shape", "_inner", "__weakref__",
    )

    def __init__(self, low: Any, high: Any, lo: Any, hi: Any, shape: torch.Size | None):
        self.low = low  # as given
        self.high = high
        self.lo = lo  # floats, or tensors in the parameters' dtype and device
        self.hi = hi
        self.shift = (hi + lo) / 2
        self.half = (hi - lo) / 2
        self.is_tensor = isinstance(lo, Tensor)
        self.shape = shape
        self._inner: dict = {}
        if self.is_tensor:
            self.log_half = self.half.log()
            self.inv_half = self.half.reciprocal()
            self.unit = False
        else:
            self.log_half = math.log(self.half)
            self.inv_half = 1.0 / self.half
            self.unit = lo == -1.0 and hi == 1.0

    def inner(self, dtype: torch.dtype) -> tuple[Any, Any]:
        """The closest values of ``dtype`` strictly inside ``(lo, hi)`` (cached per dtype).

        Floats for number bounds, tensors for tensor bounds.
        """
        hit = self._inner.get(dtype)
        if hit is None:
            lo = torch.as_tensor(self.lo, dtype=dtype)
            hi = torch.as_tensor(self.hi, dtype=dtype)
            lo_in, hi_in = torch.nextafter(lo, hi), torch.nextafter(hi, lo)
            if not self.is_tensor:
                lo_in, hi_in = lo_in.item(), hi_in.item()
            hit = self._inner[dtype] = (lo_in, hi_in)
        return hit

    def as_tensors(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(low, high)`` as tensors on the device and in the dtype of ``like``."""
        kw = {"dtype": like.dtype, "device": like.device}
        return torch.as_tensor(self.lo, **kw), torch.as_tensor(self.hi, **kw)


class BoundedSupportMixin:
    """``low``, ``high`` and ``support`` of a distribution bounded by ``self._bounds``.

    The bounds come as tensors on the device and in the dtype of the parameter named
    by ``_bounds_param`` (``"loc"`` by default); the support is an interval over the
    event dims. Put the mixin before the ``Distribution`` base class.

    Examples:
        >>> from tdrl.modules.distributions import TanhNormal
        >>> d = TanhNormal(torch.zeros(2, 3), torch.ones(2, 3), low=0.0, high=2.0)
        >>> d.low, d.high
        (tensor(0.), tensor(2.))
        >>> d.support.reinterpreted_batch_ndims
        1
    """

    _bounds: Bounds
    _event_shape: torch.Size
    _bounds_param = "loc"

    @property
    def low(self) -> Tensor:
        """The lower bound, as a tensor on the parameters' device."""
        return self._bounds.as_tensors(getattr(self, self._bounds_param))[0]

    @property
    def high(self) -> Tensor:
        """The upper bound, as a tensor on the parameters' device."""
        return self._bounds.as_tensors(getattr(self, self._bounds_param))[1]

    @property
    def support(self) -> constraints.Constraint:
        low, high = self._bounds.as_tensors(getattr(self, self._bounds_param))
        return constraints.independent(constraints.interval(low, high), len(self._event_shape))


_FLOAT_CACHE: dict[tuple[float, float], Bounds] = {}
# (low key, high key, dtype, device) -> (weakrefs to the tensor bounds, Bounds); a tensor's
# key holds its id and version counter, the weakrefs guard against a reused id.
_TENSOR_CACHE: dict[tuple, tuple[tuple, Bounds]] = {}
_CACHE_MAX = 256


def _bound_error(low: Any, high: Any, where: str = "") -> ValueError:
    return ValueError(
        f"low must be strictly smaller than high{where}, got low={low} and high={high}"
    )


def _float_bounds(low: float, high: float) -> Bounds:
    key = (low, high)
    b = _FLOAT_CACHE.get(key)
    if b is None:
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"low and high must be finite, got low={low} and high={high}")
        if not low < high:
            raise _bound_error(low, high)
        b = Bounds(low, high, low, high, None)
        if len(_FLOAT_CACHE) > _CACHE_MAX:
            _FLOAT_CACHE.clear()
        _FLOAT_CACHE[key] = b
    return b


def _tensor_bounds(low: Any, high: Any, like: Tensor) -> Bounds:
    dtype, device = like.dtype, like.device
    low_t = torch.as_tensor(low, dtype=dtype, device=device)
    high_t = torch.as_tensor(high, dtype=dtype, device=device)
    try:
        shape = torch.broadcast_shapes(low_t.shape, high_t.shape)
    except RuntimeError as err:
        raise ValueError(
            f"low and high must broadcast together, got shapes {tuple(low_t.shape)} "
            f"and {tuple(high_t.shape)}"
        ) from err
    if not bool(torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
        raise ValueError(f"low and high must be finite, got low={low_t} and high={high_t}")
    bad = low_t >= high_t
    if bool(bad.any()):
        idx = bad.nonzero()[0].tolist()
        raise _bound_error(low_t, high_t, f" everywhere (first offending index {idx})")
    # Uniform bounds (a spec's low/high are often all -1 and 1) become floats.
    lo_min, lo_max = low_t.aminmax()
    hi_min, hi_max = high_t.aminmax()
    if bool(lo_min == lo_max) and bool(hi_min == hi_max):
        return Bounds(low, high, lo_min.item(), hi_min.item(), shape)
    return Bounds(low, high, low_t, high_t, shape)


def _key(x: Any) -> tuple[Any, ...]:
    if isinstance(x, Tensor):
        return (id(x), x._version)
    return (float(x),)


def get_bounds(low: Any, high: Any, like: Tensor) -> Bounds:
    """Checks and prepares ``[low, high]`` for distributions whose parameters look like ``like``.

    ``low`` and ``high`` may be numbers or tensors (anything ``torch.as_tensor``
    accepts). Results are cached: floats by value, tensors by identity and
    version counter, so a spec's bound tensors passed on every call are checked
    and converted once. Under ``torch.compile``, tensor bounds are used as they
    are, without checks (which would need a device sync).

    Raises:
        ValueError: if ``low >= high`` somewhere (the message gives both), if a
            bound is not finite, or if the bounds do not broadcast together.

    Examples:
        >>> b = get_bounds(-1.0, 1.0, torch.zeros(3))
        >>> b.unit, b.shift, b.half
        (True, 0.0, 1.0)
        >>> b = get_bounds(torch.zeros(2), torch.tensor([1.0, 4.0]), torch.zeros(2))
        >>> b.is_tensor, b.shift
        (True, tensor([0.5000, 2.0000]))
        >>> get_bounds(1.0, 0.0, torch.zeros(1))
        Traceback (most recent call last):
        ...
        ValueError: low must be strictly smaller than high, got low=1.0 and high=0.0
    """
    low_is_t = isinstance(low, Tensor)
    high_is_t = isinstance(high, Tensor)
    if not low_is_t and not high_is_t and isinstance(low, Number) and isinstance(high, Number):
        return _float_bounds(float(low), float(high))
    if _is_compiling():
        kw = {"dtype": like.dtype, "device": like.device}
        low_t, high_t = torch.as_tensor(low, **kw), torch.as_tensor(high, **kw)
        return Bounds(low, high, low_t, high_t, torch.broadcast_shapes(low_t.shape, high_t.shape))
    key = (_key(low), _key(high), like.dtype, like.device)
    hit = _TENSOR_CACHE.get(key)
    if hit is not None:
        refs, b = hit
        if all(r is None or r() is x for r, x in zip(refs, (low, high))):
            return b
    b = _tensor_bounds(low, high, like)
    refs = tuple(weakref.ref(x) if isinstance(x, Tensor) else None for x in (low, high))
    if len(_TENSOR_CACHE) > _CACHE_MAX:
        _TENSOR_CACHE.clear()
    _TENSOR_CACHE[key] = (refs, b)
    return b
