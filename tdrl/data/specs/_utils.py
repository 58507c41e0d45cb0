"""Shape, dtype and device helpers shared by every spec (no spec classes here)."""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch

ShapeLike = Union[int, Sequence[int], torch.Size, None]
DeviceLike = Union[torch.device, str, int, None]
DTypeLike = Union[torch.dtype, str, None]
NestedKey = Union[str, tuple]

_DEFAULT_UNBOUNDED_SHAPE = torch.Size([1])
_MISSING = object()


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


class SpecShapeError(RuntimeError, ValueError):
    """A value's shape does not fit a spec (both a ``RuntimeError``, like TorchRL, and a
    ``ValueError``)."""


class _Settings:
    """Process-wide switches (``tdrl.data.tensor_specs._CHECK_SPEC_ENCODE`` maps here)."""

    # when True, ``encode`` and ``to_numpy`` check that values lie in the spec
    check_spec_encode: bool = False


def _reject_nan(val: torch.Tensor, spec: str, method: str = "project") -> None:
    """The NaN rule of ``project`` and ``encode``: a NaN is no value of a spec, so it raises."""
    # torch.equal(x, x) is False exactly when x holds a NaN, in one fused pass
    if (val.dtype.is_floating_point or val.dtype.is_complex) and not torch.equal(val, val):
        verb = "projected onto" if method == "project" else "encoded into"
        raise ValueError(
            f"{spec}.{method}: the value contains NaN ({int(val.isnan().sum())} of "
            f"{val.numel()} elements), which cannot be {verb} the spec"
        )


def _short(x: Any) -> Any:
    """A bound for an error message: a number, a short list, or its min and max."""
    if not isinstance(x, torch.Tensor):
        return x
    if x.numel() <= 8:
        return x.tolist()
    return f"{x.min().item()}..{x.max().item()}"


def _check_encode(
    val: torch.Tensor,
    spec: str,
    dtype: torch.dtype,
    low: Any = None,
    high: Any = None,
    what: str = "value(s)",
    nan_ok: bool = False,
) -> None:
    """The value rule of every spec's ``encode``, checked before the cast to ``dtype``.

    A NaN raises as in ``project`` (unless ``nan_ok``: a floating ``Unbounded``). A value
    going into an integer or bool dtype must lie in ``[low, high]`` (scalars, or tensors
    broadcasting with ``val``; by default the range of ``dtype``, ``[0, 1]`` for bool):
    casting NaN, inf or 1e30 to int64 would silently give int64's minimum. Out of range
    is a ``ValueError`` naming the spec (an ``AssertionError`` while
    ``_CHECK_SPEC_ENCODE`` is set, as TorchRL's checked encode).

    Examples:
        >>> _check_encode(torch.tensor([0, 2]), "Categorical", torch.int64, 0, 2)
        >>> _check_encode(torch.tensor([float("inf")]), "Categorical", torch.int64, 0, 2)
        Traceback (most recent call last):
        ...
        ValueError: Categorical.encode: value(s) must be in [0, 2], got min=inf, max=inf
    """
    floating = val.dtype.is_floating_point or val.dtype.is_complex
    if floating and not nan_ok:
        _reject_nan(val, spec, "encode")
    if dtype.is_floating_point or dtype.is_complex:
        return
    exclusive_high = False
    if low is None:
        if dtype == torch.bool:
            low, high = 0, 1
        else:
            if not floating and (val.dtype == dtype or dtype == torch.int64):
                return  # every integer (or bool) value fits
            info = torch.iinfo(dtype)
            # a float at 2**63 still compares equal to int64's max: test against max + 1
            low, high, exclusive_high = info.min, info.max + 1, True
    if not floating:
        val = val.to(torch.int64)  # exact comparisons (a uint8 tensor wraps -1 to 255)
    bad = (val < low) | ((val >= high) if exclusive_high else (val > high))
    if bool(bad.any()):
        if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor):
            rng = f"[low, high] elementwise (low={_short(low)}, high={_short(high)})"
            got = f"{int(bad.sum())} of {val.numel()} outside, e.g. {val[bad][:5].tolist()}"
        else:
            top = high - 1 if exclusive_high else high
            rng = f"[{low}, {top}]"
            got = f"min={val.min().item()}, max={val.max().item()}"
        raise _encode_error(f"{spec}.encode: {what} must be in {rng}, got {got}")


def _encode_error(message: str) -> Exception:
    """The error for a value ``encode`` cannot represent (``AssertionError`` while checking)."""
    return AssertionError(message) if _Settings.check_spec_encode else ValueError(message)


def _device_available(device: torch.device) -> bool:
    if device.type in ("cpu", "meta"):
        return True
    backend = getattr(torch, device.type, None)
    is_available = getattr(backend, "is_available", None)
    if is_available is None:
        return True  # a backend torch cannot query: let torch itself decide later
    if not is_available():
        return False
    count = getattr(backend, "device_count", None)
    return device.index is None or count is None or device.index < count()


def _to_device(device: DeviceLike) -> torch.device:
    """Normalise ``device``; a device that is not available here raises at once."""
    if device is None:
        return _default_device()
    if not isinstance(device, torch.device):
        device = torch.device(device)
    if not _device_available(device):
        raise RuntimeError(
            f"device {str(device)!r} is not available on this machine (torch sees "
            f"{_visible_devices()}); create the spec on an available device"
        )
    return device


def _visible_devices() -> str:
    found = ["cpu"]
    for name in ("cuda", "mps", "xpu"):
        backend = getattr(torch, name, None)
        if backend is not None and getattr(backend, "is_available", lambda: False)():
            found.append(name)
    return ", ".join(found)


def _is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point or dtype.is_complex


def _check_n(n: Any, cls: str, name: str = "n", allow_zero: bool = False) -> int:
    """``n`` as an int; 0 only with ``allow_zero`` (TorchRL's empty one-of-n specs)."""
    if isinstance(n, bool):
        raise TypeError(f"{cls}: {name} must be an int, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError as err:
        raise TypeError(f"{cls}: {name} must be an int, got {n!r}") from err
    if n < 0 or (n == 0 and not allow_zero):
        what = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{cls}: {name} must be {what} int, got {name}={n}")
    return n


def _no_outcome(cls: str) -> ValueError:
    return ValueError(f"{cls} with n=0 has no value to sample: it describes an empty set")


def _check_nvec(nvec: Any, cls: str, allow_zero: bool = False) -> list[int]:
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
    return [_check_n(v, cls, f"nvec[{i}]", allow_zero) for i, v in enumerate(nvec)]


def _check_int_range(n_max: int, dtype: torch.dtype, cls: str) -> None:
    """Make sure value ``n_max`` can be represented by ``dtype``."""
    if dtype == torch.bool:
        if n_max > 1:
            raise ValueError(f"{cls}: dtype torch.bool can only hold values 0 and 1, need {n_max}")
    elif not _is_float(dtype) and n_max > torch.iinfo(dtype).max:
        raise ValueError(
            f"{cls}: dtype {dtype} cannot hold the value {n_max} (max {torch.iinfo(dtype).max})"
        )


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


def _index_item(item: Any) -> Any:
    """One index entry as torch takes it: ranges, lists, nested tuples, arrays -> tensors."""
    if isinstance(item, (range, list, tuple)):
        return torch.as_tensor(list(item) if isinstance(item, range) else item)
    if isinstance(item, np.ndarray):
        return torch.as_tensor(item)
    return item


def _positive_steps(idx: tuple, shape: torch.Size) -> tuple[list[int], tuple]:
    """Rewrite negative-step slices (which torch lacks) as flips plus positive slices.

    Returns the dims of ``shape`` to flip first and the index to apply afterwards.
    """
    flips: list[int] = []
    out: list = []
    dim = 0
    for item in idx:
        if isinstance(item, slice) and item.step is not None and item.step < 0:
            n = shape[dim]
            start, stop, step = item.indices(n)
            flips.append(dim)
            item = slice(n - 1 - start, n - 1 - stop, -step)
        out.append(item)
        if item is not None:
            ndim = item.ndim if isinstance(item, torch.Tensor) and item.dtype == torch.bool else 1
            dim += max(ndim, 1)
    return flips, tuple(out)


def _shape_probe(shape: torch.Size) -> torch.Tensor:
    """A tensor of ``shape`` that costs one element: indexing it checks bounds like data."""
    return torch.zeros((), dtype=torch.bool).expand(shape)


def _normalize_index(idx: Any, batch_ndim: int, cls: str) -> tuple:
    """Turn an index into a tuple without Ellipsis that only touches the batch dims."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    idx = tuple(_index_item(item) for item in idx)
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
