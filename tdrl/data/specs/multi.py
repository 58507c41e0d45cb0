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
    _check_encode,
    _check_int_range,
    _check_nvec,
    _encode_error,
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
        nvec = _check_nvec(nvec, "MultiOneHot", allow_zero=True)
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
        out = torch.zeros(batch + self.shape, dtype=self.dtype, device=self.device)
        if mask is None:
            # one uniform draw per non-empty block, written at that block's offset
            sizes = torch.tensor([n for n in self.nvec if n], device=self.device)
            offsets = torch.tensor(self._offsets_nonempty(), device=self.device)
            u = torch.rand(batch + self.shape[:-1] + sizes.shape, device=self.device)
            idx = torch.minimum((u * sizes).long(), sizes - 1) + offsets
        else:
            starts = self._offsets_nonempty()
            blocks = [b for b in self._blocks(mask) if b.shape[-1]]
            idx = torch.stack([_sample_allowed(b) + o for b, o in zip(blocks, starts)], -1)
        return out.scatter_(-1, idx, 1)

    def _offsets_nonempty(self) -> list[int]:
        """Start of every non-empty block in the concatenated layout."""
        starts, pos = [], 0
        for n in self.nvec:
            if n:
                starts.append(pos)
            pos += n
        return starts

    def _values_in(self, val: torch.Tensor) -> bool:
        if val.dtype != torch.bool and not bool(((val == 0) | (val == 1)).all()):
            return False
        for block in self._blocks(val):
            if block.shape[-1] and not bool((block.sum(-1) == 1).all()):
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
        blocks = [b for b in self._blocks(scores) if b.shape[-1]]
        out = torch.zeros(val.shape, dtype=self.dtype, device=val.device)
        if not blocks:
            return out
        starts = torch.tensor(self._offsets_nonempty(), device=scores.device)
        idx = torch.stack([b.argmax(-1) for b in blocks], -1) + starts
        return out.scatter_(-1, idx, 1)

    def _encode_tensor(self, t: torch.Tensor) -> torch.Tensor:
        if t.shape == self.shape:
            return t
        # anything else is read as one index per block (TorchRL's contract)
        cat_shape = self.shape[:-1] + torch.Size([len(self.nvec)])
        t = self._fit_shape(t, cat_shape)
        if not _is_float(t.dtype):
            cat = MultiCategorical(self.nvec, shape=cat_shape, device=self.device)
            _check_encode(t, "MultiOneHot", cat.dtype, 0, cat.nvec - 1, "categorical values")
            return cat.to_one_hot(t)
        raise _encode_error(
            f"MultiOneHot.encode: expected a one-hot value of shape {tuple(self.shape)} or "
            f"integer indices of shape {tuple(cat_shape)}, got dtype {t.dtype}"
        )

    def _check_encode(self, t: torch.Tensor) -> None:
        _check_encode(t, "MultiOneHot", self.dtype, 0, 1, "one-hot entries")

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


def _nvec_tensor(nvec: Any, device: torch.device) -> torch.Tensor:
    """``nvec`` (int, nested sequence, array or tensor) as a positive int64 tensor."""
    try:
        nv = torch.as_tensor(nvec, device=device)
    except (TypeError, ValueError) as err:
        raise TypeError(f"MultiCategorical: nvec must be ints (nested allowed), got {nvec!r}") from err
    if nv.numel() and (nv.is_floating_point() or nv.is_complex() or nv.dtype == torch.bool):
        raise TypeError(f"MultiCategorical: nvec must hold ints, got dtype {nv.dtype}")
    if nv.numel() == 0 or bool((nv <= 0).any()):
        raise ValueError(f"MultiCategorical: nvec must hold positive ints, got {nv.tolist()}")
    return nv.to(torch.int64)


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
        self.device = _to_device(device)
        nv = _nvec_tensor(nvec, self.device)
        self._feature_ndim = nv.ndim
        size = _to_size(shape)
        if size is None:
            size = nv.shape
        elif not _ends_with(size, nv.shape):
            raise ValueError(
                f"MultiCategorical: shape {tuple(size)} must end with the shape of nvec "
                f"{tuple(nv.shape)}"
            )
        self.shape = size
        self.dtype = _to_dtype(dtype, torch.int64)
        _check_int_range(int(nv.max()) - 1, self.dtype, "MultiCategorical")
        # kept for signature compatibility: samples always have exactly ``spec.shape``
        self.remove_singleton = remove_singleton
        self._space = BoxList.from_nvec(nv.reshape(-1).tolist())
        self._nvec_t = nv
        self.update_mask(mask)

    def update_mask(self, mask: torch.Tensor | None) -> None:
        if mask is not None and self._nvec_t.ndim != 1:
            raise ValueError(
                f"MultiCategorical: masks need a one-dimensional nvec, got nvec of shape "
                f"{tuple(self._nvec_t.shape)}"
            )
        super().update_mask(mask)

    def _flat_nvec(self, method: str) -> list[int]:
        """``nvec`` as a list, for the one-hot layouts that need a one-dimensional nvec."""
        if self._nvec_t.ndim != 1:
            raise ValueError(
                f"MultiCategorical.{method} needs a one-dimensional nvec, got nvec of shape "
                f"{tuple(self._nvec_t.shape)}"
            )
        return self.space.nvec

    @property
    def nvec(self) -> torch.Tensor:
        return self._nvec_t

    @property
    def _mask_target(self) -> torch.Size:
        return self._batch_shape + torch.Size([sum(self.space.nvec)])

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

    def _check_encode(self, t: torch.Tensor) -> None:
        _check_encode(t, type(self).__name__, self.dtype, 0, (self._nvec_t - 1).to(t.device))

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
        self._flat_nvec("index")
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
        outs = [F.one_hot(val[..., i], n) for i, n in enumerate(self._flat_nvec("to_one_hot"))]
        return torch.cat(outs, -1).bool()

    def to_one_hot_spec(self) -> MultiOneHot:
        """The equivalent :class:`MultiOneHot` spec (same nvec, mask and batch shape)."""
        return MultiOneHot(
            self._flat_nvec("to_one_hot_spec"), shape=self._mask_target, device=self.device,
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
        flat = self.space.nvec
        grids = torch.meshgrid(*[torch.arange(n, device=self.device) for n in flat], indexing="ij")
        combos = torch.stack([g.reshape(-1) for g in grids], -1).to(self.dtype)
        k = combos.shape[0]
        combos = combos.view(k, *self._nvec_t.shape)
        return combos.view(k, *([1] * len(self._batch_shape)), *self._nvec_t.shape).expand(
            k, *self.shape
        ).clone()

    def cardinality(self) -> int:
        return math.prod(self.space.nvec)

    def _spec_args(self) -> tuple[Any, dict[str, Any]]:
        return self._nvec_t.tolist(), {"remove_singleton": self.remove_singleton}
