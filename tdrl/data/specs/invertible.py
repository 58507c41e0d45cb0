"""``invertible_dict``: a one-to-one dict that also maps values back to their keys."""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

__all__ = ["invertible_dict"]


class invertible_dict(dict):  # noqa: N801 (TorchRL's name)
    """A dict whose values are unique and hashable, with the reverse mapping kept in step.

    Entries can be added (by ``d[k] = v``, the constructor or :meth:`update`) but never
    overwritten: reusing a key or a value raises ``ValueError`` naming both, and nothing is
    written. :meth:`inverse` returns the live ``value -> key`` dict, :meth:`invert` a new
    ``invertible_dict`` with keys and values swapped. Deleting an entry removes its reverse
    entry too. Unlike TorchRL's, entries given to the constructor are in the inverse.

    Args:
        inv_dict: reverse entries to start from (``value -> key``), kept as given.

    Examples:
        >>> from tdrl.data.tensor_specs import invertible_dict
        >>> d = invertible_dict(a=3, b=2)
        >>> d.inverse()[2], sorted(d.invert().keys())
        ('b', [2, 3])
        >>> d["c"] = 3
        Traceback (most recent call last):
        ...
        ValueError: overwriting in invertible_dict is not permitted: the value 3 already belongs to the key 'a' (new key 'c')
    """

    def __init__(self, *args: Any, inv_dict: Mapping | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.inv_dict: dict = {} if inv_dict is None else dict(inv_dict)
        self.update(*args, **kwargs)

    def __setitem__(self, key: Hashable, value: Hashable) -> None:
        if key in self:
            raise ValueError(
                f"overwriting in invertible_dict is not permitted: the key {key!r} already maps "
                f"to {self[key]!r} (new value {value!r})"
            )
        if value in self.inv_dict:
            raise ValueError(
                f"overwriting in invertible_dict is not permitted: the value {value!r} already "
                f"belongs to the key {self.inv_dict[value]!r} (new key {key!r})"
            )
        self.inv_dict[value] = key
        super().__setitem__(key, value)

    def __delitem__(self, key: Hashable) -> None:
        value = self[key]
        super().__delitem__(key)
        self.inv_dict.pop(value, None)

    def pop(self, key: Hashable, *default: Any) -> Any:
        if key not in self and default:
            return default[0]
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        self.inv_dict.pop(value, None)
        return key, value

    def clear(self) -> None:
        super().clear()
        self.inv_dict.clear()

    def setdefault(self, key: Hashable, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Add every entry (checked all together first: a clash writes nothing)."""
        items: list[tuple[Any, Any]] = []
        for arg in args:
            pairs: Iterable = arg.items() if isinstance(arg, Mapping) else arg
            items.extend(pairs)
        items.extend(kwargs.items())
        keys, values = set(), set()
        for key, value in items:
            if key in self or key in keys:
                raise ValueError(
                    f"overwriting in invertible_dict is not permitted: the key {key!r} is given "
                    "twice or already present"
                )
            if value in self.inv_dict or value in values:
                raise ValueError(
                    f"overwriting in invertible_dict is not permitted: the value {value!r} is "
                    "given twice or already present"
                )
            keys.add(key)
            values.add(value)
        for key, value in items:
            self[key] = value

    def invert(self) -> invertible_dict:
        """A new ``invertible_dict`` mapping each value to its key."""
        return invertible_dict({v: k for k, v in self.items()})

    def inverse(self) -> dict:
        """The live reverse mapping, ``value -> key``."""
        return self.inv_dict
