"""``NonTensor``: a spec for non-tensor entries (strings, objects) of a TensorDict."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import (
    NonTensorData,
    TensorDictBase,
    is_non_tensor,
    is_tensor_collection,
    lazy_stack,
)
from tensordict.utils import set_capture_non_tensor_stack

from tdrl.data.specs._utils import (
    DeviceLike,
    ShapeLike,
    _batch_shape_arg,
    _to_device,
    _to_size,
)
from tdrl.data.specs.base import TensorSpec

__all__ = ["NonTensor"]


def _same(a: Any, b: Any) -> bool:
    """``a == b`` as one bool (False where the comparison is not a plain truth value)."""
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (arrays, tensors: compare element-wise)
        try:
            return bool((a == b).all())
        except Exception:  # noqa: BLE001
            return False


def _non_tensor_value(data: Any, total: torch.Size, feature_dims: int,
                      device: torch.device | None) -> TensorDictBase:
    """``data`` as a ``NonTensorData`` over the feature dims, lazily stacked over the rest."""
    split = len(total) - feature_dims
    with set_capture_non_tensor_stack(False):
        value: TensorDictBase = NonTensorData(data=data, batch_size=total[split:], device=device)
        for size in reversed(total[:split]):
            value = lazy_stack([value.copy() for _ in range(size)])
    return value


class NonTensor(TensorSpec):
    """Describes a non-tensor entry: its shape, device and an example of its data.

    ``rand`` / ``zero`` / ``one`` return ``example_data`` shaped like the spec: one
    ``NonTensorData`` over the trailing ``feature_dims`` dimensions (all of them by
    default), lazily stacked (``NonTensorStack``) over the others; ``batched=True`` means
    ``feature_dims=0`` (one element per index). ``encode(value)`` does the same with
    ``value``. ``is_in`` accepts any Python value and any non-tensor TensorDict of a
    compatible shape; tensors are not non-tensor data. Non-tensor data has no dtype to
    cast and cannot be projected, indexed into or enumerated (those raise).

    Args:
        shape: the data's shape (default ``(1,)``, as TorchRL).
        device: the device recorded on the data (default None).
        dtype: normally None.
        example_data: what ``rand`` / ``zero`` / ``one`` return.
        batched: exclusive with ``feature_dims``.
        feature_dims: how many trailing dims one ``NonTensorData`` covers.

    Examples:
        >>> from tdrl.data import NonTensor
        >>> spec = NonTensor(shape=(3,), example_data="go left")
        >>> spec.rand()
        NonTensorData(data=go left, batch_size=torch.Size([3]), device=None)
        >>> type(NonTensor(shape=(3,), example_data="a", batched=True).rand()).__name__
        'NonTensorStack'
        >>> spec.rand((2,)).shape, spec.rand((2,)).data
        (torch.Size([2, 3]), 'go left')
        >>> spec == NonTensor(shape=(3,), example_data="go right")
        False
    """

    domain = None  # type: ignore[assignment]

    def __init__(
        self,
        shape: ShapeLike = (1,),
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
        example_data: Any = None,
        batched: bool | None = None,
        feature_dims: int | None = None,
    ) -> None:
        size = _to_size(shape)
        self.shape = torch.Size([1]) if size is None else size
        self.device = None if device is None else _to_device(device)
        self.dtype = dtype
        self._space = None
        self.example_data = example_data
        if batched is not None and feature_dims is not None:
            raise ValueError(
                "NonTensor: pass either batched or feature_dims, not both (got "
                f"batched={batched}, feature_dims={feature_dims})"
            )
        if feature_dims is None:
            feature_dims = 0 if batched else len(self.shape)
        if not 0 <= int(feature_dims) <= len(self.shape):
            raise ValueError(
                f"NonTensor: feature_dims must be in [0, {len(self.shape)}] for shape "
                f"{tuple(self.shape)}, got {feature_dims}"
            )
        self.batched = bool(batched)
        self.feature_dims = int(feature_dims)

    # ---- values --------------------------------------------------------------------------
    def _value(self, data: Any, shape: ShapeLike) -> TensorDictBase:
        total = _batch_shape_arg(shape) + self.shape
        return _non_tensor_value(data, total, min(self.feature_dims, len(total)), self.device)

    def rand(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._value(self.example_data, shape)

    def zero(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._value(self.example_data, shape)

    def one(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._value(self.example_data, shape)

    def encode(self, val: Any, *, ignore_device: bool = False) -> TensorDictBase:  # type: ignore[override]
        """``val`` wrapped as non-tensor data of the spec's shape.

        Examples:
            >>> from tdrl.data import NonTensor
            >>> NonTensor(shape=(1,)).encode("a string")
            NonTensorData(data=a string, batch_size=torch.Size([1]), device=None)
        """
        device = None if ignore_device else self.device
        total = self.shape
        return _non_tensor_value(val, total, min(self.feature_dims, len(total)), device)

    def is_in(self, val: Any) -> bool:  # type: ignore[override]
        if isinstance(val, torch.Tensor):
            return False
        if not is_tensor_collection(val):
            return True
        if not is_non_tensor(val):
            return False
        try:
            return torch.broadcast_shapes(self.shape, val.shape) == val.shape
        except RuntimeError:
            return False

    def _project(self, val: Any) -> Any:
        raise NotImplementedError("Cannot project a NonTensor spec: its values are not tensors")

    def project(self, val: Any) -> Any:  # type: ignore[override]
        return self._project(val)

    def index(self, index: Any, tensor_to_index: Any) -> Any:
        raise NotImplementedError("Cannot use index with a NonTensor spec")

    def enumerate(self, use_mask: bool = False) -> Any:  # type: ignore[override]
        raise NotImplementedError(
            "Cannot enumerate a NonTensor spec: the set of its values is not known"
        )

    def cardinality(self) -> int:
        raise NotImplementedError(
            "Cannot enumerate a NonTensor spec: the set of its values is not known"
        )

    def to_numpy(self, val: Any, safe: bool | None = None) -> Any:  # type: ignore[override]
        """Non-tensor data is returned as it is."""
        return val

    def type_check(self, value: Any, key: Any = None) -> None:
        """Non-tensor data has no dtype: nothing to check."""

    # ---- shape ops / misc -----------------------------------------------------------------
    def _remade(self, shape: torch.Size, device: torch.device | None = None) -> NonTensor:
        return NonTensor(
            shape=shape,
            device=self.device if device is None else device,
            dtype=self.dtype,
            example_data=self.example_data,
            feature_dims=min(self.feature_dims, len(shape)),
        )

    def _rebuild(self, shape: torch.Size, fn: Callable[[torch.Tensor], torch.Tensor]) -> NonTensor:
        return self._remade(shape)

    def clone(self) -> NonTensor:
        return self._remade(self.shape)

    def to(self, dest: Any) -> NonTensor:
        """Move to a device (a dtype is ignored: non-tensor data has none)."""
        if dest is None or isinstance(dest, torch.dtype):
            return self
        device = _to_device(dest)
        return self if device == self.device else self._remade(self.shape, device)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and self.shape == other.shape  # type: ignore[attr-defined]
            and self.device == other.device  # type: ignore[attr-defined]
            and self.dtype == other.dtype  # type: ignore[attr-defined]
            and _same(self.example_data, other.example_data)  # type: ignore[attr-defined]
        )

    __hash__ = None  # type: ignore[assignment]

    def _repr_fields(self) -> list[str]:
        return super()._repr_fields() + [f"example_data={self.example_data!r}"]
