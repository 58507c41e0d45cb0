"""Continuous-or-integer box specs: :class:`Unbounded` and :class:`Bounded`."""
from __future__ import annotations

from typing import Any

import torch

from tdrl.data.specs._utils import (
    _DEFAULT_UNBOUNDED_SHAPE,
    DeviceLike,
    DTypeLike,
    ShapeLike,
    _batch_shape_arg,
    _check_encode,
    _is_float,
    _reject_nan,
    _to_device,
    _to_dtype,
    _to_size,
    _to_tensor,
)
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.boxes import ContinuousBox


def _pick_domain_class(dtype: DTypeLike, domain: str | None, cont: type, disc: type) -> type:
    if domain is not None:
        if domain == "continuous":
            return cont
        if domain == "discrete":
            return disc
        raise ValueError(f"domain must be 'continuous' or 'discrete', got {domain!r}")
    if dtype is None:
        return cont
    return cont if _is_float(_to_dtype(dtype, torch.float32)) else disc


class Unbounded(TensorSpec):
    """An unbounded spec: any value of the right shape and dtype.

    ``Unbounded(...)`` returns an :class:`UnboundedContinuous` instance for floating dtypes
    (the default dtype is ``torch.get_default_dtype()``) and an :class:`UnboundedDiscrete`
    instance otherwise. ``shape`` defaults to ``(1,)``; an int ``shape`` means ``(shape,)``.

    Args:
        shape: sample shape (default ``torch.Size([1])``).
        device: device of the tensors (default: torch's default device).
        dtype: dtype of the tensors.
        domain: ``"continuous"`` or ``"discrete"`` to override the automatic choice.

    Examples:
        >>> import torch
        >>> from tdrl.data import Unbounded
        >>> spec = Unbounded(3)
        >>> type(spec).__name__, spec.shape, spec.dtype
        ('UnboundedContinuous', torch.Size([3]), torch.float32)
        >>> spec.rand((2,)).shape
        torch.Size([2, 3])
        >>> spec.project(torch.ones(3, dtype=torch.float64)).dtype
        torch.float32
        >>> type(Unbounded((), dtype=torch.int64)).__name__
        'UnboundedDiscrete'
    """

    def __new__(
        cls,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        domain: str | None = None,
    ):
        if cls is Unbounded:
            cls = _pick_domain_class(dtype, domain, UnboundedContinuous, UnboundedDiscrete)
        return super().__new__(cls)

    def __init__(
        self,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        domain: str | None = None,
    ) -> None:
        default = torch.int64 if isinstance(self, UnboundedDiscrete) else torch.get_default_dtype()
        size = _to_size(shape)
        self.shape = _DEFAULT_UNBOUNDED_SHAPE if size is None else size
        self.dtype = _to_dtype(dtype, default)
        self.device = _to_device(device)
        self.domain = "discrete" if isinstance(self, UnboundedDiscrete) else "continuous"

    def _dtype_range(self) -> tuple[float, float]:
        if self.dtype == torch.bool:
            return 0, 1
        info = torch.finfo(self.dtype) if _is_float(self.dtype) else torch.iinfo(self.dtype)
        return info.min, info.max

    @property
    def space(self) -> ContinuousBox:  # type: ignore[override]
        """The dtype's whole range, as a box of the spec's shape (unless assigned)."""
        if getattr(self, "_space", None) is not None:
            return self._space
        lo, hi = self._dtype_range()
        kw = {"dtype": self.dtype, "device": self.device}
        return ContinuousBox(torch.full(self.shape, lo, **kw), torch.full(self.shape, hi, **kw))

    @space.setter
    def space(self, value: ContinuousBox | None) -> None:
        # TorchRL lets any spec's space be assigned; membership stays the dtype's range
        self._space = value

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        size = _batch_shape_arg(shape) + self.shape
        if _is_float(self.dtype):
            return torch.randn(size, dtype=self.dtype, device=self.device)
        if self.dtype == torch.bool:
            return torch.randint(0, 2, size, device=self.device).bool()
        info = torch.iinfo(self.dtype)
        lo, hi = max(info.min, -100), min(info.max, 100)
        return torch.randint(lo, hi + 1, size, dtype=self.dtype, device=self.device)

    def _values_in(self, val: torch.Tensor) -> bool:
        return True

    def _check_encode(self, t: torch.Tensor) -> None:
        # a floating Unbounded spec admits every value of its dtype, NaN included
        _check_encode(t, type(self).__name__, self.dtype, nan_ok=_is_float(self.dtype))

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        # a floating Unbounded spec admits every value of its dtype, NaN included
        if _is_float(val.dtype) and not _is_float(self.dtype):
            _reject_nan(val, type(self).__name__)
            val = val.round()
        return val.to(self.dtype)

    def _rebuild(self, shape: torch.Size, fn) -> Unbounded:
        return type(self)(shape=shape, device=self.device, dtype=self.dtype)

    def _with(self, *, dtype=None, device=None) -> Unbounded:
        return Unbounded(
            shape=self.shape,
            device=self.device if device is None else device,
            dtype=self.dtype if dtype is None else dtype,
        )

    def _params_equal(self, other: TensorSpec) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        # a Bounded spec spanning the dtype's whole range describes the same values
        if isinstance(other, Bounded):
            lo, hi = self._dtype_range()
            return (
                (other.shape, other.dtype, other.device) == (self.shape, self.dtype, self.device)
                and bool((other.low == lo).all() and (other.high == hi).all())
            )
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def _repr_fields(self) -> list[str]:
        fields = super()._repr_fields()
        fields[1] = f"space=ContinuousBox(dtype range of {self.dtype})"
        return fields


class UnboundedContinuous(Unbounded):
    """:class:`Unbounded` spec with a floating dtype (default ``torch.get_default_dtype()``).

    Examples:
        >>> from tdrl.data import UnboundedContinuous
        >>> UnboundedContinuous(shape=(2,)).dtype
        torch.float32
    """


class UnboundedDiscrete(Unbounded):
    """:class:`Unbounded` spec with an integer dtype (default ``torch.int64``).

    Examples:
        >>> from tdrl.data import UnboundedDiscrete
        >>> UnboundedDiscrete().dtype, UnboundedDiscrete().shape
        (torch.int64, torch.Size([1]))
    """


# --------------------------------------------------------------------------------------
# Bounded
# --------------------------------------------------------------------------------------
class Bounded(TensorSpec):
    """A box spec: every element lies in ``[low, high]`` (both inclusive).

    ``low`` and ``high`` may be numbers, numpy arrays or tensors; they are broadcast to
    ``shape`` (if ``shape`` is None it is the broadcast shape of ``low`` and ``high``) and
    stored as tensors of the spec's dtype and device (``spec.low``, ``spec.high``,
    ``spec.space.low``, ``spec.space.high``). ``Bounded(...)`` returns a
    :class:`BoundedContinuous` instance for floating dtypes (default
    ``torch.get_default_dtype()``) and a :class:`BoundedDiscrete` instance otherwise.

    Examples:
        >>> import torch
        >>> from tdrl.data import Bounded
        >>> spec = Bounded(-1, 1, shape=(3,))
        >>> spec.low, spec.high
        (tensor([-1., -1., -1.]), tensor([1., 1., 1.]))
        >>> spec.project(torch.tensor([-3.0, 0.5, 7.0]))
        tensor([-1.0000,  0.5000,  1.0000])
        >>> bool(spec.is_in(spec.rand((10,))))
        True
        >>> type(Bounded(0, 5, shape=(), dtype=torch.int64)).__name__
        'BoundedDiscrete'
        >>> Bounded(1.0, 0.0, shape=())
        Traceback (most recent call last):
        ...
        ValueError: Bounded: low must be <= high everywhere, got low=1.0 > high=0.0 at index ()
    """

    def __new__(
        cls,
        low: Any = None,
        high: Any = None,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        domain: str | None = None,
    ):
        if cls is Bounded:
            cls = _pick_domain_class(dtype, domain, BoundedContinuous, BoundedDiscrete)
        return super().__new__(cls)

    def __init__(
        self,
        low: Any,
        high: Any,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        domain: str | None = None,
    ) -> None:
        default = torch.int64 if isinstance(self, BoundedDiscrete) else torch.get_default_dtype()
        self.dtype = _to_dtype(dtype, default)
        self.device = _to_device(device)
        self.domain = "discrete" if isinstance(self, BoundedDiscrete) else "continuous"
        if low is None or high is None:
            raise TypeError("Bounded: both low and high must be provided")
        low_t = _to_tensor(low, self.device)
        high_t = _to_tensor(high, self.device)
        for name, t in (("low", low_t), ("high", high_t)):
            if _is_float(t.dtype) and bool(torch.isnan(t).any()):
                raise ValueError(f"Bounded: {name} contains NaN values")
        size = _to_size(shape)
        if size is None:
            try:
                size = torch.broadcast_shapes(low_t.shape, high_t.shape)
            except RuntimeError as err:
                raise ValueError(
                    f"Bounded: low (shape {tuple(low_t.shape)}) and high (shape "
                    f"{tuple(high_t.shape)}) cannot be broadcast together"
                ) from err
        for name, t in (("low", low_t), ("high", high_t)):
            try:
                ok = torch.broadcast_shapes(t.shape, size) == size
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"Bounded: {name} has shape {tuple(t.shape)}, which cannot be broadcast to "
                    f"the spec shape {tuple(size)}"
                )
        low_t = low_t.to(self.dtype).expand(size).clone()
        high_t = high_t.to(self.dtype).expand(size).clone()
        bad = low_t > high_t
        if bool(bad.any()):
            where = tuple(int(i) for i in bad.nonzero()[0]) if bad.ndim else ()
            raise ValueError(
                f"Bounded: low must be <= high everywhere, got low={low_t[where].item()} > "
                f"high={high_t[where].item()} at index {where}"
            )
        self.shape = size
        self._space = ContinuousBox(low_t, high_t)
        self._finite = not _is_float(self.dtype) or bool(
            (low_t.isfinite() & high_t.isfinite()).all()
        )

    @property
    def low(self) -> torch.Tensor:
        return self.space.low

    @property
    def high(self) -> torch.Tensor:
        return self.space.high

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        size = _batch_shape_arg(shape) + self.shape
        lo, hi = self.low, self.high
        if _is_float(self.dtype):
            u = torch.rand(size, dtype=self.dtype, device=self.device)
            out = lo * (1 - u) + hi * u
            if not self._finite:
                # an infinite bound: a half-normal step away from the finite one (or N(0, 1))
                z = torch.randn(size, dtype=self.dtype, device=self.device)
                fallback = torch.where(
                    lo.isfinite(), lo + z.abs(), torch.where(hi.isfinite(), hi - z.abs(), z)
                )
                out = torch.where(lo.isfinite() & hi.isfinite(), out, fallback)
            return out.clamp_(lo, hi)
        u = torch.rand(size, dtype=torch.float64, device=self.device)
        lo, hi = lo.to(torch.float64), hi.to(torch.float64)
        return (lo + torch.floor(u * (hi - lo + 1))).clamp_(lo, hi).to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        # inside iff clamping changes nothing (one pass; NaN is never inside)
        if val.dtype == torch.bool:
            return bool(((val >= self.low) & (val <= self.high)).all())
        return torch.equal(val.clamp(self.low, self.high), val)

    def _check_encode(self, t: torch.Tensor) -> None:
        # integer bounds are checked (the cast would wrap); a float value is encoded as is
        # (environments overshoot their declared float bounds), but never a NaN
        if _is_float(self.dtype):
            _check_encode(t, type(self).__name__, self.dtype)
        else:
            _check_encode(t, type(self).__name__, self.dtype, self.low, self.high)

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        _reject_nan(val, type(self).__name__)
        if _is_float(self.dtype):
            if val.dtype != self.dtype:
                val = val.to(self.dtype)
            return val.clamp(self.low, self.high)
        if _is_float(val.dtype):
            lo, hi = self.low.to(val.dtype), self.high.to(val.dtype)
            return val.clamp(lo, hi).round().to(self.dtype)
        if val.dtype == torch.bool:
            val = val.to(self.dtype)
        val = val.to(torch.promote_types(val.dtype, self.dtype))
        return val.clamp(self.low, self.high).to(self.dtype)

    def unbind(self, dim: int = 0) -> tuple[TensorSpec, ...]:
        """Like :meth:`TensorSpec.unbind`; ``dim=-1`` is refused (as in TorchRL).

        TorchRL treats the last dimension of a box as its value vector: name it with a
        non-negative ``dim`` to unbind it anyway.
        """
        if dim == -1:
            raise ValueError(
                f"{type(self).__name__}.unbind: dim=-1 (the last dimension of a box) must "
                f"remain unchanged; pass dim={self.ndim - 1} to unbind it explicitly"
            )
        return super().unbind(dim)

    def _stack_dense(self, specs: list, dim: int) -> Bounded | None:
        if any(s.shape != self.shape for s in specs):
            return None
        low = torch.stack([s.low for s in specs], dim)
        high = torch.stack([s.high for s in specs], dim)
        return type(self)(low, high, shape=low.shape, device=self.device, dtype=self.dtype)

    def _rebuild(self, shape: torch.Size, fn) -> Bounded:
        return type(self)(
            low=fn(self.low).clone(),
            high=fn(self.high).clone(),
            shape=shape,
            device=self.device,
            dtype=self.dtype,
        )

    def _with(self, *, dtype=None, device=None) -> Bounded:
        dtype = self.dtype if dtype is None else dtype
        device = self.device if device is None else device
        return Bounded(
            low=self.low.to(device), high=self.high.to(device), shape=self.shape,
            device=device, dtype=dtype,
        )

    def _discrete_range(self) -> tuple[int, int]:
        if _is_float(self.dtype):
            raise ValueError(
                f"{type(self).__name__} with dtype {self.dtype} is continuous and cannot be "
                "enumerated"
            )
        lo, hi = self.low.flatten(), self.high.flatten()
        if lo.numel() == 0 or not (bool((lo == lo[0]).all()) and bool((hi == hi[0]).all())):
            raise ValueError(
                f"{type(self).__name__}.enumerate requires the same low/high for every element"
            )
        return int(lo[0]), int(hi[0])

    def enumerate(self) -> torch.Tensor:
        lo, hi = self._discrete_range()
        vals = torch.arange(lo, hi + 1, device=self.device, dtype=self.dtype)
        return vals.view(-1, *([1] * self.ndim)).expand(-1, *self.shape).clone()

    def cardinality(self) -> int:
        lo, hi = self._discrete_range()
        return hi - lo + 1


class BoundedContinuous(Bounded):
    """:class:`Bounded` spec with a floating dtype.

    Examples:
        >>> from tdrl.data import BoundedContinuous
        >>> BoundedContinuous(0.0, 1.0, shape=(2,)).domain
        'continuous'
    """


class BoundedDiscrete(Bounded):
    """:class:`Bounded` spec with an integer dtype (default ``torch.int64``).

    Examples:
        >>> from tdrl.data import BoundedDiscrete
        >>> spec = BoundedDiscrete(0, 3, shape=())
        >>> spec.dtype, spec.enumerate()
        (torch.int64, tensor([0, 1, 2, 3]))
    """
