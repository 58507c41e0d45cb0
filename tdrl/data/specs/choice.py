"""``Choice``: a spec whose values come from one of a list of specs or fixed non-tensor values."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tensordict import NonTensorData, NonTensorStack, is_tensor_collection

from tdrl.data.specs._utils import ShapeLike, _batch_shape_arg
from tdrl.data.specs.base import TensorSpec

__all__ = ["Choice"]

_DATA = (NonTensorData, NonTensorStack)


def _data_equal(choice: Any, val: Any) -> bool:
    """Whether ``val`` (non-tensor data or a plain value) holds the same data as ``choice``."""
    if is_tensor_collection(val):
        if tuple(val.shape) != tuple(choice.shape):
            return False
        return val.tolist() == choice.tolist()
    return choice.tolist() == val


class Choice(TensorSpec):
    """One value drawn from one of several specs, or one of several fixed non-tensor values.

    ``choices`` is a list of :class:`TensorSpec` (``rand`` picks one uniformly, then samples
    it), or of ``NonTensorData`` / ``NonTensorStack`` values (``rand`` returns one of them).
    All choices share a type, shape, dtype and device. One choice is drawn per call (for
    the whole sample), with torch's global generator. ``zero`` uses the first choice,
    ``one`` the second (the first if there is one). ``is_in`` holds when any choice
    accepts the value (specs) or equals it (data). ``cardinality`` is the number of data
    choices, or the sum of the specs' cardinalities (``inf`` if one is continuous).

    Args:
        choices: the list of specs or non-tensor values.

    Examples:
        >>> import torch
        >>> from tensordict import NonTensorData
        >>> from tdrl.data import Bounded, Choice
        >>> spec = Choice([Bounded(0.0, 1.0, shape=(1,)), Bounded(10.0, 11.0, shape=(1,))])
        >>> x = spec.rand()
        >>> spec.is_in(x), spec.is_in(torch.tensor([5.0])), spec.cardinality()
        (True, False, inf)
        >>> words = Choice([NonTensorData(w) for w in ["left", "right"]])
        >>> words.rand().data in ("left", "right"), words.is_in(NonTensorData("up"))
        (True, False)
        >>> Choice([Bounded(0.0, 1.0, shape=(1,)), Bounded(0.0, 1.0, shape=(2,))])
        Traceback (most recent call last):
        ...
        ValueError: Choice: All choices must have the same shape, got [(1,), (2,)]
    """

    def __init__(self, choices: list[TensorSpec | NonTensorData | NonTensorStack]) -> None:
        if not isinstance(choices, list):
            raise TypeError(f"Choice: 'choices' must be a list, got {type(choices).__name__}")
        if not choices:
            raise ValueError("Choice: 'choices' must not be empty")
        first = choices[0]
        if not isinstance(first, (TensorSpec, *_DATA)):
            raise TypeError(
                "Choice: each choice must be either a TensorSpec, NonTensorData, or "
                f"NonTensorStack, got {type(first).__name__}"
            )
        kind = TensorSpec if isinstance(first, TensorSpec) else type(first)
        if not all(isinstance(c, kind) for c in choices[1:]):
            raise TypeError(
                "Choice: All choices must be the same type, got "
                f"{[type(c).__name__ for c in choices]}"
            )
        if isinstance(first, TensorSpec) and any(type(c) is not type(first) for c in choices):
            raise TypeError(
                "Choice: All choices must be the same type, got "
                f"{[type(c).__name__ for c in choices]}"
            )
        for attr in ("shape", "dtype", "device"):
            values = [getattr(c, attr) for c in choices]
            if any(v != values[0] for v in values[1:]):
                shown = [tuple(v) if attr == "shape" else v for v in values]
                raise ValueError(f"Choice: All choices must have the same {attr}, got {shown}")
        self.shape = torch.Size(first.shape)
        self.dtype = first.dtype
        self.device = first.device
        self._space = None
        self.domain = getattr(first, "domain", None)  # type: ignore[assignment]
        self._choices = [c.clone() for c in choices]

    @property
    def num_choices(self) -> int:
        """How many choices the spec holds."""
        return len(self._choices)

    @property
    def _of_specs(self) -> bool:
        return isinstance(self._choices[0], TensorSpec)

    # ---- values --------------------------------------------------------------------------
    def _pick(self, i: int, method: str, shape: ShapeLike) -> Any:
        choice = self._choices[i]
        if isinstance(choice, TensorSpec):
            return getattr(choice, method)(shape)
        batch = _batch_shape_arg(shape)
        return choice.expand(*batch, *choice.shape) if batch else choice.clone()

    def rand(self, shape: ShapeLike = None) -> Any:
        i = int(torch.randint(len(self._choices), ()).item())
        return self._pick(i, "rand", shape)

    def zero(self, shape: ShapeLike = None) -> Any:
        return self._pick(0, "zero", shape)

    def one(self, shape: ShapeLike = None) -> Any:
        return self._pick(min(1, len(self._choices) - 1), "one", shape)

    def is_in(self, val: Any) -> bool:  # type: ignore[override]
        if self._of_specs:
            return any(c.is_in(val) for c in self._choices)
        return any(_data_equal(c, val) for c in self._choices)

    def encode(self, val: Any, *, ignore_device: bool = False) -> Any:  # type: ignore[override]
        """Spec choices: the first spec's encoding; data choices: ``val`` as non-tensor data."""
        if self._of_specs:
            return self._choices[0].encode(val, ignore_device=ignore_device)
        if is_tensor_collection(val):
            return val
        return NonTensorData(val, batch_size=self.shape, device=None if ignore_device else self.device)

    def _project(self, val: Any) -> Any:
        raise NotImplementedError("Choice cannot project a value: pick a choice explicitly")

    def project(self, val: Any) -> Any:  # type: ignore[override]
        return self._project(val)

    def index(self, index: Any, tensor_to_index: Any) -> Any:
        raise NotImplementedError("Choice does not support index()")

    def cardinality(self) -> int | float:  # type: ignore[override]
        if not self._of_specs:
            return len(self._choices)
        total = 0
        for c in self._choices:
            try:
                n = c.cardinality()
            except (ValueError, NotImplementedError):
                return math.inf
            total += n
        return total

    def enumerate(self, use_mask: bool = False) -> Any:  # type: ignore[override]
        """Every value of every choice: a tensor (spec choices) or a list (data choices)."""
        if not self._of_specs:
            return [c.clone() for c in self._choices]
        return torch.cat([c.enumerate() for c in self._choices], 0)

    # ---- shape ops: applied to every choice ------------------------------------------------
    def _map(self, fn: Callable[[Any], Any]) -> Choice:
        return Choice([fn(c) for c in self._choices])

    def expand(self, *shape: Any) -> Choice:
        if len(shape) == 1 and isinstance(shape[0], (list, tuple, torch.Size)):
            shape = tuple(shape[0])
        return self._map(lambda c: c.expand(*shape))

    def unsqueeze(self, dim: int) -> Choice:
        return self._map(lambda c: c.unsqueeze(dim))

    def squeeze(self, dim: int | None = None) -> Choice:
        return self._map(lambda c: c.squeeze() if dim is None else c.squeeze(dim))

    def __getitem__(self, idx: Any) -> Choice:
        return self._map(lambda c: c[idx])

    def unbind(self, dim: int = 0) -> tuple[Choice, ...]:
        parts = [c.unbind(dim) for c in self._choices]
        return tuple(Choice(list(group)) for group in zip(*parts))

    def reshape(self, *shape: Any) -> Choice:
        if len(shape) == 1 and isinstance(shape[0], (list, tuple, torch.Size)):
            shape = tuple(shape[0])
        return self._map(lambda c: c.reshape(*shape))

    def clone(self) -> Choice:
        return self._map(lambda c: c.clone())

    def to(self, dest: Any) -> Choice:
        """Move every choice (a dtype cast applies to spec choices only)."""
        if isinstance(dest, torch.dtype) and not self._of_specs:
            return self
        return self._map(lambda c: c.to(dest))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Choice) or other.num_choices != self.num_choices:
            return False
        if self._of_specs != other._of_specs:
            return False
        if self._of_specs:
            return all(a == b for a, b in zip(self._choices, other._choices))
        return all(_data_equal(a, b) for a, b in zip(self._choices, other._choices))

    __hash__ = None  # type: ignore[assignment]

    def _repr_fields(self) -> list[str]:
        return super()._repr_fields() + [f"choices={self._choices!r}"]
