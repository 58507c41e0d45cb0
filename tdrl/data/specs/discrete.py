"""One-of-n specs: :class:`OneHot` and :class:`Categorical`."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tdrl.data.specs._utils import (
    DeviceLike,
    DTypeLike,
    ShapeLike,
    _batch_shape_arg,
    _check_encode,
    _check_int_range,
    _check_n,
    _is_float,
    _no_outcome,
    _reject_nan,
    _shape_ending_in,
    _to_device,
    _to_dtype,
    _to_size,
)
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.boxes import CategoricalBox
from tdrl.data.specs.discrete_unknown import _check_n_or_unknown, _UnknownNMixin
from tdrl.data.specs.masks import _check_mask_rows, _nearest_allowed, _OneOfNMixin, _sample_allowed


class OneHot(_OneOfNMixin, TensorSpec):
    """One-hot encoded discrete spec: the last dimension (of size ``n``) has one hot entry.

    Args:
        n: number of possible outcomes.
        shape: full sample shape; its last dimension must be ``n`` (default ``(n,)``).
        device: device of the tensors.
        dtype: dtype of the samples (default ``torch.bool``).
        use_register: if True, ``encode`` maps each new (hashable) value to the next free
            index, and ``to_numpy`` maps indices back (for outcome sets not known upfront).
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
        n = _check_n(n, "OneHot", allow_zero=True)
        self.shape = _shape_ending_in(_to_size(shape), n, "OneHot", "n")
        self.dtype = _to_dtype(dtype, torch.bool)
        self.device = _to_device(device)
        self.use_register = bool(use_register)
        self._register: dict[Any, int] = {}  # value -> index, in order of first encoding
        self._space = CategoricalBox(n)
        self.update_mask(mask)

    @property
    def _mask_target(self) -> torch.Size:
        return self.shape

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        batch = _batch_shape_arg(shape)
        mask = self._full_mask(batch)
        if mask is None:
            if self.n == 0:
                return torch.zeros(batch + self.shape, dtype=self.dtype, device=self.device)
            idx = torch.randint(self.n, batch + self.shape[:-1], device=self.device)
        else:
            idx = _sample_allowed(mask)
        return self._hot(idx)

    def _values_in(self, val: torch.Tensor) -> bool:
        if val.dtype == torch.bool:
            ok = val.sum(-1) == 1
        else:
            ok = ((val == 0) | (val == 1)).all(-1) & (val.sum(-1) == 1)
        if self.mask is not None:
            ok = ok & (val.bool() & self.mask).any(-1)
        return bool(ok.all())

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        _reject_nan(val, type(self).__name__)
        scores = val if _is_float(val.dtype) else val.to(torch.float64)
        if self.mask is not None:
            mask = self.mask.expand(val.shape)
            _check_mask_rows(mask)
            scores = scores.masked_fill(~mask, -math.inf)
        return self._hot(scores.argmax(-1))

    def _hot(self, idx: torch.Tensor) -> torch.Tensor:
        """One-hot rows of the spec's dtype for in-range indices (no range check, no cast)."""
        out = torch.zeros(idx.shape + (self.n,), dtype=self.dtype, device=idx.device)
        return out.scatter_(-1, idx.unsqueeze(-1), 1)

    def _spec_args(self) -> tuple[Any, dict[str, Any]]:
        return self.n, {"use_register": self.use_register}

    def encode(self, val: Any, *, ignore_device: bool = False) -> torch.Tensor:
        if self.use_register:
            val = self._registered(val)
        return super().encode(val, ignore_device=ignore_device)

    def _registered(self, val: Any) -> int:
        """With ``use_register``: the index of ``val``, registering a new value in turn."""
        key = val.item() if isinstance(val, (torch.Tensor, np.ndarray)) else val
        if key not in self._register:
            if len(self._register) >= self.n:
                raise ValueError(
                    f"OneHot.encode: the register is full ({self.n} values: "
                    f"{list(self._register)}), cannot add {key!r}"
                )
            self._register[key] = len(self._register)
        return self._register[key]

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        if t.shape == self.shape and bool(
            (((t == 0) | (t == 1)).all(-1) & (t.to(torch.int64).sum(-1) == 1)).all()
        ):
            return t
        cat_shape = self.shape[:-1]
        if t.numel() == cat_shape.numel() and not _is_float(t.dtype):
            t = t.reshape(cat_shape)
            _check_encode(t, "OneHot", torch.int64, 0, self.n - 1, "categorical value(s)")
            return F.one_hot(t.to(torch.int64), self.n)
        return self._fit_shape(t)

    def _check_encode(self, t: torch.Tensor) -> None:
        _check_encode(t, "OneHot", self.dtype, 0, 1, "one-hot entries")

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        """Return the index of the hot entry as a numpy array (TorchRL semantics)."""
        if self._safe(safe):
            self.assert_is_in(val)
        idx = val.detach().to(torch.int64).argmax(-1).cpu().numpy()
        if self.use_register:
            inverse = {i: v for v, i in self._register.items()}
            return np.array([inverse[int(i)] for i in idx.reshape(-1)]).reshape(idx.shape)
        return idx

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
        if self._safe(safe):
            self.assert_is_in(val)
        return val

    def to_one_hot_spec(self) -> OneHot:
        return self

    def to_categorical(self, val: torch.Tensor, safe: bool | None = None) -> torch.Tensor:
        """Convert a one-hot value to the index of its hot entry (``torch.int64``)."""
        if self._safe(safe):
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
class Categorical(_UnknownNMixin, _OneOfNMixin, TensorSpec):
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
        n = _check_n_or_unknown(n, "Categorical")  # -1: unknown size (discrete_unknown.py)
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
            if self.n == 0:
                raise _no_outcome("Categorical")
            return torch.randint(self.n, batch + self.shape, device=self.device, dtype=self.dtype)
        out = _sample_allowed(mask)
        return out if out.dtype == self.dtype else out.to(self.dtype)

    def _values_in(self, val: torch.Tensor) -> bool:
        # in range iff clamping changes nothing (one pass, NaN-safe)
        if self.n == 0 or not torch.equal(val.clamp(0, self.n - 1), val):
            return val.numel() == 0
        if self.mask is not None:
            mask = self.mask.expand(*val.shape, self.n)
            return bool(mask.gather(-1, val.to(torch.int64).unsqueeze(-1)).all())
        return True

    def _project(self, val: torch.Tensor) -> torch.Tensor:
        _reject_nan(val, type(self).__name__)
        if val.dtype == torch.bool:
            val = val.to(torch.int64)
        if _is_float(val.dtype):
            val = val.clamp(0, self.n - 1).round()
        else:
            val = val.clamp(0, self.n - 1)
        if self.mask is not None:
            val = _nearest_allowed(val.long(), self.mask.expand(*val.shape, self.n), self.n)
        return val if val.dtype == self.dtype else val.to(self.dtype)

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        return self._fit_shape(t)

    def _check_encode(self, t: torch.Tensor) -> None:
        if self.n < 0:  # no known number of categories: the dtype's range
            return super()._check_encode(t)
        _check_encode(t, type(self).__name__, self.dtype, 0, self.n - 1)

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
        if self._safe(safe):
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
        if self._safe(safe):
            self.assert_is_in(val)
        return val

    def to_categorical_spec(self) -> Categorical:
        return self

    def enumerate(self, use_mask: bool = False) -> torch.Tensor:
        """The values ``0..n-1`` broadcast to the spec shape, stacked along dim 0."""
        vals = torch.arange(self.n, device=self.device).to(self.dtype)
        out = vals.view(self.n, *([1] * self.ndim)).expand(self.n, *self.shape)
        return self._enumerated(out, use_mask)
