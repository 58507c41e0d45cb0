"""``SafeModule``: a callable read from / written to a TensorDict, with an optional spec."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.modules.tensordict_module.core import (
    FastCall,
    TDRLModuleBase,
    get_or_none,
    normalize_keys,
    read_key,
    set_value,
    write_outputs,
)

__all__ = ["SafeModule", "as_composite", "SpecProjector"]


def as_composite(spec: TensorSpec | None, out_keys: Sequence[NestedKey]) -> Composite | None:
    """Turns a module's ``spec`` argument into a ``Composite`` keyed by its out_keys.

    A leaf spec describes the first out_key (as in TorchRL); a ``Composite`` is kept.

    Examples:
        >>> from tdrl.data import Bounded
        >>> as_composite(Bounded(-1.0, 1.0, shape=(2,)), ["action"])["action"].shape
        torch.Size([2])
    """
    if spec is None:
        return None
    if isinstance(spec, Composite):
        return spec
    if not isinstance(spec, TensorSpec):
        raise TypeError(f"spec must be a TensorSpec or a Composite, got {type(spec).__name__}")
    if not out_keys:
        raise ValueError("a spec was given to a module that has no out_keys")
    return Composite({out_keys[0]: spec})


class SpecProjector:
    """Projects a module's outputs into their specs (``safe=True``).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Bounded
        >>> proj = SpecProjector(as_composite(Bounded(-1.0, 1.0, shape=(1,)), ["a"]), ["a"])
        >>> proj(TensorDict(a=torch.tensor([3.0])))["a"]
        tensor([1.])
    """

    __slots__ = ("pairs",)

    def __init__(self, spec: Composite | None, out_keys: Sequence[NestedKey]) -> None:
        self.pairs: list[tuple[NestedKey, TensorSpec]] = []
        if spec is None:
            return
        for key in out_keys:
            if key in spec.keys(include_nested=True):
                leaf = spec[key]
                if leaf is not None and not isinstance(leaf, Composite):
                    self.pairs.append((key, leaf))

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        for key, leaf in self.pairs:
            value = get_or_none(td, key)
            if value is not None:
                set_value(td, key, leaf.project(value))
        return td


class SafeModule(TDRLModuleBase):
    """Wraps a callable that maps tensors to tensors so it reads and writes a TensorDict.

    ``in_keys`` are read and passed positionally (or, as a dict
    ``{argument_name: key}``, by name); the results are written under
    ``out_keys``. With ``spec`` (a spec for the first out_key, or a
    ``Composite`` keyed by out_keys) and ``safe=True``, outputs are projected
    into their spec. A missing input key raises ``KeyError`` naming the key,
    the module and the keys present, before anything is written.

    Args:
        module: the callable (usually an ``nn.Module``).
        in_keys: keys to read.
        out_keys: keys to write.
        spec: the output spec (optional).
        safe: project the outputs into ``spec``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Bounded
        >>> from tdrl.modules import SafeModule
        >>> _ = torch.manual_seed(0)
        >>> mod = SafeModule(torch.nn.Linear(3, 2), in_keys=["obs"], out_keys=["act"],
        ...                  spec=Bounded(-0.1, 0.1, shape=(2,)), safe=True)
        >>> td = mod(TensorDict(obs=torch.randn(5, 3) * 10, batch_size=[5]))
        >>> td["act"].shape, bool(td["act"].abs().max() <= 0.1)
        (torch.Size([5, 2]), True)
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: NestedKey | Sequence[NestedKey] | dict[str, NestedKey],
        out_keys: NestedKey | Sequence[NestedKey],
        spec: TensorSpec | None = None,
        safe: bool = False,
    ) -> None:
        super().__init__()
        if not callable(module) or isinstance(module, type):
            raise TypeError(f"module must be a callable (e.g. an nn.Module), got {module!r}")
        if isinstance(module, TensorDictModuleBase):
            raise TypeError(
                f"{type(self).__name__} wraps a tensor -> tensor callable; "
                f"{type(module).__name__} already reads a TensorDict: put it in a SafeSequential "
                "instead"
            )
        if isinstance(in_keys, dict):
            self._kw_names: list[str] | None = list(in_keys.keys())
            in_keys = list(in_keys.values())
        else:
            self._kw_names = None
        self.in_keys = normalize_keys(in_keys, "in_keys")
        self.out_keys = normalize_keys(out_keys, "out_keys")
        if not self.out_keys:
            raise ValueError(f"{type(self).__name__} needs at least one out_key")
        self.module = module
        self._call = FastCall(module)
        self.spec = as_composite(spec, self.out_keys)
        if safe and self.spec is None:
            raise ValueError(
                f"{type(self).__name__}(safe=True) needs a spec to project the outputs into"
            )
        self.safe = safe
        self._projector = SpecProjector(self.spec if safe else None, self.out_keys)

    def _leaf_plan(self) -> tuple[Any, list, list, list[str] | None] | None:
        if self._projector or type(self)._run is not SafeModule._run:
            return None
        return self.module, self.in_keys, self.out_keys, self._kw_names

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        if self._kw_names is None:
            if len(self.in_keys) == 1:
                out = self._call(read_key(td, self.in_keys[0], self))
            else:
                out = self._call(*[read_key(td, k, self) for k in self.in_keys])
        else:
            ins = [read_key(td, k, self) for k in self.in_keys]
            out = self._call(**dict(zip(self._kw_names, ins)))
        if type(out) is torch.Tensor and len(self.out_keys) == 1:
            set_value(td, self.out_keys[0], out)
        else:
            write_outputs(td, self.out_keys, out, self)
        if self._projector:
            self._projector(td)
        return td

    def to(self, *args: Any, **kwargs: Any) -> SafeModule:
        out = super().to(*args, **kwargs)
        device, _, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and self.spec is not None:
            self.spec = self.spec.to(device)
            self._projector = SpecProjector(self.spec if self.safe else None, self.out_keys)
            return out

    def extra_repr(self) -> str:
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}, safe={self.safe}"
