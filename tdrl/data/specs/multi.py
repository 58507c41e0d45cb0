"""Multi-discrete specs: :class:`MultiOneHot` and :class:`MultiCategorical`."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tdrl.data.specs._utils import (
    DeviceLike,
    DTypeLike,
    ShapeLike,
    _batch_shape_arg,
    _check_int_range,
    _check_nvec,
    _ends_with,
    _is_float,
    _reject_nan,
    _shape_ending_in,
    _to_device,
    _to_dtype,
    _to_size,
)
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.boxes import BoxList
from tdrl.data.specs.masks import _check_mask_rows, _MaskedMixin, _nearest_allowed, _sample_allowed


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
        _reject_nan(val, type(self).__name__)
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
        if self._safe(safe):
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
        if self._safe(safe):
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
        _reject_nan(val, type(self).__name__)
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
        if self._safe(safe):
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
        if self._safe(safe):
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
