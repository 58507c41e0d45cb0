"""The dispatch core shared by every tdrl module.

Every tdrl module is a :class:`tensordict.nn.TensorDictModuleBase` whose work is
done by ``_run(td) -> td``. ``forward`` only adds the public conveniences
(``tensordict_out``, building a TensorDict from keyword tensors), so
containers can chain the ``_run`` of their children directly and skip
``nn.Module.__call__`` and tensordict's generic dispatch on the hot path.

A child is turned into a *step* (a plain ``td -> td`` callable) once, by
:func:`as_step`:

- a tdrl module runs through its ``_run`` (or its full ``__call__`` when it
  carries hooks),
- a user-built :class:`tensordict.nn.TensorDictModule` with no hooks runs
  through a lean reader/writer that reads its ``in_keys``, calls its wrapped
  callable and writes its ``out_keys`` (the same semantics, minus the
  overhead),
- anything else is called as it is.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from tdrl.modules.tensordict_module.core import as_step
    >>> step = as_step(TensorDictModule(torch.nn.Linear(3, 2), ["x"], ["y"]))
    >>> step(TensorDict(x=torch.zeros(4, 3), batch_size=[4]))["y"].shape
    torch.Size([4, 2])
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, is_tensor_collection
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key, unravel_key_list
from torch import nn

from tdrl._compat import (
    get_or_none,
    has_hooks,
    hook_epoch,
    is_compiled,
    missing_key_error,
    read_key,
    set_value,
    str_getter,
)
from tdrl.modules.tensordict_module.spec_moves import move_specs

__all__ = [
    "TDRLModuleBase",
    "as_step",
    "normalize_keys",
    "read_key",
    "FastCall",
    "hook_free",
    "get_or_none",
    "set_value",
    "write_outputs",
    "missing_key_error",
    "covers",
    "produced",
    "key_tuple",
]

Step = Callable[[TensorDictBase], TensorDictBase]


def normalize_keys(keys: NestedKey | Iterable[NestedKey] | None, name: str) -> list[NestedKey]:
    """Turns a key or a list of keys into a flat list of unravelled keys.

    Raises ``TypeError`` naming the argument when the value is not a key or keys.

    Examples:
        >>> normalize_keys("a", "in_keys")
        ['a']
        >>> normalize_keys([("a", ("b", "c")), ("d",)], "out_keys")
        [('a', 'b', 'c'), 'd']
    """
    if keys is None:
        return []
    if isinstance(keys, (str, tuple)):
        keys = [keys]
    try:
        return unravel_key_list(list(keys))
    except Exception as err:  # tensordict raises various types here
        raise TypeError(
            f"{name} must be a key (str or tuple of str) or a list of keys, got {keys!r}"
        ) from err


def write_outputs(
    td: TensorDictBase, out_keys: Sequence[NestedKey], out: Any, owner: Any
) -> TensorDictBase:
    """Writes a callable's result (a tensor or a tuple of them) under ``out_keys``.

    The count is checked before anything is written; the key ``"_"`` drops an output.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> td = write_outputs(TensorDict(), ["a", "b"], (torch.zeros(1), torch.ones(1)), "M")
        >>> sorted(td.keys())
        ['a', 'b']
    """
    if isinstance(out, torch.Tensor):
        if len(out_keys) != 1:
            raise ValueError(
                f"{_owner_name(owner)} returned 1 tensor but has {len(out_keys)} out_keys "
                f"{list(out_keys)}"
            )
        return set_value(td, out_keys[0], out)
    if isinstance(out, (tuple, list)):
        if len(out) != len(out_keys):
            raise ValueError(
                f"{_owner_name(owner)} returned {len(out)} outputs but has {len(out_keys)} "
                f"out_keys {list(out_keys)}"
            )
        for key, value in zip(out_keys, out):
            if key != "_":
                set_value(td, key, value)
        return td
    if isinstance(out, (TensorDictBase, dict)) and len(out_keys) == 1:
        td.set(out_keys[0], out if isinstance(out, TensorDictBase) else TensorDict(out))
        return td
    raise TypeError(
        f"{_owner_name(owner)} must return a tensor or a tuple of tensors, got {type(out).__name__}"
    )


def _owner_name(owner: Any) -> str:
    return owner if isinstance(owner, str) else type(owner).__name__


def hook_free(m: nn.Module) -> bool:
    """Whether ``m`` can be run without ``nn.Module.__call__``: no hooks, not ``.compile()``d.

    A positive answer is cached on the module together with torch's global
    hook-handle counter (every ``register_*_hook`` call, on any module or
    globally, bumps it), so the check costs one comparison until a hook is
    registered somewhere.

    Examples:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> hook_free(lin)
        True
        >>> handle = lin.register_forward_hook(lambda *args: None)
        >>> hook_free(lin)
        False
        >>> handle.remove()
        >>> hook_free(lin)
        True
    """
    epoch = hook_epoch()
    if m.__dict__.get("_tdrl_hook_free") == epoch:
        return True
    if has_hooks(m) or is_compiled(m):
        return False  # not cached: a removed hook does not bump the counter
    m.__dict__["_tdrl_hook_free"] = epoch
    return True


class FastCall:
    """Calls an ``nn.Module`` without ``nn.Module.__call__``'s bookkeeping when it is hook-free.

    Every call re-checks :func:`hook_free`, so hooks registered later are
    honoured. Non-module callables are called as they are.

    Examples:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> torch.equal(FastCall(lin)(torch.ones(1, 2)), lin(torch.ones(1, 2)))
        True
    """

    __slots__ = ("fn", "is_module")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.is_module = isinstance(fn, nn.Module)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self.fn
        if self.is_module and hook_free(fn):
            return fn.forward(*args, **kwargs)
        return fn(*args, **kwargs)


class TDRLModuleBase(TensorDictModuleBase):
    """Base of all tdrl modules: a ``TensorDictModuleBase`` whose work is ``_run(td)``.

    Subclasses set ``in_keys`` / ``out_keys`` and implement ``_run``, which
    reads from and writes into the tensordict it is given and returns it.

    The calling conventions are those of ``tensordict.nn.TensorDictModule``:

    - ``module(td)`` runs in place and returns ``td``; with
      ``tensordict_out=...`` the outputs are copied into that tensordict
      instead and the input is left untouched;
    - ``module(x, y)`` (positional tensors, in the order of ``in_keys``) or
      ``module(obs=x)`` (keyword tensors named after the keys; a nested key
      joins its parts with ``"_"``) returns the ``out_keys`` entries: one
      tensor, or a tuple. The tensors go in a TensorDict with an empty batch
      size, as ``tensordict.nn``'s dispatch builds it.

    ``forward`` takes the one argument ``tensordict``, so tools that inspect
    its signature (TorchRL's ``ensure_tensordict_compatible``) take tdrl
    modules for what they are. ``.to()`` / ``.cpu()`` / ``.cuda()`` /
    ``.double()`` move every spec the module holds along with its parameters
    (floating specs follow a dtype cast, integer ones keep their dtype).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> class AddOne(TDRLModuleBase):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.in_keys, self.out_keys = ["x"], ["y"]
        ...     def _run(self, td):
        ...         return td.set("y", read_key(td, "x", self) + 1)
        >>> AddOne()(TensorDict(x=torch.zeros(2), batch_size=[2]))["y"]
        tensor([1., 1.])
        >>> AddOne()(torch.zeros(2)), AddOne()(x=torch.zeros(2))
        (tensor([1., 1.]), tensor([1., 1.]))
    """

    def _run(self, td: TensorDictBase) -> TensorDictBase:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # nn.Module.__call__ minus its bookkeeping when the module carries no hooks
        if len(args) == 1 and not kwargs and isinstance(args[0], TensorDictBase):
            if type(self).forward is TDRLModuleBase.forward and hook_free(self):
                return self._run(args[0])
            return super().__call__(args[0])
        return self._call_general(args, kwargs)

    def _leaf_plan(self) -> tuple[Any, list, list, list[str] | None] | None:
        """``(fn, in_keys, out_keys, kw_names)`` when the module is a plain read-call-write leaf.

        Containers then run it through a dispatch-free step; ``None`` (the
        default) means the module's own ``_run`` is needed.
        """
        return None

    def _step(self, td: TensorDictBase) -> TensorDictBase:
        """Runs the module as a child of a container: hooks are honoured if present."""
        if hook_free(self):
            return self._run(td)
        return self(td)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Runs the module on ``tensordict`` (in place) and returns it.

        Tensors given instead of a tensordict follow the calling conventions
        of the class docstring.
        """
        if not isinstance(tensordict, TensorDictBase):
            return self._call_general((tensordict,), {})
        return self._run(tensordict)

    # calling conventions ---------------------------------------------------------------
    def _call_general(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        name = type(self).__name__
        tensordict_out = kwargs.pop("tensordict_out", None)
        td = None
        if args and is_tensor_collection(args[0]):
            td, args = args[0], args[1:]
        elif "tensordict" in kwargs and "tensordict" not in self._kw_keys():
            td = kwargs.pop("tensordict")
            if not is_tensor_collection(td):
                raise TypeError(f"{name}: tensordict= must be a TensorDict, got {type(td).__name__}")
        if td is None:
            if tensordict_out is not None:
                raise TypeError(f"{name}: tensordict_out= needs a TensorDict input, got tensors")
            return self._call_with_tensors(args, kwargs)
        if args or kwargs:
            extra = [type(a).__name__ for a in args] + sorted(kwargs)
            raise TypeError(
                f"{name} was called with a TensorDict and unexpected extra arguments {extra}"
            )
        if tensordict_out is None:
            return self(td)
        out = self(td.copy())
        for key in self.out_keys:
            value = out.get(key, None)
            if value is not None:
                tensordict_out.set(key, value)
        return tensordict_out

    def _kw_keys(self) -> dict[str, NestedKey]:
        return {"_".join(key_tuple(k)): k for k in self.in_keys}

    def _call_with_tensors(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        name = type(self).__name__
        if len(args) > len(self.in_keys):
            raise TypeError(
                f"{name} got {len(args)} positional tensors but has {len(self.in_keys)} "
                f"in_keys {list(self.in_keys)}"
            )
        values: dict[NestedKey, Any] = dict(zip(self.in_keys, args))
        by_name = self._kw_keys()
        unknown = sorted(set(kwargs) - set(by_name))
        if unknown:
            raise TypeError(
                f"{name} got keyword arguments {unknown} that are not among its in_keys "
                f"{list(self.in_keys)} (keyword names: {sorted(by_name)})"
            )
        for kw, value in kwargs.items():
            key = by_name[kw]
            if key in values:
                raise TypeError(
                    f"{name}: Duplicated argument in args and kwargs: {kw!r} (in_key {key!r}) "
                    "was given both positionally and by keyword"
                )
            values[key] = value
        # as tensordict.nn's dispatch for TensorDictModule: an empty batch size, so outputs
        # are free to have any leading shape
        td = TensorDict()
        for key, value in values.items():
            td.set(key, value)
        td = self(td)
        outs = tuple(td.get(k) for k in self.out_keys if k != "_")
        return outs[0] if len(outs) == 1 else outs

    # devices and dtypes ----------------------------------------------------------------
    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any):
        out = super()._apply(fn, *args, **kwargs)
        moved = move_specs(self.__dict__, fn)
        if moved:
            self._specs_moved()
        return out

    def _specs_moved(self) -> None:
        """Called after ``.to()`` & co. replaced the module's specs: rebuild what derives from them."""


class _LeafStep:
    """A step that reads ``in_keys``, calls ``fn`` and writes ``out_keys``, with no dispatch.

    It stands for a hook-free leaf: a user-built ``TensorDictModule`` or a tdrl
    leaf that offers a ``_leaf_plan()`` (a ``SafeModule`` without projection).
    When the leaf or its network carries hooks (checked against torch's
    hook-handle counter, see :func:`hook_free`), the step calls the leaf itself.
    """

    __slots__ = (
        "owner", "fn", "is_module", "in_keys", "out_keys", "kw_names", "single", "getter", "epoch"
    )

    def __init__(
        self,
        owner: nn.Module,
        fn: Callable[..., Any],
        in_keys: Sequence[NestedKey],
        out_keys: Sequence[NestedKey],
        kw_names: Sequence[str] | None,
    ) -> None:
        self.owner = owner
        self.fn = fn
        self.is_module = isinstance(fn, nn.Module)
        self.in_keys = tuple(in_keys)
        self.out_keys = tuple(out_keys)
        self.kw_names = None if kw_names is None else tuple(kw_names)
        self.single = (
            kw_names is None
            and len(in_keys) == 1
            and len(out_keys) == 1
            and type(in_keys[0]) is str
        )
        self.getter = str_getter(in_keys[0]) if self.single else None
        self.epoch = -1

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        if self.epoch != hook_epoch():
            if not hook_free(self.owner) or (self.is_module and not hook_free(self.fn)):
                return self.owner(td)
            self.epoch = hook_epoch()
        fn = self.fn.forward if self.is_module else self.fn
        owner = self.owner
        if self.single:
            x = self.getter(td)
            if x is None:
                raise missing_key_error(owner, self.in_keys[0], td)
            out = fn(x)
            if type(out) is torch.Tensor:
                return set_value(td, self.out_keys[0], out)
        elif self.kw_names is None:
            out = fn(*[read_key(td, k, owner) for k in self.in_keys])
        else:
            out = fn(**{n: read_key(td, k, owner) for n, k in zip(self.kw_names, self.in_keys)})
        return write_outputs(td, self.out_keys, out, owner)

    def __repr__(self) -> str:
        return f"LeafStep({self.owner!r})"


def _lean_ok(m: TensorDictModule) -> bool:
    return (
        type(m) is TensorDictModule
        and getattr(m, "inplace", True) is True
        and getattr(m, "method", None) is None
        and not getattr(m, "method_kwargs", None)
        and not getattr(m, "_get_kwargs", None)
        and callable(getattr(m, "module", None))
    )


def as_step(child: Callable[[TensorDictBase], TensorDictBase]) -> Step:
    """Returns the fastest ``td -> td`` callable that behaves like ``child(td)``."""
    if isinstance(child, TDRLModuleBase):
        plan = child._leaf_plan()
        if plan is not None:
            return _LeafStep(child, *plan)
        return child._step
    if isinstance(child, TensorDictModule) and _lean_ok(child):
        return _LeafStep(
            child, child.module, child.in_keys, child.out_keys, getattr(child, "_kwargs", None)
        )
    return child


def key_tuple(key: NestedKey) -> tuple[str, ...]:
    """A key as a tuple of strings: ``"a"`` -> ``("a",)``.

    Examples:
        >>> key_tuple("a"), key_tuple(("a", "b"))
        (('a',), ('a', 'b'))
    """
    return (key,) if isinstance(key, str) else tuple(key)


def covers(written: NestedKey, read: NestedKey) -> bool:
    """Whether reading ``read`` gets (part of) what writing ``written`` wrote.

    True for the same key and for a key inside a written sub-TensorDict.

    Examples:
        >>> covers("feats", ("feats", "a")), covers(("feats", "a"), "feats"), covers("a", "a")
        (True, False, True)
    """
    w, r = key_tuple(written), key_tuple(read)
    return r[: len(w)] == w


def produced(read: NestedKey, written: Iterable[NestedKey]) -> bool:
    """Whether any of ``written`` :func:`covers` ``read``.

    Examples:
        >>> produced(("h", "x"), ["obs", "h"]), produced("y", ["obs", "h"])
        (True, False)
    """
    return any(covers(w, read) for w in written)


def key_str(key: NestedKey) -> str:
    """A readable form of a key, for messages.

    Examples:
        >>> key_str(("a", "b"))
        "('a', 'b')"
    """
    return repr(unravel_key(key))
