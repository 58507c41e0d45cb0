"""Dimension names of a :class:`~tdrl.data.specs.composite.Composite` (as ``TensorDict.names``).

A Composite may name its batch dimensions (``names=["batch", "time"]``); unnamed ones are
``None``. The names follow the shape operations: ``expand`` adds unnamed leading dims,
``squeeze`` / integer indexing drop the removed dims' names, ``unsqueeze`` / a ``None``
index insert an unnamed dim, slices keep names, ``unbind`` gives each part the remaining
names; ``clone`` and ``to`` keep them. One 1-d index tensor keeps its dim's name, as
in a TensorDict; other advanced indexing (boolean masks, several or multi-dimensional
index tensors) drops all names, its result dims not matching input dims one to one. Nested Composites take their
parent's names on the shared leading dims. ``rand`` / ``zero`` / ``one`` name their
TensorDict's dims the same way. Names never affect equality.

Examples:
    >>> from tdrl.data import Composite, Unbounded
    >>> spec = Composite(obs=Unbounded(shape=(4, 5, 3)), shape=(4, 5), names=["batch", "time"])
    >>> spec.expand(2, 4, 5).names, spec[0].names, spec.unsqueeze(1).names
    ([None, 'batch', 'time'], ['time'], ['batch', None, 'time'])
    >>> spec.rand().names
    ['batch', 'time']
    >>> spec.refine_names("batch", "step")
    Traceback (most recent call last):
    ...
    RuntimeError: refine_names: cannot coerce Composite names ['batch', 'time'] with ('batch', 'step'): dim 1 is already named 'time'
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["names_expanded", "names_indexed", "names_squeezed", "names_unsqueezed"]

Names = list[Any]  # a name is a str or None


def _clean(names: Names | None) -> Names | None:
    """``None`` when no dim is named (an all-None list carries no information)."""
    if names is None or all(n is None for n in names):
        return None
    return list(names)


def names_expanded(names: Names | None, new_ndim: int) -> Names | None:
    """Names after ``expand`` to ``new_ndim`` dims (new leading dims are unnamed)."""
    if names is None:
        return None
    return [None] * (new_ndim - len(names)) + list(names)


def names_squeezed(names: Names | None, dim: int) -> Names | None:
    """Names after removing dim ``dim`` (non-negative)."""
    if names is None:
        return None
    return _clean(names[:dim] + names[dim + 1 :])


def names_unsqueezed(names: Names | None, dim: int) -> Names | None:
    """Names after inserting an unnamed dim at ``dim`` (non-negative)."""
    if names is None:
        return None
    return names[:dim] + [None] + names[dim:]


def names_indexed(names: Names | None, index: tuple) -> Names | None:
    """Names after indexing with ``index`` (a tuple without Ellipsis, as normalised)."""
    if names is None:
        return None
    tensors = [t for t in index if isinstance(t, torch.Tensor) and t.ndim > 0]
    if len(tensors) > 1 or any(t.dtype == torch.bool or t.ndim > 1 for t in tensors):
        return None  # result dims do not map one to one onto input dims
    out: Names = []
    dim = 0
    for item in index:
        if item is None:
            out.append(None)
        elif isinstance(item, (slice, torch.Tensor)) and getattr(item, "ndim", 1) == 1:
            out.append(names[dim])  # a slice or one 1-d index tensor keeps its dim
            dim += 1
        else:  # an integer drops its dim
            dim += 1
    return _clean(out + list(names[dim:]))


def _check(names: Sequence[Any], ndim: int) -> Names:
    names = list(names)
    if len(names) != ndim:
        raise ValueError(f"Expected {ndim} names, but got {len(names)} names: {names}")
    for n in names:
        if n is not None and not isinstance(n, str):
            raise TypeError(f"Composite names must be strings or None, got {n!r} in {names}")
    named = [n for n in names if n is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"Composite names must be unique, got {names}")
    return names


class _CompositeNames:
    """The ``names`` API of :class:`~tdrl.data.specs.composite.Composite` (a mixin)."""

    _names: Names | None = None
    _specs: dict[str, Any]
    shape: torch.Size

    @property
    def names(self) -> Names:
        """One name (or None) per batch dimension.

        Examples:
            >>> from tdrl.data import Composite
            >>> spec = Composite(shape=(3, 2))
            >>> spec.names
            [None, None]
            >>> spec.names = ["env", None]
            >>> spec.names, spec._has_names()
            (['env', None], True)
        """
        ndim = len(self.shape)
        names = self._names
        if names is None:
            return [None] * ndim
        # a Composite whose shape grew (adopting a parent's) keeps its leading names
        return (list(names) + [None] * ndim)[:ndim]

    @names.setter
    def names(self, value: Sequence[Any] | None) -> None:
        if value is None:
            self._names = None
            return
        self._names = _clean(_check(value, len(self.shape)))
        self._propagate_names()

    @property
    def _dim_names(self) -> Names | None:
        """The names fitted to the current shape, or None when no dim is named."""
        return _clean(self.names) if self._names is not None else None

    def _has_names(self) -> bool:
        """Whether any dimension is named."""
        return any(n is not None for n in self.names)

    def _erase_names(self) -> None:
        """Forget the names of this Composite (nested ones keep theirs)."""
        self._names = None

    def _propagate_names(self) -> None:
        for spec in self._specs.values():
            if isinstance(spec, _CompositeNames):
                self._name_child(spec)

    def _name_child(self, child: _CompositeNames) -> None:
        """Give a nested Composite this one's names on the leading dims they share."""
        if self._names is None or len(child.shape) < len(self.shape):
            return
        own = child.names
        child.names = self.names + own[len(self.shape) :]

    def refine_names(self, *names: Any) -> Any:
        """Name unnamed dims in place and return self (a named dim keeps its name).

        One ``...`` stands for the dims not listed (they keep their current names).

        Examples:
            >>> from tdrl.data import Composite
            >>> spec = Composite(shape=(3, 4, 5))
            >>> spec.refine_names("env", ..., "agent").names
            ['env', None, 'agent']
        """
        current = self.names
        if sum(n is Ellipsis for n in names) > 1:
            raise ValueError(f"refine_names: at most one Ellipsis is allowed, got {names}")
        if any(n is Ellipsis for n in names):
            i = next(k for k, n in enumerate(names) if n is Ellipsis)
            fill = len(current) - (len(names) - 1)
            if fill < 0:
                raise ValueError(
                    f"refine_names: {len(names) - 1} names given for {len(current)} dims"
                )
            refined = list(names[:i]) + current[i : i + fill] + list(names[i + 1 :])
        else:
            refined = list(names)
        if len(refined) != len(current):
            raise ValueError(f"Expected {len(current)} names, but got {len(refined)}: {names}")
        for dim, (old, new) in enumerate(zip(current, refined)):
            if old is not None and new != old:
                raise RuntimeError(
                    f"refine_names: cannot coerce Composite names {current} with {names}: dim "
                    f"{dim} is already named {old!r}"
                )
        self.names = refined
        return self
