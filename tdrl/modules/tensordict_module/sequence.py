"""``SafeSequential``: TensorDict modules run one after the other."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.data.tensor_specs import Composite
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    as_step,
    get_or_none,
    missing_key_error,
    produced,
)

__all__ = ["SafeSequential", "chain_keys"]


def chain_keys(modules: Sequence[Any]) -> tuple[list[NestedKey], list[NestedKey], list[int]]:
    """Returns the external in_keys, all out_keys and, per external key, the first reader.

    A key is external when no earlier module writes it.

    Examples:
        >>> import torch
        >>> from tdrl.modules import SafeModule
        >>> a = SafeModule(torch.nn.Identity(), ["x"], ["h"])
        >>> b = SafeModule(torch.add, ["h", "y"], ["z"])
        >>> chain_keys([a, b])
        (['x', 'y'], ['h', 'z'], [0, 1])
    """
    in_keys: list[NestedKey] = []
    readers: list[int] = []
    out_keys: list[NestedKey] = []
    written: set[NestedKey] = set()
    for i, m in enumerate(modules):
        for k in m.in_keys:
            # a key is produced when written, or when written under (a sub-TensorDict)
            inside = any(produced(w, [k]) for w in written)
            if not produced(k, written) and not inside and k not in in_keys:
                in_keys.append(k)
                readers.append(i)
        for k in m.out_keys:
            written.add(k)
            if k in out_keys:  # a rewritten key takes its last place (as in tensordict.nn)
                out_keys.remove(k)
            out_keys.append(k)
    return in_keys, out_keys, readers


class SafeSequential(TDRLModuleBase):
    """Runs TensorDict modules in order, each reading what the previous ones wrote.

    Accepts tdrl modules and user-built ``tensordict.nn`` modules alike; a
    plain ``TensorDictModule`` without hooks runs through tdrl's lean path.
    ``in_keys`` are the keys read but not written by an earlier module,
    ``out_keys`` everything written. Inputs that a later module needs are
    checked up front, so a missing key leaves the input TensorDict untouched.
    Indexing (``seq[0]``, ``seq[1:]``) and ``len`` work as on a list.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.modules import SafeModule, SafeSequential
        >>> seq = SafeSequential(
        ...     SafeModule(torch.nn.Linear(4, 8), in_keys=["observation"], out_keys=["hidden"]),
        ...     TensorDictModule(torch.nn.Linear(8, 2), in_keys=["hidden"], out_keys=["out"]),
        ... )
        >>> seq.in_keys, seq.out_keys
        (['observation'], ['hidden', 'out'])
        >>> seq(TensorDict(observation=torch.randn(3, 4), batch_size=[3]))["out"].shape
        torch.Size([3, 2])
    """

    def __init__(self, *modules: TensorDictModuleBase, partial_tolerant: bool = False) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        if not modules:
            raise ValueError(f"{type(self).__name__} needs at least one module")
        for i, m in enumerate(modules):
            if not isinstance(m, nn.Module) or not TensorDictModuleBase.is_tdmodule_compatible(m):
                raise TypeError(
                    f"module {i} of {type(self).__name__} must be a TensorDict module with "
                    f"in_keys and out_keys, got {type(m).__name__}"
                )
        self.module = nn.ModuleList(modules)
        self.partial_tolerant = partial_tolerant
        self._rebuild()

    def _rebuild(self) -> None:
        in_keys, out_keys, readers = chain_keys(self.module)
        self.in_keys = in_keys
        self.out_keys = out_keys
        self._steps = tuple(as_step(m) for m in self.module)
        # keys read by a module after the first: check them before running anything
        self._late_inputs = tuple(k for k, r in zip(in_keys, readers) if r > 0)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        for key in self._late_inputs:
            if get_or_none(td, key) is None:
                raise missing_key_error(self.module[self._first_reader(key)], key, td)
        for step in self._steps:
            td = step(td)
        return td

    def _first_reader(self, key: NestedKey) -> int:
        return next(i for i, m in enumerate(self.module) if key in m.in_keys)

    # list-like access -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.module)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return SafeSequential(*self.module[index])
        return self.module[index]

    def append(self, module: TensorDictModuleBase) -> SafeSequential:
        """Adds a module at the end and refreshes the key plan."""
        self.module.append(module)
        self._rebuild()
        return self

    def get_dist(self, tensordict: TensorDictBase) -> torch.distributions.Distribution:
        """Runs all modules but the last, and returns the last module's distribution."""
        last = self.module[-1]
        if not hasattr(last, "get_dist"):
            raise AttributeError(
                f"the last module of this {type(self).__name__} ({type(last).__name__}) has no "
                "get_dist: it is not probabilistic"
            )
        for step in self._steps[:-1]:
            tensordict = step(tensordict)
        return last.get_dist(tensordict)

    @property
    def spec(self) -> Composite:
        """The union of the children's specs (a ``Composite``)."""
        out = Composite()
        for m in self.module:
            spec = getattr(m, "spec", None)
            if isinstance(spec, Composite):
                for key in spec.keys(include_nested=True, leaves_only=True):
                    out[key] = spec[key]
        return out
