"""Binary vectors: :class:`Binary`."""
from __future__ import annotations

import torch

from tdrl.data.specs._utils import (
    DeviceLike,
    DTypeLike,
    ShapeLike,
    _batch_shape_arg,
    _check_encode,
    _check_n,
    _reject_nan,
    _shape_ending_in,
    _to_device,
    _to_dtype,
    _to_size,
)
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.boxes import BinaryBox


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
        >>> Binary(shape=()).rand().shape  # a single bit
        torch.Size([])
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
        if n is None and size is None:
            raise TypeError("Binary: provide n or shape, got neither")
        if size is not None and len(size) == 0:
            # a single bit: no feature dimension (TorchRL's Binary(shape=()), n == 0)
            if n not in (None, 0):
                raise ValueError(f"Binary: n must be 0 (or None) with shape=(), got n={n}")
            n = 0
            self._feature_ndim = 0
        elif n is None:
            n = size[-1]
        n = _check_n(n, "Binary", allow_zero=True)
        self.shape = size if self._feature_ndim == 0 else _shape_ending_in(size, n, "Binary", "n")
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

    def _check_encode(self, t: torch.Tensor) -> None:
        _check_encode(t, "Binary", self.dtype, 0, 1)

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        _reject_nan(val, type(self).__name__)
        if val.dtype == torch.bool:
            return val.to(self.dtype)
        return (val > 0.5).to(self.dtype)

    def enumerate(self) -> torch.Tensor:
        """All ``2**n`` binary vectors, stacked along dim 0 (shape ``(2**n, *shape)``)."""
        if self.ndim == 0:
            return torch.tensor([0, 1], dtype=self.dtype, device=self.device)
        if self.n > 24:
            raise ValueError(f"Binary.enumerate: 2**{self.n} values is too many to enumerate")
        codes = torch.arange(2**self.n, device=self.device)
        bits = torch.arange(self.n - 1, -1, -1, device=self.device)
        vals = ((codes.unsqueeze(-1) >> bits) & 1).to(self.dtype)
        k = vals.shape[0]
        return vals.view(k, *([1] * (self.ndim - 1)), self.n).expand(k, *self.shape).clone()

    def cardinality(self) -> int:
        return 2 if self.ndim == 0 else 2**self.n

    def _rebuild(self, shape: torch.Size, fn) -> Binary:
        return Binary(shape=shape, device=self.device, dtype=self.dtype)

    def _with(self, *, dtype=None, device=None) -> Binary:
        return Binary(
            shape=self.shape, device=self.device if device is None else device,
            dtype=self.dtype if dtype is None else dtype,
        )
