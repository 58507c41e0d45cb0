"""Value domains exposed as ``spec.space`` (boxes, category sets, lists of them)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from tdrl.data.specs._utils import _tensor_repr


class Box:
    """Base class of the value domains exposed as ``spec.space``."""

    def clone(self) -> Box:
        raise NotImplementedError

    def to(self, dest: Any) -> Box:
        return self


class ContinuousBox(Box):
    """A box ``[low, high]`` (inclusive); ``low`` and ``high`` are tensors of the spec shape.

    Examples:
        >>> import torch
        >>> box = ContinuousBox(torch.zeros(2), torch.ones(2))
        >>> box.low, box.high
        (tensor([0., 0.]), tensor([1., 1.]))
    """

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low = low
        self.high = high

    def clone(self) -> ContinuousBox:
        return ContinuousBox(self.low.clone(), self.high.clone())

    def to(self, dest: Any) -> ContinuousBox:
        return ContinuousBox(self.low.to(dest), self.high.to(dest))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ContinuousBox)
            and self.low.shape == other.low.shape
            and self.low.dtype == other.low.dtype
            and self.low.device == other.low.device
            and bool(torch.equal(self.low, other.low))
            and bool(torch.equal(self.high, other.high))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ContinuousBox(low={_tensor_repr(self.low)}, high={_tensor_repr(self.high)})"


class CategoricalBox(Box):
    """The set ``{0, ..., n - 1}``.

    Examples:
        >>> CategoricalBox(3).n
        3
    """

    def __init__(self, n: int) -> None:
        self.n = n

    def clone(self) -> CategoricalBox:
        return type(self)(self.n)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.n == self.n  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.n))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n})"


DiscreteBox = CategoricalBox


class BinaryBox(CategoricalBox):
    """Binary vectors of length ``n`` (``space.n`` is the vector length).

    Examples:
        >>> BinaryBox(4).n
        4
    """


class BoxList(Box):
    """A list of :class:`CategoricalBox` (one per block of a multi-discrete spec).

    Examples:
        >>> box = BoxList.from_nvec([3, 2])
        >>> box.nvec, len(box), box[1]
        ([3, 2], 2, CategoricalBox(n=2))
    """

    def __init__(self, boxes: Sequence[CategoricalBox]) -> None:
        self.boxes = list(boxes)

    @classmethod
    def from_nvec(cls, nvec: Sequence[int]) -> BoxList:
        return cls([CategoricalBox(int(n)) for n in nvec])

    @property
    def nvec(self) -> list[int]:
        return [b.n for b in self.boxes]

    def __getitem__(self, item: int) -> CategoricalBox:
        return self.boxes[item]

    def __len__(self) -> int:
        return len(self.boxes)

    def __iter__(self) -> Iterator[CategoricalBox]:
        return iter(self.boxes)

    def clone(self) -> BoxList:
        return BoxList([b.clone() for b in self.boxes])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoxList) and other.nvec == self.nvec

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BoxList(nvec={self.nvec})"
