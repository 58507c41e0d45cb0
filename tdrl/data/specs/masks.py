"""Boolean masks of allowed outcomes: validation, sampling and the mask mixins."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch


def _as_mask(mask: Any, target: torch.Size, device: torch.device, cls: str) -> torch.Tensor | None:
    """Validate a boolean mask that must be expandable to ``target``."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask, device=device)
    if mask.dtype != torch.bool:
        # 0.3 or 2 are not "allowed"/"forbidden": refuse rather than guess a threshold
        raise TypeError(
            f"{cls}: mask must have dtype torch.bool (True = allowed), got dtype {mask.dtype}; "
            "convert it explicitly, e.g. mask > 0"
        )
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
        """Masks are equal if they allow the same outcomes (no mask = everything allowed)."""
        if self.mask is None and other.mask is None:
            return True
        if self._mask_target != other._mask_target:
            return False
        return bool(torch.equal(self._allowed(), other._allowed()))

    def _allowed(self) -> torch.Tensor:
        if self.mask is None:
            return torch.ones(self._mask_target, dtype=torch.bool, device=self.device)
        return self._full_mask()

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

    def _stack_dense(self, specs: list, dim: int) -> Any:
        """Specs that differ only in their masks stack into one spec with a stacked mask."""
        if any(s.shape != self.shape or not s._params_equal_but_mask(self) for s in specs):
            return None
        mask = torch.stack([s._allowed() for s in specs], dim)
        shape = list(self.shape)
        shape.insert(dim, len(specs))
        return self._remake(torch.Size(shape), self.device, self.dtype, mask)

    def _params_equal_but_mask(self, other: Any) -> bool:
        return self.space == other.space and self._spec_args() == other._spec_args()

    def _with(self, *, dtype: Any = None, device: Any = None) -> Any:
        device = self.device if device is None else device
        return self._remake(
            self.shape, device, self.dtype if dtype is None else dtype,
            None if self.mask is None else self.mask.to(device),
        )

    def _params_equal(self, other: Any) -> bool:
        return self._params_equal_but_mask(other) and self._mask_equal(other)

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
