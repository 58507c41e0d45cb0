"""The spec base class: shape conventions, membership, projection, encoding, shape ops."""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tdrl.data.specs._utils import (
    DeviceLike,
    ShapeLike,
    SpecShapeError,
    _batch_shape_arg,
    _check_encode,
    _ends_with,
    _expanded_shape,
    _indent,
    _normalize_index,
    _positive_steps,
    _Settings,
    _shape_args,
    _shape_probe,
    _to_device,
    _to_tensor,
)
from tdrl.data.specs.boxes import Box

# torch functions that accept specs (``torch.stack`` is registered by ``stacked``)
_TORCH_FUNCTIONS: dict[Callable, Callable] = {}


def implements(torch_function: Callable) -> Callable[[Callable], Callable]:
    """Register ``fn`` as what ``torch_function`` does when given specs."""

    def register(fn: Callable) -> Callable:
        _TORCH_FUNCTIONS[torch_function] = fn
        return fn

    return register


class TensorSpec:
    """Common base class of all specs (leaves and :class:`Composite`).

    Attributes: ``shape`` (``torch.Size``), ``dtype``, ``device``, ``space`` (a :class:`Box`)
    and ``domain`` (``"continuous"``, ``"discrete"`` or ``"composite"``).

    Examples:
        >>> from tdrl.data import OneHot, TensorSpec
        >>> spec = OneHot(3)
        >>> isinstance(spec, TensorSpec), spec.shape, spec.ndim
        (True, torch.Size([3]), 1)
    """

    shape: torch.Size
    dtype: torch.dtype
    device: torch.device | None
    domain: str = ""
    # number of trailing "feature" dimensions that cannot be indexed/expanded/squeezed
    _feature_ndim: int = 0

    # ---- basic properties ------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def ndimension(self) -> int:
        return self.ndim

    @property
    def _batch_shape(self) -> torch.Size:
        return self.shape[: self.ndim - self._feature_ndim]

    @property
    def space(self) -> Box | None:
        return self._space

    @space.setter
    def space(self, value: Box | None) -> None:
        self._space = value

    # ---- shape checks ------------------------------------------------------------------
    def _shape_matches(self, x: torch.Tensor) -> bool:
        return _ends_with(x.shape, self.shape)

    def _check_shape(self, x: torch.Tensor, method: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"{type(self).__name__}.{method} expects a torch.Tensor, got {type(x).__name__}"
            )
        if not self._shape_matches(x):
            raise ValueError(
                f"{type(self).__name__}.{method}: expected a tensor whose trailing shape is "
                f"{tuple(self.shape)}, got shape {tuple(x.shape)}"
            )

    # ---- sampling ------------------------------------------------------------------------
    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        """Return a random sample of shape ``(*shape, *self.shape)`` inside the spec."""
        raise NotImplementedError

    def zero(self, shape: ShapeLike = None) -> torch.Tensor:
        """Return a zero-filled tensor of shape ``(*shape, *self.shape)``.

        Like TorchRL, this is a zero-filled buffer: it is not necessarily inside the spec
        (e.g. a :class:`OneHot` zero has no hot entry).
        """
        size = _batch_shape_arg(shape) + self.shape
        return torch.zeros(size, dtype=self.dtype, device=self.device)

    def one(self, shape: ShapeLike = None) -> torch.Tensor:
        """Return a tensor filled with ones, of shape ``(*shape, *self.shape)``."""
        size = _batch_shape_arg(shape) + self.shape
        return torch.ones(size, dtype=self.dtype, device=self.device)

    def zeros(self, shape: ShapeLike = None) -> Any:
        """Same as :meth:`zero` (TorchRL's alias).

        Examples:
            >>> from tdrl.data import Categorical
            >>> Categorical(3).zeros((2,))
            tensor([0, 0])
        """
        return self.zero(shape)

    def ones(self, shape: ShapeLike = None) -> Any:
        """Same as :meth:`one` (TorchRL's alias)."""
        return self.one(shape)

    # ---- membership / projection ---------------------------------------------------------
    def is_in(self, val: torch.Tensor) -> bool:
        """Whether ``val`` could have been produced by this spec (leading batch dims allowed)."""
        if not isinstance(val, torch.Tensor) or not self._shape_matches(val):
            return False
        if val.dtype != self.dtype:
            return False
        return self._values_in(val)

    def _values_in(self, val: torch.Tensor) -> bool:
        raise NotImplementedError

    def contains(self, val: torch.Tensor) -> bool:
        """Alias of :meth:`is_in`."""
        return self.is_in(val)

    def assert_is_in(self, val: torch.Tensor) -> None:
        """Raise ``AssertionError`` (naming the spec) if ``val`` is not in the spec."""
        if not self.is_in(val):
            shape = tuple(val.shape) if isinstance(val, torch.Tensor) else None
            dtype = val.dtype if isinstance(val, torch.Tensor) else type(val).__name__
            raise AssertionError(
                f"value (shape={shape}, dtype={dtype}) is not in {type(self).__name__} "
                f"(shape={tuple(self.shape)}, dtype={self.dtype})"
            )

    def project(self, val: torch.Tensor) -> torch.Tensor:
        """Map ``val`` into the spec; values already in the spec are returned unchanged."""
        self._check_shape(val, "project")
        return self._project(val)

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---- conversion ------------------------------------------------------------------------
    def encode(self, val: Any, *, ignore_device: bool = False) -> torch.Tensor:
        """Convert ``val`` (numpy array, list, number or tensor) to a tensor of this spec.

        The result has the spec's dtype (and device unless ``ignore_device``) and exactly
        the spec's shape: a value with the same number of elements is reshaped (e.g. a
        Python float for a spec of shape ``(1,)``); any other shape raises (expand the spec
        first to encode a batch). A NaN raises ``ValueError`` naming the spec, as in
        :meth:`project` (a floating ``Unbounded`` takes it as a value of its dtype), and so
        does a value an integer or bool spec cannot hold (outside its categories, its
        integer bounds or its dtype's range; casting would give int64's minimum). With
        ``tdrl.data.tensor_specs._CHECK_SPEC_ENCODE = True`` the result is also checked
        against the spec (``AssertionError`` if outside).

        Examples:
            >>> import numpy as np
            >>> from tdrl.data import Bounded
            >>> Bounded(0.0, 1.0, shape=(2,)).encode(np.array([0.5, 1.0]))
            tensor([0.5000, 1.0000])
            >>> Bounded(0.0, 1.0, shape=(2,)).expand(3, 2).encode(np.zeros((3, 2))).shape
            torch.Size([3, 2])
            >>> Bounded(0.0, 1.0, shape=(2,)).encode([0.5, float("nan")])
            Traceback (most recent call last):
            ...
            ValueError: BoundedContinuous.encode: the value contains NaN (1 of 2 elements), which cannot be encoded into the spec
        """
        t = _to_tensor(val, None if ignore_device else self.device)
        out = self._encode_tensor(t)
        self._check_encode(out)
        out = out.to(self.dtype)
        if _Settings.check_spec_encode:
            self.assert_is_in(out)
        return out

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        return self._fit_shape(t)

    def _check_encode(self, t: torch.Tensor) -> None:
        """``encode``'s value rule before the cast (NaN; the dtype's range): see ``_check_encode``."""
        _check_encode(t, type(self).__name__, self.dtype)

    def _fit_shape(self, t: torch.Tensor, shape: torch.Size | None = None) -> torch.Tensor:
        shape = self.shape if shape is None else shape
        if t.shape == shape:
            return t
        if t.numel() == shape.numel():
            return t.reshape(shape)
        raise SpecShapeError(
            f"{type(self).__name__}.encode: Shape mismatch: a value of shape {tuple(t.shape)} "
            f"cannot be encoded into a spec of shape {tuple(shape)} (shape {list(shape)} is "
            f"invalid for input of size {t.numel()}); expand the spec to encode a batch"
        )

    @staticmethod
    def _safe(safe: bool | None) -> bool:
        return _Settings.check_spec_encode if safe is None else bool(safe)

    def memoize_encode(self, mode: bool = True) -> None:
        """Accepted for TorchRL compatibility: tdrl's ``encode`` has no plan to cache.

        Examples:
            >>> from tdrl.data import Categorical
            >>> spec = Categorical(3)
            >>> spec.memoize_encode()
            >>> spec.encode(2)
            tensor(2)
        """
        self._memoize_encode = bool(mode)

    def erase_memoize_cache(self) -> None:
        """Accepted for TorchRL compatibility (nothing is cached, see :meth:`memoize_encode`)."""

    def type_check(self, value: torch.Tensor, key: Any = None) -> None:
        """Raise ``TypeError`` if ``value`` is not a tensor of the spec's dtype.

        Examples:
            >>> import torch
            >>> from tdrl.data import Categorical
            >>> Categorical(3).type_check(torch.zeros((), dtype=torch.float32))
            Traceback (most recent call last):
            ...
            TypeError: value.dtype=torch.float32 but Categorical.dtype=torch.int64
        """
        dtype = getattr(value, "dtype", type(value).__name__)
        if dtype != self.dtype:
            raise TypeError(f"value.dtype={dtype} but {type(self).__name__}.dtype={self.dtype}")

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        """Convert a tensor of this spec to a numpy array (checked against the spec if safe).

        ``safe`` defaults to ``tdrl.data.tensor_specs._CHECK_SPEC_ENCODE`` (False).
        """
        if self._safe(safe):
            self.assert_is_in(val)
        val = val.detach()
        if val.dtype in (torch.bfloat16,):
            val = val.float()
        return val.cpu().numpy()

    # ---- shape ops ------------------------------------------------------------------------
    def _transform(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TensorSpec:
        """Apply a batch-dims-only tensor op ``fn`` to the spec (shape and parameters)."""
        batch = self._batch_shape
        new_batch = fn(_shape_probe(batch)).shape
        return self._rebuild(new_batch + self.shape[len(batch) :], fn)

    def _rebuild(self, shape: torch.Size, fn: Callable[[torch.Tensor], torch.Tensor]) -> TensorSpec:
        raise NotImplementedError

    def expand(self, *shape: Any) -> TensorSpec:
        """Return a spec with a larger batch shape (same rules as ``Tensor.expand``).

        Examples:
            >>> from tdrl.data import OneHot
            >>> OneHot(4).expand(2, 4).shape
            torch.Size([2, 4])
        """
        new = _shape_args(shape)
        cls = type(self).__name__
        f = self._feature_ndim
        if f:
            feat = self.shape[self.ndim - f :]
            if len(new) < f or any(
                s not in (-1, c) for s, c in zip(new[len(new) - f :], feat)
            ):
                raise ValueError(
                    f"{cls}.expand: the last dimension must stay {tuple(feat)}, got new shape "
                    f"{tuple(new)}"
                )
            new = torch.Size(list(new[: len(new) - f]) + list(feat))
        full = _expanded_shape(self.shape, new, cls)
        new_batch = full[: len(full) - f]
        old_nd = len(self._batch_shape)

        def fn(t: torch.Tensor) -> torch.Tensor:
            return t.expand(torch.Size([*new_batch, *t.shape[old_nd:]]))

        return self._transform(fn)

    def squeeze(self, dim: int | None = None) -> TensorSpec:
        """Remove singleton batch dimension(s) (all of them if ``dim`` is None).

        Examples:
            >>> from tdrl.data import Unbounded
            >>> Unbounded(shape=(1, 3, 1)).squeeze().shape
            torch.Size([3])
        """
        batch = self._batch_shape
        if self.ndim == 0:
            if dim is not None:
                self._resolve_dim(dim, 0, "squeeze")
            return self.clone()
        if dim is None:
            dims = tuple(i for i, s in enumerate(batch) if s == 1)
        else:
            d = self._resolve_dim(dim, self.ndim, "squeeze")
            if d >= len(batch):
                raise ValueError(
                    f"{type(self).__name__}.squeeze: dim {dim} is the feature dimension, which "
                    "cannot be squeezed"
                )
            dims = (d,) if batch[d] == 1 else ()
        if not dims:
            return self.clone()
        return self._transform(lambda t: t.squeeze(dims))

    def unsqueeze(self, dim: int) -> TensorSpec:
        """Insert a singleton batch dimension at ``dim``.

        Examples:
            >>> from tdrl.data import Categorical
            >>> Categorical(3).unsqueeze(0).shape
            torch.Size([1])
        """
        d = self._resolve_dim(dim, self.ndim + 1, "unsqueeze")
        if d > len(self._batch_shape):
            raise ValueError(
                f"{type(self).__name__}.unsqueeze: cannot insert a dimension at {dim}, after "
                f"the feature dimension (valid positions: 0..{len(self._batch_shape)})"
            )
        return self._transform(lambda t: t.unsqueeze(d))

    def _resolve_dim(self, dim: int, ndim: int, method: str) -> int:
        dim = operator.index(dim)
        if not -ndim <= dim < max(ndim, 1):
            raise IndexError(
                f"{type(self).__name__}.{method}: dim {dim} out of range for "
                f"{ndim} dimension(s)"
            )
        return dim % ndim if ndim else 0

    def __getitem__(self, idx: Any) -> TensorSpec:
        """Index the batch dimensions of the spec (the feature dimension is kept)."""
        nidx = _normalize_index(idx, len(self._batch_shape), type(self).__name__)
        flips, nidx = _positive_steps(nidx, self._batch_shape)
        if flips:
            return self._transform(lambda t: t.flip(flips)[nidx])
        return self._transform(lambda t: t[nidx])

    def unbind(self, dim: int = 0) -> tuple[TensorSpec, ...]:
        """Split the spec along batch dimension ``dim`` (like ``Tensor.unbind``).

        ``torch.stack(spec.unbind(d), d)`` gives back an equal spec.

        Examples:
            >>> from tdrl.data import OneHot
            >>> [s.shape for s in OneHot(4, shape=(2, 4)).unbind(0)]
            [torch.Size([4]), torch.Size([4])]
        """
        d = self._unbind_dim(dim)
        lead = (slice(None),) * d
        return tuple(self[lead + (i,)] for i in range(self.shape[d]))

    def _unbind_dim(self, dim: int) -> int:
        nb = len(self._batch_shape)
        d = operator.index(dim)
        d = d + self.ndim if d < 0 else d
        if not 0 <= d < nb:
            raise ValueError(
                f"{type(self).__name__}.unbind: cannot unbind along dim {dim} of a spec of shape "
                f"{tuple(self.shape)} (batch dimensions: {nb}; the feature dimension of "
                "one-hot, binary and multi-discrete specs must remain unchanged)"
            )
        return d

    def _stack_dense(self, specs: list[TensorSpec], dim: int) -> TensorSpec | None:
        """One spec of this class for ``specs`` stacked at ``dim``, or None if impossible.

        Called by ``torch.stack`` on specs of one class that are not all equal.
        """
        return None

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        """Lets ``torch.stack``, ``torch.squeeze``, ``torch.unsqueeze`` take specs."""
        handler = _TORCH_FUNCTIONS.get(func)
        if handler is None:
            raise TypeError(
                f"{getattr(func, '__name__', func)} does not accept specs; supported: "
                f"{sorted(f.__name__ for f in _TORCH_FUNCTIONS)}"
            )
        return handler(*args, **(kwargs or {}))

    def index(self, index: Any, tensor_to_index: torch.Tensor) -> torch.Tensor:
        """Index ``tensor_to_index`` with ``index`` (plain tensor indexing by default)."""
        return tensor_to_index[index]

    # ---- misc ------------------------------------------------------------------------------
    def clone(self) -> TensorSpec:
        return self._transform(lambda t: t.clone())

    def to(self, dest: Any) -> TensorSpec:
        """Move the spec to a device (or cast it to a dtype if ``dest`` is a dtype)."""
        if isinstance(dest, torch.dtype):
            if dest == self.dtype:
                return self
            return self._with(dtype=dest)
        device = _to_device(dest)
        if device == self.device:
            return self
        return self._with(device=device)

    def _with(self, *, dtype: torch.dtype | None = None, device: torch.device | None = None):
        raise NotImplementedError

    def cpu(self) -> TensorSpec:
        return self.to("cpu")

    def cuda(self, device: DeviceLike = None) -> TensorSpec:
        return self.to("cuda" if device is None else device)

    def enumerate(self) -> torch.Tensor:
        """All possible values, stacked along a new first dimension (discrete specs only)."""
        raise ValueError(
            f"{type(self).__name__} (domain={self.domain}) cannot be enumerated: only discrete "
            "specs have a finite set of values"
        )

    def cardinality(self) -> int:
        """Number of values returned by :meth:`enumerate` (discrete specs only)."""
        raise ValueError(
            f"{type(self).__name__} (domain={self.domain}) has no finite cardinality"
        )

    def _params_equal(self, other: TensorSpec) -> bool:
        return self.space == other.space

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        return (
            self.shape == other.shape  # type: ignore[attr-defined]
            and self.dtype == other.dtype  # type: ignore[attr-defined]
            and self.device == other.device  # type: ignore[attr-defined]
            and self._params_equal(other)  # type: ignore[arg-type]
        )

    __hash__ = None  # type: ignore[assignment]

    def _repr_fields(self) -> list[str]:
        return [
            f"shape={self.shape}",
            f"space={self.space!r}",
            f"device={self.device}",
            f"dtype={self.dtype}",
            f"domain={self.domain}",
        ]

    def __repr__(self) -> str:
        fields = ",\n".join(_indent(f) for f in self._repr_fields())
        return f"{type(self).__name__}(\n{fields})"


@implements(torch.squeeze)
def _squeeze(spec: TensorSpec, dim: int | None = None) -> TensorSpec:
    return spec.squeeze(dim)


@implements(torch.unsqueeze)
def _unsqueeze(spec: TensorSpec, dim: int) -> TensorSpec:
    return spec.unsqueeze(dim)
