"""Q-value policies: pick the greedy action from action values, in any discrete action space.

``QValueModule`` reads action values and writes the greedy ``action``, the
``action_value`` it read and the ``chosen_action_value`` (the value of the
chosen action, with gradient). ``QValueActor`` chains a network and that step.
The distributional variants read log-probabilities over a ``support`` of
atoms and act on the expected values. ``QValueHook`` / ``DistributionalQValueHook``
do the same as forward hooks.

The code is split by concept: ``action_space.py`` (spaces and greedy picks),
``qvalue_module.py`` (the modules), ``qvalue_actor.py`` (the actors) and
``qvalue_hook.py`` (the hooks); this module gathers them.

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
is the value the greedy action maximises. Action values holding NaN raise
``ValueError`` naming the key.

Masks (``action_mask_key``, a boolean tensor shaped like the action values):
masked actions are never chosen, and the written ``action_value`` entry holds
the lowest finite value at the masked actions (as in TorchRL). The mask must be
``bool``: another dtype raises ``ValueError`` naming it. A row (or, in
``mult-*`` spaces, a sub-space) whose mask is all False raises ``ValueError`` naming the mask key. For ``binary`` a masked
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

from tdrl.modules.tensordict_module.action_space import (
    ACTION_SPACES,
    ActionSpace,
    _process_action_space_spec,
    resolve_action_space,
)
from tdrl.modules.tensordict_module.qvalue_actor import DistributionalQValueActor, QValueActor
from tdrl.modules.tensordict_module.qvalue_hook import DistributionalQValueHook, QValueHook
from tdrl.modules.tensordict_module.qvalue_module import DistributionalQValueModule, QValueModule

__all__ = [
    "QValueModule",
    "QValueActor",
    "DistributionalQValueModule",
    "DistributionalQValueActor",
    "QValueHook",
    "DistributionalQValueHook",
    "ACTION_SPACES",
    "ActionSpace",
    "resolve_action_space",
    "_process_action_space_spec",
]
