"""Tensor specs: metadata describing the shape, dtype, device and domain of tensors.

The public API follows TorchRL's documented spec system (``torchrl.data``): the same class
names, constructor signatures, default dtypes and shape conventions, so spec code written
for TorchRL runs unchanged.

Conventions (shared by every leaf spec):

* ``spec.shape`` is the full shape of one sample. Leading dimensions are batch dimensions;
  for :class:`OneHot`, :class:`MultiOneHot`, :class:`Binary` and :class:`MultiCategorical`
  the last dimension is the *feature* dimension (``n``, ``sum(nvec)``, ``n``, ``len(nvec)``)
  and can never be indexed, squeezed or expanded.
* ``spec.rand(shape)`` / ``zero(shape)`` / ``one(shape)`` return tensors of shape
  ``(*shape, *spec.shape)``.
* ``spec.is_in(x)`` accepts extra leading batch dimensions, and requires
  ``x.dtype == spec.dtype``.
* ``spec.project(x)`` maps any finite ``x`` whose trailing shape is ``spec.shape`` into the
  spec, and leaves in-spec values unchanged.

Examples:
    >>> import torch
    >>> from tdrl.data import Bounded, Categorical, Composite, OneHot
    >>> spec = Composite(action=OneHot(4), obs=Bounded(-1.0, 1.0, shape=(3,)), shape=())
    >>> td = spec.rand((5,))
    >>> td["action"].shape, td["action"].dtype, td["obs"].shape
    (torch.Size([5, 4]), torch.bool, torch.Size([5, 3]))
    >>> spec.is_in(td)
    True
    >>> Categorical(4, shape=(1,)).rand().shape
    torch.Size([1])
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase

__all__ = [
    "TensorSpec",
    "Unbounded",
    "UnboundedContinuous",
    "UnboundedDiscrete",
    "Bounded",
    "BoundedContinuous",
    "BoundedDiscrete",
    "OneHot",
    "Categorical",
    "MultiOneHot",
    "MultiCategorical",
    "Binary",
    "Composite",
    "Box",
    "ContinuousBox",
    "CategoricalBox",
    "DiscreteBox",
    "BinaryBox",
    "BoxList",
    # legacy TorchRL names
    "OneHotDiscreteTensorSpec",
    "DiscreteTensorSpec",
    "BoundedTensorSpec",
    "UnboundedContinuousTensorSpec",
    "UnboundedDiscreteTensorSpec",
    "CompositeSpec",
    "MultiOneHotDiscreteTensorSpec",
    "MultiDiscreteTensorSpec",
    "BinaryDiscreteTensorSpec",
]

ShapeLike = Union[int, Sequence[int], torch.Size, None]
DeviceLike = Union[torch.device, str, int, None]
DTypeLike = Union[torch.dtype, str, None]
NestedKey = Union[str, tuple]

_DEFAULT_UNBOUNDED_SHAPE = torch.Size([1])
_MISSING = object()


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------
def _to_size(shape: ShapeLike, what: str = "shape") -> torch.Size | None:
    """Normalise ``shape`` (None, int, sequence of ints, torch.Size) to a ``torch.Size``."""
    if shape is None:
        return None
    if isinstance(shape, torch.Size):
        dims = list(shape)
    elif isinstance(shape, torch.Tensor):
        dims = shape.tolist()
        if not isinstance(dims, list):
            dims = [dims]
    else:
        try:
            dims = [operator.index(shape)]
        except TypeError:
            try:
                dims = [operator.index(d) for d in shape]
            except TypeError as err:
                raise TypeError(
                    f"{what} must be an int or a sequence of ints, got {shape!r}"
                ) from err
    if any(d < 0 for d in dims):
        raise ValueError(f"{what} must contain non-negative sizes, got {tuple(dims)}")
    return torch.Size(dims)


def _shape_ending_in(size: torch.Size | None, last: int, cls: str, what: str) -> torch.Size:
    """``size`` (default ``(last,)``), checked to end with ``last`` (``what`` names it)."""
    if size is None:
        return torch.Size([last])
    if len(size) == 0 or size[-1] != last:
        raise ValueError(
            f"{cls}: the last dimension of shape must equal {what}={last}, got shape "
            f"{tuple(size)}"
        )
    return size


def _batch_shape_arg(shape: ShapeLike) -> torch.Size:
    size = _to_size(shape, "batch shape")
    return torch.Size([]) if size is None else size


def _shape_args(shape: tuple) -> torch.Size:
    """Parse ``expand(3, 4)`` / ``expand((3, 4))`` style arguments (``-1`` allowed)."""
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = tuple(shape[0])
    try:
        return torch.Size([operator.index(s) for s in shape])
    except TypeError as err:
        raise TypeError(f"shape must be a sequence of ints, got {shape!r}") from err


def _to_dtype(dtype: DTypeLike, default: torch.dtype) -> torch.dtype:
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        name = dtype[len("torch.") :] if dtype.startswith("torch.") else dtype
        candidate = getattr(torch, name, None)
        if isinstance(candidate, torch.dtype):
            return candidate
        raise ValueError(f"unknown dtype string {dtype!r}")
    raise TypeError(f"dtype must be a torch.dtype or a string, got {type(dtype).__name__}")


def _default_device() -> torch.device:
    getter = getattr(torch, "get_default_device", None)
    return getter() if getter is not None else torch.device("cpu")


def _to_device(device: DeviceLike) -> torch.device:
    if device is None:
        return _default_device()
    if isinstance(device, torch.device):
        return device
    return torch.device(device)


def _is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point or dtype.is_complex


def _check_n(n: Any, cls: str, name: str = "n") -> int:
    if isinstance(n, bool):
        raise TypeError(f"{cls}: {name} must be an int, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError as err:
        raise TypeError(f"{cls}: {name} must be an int, got {n!r}") from err
    if n <= 0:
        raise ValueError(f"{cls}: {name} must be a positive int, got {name}={n}")
    return n


def _check_nvec(nvec: Any, cls: str) -> list[int]:
    if isinstance(nvec, torch.Tensor):
        if nvec.ndim != 1:
            raise ValueError(f"{cls}: nvec must be one-dimensional, got shape {tuple(nvec.shape)}")
        nvec = nvec.tolist()
    elif isinstance(nvec, np.ndarray):
        if nvec.ndim != 1:
            raise ValueError(f"{cls}: nvec must be one-dimensional, got shape {nvec.shape}")
        nvec = nvec.tolist()
    elif not isinstance(nvec, Sequence) or isinstance(nvec, str):
        nvec = [nvec]
    nvec = list(nvec)
    if len(nvec) == 0:
        raise ValueError(f"{cls}: nvec must contain at least one cardinality, got []")
    return [_check_n(v, cls, f"nvec[{i}]") for i, v in enumerate(nvec)]


def _check_int_range(n_max: int, dtype: torch.dtype, cls: str) -> None:
    """Make sure value ``n_max`` can be represented by ``dtype``."""
    if dtype == torch.bool:
        if n_max > 1:
            raise ValueError(f"{cls}: dtype torch.bool can only hold values 0 and 1, need {n_max}")
    elif not _is_float(dtype) and n_max > torch.iinfo(dtype).max:
        raise ValueError(
            f"{cls}: dtype {dtype} cannot hold the value {n_max} (max {torch.iinfo(dtype).max})"
        )


def _as_mask(mask: Any, target: torch.Size, device: torch.device, cls: str) -> torch.Tensor | None:
    """Validate a boolean mask that must be expandable to ``target``."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask, device=device)
    if _is_float(mask.dtype):
        raise TypeError(f"{cls}: mask must be a boolean tensor, got dtype {mask.dtype}")
    if mask.dtype != torch.bool:
        mask = mask != 0
    try:
        ok = torch.broadcast_shapes(mask.shape, target) == target
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{cls}: mask of shape {tuple(mask.shape)} cannot be expanded to the expected "
            f"shape {tuple(target)}"
        )
    return mask


def _sample_allowed(mask: torch.Tensor) -> torch.Tensor:
    """Uniformly sample one allowed index along the last dim of a boolean mask."""
    if not bool(mask.any(-1).all()):
        raise ValueError(
            "cannot sample from a spec whose mask disallows every outcome for some element"
        )
    scores = torch.rand(mask.shape, device=mask.device).masked_fill_(~mask, -1.0)
    return scores.argmax(-1)


def _check_mask_rows(mask: torch.Tensor) -> None:
    if not bool(mask.any(-1).all()):
        raise ValueError(
            "cannot project onto a spec whose mask disallows every outcome for some element"
        )


def _nearest_allowed(v: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """Index of the allowed outcome nearest to integer-valued ``v`` (ties -> lower index)."""
    _check_mask_rows(mask)
    support = torch.arange(n, device=v.device)
    dist = (support - v.unsqueeze(-1)).abs().to(torch.float64)
    return dist.masked_fill_(~mask, math.inf).argmin(-1)


def _ends_with(shape: torch.Size, suffix: torch.Size) -> bool:
    return len(shape) >= len(suffix) and shape[len(shape) - len(suffix) :] == suffix


def _expanded_shape(old: torch.Size, new: torch.Size, cls: str) -> torch.Size:
    """Apply ``Tensor.expand`` rules (``-1`` keeps a size, 1 broadcasts) with clear errors."""
    if len(new) < len(old):
        raise ValueError(
            f"{cls}.expand: the new shape {tuple(new)} has fewer dimensions than the current "
            f"shape {tuple(old)}"
        )
    lead = len(new) - len(old)
    out = []
    for i, s in enumerate(new):
        if i < lead:
            if s < 0:
                raise ValueError(
                    f"{cls}.expand: -1 is not allowed for new leading dimensions, got {tuple(new)}"
                )
            out.append(s)
            continue
        cur = old[i - lead]
        if s == -1:
            out.append(cur)
        elif s == cur or cur == 1:
            out.append(s)
        else:
            raise ValueError(
                f"{cls}.expand: cannot expand shape {tuple(old)} to {tuple(new)} "
                f"(dimension {i}: {cur} -> {s})"
            )
    return torch.Size(out)


def _normalize_index(idx: Any, batch_ndim: int, cls: str) -> tuple:
    """Turn an index into a tuple without Ellipsis that only touches the batch dims."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    consumed = 0
    n_ellipsis = 0
    for item in idx:
        if item is Ellipsis:
            n_ellipsis += 1
        elif item is None:
            continue
        elif isinstance(item, torch.Tensor) and item.dtype == torch.bool:
            consumed += max(item.ndim, 1)
        else:
            consumed += 1
    if n_ellipsis > 1:
        raise IndexError(f"{cls}: an index can only have a single ellipsis")
    if consumed > batch_ndim:
        raise IndexError(
            f"{cls}: too many indices ({consumed}) for a spec with {batch_ndim} indexable "
            "(batch) dimension(s); the feature dimension cannot be indexed"
        )
    out: list = []
    for item in idx:
        if item is Ellipsis:
            out.extend([slice(None)] * (batch_ndim - consumed))
        else:
            out.append(item)
    return tuple(out)


def _to_tensor(val: Any, device: torch.device | None) -> torch.Tensor:
    if isinstance(val, torch.Tensor):
        return val if device is None else val.to(device)
    if isinstance(val, np.ndarray):
        val = np.ascontiguousarray(val)
    return torch.as_tensor(val, device=device)


def _tensor_repr(t: torch.Tensor) -> str:
    if t.numel() <= 6:
        return f"tensor({t.tolist()})"
    return f"Tensor(shape={t.shape}, device={t.device}, dtype={t.dtype})"


def _indent(text: str, spaces: int = 4) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.split("\n"))


# --------------------------------------------------------------------------------------
# spaces
# --------------------------------------------------------------------------------------
class Box:
    """Base class of the value domains exposed as ``spec.space``."""

    def clone(self) -> Box:
        raise NotImplementedError

    def to(self, dest: Any) -> Box:
        return self


class ContinuousBox(Box):
    """A box ``[low, high]`` (inclusive); ``low`` and ``high`` are tensors of the spec shape.

    Examples:
        >>> import torch
        >>> box = ContinuousBox(torch.zeros(2), torch.ones(2))
        >>> box.low, box.high
        (tensor([0., 0.]), tensor([1., 1.]))
    """

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low = low
        self.high = high

    def clone(self) -> ContinuousBox:
        return ContinuousBox(self.low.clone(), self.high.clone())

    def to(self, dest: Any) -> ContinuousBox:
        return ContinuousBox(self.low.to(dest), self.high.to(dest))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ContinuousBox)
            and self.low.shape == other.low.shape
            and self.low.dtype == other.low.dtype
            and self.low.device == other.low.device
            and bool(torch.equal(self.low, other.low))
            and bool(torch.equal(self.high, other.high))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ContinuousBox(low={_tensor_repr(self.low)}, high={_tensor_repr(self.high)})"


class CategoricalBox(Box):
    """The set ``{0, ..., n - 1}``.

    Examples:
        >>> CategoricalBox(3).n
        3
    """

    def __init__(self, n: int) -> None:
        self.n = n

    def clone(self) -> CategoricalBox:
        return type(self)(self.n)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.n == self.n  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.n))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n})"


DiscreteBox = CategoricalBox


class BinaryBox(CategoricalBox):
    """Binary vectors of length ``n`` (``space.n`` is the vector length).

    Examples:
        >>> BinaryBox(4).n
        4
    """


class BoxList(Box):
    """A list of :class:`CategoricalBox` (one per block of a multi-discrete spec).

    Examples:
        >>> box = BoxList.from_nvec([3, 2])
        >>> box.nvec, len(box), box[1]
        ([3, 2], 2, CategoricalBox(n=2))
    """

    def __init__(self, boxes: Sequence[CategoricalBox]) -> None:
        self.boxes = list(boxes)

    @classmethod
    def from_nvec(cls, nvec: Sequence[int]) -> BoxList:
        return cls([CategoricalBox(int(n)) for n in nvec])

    @property
    def nvec(self) -> list[int]:
        return [b.n for b in self.boxes]

    def __getitem__(self, item: int) -> CategoricalBox:
        return self.boxes[item]

    def __len__(self) -> int:
        return len(self.boxes)

    def __iter__(self) -> Iterator[CategoricalBox]:
        return iter(self.boxes)

    def clone(self) -> BoxList:
        return BoxList([b.clone() for b in self.boxes])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoxList) and other.nvec == self.nvec

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BoxList(nvec={self.nvec})"


# --------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------
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

        The result has the spec's dtype (and device unless ``ignore_device``). A value with
        the right number of elements but another shape (e.g. a Python float for a spec of
        shape ``(1,)``) is reshaped to ``spec.shape``.
        """
        t = _to_tensor(val, None if ignore_device else self.device)
        t = self._encode_tensor(t)
        return t.to(self.dtype)

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        return self._fit_shape(t)

    def _fit_shape(self, t: torch.Tensor) -> torch.Tensor:
        if _ends_with(t.shape, self.shape):
            return t
        if t.numel() == self.shape.numel():
            return t.reshape(self.shape)
        raise ValueError(
            f"{type(self).__name__}.encode: cannot encode a value of shape {tuple(t.shape)} "
            f"into a spec of shape {tuple(self.shape)}"
        )

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        """Convert a tensor of this spec to a numpy array (checked against the spec if safe)."""
        if safe:
            self.assert_is_in(val)
        val = val.detach()
        if val.dtype in (torch.bfloat16,):
            val = val.float()
        return val.cpu().numpy()

    # ---- shape ops ------------------------------------------------------------------------
    def _transform(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TensorSpec:
        """Apply a batch-dims-only tensor op ``fn`` to the spec (shape and parameters)."""
        batch = self._batch_shape
        new_batch = fn(torch.empty(batch, device="meta")).shape
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
            return t.expand(*new_batch, *t.shape[old_nd:])

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
        return self._transform(lambda t: t[nidx])

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


# --------------------------------------------------------------------------------------
# masked discrete mixin
# --------------------------------------------------------------------------------------
class _MaskedMixin:
    """Shared mask handling; subclasses define ``_mask_target`` (full mask shape)."""

    mask: torch.Tensor | None

    @property
    def _mask_target(self) -> torch.Size:
        raise NotImplementedError

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or clear, with ``None``) the boolean mask of allowed outcomes.

        ``False`` entries are forbidden: :meth:`rand` never samples them, :meth:`is_in`
        rejects them and :meth:`project` moves values to allowed outcomes. The mask must be
        expandable to the spec's one-hot shape (see ``_mask_target``).
        """
        self.mask = _as_mask(mask, self._mask_target, self.device, type(self).__name__)

    def _full_mask(self, batch: torch.Size | None = None) -> torch.Tensor | None:
        if self.mask is None:
            return None
        return self.mask.expand((batch or torch.Size([])) + self._mask_target)

    def _mask_equal(self, other: Any) -> bool:
        if (self.mask is None) != (other.mask is None):
            return False
        if self.mask is None:
            return True
        return bool(torch.equal(self._full_mask(), other._full_mask()))

    def _mask_repr(self) -> list[str]:
        if self.mask is None:
            return []
        return [f"mask=Tensor(shape={self.mask.shape}, dtype={self.mask.dtype})"]

    def _fn_mask(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
        return None if self.mask is None else fn(self._full_mask()).clone()

    def _spec_args(self) -> tuple[Any, dict[str, Any]]:
        """The leading constructor argument (``n`` or ``nvec``) and any extra keyword ones."""
        raise NotImplementedError

    def _remake(self, shape: torch.Size, device: Any, dtype: Any, mask: Any) -> Any:
        arg, extra = self._spec_args()
        return type(self)(arg, shape=shape, device=device, dtype=dtype, mask=mask, **extra)

    def _rebuild(self, shape: torch.Size, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
        return self._remake(shape, self.device, self.dtype, self._fn_mask(fn))

    def _with(self, *, dtype: Any = None, device: Any = None) -> Any:
        device = self.device if device is None else device
        return self._remake(
            self.shape, device, self.dtype if dtype is None else dtype,
            None if self.mask is None else self.mask.to(device),
        )

    def _params_equal(self, other: Any) -> bool:
        return self.space == other.space and self._mask_equal(other)

    def _repr_fields(self) -> list[str]:
        return super()._repr_fields() + self._mask_repr()  # type: ignore[misc]


class _OneOfNMixin(_MaskedMixin):
    """Shared parts of :class:`OneHot` and :class:`Categorical` (one outcome among ``n``)."""

    @property
    def n(self) -> int:
        return self.space.n

    def cardinality(self) -> int:
        return self.n

    def _spec_args(self) -> tuple[Any, dict[str, Any]]:
        return self.n, {}

    def _enumerated(self, out: torch.Tensor, use_mask: bool) -> torch.Tensor:
        """``enumerate``'s result: with ``use_mask``, only outcomes allowed everywhere."""
        if use_mask and self.mask is not None:
            allowed = self._full_mask().reshape(-1, self.n).all(0)
            out = out[allowed]
        return out.clone()


# --------------------------------------------------------------------------------------
# Unbounded
# --------------------------------------------------------------------------------------
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

    @property
    def space(self) -> ContinuousBox:  # type: ignore[override]
        if self.dtype == torch.bool:
            lo, hi = 0, 1
        elif _is_float(self.dtype):
            info = torch.finfo(self.dtype)
            lo, hi = info.min, info.max
        else:
            info = torch.iinfo(self.dtype)
            lo, hi = info.min, info.max
        kw = {"dtype": self.dtype, "device": self.device}
        return ContinuousBox(torch.full(self.shape, lo, **kw), torch.full(self.shape, hi, **kw))

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

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if _is_float(val.dtype) and not _is_float(self.dtype):
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

    @property
    def low(self) -> torch.Tensor:
        return self.space.low

    @property
    def high(self) -> torch.Tensor:
        return self.space.high

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        size = _batch_shape_arg(shape) + self.shape
        if _is_float(self.dtype):
            lo = self.low.expand(size)
            hi = self.high.expand(size)
            u = torch.rand(size, dtype=self.dtype, device=self.device)
            out = lo * (1 - u) + hi * u
            finite = torch.isfinite(lo) & torch.isfinite(hi)
            z = torch.randn(size, dtype=self.dtype, device=self.device)
            fallback = torch.where(
                torch.isfinite(lo), lo + z.abs(), torch.where(torch.isfinite(hi), hi - z.abs(), z)
            )
            out = torch.where(finite, out, fallback)
            return torch.minimum(torch.maximum(out, lo), hi)
        lo = self.low.to(torch.float64).expand(size)
        hi = self.high.to(torch.float64).expand(size)
        u = torch.rand(size, dtype=torch.float64, device=self.device)
        out = (lo + torch.floor(u * (hi - lo + 1))).clamp(max=hi)
        return torch.minimum(torch.maximum(out, lo), hi).to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        return bool(((val >= self.low) & (val <= self.high)).all())

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if _is_float(self.dtype):
            val = val.to(self.dtype)
            return torch.minimum(torch.maximum(val, self.low), self.high)
        if _is_float(val.dtype):
            lo, hi = self.low.to(val.dtype), self.high.to(val.dtype)
            val = torch.minimum(torch.maximum(val, lo), hi).round()
            return val.to(self.dtype)
        if val.dtype == torch.bool:
            val = val.to(self.dtype)
        val = val.to(torch.promote_types(val.dtype, self.dtype))
        return torch.minimum(torch.maximum(val, self.low), self.high).to(self.dtype)

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


# --------------------------------------------------------------------------------------
# OneHot
# --------------------------------------------------------------------------------------
class OneHot(_OneOfNMixin, TensorSpec):
    """One-hot encoded discrete spec: the last dimension (of size ``n``) has one hot entry.

    Args:
        n: number of possible outcomes.
        shape: full sample shape; its last dimension must be ``n`` (default ``(n,)``).
        device: device of the tensors.
        dtype: dtype of the samples (default ``torch.bool``).
        use_register: unsupported TorchRL feature, must be False.
        mask: boolean mask of allowed outcomes, expandable to ``shape``.

    ``project`` keeps the argmax (among allowed outcomes); ``to_numpy`` returns the index
    of the hot entry, like TorchRL.

    Examples:
        >>> import torch
        >>> from tdrl.data import OneHot
        >>> spec = OneHot(4, mask=torch.tensor([True, False, True, False]))
        >>> spec.space.n, spec.shape, spec.dtype
        (4, torch.Size([4]), torch.bool)
        >>> bool(spec.rand((100,)).any(0)[1])
        False
        >>> spec.project(torch.tensor([0.1, 5.0, 0.2, 0.0]))
        tensor([False, False,  True, False])
        >>> spec.to_categorical(torch.tensor([False, False, True, False]))
        tensor(2)
        >>> OneHot(4, shape=(3,))
        Traceback (most recent call last):
        ...
        ValueError: OneHot: the last dimension of shape must equal n=4, got shape (3,)
    """

    _feature_ndim = 1
    domain = "discrete"

    def __init__(
        self,
        n: int,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = torch.bool,
        use_register: bool = False,
        mask: torch.Tensor | None = None,
    ) -> None:
        if use_register:
            raise NotImplementedError("OneHot: use_register=True is not supported by tdrl")
        n = _check_n(n, "OneHot")
        self.shape = _shape_ending_in(_to_size(shape), n, "OneHot", "n")
        self.dtype = _to_dtype(dtype, torch.bool)
        self.device = _to_device(device)
        self.use_register = False
        self._space = CategoricalBox(n)
        self.update_mask(mask)

    @property
    def _mask_target(self) -> torch.Size:
        return self.shape

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        batch = _batch_shape_arg(shape)
        mask = self._full_mask(batch)
        if mask is None:
            idx = torch.randint(self.n, batch + self.shape[:-1], device=self.device)
        else:
            idx = _sample_allowed(mask)
        return F.one_hot(idx, self.n).to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        if val.dtype == torch.bool:
            ok = val.sum(-1) == 1
        else:
            ok = ((val == 0) | (val == 1)).all(-1) & (val.sum(-1) == 1)
        if self.mask is not None:
            ok = ok & (val.bool() & self.mask).any(-1)
        return bool(ok.all())

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        scores = val if _is_float(val.dtype) else val.to(torch.float64)
        if self.mask is not None:
            mask = self.mask.expand(val.shape)
            _check_mask_rows(mask)
            scores = scores.masked_fill(~mask, -math.inf)
        return F.one_hot(scores.argmax(-1), self.n).to(self.dtype)

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        if _ends_with(t.shape, self.shape):
            as_int = t.to(torch.int64) if not _is_float(t.dtype) else t
            if bool((((as_int == 0) | (as_int == 1)).all(-1) & (as_int.sum(-1) == 1)).all()):
                return t
        if _ends_with(t.shape, self.shape[:-1]) and not _is_float(t.dtype):
            t = t.to(torch.int64)
            if bool(((t < 0) | (t >= self.n)).any()):
                raise ValueError(
                    f"OneHot.encode: categorical values must be in [0, {self.n - 1}], got "
                    f"min={int(t.min())}, max={int(t.max())}"
                )
            return F.one_hot(t, self.n)
        return self._fit_shape(t)

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        """Return the index of the hot entry as a numpy array (TorchRL semantics)."""
        if safe:
            self.assert_is_in(val)
        return val.detach().to(torch.int64).argmax(-1).cpu().numpy()

    def index(self, index: torch.Tensor, tensor_to_index: torch.Tensor) -> torch.Tensor:
        """Pick, along the last dim of ``tensor_to_index``, the entry that ``index`` selects.

        Returns a tensor of shape ``(*batch, 1)`` (e.g. the chosen action value).

        Examples:
            >>> import torch
            >>> from tdrl.data import OneHot
            >>> values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
            >>> action = torch.tensor([[0, 0, 1], [1, 0, 0]], dtype=torch.bool)
            >>> OneHot(3).index(action, values)
            tensor([[3.],
                    [4.]])
        """
        idx = index.to(torch.int64).argmax(-1, keepdim=True)
        shape = torch.broadcast_shapes(idx.shape[:-1], tensor_to_index.shape[:-1])
        return tensor_to_index.expand(*shape, tensor_to_index.shape[-1]).gather(
            -1, idx.expand(*shape, 1)
        )

    def to_one_hot(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Identity (the value is already one-hot encoded)."""
        if safe:
            self.assert_is_in(val)
        return val

    def to_one_hot_spec(self) -> OneHot:
        return self

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Convert a one-hot value to the index of its hot entry (``torch.int64``)."""
        if safe:
            self.assert_is_in(val)
        return val.to(torch.int64).argmax(-1)

    def to_categorical_spec(self) -> Categorical:
        """The equivalent :class:`Categorical` spec (same ``n``, mask and batch shape)."""
        return Categorical(
            self.n, shape=self.shape[:-1], device=self.device, mask=self._fn_mask(lambda t: t)
        )

    def enumerate(self, use_mask: bool = False) -> torch.Tensor:
        """The ``n`` one-hot values, stacked along dim 0 (shape ``(n, *shape)``).

        With ``use_mask=True`` only outcomes allowed for every batch element are kept.
        """
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        out = eye.view(self.n, *([1] * (self.ndim - 1)), self.n).expand(self.n, *self.shape)
        return self._enumerated(out, use_mask)


# --------------------------------------------------------------------------------------
# Categorical
# --------------------------------------------------------------------------------------
class Categorical(_OneOfNMixin, TensorSpec):
    """Discrete spec storing indices in ``{0, ..., n - 1}``.

    The sample shape is exactly ``shape`` (default ``()``): add a singleton dimension
    explicitly (``shape=(1,)``) if you need one. The mask must be expandable to
    ``(*shape, n)``. ``project`` rounds, clamps to ``[0, n - 1]`` and, with a mask, moves
    to the nearest allowed index.

    Examples:
        >>> import torch
        >>> from tdrl.data import Categorical
        >>> spec = Categorical(4)
        >>> spec.shape, spec.dtype, spec.space.n
        (torch.Size([]), torch.int64, 4)
        >>> Categorical(4, shape=(1,)).rand().shape
        torch.Size([1])
        >>> spec.project(torch.tensor([-2.0, 1.4, 9.0]))
        tensor([0, 1, 3])
        >>> masked = Categorical(4, mask=torch.tensor([True, False, False, True]))
        >>> masked.project(torch.tensor([1, 2]))
        tensor([0, 3])
        >>> spec.to_one_hot(torch.tensor(2))
        tensor([False, False,  True, False])
    """

    domain = "discrete"

    def __init__(
        self,
        n: int,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = torch.int64,
        mask: torch.Tensor | None = None,
    ) -> None:
        n = _check_n(n, "Categorical")
        size = _to_size(shape)
        self.shape = torch.Size([]) if size is None else size
        self.dtype = _to_dtype(dtype, torch.int64)
        _check_int_range(n - 1, self.dtype, "Categorical")
        self.device = _to_device(device)
        self._space = CategoricalBox(n)
        self.update_mask(mask)

    @property
    def _mask_target(self) -> torch.Size:
        return self.shape + torch.Size([self.n])

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        batch = _batch_shape_arg(shape)
        mask = self._full_mask(batch)
        if mask is None:
            out = torch.randint(self.n, batch + self.shape, device=self.device)
        else:
            out = _sample_allowed(mask)
        return out.to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        ok = (val >= 0) & (val < self.n)
        if not bool(ok.all()):
            return False
        if self.mask is not None:
            mask = self.mask.expand(*val.shape, self.n)
            return bool(mask.gather(-1, val.to(torch.int64).unsqueeze(-1)).all())
        return True

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if val.dtype == torch.bool:
            val = val.to(torch.int64)
        if _is_float(val.dtype):
            val = val.clamp(0, self.n - 1).round()
        else:
            val = val.clamp(0, self.n - 1)
        val = val.to(torch.int64)
        if self.mask is not None:
            val = _nearest_allowed(val, self.mask.expand(*val.shape, self.n), self.n)
        return val.to(self.dtype)

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        return self._fit_shape(t)

    def index(self, index: torch.Tensor, tensor_to_index: torch.Tensor) -> torch.Tensor:
        """Gather ``tensor_to_index`` along its last dim; the result has ``index``'s shape.

        Examples:
            >>> import torch
            >>> from tdrl.data import Categorical
            >>> values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
            >>> Categorical(3, shape=(1,)).index(torch.tensor([[2], [0]]), values)
            tensor([[3.],
                    [4.]])
        """
        idx = index.to(torch.int64)
        if idx.ndim == tensor_to_index.ndim:
            return tensor_to_index.gather(-1, idx)
        return tensor_to_index.gather(-1, idx.unsqueeze(-1)).squeeze(-1)

    def to_one_hot(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Convert indices to boolean one-hot vectors of size ``n`` (new last dim)."""
        if safe:
            self.assert_is_in(val)
        return F.one_hot(val.to(torch.int64), self.n).bool()

    def to_one_hot_spec(self) -> OneHot:
        """The equivalent :class:`OneHot` spec (shape ``(*shape, n)``, same mask)."""
        return OneHot(
            self.n, shape=self._mask_target, device=self.device,
            mask=self._fn_mask(lambda t: t),
        )

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Identity (the value is already categorical)."""
        if safe:
            self.assert_is_in(val)
        return val

    def to_categorical_spec(self) -> Categorical:
        return self

    def enumerate(self, use_mask: bool = False) -> torch.Tensor:
        """The values ``0..n-1`` broadcast to the spec shape, stacked along dim 0."""
        vals = torch.arange(self.n, device=self.device).to(self.dtype)
        out = vals.view(self.n, *([1] * self.ndim)).expand(self.n, *self.shape)
        return self._enumerated(out, use_mask)


# --------------------------------------------------------------------------------------
# Binary
# --------------------------------------------------------------------------------------
class Binary(TensorSpec):
    """Binary vectors: every element is 0 or 1; the last dimension has size ``n``.

    Unlike :class:`OneHot`, several entries can be 1. ``n`` may be omitted if ``shape`` is
    given (``n = shape[-1]``). ``project`` thresholds at 0.5.

    Examples:
        >>> import torch
        >>> from tdrl.data import Binary
        >>> spec = Binary(4)
        >>> spec.shape, spec.dtype, spec.space.n
        (torch.Size([4]), torch.int8, 4)
        >>> spec.project(torch.tensor([0.2, 0.7, -1.0, 3.0]))
        tensor([0, 1, 0, 1], dtype=torch.int8)
        >>> Binary(shape=(2, 3)).n
        3
    """

    _feature_ndim = 1
    domain = "discrete"

    def __init__(
        self,
        n: int | None = None,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = torch.int8,
    ) -> None:
        size = _to_size(shape)
        if n is None:
            if size is None or len(size) == 0:
                raise ValueError(
                    f"Binary: provide n or a non-empty shape, got n=None and shape={size}"
                )
            n = size[-1]
            if n == 0:
                raise ValueError(f"Binary: the last dimension of shape must be > 0, got {size}")
        n = _check_n(n, "Binary")
        self.shape = _shape_ending_in(size, n, "Binary", "n")
        self.dtype = _to_dtype(dtype, torch.int8)
        self.device = _to_device(device)
        self._space = BinaryBox(n)

    @property
    def n(self) -> int:
        return self.space.n

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        size = _batch_shape_arg(shape) + self.shape
        return torch.randint(0, 2, size, device=self.device).to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        if val.dtype == torch.bool:
            return True
        return bool(((val == 0) | (val == 1)).all())

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if val.dtype == torch.bool:
            return val.to(self.dtype)
        return (val > 0.5).to(self.dtype)

    def enumerate(self) -> torch.Tensor:
        """All ``2**n`` binary vectors, stacked along dim 0 (shape ``(2**n, *shape)``)."""
        if self.n > 24:
            raise ValueError(f"Binary.enumerate: 2**{self.n} values is too many to enumerate")
        codes = torch.arange(2**self.n, device=self.device)
        bits = torch.arange(self.n - 1, -1, -1, device=self.device)
        vals = ((codes.unsqueeze(-1) >> bits) & 1).to(self.dtype)
        k = vals.shape[0]
        return vals.view(k, *([1] * (self.ndim - 1)), self.n).expand(k, *self.shape).clone()

    def cardinality(self) -> int:
        return 2**self.n

    def _rebuild(self, shape: torch.Size, fn) -> Binary:
        return Binary(self.n, shape=shape, device=self.device, dtype=self.dtype)

    def _with(self, *, dtype=None, device=None) -> Binary:
        return Binary(
            self.n, shape=self.shape, device=self.device if device is None else device,
            dtype=self.dtype if dtype is None else dtype,
        )


# --------------------------------------------------------------------------------------
# MultiOneHot
# --------------------------------------------------------------------------------------
class MultiOneHot(_MaskedMixin, TensorSpec):
    """Concatenation of one-hot blocks of sizes ``nvec``; the last dimension is ``sum(nvec)``.

    Each block has exactly one hot entry. The mask (expandable to ``shape``) applies to the
    concatenated vector. ``to_numpy`` returns one index per block.

    Examples:
        >>> import torch
        >>> from tdrl.data import MultiOneHot
        >>> spec = MultiOneHot([3, 2])
        >>> spec.shape, spec.nvec, spec.space.nvec
        (torch.Size([5]), [3, 2], [3, 2])
        >>> spec.is_in(torch.tensor([0, 0, 1, 1, 0], dtype=torch.bool))
        True
        >>> spec.project(torch.tensor([0.1, 0.9, 0.0, -1.0, 2.0]))
        tensor([False,  True, False, False,  True])
        >>> spec.to_categorical(torch.tensor([0, 0, 1, 1, 0], dtype=torch.bool))
        tensor([2, 0])
    """

    _feature_ndim = 1
    domain = "discrete"

    def __init__(
        self,
        nvec: Sequence[int],
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = torch.bool,
        use_register: bool = False,
        mask: torch.Tensor | None = None,
    ) -> None:
        if use_register:
            raise NotImplementedError("MultiOneHot: use_register=True is not supported by tdrl")
        nvec = _check_nvec(nvec, "MultiOneHot")
        self.shape = _shape_ending_in(_to_size(shape), sum(nvec), "MultiOneHot", "sum(nvec)")
        self.dtype = _to_dtype(dtype, torch.bool)
        self.device = _to_device(device)
        self.use_register = False
        self._space = BoxList.from_nvec(nvec)
        self.update_mask(mask)

    @property
    def nvec(self) -> list[int]:
        return self.space.nvec

    @property
    def _mask_target(self) -> torch.Size:
        return self.shape

    def _blocks(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return t.split(self.nvec, dim=-1)

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        batch = _batch_shape_arg(shape)
        mask = self._full_mask(batch)
        outs = []
        for i, n in enumerate(self.nvec):
            if mask is None:
                idx = torch.randint(n, batch + self.shape[:-1], device=self.device)
            else:
                idx = _sample_allowed(self._blocks(mask)[i])
            outs.append(F.one_hot(idx, n))
        return torch.cat(outs, -1).to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        if val.dtype != torch.bool and not bool(((val == 0) | (val == 1)).all()):
            return False
        for block in self._blocks(val):
            if not bool((block.sum(-1) == 1).all()):
                return False
        if self.mask is not None:
            hot_ok = (~val.bool()) | self.mask
            if not bool(hot_ok.all()):
                return False
        return True

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        scores = val if _is_float(val.dtype) else val.to(torch.float64)
        if self.mask is not None:
            mask = self.mask.expand(val.shape)
            for block in self._blocks(mask):
                _check_mask_rows(block)
            scores = scores.masked_fill(~mask, -math.inf)
        outs = [F.one_hot(b.argmax(-1), n) for b, n in zip(self._blocks(scores), self.nvec)]
        return torch.cat(outs, -1).to(self.dtype)

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        if _ends_with(t.shape, self.shape):
            return t
        k = len(self.nvec)
        if t.ndim >= 1 and t.shape[-1] == k and not _is_float(t.dtype):
            return MultiCategorical(self.nvec, device=self.device).to_one_hot(t)
        return self._fit_shape(t)

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        """Return one index per block (last dim ``len(nvec)``) as a numpy array."""
        return self.to_categorical(val, safe=safe).detach().cpu().numpy()

    def index(self, index: torch.Tensor, tensor_to_index: torch.Tensor) -> torch.Tensor:
        """Per block, pick the entry of ``tensor_to_index`` selected by the one-hot ``index``.

        ``tensor_to_index`` has last dim ``sum(nvec)``; the result has last dim ``len(nvec)``.
        """
        cat = self.to_categorical(index)
        offsets = torch.tensor([0, *self.nvec[:-1]], device=cat.device).cumsum(0)
        pos = cat + offsets
        shape = torch.broadcast_shapes(pos.shape[:-1], tensor_to_index.shape[:-1])
        return tensor_to_index.expand(*shape, tensor_to_index.shape[-1]).gather(
            -1, pos.expand(*shape, pos.shape[-1])
        )

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Convert to one index per block (``torch.int64``, last dim ``len(nvec)``)."""
        if safe:
            self.assert_is_in(val)
        return torch.stack([b.to(torch.int64).argmax(-1) for b in self._blocks(val)], -1)

    def to_categorical_spec(self) -> MultiCategorical:
        """The equivalent :class:`MultiCategorical` spec (same nvec, mask and batch shape)."""
        return MultiCategorical(
            self.nvec, shape=self.shape[:-1] + torch.Size([len(self.nvec)]),
            device=self.device, mask=self._fn_mask(lambda t: t),
        )

    def to_one_hot(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Identity (the value is already one-hot encoded)."""
        if safe:
            self.assert_is_in(val)
        return val

    def to_one_hot_spec(self) -> MultiOneHot:
        return self

    def enumerate(self) -> torch.Tensor:
        """All ``prod(nvec)`` combinations, stacked along dim 0."""
        cat = self.to_categorical_spec().enumerate()
        return MultiCategorical(self.nvec, device=self.device).to_one_hot(cat).to(self.dtype)

    def cardinality(self) -> int:
        return math.prod(self.nvec)

    def _spec_args(self) -> tuple[Any, dict[str, Any]]:
        return self.nvec, {}


# --------------------------------------------------------------------------------------
# MultiCategorical
# --------------------------------------------------------------------------------------
class MultiCategorical(_MaskedMixin, TensorSpec):
    """Several categorical variables side by side: the last dimension is ``len(nvec)``.

    Element ``i`` of the last dimension lies in ``{0, ..., nvec[i] - 1}``. ``spec.nvec`` is
    a 1-D ``torch.int64`` tensor. The mask must be expandable to
    ``(*shape[:-1], sum(nvec))`` (the concatenated one-hot layout).

    Examples:
        >>> import torch
        >>> from tdrl.data import MultiCategorical
        >>> spec = MultiCategorical([3, 2])
        >>> spec.shape, spec.dtype, spec.space.nvec
        (torch.Size([2]), torch.int64, [3, 2])
        >>> spec.is_in(torch.tensor([2, 1])), spec.is_in(torch.tensor([2, 2]))
        (True, False)
        >>> spec.project(torch.tensor([7.0, -3.0]))
        tensor([2, 0])
        >>> spec.to_one_hot(torch.tensor([2, 0]))
        tensor([False, False,  True,  True, False])
    """

    _feature_ndim = 1
    domain = "discrete"

    def __init__(
        self,
        nvec: Sequence[int] | torch.Tensor,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = torch.int64,
        mask: torch.Tensor | None = None,
        remove_singleton: bool = True,
    ) -> None:
        nvec = _check_nvec(nvec, "MultiCategorical")
        self.shape = _shape_ending_in(
            _to_size(shape), len(nvec), "MultiCategorical", "len(nvec)"
        )
        self.dtype = _to_dtype(dtype, torch.int64)
        _check_int_range(max(nvec) - 1, self.dtype, "MultiCategorical")
        self.device = _to_device(device)
        # kept for signature compatibility: samples always have exactly ``spec.shape``
        self.remove_singleton = remove_singleton
        self._space = BoxList.from_nvec(nvec)
        self._nvec_t = torch.tensor(nvec, dtype=torch.int64, device=self.device)
        self.update_mask(mask)

    @property
    def nvec(self) -> torch.Tensor:
        return self._nvec_t

    @property
    def _mask_target(self) -> torch.Size:
        return self.shape[:-1] + torch.Size([sum(self.space.nvec)])

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        batch = _batch_shape_arg(shape)
        mask = self._full_mask(batch)
        if mask is None:
            u = torch.rand(batch + self.shape, dtype=torch.float64, device=self.device)
            out = torch.minimum((u * self._nvec_t).floor().to(torch.int64), self._nvec_t - 1)
        else:
            blocks = mask.split(self.space.nvec, -1)
            out = torch.stack([_sample_allowed(b) for b in blocks], -1)
        return out.to(self.dtype)

    def _offsets(self, device: torch.device) -> torch.Tensor:
        nv = self._nvec_t.to(device)
        return nv.cumsum(0) - nv

    def _values_in(self, val: torch.Tensor) -> bool:
        nv = self._nvec_t.to(val.device)
        if not bool(((val >= 0) & (val < nv)).all()):
            return False
        if self.mask is not None:
            mask = self.mask.expand(*val.shape[:-1], self._mask_target[-1])
            pos = val.to(torch.int64) + self._offsets(val.device)
            return bool(mask.gather(-1, pos).all())
        return True

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        if val.dtype == torch.bool:
            val = val.to(torch.int64)
        hi = (self._nvec_t - 1).to(val.device)
        if _is_float(val.dtype):
            val = torch.minimum(val.clamp(min=0), hi.to(val.dtype)).round()
        else:
            val = torch.minimum(val.clamp(min=0), hi.to(val.dtype))
        val = val.to(torch.int64)
        if self.mask is not None:
            mask = self.mask.expand(*val.shape[:-1], self._mask_target[-1])
            cols = [
                _nearest_allowed(val[..., i], block, n)
                for i, (block, n) in enumerate(zip(mask.split(self.space.nvec, -1),
                                                   self.space.nvec))
            ]
            val = torch.stack(cols, -1)
        return val.to(self.dtype)

    def index(self, index: torch.Tensor, tensor_to_index: torch.Tensor) -> torch.Tensor:
        """Per variable, pick the entry of ``tensor_to_index`` (last dim ``sum(nvec)``).

        The result has last dim ``len(nvec)``.
        """
        pos = index.to(torch.int64) + self._offsets(index.device)
        shape = torch.broadcast_shapes(pos.shape[:-1], tensor_to_index.shape[:-1])
        return tensor_to_index.expand(*shape, tensor_to_index.shape[-1]).gather(
            -1, pos.expand(*shape, pos.shape[-1])
        )

    def to_one_hot(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Concatenated boolean one-hot blocks (last dim ``sum(nvec)``)."""
        if safe:
            self.assert_is_in(val)
        val = val.to(torch.int64)
        outs = [F.one_hot(val[..., i], n) for i, n in enumerate(self.space.nvec)]
        return torch.cat(outs, -1).bool()

    def to_one_hot_spec(self) -> MultiOneHot:
        """The equivalent :class:`MultiOneHot` spec (same nvec, mask and batch shape)."""
        return MultiOneHot(
            self.space.nvec, shape=self._mask_target, device=self.device,
            mask=self._fn_mask(lambda t: t),
        )

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Identity (the value is already categorical)."""
        if safe:
            self.assert_is_in(val)
        return val

    def to_categorical_spec(self) -> MultiCategorical:
        return self

    def enumerate(self) -> torch.Tensor:
        """All ``prod(nvec)`` combinations, stacked along dim 0."""
        grids = torch.meshgrid(
            *[torch.arange(n, device=self.device) for n in self.space.nvec], indexing="ij"
        )
        combos = torch.stack([g.reshape(-1) for g in grids], -1).to(self.dtype)
        k = combos.shape[0]
        return combos.view(k, *([1] * (self.ndim - 1)), combos.shape[-1]).expand(
            k, *self.shape
        ).clone()

    def cardinality(self) -> int:
        return math.prod(self.space.nvec)

    def _spec_args(self) -> tuple[Any, dict[str, Any]]:
        return self.space.nvec, {"remove_singleton": self.remove_singleton}


# --------------------------------------------------------------------------------------
# Composite
# --------------------------------------------------------------------------------------
def _is_key(key: Any) -> bool:
    if isinstance(key, str):
        return True
    return isinstance(key, tuple) and len(key) > 0 and all(_is_key(k) for k in key)


def _unravel(key: NestedKey) -> tuple[str, ...]:
    """Flatten a (possibly nested) key into a tuple of strings."""
    if isinstance(key, str):
        return (key,)
    out: list[str] = []
    for k in key:
        out.extend(_unravel(k))
    return tuple(out)


def _key_repr(key: tuple[str, ...]) -> NestedKey:
    return key[0] if len(key) == 1 else key


class _CompositeKeys:
    """A live view over the keys of a :class:`Composite` (supports ``in``, ``len``, iteration).

    Nested keys are yielded as tuples of strings; top-level keys as strings.
    """

    def __init__(self, spec: Composite, include_nested: bool, leaves_only: bool) -> None:
        self._spec = spec
        self._include_nested = include_nested
        self._leaves_only = leaves_only

    def __iter__(self) -> Iterator[NestedKey]:
        for key, _ in self._spec._iter_items(self._include_nested, self._leaves_only):
            yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if not _is_key(key):
            return False
        path = _unravel(key)  # type: ignore[arg-type]
        if len(path) > 1 and not self._include_nested:
            return False
        try:
            value = self._spec._get_path(path)
        except KeyError:
            return False
        return not (self._leaves_only and isinstance(value, Composite))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _CompositeKeys):
            other = list(other)
        if isinstance(other, (list, tuple, set, frozenset)):
            return set(self) == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CompositeKeys({list(self)})"


class Composite(TensorSpec):
    """A (possibly nested) mapping from keys to specs, mirroring a TensorDict.

    ``shape`` (alias ``batch_size``) is the batch shape shared by every entry: each entry's
    shape must start with it. ``device`` may be None (entries keep their own devices);
    otherwise entries are moved to it. Entries can be None (no constraint). Nested keys are
    tuples of strings; plain dicts are turned into nested Composites.

    ``rand``/``zero``/``one`` return a TensorDict of batch size ``(*shape, *spec.shape)``;
    ``is_in`` checks every non-None entry (a missing entry makes it False); ``project``
    projects the entries that are present, writes them into the given TensorDict and
    returns it.

    Examples:
        >>> import torch
        >>> from tdrl.data import Bounded, Categorical, Composite, Unbounded
        >>> spec = Composite(obs=Unbounded(3), shape=())
        >>> spec["agent", "action"] = Categorical(2)
        >>> spec[("agent", "value")] = Bounded(0.0, 1.0, shape=(1,))
        >>> list(spec.keys(include_nested=True, leaves_only=True))
        ['obs', ('agent', 'action'), ('agent', 'value')]
        >>> ("agent", "action") in spec
        True
        >>> td = spec.rand((4,))
        >>> td.batch_size, td["agent", "action"].shape
        (torch.Size([4]), torch.Size([4]))
        >>> td["agent", "value"] += 5.0
        >>> spec.is_in(td)
        False
        >>> spec.is_in(spec.project(td))
        True
        >>> spec["missing"]
        Traceback (most recent call last):
        ...
        KeyError: "key 'missing' not found in Composite; available keys: ['obs', 'agent', ('agent', 'action'), ('agent', 'value')]"
    """

    domain = "composite"

    def __init__(
        self,
        *args: Mapping[NestedKey, Any] | Composite | None,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        batch_size: ShapeLike = None,
        **kwargs: TensorSpec | Mapping | None,
    ) -> None:
        if len(args) > 1:
            raise TypeError(
                "Composite accepts at most one positional argument (a mapping of specs), got "
                f"{len(args)}"
            )
        if shape is not None and batch_size is not None:
            raise ValueError("Composite: pass either shape or batch_size, not both")
        size = _to_size(shape if shape is not None else batch_size)
        if size is None and args and isinstance(args[0], Composite):
            size = args[0].shape
        if device is None and args and isinstance(args[0], Composite):
            device = args[0].device
        self._shape = torch.Size([]) if size is None else size
        self._device = None if device is None else _to_device(device)
        self._specs: dict[str, TensorSpec | None] = {}
        entries: list[tuple[Any, Any]] = []
        if args and args[0] is not None:
            src = args[0]
            if isinstance(src, Composite):
                entries.extend(src._specs.items())
            elif isinstance(src, Mapping):
                entries.extend(src.items())
            else:
                raise TypeError(
                    "Composite: the positional argument must be a mapping of specs, got "
                    f"{type(src).__name__}"
                )
        entries.extend(kwargs.items())
        for key, value in entries:
            self[key] = value

    # ---- attributes -------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:  # type: ignore[override]
        return self._shape

    @shape.setter
    def shape(self, value: ShapeLike) -> None:
        size = _batch_shape_arg(value)
        for key, spec in self._specs.items():
            if spec is not None and spec.shape[: len(size)] != size:
                raise ValueError(
                    f"Composite: cannot set shape {tuple(size)}: the entry {key!r} has shape "
                    f"{tuple(spec.shape)}, which does not start with it"
                )
        self._shape = size

    batch_size = shape

    @property
    def device(self) -> torch.device | None:  # type: ignore[override]
        return self._device

    @property
    def dtype(self) -> torch.dtype | None:  # type: ignore[override]
        """The common dtype of all leaves, or None if they differ (or there are none)."""
        dtypes = {v.dtype for _, v in self._iter_items(True, True) if v is not None}
        return dtypes.pop() if len(dtypes) == 1 else None

    @property
    def space(self) -> None:  # type: ignore[override]
        return None

    # ---- mapping interface ----------------------------------------------------------------
    def _get_path(self, path: tuple[str, ...]) -> TensorSpec | None:
        node: Any = self
        for i, k in enumerate(path):
            if not isinstance(node, Composite):
                raise KeyError(
                    f"key {_key_repr(path)!r} not found: {_key_repr(path[:i])!r} is a "
                    f"{type(node).__name__}, not a Composite"
                )
            if k not in node._specs:
                raise KeyError(
                    f"key {_key_repr(path)!r} not found in Composite; available keys: "
                    f"{list(self.keys(include_nested=True))}"
                )
            node = node._specs[k]
        return node

    def _coerce(self, path: tuple[str, ...], value: Any, shape: torch.Size,
                device: torch.device | None) -> TensorSpec | None:
        if value is None:
            return None
        if isinstance(value, Composite):
            if value.shape[: len(shape)] != shape:
                raise ValueError(
                    f"Composite: the entry {_key_repr(path)!r} has shape {tuple(value.shape)}, "
                    f"which does not start with the Composite shape {tuple(shape)}"
                )
            return value.to(device) if device is not None and value.device != device else value
        if isinstance(value, TensorSpec):
            if value.shape[: len(shape)] != shape:
                raise ValueError(
                    f"Composite: the entry {_key_repr(path)!r} has shape {tuple(value.shape)}, "
                    f"which does not start with the Composite shape {tuple(shape)}"
                )
            return value.to(device) if device is not None and value.device != device else value
        if isinstance(value, Mapping):
            return Composite(value, shape=shape, device=device)
        raise TypeError(
            f"Composite: the entry {_key_repr(path)!r} must be a TensorSpec, a mapping or None, "
            f"got {type(value).__name__}"
        )

    def __setitem__(self, key: NestedKey, value: TensorSpec | Mapping | None) -> None:
        if not _is_key(key):
            raise TypeError(
                f"Composite keys must be strings or tuples of strings, got {key!r}"
            )
        path = _unravel(key)
        # locate the parent node (without creating anything yet) to validate first
        node: Composite = self
        depth = 0
        for k in path[:-1]:
            sub = node._specs.get(k)
            if sub is None:
                break
            if not isinstance(sub, Composite):
                raise KeyError(
                    f"cannot set {_key_repr(path)!r}: {_key_repr(path[: depth + 1])!r} is a "
                    f"{type(sub).__name__}, not a Composite"
                )
            node = sub
            depth += 1
        value = self._coerce(path, value, node.shape, node.device)
        for k in path[depth:-1]:
            sub = Composite(shape=node.shape, device=node.device)
            node._specs[k] = sub
            node = sub
        node._specs[path[-1]] = value

    def __getitem__(self, key: Any) -> Any:
        if _is_key(key):
            return self._get_path(_unravel(key))
        return super().__getitem__(key)

    def __delitem__(self, key: NestedKey) -> None:
        path = _unravel(key)
        parent = self._get_path(path[:-1]) if len(path) > 1 else self
        if not isinstance(parent, Composite) or path[-1] not in parent._specs:
            self._get_path(path)  # raises a KeyError naming the available keys
        del parent._specs[path[-1]]  # type: ignore[union-attr]

    def __contains__(self, key: object) -> bool:
        if not _is_key(key):
            return False
        try:
            self._get_path(_unravel(key))  # type: ignore[arg-type]
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._specs))

    def get(self, key: NestedKey, default: Any = _MISSING) -> Any:
        """Return the entry at ``key`` (``default`` if given and the key is missing)."""
        try:
            return self[key]
        except KeyError:
            if default is _MISSING:
                raise
            return default

    def set(self, key: NestedKey, value: TensorSpec | Mapping | None) -> Composite:
        """Set an entry (same as ``spec[key] = value``) and return the Composite."""
        self[key] = value
        return self

    def update(self, other: Mapping | Composite) -> Composite:
        """Set every entry of ``other`` (nested dicts/Composites are merged) and return self."""
        items = other._specs.items() if isinstance(other, Composite) else other.items()
        for key, value in items:
            current = self.get(key, None)
            if isinstance(current, Composite) and isinstance(value, (Composite, Mapping)):
                current.update(value)
            else:
                self[key] = value
        return self

    def _iter_items(
        self, include_nested: bool, leaves_only: bool, prefix: tuple[str, ...] = ()
    ) -> Iterator[tuple[NestedKey, TensorSpec | None]]:
        for k, v in self._specs.items():
            path = prefix + (k,)
            is_node = isinstance(v, Composite)
            if not (leaves_only and is_node):
                yield _key_repr(path), v
            if include_nested and is_node:
                yield from v._iter_items(True, leaves_only, path)  # type: ignore[union-attr]

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> _CompositeKeys:
        """Keys view; nested keys (tuples) only with ``include_nested=True``."""
        return _CompositeKeys(self, include_nested, leaves_only)

    def items(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[tuple[NestedKey, TensorSpec | None]]:
        return list(self._iter_items(include_nested, leaves_only))

    def values(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[TensorSpec | None]:
        return [v for _, v in self._iter_items(include_nested, leaves_only)]

    def select(self, *keys: NestedKey, strict: bool = True) -> Composite:
        """A new Composite holding only ``keys`` (missing keys raise unless not strict)."""
        out = Composite(shape=self.shape, device=self.device)
        for key in keys:
            if key in self:
                out[key] = self[key]
            elif strict:
                self._get_path(_unravel(key))
        return out

    def exclude(self, *keys: NestedKey) -> Composite:
        """A copy without ``keys`` (missing keys are ignored)."""
        out = self.clone()
        for key in keys:
            if key in out:
                del out[key]
        return out

    def empty(self) -> Composite:
        """A Composite with the same shape and device but no entries."""
        return Composite(shape=self.shape, device=self.device)

    def is_empty(self) -> bool:
        """True if there is no entry other than (recursively) empty Composites."""
        return all(isinstance(v, Composite) and v.is_empty() for v in self._specs.values())

    # ---- values ----------------------------------------------------------------------------
    def _fill(self, method: str, shape: ShapeLike) -> TensorDictBase:
        batch = _batch_shape_arg(shape)
        out = {k: getattr(v, method)(batch) for k, v in self._specs.items() if v is not None}
        return TensorDict(out, batch_size=batch + self.shape, device=self.device)

    def rand(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._fill("rand", shape)

    def zero(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._fill("zero", shape)

    def one(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._fill("one", shape)

    def is_in(self, val: Any) -> bool:  # type: ignore[override]
        if not isinstance(val, (TensorDictBase, Mapping)):
            return False
        present = set(val.keys())
        for k, spec in self._specs.items():
            if spec is None:
                continue
            if k not in present or not spec.is_in(val[k]):
                return False
        return True

    def assert_is_in(self, val: Any) -> None:  # type: ignore[override]
        if not isinstance(val, (TensorDictBase, Mapping)):
            raise AssertionError(f"expected a TensorDict, got {type(val).__name__}")
        present = set(val.keys())
        for k, spec in self._specs.items():
            if spec is None:
                continue
            if k not in present:
                raise AssertionError(f"key {k!r} is missing; keys present: {sorted(present)}")
            try:
                spec.assert_is_in(val[k])
            except AssertionError as err:
                raise AssertionError(f"entry {k!r}: {err}") from None

    def _collect_projection(self, val: Any, prefix: tuple[str, ...], out: list) -> None:
        if not isinstance(val, TensorDictBase):
            raise TypeError(
                f"Composite.project expects a TensorDict at {_key_repr(prefix)!r}, got "
                f"{type(val).__name__}"
            )
        present = set(val.keys())
        for k, spec in self._specs.items():
            if spec is None or k not in present:
                continue
            item = val.get(k)
            if isinstance(spec, Composite):
                spec._collect_projection(item, prefix + (k,), out)
            else:
                out.append((prefix + (k,), spec.project(item)))

    def project(self, val: TensorDictBase) -> TensorDictBase:  # type: ignore[override]
        """Project every present entry, write the results into ``val`` and return it."""
        if not isinstance(val, TensorDictBase):
            raise TypeError(f"Composite.project expects a TensorDict, got {type(val).__name__}")
        updates: list = []
        self._collect_projection(val, (), updates)  # validate everything before writing
        for path, tensor in updates:
            val.set(_key_repr(path), tensor)
        return val

    def encode(self, vals: Mapping, *, ignore_device: bool = False) -> TensorDictBase:  # type: ignore[override]
        """Encode a mapping of raw values into a TensorDict of batch size ``shape``."""
        if not isinstance(vals, Mapping):
            raise TypeError(f"Composite.encode expects a mapping, got {type(vals).__name__}")
        out: dict[str, Any] = {}
        for k, v in vals.items():
            if k not in self._specs:
                raise KeyError(
                    f"Composite.encode: key {k!r} is not in the spec; available keys: "
                    f"{list(self._specs)}"
                )
            spec = self._specs[k]
            if spec is None:
                out[k] = _to_tensor(v, None)
            else:
                out[k] = spec.encode(v, ignore_device=ignore_device)
        device = None if ignore_device else self.device
        return TensorDict(out, batch_size=self.shape, device=device)

    def to_numpy(self, val: TensorDictBase, safe: bool | None = None) -> dict:  # type: ignore[override]
        """Convert a TensorDict to a (nested) dict of numpy arrays."""
        present = set(val.keys())
        out = {}
        for k, spec in self._specs.items():
            if k not in present:
                continue
            if spec is None:
                out[k] = val[k].detach().cpu().numpy()
            else:
                out[k] = spec.to_numpy(val[k], safe=safe)
        return out

    # ---- shape ops / misc ------------------------------------------------------------------
    def _transform(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Composite:
        new_shape = fn(torch.empty(self.shape, device="meta")).shape
        out = Composite(shape=new_shape, device=self._device)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v._transform(fn)
        return out

    def index(self, index: Any, tensor_to_index: Any) -> Any:
        return tensor_to_index[index]

    def to(self, dest: Any) -> Composite:
        """Move every entry to a device (or cast every leaf to a dtype)."""
        if isinstance(dest, torch.dtype):
            out = Composite(shape=self.shape, device=self._device)
            out._specs = {k: None if v is None else v.to(dest) for k, v in self._specs.items()}
            return out
        device = _to_device(dest)
        out = Composite(shape=self.shape, device=device)
        out._specs = {k: None if v is None else v.to(device) for k, v in self._specs.items()}
        return out

    def enumerate(self) -> TensorDictBase:
        """All combinations of the leaves' values (cartesian product), along a new dim 0."""
        leaves = [(k, v) for k, v in self._iter_items(True, True) if v is not None]
        enums = [(k, v.enumerate()) for k, v in leaves]
        counts = [e.shape[0] for _, e in enums]
        total = math.prod(counts)
        out = TensorDict({}, batch_size=torch.Size([total]) + self.shape, device=self.device)
        if not enums:
            return out
        grids = torch.meshgrid(*[torch.arange(c) for c in counts], indexing="ij")
        for (k, e), g in zip(enums, grids):
            out.set(k, e[g.reshape(-1).to(e.device)])
        return out

    def cardinality(self) -> int:
        return math.prod(v.cardinality() for v in self.values(True, True) if v is not None)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        return (
            self.shape == other.shape  # type: ignore[attr-defined]
            and self.device == other.device  # type: ignore[attr-defined]
            and self._specs.keys() == other._specs.keys()  # type: ignore[attr-defined]
            and all(v == other._specs[k] for k, v in self._specs.items())  # type: ignore[attr-defined]
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = [f"{k}: {v!r}" for k, v in self._specs.items()]
        fields += [f"device={self.device}", f"shape={self.shape}"]
        body = ",\n".join(_indent(f) for f in fields)
        return f"Composite(\n{body})"


# --------------------------------------------------------------------------------------
# legacy TorchRL names (plain aliases, no deprecation warnings)
# --------------------------------------------------------------------------------------
OneHotDiscreteTensorSpec = OneHot
DiscreteTensorSpec = Categorical
BoundedTensorSpec = Bounded
UnboundedContinuousTensorSpec = UnboundedContinuous
UnboundedDiscreteTensorSpec = UnboundedDiscrete
CompositeSpec = Composite
MultiOneHotDiscreteTensorSpec = MultiOneHot
MultiDiscreteTensorSpec = MultiCategorical
BinaryDiscreteTensorSpec = Binary
