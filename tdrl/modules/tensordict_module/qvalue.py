"""Q-value policies: pick the greedy action from action values, in any discrete action space.

``QValueModule`` reads action values and writes the greedy ``action``, the
``action_value`` it read and the ``chosen_action_value`` (the value of the
chosen action, with gradient). ``QValueActor`` chains a network and that step.
The distributional variants read log-probabilities over a ``support`` of
atoms and act on the expected values. ``QValueHook`` / ``DistributionalQValueHook``
do the same as forward hooks.

Action spaces (decided once, at construction, by the spec or ``action_space``), with the
shape of the action values they read and of the action they write:

- ``one-hot`` (``OneHot(n)``): ``[..., n]`` -> one-hot ``[..., n]`` with exactly one 1;
- ``categorical`` (``Categorical(n)``): ``[..., n]`` -> index ``[...]``, or ``[..., 1]``
  when the spec's shape ends with 1 (``Categorical(n, shape=(1,))``);
- ``mult-one-hot`` (``MultiOneHot(nvec)``): ``[..., sum(nvec)]`` -> one one-hot block per
  sub-space;
- ``multi-categorical`` (``MultiCategorical(nvec)``): ``[..., sum(nvec)]`` -> one index per
  sub-space, ``[..., len(nvec)]``;
- ``binary`` (``Binary(n)``): ``[..., n]`` -> bit ``i`` is 1 where value ``i`` is positive.

The action is ``int64``, except ``binary`` with a spec, which takes the spec's
dtype. ``chosen_action_value`` (``[..., 1]``) is the sum, over sub-spaces, of
the values of the chosen sub-actions (for ``binary``: of the bits set), so it
is the value the greedy action maximises.

Masks (``action_mask_key``, a boolean tensor shaped like the action values):
masked actions are never chosen; the ``action_value`` entry is left as the
network produced it. A row (or, in ``mult-*`` spaces, a sub-space) whose mask
is all False raises ``ValueError`` naming the mask key. For ``binary`` a masked
bit is never set, and an all-False row gives the all-zero action.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tdrl.data import MultiOneHot
    >>> from tdrl.modules import QValueModule
    >>> module = QValueModule(spec=MultiOneHot([2, 3]))
    >>> values = torch.tensor([[0.1, 0.9, 3.0, 2.0, 1.0]])
    >>> td = module(TensorDict(action_value=values, batch_size=[1]))
    >>> td["action"]
    tensor([[0, 1, 1, 0, 0]])
    >>> td["chosen_action_value"]
    tensor([[3.9000]])
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from tdrl.data.tensor_specs import (
    Binary,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
)
from tdrl.modules.tensordict_module.common import SafeModule
from tdrl.modules.tensordict_module.core import (
    TDRLModuleBase,
    get_or_none,
    hook_free,
    missing_key_error,
    normalize_keys,
    set_value,
    write_outputs,
)
from tdrl.modules.tensordict_module.sequence import SafeSequential

__all__ = [
    "QValueModule",
    "QValueActor",
    "DistributionalQValueModule",
    "DistributionalQValueActor",
    "QValueHook",
    "DistributionalQValueHook",
    "ACTION_SPACES",
]

#: The valid ``action_space`` names (``_`` may be used instead of ``-``).
ACTION_SPACES = ("one-hot", "mult-one-hot", "binary", "categorical", "multi-categorical")
_ALIASES = {"multi-one-hot": "mult-one-hot", "multicategorical": "multi-categorical"}
_MULTI = ("mult-one-hot", "multi-categorical")


# --- action spaces -------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionSpace:
    """What the Q-value step needs to know about a discrete action space.

    ``nvec`` holds the sub-space sizes (one entry for single spaces, ``None``
    when unknown: an ``action_space`` name without spec); ``n_values`` is the
    expected size of the action values' last dimension (``None``: not checked);
    ``keepdim`` keeps a trailing singleton dimension on categorical actions.
    """

    name: str
    nvec: tuple[int, ...] | None
    dtype: torch.dtype = torch.int64
    keepdim: bool = False

    @property
    def n_values(self) -> int | None:
        return None if self.nvec is None else sum(self.nvec)


def _space_name(action_space: str) -> str:
    if not isinstance(action_space, str):
        raise TypeError(
            f"action_space must be a string (one of {list(ACTION_SPACES)}) or a spec, got "
            f"{type(action_space).__name__}"
        )
    name = action_space.strip().lower().replace("_", "-")
    name = _ALIASES.get(name, name)
    if name not in ACTION_SPACES:
        raise ValueError(
            f"unknown action_space {action_space!r}; valid action spaces: {list(ACTION_SPACES)}"
        )
    return name


def _spec_space_name(spec: TensorSpec, owner: str) -> str:
    # most specific classes first: a subclass relation between spec classes must not matter
    for cls, name in (
        (Binary, "binary"),
        (MultiOneHot, "mult-one-hot"),
        (MultiCategorical, "multi-categorical"),
        (OneHot, "one-hot"),
        (Categorical, "categorical"),
    ):
        if isinstance(spec, cls):
            return name
    raise ValueError(
        f"{owner}: cannot pick discrete actions in a {type(spec).__name__} spec; it needs one "
        "of OneHot, Categorical, MultiOneHot, MultiCategorical or Binary"
    )


def _categorical_n(spec: TensorSpec) -> int:
    n = getattr(spec, "n", None)
    if n is None:
        n = spec.space.n
    return int(n)


def _spec_nvec(spec: TensorSpec, name: str) -> tuple[int, ...]:
    if name in ("one-hot", "binary"):
        return (int(spec.shape[-1]),)
    if name == "categorical":
        return (_categorical_n(spec),)
    nvec = getattr(spec, "nvec", None)
    if nvec is None:  # pragma: no cover - depends on the spec implementation
        nvec = [box.n for box in spec.space.boxes]
    if isinstance(nvec, torch.Tensor):
        if name == "multi-categorical" and nvec.ndim > 1:
            nvec = nvec.reshape(-1, nvec.shape[-1])[0]
        nvec = nvec.tolist()
    return tuple(int(v) for v in nvec)


def _var_nums_nvec(var_nums: int | Sequence[int], n_blocks: int | None = None) -> tuple[int, ...]:
    if isinstance(var_nums, int):
        if n_blocks is None:
            raise ValueError(
                "an int var_nums (the size of every sub-space) cannot tell how many sub-spaces "
                "there are without a spec; pass the list of sub-space sizes instead"
            )
        return (var_nums,) * n_blocks
    return tuple(int(v) for v in var_nums)


def resolve_action_space(
    action_space: str | TensorSpec | None,
    spec: TensorSpec | None,
    var_nums: int | Sequence[int] | None = None,
    owner: str = "QValueModule",
) -> ActionSpace:
    """Decides the action space from a leaf ``spec`` and/or an ``action_space`` name.

    The spec decides; ``action_space`` alone is enough without spec; the two
    must agree. ``var_nums`` gives the sub-space sizes of ``mult-one-hot`` /
    ``multi-categorical`` when there is no spec.

    Examples:
        >>> from tdrl.data import Categorical, MultiOneHot
        >>> resolve_action_space(None, MultiOneHot([2, 3])).nvec
        (2, 3)
        >>> resolve_action_space("categorical", Categorical(4, shape=(1,))).keepdim
        True
        >>> resolve_action_space("one-hot", Categorical(4))
        Traceback (most recent call last):
        ...
        ValueError: QValueModule: the spec is a Categorical spec (action space 'categorical') but action_space='one-hot' was given; pass one of them, or make them agree
    """
    if isinstance(action_space, TensorSpec):
        if spec is not None:
            raise ValueError(f"{owner}: pass the spec either as spec or as action_space, not both")
        action_space, spec = None, action_space
    if spec is None:
        if action_space is None:
            raise ValueError(
                f"{owner} needs a spec or an action_space (one of {list(ACTION_SPACES)})"
            )
        name = _space_name(action_space)
        if name in _MULTI:
            if var_nums is None:
                raise ValueError(
                    f"{owner}: action_space={name!r} without a spec needs var_nums, the list of "
                    "sub-space sizes (or pass a MultiOneHot / MultiCategorical spec)"
                )
            nvec: tuple[int, ...] | None = _var_nums_nvec(var_nums)
        else:
            nvec = None
        return ActionSpace(name, nvec)
    if isinstance(spec, Composite):
        raise TypeError(f"{owner}: expected a leaf spec for the action, got a Composite")
    name = _spec_space_name(spec, owner)
    if action_space is not None:
        asked = _space_name(action_space)
        if asked != name:
            raise ValueError(
                f"{owner}: the spec is a {type(spec).__name__} spec (action space {name!r}) but "
                f"action_space={action_space!r} was given; pass one of them, or make them agree"
            )
    nvec = _spec_nvec(spec, name)
    if var_nums is not None and name in _MULTI:
        given = _var_nums_nvec(var_nums, len(nvec))
        if given != nvec:
            raise ValueError(
                f"{owner}: var_nums={var_nums!r} disagrees with the spec's sub-space sizes "
                f"{list(nvec)}"
            )
    dtype = spec.dtype if name == "binary" else torch.int64
    keepdim = name == "categorical" and len(spec.shape) > 0 and spec.shape[-1] == 1
    return ActionSpace(name, nvec, dtype, keepdim)


def _masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked entries become -inf, allowed ones at least the lowest finite value."""
    lowest = torch.finfo(values.dtype).min
    return torch.where(mask, values.clamp_min(lowest), float("-inf"))


# Selection functions: (module, values, mask) -> (action, chosen value), chosen once per
# module. ``m._arange`` is ``arange(n)`` when the size is known (else empty), ``m._offsets``
# the first index of each sub-space.
def _select_one_hot(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    if mask is None:
        chosen, idx = values.max(-1, keepdim=True)  # the first maximum on ties
    else:
        idx = _masked(values, mask).argmax(-1, keepdim=True)
        chosen = values.gather(-1, idx)
    arange = m._arange
    if arange.shape[0] != values.shape[-1]:  # no spec: the size is only known now
        arange = torch.arange(values.shape[-1], device=values.device)
    return (idx == arange).long(), chosen


def _select_categorical(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    if mask is None:
        chosen, idx = values.max(-1, keepdim=True)
    else:
        idx = _masked(values, mask).argmax(-1, keepdim=True)
        chosen = values.gather(-1, idx)
    return (idx if m._space.keepdim else idx.squeeze(-1)), chosen


def _block_indices(m: Any, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per sub-space argmax, as indices into the full last dimension: ``[..., k]``."""
    scores = values if mask is None else _masked(values, mask)
    idx = torch.cat([blk.argmax(-1, keepdim=True) for blk in scores.split(m._space.nvec, -1)], -1)
    return idx + m._offsets


def _select_mult_one_hot(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    idx = _block_indices(m, values, mask)
    action = torch.zeros(values.shape, dtype=torch.int64, device=values.device)
    action.scatter_(-1, idx, 1)
    return action, values.gather(-1, idx).sum(-1, keepdim=True)


def _select_multi_categorical(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    idx = _block_indices(m, values, mask)
    chosen = values.gather(-1, idx).sum(-1, keepdim=True)
    return idx - m._offsets, chosen


def _select_binary(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    on = values > 0
    if mask is not None:
        on = on & mask
    chosen = torch.where(on, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return on.to(m._space.dtype), chosen.sum(-1, keepdim=True)


_SELECT: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "one-hot": _select_one_hot,
    "categorical": _select_categorical,
    "mult-one-hot": _select_mult_one_hot,
    "multi-categorical": _select_multi_categorical,
    "binary": _select_binary,
}


def _check_rows(m: Any, mask: torch.Tensor) -> None:
    if not bool(mask.any(-1).all()):
        raise ValueError(
            f"{type(m).__name__}: the action mask {m._mask_key!r} has a row where every action "
            "is masked (all False): there is no valid action to pick"
        )


def _check_blocks(m: Any, mask: torch.Tensor) -> None:
    ok = torch.stack([blk.any(-1) for blk in mask.split(m._space.nvec, -1)], -1)
    if not bool(ok.all()):
        raise ValueError(
            f"{type(m).__name__}: the action mask {m._mask_key!r} masks every action of a "
            f"sub-space (sub-space sizes {list(m._space.nvec)}): there is no valid action to pick"
        )


def _check_none(m: Any, mask: torch.Tensor) -> None:
    return None


_CHECK_MASK = {
    "one-hot": _check_rows,
    "categorical": _check_rows,
    "mult-one-hot": _check_blocks,
    "multi-categorical": _check_blocks,
    "binary": _check_none,
}


def _sibling(key: NestedKey, name: str) -> NestedKey:
    """``name`` next to ``key``: ``("agent", "action") -> ("agent", name)``."""
    if isinstance(key, tuple) and len(key) > 1:
        return (*key[:-1], name)
    return name


# --- QValueModule ----------------------------------------------------------------------------
class QValueModule(TDRLModuleBase):
    """Turns action values into the greedy action, in any discrete action space.

    Reads ``action_value_key`` (and ``action_mask_key`` if given), writes
    ``out_keys`` = ``[action, action_value, chosen_action_value]`` (default
    ``["action", action_value_key, "chosen_action_value"]``). The action space
    comes from ``spec`` (a leaf spec, or a ``Composite`` holding the action key)
    or, without spec, from ``action_space`` (one of :data:`ACTION_SPACES`);
    ``var_nums`` gives the sub-space sizes of ``mult-one-hot`` /
    ``multi-categorical`` without spec. ``safe=True`` projects the action into
    the spec. Ties pick the lowest index, so a one-hot action has exactly one 1.
    Called with tensors (``module(action_value=...)``) it returns the tuple of outputs.

    Args:
        action_space: the action space name, when there is no spec.
        action_value_key: where the action values are read (``"action_value"``).
        action_mask_key: where a boolean mask of allowed actions is read (optional).
        out_keys: the action, action-value and chosen-value keys.
        var_nums: sub-space sizes (a list, or an int when a spec gives the count).
        spec: the action spec.
        safe: project the action into the spec.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules import QValueModule
        >>> module = QValueModule(spec=OneHot(3), action_mask_key="mask")
        >>> td = TensorDict(action_value=torch.tensor([[1.0, 5.0, 2.0]]),
        ...                 mask=torch.tensor([[True, False, True]]), batch_size=[1])
        >>> td = module(td)
        >>> td["action"], td["chosen_action_value"]
        (tensor([[0, 0, 1]]), tensor([[2.]]))
        >>> QValueModule(action_space="categorical")(action_value=torch.tensor([0.0, 3.0]))[0]
        tensor(1)
    """

    _default_out = ("action", None, "chosen_action_value")

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        var_nums: int | Sequence[int] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        value_key = normalize_keys(
            action_value_key if action_value_key is not None else "action_value",
            "action_value_key",
        )[0]
        if out_keys is None:
            out = [k if k is not None else value_key for k in self._default_out]
        else:
            out = normalize_keys(out_keys, "out_keys")
            if len(out) not in (2, 3):
                raise ValueError(
                    f"{name} takes 2 or 3 out_keys (action, action value and optionally the "
                    f"chosen action value), got {out}"
                )
        self._action_key = out[0]
        self._value_key = value_key
        self._value_out_key = out[1]
        self._chosen_key = out[2] if len(out) > 2 else None
        self._mask_key = (
            normalize_keys(action_mask_key, "action_mask_key")[0]
            if action_mask_key is not None
            else None
        )
        self.in_keys = [value_key] + ([self._mask_key] if self._mask_key is not None else [])
        self.out_keys = out

        if isinstance(spec, Composite):
            keys = list(spec.keys(include_nested=True, leaves_only=True))
            if self._action_key not in keys:
                raise KeyError(
                    f"{name}: the Composite spec has no entry for the action key "
                    f"{self._action_key!r}; its keys: {keys}"
                )
            leaf: TensorSpec | None = spec[self._action_key]
        else:
            leaf = spec
        self._space = resolve_action_space(action_space, leaf, var_nums, name)
        if leaf is None and isinstance(action_space, TensorSpec):
            leaf = action_space
        self.action_space = self._space.name
        self.var_nums = var_nums
        self.spec = Composite({self._action_key: leaf}) if leaf is not None else None
        if safe and leaf is None:
            raise ValueError(f"{name}(safe=True) needs a spec to project the action into")
        self.safe = safe
        self._leaf = leaf
        self._project = leaf.project if (safe and leaf is not None) else None
        self._select = _SELECT[self._space.name]
        self._check_mask = _CHECK_MASK[self._space.name]
        self._n_values = self._space.n_values
        nvec = self._space.nvec or (0,)
        starts = [sum(nvec[:i]) for i in range(len(nvec))]
        self.register_buffer("_offsets_buf", torch.tensor(starts), persistent=False)
        self.register_buffer("_arange_buf", torch.arange(self._n_values or 0), persistent=False)
        self._refresh()

    def _refresh(self) -> None:
        # plain attributes for the per-call path (buffer lookups go through nn.Module.__getattr__)
        self._offsets = self._offsets_buf
        self._arange = self._arange_buf

    def _apply(self, *args: Any, **kwargs: Any) -> QValueModule:
        out = super()._apply(*args, **kwargs)
        self._refresh()
        device = self._offsets.device
        if self._leaf is not None and self._leaf.device not in (None, device):
            self._leaf = self._leaf.to(device)
            self.spec = Composite({self._action_key: self._leaf})
            self._project = self._leaf.project if self.safe else None
        return out

    # the per-call path ------------------------------------------------------------------
    def _read(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor | None]:
        values = get_or_none(td, self._value_key)
        if values is None:
            raise missing_key_error(self, self._value_key, td)
        if self._mask_key is None:
            return values, None
        mask = get_or_none(td, self._mask_key)
        if mask is None:
            raise missing_key_error(self, self._mask_key, td)
        return values, mask

    def _prepare_mask(self, mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if mask.dtype is not torch.bool:
            mask = mask.to(torch.bool)
        if mask.shape[-1:] != scores.shape[-1:]:
            raise ValueError(
                f"{type(self).__name__}: the action mask {self._mask_key!r} has shape "
                f"{tuple(mask.shape)}, expected the action values' shape {tuple(scores.shape)}"
            )
        self._check_mask(self, mask)
        return mask

    def _bad_values(self, values: torch.Tensor) -> ValueError:
        expected = (
            f"a last dimension of {self._n_values} (from the spec)"
            if self._n_values is not None
            else "at least one dimension"
        )
        return ValueError(
            f"{type(self).__name__}: the action values {self._value_key!r} have shape "
            f"{tuple(values.shape)}, expected {expected}"
        )

    def _write(
        self, td: TensorDictBase, values: torch.Tensor, action: torch.Tensor, chosen: torch.Tensor
    ) -> TensorDictBase:
        if self._project is not None:
            action = self._project(action).to(self._space.dtype)
        set_value(td, self._action_key, action)
        if self._value_out_key != self._value_key:
            set_value(td, self._value_out_key, values)
        if self._chosen_key is not None:
            set_value(td, self._chosen_key, chosen)
        return td

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        values = get_or_none(td, self._value_key)
        if values is None:
            raise missing_key_error(self, self._value_key, td)
        return self._act(td, values)

    def _act(self, td: TensorDictBase, values: torch.Tensor) -> TensorDictBase:
        """Picks and writes the action for ``values`` (already read from ``td``)."""
        shape = values.shape
        if not shape or (self._n_values is not None and shape[-1] != self._n_values):
            raise self._bad_values(values)
        if self._mask_key is None:
            action, chosen = self._select(self, values, None)
        else:
            mask = get_or_none(td, self._mask_key)
            if mask is None:
                raise missing_key_error(self, self._mask_key, td)
            action, chosen = self._select(self, values, self._prepare_mask(mask, values))
        if self._project is not None:
            action = self._project(action).to(self._space.dtype)
        set_value(td, self._action_key, action)
        if self._value_out_key != self._value_key:
            set_value(td, self._value_out_key, values)
        if self._chosen_key is not None:
            set_value(td, self._chosen_key, chosen)
        return td

    def extra_repr(self) -> str:
        return (
            f"action_space={self.action_space!r}, in_keys={self.in_keys}, "
            f"out_keys={self.out_keys}, safe={self.safe}"
        )


class DistributionalQValueModule(QValueModule):
    """Greedy action from distributional action values (log-probabilities over atoms).

    The action values ``[..., n_atoms, n_values]`` are log-probabilities over
    ``support`` (``n_atoms`` values) along dimension -2; the action maximises
    the expected value ``sum(exp(log_p) * support)``, in any action space of
    :class:`QValueModule`, with the same masks. ``out_keys`` default to
    ``["action", action_value_key]``; a third key receives the chosen expected value.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules import DistributionalQValueModule
        >>> support = torch.tensor([-1.0, 0.0, 1.0])
        >>> module = DistributionalQValueModule(spec=OneHot(2), support=support)
        >>> probs = torch.tensor([[0.8, 0.1], [0.1, 0.1], [0.1, 0.8]])  # atoms x actions
        >>> td = module(TensorDict(action_value=probs.log(), batch_size=[]))
        >>> td["action"]
        tensor([0, 1])
    """

    _default_out = ("action", None)

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        support: torch.Tensor | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        var_nums: int | Sequence[int] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
    ) -> None:
        if support is None:
            raise TypeError(f"{type(self).__name__} needs a support tensor (the atom values)")
        support = torch.as_tensor(support)
        if support.ndim != 1 or support.numel() < 1:
            raise ValueError(
                f"support must be a 1-d tensor of atom values, got shape {tuple(support.shape)}"
            )
        super().__init__(
            action_space=action_space,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
            out_keys=out_keys,
            var_nums=var_nums,
            spec=spec,
            safe=safe,
        )
        self.register_buffer("support", support.clone())

    def expected_values(self, values: torch.Tensor) -> torch.Tensor:
        """``[..., n_atoms, n] -> [..., n]``: the expected value of each action."""
        support = self.support
        if values.dim() < 2 or values.shape[-2] != support.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: the action values {self._value_key!r} have shape "
                f"{tuple(values.shape)}, expected [..., {support.shape[0]} atoms, n_actions]"
            )
        return (values.exp() * support.to(values.dtype).unsqueeze(-1)).sum(-2)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        values, mask = self._read(td)
        expected = self.expected_values(values)
        if self._n_values is not None and expected.shape[-1] != self._n_values:
            raise self._bad_values(values)
        if mask is not None:
            mask = self._prepare_mask(mask, expected)
        action, chosen = self._select(self, expected, mask)
        return self._write(td, values, action, chosen)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_atoms={self.support.numel()}"


# --- actors ----------------------------------------------------------------------------------
def _action_key_from_spec(spec: TensorSpec | None) -> NestedKey:
    """The action key of an actor: ``"action"``, or the single leaf of a Composite spec."""
    if isinstance(spec, Composite):
        keys = list(spec.keys(include_nested=True, leaves_only=True))
        if "action" in keys:
            return "action"
        if len(keys) == 1:
            return normalize_keys(keys[0], "spec key")[0]
        raise KeyError(
            "a Composite spec given to a Q-value actor must hold an 'action' entry or a single "
            f"leaf (the action); its keys: {keys}"
        )
    return "action"


def _network_step(
    module: Any,
    in_keys: Sequence[NestedKey] | None,
    action_value_key: NestedKey | None,
    default_value_key: NestedKey,
    owner: str,
) -> tuple[TensorDictModuleBase, NestedKey]:
    """Returns the network as a TensorDict module and the key its action values land in."""
    if isinstance(module, TensorDictModuleBase):
        outs = list(module.out_keys)
        if action_value_key is not None:
            key = normalize_keys(action_value_key, "action_value_key")[0]
            if key not in outs:
                raise KeyError(
                    f"{owner}: action_value_key {key!r} is not among the module's out_keys {outs}"
                )
        elif default_value_key in outs:
            key = default_value_key
        elif len(outs) == 1:
            key = outs[0]
        else:
            raise KeyError(
                f"{owner}: cannot tell which of the module's out_keys {outs} holds the action "
                "values; pass action_value_key"
            )
        if in_keys is not None and normalize_keys(in_keys, "in_keys") != list(module.in_keys):
            raise ValueError(
                f"{owner}: in_keys={list(in_keys)} only apply to a plain nn.Module; the given "
                f"TensorDict module reads its own in_keys {list(module.in_keys)}"
            )
        return module, key
    if not callable(module) or isinstance(module, type):
        raise TypeError(f"{owner}: module must be an nn.Module or a TensorDict module, got {module!r}")
    key = normalize_keys(
        action_value_key if action_value_key is not None else default_value_key,
        "action_value_key",
    )[0]
    keys = in_keys if in_keys is not None else ["observation"]
    return SafeModule(module, in_keys=keys, out_keys=[key]), key


def _actor_steps(
    owner: str,
    head_cls: type[QValueModule],
    writes: str,
    module: Any,
    in_keys: Sequence[NestedKey] | None,
    action_value_key: NestedKey | None,
    out_keys: Any,
    spec: TensorSpec | None,
    with_chosen: bool,
    **head_kwargs: Any,
) -> tuple[TensorDictModuleBase, NestedKey, QValueModule]:
    """The network step, its action-value key and the Q-value step (``head_cls``) of an actor.

    ``writes`` lists the actor's outputs for the error raised when ``out_keys`` is given.
    """
    if out_keys is not None:
        raise TypeError(
            f"{owner} does not take out_keys: it writes {writes} "
            f"(use {head_cls.__name__} for custom keys)"
        )
    action_key = _action_key_from_spec(spec)
    net, value_key = _network_step(
        module, in_keys, action_value_key, _sibling(action_key, "action_value"), owner
    )
    keys = [action_key, value_key]
    if with_chosen:
        keys.append(_sibling(action_key, "chosen_action_value"))
    head = head_cls(action_value_key=value_key, out_keys=keys, spec=spec, **head_kwargs)
    return net, value_key, head


class QValueActor(SafeSequential):
    """A Q-value actor: a network that writes action values, then :class:`QValueModule`.

    ``module`` is either a plain ``nn.Module`` (wrapped so that it reads
    ``in_keys``, default ``["observation"]``, and writes ``action_value_key``,
    default ``"action_value"``) or a TensorDict module. For a TensorDict
    module, the Q-value step reads ``action_value_key`` if given (it must be
    one of the module's out_keys), else its ``"action_value"`` output, else
    its only output; the module itself is not modified. The actor's out_keys
    are the module's out_keys followed by ``"action"`` and
    ``"chosen_action_value"``. With a ``Composite`` spec, its ``"action"``
    entry (or single leaf, e.g. ``("agent", "action")``) names the action key,
    and the chosen value goes next to it. ``out_keys`` cannot be passed.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torch import nn
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules.tensordict_module.actors import QValueActor
        >>> from tdrl.utils import detailed_repr
        >>> printing = detailed_repr().set()  # print TensorDicts as TorchRL's page does
        >>> td = TensorDict({'observation': torch.randn(5, 4)}, [5])
        >>> # with a regular nn.Module
        >>> module = nn.Linear(4, 4)
        >>> action_spec = OneHot(4)
        >>> qvalue_actor = QValueActor(module=module, spec=action_spec)
        >>> td = qvalue_actor(td)
        >>> print(td)
        TensorDict(
            fields={
                action: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.int64, is_shared=False),
                action_value: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                chosen_action_value: Tensor(shape=torch.Size([5, 1]), device=cpu, dtype=torch.float32, is_shared=False),
                observation: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([5]),
            device=None,
            is_shared=False)
        >>> # with a TensorDictModule
        >>> from tensordict.nn import TensorDictModule
        >>> td = TensorDict({'obs': torch.randn(5, 4)}, [5])
        >>> module = TensorDictModule(lambda x: x, in_keys=["obs"], out_keys=["action_value"])
        >>> action_spec = OneHot(4)
        >>> qvalue_actor = QValueActor(module=module, spec=action_spec)
        >>> td = qvalue_actor(td)
        >>> print(td)
        TensorDict(
            fields={
                action: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.int64, is_shared=False),
                action_value: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                chosen_action_value: Tensor(shape=torch.Size([5, 1]), device=cpu, dtype=torch.float32, is_shared=False),
                obs: Tensor(shape=torch.Size([5, 4]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([5]),
            device=None,
            is_shared=False)
        >>> printing.unset()
    """

    def __init__(
        self,
        module: nn.Module | TensorDictModuleBase,
        *,
        in_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
        action_space: str | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        var_nums: int | Sequence[int] | None = None,
        out_keys: Any = None,
    ) -> None:
        net, _, head = _actor_steps(
            type(self).__name__, QValueModule,
            "the action, the action values and the chosen action value",
            module, in_keys, action_value_key, out_keys, spec, with_chosen=True,
            action_space=action_space, action_mask_key=action_mask_key, var_nums=var_nums,
            safe=safe,
        )
        super().__init__(net, head)

    def _rebuild(self) -> None:
        super()._rebuild()
        # fused path: network wrapped here (one input, one output) + Q-value step
        net, head = self.module[0], self.module[-1]
        self._fused = None
        if (
            len(self.module) == 2
            and type(net) is SafeModule
            and type(head) is QValueModule
            and net._kw_names is None
            and len(net.in_keys) == 1
            and net.out_keys == [head._value_key]
            and not net._projector
        ):
            self._fused = (net, head, net._call, net.in_keys[0], head._value_key)

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        fused = self._fused
        if fused is None:
            return super()._run(td)
        net, head, call, in_key, value_key = fused
        if not (hook_free(net) and hook_free(head)):
            return super()._run(td)
        for key in self._late_inputs:  # the mask: checked before anything is written
            if get_or_none(td, key) is None:
                raise missing_key_error(head, key, td)
        obs = get_or_none(td, in_key)
        if obs is None:
            raise missing_key_error(net, in_key, td)
        values = call(obs)
        if type(values) is not torch.Tensor:
            write_outputs(td, [value_key], values, net)
            return head._run(td)
        set_value(td, value_key, values)
        return head._act(td, values)

    @property
    def qvalue_module(self) -> QValueModule:
        """The Q-value step (the last module)."""
        return self.module[-1]


class _AtomLogSoftmax(TDRLModuleBase):
    """Log-softmax over the atoms (dimension -2) of distributional action values, in place."""

    def __init__(self, key: NestedKey) -> None:
        super().__init__()
        self.in_keys = [key]
        self.out_keys = [key]
        self._key = key

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        values = get_or_none(td, self._key)
        if values is None:
            raise missing_key_error(self, self._key, td)
        return set_value(td, self._key, torch.log_softmax(values, dim=-2))


class DistributionalQValueActor(SafeSequential):
    """A distributional Q-value actor: network, log-softmax over atoms, then the Q-value step.

    The network writes ``[..., n_atoms, n_actions]`` logits under
    ``action_value_key``; with ``make_log_softmax=True`` (default) they are
    turned into log-probabilities along dimension -2; then
    :class:`DistributionalQValueModule` writes the action maximising the
    expected value over ``support``. Module and key rules are those of
    :class:`QValueActor`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torch import nn
        >>> from tdrl.data import OneHot
        >>> from tdrl.modules import DistributionalQValueActor
        >>> net = nn.Sequential(nn.Linear(4, 3 * 2), nn.Unflatten(-1, (3, 2)))
        >>> actor = DistributionalQValueActor(net, support=torch.linspace(-1, 1, 3), spec=OneHot(2))
        >>> td = actor(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))
        >>> td["action"].shape, td["action_value"].shape
        (torch.Size([5, 2]), torch.Size([5, 3, 2]))
        >>> bool(torch.allclose(td["action_value"].exp().sum(-2), torch.ones(5, 2)))
        True
    """

    def __init__(
        self,
        module: nn.Module | TensorDictModuleBase,
        support: torch.Tensor,
        *,
        in_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
        safe: bool = False,
        var_nums: int | Sequence[int] | None = None,
        action_space: str | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        make_log_softmax: bool = True,
        out_keys: Any = None,
    ) -> None:
        net, value_key, head = _actor_steps(
            type(self).__name__, DistributionalQValueModule, "the action and the action values",
            module, in_keys, action_value_key, out_keys, spec, with_chosen=False,
            action_space=action_space, action_mask_key=action_mask_key, var_nums=var_nums,
            safe=safe, support=support,
        )
        modules = [net, _AtomLogSoftmax(value_key), head] if make_log_softmax else [net, head]
        super().__init__(*modules)
        self.make_log_softmax = make_log_softmax

    @property
    def qvalue_module(self) -> DistributionalQValueModule:
        """The Q-value step (the last module)."""
        return self.module[-1]


# --- hooks -----------------------------------------------------------------------------------
class QValueHook:
    """The Q-value step as a forward hook.

    Hooked on a plain ``nn.Module`` that returns action values, it replaces
    the output by ``(action, action_values, chosen_action_value)``, so a
    ``TensorDictModule`` around that module with out_keys
    ``["action", "action_value", "chosen_action_value"]`` writes all three.
    Hooked on a TensorDict module, it runs :class:`QValueModule` on the output
    TensorDict (masks are read from it). Arguments are those of :class:`QValueModule`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torch import nn
        >>> from tdrl.modules import QValueHook
        >>> net = nn.Linear(4, 4)
        >>> _ = net.register_forward_hook(QValueHook("one_hot"))
        >>> module = TensorDictModule(net, in_keys=["observation"],
        ...                           out_keys=["action", "action_value", "chosen_action_value"])
        >>> td = module(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))
        >>> td["action"].sum(-1)
        tensor([1, 1, 1, 1, 1])
    """

    _module_class: type[QValueModule] = QValueModule

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        var_nums: int | Sequence[int] | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
        **kwargs: Any,
    ) -> None:
        self.qvalue_model = self._module_class(
            action_space=action_space,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
            out_keys=out_keys,
            var_nums=var_nums,
            spec=spec,
            **kwargs,
        )

    def _from_tensor(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.qvalue_model
        shape = values.shape
        if not shape or (m._n_values is not None and shape[-1] != m._n_values):
            raise m._bad_values(values)
        action, chosen = m._select(m, values, None)
        return action, values, chosen

    def __call__(self, net: nn.Module, observation: Any, values: Any) -> Any:
        m = self.qvalue_model
        if isinstance(values, TensorDictBase):
            return m._run(values)
        if m._mask_key is not None:
            raise ValueError(
                f"{type(self).__name__} with action_mask_key={m._mask_key!r} must be hooked on a "
                "TensorDict module (the mask is read from its output TensorDict); it was hooked "
                f"on {type(net).__name__}, which returned a {type(values).__name__}"
            )
        return self._from_tensor(values)


class DistributionalQValueHook(QValueHook):
    """The distributional Q-value step as a forward hook; see :class:`QValueHook`.

    On a plain module it returns ``(action, action_values)``.

    Examples:
        >>> import torch
        >>> from tdrl.modules import DistributionalQValueHook
        >>> hook = DistributionalQValueHook("categorical", support=torch.tensor([0.0, 1.0]))
        >>> log_p = torch.tensor([[0.9, 0.2], [0.1, 0.8]]).log()  # atoms x actions
        >>> hook(None, None, log_p)[0]
        tensor(1)
    """

    _module_class = DistributionalQValueModule

    def __init__(
        self,
        action_space: str | TensorSpec | None = None,
        support: torch.Tensor | None = None,
        var_nums: int | Sequence[int] | None = None,
        action_value_key: NestedKey | None = None,
        action_mask_key: NestedKey | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        spec: TensorSpec | None = None,
    ) -> None:
        super().__init__(
            action_space=action_space,
            var_nums=var_nums,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
            out_keys=out_keys,
            spec=spec,
            support=support,
        )

    def _from_tensor(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.qvalue_model
        expected = m.expected_values(values)
        if m._n_values is not None and expected.shape[-1] != m._n_values:
            raise m._bad_values(values)
        action, _ = m._select(m, expected, None)
        return action, values
