"""Discrete action spaces for the Q-value modules: what they are and how a greedy pick is made.

An :class:`ActionSpace` is decided once, at construction, from a spec and/or an
``action_space`` name (:func:`resolve_action_space`). The per-call work is one
*selection function* per space, ``(module, values, mask) -> (action, chosen
value, probe)``, and one mask check per space, both picked at construction. The mask
checks read tensor values, so they are skipped while ``torch.compile`` or
``torch.export`` traces (a graph cannot branch on values).

Examples:
    >>> import torch
    >>> from tdrl.data import MultiOneHot
    >>> space = resolve_action_space(None, MultiOneHot([2, 3]))
    >>> space.name, space.nvec, space.n_values
    ('mult-one-hot', (2, 3), 5)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.utils import NestedKey

from tdrl.data.tensor_specs import (
    Binary,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
)
from tdrl.modules.distributions.bounds import _is_compiling

__all__ = [
    "ACTION_SPACES",
    "ActionSpace",
    "resolve_action_space",
    "action_key_of",
    "SELECT",
    "CHECK_MASK",
    "PROBED_MASK",
    "masked",
]

#: The valid ``action_space`` names (``_`` may be used instead of ``-``).
ACTION_SPACES = ("one-hot", "mult-one-hot", "binary", "categorical", "multi-categorical")
_ALIASES = {"multi-one-hot": "mult-one-hot", "multicategorical": "multi-categorical"}
_MULTI = ("mult-one-hot", "multi-categorical")

# TorchRL's phrases, kept at the start of tdrl's messages (its tests match them)
_UNKNOWN = "action_space was not specified/not compatible"
_NEITHER = "Neither action_space nor spec was defined"
_MISMATCH = "The action spec and the action space do not match"


@dataclass(frozen=True)
class ActionSpace:
    """What the Q-value step needs to know about a discrete action space.

    ``nvec`` holds the sub-space sizes (one entry for single spaces, ``None``
    when unknown: an ``action_space`` name without spec); ``n_values`` is the
    expected size of the action values' last dimension (``None``: not checked);
    ``keepdim`` keeps a trailing singleton dimension on categorical actions.

    Examples:
        >>> ActionSpace("categorical", (4,)).n_values
        4
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
            f"{_UNKNOWN}: unknown action_space {action_space!r}; valid action spaces: "
            f"{list(ACTION_SPACES)}"
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
        f"{_UNKNOWN}: {owner} cannot pick discrete actions in a {type(spec).__name__} spec; "
        "it needs one of OneHot, Categorical, MultiOneHot, MultiCategorical or Binary"
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


def action_key_of(spec: Composite, owner: str = "QValueModule") -> NestedKey:
    """The action entry of a ``Composite``: ``"action"``, else the first leaf named ``action``.

    Examples:
        >>> from tdrl.data import Composite, OneHot
        >>> action_key_of(Composite(agent=Composite(action=OneHot(2))))
        ('agent', 'action')
    """
    keys = list(spec.keys(include_nested=True, leaves_only=True))
    if "action" in keys:
        return "action"
    for key in keys:
        if isinstance(key, tuple) and key[-1] == "action":
            return key
    raise KeyError(
        f"action could not be found in the spec: {owner} needs a leaf spec or a Composite "
        f"with an 'action' entry; its keys: {keys}"
    )


def resolve_action_space(
    action_space: str | TensorSpec | None,
    spec: TensorSpec | None,
    var_nums: int | Sequence[int] | None = None,
    owner: str = "QValueModule",
) -> ActionSpace:
    """Decides the action space from a leaf ``spec`` and/or an ``action_space`` name.

    The spec decides; ``action_space`` alone is enough without spec; the two
    must agree. ``var_nums`` gives the sub-space sizes of ``mult-one-hot`` /
    ``multi-categorical`` when there is no spec (without it, the module raises
    when it is called).

    Examples:
        >>> from tdrl.data import Categorical, MultiOneHot
        >>> resolve_action_space(None, MultiOneHot([2, 3])).nvec
        (2, 3)
        >>> resolve_action_space("categorical", Categorical(4, shape=(1,))).keepdim
        True
        >>> resolve_action_space("one-hot", Categorical(4))
        Traceback (most recent call last):
        ...
        ValueError: The action spec and the action space do not match: QValueModule was given a Categorical spec (action space 'categorical') and action_space='one-hot'; pass one of them, or make them agree
    """
    if isinstance(action_space, Composite):
        raise ValueError(
            f"action_space cannot be of type Composite ({owner}): pass the Composite as spec"
        )
    if isinstance(action_space, TensorSpec):
        if spec is not None and spec is not action_space:
            raise ValueError(
                "Passing an action_space as a TensorSpec and a spec isn't allowed, unless they "
                f"match: {owner} got action_space={type(action_space).__name__} and "
                f"spec={type(spec).__name__}; pass the spec only"
            )
        action_space, spec = None, action_space
    if spec is None:
        if action_space is None:
            raise ValueError(
                f"{_NEITHER}: {owner} needs a spec or an action_space (one of "
                f"{list(ACTION_SPACES)})"
            )
        name = _space_name(action_space)
        nvec = _var_nums_nvec(var_nums) if name in _MULTI and var_nums is not None else None
        return ActionSpace(name, nvec)
    if isinstance(spec, Composite):
        spec = spec[action_key_of(spec, owner)]
    name = _spec_space_name(spec, owner)
    if action_space is not None:
        asked = _space_name(action_space)
        if asked != name:
            raise ValueError(
                f"{_MISMATCH}: {owner} was given a {type(spec).__name__} spec (action space "
                f"{name!r}) and action_space={action_space!r}; pass one of them, or make them agree"
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


def _process_action_space_spec(
    action_space: str | TensorSpec | None, spec: TensorSpec | None
) -> tuple[str, TensorSpec | None]:
    """TorchRL's helper: checks ``action_space`` against ``spec``; returns ``(name, spec)``.

    Examples:
        >>> from tdrl.data import OneHot
        >>> _process_action_space_spec("one_hot", None)
        ('one-hot', None)
    """
    space = resolve_action_space(action_space, spec)
    if isinstance(action_space, TensorSpec) and spec is None:
        spec = action_space
    return space.name, spec


def masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked entries become -inf, allowed ones at least the lowest finite value.

    Examples:
        >>> out = masked(torch.tensor([1.0, float("-inf")]), torch.tensor([False, True]))
        >>> out[0].item(), out[1].item() == torch.finfo(torch.float32).min
        (-inf, True)
    """
    lowest = torch.finfo(values.dtype).min
    return torch.where(mask, values.clamp_min(lowest), float("-inf"))


# Selection functions: (module, values, mask) -> (action, chosen value), chosen once per
# module. ``m._arange`` is ``arange(n)`` when the size is known (else empty), ``m._offsets``
# the first index of each sub-space.
def _pick(values: torch.Tensor, mask: torch.Tensor | None):
    """``(index, chosen value, probe)`` of the greedy pick along the last dimension.

    With a mask, the probe is the best masked score: ``-inf`` on a row where
    every action is masked, NaN where an allowed value is NaN.
    """
    if mask is None:
        chosen, idx = values.max(-1, keepdim=True)  # the first maximum on ties
        return idx, chosen, chosen
    best, idx = masked(values, mask).max(-1, keepdim=True)
    return idx, values.gather(-1, idx), best


def _select_one_hot(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    idx, chosen, probe = _pick(values, mask)
    arange = m._arange
    if arange.shape[0] != values.shape[-1]:  # no spec: the size is only known now
        arange = torch.arange(values.shape[-1], device=values.device)
    return (idx == arange).long(), chosen, probe


def _select_categorical(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    idx, chosen, probe = _pick(values, mask)
    return (idx if m._space.keepdim else idx.squeeze(-1)), chosen, probe


def _nvec(m: Any) -> tuple[int, ...]:
    nvec = m._space.nvec
    if nvec is None:
        raise ValueError(
            f"{type(m).__name__}: action_space={m._space.name!r} without a spec needs var_nums, "
            "the list of sub-space sizes (or pass a MultiOneHot / MultiCategorical spec)"
        )
    return nvec


def _block_indices(m: Any, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per sub-space argmax, as indices into the full last dimension: ``[..., k]``."""
    scores = values if mask is None else masked(values, mask)
    idx = torch.cat([blk.argmax(-1, keepdim=True) for blk in scores.split(_nvec(m), -1)], -1)
    return idx + m._offsets


def _select_mult_one_hot(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    idx = _block_indices(m, values, mask)
    action = torch.zeros(values.shape, dtype=torch.int64, device=values.device)
    action.scatter_(-1, idx, 1)
    chosen = values.gather(-1, idx).sum(-1, keepdim=True)
    return action, chosen, chosen


def _select_multi_categorical(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    idx = _block_indices(m, values, mask)
    chosen = values.gather(-1, idx).sum(-1, keepdim=True)
    return idx - m._offsets, chosen, chosen


def _select_binary(m: Any, values: torch.Tensor, mask: torch.Tensor | None):
    on = values > 0
    if mask is not None:
        on = on & mask
    chosen = torch.where(on, values, torch.zeros((), dtype=values.dtype, device=values.device))
    # the chosen value sums only the bits set: the probe is every value
    return on.to(m._space.dtype), chosen.sum(-1, keepdim=True), values


#: space name -> selection function ``(module, values, mask) -> (action, chosen value, probe)``;
#: the probe's sum is finite unless a value read is NaN / infinite or a row is fully masked.
SELECT: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {
    "one-hot": _select_one_hot,
    "categorical": _select_categorical,
    "mult-one-hot": _select_mult_one_hot,
    "multi-categorical": _select_multi_categorical,
    "binary": _select_binary,
}


def _check_rows(m: Any, mask: torch.Tensor, owner: str) -> None:
    if not _is_compiling() and not bool(mask.any(-1).all()):
        raise ValueError(
            f"{owner}: the action mask {m._mask_key!r} has a row where every action "
            "is masked (all False): there is no valid action to pick"
        )


def _check_blocks(m: Any, mask: torch.Tensor, owner: str) -> None:
    if _is_compiling():
        return
    ok = torch.stack([blk.any(-1) for blk in mask.split(_nvec(m), -1)], -1)
    if not bool(ok.all()):
        raise ValueError(
            f"{owner}: the action mask {m._mask_key!r} masks every action of a "
            f"sub-space (sub-space sizes {list(m._space.nvec)}): there is no valid action to pick"
        )


def _check_none(m: Any, mask: torch.Tensor, owner: str) -> None:
    return None


#: space name -> mask check ``(module, mask, owner name) -> None`` (raises on a fully masked row;
#: skipped while torch.compile / torch.export trace).
CHECK_MASK = {
    "one-hot": _check_rows,
    "categorical": _check_rows,
    "mult-one-hot": _check_blocks,
    "multi-categorical": _check_blocks,
    "binary": _check_none,
}

#: spaces whose selection probe is ``-inf`` on a fully masked row, so the mask check can wait
#: until the probe is not finite (one read per call for both checks).
PROBED_MASK = frozenset({"one-hot", "categorical"})
