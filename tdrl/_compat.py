"""The one place where tdrl reaches into private torch / tensordict internals.

Each fast path here has a public fallback, chosen once at import time, so a
torch or tensordict release that renames an internal makes tdrl slower, never
wrong:

- ``get_or_none`` / ``set_value``: tensordict's string-key accessors
  (``_get_str`` / ``_set_str``) and its entry dict, else ``td.get`` /
  ``td.set``.
- ``has_hooks`` / ``hook_epoch`` / ``is_compiled``: ``nn.Module``'s hook dicts,
  torch's global hook dicts and hook-handle counter, and the
  ``.compile()`` marker; the fallback reports "hooks present", which sends
  every call through ``nn.Module.__call__``.
- ``lerp_all_``: torch's multi-tensor ``_foreach_lerp_`` (one kernel launch
  for a whole parameter list: the Polyak target update), else ``lerp_`` per
  tensor; ``copy_all_`` likewise with ``_foreach_copy_`` (a hard target update).
- ``clip_grad_norm_``: ``_foreach_norm`` + ``_foreach_mul_`` over the gradients,
  else ``nn.utils.clip_grad_norm_``.
- ``is_compiling``: ``torch.compiler.is_compiling``, else ``torch._dynamo``'s
  (torch < 2.3), else always False.
- ``fused_rnn``: ATen's ``torch.lstm`` / ``torch.gru`` kernels called directly for
  an ``nn.LSTM`` / ``nn.GRU`` step (skipping ``forward``'s Python checks), else
  the module call.
- ``fused_adam_step``: torch's fused Adam kernel (``_fused_adam_``) on lists the
  caller holds, else False (the caller runs ``torch.optim.Adam.step``);
  ``unhooked_step``: an optimizer class's ``step`` inside torch's step-hook wrapper
  (``__wrapped__``), for a subclass whose own wrapped ``step`` already ran the hooks,
  else the wrapped method (the hooks then run twice).

Setting the environment variable ``TDRL_COMPAT_FALLBACK=1`` before ``import tdrl``
selects every public fallback (CI runs the module tests once that way, so the
fallbacks stay correct).

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tdrl._compat import get_or_none, set_value
    >>> td = set_value(TensorDict(batch_size=[2]), "a", torch.zeros(2))
    >>> get_or_none(td, "a"), get_or_none(td, "b")
    (tensor([0., 0.]), None)
"""
from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, is_tensor_collection
from tensordict.utils import NestedKey
from torch import nn

__all__ = [
    "get_or_none",
    "read_key",
    "missing_key_error",
    "str_getter",
    "set_value",
    "has_hooks",
    "hook_epoch",
    "is_compiled",
    "overwrite_error",
    "lerp_all_",
    "fused_adam_step",
    "unhooked_step",
    "copy_all_",
    "clip_grad_norm_",
    "is_compiling",
    "fused_rnn",
    "params_reader",
    "child",
]


def overwrite_error(key: NestedKey, old: Any) -> KeyError:
    """The error raised when a tensor would replace the sub-TensorDict stored under ``key``.

    Examples:
        >>> from tensordict import TensorDict
        >>> print(overwrite_error("h", TensorDict(a=0)).args[0])
        cannot write a tensor under 'h': it holds a sub-TensorDict with entries ['a'] that the write would drop; rename the output key or delete the sub-TensorDict first
    """
    entries = sorted(str(k) for k in old.keys(include_nested=True, leaves_only=True))
    return KeyError(
        f"cannot write a tensor under {key!r}: it holds a sub-TensorDict with entries "
        f"{entries} that the write would drop; rename the output key or delete the "
        "sub-TensorDict first"
    )


def _present_keys(td: TensorDictBase) -> list[str]:
    return sorted(str(k) for k in td.keys(include_nested=True, leaves_only=True))


def missing_key_error(owner: Any, key: NestedKey, td: TensorDictBase) -> KeyError:
    """Builds the ``KeyError`` raised when ``owner`` cannot find ``key`` in ``td``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> err = missing_key_error("MyModule", "obs", TensorDict(a=torch.zeros(1)))
        >>> print(err.args[0])
        MyModule expected the key 'obs' in its input TensorDict, but it is missing; keys present: ['a']
    """
    name = owner if isinstance(owner, str) else type(owner).__name__
    return KeyError(
        f"{name} expected the key {key!r} in its input TensorDict, but it is missing; "
        f"keys present: {_present_keys(td)}"
    )


def _checked_set(td: TensorDictBase, key: NestedKey, value: Any) -> TensorDictBase:
    # public path: any TensorDictBase, any key
    if not is_tensor_collection(value):
        old = td.get(key, None)
        if old is not None and is_tensor_collection(old):
            raise overwrite_error(key, old)
    return td.set(key, value)


FORCE_FALLBACK = os.environ.get("TDRL_COMPAT_FALLBACK", "") not in ("", "0")

try:  # the string-key accessors and the entry dict, checked on a real instance
    if FORCE_FALLBACK:
        raise RuntimeError("TDRL_COMPAT_FALLBACK is set")
    _probe = TensorDict()
    _FAST_STR = (
        callable(getattr(_probe, "_get_str", None))
        and callable(getattr(_probe, "_set_str", None))
        and isinstance(getattr(_probe, "_tensordict", None), dict)
    )
    del _probe
except Exception:  # pragma: no cover - depends on the tensordict release
    _FAST_STR = False

if _FAST_STR:

    def get_or_none(td: TensorDictBase, key: NestedKey) -> Any:
        """``td.get(key, None)``, through tensordict's string-key fast path when it can."""
        if type(key) is str:
            return td._get_str(key, None)
        return td.get(key, None)

    def read_key(td: TensorDictBase, key: NestedKey, owner: Any) -> Any:
        """Reads ``key`` from ``td``; a missing key raises a ``KeyError`` naming it.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> read_key(TensorDict(a=torch.ones(2)), "a", "M")
            tensor([1., 1.])
        """
        value = td._get_str(key, None) if type(key) is str else td.get(key, None)
        if value is None:
            raise missing_key_error(owner, key, td)
        return value

    class _StrGetter:
        """``td -> td.get(key, None)`` for one string key, on the fast path.

        A small picklable class rather than ``operator.methodcaller``, which
        ``torch.compile`` cannot trace.
        """

        __slots__ = ("key",)

        def __init__(self, key: str) -> None:
            self.key = key

        def __call__(self, td: TensorDictBase) -> Any:
            return td._get_str(self.key, None)

    def str_getter(key: str) -> Callable[[TensorDictBase], Any]:
        """A callable ``td -> td.get(key, None)`` for one string key, on the fast path."""
        return _StrGetter(key)

    def set_value(td: TensorDictBase, key: NestedKey, value: Any) -> TensorDictBase:
        """``td.set(key, value)``; a tensor never silently replaces a sub-TensorDict.

        Batch dimensions and device are still validated by tensordict.
        """
        if type(key) is str and type(td) is TensorDict:
            entries = td._tensordict
            if key in entries:  # (a fresh key, the common case, costs no call)
                old = entries[key]
                if (
                    type(old) is not torch.Tensor
                    and is_tensor_collection(old)
                    and not is_tensor_collection(value)
                ):
                    raise overwrite_error(key, old)
            return td._set_str(key, value, inplace=False, validated=False)
        return _checked_set(td, key, value)

else:  # pragma: no cover - public fallback

    def get_or_none(td: TensorDictBase, key: NestedKey) -> Any:
        """``td.get(key, None)``."""
        return td.get(key, None)

    def read_key(td: TensorDictBase, key: NestedKey, owner: Any) -> Any:
        """Reads ``key`` from ``td``; a missing key raises a ``KeyError`` naming it."""
        value = td.get(key, None)
        if value is None:
            raise missing_key_error(owner, key, td)
        return value

    class _StrGetter:  # type: ignore[no-redef]
        """``td -> td.get(key, None)`` for one string key (picklable)."""

        __slots__ = ("key",)

        def __init__(self, key: str) -> None:
            self.key = key

        def __call__(self, td: TensorDictBase) -> Any:
            return td.get(self.key, None)

    def str_getter(key: str) -> Callable[[TensorDictBase], Any]:
        """A callable ``td -> td.get(key, None)`` for one string key."""
        return _StrGetter(key)

    def set_value(td: TensorDictBase, key: NestedKey, value: Any) -> TensorDictBase:
        """``td.set(key, value)``; a tensor never silently replaces a sub-TensorDict."""
        return _checked_set(td, key, value)


# --- hooks ------------------------------------------------------------------------------
try:
    if FORCE_FALLBACK:
        raise RuntimeError("TDRL_COMPAT_FALLBACK is set")
    from torch.nn.modules import module as _nn_module
    from torch.utils.hooks import RemovableHandle

    _GLOBAL_HOOKS = (
        _nn_module._global_forward_hooks,
        _nn_module._global_forward_pre_hooks,
        _nn_module._global_backward_hooks,
        _nn_module._global_backward_pre_hooks,
    )
    _ = RemovableHandle.next_id
    _ = nn.Linear(1, 1)._forward_hooks, nn.Linear(1, 1)._compiled_call_impl
    _HOOKS_KNOWN = True
except Exception:  # pragma: no cover - depends on the torch release
    _HOOKS_KNOWN = False

if _HOOKS_KNOWN:

    def has_hooks(m: nn.Module) -> bool:
        """Whether ``m`` (or torch globally) has any forward / backward hook registered."""
        g = _GLOBAL_HOOKS
        return bool(
            m._forward_hooks
            or m._forward_pre_hooks
            or m._backward_hooks
            or m._backward_pre_hooks
            or g[0]
            or g[1]
            or g[2]
            or g[3]
        )

    # torch's hook-handle counter: it changes whenever any hook is registered (a C-level
    # getattr: cheaper per call than a Python function)
    hook_epoch = functools.partial(getattr, RemovableHandle, "next_id")

    def is_compiled(m: nn.Module) -> bool:
        """Whether ``m.compile()`` was called (its ``__call__`` then runs compiled)."""
        return m._compiled_call_impl is not None

else:  # pragma: no cover - public fallback: always go through nn.Module.__call__

    def has_hooks(m: nn.Module) -> bool:
        """Unknown torch internals: assume hooks, so every call goes through ``__call__``."""
        return True

    _EPOCHS = itertools.count()

    def hook_epoch() -> int:
        """No counter available: a new number each time, so nothing stays cached (a number,
        unlike a fresh ``object()``, traces under ``torch.export`` / ``torch.compile``)."""
        return next(_EPOCHS)

    def is_compiled(m: nn.Module) -> bool:
        """Unknown torch internals: assume compiled."""
        return True


# --- multi-tensor update and compile detection --------------------------------------------
_FOREACH_LERP = None if FORCE_FALLBACK else getattr(torch, "_foreach_lerp_", None)


def lerp_all_(targets: list[torch.Tensor], sources: list[torch.Tensor], weight: float) -> None:
    """In place, ``t += weight * (s - t)`` for each pair (a Polyak / EMA update), without autograd.

    Examples:
        >>> t, s = [torch.zeros(2), torch.ones(3)], [torch.ones(2), torch.zeros(3)]
        >>> lerp_all_(t, s, 0.25)
        >>> t[0].tolist(), t[1].tolist()
        ([0.25, 0.25], [0.75, 0.75, 0.75])
    """
    if len(targets) != len(sources):
        raise ValueError(f"lerp_all_: {len(targets)} targets but {len(sources)} sources")
    with torch.no_grad():
        if _FOREACH_LERP is not None:
            _FOREACH_LERP(targets, sources, weight)
        else:
            for t, s in zip(targets, sources):
                t.lerp_(s, weight)


_FOREACH_COPY = None if FORCE_FALLBACK else getattr(torch, "_foreach_copy_", None)


def copy_all_(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """In place, ``t.copy_(s)`` for each pair (a hard target-network update), without autograd.

    Examples:
        >>> t, s = [torch.zeros(2), torch.zeros(1)], [torch.ones(2), torch.full((1,), 3.0)]
        >>> copy_all_(t, s)
        >>> t[0].tolist(), t[1].tolist()
        ([1.0, 1.0], [3.0])
    """
    if len(targets) != len(sources):
        raise ValueError(f"copy_all_: {len(targets)} targets but {len(sources)} sources")
    with torch.no_grad():
        if _FOREACH_COPY is not None:
            _FOREACH_COPY(targets, sources)
        else:
            for t, s in zip(targets, sources):
                t.copy_(s)


_FOREACH_NORM = None if FORCE_FALLBACK else getattr(torch, "_foreach_norm", None)
_FOREACH_MUL = None if FORCE_FALLBACK else getattr(torch, "_foreach_mul_", None)


def clip_grad_norm_(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_(params, max_norm)`` (L2, same math): returns the total norm.

    The fast path is two multi-tensor kernels over the gradients that exist
    (``_foreach_norm``, ``_foreach_mul_``) with none of the public function's
    per-call grouping and checks; the fallback is the public function.

    Examples:
        >>> w = torch.zeros(2, requires_grad=True)
        >>> (3 * w[0] + 4 * w[1]).backward()
        >>> clip_grad_norm_([w], 1.0).item(), [round(g, 4) for g in w.grad.tolist()]
        (5.0, [0.6, 0.8])
    """
    if _FOREACH_NORM is None or _FOREACH_MUL is None:
        return nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    # (gradients of a plain backward carry no graph: no no_grad block needed)
    total = torch.linalg.vector_norm(torch.stack(_FOREACH_NORM(grads)))
    _FOREACH_MUL(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))
    return total


try:
    from torch.compiler import is_compiling
except ImportError:  # pragma: no cover - torch < 2.3
    try:
        from torch._dynamo import is_compiling
    except ImportError:

        def is_compiling() -> bool:
            """No dynamo in this torch: never compiling."""
            return False


# --- fused RNN kernels --------------------------------------------------------------------
_FUSED_ADAM = None if FORCE_FALLBACK else getattr(torch, "_fused_adam_", None)


def fused_adam_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                    exp_avgs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor],
                    steps: list[torch.Tensor], *, lr: float, betas: tuple[float, float],
                    eps: float, weight_decay: float, maximize: bool) -> bool:
    """What ``torch.optim.Adam(fused=True).step()`` runs for one device and dtype (step
    counts + 1, then the fused kernel), on lists the caller holds; False, doing nothing,
    where the kernel is missing (or ``TDRL_COMPAT_FALLBACK=1``).

    Examples:
        >>> q = torch.ones(2, requires_grad=True)
        >>> q.grad = torch.ones(2)
        >>> torch.optim.Adam([q], lr=0.1, fused=True).step()
        >>> p, state = torch.ones(2), [torch.zeros(2), torch.zeros(2), torch.zeros(())]
        >>> done = fused_adam_step([p], [torch.ones(2)], [state[0]], [state[1]], [state[2]],
        ...                        lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
        ...                        maximize=False)
        >>> torch.equal(p, q.detach()) and state[2].item() == 1.0 if done else True
        True
    """
    if _FUSED_ADAM is None:
        return False
    with torch.no_grad():  # (in place on leaf parameters, as the optimizer's step runs)
        torch._foreach_add_(steps, 1)
        _FUSED_ADAM(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr,
                    beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps,
                    maximize=maximize, grad_scale=None, found_inf=None)
    return True


def unhooked_step(cls: type) -> Callable[..., Any]:
    """``cls.step`` without torch's optimizer-step hook wrapper (see the module docstring).

    Examples:
        >>> callable(unhooked_step(torch.optim.Adam))
        True
    """
    step = cls.step
    if FORCE_FALLBACK or not getattr(step, "hooked", False):
        return step
    return getattr(step, "__wrapped__", step)


_FUSED_RNN = {} if FORCE_FALLBACK else {
    kind: fn for kind, fn in (("LSTM", getattr(torch, "lstm", None)),
                              ("GRU", getattr(torch, "gru", None))) if callable(fn)
}


class _FusedRNN:
    """``rnn(x, hx)`` through ATen's kernel (see :func:`fused_rnn`); copies and pickles with ``rnn``."""

    __slots__ = ("rnn", "kind", "names")

    def __init__(self, rnn: nn.Module, kind: str) -> None:
        self.rnn, self.kind = rnn, kind
        names = []
        for layer in range(rnn.num_layers):
            names += [f"weight_ih_l{layer}", f"weight_hh_l{layer}"]
            if rnn.bias:
                names += [f"bias_ih_l{layer}", f"bias_hh_l{layer}"]
            if getattr(rnn, "proj_size", 0):
                names.append(f"weight_hr_l{layer}")
        self.names = tuple(names)

    def __call__(self, x: torch.Tensor, hx: Any) -> Any:
        rnn = self.rnn
        if (
            hx is None
            or type(x) is not torch.Tensor
            or x.dim() != 3
            or x.device.type != "cpu"
            or has_hooks(rnn)
            or is_compiling()
        ):
            return rnn(x, hx)
        weights = [getattr(rnn, n) for n in self.names]
        gru = self.kind == "GRU"
        out = _FUSED_RNN[self.kind](x, hx if gru else tuple(hx), weights, bool(rnn.bias),
                                    rnn.num_layers, float(rnn.dropout), rnn.training, False, True)
        return (out[0], out[1]) if gru else (out[0], (out[1], out[2]))


def fused_rnn(rnn: nn.Module) -> Callable[[torch.Tensor, Any], Any] | None:
    """A direct call of ATen's LSTM / GRU kernel standing in for ``rnn(x, hx)``, or ``None``.

    Only for an exact ``torch.nn.LSTM`` / ``torch.nn.GRU`` (unidirectional,
    batch-first). The returned callable takes a 3-D CPU input and an explicit
    state (``(h, c)`` or ``h``) and returns what ``rnn(x, hx)`` returns; it
    reads the weights by their documented names on every call (so swapped
    parameters are seen) and hands any other call (hooks, packed input,
    another device, tracing) to ``rnn`` itself. It deep-copies and pickles
    along with ``rnn``. ``None`` when the kernel is not available (or
    ``TDRL_COMPAT_FALLBACK=1``): call ``rnn``.

    Examples:
        >>> lstm = nn.LSTM(3, 4, batch_first=True)
        >>> step = fused_rnn(lstm) or lstm
        >>> x, hx = torch.randn(2, 1, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
        >>> torch.testing.assert_close(step(x, hx)[0], lstm(x, hx)[0])
    """
    kind = "LSTM" if type(rnn) is nn.LSTM else "GRU" if type(rnn) is nn.GRU else None
    if kind not in _FUSED_RNN or rnn.bidirectional or not rnn.batch_first:
        return None
    return _FusedRNN(rnn, kind)
# --- current leaves of a TensorDictParams (multi-agent networks' stacked weights) ----------
def params_reader(keys: list[NestedKey]) -> Callable[[Any], list[torch.Tensor]]:
    """A function reading ``keys`` from a ``TensorDictParams``, as its *current* leaves.

    ``TensorDict.to_module`` swaps a ``TensorDictParams``' content by replacing its
    private ``_param_td``; the fast path re-reads the leaves only when that object
    changed (the content is locked, so it cannot change otherwise, except in place).
    Fallback (and under ``torch.compile``): ``params.get(key)`` for every key, every call.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from tensordict import TensorDict
        >>> p = TensorDict.from_modules(nn.Linear(2, 3), nn.Linear(2, 3), as_module=True)
        >>> read = params_reader([("weight",), ("bias",)])
        >>> [t.shape for t in read(p)]
        [torch.Size([2, 3, 2]), torch.Size([2, 3])]
        >>> owner = nn.Module()
        >>> owner.params = p
        >>> zeros = TensorDict.from_module(owner).data.clone().zero_()
        >>> with zeros.to_module(owner):
        ...     bool((read(p)[0] == 0).all())
        True
        >>> bool((read(p)[0] == 0).all()), read(p)[0] is p.get("weight")
        (False, True)
    """
    keys = list(keys)
    cache: list[Any] = [None, None]

    def read_public(params: Any) -> list[torch.Tensor]:
        return [params.get(k) for k in keys]

    if FORCE_FALLBACK:
        return read_public

    def read(params: Any) -> list[torch.Tensor]:
        src = params.__dict__.get("_param_td") if not is_compiling() else None
        if src is None:
            return read_public(params)
        if src is not cache[0]:
            cache[1] = [src.get(k) for k in keys]
            cache[0] = src
        return cache[1]

    return read


if FORCE_FALLBACK:

    def child(module: nn.Module, name: str) -> Any:
        """``getattr(module, name)`` (public fallback)."""
        return getattr(module, name)

else:

    def child(module: nn.Module, name: str) -> Any:
        """The registered submodule ``name`` of ``module``, read from its ``_modules`` dict.

        ``getattr`` would go through ``nn.Module.__getattr__`` (about 1 us); the fallback
        does exactly that.

        Examples:
            >>> from torch import nn
            >>> seq = nn.Sequential(nn.Linear(1, 1))
            >>> child(seq, "0") is seq[0]
            True
        """
        try:
            return module.__dict__["_modules"][name]
        except KeyError:
            return getattr(module, name)
