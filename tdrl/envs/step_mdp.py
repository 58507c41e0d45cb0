"""``step_mdp``: the TensorDict of step ``t + 1`` from the TensorDict of step ``t``.

A pure TensorDict helper (no env): the entries under ``"next"`` move to the
root, and by default the other root entries stay, except the action (it
belongs to step ``t``) and the reward (it is the transition's). This is how a
recurrent module's ``("next", state)`` becomes the ``state`` it reads at the
next step.
"""
from __future__ import annotations

from collections.abc import Sequence

from tensordict import TensorDictBase, is_tensor_collection
from tensordict.utils import NestedKey, unravel_key

__all__ = ["step_mdp"]


def _keyset(keys: NestedKey | Sequence[NestedKey]) -> set[tuple[str, ...]]:
    if isinstance(keys, (str, tuple)):
        keys = [keys]
    out = set()
    for key in keys:
        key = unravel_key(key)
        out.add((key,) if isinstance(key, str) else tuple(key))
    return out


def _merge(src: TensorDictBase, dest: TensorDictBase, prefix: tuple[str, ...],
           excluded: set[tuple[str, ...]], skip_next: bool) -> bool:
    """Copies ``src``'s entries into ``dest`` (recursively), leaving ``excluded`` keys out.

    Returns whether anything was written (empty sub-TensorDicts are dropped).
    """
    wrote = False
    for key in list(src.keys()):
        if skip_next and not prefix and key == "next":
            continue
        full = (*prefix, key)
        if full in excluded:
            continue
        value = src.get(key)
        if is_tensor_collection(value) and hasattr(value, "keys") and not _is_non_tensor(value):
            sub = dest.get(key, None)
            fresh = sub is None or not is_tensor_collection(sub)
            if fresh:
                sub = value.empty()
            if _merge(value, sub, full, excluded, False):
                if fresh:
                    dest.set(key, sub)
                wrote = True
        else:
            dest.set(key, value)
            wrote = True
    return wrote


def _is_non_tensor(value: object) -> bool:
    return type(value).__name__ in ("NonTensorData", "NonTensorStack")


def step_mdp(
    tensordict: TensorDictBase,
    next_tensordict: TensorDictBase | None = None,
    keep_other: bool = True,
    exclude_reward: bool = True,
    exclude_done: bool = False,
    exclude_action: bool = True,
    reward_keys: NestedKey | Sequence[NestedKey] = "reward",
    done_keys: NestedKey | Sequence[NestedKey] = "done",
    action_keys: NestedKey | Sequence[NestedKey] = "action",
) -> TensorDictBase:
    """A new TensorDict for step ``t + 1``: the ``"next"`` entries at the root, plus the rest.

    Args:
        tensordict: step ``t``, with a ``"next"`` sub-TensorDict.
        next_tensordict: if given, the result is written into it and returned.
        keep_other: keep the root entries other than ``"next"`` (where ``"next"``
            has the same key, its value wins). Default ``True``.
        exclude_reward: leave the ``reward_keys`` out. Default ``True``.
        exclude_done: leave the ``done_keys`` out. Default ``False``.
        exclude_action: leave the ``action_keys`` out (with ``keep_other=False``
            and ``exclude_action=False`` the action is still copied). Default ``True``.
        reward_keys, done_keys, action_keys: the keys those flags name.

    The tensors are shared, not copied. The result has the batch size of
    ``tensordict["next"]``. A missing ``"next"`` raises ``KeyError`` naming the keys present.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> td = TensorDict(obs=torch.zeros(2), action=torch.ones(2), h=torch.zeros(2),
        ...                 next=TensorDict(obs=torch.ones(2), h=torch.full((2,), 5.0),
        ...                                 reward=torch.ones(2), batch_size=[2]),
        ...                 batch_size=[2])
        >>> out = step_mdp(td)
        >>> sorted(out.keys()), out["h"].tolist()
        (['h', 'obs'], [5.0, 5.0])
        >>> sorted(step_mdp(td, exclude_reward=False, exclude_action=False).keys())
        ['action', 'h', 'obs', 'reward']
        >>> sorted(step_mdp(td, keep_other=False).keys())
        ['h', 'obs']
    """
    nxt = tensordict.get("next", None)
    if nxt is None or not is_tensor_collection(nxt):
        present = sorted(str(k) for k in tensordict.keys(include_nested=True, leaves_only=True))
        raise KeyError(f"step_mdp: the TensorDict has no 'next' sub-TensorDict; keys present: "
                       f"{present}")
    excluded: set[tuple[str, ...]] = set()
    if exclude_reward:
        excluded |= _keyset(reward_keys)
    if exclude_done:
        excluded |= _keyset(done_keys)
    if exclude_action:
        excluded |= _keyset(action_keys)
    out = nxt.empty()
    if keep_other:
        _merge(tensordict, out, (), excluded, True)
    elif not exclude_action:
        actions = _keyset(action_keys)
        for key in actions:
            value = tensordict.get(key, None)
            if value is not None:
                out.set(key, value)
    _merge(nxt, out, (), excluded, False)
    if next_tensordict is not None:
        return next_tensordict.update(out)
    return out
