"""Nested specs: :class:`Composite`, mirroring a TensorDict."""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from tdrl.data.specs import composite_names as cn
from tdrl.data.specs._utils import (
    _MISSING,
    DeviceLike,
    NestedKey,
    ShapeLike,
    _batch_shape_arg,
    _expanded_shape,
    _indent,
    _normalize_index,
    _positive_steps,
    _shape_args,
    _shape_probe,
    _to_device,
    _to_size,
)
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.composite_keys import _CompositeKeys, _is_key, _key_repr, _unravel
from tdrl.data.specs.composite_values import _CompositeValues

_RESERVED_KEYS = frozenset({"shape", "device", "dtype", "space"})


class Composite(cn._CompositeNames, _CompositeValues):
    """A (possibly nested) mapping from keys to specs, mirroring a TensorDict.

    ``shape`` (alias ``batch_size``) is the batch shape shared by every entry: each entry's
    shape must start with it. ``device`` may be None (entries keep their own devices);
    otherwise entries are moved to it. Entries can be None (no constraint). Nested keys are
    tuples of strings; plain dicts are turned into nested Composites. ``names`` optionally
    names the batch dimensions (see :mod:`~tdrl.data.specs.composite_names`).

    ``rand``/``zero``/``one`` return a TensorDict of batch size ``(*shape, *spec.shape)``;
    ``is_in`` checks every non-None entry (a missing entry makes it False); ``project``
    projects the entries that are present, writes them into the given TensorDict and
    returns it.

    Examples:
        >>> import torch
        >>> from tdrl.data import Bounded, Categorical, Composite, Unbounded
        >>> spec = Composite(obs=Unbounded(3), shape=())
        >>> spec["agent", "action"] = Categorical(2)
        >>> spec[("agent", "value")] = Bounded(0.0, 1.0, shape=(1,))
        >>> list(spec.keys(include_nested=True, leaves_only=True))
        ['obs', ('agent', 'action'), ('agent', 'value')]
        >>> ("agent", "action") in spec
        True
        >>> td = spec.rand((4,))
        >>> td.batch_size, td["agent", "action"].shape
        (torch.Size([4]), torch.Size([4]))
        >>> td["agent", "value"] += 5.0
        >>> spec.is_in(td)
        False
        >>> spec.is_in(spec.project(td))
        True
        >>> spec["missing"]
        Traceback (most recent call last):
        ...
        KeyError: "key 'missing' not found in Composite; available keys: ['obs', 'agent', ('agent', 'action'), ('agent', 'value')]"
    """

    domain = "composite"

    def __init__(
        self,
        *args: Mapping[NestedKey, Any] | Composite | None,
        shape: ShapeLike = None,
        device: DeviceLike = None,
        batch_size: ShapeLike = None,
        names: Sequence[str | None] | None = None,
        **kwargs: TensorSpec | Mapping | None,
    ) -> None:
        if len(args) > 1:
            raise TypeError(
                "Composite accepts at most one positional argument (a mapping of specs), got "
                f"{len(args)}"
            )
        if shape is not None and batch_size is not None:
            raise ValueError("Composite: pass either shape or batch_size, not both")
        size = _to_size(shape if shape is not None else batch_size)
        if size is None and args and isinstance(args[0], Composite):
            size = args[0].shape
        if device is None and args and isinstance(args[0], Composite):
            device = args[0].device
        self._shape = torch.Size([]) if size is None else size
        self._device = None if device is None else _to_device(device)
        self._specs: dict[str, TensorSpec | None] = {}
        self._locked = False
        self._parents: list[weakref.ref] = []  # the Composites holding this one
        entries: list[tuple[Any, Any]] = []
        if args and args[0] is not None:
            src = args[0]
            if isinstance(src, Composite):
                entries.extend(src._specs.items())
            elif isinstance(src, Mapping):
                entries.extend(src.items())
            else:
                raise TypeError(
                    "Composite: the positional argument must be a mapping of specs, got "
                    f"{type(src).__name__}"
                )
        entries.extend(kwargs.items())
        for key, value in entries:
            self[key] = value
        if names is None and args and isinstance(args[0], Composite):
            names = args[0]._dim_names
        if names is not None:
            self.names = names

    # ---- attributes -------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:  # type: ignore[override]
        return self._shape

    @shape.setter
    def shape(self, value: ShapeLike) -> None:
        """Set the batch shape; child Composites with a shorter (prefix) shape adopt it."""
        self._check_unlocked()
        size = _batch_shape_arg(value)
        for key, spec in self._specs.items():
            if spec is None or spec.shape[: len(size)] == size:
                continue
            if isinstance(spec, Composite) and size[: spec.ndim] == spec.shape:
                continue  # adopts ``size`` below, once every entry is checked
            raise ValueError(
                f"Composite: cannot set shape {tuple(size)}: the entry {key!r} has shape "
                f"{tuple(spec.shape)}, which does not start with it"
            )
        for spec in self._specs.values():
            if isinstance(spec, Composite) and spec.shape[: len(size)] != size:
                spec.shape = size
        self._shape = size

    batch_size = shape

    @property
    def device(self) -> torch.device | None:  # type: ignore[override]
        return self._device

    @property
    def dtype(self) -> torch.dtype | None:  # type: ignore[override]
        """The common dtype of all leaves, or None if they differ (or there are none)."""
        dtypes = {v.dtype for _, v in self._iter_items(True, True) if v is not None}
        return dtypes.pop() if len(dtypes) == 1 else None

    @property
    def space(self) -> None:  # type: ignore[override]
        return None

    # ---- mapping interface ----------------------------------------------------------------
    def _get_path(self, path: tuple[str, ...]) -> TensorSpec | None:
        node: Any = self
        for i, k in enumerate(path):
            if not isinstance(node, Composite):
                raise KeyError(
                    f"key {_key_repr(path)!r} not found: {_key_repr(path[:i])!r} is a "
                    f"{type(node).__name__}, not a Composite"
                )
            if k not in node._specs:
                raise KeyError(
                    f"key {_key_repr(path)!r} not found in Composite; available keys: "
                    f"{list(self.keys(include_nested=True))}"
                )
            node = node._specs[k]
        return node

    def _coerce(self, path: tuple[str, ...], value: Any, shape: torch.Size,
                device: torch.device | None) -> TensorSpec | None:
        if value is None:
            return None
        if isinstance(value, Composite):
            if len(value.shape) < len(shape) and shape[: value.ndim] == value.shape:
                value.shape = shape  # a child Composite takes its parent's longer shape
            if value.shape[: len(shape)] != shape:
                raise ValueError(
                    f"Composite: the entry {_key_repr(path)!r} has shape {tuple(value.shape)}, "
                    f"which does not start with the Composite shape {tuple(shape)}"
                )
            return value.to(device) if device is not None and value.device != device else value
        if isinstance(value, TensorSpec):
            if value.shape[: len(shape)] != shape:
                raise ValueError(
                    f"Composite: the entry {_key_repr(path)!r} has shape {tuple(value.shape)}, "
                    f"which does not start with the Composite shape {tuple(shape)}"
                )
            return value.to(device) if device is not None and value.device != device else value
        if isinstance(value, Mapping):
            return Composite(value, shape=shape, device=device)
        raise TypeError(
            f"Composite: the entry {_key_repr(path)!r} must be a TensorSpec, a mapping or None, "
            f"got {type(value).__name__}"
        )

    def __setitem__(self, key: NestedKey, value: TensorSpec | Mapping | None) -> None:
        if not _is_key(key):
            raise TypeError(
                f"Composite keys must be strings or tuples of strings, got {key!r}"
            )
        path = _unravel(key)
        if path[0] in _RESERVED_KEYS:
            raise AttributeError(
                f"Composite: the key {path[0]!r} cannot be set: {sorted(_RESERVED_KEYS)} are "
                "Composite attributes"
            )
        # locate the parent node (without creating anything yet) to validate first
        node: Composite = self
        depth = 0
        for k in path[:-1]:
            sub = node._specs.get(k)
            if sub is None:
                break
            if not isinstance(sub, Composite):
                raise KeyError(
                    f"cannot set {_key_repr(path)!r}: {_key_repr(path[: depth + 1])!r} is a "
                    f"{type(sub).__name__}, not a Composite"
                )
            node = sub
            depth += 1
        node._check_unlocked()
        value = self._coerce(path, value, node.shape, node.device)
        for k in path[depth:-1]:
            sub = Composite(shape=node.shape, device=node.device)
            node._put(k, sub)
            node = sub
        node._put(path[-1], value)

    def _put(self, key: str, value: TensorSpec | None) -> None:
        """Store an entry, keeping the children's parent links (used by locking)."""
        old = self._specs.get(key)
        if isinstance(old, Composite) and old is not value:
            old._parents = [r for r in old._parents if r() is not self]
        if isinstance(value, Composite) and not any(r() is self for r in value._parents):
            value._parents.append(weakref.ref(self))
        if isinstance(value, Composite):
            self._name_child(value)
        self._specs[key] = value

    def __getitem__(self, key: Any) -> Any:
        if _is_key(key):
            return self._get_path(_unravel(key))
        return self._index_batch(key)

    def __delitem__(self, key: NestedKey) -> None:
        path = _unravel(key)
        parent = self._get_path(path[:-1]) if len(path) > 1 else self
        if not isinstance(parent, Composite) or path[-1] not in parent._specs:
            self._get_path(path)  # raises a KeyError naming the available keys
        parent._check_unlocked()  # type: ignore[union-attr]
        parent._put(path[-1], None)  # type: ignore[union-attr]
        del parent._specs[path[-1]]  # type: ignore[union-attr]

    def __contains__(self, key: object) -> bool:
        if not _is_key(key):
            return False
        try:
            self._get_path(_unravel(key))  # type: ignore[arg-type]
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._specs))

    def get(self, key: NestedKey, default: Any = _MISSING) -> Any:
        """Return the entry at ``key`` (``default`` if given and the key is missing)."""
        try:
            return self[key]
        except KeyError:
            if default is _MISSING:
                raise
            return default

    def set(self, key: NestedKey, value: TensorSpec | Mapping | None) -> Composite:
        """Set an entry (same as ``spec[key] = value``) and return the Composite."""
        self[key] = value
        return self

    def update(self, other: Mapping | Composite) -> Composite:
        """Set every entry of ``other`` (nested dicts/Composites are merged) and return self."""
        items = other._specs.items() if isinstance(other, Composite) else other.items()
        for key, value in items:
            current = self.get(key, None)
            if isinstance(current, Composite) and isinstance(value, (Composite, Mapping)):
                current.update(value)
            else:
                self[key] = value
        return self

    def _iter_items(
        self, include_nested: bool, leaves_only: bool, prefix: tuple[str, ...] = ()
    ) -> Iterator[tuple[NestedKey, TensorSpec | None]]:
        for k, v in self._specs.items():
            path = prefix + (k,)
            is_node = isinstance(v, Composite)
            if not (leaves_only and is_node):
                yield _key_repr(path), v
            if include_nested and is_node:
                yield from v._iter_items(True, leaves_only, path)  # type: ignore[union-attr]

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> _CompositeKeys:
        """Keys view; nested keys (tuples) only with ``include_nested=True``."""
        return _CompositeKeys(self, include_nested, leaves_only)

    def items(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[tuple[NestedKey, TensorSpec | None]]:
        return list(self._iter_items(include_nested, leaves_only))

    def values(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[TensorSpec | None]:
        return [v for _, v in self._iter_items(include_nested, leaves_only)]

    def select(self, *keys: NestedKey, strict: bool = True) -> Composite:
        """A new Composite holding only ``keys`` (missing keys raise unless not strict)."""
        out = Composite(shape=self.shape, device=self.device)
        for key in keys:
            if key in self:
                out[key] = self[key]
            elif strict:
                self._get_path(_unravel(key))
        return out

    def exclude(self, *keys: NestedKey) -> Composite:
        """A copy without ``keys`` (missing keys are ignored)."""
        out = self.clone()
        for key in keys:
            if key in out:
                del out[key]
        return out

    def empty(self) -> Composite:
        """A Composite with the same shape and device but no entries."""
        return Composite(shape=self.shape, device=self.device)

    def is_empty(self) -> bool:
        """True if there is no entry other than (recursively) empty Composites."""
        return all(isinstance(v, Composite) and v.is_empty() for v in self._specs.values())

    # ---- shape ops / misc ------------------------------------------------------------------
    # every shape op maps onto the entries' own op: entries share the leading dims, so the
    # same index / dim applies to them (and Stacked entries keep their structure)
    def _map(self, shape: torch.Size, op: Callable[[TensorSpec], TensorSpec],
             names: list | None = None) -> Composite:
        out = Composite(shape=shape, device=self._device)
        for k, v in self._specs.items():
            out._put(k, None if v is None else op(v))
        out.names = names
        return out

    def _index_batch(self, idx: Any) -> Composite:
        nidx = _normalize_index(idx, self.ndim, "Composite")
        flips, pidx = _positive_steps(nidx, self.shape)
        probe = _shape_probe(self.shape)
        shape = (probe.flip(flips) if flips else probe)[pidx].shape
        return self._map(shape, lambda v: v[nidx], cn.names_indexed(self._dim_names, nidx))

    def expand(self, *shape: Any) -> Composite:
        new = _expanded_shape(self.shape, _shape_args(shape), "Composite")
        return self._map(new, lambda v: v.expand(*new, *v.shape[self.ndim :]), cn.names_expanded(self._dim_names, len(new)))

    def unsqueeze(self, dim: int) -> Composite:
        d = self._resolve_dim(dim, self.ndim + 1, "unsqueeze")
        shape = list(self.shape)
        shape.insert(d, 1)
        return self._map(torch.Size(shape), lambda v: v.unsqueeze(d), cn.names_unsqueezed(self._dim_names, d))

    def squeeze(self, dim: int | None = None) -> Composite:
        if dim is None:
            out = self
            for d in reversed(range(self.ndim)):
                if self.shape[d] == 1:
                    out = out.squeeze(d)
            return out if out is not self else self.clone()
        d = self._resolve_dim(dim, self.ndim, "squeeze")
        if self.shape[d] != 1:
            return self.clone()
        shape = self.shape[:d] + self.shape[d + 1 :]
        return self._map(shape, lambda v: v.squeeze(d), cn.names_squeezed(self._dim_names, d))

    def clone(self) -> Composite:
        return self._map(self.shape, lambda v: v.clone(), self._dim_names)

    def index(self, index: Any, tensor_to_index: Any) -> Any:
        return tensor_to_index[index]

    def to(self, dest: Any) -> Composite:
        """Move every entry to a device (or cast every leaf to a dtype)."""
        if isinstance(dest, torch.dtype):
            out = Composite(shape=self.shape, device=self._device)
        else:
            dest = _to_device(dest)
            out = Composite(shape=self.shape, device=dest)
        for k, v in self._specs.items():
            out._put(k, None if v is None else v.to(dest))
        out.names = self._dim_names
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_parents"] = []  # weak links are rebuilt by the holders' __setstate__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for spec in self._specs.values():
            if isinstance(spec, Composite):
                spec._parents.append(weakref.ref(self))

    # ---- device / locking --------------------------------------------------------------
    def clear_device_(self) -> Composite:
        """Forget the device of this Composite and of nested ones (leaves keep theirs).

        Examples:
            >>> from tdrl.data import Composite, Unbounded
            >>> spec = Composite(a=Unbounded(1), device="cpu")
            >>> spec.clear_device_().device is None, spec["a"].device
            (True, device(type='cpu'))
        """
        self._device = None
        for spec in self._specs.values():
            if isinstance(spec, Composite):
                spec.clear_device_()
        return self

    @property
    def locked(self) -> bool:
        """Whether entries can be set or deleted (see :meth:`lock_`)."""
        return self._locked

    is_locked = locked

    def _check_unlocked(self) -> None:
        if self._locked:
            raise RuntimeError(
                f"Cannot modify a locked Composite. Call unlock_() first (keys: "
                f"{list(self._specs)})"
            )

    def _subtree(self) -> list[Composite]:
        out, stack = [], [self]
        while stack:
            node = stack.pop()
            if all(node is not seen for seen in out):
                out.append(node)
                stack.extend(v for v in node._specs.values() if isinstance(v, Composite))
        return out

    def lock_(self, recurse: bool | None = None) -> Composite:
        """Forbid setting or deleting entries (of nested Composites too, unless ``recurse=False``).

        Examples:
            >>> from tdrl.data import Composite, Unbounded
            >>> spec = Composite(a=Composite(b=Unbounded(1))).lock_()
            >>> spec["a"].is_locked
            True
            >>> spec["c"] = Unbounded(1)
            Traceback (most recent call last):
            ...
            RuntimeError: Cannot modify a locked Composite. Call unlock_() first (keys: ['a'])
        """
        for node in self._subtree() if recurse is None or recurse else [self]:
            node._locked = True
        return self

    def unlock_(self, recurse: bool | None = None) -> Composite:
        """Allow modifications again; refused while a locked Composite still holds this one."""
        nodes = self._subtree() if recurse is None or recurse else [self]
        for node in nodes:
            holders = [r() for r in node._parents]
            if any(
                h is not None and h._locked and all(h is not n for n in nodes) for h in holders
            ):
                raise RuntimeError(
                    "Cannot unlock a Composite that is part of a locked graph: a locked "
                    "Composite outside the unlocked part holds it; unlock that one first"
                )
        for node in nodes:
            node._locked = False
        return self

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        return (
            self.shape == other.shape  # type: ignore[attr-defined]
            and self.device == other.device  # type: ignore[attr-defined]
            and self._specs.keys() == other._specs.keys()  # type: ignore[attr-defined]
            and all(v == other._specs[k] for k, v in self._specs.items())  # type: ignore[attr-defined]
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = [f"{k}: {v!r}" for k, v in self._specs.items()]
        fields += [f"device={self.device}", f"shape={self.shape}"]
        body = ",\n".join(_indent(f) for f in fields)
        return f"Composite(\n{body})"


# --------------------------------------------------------------------------------------
