"""``Categorical(n=-1)``: a categorical spec whose number of outcomes is not known yet.

``n=-1`` (``space.n == -1``) describes indices ``>= 0`` with no known upper bound (e.g. a
vocabulary discovered while running). ``is_in`` accepts any non-negative value of the
spec's dtype and shape, ``project`` clamps to ``>= 0``; anything that needs the number of
outcomes (``n``, ``rand``, ``enumerate``, ``cardinality``, ``to_one_hot``) raises
``RuntimeError`` until :meth:`set_provisional_n` gives a working value (``space.n`` stays
``-1``). A mask needs a known ``n``.

Examples:
    >>> import torch
    >>> from tdrl.data import Categorical
    >>> spec = Categorical(-1)
    >>> spec.space.n, spec.is_in(torch.tensor(12345)), spec.is_in(torch.tensor(-1))
    (-1, True, False)
    >>> spec.rand()
    Traceback (most recent call last):
    ...
    RuntimeError: Categorical(n=-1) has an undefined number of outcomes: call spec.set_provisional_n(n) before sampling or enumerating
    >>> spec.set_provisional_n(3)
    >>> spec.n, bool(spec.rand((100,)).max() < 3), spec.space.n
    (3, True, -1)
"""
from __future__ import annotations

import operator
from typing import Any

import torch

from tdrl.data.specs._utils import _check_n, _is_float, _reject_nan

__all__ = ["UNKNOWN_N"]

#: the ``n`` of a categorical spec whose number of outcomes is unknown
UNKNOWN_N = -1


def _check_n_or_unknown(n: Any, cls: str) -> int:
    """``n`` as an int: ``-1`` (unknown) or a non-negative count."""
    if not isinstance(n, bool):
        try:
            if operator.index(n) == UNKNOWN_N:
                return UNKNOWN_N
        except TypeError:
            pass
    return _check_n(n, cls, allow_zero=True)


class _UnknownNMixin:
    """The ``n=-1`` parts of :class:`~tdrl.data.Categorical` (see the module docstring)."""

    _provisional_n: int | None = None
    space: Any
    mask: torch.Tensor | None

    @property
    def _undefined_n(self) -> bool:
        return self.space.n < 0

    @property
    def n(self) -> int:
        """The number of outcomes (the provisional one when ``space.n == -1``)."""
        n = self.space.n
        if n >= 0:
            return n
        if self._provisional_n is None:
            raise RuntimeError(
                f"{type(self).__name__}(n=-1) has an undefined number of outcomes: call "
                "spec.set_provisional_n(n) before sampling or enumerating"
            )
        return self._provisional_n

    def set_provisional_n(self, n: int) -> None:
        """Give a spec created with ``n=-1`` a working number of outcomes (``space.n`` stays -1)."""
        if not self._undefined_n:
            raise ValueError(
                f"{type(self).__name__}.set_provisional_n: the spec already has n={self.space.n}; "
                "a provisional n is only for specs created with n=-1"
            )
        self._provisional_n = _check_n(n, type(self).__name__)

    def update_mask(self, mask: torch.Tensor | None) -> None:
        if mask is None:
            self.mask = None
            return
        if self._undefined_n:
            raise ValueError(
                f"{type(self).__name__}(n=-1): a mask needs a known number of outcomes"
            )
        super().update_mask(mask)  # type: ignore[misc]

    def is_in(self, val: torch.Tensor) -> bool:
        if not self._undefined_n:
            return super().is_in(val)  # type: ignore[misc]
        if not isinstance(val, torch.Tensor) or not self._shape_matches(val):  # type: ignore[attr-defined]
            return False
        if val.dtype != self.dtype:  # type: ignore[attr-defined]
            return False
        return bool((val >= 0).all())

    def project(self, val: torch.Tensor) -> torch.Tensor:
        if not self._undefined_n:
            return super().project(val)  # type: ignore[misc]
        self._check_shape(val, "project")  # type: ignore[attr-defined]
        _reject_nan(val, type(self).__name__)
        if val.dtype == torch.bool:
            val = val.to(torch.int64)
        val = val.round().clamp_min(0) if _is_float(val.dtype) else val.clamp_min(0)
        return val.to(self.dtype)  # type: ignore[attr-defined]

    def cardinality(self) -> int:
        return self.n

    def _spec_args(self) -> tuple[Any, dict[str, Any]]:
        return self.space.n, {}

    def _remake(self, shape: torch.Size, device: Any, dtype: Any, mask: Any) -> Any:
        out = super()._remake(shape, device, dtype, mask)  # type: ignore[misc]
        out._provisional_n = self._provisional_n
        return out
