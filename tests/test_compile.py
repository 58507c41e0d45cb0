"""``torch.compile(fullgraph=True)`` of the mission page's ActorValueOperator (issue 4).

Compiling is slow on CPU, so this file compiles two modules (the full operator
and its policy operator), each under DETERMINISTIC and RANDOM exploration.
``fullgraph=True`` turns any graph break into an error. Under RANDOM the
compiled random stream differs from the eager one, so the compiled action is
checked through the eager distribution's log-prob instead of being compared.
"""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    ActorValueOperator,
    NormalParamExtractor,
    ProbabilisticActor,
    SafeModule,
    TanhNormal,
    ValueOperator,
)

KEYS = ("hidden", "loc", "scale", "action", "sample_log_prob")


@pytest.fixture(scope="module")
def op():
    torch.manual_seed(0)
    torch._dynamo.reset()
    return ActorValueOperator(
        SafeModule(nn.Linear(4, 4), in_keys=["observation"], out_keys=["hidden"]),
        ProbabilisticActor(
            module=TensorDictModule(
                nn.Sequential(nn.Linear(4, 8), NormalParamExtractor()),
                in_keys=["hidden"],
                out_keys=["loc", "scale"],
            ),
            in_keys=["loc", "scale"],
            out_keys=["action"],
            distribution_class=TanhNormal,
            return_log_prob=True,
        ),
        ValueOperator(nn.Linear(4, 1), in_keys=["hidden"]),
    )


def _td():
    return TensorDict(observation=torch.randn(5, 4), batch_size=[5])


def _check(module, eager_policy, keys):
    compiled = torch.compile(module, fullgraph=True)
    td = _td()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        expected = module(td.clone())
        got = compiled(td.clone())
    for key in keys:
        torch.testing.assert_close(got[key], expected[key], msg=lambda m, k=key: f"{k}: {m}")
    with set_exploration_type(ExplorationType.RANDOM):
        got = compiled(td.clone())
    action = got["action"]
    assert action.shape == (5, 4) and action.dtype == torch.float32
    assert bool((action.abs() < 1).all())
    dist = eager_policy.get_dist(td.clone())
    torch.testing.assert_close(
        dist.log_prob(action), got["sample_log_prob"], rtol=1e-4, atol=1e-3
    )
    # the compiled operator still follows the exploration type: RANDOM draws vary
    with set_exploration_type(ExplorationType.RANDOM):
        again = compiled(td.clone())
    assert not torch.allclose(again["action"], action)
    return got


def test_compiled_operator_matches_eager(op):
    got = _check(op, op.get_policy_operator(), (*KEYS, "state_value"))
    assert got["state_value"].shape == (5, 1)


def test_compiled_policy_operator_matches_eager(op):
    pol = op.get_policy_operator()
    got = _check(pol, pol, KEYS)
    assert "state_value" not in got.keys()
