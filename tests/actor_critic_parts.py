"""Builders shared by the actor-critic tests: trunk, heads, operators and small TensorDicts."""
from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl.modules import (
    MLP,
    ActorValueOperator,
    NormalParamExtractor,
    ProbabilisticActor,
    SafeModule,
    TanhNormal,
    ValueOperator,
)


def _parts(obs="observation", hidden="hidden", value_out=None, n=4):
    """The mission page's trunk, TanhNormal policy head and value head."""
    trunk = SafeModule(nn.Linear(n, 4), in_keys=[obs], out_keys=[hidden])
    net = TensorDictModule(
        nn.Sequential(nn.Linear(4, 8), NormalParamExtractor()),
        in_keys=[hidden],
        out_keys=["loc", "scale"],
    )
    policy = ProbabilisticActor(
        module=net,
        in_keys=["loc", "scale"],
        out_keys=["action"],
        distribution_class=TanhNormal,
        return_log_prob=True,
    )
    value = ValueOperator(nn.Linear(4, 1), in_keys=[hidden], out_keys=value_out)
    return trunk, policy, value


def _op(**kw):
    return ActorValueOperator(*_parts(), **kw)


def _td(batch=(3,), key="observation", n=4):
    return TensorDict({key: torch.randn(*batch, n)}, batch_size=batch)


def _critic(hidden="hidden", action="action", out=None):
    return ValueOperator(
        MLP(in_features=8, out_features=1, num_cells=[]),
        in_keys=[hidden, action],
        out_keys=out,
    )


def _trunk_w(op):
    return op.module[0].module.weight


def _grads(params):
    return [p.grad for p in params]


def _zero(op):
    for p in op.parameters():
        p.grad = None


def _leaves(td: TensorDictBase):
    return {
        k: (tuple(v.shape), v.dtype)
        for k, v in td.items(include_nested=True, leaves_only=True)
    }
