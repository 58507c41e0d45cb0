"""Nested specs: :class:`Composite`, mirroring a TensorDict."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from tdrl.data.specs._utils import (
    _MISSING,
    DeviceLike,
    NestedKey,
    ShapeLike,
    _batch_shape_arg,
    _indent,
    _to_device,
    _to_size,
    _to_tensor,
)
from tdrl.data.specs.base import TensorSpec


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

    def __init__(self, spec: Composite, include_nested: bool, leaves_only: bool) -> None:
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
        return not (self._leaves_only and isinstance(value, Composite))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _CompositeKeys):
            other = list(other)
        if isinstance(other, (list, tuple, set, frozenset)):
            return set(self) == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CompositeKeys({list(self)})"


class Composite(TensorSpec):
    """A (possibly nested) mapping from keys to specs, mirroring a TensorDict.

    ``shape`` (alias ``batch_size``) is the batch shape shared by every entry: each entry's
    shape must start with it. ``device`` may be None (entries keep their own devices);
    otherwise entries are moved to it. Entries can be None (no constraint). Nested keys are
    tuples of strings; plain dicts are turned into nested Composites.

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

    # ---- attributes -------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:  # type: ignore[override]
        return self._shape

    @shape.setter
    def shape(self, value: ShapeLike) -> None:
        size = _batch_shape_arg(value)
        for key, spec in self._specs.items():
            if spec is not None and spec.shape[: len(size)] != size:
                raise ValueError(
                    f"Composite: cannot set shape {tuple(size)}: the entry {key!r} has shape "
                    f"{tuple(spec.shape)}, which does not start with it"
                )
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
        value = self._coerce(path, value, node.shape, node.device)
        for k in path[depth:-1]:
            sub = Composite(shape=node.shape, device=node.device)
            node._specs[k] = sub
            node = sub
        node._specs[path[-1]] = value

    def __getitem__(self, key: Any) -> Any:
        if _is_key(key):
            return self._get_path(_unravel(key))
        return super().__getitem__(key)

    def __delitem__(self, key: NestedKey) -> None:
        path = _unravel(key)
        parent = self._get_path(path[:-1]) if len(path) > 1 else self
        if not isinstance(parent, Composite) or path[-1] not in parent._specs:
            self._get_path(path)  # raises a KeyError naming the available keys
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

    # ---- values ----------------------------------------------------------------------------
    def _fill(self, method: str, shape: ShapeLike) -> TensorDictBase:
        batch = _batch_shape_arg(shape)
        out = {k: getattr(v, method)(batch) for k, v in self._specs.items() if v is not None}
        return TensorDict(out, batch_size=batch + self.shape, device=self.device)

    def rand(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._fill("rand", shape)

    def zero(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._fill("zero", shape)

    def one(self, shape: ShapeLike = None) -> TensorDictBase:  # type: ignore[override]
        return self._fill("one", shape)

    def is_in(self, val: Any) -> bool:  # type: ignore[override]
        if not isinstance(val, (TensorDictBase, Mapping)):
            return False
        present = set(val.keys())
        for k, spec in self._specs.items():
            if spec is None:
                continue
            if k not in present or not spec.is_in(val[k]):
                return False
        return True

    def assert_is_in(self, val: Any) -> None:  # type: ignore[override]
        if not isinstance(val, (TensorDictBase, Mapping)):
            raise AssertionError(f"expected a TensorDict, got {type(val).__name__}")
        present = set(val.keys())
        for k, spec in self._specs.items():
            if spec is None:
                continue
            if k not in present:
                raise AssertionError(f"key {k!r} is missing; keys present: {sorted(present)}")
            try:
                spec.assert_is_in(val[k])
            except AssertionError as err:
                raise AssertionError(f"entry {k!r}: {err}") from None

    def _collect_projection(self, val: Any, prefix: tuple[str, ...], out: list) -> None:
        if not isinstance(val, TensorDictBase):
            raise TypeError(
                f"Composite.project expects a TensorDict at {_key_repr(prefix)!r}, got "
                f"{type(val).__name__}"
            )
        present = set(val.keys())
        for k, spec in self._specs.items():
            if spec is None or k not in present:
                continue
            item = val.get(k)
            if isinstance(spec, Composite):
                spec._collect_projection(item, prefix + (k,), out)
            else:
                out.append((prefix + (k,), spec.project(item)))

    def project(self, val: TensorDictBase) -> TensorDictBase:  # type: ignore[override]
        """Project every present entry, write the results into ``val`` and return it."""
        if not isinstance(val, TensorDictBase):
            raise TypeError(f"Composite.project expects a TensorDict, got {type(val).__name__}")
        updates: list = []
        self._collect_projection(val, (), updates)  # validate everything before writing
        for path, tensor in updates:
            val.set(_key_repr(path), tensor)
        return val

    def encode(self, vals: Mapping, *, ignore_device: bool = False) -> TensorDictBase:  # type: ignore[override]
        """Encode a mapping of raw values into a TensorDict of batch size ``shape``."""
        if not isinstance(vals, Mapping):
            raise TypeError(f"Composite.encode expects a mapping, got {type(vals).__name__}")
        out: dict[str, Any] = {}
        for k, v in vals.items():
            if k not in self._specs:
                raise KeyError(
                    f"Composite.encode: key {k!r} is not in the spec; available keys: "
                    f"{list(self._specs)}"
                )
            spec = self._specs[k]
            if spec is None:
                out[k] = _to_tensor(v, None)
            else:
                out[k] = spec.encode(v, ignore_device=ignore_device)
        device = None if ignore_device else self.device
        return TensorDict(out, batch_size=self.shape, device=device)

    def to_numpy(self, val: TensorDictBase, safe: bool | None = None) -> dict:  # type: ignore[override]
        """Convert a TensorDict to a (nested) dict of numpy arrays."""
        present = set(val.keys())
        out = {}
        for k, spec in self._specs.items():
            if k not in present:
                continue
            if spec is None:
                out[k] = val[k].detach().cpu().numpy()
            else:
                out[k] = spec.to_numpy(val[k], safe=safe)
        return out

    # ---- shape ops / misc ------------------------------------------------------------------
    def _transform(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Composite:
        new_shape = fn(torch.empty(self.shape, device="meta")).shape
        out = Composite(shape=new_shape, device=self._device)
        for k, v in self._specs.items():
            out._specs[k] = None if v is None else v._transform(fn)
        return out

    def index(self, index: Any, tensor_to_index: Any) -> Any:
        return tensor_to_index[index]

    def to(self, dest: Any) -> Composite:
        """Move every entry to a device (or cast every leaf to a dtype)."""
        if isinstance(dest, torch.dtype):
            out = Composite(shape=self.shape, device=self._device)
            out._specs = {k: None if v is None else v.to(dest) for k, v in self._specs.items()}
            return out
        device = _to_device(dest)
        out = Composite(shape=self.shape, device=device)
        out._specs = {k: None if v is None else v.to(device) for k, v in self._specs.items()}
        return out

    def enumerate(self) -> TensorDictBase:
        """All combinations of the leaves' values (cartesian product), along a new dim 0."""
        leaves = [(k, v) for k, v in self._iter_items(True, True) if v is not None]
        enums = [(k, v.enumerate()) for k, v in leaves]
        counts = [e.shape[0] for _, e in enums]
        total = math.prod(counts)
        out = TensorDict({}, batch_size=torch.Size([total]) + self.shape, device=self.device)
        if not enums:
            return out
        grids = torch.meshgrid(*[torch.arange(c) for c in counts], indexing="ij")
        for (k, e), g in zip(enums, grids):
            out.set(k, e[g.reshape(-1).to(e.device)])
        return out

    def cardinality(self) -> int:
        return math.prod(v.cardinality() for v in self.values(True, True) if v is not None)

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
