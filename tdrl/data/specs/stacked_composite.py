"""``torch.stack`` of Composites, and :class:`StackedComposite` (Composites with different keys).

Composites with the same keys stack entry by entry into one :class:`Composite` (whose
entries may be :class:`~tdrl.data.specs.stacked.Stacked`); Composites whose keys differ
become a :class:`StackedComposite`, whose values are lazy stacks of TensorDicts.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDictBase

from tdrl.data.specs._utils import NestedKey, ShapeLike, _batch_shape_arg
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.composite import Composite
from tdrl.data.specs.composite_keys import _unravel
from tdrl.data.specs.stacked import _TORCH_STACK_COMPOSITE, Stacked


def _common_device(specs: Sequence[Composite]) -> torch.device | None:
    devices = {s.device for s in specs} - {None}
    if len(devices) > 1:
        raise RuntimeError(f"Devices differ, got {sorted(map(str, devices))}")
    return devices.pop() if devices else None


def _check_composites(specs: Sequence[TensorSpec]) -> None:
    first = specs[0]
    for spec in specs[1:]:
        if not isinstance(spec, Composite):
            raise RuntimeError(
                "Stacking specs cannot occur: Found more than one type of specs in the list. "
                f"Got {type(first).__name__} and {type(spec).__name__}."
            )
        if spec.shape != first.shape:
            raise RuntimeError(f"Shapes differ, got {first.shape} and {spec.shape}")


def stack_composites(specs: Sequence[Composite], dim: int = 0) -> TensorSpec:
    """``torch.stack`` for Composites (see the module docstring).

    Examples:
        >>> import torch
        >>> from tdrl.data import Categorical, Composite
        >>> spec = torch.stack([Composite(a=Categorical(2)), Composite(a=Categorical(3))], 0)
        >>> type(spec).__name__, spec.shape, type(spec["a"]).__name__
        ('Composite', torch.Size([2]), 'Stacked')
        >>> mixed = torch.stack([Composite(a=Categorical(2)), Composite(b=Categorical(3))], 0)
        >>> type(mixed).__name__, mixed.rand()[1]["b"].shape
        ('StackedComposite', torch.Size([]))
    """
    specs = list(specs)
    _check_composites(specs)
    first = specs[0]
    device = _common_device(specs)
    specs = [s if device is None or s.device == device else s.to(device) for s in specs]
    d = operator.index(dim)
    d = d + first.ndim + 1 if d < 0 else d
    if not 0 <= d <= first.ndim:
        raise ValueError(f"cannot stack Composites of shape {tuple(first.shape)} along dim {dim}")
    shape = list(first.shape)
    shape.insert(d, len(specs))
    if all(s == specs[0] for s in specs[1:]):
        return specs[0].unsqueeze(d).expand(*shape)
    keys = list(first._specs)
    same_keys = all(set(s._specs) == set(keys) for s in specs[1:])
    if same_keys and all(
        len({s._specs[k] is None for s in specs}) == 1 for k in keys
    ):
        out = Composite(shape=shape, device=device)
        for k in keys:
            entries = [s._specs[k] for s in specs]
            out._put(k, None if entries[0] is None else torch.stack(entries, d))
        return out
    return StackedComposite(*specs, dim=d)


_TORCH_STACK_COMPOSITE["fn"] = stack_composites


class StackedComposite(Stacked):
    """A lazy stack of Composites whose keys differ.

    ``spec[i]`` is the i-th Composite; ``spec[key]`` stacks that entry across the
    Composites (every one must have it). ``rand``/``zero``/``one`` return a
    ``LazyStackedTensorDict``; ``is_in`` and ``project`` work TensorDict by TensorDict.

    Examples:
        >>> import torch
        >>> from tdrl.data import Bounded, Composite, Unbounded
        >>> a = Composite(obs=Bounded(0.0, 1.0, shape=(2,)), x=Unbounded(1))
        >>> b = Composite(obs=Bounded(0.0, 1.0, shape=(2,)))
        >>> spec = torch.stack([a, b], 0)
        >>> list(spec.keys()), spec["obs"].shape
        (['obs'], torch.Size([2, 2]))
        >>> td = spec.rand((3,))
        >>> td.batch_size, bool(spec.is_in(td))
        (torch.Size([3, 2]), True)
    """

    domain = "composite"

    def __init__(self, *specs: Composite, dim: int = 0) -> None:
        if not specs:
            raise ValueError("StackedComposite needs at least one Composite")
        _check_composites(specs)
        self._specs = list(specs)  # type: ignore[assignment]
        self.dim = operator.index(dim) % (specs[0].ndim + 1)
        self.device = _common_device(specs)
        self._feature_ndim = 0

    @property
    def dtype(self) -> None:  # type: ignore[override]
        return None

    def _pieces_of(self, val: Any) -> tuple | None:
        if not isinstance(val, TensorDictBase):
            return None
        lead = val.ndim - self.ndim
        if lead < 0 or val.shape[lead + self.dim] != len(self._specs):
            return None
        return val.unbind(lead + self.dim)

    def _stacked(self, method: str, shape: ShapeLike) -> LazyStackedTensorDict:
        batch = _batch_shape_arg(shape)
        parts = [getattr(s, method)(batch) for s in self._specs]
        return LazyStackedTensorDict.lazy_stack(parts, len(batch) + self.dim)

    def is_in(self, val: Any) -> bool:
        pieces = self._pieces_of(val)
        return pieces is not None and all(s.is_in(p) for s, p in zip(self._specs, pieces))

    def project(self, val: TensorDictBase) -> TensorDictBase:
        pieces = self._pieces_of(val)
        if pieces is None:
            raise ValueError(
                f"StackedComposite.project expects a TensorDict with batch shape ending in "
                f"{tuple(self.shape)}, got {getattr(val, 'batch_size', type(val).__name__)}"
            )
        parts = [s.project(p) for s, p in zip(self._specs, pieces)]
        lead = val.ndim - self.ndim
        return LazyStackedTensorDict.lazy_stack(parts, lead + self.dim)

    def encode(self, val: Any, *, ignore_device: bool = False) -> Any:
        raise NotImplementedError("StackedComposite.encode: encode each spec[i] instead")

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> list[NestedKey]:
        """Keys present in every stacked Composite (in the first one's order)."""
        others = [set(s.keys(include_nested, leaves_only)) for s in self._specs[1:]]
        return [k for k in self._specs[0].keys(include_nested, leaves_only)
                if all(k in o for o in others)]

    def __getitem__(self, idx: Any) -> TensorSpec:
        if isinstance(idx, str) or (isinstance(idx, tuple) and idx and isinstance(idx[0], str)):
            path = _unravel(idx)
            missing = [i for i, s in enumerate(self._specs) if path not in s]
            if missing:
                raise KeyError(
                    f"key {idx!r} is missing from the stacked Composites at positions {missing}"
                )
            return torch.stack([s[path] for s in self._specs], self.dim)
        return super().__getitem__(idx)

    def __contains__(self, key: object) -> bool:
        return all(key in s for s in self._specs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StackedComposite) and super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def clone(self) -> StackedComposite:
        return StackedComposite(*[s.clone() for s in self._specs], dim=self.dim)

    def to(self, dest: Any) -> StackedComposite:
        return StackedComposite(*[s.to(dest) for s in self._specs], dim=self.dim)
