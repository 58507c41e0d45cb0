"""``MultiStepActorWrapper``: plays an actor's action chunks one step at a time.

An actor that outputs a chunk of future actions (shape ``[*batch, T, *action]``: a macro,
an action-chunking policy such as a VLA) is called once, its chunk is cached in the
TensorDict, and each following call hands out the next action of the cache without
calling the actor. A per-environment counter (next to the init key) says which action is
due; an environment that resets (its ``is_init`` entry is True) re-plans at once, the
others keep their cache.

Key resolution, done once at construction:

- *chunk keys*: the actor's out_keys that hold chunks: ``chunk_keys`` if given, else the
  VLA-style keys ending in ``("vla_action", "chunk")``, else keys ending in ``"_chunk"``,
  else keys ending in ``"action"``;
- *action keys*: where the current action is written: ``action_keys`` if given, else
  derived from the chunk keys (``("vla_action", "chunk")`` -> ``"action"``,
  ``"x_chunk"`` -> ``"x"``, an ``"action"`` key -> itself);
- *cache keys*: the chunk key itself when it differs from its action key; otherwise the
  action key with ``"_orig"`` appended (the actor's ``"action"`` chunk is moved to
  ``"action_orig"`` and ``"action"`` receives one step of it).
"""
from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, expand_as_right, unravel_key

from tdrl.modules.tensordict_module.core import TDRLModuleBase, key_tuple

__all__ = ["MultiStepActorWrapper"]


def _last(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]


def _with_last(key: NestedKey, last: str) -> NestedKey:
    return last if isinstance(key, str) else (*key[:-1], last)


def _is_vla_chunk(key: NestedKey) -> bool:
    return isinstance(key, tuple) and len(key) >= 2 and key[-2:] == ("vla_action", "chunk")


def _action_key_for(chunk_key: NestedKey) -> NestedKey:
    """The env action key a chunk key feeds (see the module docstring)."""
    if _is_vla_chunk(chunk_key):
        return "action"
    last = _last(chunk_key)
    if last.endswith("_chunk") and len(last) > len("_chunk"):
        return _with_last(chunk_key, last[: -len("_chunk")])
    return chunk_key


def _keys(value: NestedKey | Sequence[NestedKey] | None) -> list[NestedKey] | None:
    if value is None:
        return None
    if isinstance(value, (str, tuple)):
        value = [value]
    return [unravel_key(k) for k in value]


class MultiStepActorWrapper(TDRLModuleBase):
    """Runs an actor that outputs chunks of ``n_steps`` actions, one action per call.

    The actor's chunk entries carry a time dimension right after the batch dimensions of
    the TensorDict that holds them. The input needs the ``init_key`` entry (``"is_init"``,
    written by TorchRL's ``InitTracker``; shape ``[*batch, 1]``): where it is True the
    actor is re-queried for those environments only. The wrapper writes the current
    action(s), the cache and a counter (``init_key`` with its last part replaced by
    ``"counter"``).

    Args:
        actor: the chunk-producing TensorDict module.
        n_steps: the chunk length (checked on every chunk); None: any length, the cache is
            replayed cyclically unless ``replan_interval`` is set.

    Keyword Args:
        action_keys: the env action keys (default: derived from the chunk keys).
        chunk_keys: the actor's chunk keys (default: discovered, see the module docstring).
        init_key: the reset indicator (default ``"is_init"``); a single key.
        keep_dim: keep a time dimension of size 1 on the action.
        replan_interval: re-query the actor after this many actions (1 = every step,
            closed loop; default: after the whole chunk). Must be in ``[1, n_steps]``;
            with ``n_steps=None`` a chunk shorter than it raises ``RuntimeError``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.modules import MultiStepActorWrapper
        >>> plan = TensorDictModule(
        ...     lambda obs: obs.unsqueeze(-2) + torch.arange(3.0).view(3, 1),  # 3 actions
        ...     in_keys=["observation"], out_keys=["action"])
        >>> actor = MultiStepActorWrapper(plan, n_steps=3)
        >>> td = TensorDict(observation=torch.zeros(2, 1),
        ...                 is_init=torch.ones(2, 1, dtype=torch.bool), batch_size=[2])
        >>> for _ in range(4):
        ...     td = actor(td)
        ...     print(td["action"][:, 0].tolist())
        ...     td["is_init"] = torch.zeros(2, 1, dtype=torch.bool)
        [0.0, 0.0]
        [1.0, 1.0]
        [2.0, 2.0]
        [0.0, 0.0]
        >>> actor.out_keys
        ['action', 'action_orig', 'counter']
        >>> MultiStepActorWrapper(plan, n_steps=3, replan_interval=4)
        Traceback (most recent call last):
        ...
        ValueError: MultiStepActorWrapper: replan_interval must be in [1, n_steps=3], got 4
    """

    def __init__(
        self,
        actor: TensorDictModuleBase,
        n_steps: int | None = None,
        *,
        action_keys: NestedKey | Sequence[NestedKey] | None = None,
        chunk_keys: NestedKey | Sequence[NestedKey] | None = None,
        init_key: NestedKey | None = None,
        keep_dim: bool = False,
        replan_interval: int | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(actor, TensorDictModuleBase):
            raise TypeError(f"{name}: actor must be a TensorDict module, got {type(actor).__name__}")
        if isinstance(init_key, list):
            raise ValueError(f"Only a single init_key can be passed to {name}, got {init_key}")
        if n_steps is not None:
            n_steps = operator.index(n_steps)
            if n_steps < 1:
                raise ValueError(f"{name}: n_steps must be a positive int or None, got {n_steps}")
        if replan_interval is not None:
            replan_interval = operator.index(replan_interval)
            if replan_interval < 1 or (n_steps is not None and replan_interval > n_steps):
                raise ValueError(
                    f"{name}: replan_interval must be in [1, n_steps={n_steps}], got "
                    f"{replan_interval}"
                )
        self.actor = actor
        self.n_steps = n_steps
        self.keep_dim = bool(keep_dim)
        self.replan_interval = replan_interval
        self._init_key = unravel_key(init_key) if init_key is not None else "is_init"
        self._given_action_keys = _keys(action_keys)
        self._given_chunk_keys = _keys(chunk_keys)
        self._plan()

    # ---- keys ----------------------------------------------------------------------------
    def _plan(self) -> None:
        """Resolve chunk, action and cache keys (see the module docstring)."""
        outs = [unravel_key(k) for k in self.actor.out_keys]
        chunks = self._given_chunk_keys
        if chunks is None:
            chunks = [k for k in outs if _is_vla_chunk(k)] or [
                k for k in outs if _last(k).endswith("_chunk")
            ] or [k for k in outs if _last(k) == "action"]
        if not chunks:
            raise ValueError(
                f"{type(self).__name__}: no chunk key found among the actor's out_keys {outs}; "
                "pass chunk_keys=[...] (and action_keys=[...])"
            )
        actions = self._given_action_keys or [_action_key_for(k) for k in chunks]
        if len(actions) != len(chunks):
            raise ValueError(
                f"{type(self).__name__}: action_keys and chunk_keys must have the same length, "
                f"got {actions} and {chunks}"
            )
        self._chunk_keys = chunks
        self._action_keys = actions
        self._cache_keys = [
            c if c != a else _with_last(a, _last(a) + "_orig") for a, c in zip(actions, chunks)
        ]

    @property
    def action_keys(self) -> list[NestedKey]:
        """The env action keys the wrapper writes."""
        return list(self._action_keys)

    @action_keys.setter
    def action_keys(self, value: NestedKey | Sequence[NestedKey]) -> None:
        self._given_action_keys = _keys(value)
        self._plan()

    @property
    def chunk_keys(self) -> list[NestedKey]:
        """The actor's out_keys that hold action chunks."""
        return list(self._chunk_keys)

    @chunk_keys.setter
    def chunk_keys(self, value: NestedKey | Sequence[NestedKey]) -> None:
        self._given_chunk_keys = _keys(value)
        self._plan()

    @property
    def init_key(self) -> NestedKey:
        """The entry that flags a reset (True: re-plan that environment)."""
        return self._init_key

    @property
    def counter_key(self) -> NestedKey:
        """Where the per-environment step counter is kept (next to ``init_key``)."""
        return _with_last(self._init_key, "counter")

    @property
    def in_keys(self) -> list[NestedKey]:  # type: ignore[override]
        """The actor's in_keys and the init key (derived: not settable)."""
        return list(self.actor.in_keys) + [self._init_key]

    @property
    def out_keys(self) -> list[NestedKey]:  # type: ignore[override]
        """The actor's out_keys, the action, cache and counter keys (derived: not settable)."""
        out: list[NestedKey] = []
        for k in [*self.actor.out_keys, *self._action_keys, *self._cache_keys, self.counter_key]:
            k = unravel_key(k)
            if k not in out:
                out.append(k)
        return out

    # ---- running -------------------------------------------------------------------------
    @staticmethod
    def _time_dim(td: TensorDictBase, key: NestedKey) -> int:
        """The position of a chunk's time dimension: after its parent TensorDict's batch dims."""
        path = key_tuple(key)
        parent = td.get(path[:-1]) if len(path) > 1 else td
        return parent.batch_dims

    def _check_chunk(self, chunk: torch.Tensor, t: int, key: NestedKey) -> None:
        length = chunk.shape[t] if chunk.ndim > t else None
        if length is None:
            raise RuntimeError(
                f"{type(self).__name__}: the chunk at {key!r} (shape {tuple(chunk.shape)}) has no "
                f"time dimension at dim={t}"
            )
        if self.n_steps is not None and length != self.n_steps:
            raise RuntimeError(
                f"The action's time dimension (dim={t}) doesn't match the n_steps argument "
                f"({self.n_steps}): the chunk at {key!r} has shape {tuple(chunk.shape)}"
            )
        if self.replan_interval is not None and length < self.replan_interval:
            raise RuntimeError(
                f"replan_interval ({self.replan_interval}) exceeds the actor's chunk length "
                f"({length}) at {key!r}: the cache would replay stale actions before re-planning"
            )

    def _replan(self, td: TensorDictBase) -> torch.Tensor:
        """Re-query the actor where needed, refresh the caches; return the new counter."""
        is_init = td.get(self._init_key, None)
        if is_init is None:
            raise KeyError(
                f"No init key was passed to {type(self).__name__}: {self._init_key!r} is missing "
                f"(keys present: {list(td.keys(True, True))}); add an InitTracker transform or "
                "set the entry yourself"
            )
        is_init = is_init.bool()
        counter = td.get(self.counter_key, None)
        if counter is None:
            counter = is_init.to(torch.int32)
        interval = self.replan_interval if self.replan_interval is not None else self.n_steps
        replan = is_init if interval is None else is_init | (counter >= interval)
        if not bool(replan.any()):
            return counter + 1
        rows = replan.reshape(td.batch_size)
        out = self.actor(td[rows])
        updates = []
        for chunk_key, cache_key in zip(self._chunk_keys, self._cache_keys):
            chunk = out.get(chunk_key, None)
            if chunk is None:
                raise KeyError(
                    f"{type(self).__name__}: the actor did not write the chunk key {chunk_key!r} "
                    f"(keys written: {list(out.keys(True, True))})"
                )
            self._check_chunk(chunk, self._time_dim(out, chunk_key), chunk_key)
            cache = td.get(cache_key, None)
            if cache is None:
                if not bool(rows.all()):
                    raise RuntimeError(
                        "Cannot initialize the wrapper with partial is_init signal: "
                        f"{type(self).__name__} has no cached chunk at {cache_key!r} for the "
                        "environments that did not reset"
                    )
                path = key_tuple(cache_key)
                if len(path) > 1 and out.get(path[:-1], None) is not None:
                    # first plan of a nested chunk: keep its whole sub-TensorDict (tokens, ...)
                    updates.append((path[:-1], out.get(path[:-1])))
                    continue
                updates.append((cache_key, chunk))
            else:
                mask = expand_as_right(replan, cache)
                updates.append((cache_key, torch.masked_scatter(cache, mask, chunk)))
        for key, value in updates:
            td.set(key, value)
        return counter.masked_fill(replan, 0) + 1

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        counter = self._replan(td)
        td.set(self.counter_key, counter)
        for action_key, cache_key in zip(self._action_keys, self._cache_keys):
            cache = td.get(cache_key, None)
            if cache is None:
                raise RuntimeError(
                    "Cannot initialize the wrapper with partial is_init signal: no cached chunk "
                    f"at {cache_key!r}"
                )
            t = self._time_dim(td, cache_key)
            self._check_chunk(cache, t, cache_key)
            lead = cache.shape[:t]
            index = (counter - 1).to(torch.long).reshape(lead)
            if self.n_steps is None and self.replan_interval is None:
                index = index.remainder(cache.shape[t])
            index = index.reshape(*lead, 1, *([1] * (cache.ndim - t - 1)))
            action = cache.gather(t, index.expand(*lead, 1, *cache.shape[t + 1 :]))
            td.set(action_key, action if self.keep_dim else action.squeeze(t))
        return td
