"""``SafeSequential``: TensorDict modules run one after the other."""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.data.tensor_specs import Composite
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    as_step,
    covers,
    get_or_none,
    missing_key_error,
    normalize_keys,
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
    Indexing (``seq[0]``, ``seq[1:]``), assignment (``seq[1] = m``), deletion
    (``del seq[1]``), ``append`` and ``len`` work as on a list; every edit
    recomputes the key plan.

    With ``partial_tolerant=True`` a module whose inputs are missing is
    skipped instead of raising; on a ``LazyStackedTensorDict`` it runs on
    each stacked TensorDict that has its inputs.

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
            self._check_module(i, m)
        self.module = nn.ModuleList(modules)
        self.partial_tolerant = partial_tolerant
        self._rebuild()

    def _rebuild(self) -> None:
        in_keys, out_keys, readers = chain_keys(self.module)
        self.in_keys = in_keys
        self.out_keys = out_keys
        self._steps = tuple(as_step(m) for m in self.module)
        # keys read by a module after the first: check them before running anything (but not
        # those the reading module can do without: a recurrent module's state keys)
        self._late_inputs = tuple(
            k for k, r in zip(in_keys, readers)
            if r > 0 and k not in getattr(self.module[r], "_optional_in_keys", ())
        )
        self._optional_in_keys = tuple(
            k for k, r in zip(in_keys, readers)
            if k in getattr(self.module[r], "_optional_in_keys", ())
        )

    def _check_module(self, i: int, m: Any) -> None:
        if not isinstance(m, nn.Module) or not TensorDictModuleBase.is_tdmodule_compatible(m):
            raise TypeError(
                f"module {i} of {type(self).__name__} must be a TensorDict module with "
                f"in_keys and out_keys, got {type(m).__name__}"
            )

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        if self.partial_tolerant:
            return self._run_partial(td)
        for key in self._late_inputs:
            if get_or_none(td, key) is None:
                raise missing_key_error(self.module[self._first_reader(key)], key, td)
        for step in self._steps:
            td = step(td)
        return td

    def _run_partial(self, td: TensorDictBase) -> TensorDictBase:
        for m, step in zip(self.module, self._steps):
            needed = _required(m)
            if _has_keys(td, needed):
                td = step(td)
            elif isinstance(td, LazyStackedTensorDict):
                for sub in td.tensordicts:
                    if _has_keys(sub, needed):
                        step(sub)
        return td

    def _first_reader(self, key: NestedKey) -> int:
        return next(i for i, m in enumerate(self.module) if key in m.in_keys)

    # list-like access -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.module)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._subsequence(list(self.module[index]))
        return self.module[index]

    def __setitem__(self, index: int, module: TensorDictModuleBase) -> None:
        self._check_module(index, module)
        self.module[index] = module
        self._rebuild()

    def __delitem__(self, index: int | slice) -> None:
        del self.module[index]
        self._rebuild()

    def append(self, module: TensorDictModuleBase) -> SafeSequential:
        """Adds a module at the end and refreshes the key plan."""
        self._check_module(len(self.module), module)
        self.module.append(module)
        self._rebuild()
        return self

    def select_subsequence(
        self,
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
    ) -> SafeSequential:
        """The modules needed to compute ``out_keys`` from ``in_keys`` (defaults: the sequence's).

        Forward, a module is kept when all its inputs are available; backward,
        a kept module stays when it writes a wanted key (or an input of a
        later kept module). The modules are shared, not copied.

        Examples:
            >>> import torch
            >>> from tdrl.modules import SafeModule, SafeSequential
            >>> seq = SafeSequential(SafeModule(torch.nn.Linear(3, 2), ["in"], ["hidden"]),
            ...                      SafeModule(torch.nn.Linear(2, 4), ["hidden"], ["out"]))
            >>> seq.select_subsequence(out_keys=["hidden"]).out_keys
            ['hidden']
            >>> seq.select_subsequence(in_keys=["hidden"]).in_keys
            ['hidden']
        """
        available = list(self.in_keys if in_keys is None else normalize_keys(in_keys, "in_keys"))
        wanted = list(self.out_keys if out_keys is None else normalize_keys(out_keys, "out_keys"))
        keep = []
        for i, m in enumerate(self.module):
            if all(produced(k, available) for k in m.in_keys):
                available.extend(m.out_keys)
                keep.append(i)
        kept = []
        for i in reversed(keep):
            m = self.module[i]
            if any(_overlaps(k, m.out_keys) for k in wanted):
                wanted.extend(m.in_keys)
                kept.append(i)
        if not kept:
            raise ValueError(
                f"select_subsequence(in_keys={in_keys}, out_keys={out_keys}) leaves no module "
                f"of this {type(self).__name__} (in_keys {self.in_keys}, out_keys "
                f"{self.out_keys}): make sure that in_keys and out_keys are coherent"
            )
        return self._subsequence([self.module[i] for i in sorted(kept)])

    def _subsequence(self, modules: list[Any]) -> SafeSequential:
        # the same class when it is built from a list of modules and keeps its last module
        cls = type(self)
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        same = (
            params
            and params[0].kind is inspect.Parameter.VAR_POSITIONAL
            and modules
            and modules[-1] is self.module[-1]
        )
        if not same:
            cls = SafeSequential
        return cls(*modules, partial_tolerant=self.partial_tolerant)

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


def _required(m: Any) -> list[NestedKey]:
    """``m.in_keys`` without those ``m`` declares optional (``_optional_in_keys``)."""
    optional = getattr(m, "_optional_in_keys", ())
    return [k for k in m.in_keys if k not in optional]


def _has_keys(td: TensorDictBase, keys: Sequence[NestedKey]) -> bool:
    present = td.keys(include_nested=True)
    return all(k in present for k in keys)


def _overlaps(key: NestedKey, written: Sequence[NestedKey]) -> bool:
    """Whether one of ``written`` is ``key``, inside it or contains it."""
    return any(covers(w, key) or covers(key, w) for w in written)
