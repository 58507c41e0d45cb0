"""step_mdp: what moves from ("next", ...) to the root, what stays, what is dropped."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from tdrl.envs.utils import step_mdp


def _td() -> TensorDict:
    return TensorDict(
        obs=torch.zeros(2, 3),
        action=torch.ones(2, 1),
        done=torch.zeros(2, 1, dtype=torch.bool),
        extra=torch.full((2,), 7.0),
        agent=TensorDict(pos=torch.zeros(2, 2), act=torch.ones(2), batch_size=[2]),
        next=TensorDict(
            obs=torch.ones(2, 3),
            reward=torch.ones(2, 1),
            done=torch.ones(2, 1, dtype=torch.bool),
            agent=TensorDict(pos=torch.ones(2, 2), batch_size=[2]),
            h=torch.full((2, 1, 4), 3.0),
            batch_size=[2],
        ),
        batch_size=[2],
    )


def _leaves(td: TensorDict) -> set:
    return set(td.keys(include_nested=True, leaves_only=True))


def test_defaults_move_next_keep_others_drop_action_and_reward():
    td = _td()
    out = step_mdp(td)
    assert _leaves(out) == {"obs", "done", "extra", "h", ("agent", "pos"), ("agent", "act")}
    assert (out["obs"] == 1).all() and out["done"].all()  # next wins
    assert (out["agent", "pos"] == 1).all() and (out["agent", "act"] == 1).all()  # merged
    assert out["h"] is td["next", "h"]  # shared, not copied
    assert "next" in td.keys()  # the input is left as it was
    assert out.batch_size == (2,)


def test_flags():
    td = _td()
    assert "done" not in step_mdp(td, exclude_done=True).keys()
    assert "reward" in step_mdp(td, exclude_reward=False).keys()
    assert (step_mdp(td, exclude_action=False)["action"] == 1).all()
    assert _leaves(step_mdp(td, keep_other=False)) == {"obs", "done", "h", ("agent", "pos")}
    assert "action" in step_mdp(td, keep_other=False, exclude_action=False).keys()
    out = step_mdp(td, action_keys=[("agent", "act")], reward_keys="h")
    assert ("agent", "act") not in _leaves(out) and "action" in out.keys() and "h" not in out.keys()


def test_into_a_given_tensordict_and_errors():
    target = TensorDict(keep=torch.zeros(2), batch_size=[2])
    out = step_mdp(_td(), next_tensordict=target)
    assert out is target and {"keep", "obs", "h"} <= set(out.keys())
    with pytest.raises(KeyError, match=r"no 'next' sub-TensorDict; keys present: \['obs'\]"):
        step_mdp(TensorDict(obs=torch.zeros(1)))


def test_empty_sub_tensordicts_are_dropped():
    td = TensorDict(a=TensorDict(action=torch.zeros(1), batch_size=[]),
                    next=TensorDict(obs=torch.zeros(1)))
    assert set(step_mdp(td, action_keys=("a", "action")).keys()) == {"obs"}


@settings(max_examples=30, deadline=None)
@given(n_steps=st.integers(1, 6), batch=st.integers(1, 4))
def test_carries_a_recurrent_state_through_steps(n_steps, batch):
    # the state written under ("next", "h") at step t is read under "h" at step t + 1
    td = TensorDict(obs=torch.zeros(batch), h=torch.zeros(batch), batch_size=[batch])
    for _ in range(n_steps):
        td["next"] = TensorDict(obs=td["obs"] + 1, h=td["h"] * 2 + td["obs"], batch_size=[batch])
        td = step_mdp(td)
    expected = 0.0
    for t in range(n_steps):
        expected = expected * 2 + t
    assert (td["h"] == expected).all() and (td["obs"] == n_steps).all()
