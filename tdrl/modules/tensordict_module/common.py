"""``SafeModule``: a callable read from / written to a TensorDict, with an optional spec.

Also TorchRL's compatibility checks, :func:`is_tensordict_compatible` and
:func:`ensure_tensordict_compatible`, at TorchRL's import path.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.modules.tensordict_module.core import (
    FastCall,
    TDRLModuleBase,
    get_or_none,
    key_str,
    normalize_keys,
    read_key,
    set_value,
    write_outputs,
)

__all__ = [
    "SafeModule",
    "as_composite",
    "check_safe",
    "SpecProjector",
    "is_tensordict_compatible",
    "ensure_tensordict_compatible",
]


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


def check_safe(spec: Composite | None, safe: bool, owner: str) -> None:
    """Refuses ``safe=True`` without a spec to project into, and warns about a ``"_"`` spec key.

    Examples:
        >>> check_safe(None, True, "SafeModule")
        Traceback (most recent call last):
            ...
        RuntimeError: SafeModule(spec=None, safe=True) is not a valid configuration as the tensor specs are not specified: safe=True projects the outputs into their spec, so give a spec (or safe=False)
    """
    if spec is not None and "_" in spec.keys() and spec["_"] is not None:
        warnings.warn(
            f'{owner} got a spec with key "_": it will be ignored ("_" marks an output '
            "that is not written)",
            UserWarning,
            stacklevel=3,
        )
    if safe and (spec is None or all(v is None for v in spec.values(True, True))):
        raise RuntimeError(
            f"{owner}(spec=None, safe=True) is not a valid configuration as the tensor specs "
            "are not specified: safe=True projects the outputs into their spec, so give a spec "
            "(or safe=False)"
        )


class SpecProjector:
    """Projects a module's outputs into their specs (``safe=True``).

    NaN rule: a NaN cannot be projected into a spec; the spec's ``project``
    raises ``ValueError`` and the projector re-raises it naming the output
    key and the module, before anything is written.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Bounded
        >>> proj = SpecProjector(as_composite(Bounded(-1.0, 1.0, shape=(1,)), ["a"]), ["a"])
        >>> proj(TensorDict(a=torch.tensor([3.0])))["a"]
        tensor([1.])
        >>> proj.project_outputs(torch.tensor([-2.0]))
        tensor([-1.])
    """

    __slots__ = ("pairs", "positions", "owner")

    def __init__(
        self, spec: Composite | None, out_keys: Sequence[NestedKey], owner: str = "module"
    ) -> None:
        self.owner = owner
        self.pairs: list[tuple[NestedKey, TensorSpec]] = []
        self.positions: list[tuple[int, NestedKey, TensorSpec]] = []
        if spec is None:
            return
        keys = spec.keys(include_nested=True)
        for i, key in enumerate(out_keys):
            if key != "_" and key in keys:
                leaf = spec[key]
                if leaf is not None and not isinstance(leaf, Composite):
                    self.pairs.append((key, leaf))
                    self.positions.append((i, key, leaf))

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def project(self, key: NestedKey, leaf: TensorSpec, value: torch.Tensor) -> torch.Tensor:
        """``leaf.project(value)``; a refusal (e.g. NaN) names the key and the module."""
        try:
            return leaf.project(value)
        except ValueError as err:
            raise ValueError(
                f"{self.owner}(safe=True) cannot project its output {key_str(key)} into "
                f"{type(leaf).__name__}: {err}"
            ) from err

    def project_outputs(self, out: Any) -> Any:
        """Projects a callable's raw result (a tensor, or a tuple aligned with out_keys)."""
        if isinstance(out, torch.Tensor):
            i, key, leaf = self.positions[0]
            return self.project(key, leaf, out) if i == 0 else out
        if isinstance(out, (tuple, list)):
            out = list(out)
            for i, key, leaf in self.positions:
                if i < len(out) and isinstance(out[i], torch.Tensor):
                    out[i] = self.project(key, leaf, out[i])
            return tuple(out)
        return out

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        for key, leaf in self.pairs:
            value = get_or_none(td, key)
            if value is not None:
                set_value(td, key, self.project(key, leaf, value))
        return td

    def _move_specs(self, move: Callable[[TensorSpec], TensorSpec]) -> SpecProjector:
        """A copy whose specs went through ``move`` (see ``TDRLModuleBase._apply``)."""
        positions = [(i, k, move(leaf)) for i, k, leaf in self.positions]
        if all(new[2] is old[2] for new, old in zip(positions, self.positions)):
            return self
        out = SpecProjector(None, [], self.owner)
        out.pairs = [(k, leaf) for _, k, leaf in positions]
        out.positions = positions
        return out


class SafeModule(TDRLModuleBase):
    """Wraps a callable that maps tensors to tensors so it reads and writes a TensorDict.

    ``in_keys`` are read and passed positionally (or, as a dict
    ``{argument_name: key}``, by name); the results are written under
    ``out_keys``. With ``spec`` (a spec for the first out_key, or a
    ``Composite`` keyed by out_keys) and ``safe=True``, outputs are projected
    into their spec before they are written; a NaN output cannot be projected
    and raises ``ValueError`` naming the key and the module (nothing is
    written). A missing input key raises ``KeyError`` naming the key, the
    module and the keys present, before anything is written. Called with
    tensors instead of a TensorDict (``mod(x)`` or ``mod(obs=x)``) it returns
    its outputs, as ``tensordict.nn.TensorDictModule`` does; ``.to()``,
    ``.cpu()`` and ``.double()`` move its spec with its parameters.

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
        check_safe(self.spec, safe, type(self).__name__)
        self.safe = safe
        self._projector = SpecProjector(
            self.spec if safe else None, self.out_keys, type(self).__name__
        )

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
        if self._projector:
            out = self._projector.project_outputs(out)
        if type(out) is torch.Tensor and len(self.out_keys) == 1:
            set_value(td, self.out_keys[0], out)
        else:
            write_outputs(td, self.out_keys, out, self)
        return td

    def extra_repr(self) -> str:
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}, safe={self.safe}"


def is_tensordict_compatible(module: Any) -> bool:
    """Whether ``module`` can be used as a TensorDict module as it is.

    True for a ``tensordict.nn`` module (every tdrl module is one) and for a
    module that defines ``in_keys`` and ``out_keys`` and whose ``forward``
    takes one argument; False for a module with neither ``in_keys`` nor
    ``out_keys`` (it can be wrapped). A module that defines keys but whose
    ``forward`` takes several arguments is ambiguous: ``TypeError``.

    Examples:
        >>> import torch
        >>> from tdrl.modules import SafeModule
        >>> is_tensordict_compatible(torch.nn.Linear(3, 4))
        False
        >>> is_tensordict_compatible(SafeModule(torch.nn.Linear(3, 4), ["x"], ["y"]))
        True
    """
    if isinstance(module, (TensorDictModule, TensorDictModuleBase)):
        return True
    has_in, has_out = hasattr(module, "in_keys"), hasattr(module, "out_keys")
    forward = getattr(module, "forward", None)
    if not callable(forward):
        return False
    params = inspect.signature(forward).parameters
    if has_in and has_out and len(params) == 1:
        return True
    if not has_in and not has_out:
        return False
    raise TypeError(
        f"Received a module that defines in_keys or out_keys and also expects multiple "
        f"arguments to module.forward: {type(module).__name__}.forward takes {list(params)} "
        f"(in_keys={getattr(module, 'in_keys', None)}, out_keys="
        f"{getattr(module, 'out_keys', None)}). A TensorDict module's forward takes a single "
        "TensorDict and defines both in_keys and out_keys; a tensor module defines neither, "
        "and can then be wrapped."
    )


def ensure_tensordict_compatible(
    module: Any,
    in_keys: Sequence[NestedKey] | None = None,
    out_keys: Sequence[NestedKey] | None = None,
    safe: bool = False,
    wrapper_type: type | None = TensorDictModule,
    **kwargs: Any,
) -> Any:
    """Returns ``module`` if it is a TensorDict module, else wraps it in ``wrapper_type``.

    A compatible module must match the ``in_keys`` / ``out_keys`` given (as
    sets); a tensor module is wrapped with them (its ``forward`` arguments
    must then be the ``in_keys``). ``safe`` and ``kwargs`` go to the wrapper.

    Examples:
        >>> import torch
        >>> mod = ensure_tensordict_compatible(torch.nn.Linear(3, 4), in_keys=["input"],
        ...                                    out_keys=["y"])
        >>> type(mod).__name__, mod.in_keys
        ('TensorDictModule', ['input'])
    """
    in_keys = normalize_keys(in_keys, "in_keys") if in_keys else None
    out_keys = normalize_keys(out_keys, "out_keys") if out_keys else None
    if is_tensordict_compatible(module):
        for given, name in ((in_keys, "in_keys"), (out_keys, "out_keys")):
            have = normalize_keys(getattr(module, name), name)
            if given is not None and set(given) != set(have):
                raise TypeError(
                    f"{type(module).__name__} has {name} {have}, which doesn't match "
                    f"the expected {name} {given}"
                )
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(
            "Argument to ensure_tensordict_compatible should be either a TensorDictModule or "
            f"an nn.Module, got {type(module).__name__}"
        )
    params = list(inspect.signature(module.forward).parameters)
    if in_keys is not None and set(params) != set(in_keys):
        raise TypeError(
            f"Arguments to module.forward {params} are incompatible with the in_keys "
            f"{in_keys}: to wrap {type(module).__name__} automatically, its forward "
            "arguments must be the in_keys, one to one"
        )
    if in_keys is not None:
        kwargs["in_keys"] = in_keys
    if out_keys is not None:
        kwargs["out_keys"] = out_keys
    if safe:
        kwargs["safe"] = safe
    return wrapper_type(module, **kwargs)


def __getattr__(name: str) -> Any:
    """``VmapModule`` lives in ``vmap.py``; served here at TorchRL's import path."""
    if name == "VmapModule":
        from tdrl.modules.tensordict_module.vmap import VmapModule

        return VmapModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
