"""Nested keys of a :class:`~tdrl.data.specs.composite.Composite`: parsing and the keys view."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tdrl.data.specs._utils import NestedKey


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

    def __init__(self, spec: Any, include_nested: bool, leaves_only: bool) -> None:
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
        return not (self._leaves_only and getattr(value, "domain", None) == "composite")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _CompositeKeys):
            other = list(other)
        if isinstance(other, (list, tuple, set, frozenset)):
            return set(self) == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CompositeKeys({list(self)})"
