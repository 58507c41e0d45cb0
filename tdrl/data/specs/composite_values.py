"""What a :class:`~tdrl.data.specs.composite.Composite` does with values (TensorDicts).

Sampling, membership, projection, encoding and enumeration, entry by entry; the structure
(keys, shape, device, locking) lives in :mod:`tdrl.data.specs.composite`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from tdrl.data.specs._utils import ShapeLike, _batch_shape_arg, _to_tensor
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.composite_keys import _key_repr


class _CompositeValues(TensorSpec):
    """Value-level methods shared by :class:`Composite` (a mixin, not a spec on its own)."""

    _specs: dict[str, TensorSpec | None]

    def _fill(self, method: str, shape: ShapeLike) -> TensorDictBase:
        batch = _batch_shape_arg(shape)
        out = {k: getattr(v, method)(batch) for k, v in self._specs.items() if v is not None}
        names = getattr(self, "_dim_names", None)  # Composite's dimension names, if any
        if names is not None:
            names = [None] * len(batch) + names
        return TensorDict(out, batch_size=batch + self.shape, device=self.device, names=names)

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
            if isinstance(spec, _CompositeValues):
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
                    f"The Composite instance with keys {list(self._specs)} has no entry "
                    f"{k!r} to encode"
                )
            spec = self._specs[k]
            if spec is None:
                out[k] = _to_tensor(v, None)
                continue
            try:
                out[k] = spec.encode(v, ignore_device=ignore_device)
            except RuntimeError as err:
                raise RuntimeError(
                    f"Composite.encode: encoding the entry {k!r} raised a RuntimeError. "
                    "Scroll up to know more."
                ) from err
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

    def type_check(
        self, value: torch.Tensor | TensorDictBase, selected_keys: Any = None
    ) -> None:
        """Check the dtypes of ``value``'s entries (or of one tensor for one key)."""
        if isinstance(value, torch.Tensor) and isinstance(selected_keys, str):
            value, selected_keys = {selected_keys: value}, [selected_keys]
        if isinstance(selected_keys, str):
            selected_keys = [selected_keys]
        for k, spec in self._specs.items():
            if spec is not None and (selected_keys is None or k in selected_keys):
                spec.type_check(value[k], k)

    def memoize_encode(self, mode: bool = True) -> None:
        super().memoize_encode(mode)
        for spec in self._specs.values():
            if spec is not None:
                spec.memoize_encode(mode)

    def erase_memoize_cache(self) -> None:
        for spec in self._specs.values():
            if spec is not None:
                spec.erase_memoize_cache()
