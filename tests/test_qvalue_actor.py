"""QValueActor, the distributional variants, the hooks, and the selection property."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qvalue_cases import (
    BATCHES,
    SPACES,
    _check,
    _mask,
)
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from tdrl.data import (
    Categorical,
    Composite,
    OneHot,
)
from tdrl.modules import (
    DistributionalQValueActor,
    DistributionalQValueHook,
    DistributionalQValueModule,
    QValueActor,
    QValueHook,
    QValueModule,
    SafeSequential,
)
from tdrl.modules.tensordict_module import actors as actors_mod


# --- QValueActor --------------------------------------------------------------------------------
def test_actor_with_plain_module_is_a_safe_sequential():
    net = nn.Linear(4, 3)
    actor = QValueActor(net, spec=OneHot(3))
    assert isinstance(actor, SafeSequential)
    assert actor.in_keys == ["observation"]
    # a rewritten key takes its last place (tensordict.nn's order): action, values, chosen
    assert actor.out_keys == ["action", "action_value", "chosen_action_value"]
    obs = torch.randn(6, 4)
    td = actor(TensorDict(observation=obs, batch_size=[6]))
    torch.testing.assert_close(td["action_value"], net(obs))
    assert torch.equal(td["action"].argmax(-1), net(obs).argmax(-1))
    assert isinstance(actor.qvalue_module, QValueModule)
    assert set(actor.state_dict()) == {"module.0.module.weight", "module.0.module.bias"}
    assert isinstance(actor.spec, Composite) and "action" in actor.spec.keys()


def test_actor_with_tensordict_module():
    net = TensorDictModule(nn.Linear(4, 3), in_keys=["obs"], out_keys=["q"])
    actor = QValueActor(net, spec=OneHot(3))  # the only out_key feeds the Q-value step
    assert actor.out_keys == ["action", "q", "chosen_action_value"]
    assert net.out_keys == ["q"]  # the user's module is not modified
    td = actor(TensorDict(obs=torch.randn(2, 4), batch_size=[2]))
    assert td["action"].shape == (2, 3)
    two = TensorDictModule(lambda x: (x, x), in_keys=["obs"], out_keys=["a", "b"])
    with pytest.raises(KeyError, match=r"which of the module's out_keys \['a', 'b'\]"):
        QValueActor(two, spec=OneHot(4))
    actor = QValueActor(two, spec=OneHot(4), action_value_key="b")
    assert actor.qvalue_module.in_keys == ["b"]
    with pytest.raises(KeyError, match=r"action_value_key 'c' is not among .*\['a', 'b'\]"):
        QValueActor(two, spec=OneHot(4), action_value_key="c")
    with pytest.raises(ValueError, match="in_keys=\\['x'\\] only apply to a plain nn.Module"):
        QValueActor(net, in_keys=["x"], spec=OneHot(3))


def test_actor_rejects_out_keys_and_bad_modules():
    with pytest.raises(TypeError, match="does not take out_keys"):
        QValueActor(nn.Linear(4, 3), spec=OneHot(3), out_keys=["a"])
    with pytest.raises(TypeError, match="module must be an nn.Module"):
        QValueActor(42, spec=OneHot(3))


def test_actor_with_mask_and_custom_keys():
    actor = QValueActor(
        nn.Linear(4, 3),
        in_keys=["o"],
        action_space="categorical",
        action_value_key="q",
        action_mask_key="mask",
    )
    assert actor.in_keys == ["o", "mask"]
    mask = torch.tensor([[False, False, True]] * 5)
    td = actor(TensorDict(o=torch.randn(5, 4), mask=mask, batch_size=[5]))
    assert td["action"].tolist() == [2] * 5
    assert set(td.keys()) == {"o", "mask", "q", "action", "chosen_action_value"}


def test_import_paths():
    assert actors_mod.QValueActor is QValueActor
    assert actors_mod.QValueModule is QValueModule
    assert actors_mod.DistributionalQValueActor is DistributionalQValueActor
    assert actors_mod.QValueHook is QValueHook
    from tdrl.modules.tensordict_module import QValueActor as A2

    assert A2 is QValueActor


def test_chosen_action_value_carries_gradient():
    torch.manual_seed(0)
    net = nn.Linear(4, 5)
    for kwargs in ({}, {"action_mask_key": "mask"}):
        net.zero_grad()
        actor = QValueActor(net, spec=OneHot(5), **kwargs)
        td = TensorDict(observation=torch.randn(8, 4), mask=torch.rand(8, 5) > 0.3, batch_size=[8])
        td["mask"][:, 0] = True
        actor(td)["chosen_action_value"].sum().backward()
        assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
        # the gradient equals d(sum of chosen values)/dW: one-hot(action)^T @ obs
        expected = td["action"].float().T @ td["observation"]
        torch.testing.assert_close(net.weight.grad, expected)


@pytest.mark.parametrize("sid", ["mult-one-hot", "multi-categorical", "binary", "categorical"])
def test_gradient_other_spaces(sid):
    values = torch.randn(4, sum(SPACES[sid][1]), requires_grad=True)
    td = QValueModule(spec=SPACES[sid][0]())(TensorDict(action_value=values, batch_size=[4]))
    td["chosen_action_value"].sum().backward()
    assert values.grad is not None and values.grad.abs().sum() > 0


def test_copy_pickle_and_tensordict_sequential():
    actor = QValueActor(nn.Linear(4, 3), spec=OneHot(3), safe=True)
    td = TensorDict(observation=torch.randn(2, 4), batch_size=[2])
    ref = actor(td.clone())["action"]
    for clone in (copy.deepcopy(actor), pickle.loads(pickle.dumps(actor))):
        assert torch.equal(clone(td.clone())["action"], ref)
    seq = TensorDictSequential(actor)
    assert torch.equal(seq(td.clone())["action"], ref)


def test_hooks_on_the_children_are_honoured():
    net = nn.Linear(4, 3)
    actor = QValueActor(net, spec=OneHot(3))
    calls = []
    actor.qvalue_module.register_forward_hook(lambda m, i, o: calls.append("head"))
    actor.module[0].register_forward_hook(lambda m, i, o: calls.append("wrapper"))
    net.register_forward_hook(lambda m, i, o: calls.append("net"))
    td = actor(TensorDict(observation=torch.randn(2, 4), batch_size=[2]))
    assert calls == ["net", "wrapper", "head"]
    assert td["action"].shape == (2, 3)


def test_actor_missing_inputs_write_nothing():
    actor = QValueActor(nn.Linear(4, 3), spec=OneHot(3), action_mask_key="mask")
    td = TensorDict(observation=torch.randn(2, 4), batch_size=[2])
    with pytest.raises(KeyError, match="'mask'.*keys present: \\['observation'\\]"):
        actor(td)
    assert list(td.keys()) == ["observation"]
    with pytest.raises(KeyError, match="'observation'.*keys present: \\['mask'\\]"):
        actor(TensorDict(mask=torch.ones(2, 3, dtype=torch.bool), batch_size=[2]))


# --- distributional ----------------------------------------------------------------------------
def _dist_values(batch, n_atoms, n, gen=None):
    return torch.log_softmax(torch.randn(*batch, n_atoms, n, generator=gen), dim=-2)


@pytest.mark.parametrize("batch", BATCHES, ids=["0d", "1d", "2d"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("sid", list(SPACES))
def test_distributional_every_space(sid, masked, batch):
    gen = torch.Generator().manual_seed(7)
    spec = SPACES[sid][0]()
    n = sum(SPACES[sid][1])
    support = torch.linspace(-2.0, 2.0, 5)
    log_p = _dist_values(batch, 5, n, gen)
    mask = _mask(batch, sid, gen) if masked else None
    module = DistributionalQValueModule(
        spec=spec,
        support=support,
        action_mask_key="mask" if masked else None,
        out_keys=["action", "action_value", "chosen_action_value"],
    )
    td = TensorDict({"action_value": log_p}, batch_size=batch)
    if masked:
        td["mask"] = mask
    module(td)
    expected = (log_p.exp() * support.unsqueeze(-1)).sum(-2)
    _check(sid, spec, expected, mask, td)
    assert td["action_value"] is log_p


def test_distributional_defaults_and_errors():
    module = DistributionalQValueModule(action_space="one-hot", support=torch.arange(3.0))
    assert module.out_keys == ["action", "action_value"]
    td = module(TensorDict(action_value=_dist_values((2,), 3, 4), batch_size=[2]))
    assert set(td.keys()) == {"action", "action_value"}
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 3 atoms, n_actions\]"):
        module(TensorDict(action_value=torch.randn(2, 4, 4), batch_size=[2]))
    with pytest.raises(ValueError, match="support must be a 1-d tensor"):
        DistributionalQValueModule(action_space="one-hot", support=torch.zeros(2, 2))
    with pytest.raises(TypeError, match="needs a support"):
        DistributionalQValueModule(action_space="one-hot")
    assert "support" in module.state_dict()


def test_distributional_actor():
    torch.manual_seed(0)
    support = torch.linspace(-1.0, 1.0, 5)
    net = nn.Sequential(nn.Linear(4, 5 * 3), nn.Unflatten(-1, (5, 3)))
    actor = DistributionalQValueActor(net, support=support, spec=OneHot(3), action_mask_key="m")
    mask = torch.tensor([[True, False, True]]).expand(6, 3)
    td = actor(TensorDict(observation=torch.randn(6, 4), m=mask, batch_size=[6]))
    log_p = td["action_value"]
    torch.testing.assert_close(log_p.exp().sum(-2), torch.ones(6, 3))
    ev = (log_p.exp() * support.unsqueeze(-1)).sum(-2).masked_fill(~mask, float("-inf"))
    assert torch.equal(td["action"].argmax(-1), ev.argmax(-1))
    assert not td["action"][:, 1].any()
    # without the log-softmax the network output is used as it is
    raw = DistributionalQValueActor(net, support=support, spec=OneHot(3), make_log_softmax=False)
    td = raw(TensorDict(observation=torch.randn(2, 4), batch_size=[2]))
    assert not torch.allclose(td["action_value"].exp().sum(-2), torch.ones(2, 3))
    assert len(raw) == 2 and len(actor) == 3
    with pytest.raises(TypeError, match="does not take out_keys"):
        DistributionalQValueActor(net, support=support, spec=OneHot(3), out_keys=["a"])


def test_distributional_gradient():
    values = torch.randn(4, 3, 2, requires_grad=True)
    module = DistributionalQValueModule(
        spec=Categorical(2),
        support=torch.tensor([0.0, 1.0, 2.0]),
        out_keys=["action", "action_value", "chosen"],
    )
    td = module(TensorDict(action_value=torch.log_softmax(values, -2), batch_size=[4]))
    td["chosen"].sum().backward()
    assert values.grad.abs().sum() > 0


# --- hooks --------------------------------------------------------------------------------------
def test_qvalue_hook_on_plain_module_matches_actor():
    net = nn.Linear(4, 3)
    handle = net.register_forward_hook(QValueHook("one_hot"))
    module = TensorDictModule(
        net, in_keys=["observation"], out_keys=["action", "action_value", "chosen_action_value"]
    )
    obs = torch.randn(5, 4)
    td = module(TensorDict(observation=obs, batch_size=[5]))
    handle.remove()
    ref = QValueActor(net, spec=OneHot(3))(TensorDict(observation=obs, batch_size=[5]))
    for key in ("action", "action_value", "chosen_action_value"):
        torch.testing.assert_close(td[key], ref[key])


def test_qvalue_hook_on_tensordict_module_reads_the_mask():
    net = TensorDictModule(nn.Linear(4, 3), in_keys=["observation"], out_keys=["action_value"])
    net.register_forward_hook(QValueHook(spec=Categorical(3), action_mask_key="mask"))
    mask = torch.tensor([[False, True, False]]).expand(4, 3)
    td = net(TensorDict(observation=torch.randn(4, 4), mask=mask, batch_size=[4]))
    assert td["action"].tolist() == [1] * 4
    assert "chosen_action_value" in td.keys()
    plain = nn.Linear(4, 3)
    plain.register_forward_hook(QValueHook("one-hot", action_mask_key="mask"))
    with pytest.raises(ValueError, match="must be hooked on a TensorDict module"):
        plain(torch.randn(2, 4))


def test_distributional_hook():
    net = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(-1, (3, 2)), nn.LogSoftmax(-2))
    support = torch.tensor([-1.0, 0.0, 1.0])
    net.register_forward_hook(DistributionalQValueHook("one-hot", support=support))
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["action", "action_value"])
    td = module(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))
    ev = (td["action_value"].exp() * support.unsqueeze(-1)).sum(-2)
    assert torch.equal(td["action"].argmax(-1), ev.argmax(-1))


# --- property test ------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sid=st.sampled_from(list(SPACES)),
    batch=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    seed=st.integers(0, 2**16),
    masked=st.booleans(),
    ties=st.booleans(),
    distributional=st.booleans(),
)
def test_property_action_in_spec_never_masked(sid, batch, seed, masked, ties, distributional):
    gen = torch.Generator().manual_seed(seed)
    spec = SPACES[sid][0]()
    n = sum(SPACES[sid][1])
    values = torch.randn(*batch, n, generator=gen).clamp(-1.5, 1.5)
    if ties:  # few distinct values: many ties
        values = values.round().clamp(-1, 1)
    mask = _mask(batch, sid, gen) if masked else None
    key = "mask" if masked else None
    if distributional:
        # a 2-atom distribution whose expected value is exactly `values` on support [-2, 2]
        p_high = (values + 2.0) / 4.0
        log_p = torch.stack([(1 - p_high).log(), p_high.log()], -2)
        module = DistributionalQValueModule(
            spec=spec, support=torch.tensor([-2.0, 2.0]), action_mask_key=key,
            out_keys=["action", "action_value", "chosen_action_value"],
        )
        td = TensorDict({"action_value": log_p}, batch_size=batch)
    else:
        module = QValueModule(spec=spec, action_mask_key=key)
        td = TensorDict({"action_value": values}, batch_size=batch)
    if masked:
        td["mask"] = mask
    module(td)
    if distributional:
        values = (td["action_value"].exp() * module.support.unsqueeze(-1)).sum(-2)
    _check(sid, spec, values, mask, td)
