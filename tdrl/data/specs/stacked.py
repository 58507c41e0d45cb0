"""``torch.stack`` of specs, and :class:`Stacked` (a stack of different specs of one kind).

Identical specs stack into the same class with the new dimension; specs of one class that
differ only in their tensor parameters (bounds, masks) stack densely into that class too;
anything else of one class becomes a :class:`Stacked` spec. Composites are handled in
:mod:`tdrl.data.specs.stacked_composite`.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tdrl.data.specs._utils import (
    ShapeLike,
    _batch_shape_arg,
    _expanded_shape,
    _indent,
    _normalize_index,
    _positive_steps,
    _shape_args,
    _to_tensor,
)
from tdrl.data.specs.base import TensorSpec, implements


def _check_stackable(specs: Sequence[TensorSpec]) -> None:
    first = specs[0]
    for spec in specs[1:]:
        if type(spec) is not type(first):
            raise RuntimeError(
                "Stacking specs cannot occur: Found more than one type of specs in the list. "
                f"Got {type(first).__name__} and {type(spec).__name__}."
            )
        if spec.device != first.device:
            raise RuntimeError(f"Devices differ, got {first.device} and {spec.device}")
        if spec.dtype != first.dtype:
            raise RuntimeError(f"Dtypes differ, got {first.dtype} and {spec.dtype}")
        if spec.ndim != first.ndim:
            raise RuntimeError(
                f"Ndims differ, got {first.ndim} and {spec.ndim} (shapes {tuple(first.shape)} "
                f"and {tuple(spec.shape)})"
            )


def _stack_dim(dim: int, spec: TensorSpec) -> int:
    """``dim`` as a non-negative position among ``spec``'s batch dims (+1 for the new one)."""
    d = operator.index(dim)
    d = d + spec.ndim + 1 if d < 0 else d
    nb = len(spec._batch_shape)
    if not 0 <= d <= nb:
        raise ValueError(
            f"cannot stack {type(spec).__name__} specs of shape {tuple(spec.shape)} along dim "
            f"{dim}: the new dimension must come before the feature dimension (0..{nb})"
        )
    return d


@implements(torch.stack)
def stack_specs(specs: Sequence[TensorSpec], dim: int = 0, *, out: Any = None) -> TensorSpec:
    """``torch.stack`` for specs (see the module docstring for the result's class).

    Examples:
        >>> import torch
        >>> from tdrl.data import Categorical
        >>> torch.stack([Categorical(3), Categorical(3)], 0)
        Categorical(
            shape=torch.Size([2]),
            space=CategoricalBox(n=3),
            device=cpu,
            dtype=torch.int64,
            domain=discrete)
        >>> type(torch.stack([Categorical(3), Categorical(4)], 0)).__name__
        'Stacked'
    """
    if out is not None:
        raise NotImplementedError("torch.stack(specs, out=...) is not supported: specs are immutable")
    specs = list(specs)
    if not specs:
        raise ValueError("cannot stack an empty list of specs")
    first = specs[0]
    stack_composites = _TORCH_STACK_COMPOSITE.get("fn")
    if stack_composites is not None and first.domain == "composite":
        return stack_composites(specs, dim)
    _check_stackable(specs)
    d = _stack_dim(dim, first)
    if all(spec == first for spec in specs[1:]):
        shape = list(first.shape)
        shape.insert(d, len(specs))
        return first.unsqueeze(d).expand(*shape)
    dense = first._stack_dense(specs, d)
    if dense is not None:
        return dense
    return Stacked(*specs, dim=d)


# filled by ``stacked_composite`` (which imports this module): composites stack there
_TORCH_STACK_COMPOSITE: dict[str, Any] = {}


class Stacked(TensorSpec):
    """A lazy stack of specs of one class that differ (e.g. ``Categorical(3)`` and ``(4)``).

    ``torch.stack`` builds it when the specs cannot be merged into one spec of their class.
    ``spec[i]`` (along the stack dimension ``dim``) gives back the i-th spec; ``rand``,
    ``zero``, ``is_in``, ``project``, ``encode`` and ``unbind`` work piece by piece. Where
    the stacked shapes differ, ``shape`` holds ``-1`` (and ``rand`` raises).

    Examples:
        >>> import torch
        >>> from tdrl.data import Categorical
        >>> spec = torch.stack([Categorical(3), Categorical(5)], 0)
        >>> spec.shape, spec[1].space.n
        (torch.Size([2]), 5)
        >>> bool(spec.is_in(spec.rand((4,))))
        True
        >>> spec.project(torch.tensor([9.0, 9.0]))
        tensor([2, 4])
        >>> torch.stack(spec.unbind(0), 0) == spec
        True
    """

    def __init__(self, *specs: TensorSpec, dim: int = 0) -> None:
        if not specs:
            raise ValueError("Stacked needs at least one spec")
        _check_stackable(specs)
        self._specs = list(specs)
        first = specs[0]
        self.dim = _stack_dim(dim, first)
        self.dtype = first.dtype
        self.device = first.device
        self.domain = first.domain
        self._feature_ndim = first._feature_ndim

    @property
    def shape(self) -> torch.Size:  # type: ignore[override]
        shapes = [s.shape for s in self._specs]
        common = [
            size if all(sh[i] == size for sh in shapes) else -1
            for i, size in enumerate(shapes[0])
        ]
        common.insert(self.dim, len(self._specs))
        return torch.Size(common)

    @property
    def space(self) -> None:  # type: ignore[override]
        raise NotImplementedError(
            "a Stacked spec has one space per stacked spec: use spec[i].space"
        )

    def _ragged(self, method: str) -> None:
        if -1 in self.shape:
            raise ValueError(
                f"Stacked.{method}: the stacked specs have different shapes "
                f"{[tuple(s.shape) for s in self._specs]}, so their values cannot be stacked"
            )

    def _stacked(self, method: str, shape: ShapeLike) -> torch.Tensor:
        self._ragged(method)
        batch = _batch_shape_arg(shape)
        parts = [getattr(s, method)(batch) for s in self._specs]
        return torch.stack(parts, len(batch) + self.dim)

    def rand(self, shape: ShapeLike = None) -> torch.Tensor:
        return self._stacked("rand", shape)

    def zero(self, shape: ShapeLike = None) -> torch.Tensor:
        return self._stacked("zero", shape)

    def one(self, shape: ShapeLike = None) -> torch.Tensor:
        return self._stacked("one", shape)

    def _pieces(self, val: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        lead = val.ndim - self.ndim
        if lead < 0 or val.shape[lead + self.dim] != len(self._specs):
            return None
        return val.unbind(lead + self.dim)

    def is_in(self, val: torch.Tensor) -> bool:
        if not isinstance(val, torch.Tensor):
            return False
        pieces = self._pieces(val)
        return pieces is not None and all(s.is_in(p) for s, p in zip(self._specs, pieces))

    def project(self, val: torch.Tensor) -> torch.Tensor:
        self._check_shape(val, "project")
        lead = val.ndim - self.ndim
        parts = [s.project(p) for s, p in zip(self._specs, self._pieces(val))]
        return torch.stack(parts, lead + self.dim)

    def _shape_matches(self, x: torch.Tensor) -> bool:
        lead = x.ndim - self.ndim
        return lead >= 0 and all(
            s in (-1, xs) for s, xs in zip(self.shape, x.shape[lead:])
        )

    def encode(self, val: Any, *, ignore_device: bool = False) -> torch.Tensor:
        self._ragged("encode")
        t = self._fit_shape(_to_tensor(val, None if ignore_device else self.device))
        parts = [s.encode(p, ignore_device=ignore_device) for s, p in zip(self._specs, t.unbind(self.dim))]
        return torch.stack(parts, self.dim)

    def to_numpy(self, val: torch.Tensor, safe: bool | None = None) -> np.ndarray:
        if self._safe(safe):
            self.assert_is_in(val)
        return val.detach().cpu().numpy()

    def type_check(self, value: torch.Tensor, key: Any = None) -> None:
        for spec, piece in zip(self._specs, value.unbind(self.dim)):
            spec.type_check(piece)

    def index(self, index: torch.Tensor, tensor_to_index: torch.Tensor) -> torch.Tensor:
        lead = index.ndim - self.ndim
        parts = [
            s.index(i, t)
            for s, i, t in zip(
                self._specs, index.unbind(lead + self.dim), tensor_to_index.unbind(lead + self.dim)
            )
        ]
        return torch.stack(parts, lead + self.dim)

    # ---- shape ops -------------------------------------------------------------------
    def __getitem__(self, idx: Any) -> TensorSpec:
        """Index along the batch dims; an int at the stack dimension returns that spec.

        Each stacked spec is broadcast along the stack dimension and indexed like a tensor;
        a probe of spec ids tells which one every result element comes from.
        """
        batch = self._batch_shape
        nidx = _normalize_index(idx, len(batch), type(self).__name__)
        flips, pidx = _positive_steps(nidx, batch)
        n = len(self._specs)
        ids = torch.arange(n).view([n if d == self.dim else 1 for d in range(len(batch))])
        ids = ids.expand(batch)
        out_ids = (ids.flip(flips) if flips else ids)[pidx]
        used = out_ids.unique().tolist() or [0]
        indexed = {i: self._broadcast(i)[nidx] for i in used}
        if len(used) == 1:
            return indexed[used[0]]
        varying = [
            d for d in range(out_ids.ndim)
            if not bool((out_ids == out_ids.narrow(d, 0, 1)).all())
        ]
        if len(varying) != 1:
            raise IndexError(
                f"{type(self).__name__}: the index {idx!r} mixes the stacked specs along "
                f"several dimensions; unbind the spec first"
            )
        d = varying[0]
        seq = out_ids.movedim(d, 0).reshape(out_ids.shape[d], -1)[:, 0].tolist()
        return torch.stack([indexed[i].unbind(d)[j] for j, i in enumerate(seq)], d)

    def _broadcast(self, i: int) -> TensorSpec:
        """Stacked spec ``i`` repeated along the stack dimension (the full batch shape)."""
        spec = self._specs[i].unsqueeze(self.dim)
        shape = list(spec.shape)
        shape[self.dim] = len(self._specs)
        return spec.expand(*shape)

    def unbind(self, dim: int = 0) -> tuple[TensorSpec, ...]:
        d = self._unbind_dim(dim)
        if d == self.dim:
            return tuple(s.clone() for s in self._specs)
        inner = d if d < self.dim else d - 1
        new_dim = self.dim if d > self.dim else self.dim - 1
        pieces = [s.unbind(inner) for s in self._specs]
        return tuple(torch.stack(list(p), new_dim) for p in zip(*pieces))

    def expand(self, *shape: Any) -> TensorSpec:
        new = _expanded_shape(self.shape, _shape_args(shape), "Stacked")
        pos = self.dim + len(new) - self.ndim
        if new[pos] != len(self._specs):
            raise ValueError(
                f"Stacked.expand: the stack dimension ({len(self._specs)} specs) cannot be "
                f"expanded to {new[pos]}"
            )
        sub = list(new[:pos]) + list(new[pos + 1 :])
        lead = len(new) - self.ndim
        parts = [
            s.expand(*[n if n != -1 else s.shape[i - lead] for i, n in enumerate(sub)])
            for s in self._specs
        ]
        return type(self)(*parts, dim=pos)

    def unsqueeze(self, dim: int) -> TensorSpec:
        d = self._resolve_dim(dim, self.ndim + 1, "unsqueeze")
        if d > len(self._batch_shape):
            raise ValueError(f"Stacked.unsqueeze: cannot insert a dimension at {dim}")
        if d <= self.dim:
            return type(self)(*[s.unsqueeze(d) for s in self._specs], dim=self.dim + 1)
        return type(self)(*[s.unsqueeze(d - 1) for s in self._specs], dim=self.dim)

    def squeeze(self, dim: int | None = None) -> TensorSpec:
        if dim is None:
            out: TensorSpec = self
            for d in reversed(range(len(self._batch_shape))):
                if out.shape[d] == 1:
                    out = out.squeeze(d)
            return out
        d = self._resolve_dim(dim, self.ndim, "squeeze")
        if self.shape[d] != 1:
            return self.clone()
        if d == self.dim:
            return self._specs[0].clone()
        inner = d if d < self.dim else d - 1
        new_dim = self.dim - 1 if d < self.dim else self.dim
        return type(self)(*[s.squeeze(inner) for s in self._specs], dim=new_dim)

    def clone(self) -> TensorSpec:
        return type(self)(*[s.clone() for s in self._specs], dim=self.dim)

    def to(self, dest: Any) -> TensorSpec:
        return type(self)(*[s.to(dest) for s in self._specs], dim=self.dim)

    def enumerate(self) -> torch.Tensor:
        raise ValueError("Stacked specs cannot be enumerated; enumerate spec[i] instead")

    def cardinality(self) -> int:
        raise ValueError("Stacked specs have no single cardinality; use spec[i].cardinality()")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Stacked)
            and other.dim == self.dim
            and len(other._specs) == len(self._specs)
            and all(a == b for a, b in zip(self._specs, other._specs))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = [f"{type(s).__name__}(shape={s.shape})" for s in self._specs]
        fields += [f"shape={self.shape}", f"dim={self.dim}", f"device={self.device}",
                   f"dtype={self.dtype}"]
        body = ",\n".join(_indent(f) for f in fields)
        return f"Stacked(\n{body})"
