"""MultiStepActorWrapper beyond TorchRL's tests: cadence as a property, key resolution, errors."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from tdrl.modules import MultiStepActorWrapper
from tdrl.modules.tensordict_module.actors import MultiStepActorWrapper as AtActorsPath


def counting_actor(length, out_key="action", calls=None):
    """Chunk k (1-based call count) holds k + step / 10 for step in 0..length-1."""
    calls = [] if calls is None else calls

    def plan(obs):
        calls.append(obs.shape[0])
        chunk = torch.full((obs.shape[0], length, 1), float(len(calls)))
        return chunk + torch.arange(length).view(1, length, 1) / 10

    return TensorDictModule(plan, in_keys=["observation"], out_keys=[out_key]), calls


def fresh(batch=2, init=True):
    return TensorDict(
        observation=torch.zeros(batch, 1),
        is_init=torch.full((batch, 1), init, dtype=torch.bool),
        batch_size=[batch],
    )


def test_torchrl_path():
    assert AtActorsPath is MultiStepActorWrapper


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.data())
def test_cadence_matches_the_schedule(n_steps, data):
    interval = data.draw(st.one_of(st.none(), st.integers(1, n_steps)))
    steps = data.draw(st.integers(1, 12))
    actor, calls = counting_actor(n_steps)
    wrapper = MultiStepActorWrapper(actor, n_steps=n_steps, replan_interval=interval)
    td, seen = fresh(), []
    for _ in range(steps):
        td = wrapper(td)
        seen.append(round(td["action"][0, 0].item(), 1))
        td["is_init"] = torch.zeros(2, 1, dtype=torch.bool)
    every = interval or n_steps
    assert seen == [round(t // every + 1 + (t % every) / 10, 1) for t in range(steps)]
    assert len(calls) == -(-steps // every)


def test_unknown_length_replays_cyclically():
    actor, calls = counting_actor(3)
    wrapper = MultiStepActorWrapper(actor)  # n_steps=None, no replan_interval
    td, seen = fresh(), []
    for _ in range(5):
        td = wrapper(td)
        seen.append(round(td["action"][1, 0].item(), 1))
        td["is_init"] = torch.zeros(2, 1, dtype=torch.bool)
    assert seen == [1.0, 1.1, 1.2, 1.0, 1.1] and len(calls) == 1


def test_keep_dim_and_keys():
    actor, _ = counting_actor(2)
    wrapper = MultiStepActorWrapper(actor, n_steps=2, keep_dim=True)
    td = wrapper(fresh())
    assert td["action"].shape == (2, 1, 1)
    assert td["action_orig"].shape == (2, 2, 1)
    assert td["counter"].tolist() == [[1], [1]] and td["counter"].dtype == torch.int32
    assert wrapper.in_keys == ["observation", "is_init"]
    assert wrapper.out_keys == ["action", "action_orig", "counter"]
    assert wrapper.chunk_keys == ["action"] and wrapper.action_keys == ["action"]


def test_chunk_suffix_maps_to_action_key():
    actor, _ = counting_actor(2, out_key=("agent", "action_chunk"))
    wrapper = MultiStepActorWrapper(actor, n_steps=2)
    assert wrapper.chunk_keys == [("agent", "action_chunk")]
    assert wrapper.action_keys == [("agent", "action")]
    td = wrapper(fresh())
    assert td["agent", "action"].shape == (2, 1)
    assert "action_chunk_orig" not in str(list(td.keys(True, True)))


def test_only_the_reset_environment_replans():
    actor, calls = counting_actor(4)
    wrapper = MultiStepActorWrapper(actor, n_steps=4)
    td = wrapper(fresh(batch=3))
    td["is_init"] = torch.tensor([[False], [True], [False]])
    td = wrapper(td)
    assert calls == [3, 1]  # the second call saw the one resetting env only
    assert [round(v, 1) for v in td["action"][:, 0].tolist()] == [1.1, 2.0, 1.1]
    assert td["counter"].view(-1).tolist() == [2, 1, 2]


def test_missing_init_key_names_keys():
    actor, _ = counting_actor(2)
    td = TensorDict(observation=torch.zeros(2, 1), batch_size=[2])
    with pytest.raises(KeyError, match=r"No init key was passed.*'is_init' is missing.*observation"):
        MultiStepActorWrapper(actor, n_steps=2)(td)


def test_partial_init_without_cache_raises_before_writing():
    actor, _ = counting_actor(2)
    td = fresh()
    td["is_init"] = torch.tensor([[True], [False]])
    with pytest.raises(RuntimeError, match="Cannot initialize the wrapper with partial is_init"):
        MultiStepActorWrapper(actor, n_steps=2)(td)
    assert set(td.keys()) == {"observation", "is_init"}


def test_wrong_chunk_length_raises_before_writing():
    actor, _ = counting_actor(3)
    td = fresh()
    with pytest.raises(RuntimeError, match=r"time dimension \(dim=1\) doesn't match the n_steps argument \(2\)"):
        MultiStepActorWrapper(actor, n_steps=2)(td)
    assert set(td.keys()) == {"observation", "is_init"}


def test_missing_chunk_key_raises():
    actor = TensorDictModule(lambda x: x, in_keys=["observation"], out_keys=["other"])
    with pytest.raises(ValueError, match=r"no chunk key found among the actor's out_keys \['other'\]"):
        MultiStepActorWrapper(actor)
    wrapper = MultiStepActorWrapper(actor, chunk_keys=["plan"])
    with pytest.raises(KeyError, match=r"did not write the chunk key 'plan' \(keys written:"):
        wrapper(fresh())


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_arguments(bad):
    actor, _ = counting_actor(2)
    with pytest.raises((ValueError, TypeError)):
        MultiStepActorWrapper(actor, n_steps=bad)
    with pytest.raises(ValueError, match="Only a single init_key"):
        MultiStepActorWrapper(actor, init_key=["a", "b"])
    with pytest.raises(ValueError, match="same length"):
        MultiStepActorWrapper(actor, action_keys=["a", "b"])
