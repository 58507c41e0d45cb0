"""Q-value modules: QValueModule, QValueActor, the distributional variants and the hooks."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
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
from tdrl.modules.tensordict_module.qvalue import ACTION_SPACES, resolve_action_space

# space id -> (spec factory, block sizes, action values' last dim)
SPACES = {
    "one-hot": (lambda: OneHot(4), [4]),
    "categorical": (lambda: Categorical(4), [4]),
    "categorical-1": (lambda: Categorical(4, shape=(1,)), [4]),
    "mult-one-hot": (lambda: MultiOneHot([2, 3]), [2, 3]),
    "multi-categorical": (lambda: MultiCategorical([2, 3]), [2, 3]),
    "binary": (lambda: Binary(4), [1, 1, 1, 1]),
}
BATCHES = [(), (3,), (2, 3)]


def _values(batch, sid, gen=None):
    n = sum(SPACES[sid][1])
    return torch.randn(*batch, n, generator=gen)


def _mask(batch, sid, gen=None):
    """A random mask with at least one allowed action per row / sub-space."""
    nvec = SPACES[sid][1]
    n = sum(nvec)
    mask = torch.rand(*batch, n, generator=gen) < 0.5
    if sid == "binary":
        return mask
    start = 0
    for size in nvec:
        blk = mask[..., start : start + size]
        keep = torch.randint(size, (*batch, 1), generator=gen)
        blk.scatter_(-1, keep, True)
        start += size
    return mask


def _reference(sid, values, mask):
    """Brute force: per sub-space, the lowest index of the best allowed value; and its value."""
    nvec = SPACES[sid][1]
    if sid == "binary":
        on = values > 0
        if mask is not None:
            on &= mask
        return on.long(), torch.where(on, values, 0.0).sum(-1, keepdim=True)
    scores = values if mask is None else values.masked_fill(~mask, float("-inf"))
    idx, total, start = [], 0.0, 0
    for size in nvec:
        blk = scores[..., start : start + size]
        best = blk.max(-1, keepdim=True).values
        first = torch.where(blk == best, torch.arange(size), size).min(-1, keepdim=True).values
        idx.append(first)
        total = total + values[..., start : start + size].gather(-1, first)
        start += size
    return torch.cat(idx, -1), total


def _as_block_indices(sid, action):
    """The chosen index of every sub-space, from an action of any space."""
    nvec = SPACES[sid][1]
    if sid in ("one-hot", "mult-one-hot"):
        out, start = [], 0
        for size in nvec:
            blk = action[..., start : start + size]
            assert (blk.sum(-1) == 1).all(), "one-hot blocks must have exactly one hot entry"
            out.append(blk.argmax(-1, keepdim=True))
            start += size
        return torch.cat(out, -1)
    if sid == "categorical":
        return action.unsqueeze(-1)
    return action  # categorical-1, multi-categorical


def _check(sid, spec, values, mask, td):
    action = td["action"]
    batch = values.shape[:-1]
    assert action.shape == batch + spec.shape
    expected_dtype = torch.int8 if sid == "binary" else torch.int64
    assert action.dtype == expected_dtype
    assert spec.is_in(action.to(spec.dtype))
    ref_idx, ref_value = _reference(sid, values, mask)
    chosen = td["chosen_action_value"]
    assert chosen.shape == batch + (1,)
    torch.testing.assert_close(chosen, ref_value)
    if sid == "binary":
        assert torch.equal(action.long(), ref_idx)
        if mask is not None:
            assert not (action.bool() & ~mask).any()
        return
    idx = _as_block_indices(sid, action)
    assert torch.equal(idx, ref_idx)
    if mask is not None:
        offsets = torch.tensor([0] + list(torch.tensor(SPACES[sid][1]).cumsum(0)[:-1]))
        assert mask.gather(-1, idx + offsets).all(), "a masked action was chosen"


# --- every space x mask x batch ------------------------------------------------------------------
@pytest.mark.parametrize("batch", BATCHES, ids=["0d", "1d", "2d"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("sid", list(SPACES))
def test_every_space_mask_and_batch(sid, masked, batch):
    gen = torch.Generator().manual_seed(hash((sid, masked, batch)) % 1000)
    spec = SPACES[sid][0]()
    values = _values(batch, sid, gen)
    mask = _mask(batch, sid, gen) if masked else None
    module = QValueModule(spec=spec, action_mask_key="mask" if masked else None)
    td = TensorDict({"action_value": values}, batch_size=batch)
    if masked:
        td["mask"] = mask
    out = module(td)
    assert out is td
    _check(sid, spec, values, mask, td)
    if mask is None:
        assert td["action_value"] is values  # left as the network produced it
    else:  # TorchRL's contract: masked actions hold the lowest finite value
        lowest = torch.finfo(values.dtype).min
        torch.testing.assert_close(td["action_value"], torch.where(mask, values, lowest))


@pytest.mark.parametrize("sid", ["one-hot", "categorical", "binary"])
def test_action_space_alone_without_spec(sid):
    values = torch.randn(5, 4)
    module = QValueModule(action_space=sid)
    td = module(TensorDict(action_value=values, batch_size=[5]))
    ref_idx, ref_value = _reference(sid, values, None)
    torch.testing.assert_close(td["chosen_action_value"], ref_value)
    assert td["action"].dtype == torch.int64  # binary without spec: int64
    if sid == "categorical":
        assert torch.equal(td["action"], ref_idx.squeeze(-1))


@pytest.mark.parametrize("sid", ["mult-one-hot", "multi-categorical"])
def test_multi_spaces_with_var_nums(sid):
    values = torch.randn(6, 5)
    with_spec = QValueModule(spec=SPACES[sid][0]())(TensorDict(action_value=values, batch_size=[6]))
    alone = QValueModule(action_space=sid, var_nums=[2, 3])(
        TensorDict(action_value=values, batch_size=[6])
    )
    assert torch.equal(with_spec["action"], alone["action"])
    # an int var_nums is accepted next to a spec when it matches every block
    QValueModule(spec=MultiOneHot([3, 3]), var_nums=3)
    with pytest.raises(ValueError, match=r"var_nums=\[2, 2\] disagrees.*\[2, 3\]"):
        QValueModule(spec=SPACES[sid][0](), var_nums=[2, 2])
    # without var_nums the module builds (as in TorchRL) and raises when called
    lazy = QValueModule(action_space=sid)
    with pytest.raises(ValueError, match=f"action_space='{sid}' without a spec needs var_nums"):
        lazy(TensorDict(action_value=values, batch_size=[6]))
    with pytest.raises(ValueError, match="int var_nums"):
        QValueModule(action_space=sid, var_nums=3)


def test_categorical_keeps_singleton_dimension():
    values = torch.randn(2, 3, 4)
    for spec, shape in ((Categorical(4, shape=(1,)), (2, 3, 1)), (Categorical(4), (2, 3))):
        td = QValueModule(spec=spec)(TensorDict(action_value=values, batch_size=[2, 3]))
        assert td["action"].shape == shape
    assert resolve_action_space(None, Categorical(4, shape=(1,))).keepdim


def test_binary_follows_spec_dtype_and_sign():
    values = torch.tensor([[-1.0, 0.0, 2.0, 0.5]])
    td = QValueModule(spec=Binary(4, dtype=torch.int64))(TensorDict(action_value=values))
    assert td["action"].dtype == torch.int64
    assert td["action"].tolist() == [[0, 0, 1, 1]]  # 0 is not positive
    torch.testing.assert_close(td["chosen_action_value"], torch.tensor([[2.5]]))
    mask = torch.tensor([[True, True, False, True]])
    td = QValueModule(spec=Binary(4), action_mask_key="m")(TensorDict(action_value=values, m=mask))
    assert td["action"].tolist() == [[0, 0, 0, 1]]
    assert td["action"].dtype == torch.int8
    # an all-False mask is a valid (all-zero) binary action
    td = QValueModule(spec=Binary(4), action_mask_key="m")(
        TensorDict(action_value=values, m=torch.zeros(1, 4, dtype=torch.bool))
    )
    assert td["action"].tolist() == [[0, 0, 0, 0]]


# --- ties ---------------------------------------------------------------------------------------
def test_one_hot_ties_have_exactly_one_hot_entry():
    values = torch.zeros(3, 5)
    values[1, 2:4] = 7.0
    td = QValueModule(spec=OneHot(5))(TensorDict(action_value=values, batch_size=[3]))
    assert td["action"].sum(-1).tolist() == [1, 1, 1]
    assert td["action"].argmax(-1).tolist() == [0, 2, 0]


def test_masked_ties_pick_first_allowed():
    values = torch.ones(2, 4)
    mask = torch.tensor([[False, True, True, True], [False, False, False, True]])
    for spec in (OneHot(4), Categorical(4)):
        td = QValueModule(spec=spec, action_mask_key="mask")(
            TensorDict(action_value=values, mask=mask, batch_size=[2])
        )
        action = td["action"]
        idx = action.argmax(-1) if spec.shape else action
        assert idx.tolist() == [1, 3]
        if spec.shape:
            assert action.sum(-1).tolist() == [1, 1]


def test_mult_one_hot_ties_one_entry_per_block():
    td = QValueModule(spec=MultiOneHot([2, 3]))(TensorDict(action_value=torch.zeros(4, 5), batch_size=[4]))
    assert td["action"][:, :2].sum(-1).tolist() == [1] * 4
    assert td["action"][:, 2:].sum(-1).tolist() == [1] * 4


def test_mask_beats_infinite_values():
    values = torch.tensor([[float("-inf"), float("-inf"), 3.0]])
    mask = torch.tensor([[False, True, False]])
    td = QValueModule(spec=OneHot(3), action_mask_key="mask")(
        TensorDict(action_value=values, mask=mask, batch_size=[1])
    )
    assert td["action"].tolist() == [[0, 1, 0]]


# --- masks: errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("sid", ["one-hot", "categorical", "categorical-1"])
def test_all_false_mask_row_raises_naming_the_key(sid):
    spec = SPACES[sid][0]()
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    td = TensorDict({"action_value": torch.randn(3, 4), ("obs", "mask"): mask}, batch_size=[3])
    module = QValueModule(spec=spec, action_mask_key=("obs", "mask"))
    with pytest.raises(ValueError, match=r"\('obs', 'mask'\).*all False"):
        module(td)
    assert "action" not in td.keys()  # nothing written


@pytest.mark.parametrize("sid", ["mult-one-hot", "multi-categorical"])
def test_all_false_sub_space_raises(sid):
    mask = torch.tensor([[True, True, False, False, False]])
    module = QValueModule(spec=SPACES[sid][0](), action_mask_key="mask")
    with pytest.raises(ValueError, match=r"'mask' masks every action of a sub-space.*\[2, 3\]"):
        module(TensorDict(action_value=torch.randn(1, 5), mask=mask, batch_size=[1]))


def test_mask_errors():
    module = QValueModule(spec=OneHot(4), action_mask_key="mask")
    td = TensorDict(action_value=torch.randn(2, 4), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'mask' has shape \(2, 3\), expected .*\(2, 4\)"):
        module(td)
    with pytest.raises(KeyError, match="Action mask key mask not found in TensorDict.*keys present"):
        module(TensorDict(action_value=torch.randn(2, 4)))


@pytest.mark.parametrize("mask", [[[0.3, 1.0]], [[0, 2]]], ids=["float", "int"])
def test_non_bool_mask_raises_naming_the_dtype(mask):
    # a float / int mask is not silently cast: 0.3 and 2 would both mean "allowed"
    mask = torch.tensor(mask)
    td = TensorDict(action_value=torch.tensor([[5.0, 1.0]]), mask=mask)
    module = QValueModule(spec=OneHot(2), action_mask_key="mask")
    with pytest.raises(ValueError, match=f"'mask' has dtype {mask.dtype}, expected torch.bool"):
        module(td)
    assert "action" not in td.keys()


# --- spec / action_space rules ------------------------------------------------------------------
def test_spec_and_action_space_must_agree():
    with pytest.raises(ValueError, match=r"OneHot.*'one-hot'.*action_space='categorical'"):
        QValueModule(spec=OneHot(4), action_space="categorical")
    with pytest.raises(ValueError, match=r"MultiOneHot.*action_space='one-hot'"):
        QValueModule(spec=MultiOneHot([2, 2]), action_space="one-hot")
    # agreeing (and the underscore spelling) is fine
    assert QValueModule(spec=OneHot(4), action_space="one_hot").action_space == "one-hot"
    assert QValueModule(spec=Binary(3), action_space="binary").action_space == "binary"


def test_unknown_action_space_lists_valid_names():
    with pytest.raises(ValueError) as err:
        QValueModule(action_space="onehot-ish")
    msg = str(err.value)
    assert "'onehot-ish'" in msg
    for name in ACTION_SPACES:
        assert name in msg
    with pytest.raises(TypeError, match="action_space must be a string"):
        QValueModule(action_space=3)


def test_spec_rules_other_errors():
    with pytest.raises(ValueError, match="needs a spec or an action_space"):
        QValueModule()
    with pytest.raises(ValueError, match="QValueModule cannot pick discrete actions in a Bounded"):
        QValueModule(spec=Bounded(-1.0, 1.0, shape=(2,)))
    with pytest.raises(ValueError, match=r"safe=True\) needs a spec"):
        QValueModule(action_space="one-hot", safe=True)
    with pytest.raises(KeyError, match=r"no entry for the action key 'action'.*\['other'\]"):
        QValueModule(spec=Composite(other=OneHot(3)))
    # a spec passed as action_space (TorchRL accepts it) is used as the spec
    assert QValueModule(action_space=Categorical(3)).action_space == "categorical"


def test_value_shape_errors():
    module = QValueModule(spec=OneHot(4))
    with pytest.raises(ValueError, match=r"shape \(2, 5\), which does not match expected shape \[\.\.\., 4\]"):
        module(TensorDict(action_value=torch.randn(2, 5), batch_size=[2]))
    with pytest.raises(KeyError, match="'action_value'.*keys present: \\['obs'\\]"):
        module(TensorDict(obs=torch.randn(2, 4), batch_size=[2]))


def test_composite_spec_and_safe_projection():
    spec = Categorical(4, mask=torch.tensor([True, False, True, True]))
    module = QValueModule(spec=Composite(action=spec), safe=True)
    values = torch.tensor([[0.0, 9.0, 1.0, 0.0]])
    td = module(TensorDict(action_value=values, batch_size=[1]))
    assert spec.is_in(td["action"]) and td["action"].dtype == torch.int64
    assert td["action"].item() != 1
    unsafe = QValueModule(spec=spec)(TensorDict(action_value=values, batch_size=[1]))
    assert unsafe["action"].item() == 1  # without safe: the raw argmax
    assert isinstance(module.spec, Composite) and module.spec["action"] is not None
    one_hot = OneHot(4, mask=torch.tensor([True, False, True, True]))
    td = QValueModule(spec=one_hot, safe=True)(TensorDict(action_value=values, batch_size=[1]))
    assert td["action"].dtype == torch.int64 and one_hot.is_in(td["action"].bool())


def test_to_and_dtype_casts_keep_working():
    actor = QValueActor(nn.Linear(4, 3), spec=MultiOneHot([1, 2]), safe=True).to("cpu").double()
    td = actor(TensorDict(observation=torch.randn(2, 4, dtype=torch.float64), batch_size=[2]))
    assert td["action"].dtype == torch.int64 and td["chosen_action_value"].dtype == torch.float64


def test_call_with_tensors_and_custom_keys():
    module = QValueModule(spec=OneHot(3))
    action, values, chosen = module(action_value=torch.tensor([1.0, 3.0, 2.0]))
    assert action.tolist() == [0, 1, 0] and chosen.tolist() == [3.0]
    module = QValueModule(
        spec=OneHot(3), action_value_key="q", out_keys=["a", "q_copy", "best"]
    )
    assert module.in_keys == ["q"] and module.out_keys == ["a", "q_copy", "best"]
    td = module(TensorDict(q=torch.randn(2, 3), batch_size=[2]))
    assert set(td.keys()) == {"q", "a", "q_copy", "best"}
    with pytest.raises(ValueError, match="takes 2 or 3 out_keys"):
        QValueModule(spec=OneHot(3), out_keys=["a"])


def test_nested_keys():
    module = QValueModule(
        spec=OneHot(4),
        action_value_key=("agent", "action_value"),
        out_keys=[("agent", "action"), ("agent", "action_value"), ("agent", "chosen")],
    )
    td = TensorDict({("agent", "action_value"): torch.randn(3, 2, 4)}, batch_size=[3])
    module(td)
    assert td["agent", "action"].shape == (3, 2, 4)
    assert td["agent", "chosen"].shape == (3, 2, 1)
    # QValueActor takes the action key from a Composite spec
    spec = Composite({("agent", "action"): OneHot(4)})
    actor = QValueActor(nn.Linear(5, 4), in_keys=[("agent", "obs")], spec=spec)
    assert actor.out_keys == [
        ("agent", "action"),
        ("agent", "action_value"),
        ("agent", "chosen_action_value"),
    ]
    td = actor(TensorDict({("agent", "obs"): torch.randn(3, 5)}, batch_size=[3]))
    assert td["agent", "action"].sum(-1).tolist() == [1, 1, 1]
    assert td["agent", "chosen_action_value"].shape == (3, 1)


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


# --- reliability: NaN action values ---------------------------------------------------------------
@pytest.mark.parametrize("sid", list(SPACES))
def test_nan_action_values_raise_naming_the_key(sid):
    spec = SPACES[sid][0]()
    values = _values((3,), sid)
    values[1, 1] = float("nan")
    td = TensorDict(q=values, batch_size=[3])
    with pytest.raises(ValueError, match=r"QValueModule: the action values 'q' contain NaN \(1 of 3 rows\)"):
        QValueModule(spec=spec, action_value_key="q")(td)
    assert "action" not in td.keys()


def test_nan_in_qvalue_actor_fused_path_and_distributional():
    # TorchRL picks action 1 for [0, nan, 5] (max propagates NaN); tdrl refuses
    net = nn.Linear(1, 3)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, float("nan"), 5.0]))
    actor = QValueActor(net, spec=OneHot(3))
    with pytest.raises(ValueError, match="'action_value' contain NaN"):
        actor(TensorDict(observation=torch.zeros(2, 1), batch_size=[2]))
    # an all-NaN row is refused too (TorchRL picks 0)
    module = QValueModule(action_space="categorical")
    with pytest.raises(ValueError, match="contain NaN"):
        module(TensorDict(action_value=torch.full((1, 3), float("nan")), batch_size=[1]))
    dist = DistributionalQValueModule(spec=OneHot(2), support=torch.tensor([0.0, 1.0]))
    log_p = torch.full((2, 2), 0.5).log()
    log_p[0, 1] = float("nan")
    with pytest.raises(ValueError, match="DistributionalQValueModule: .* contain NaN"):
        dist(TensorDict(action_value=log_p, batch_size=[]))


class _PickWithMask(nn.Module):
    """Tensors in, greedy action out: what torch.export traces (no TensorDict at the boundary)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, values, mask):
        td = TensorDict(action_value=values, mask=mask, batch_size=values.shape[:1])
        return self.module(td)["action"]


@pytest.mark.parametrize("sid", ["categorical", "multi-categorical"])
def test_value_checks_run_eagerly_and_are_left_out_of_an_exported_graph(sid):
    # the NaN and fully-masked checks branch on values: the module skips them by itself while
    # torch.export (or torch.compile) traces, and keeps them in eager mode
    spec = SPACES[sid][0]()
    n = 4 if sid == "categorical" else 5
    pick = _PickWithMask(QValueModule(spec=spec, action_mask_key="mask"))
    values, mask = torch.randn(3, n), torch.ones(3, n, dtype=torch.bool)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(pick, (values, mask), dynamic_shapes=({0: batch}, {0: batch}),
                                  strict=False)
    targets = {str(node.target) for node in program.graph.nodes}
    assert not any("_local_scalar_dense" in t or "_assert" in t and "metadata" not in t
                   for t in targets), targets
    new_values, new_mask = torch.randn(6, n), torch.rand(6, n) > 0.3
    new_mask[:, 0] = new_mask[:, -1] = True  # every row / sub-space keeps an allowed action
    assert torch.equal(program.module()(new_values, new_mask), pick(new_values, new_mask))
    bad_mask, nan_values = mask.clone(), values.clone()
    bad_mask[1] = False
    nan_values[2] = float("nan")
    program.module()(values, bad_mask)  # no check in the graph
    program.module()(nan_values, mask)
    with pytest.raises(ValueError, match="no valid action to pick"):
        pick(values, bad_mask)
    with pytest.raises(ValueError, match=r"'action_value' contain NaN \(1 of 3 rows\)"):
        pick(nan_values, mask)


def test_nan_at_a_masked_action_is_ignored_and_inf_is_not_nan():
    # a NaN the mask excludes cannot be chosen: no error; +inf and -inf are valid values
    module = QValueModule(spec=Categorical(3), action_mask_key="mask")
    td = TensorDict(
        action_value=torch.tensor([[float("nan"), 1.0, 2.0], [float("inf"), float("-inf"), 0.0]]),
        mask=torch.tensor([[False, True, True], [True, True, True]]),
        batch_size=[2],
    )
    assert module(td)["action"].tolist() == [2, 0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sid=st.sampled_from(sorted(SPACES)),
    rows=st.integers(1, 4),
    nan_at=st.data(),
)
def test_property_any_unmasked_nan_raises(sid, rows, nan_at):
    spec = SPACES[sid][0]()
    values = _values((rows,), sid)
    r = nan_at.draw(st.integers(0, rows - 1))
    c = nan_at.draw(st.integers(0, values.shape[-1] - 1))
    values[r, c] = float("nan")
    with pytest.raises(ValueError, match="contain NaN"):
        QValueModule(spec=spec)(TensorDict(action_value=values, batch_size=[rows]))


# --- TorchRL's argument names and error phrases -------------------------------------------------
def test_strict_shape():
    spec = Categorical(4, shape=(1,))
    for strict in (None, True, False, "auto"):
        actor = QValueActor(nn.Linear(3, 4), spec=spec, strict_shape=strict)
        td = actor(TensorDict(observation=torch.randn(12, 3), batch_size=[12]))
        assert td["action"].shape == (12, 1)  # always the spec's shape
    bad = TensorDict(observation=torch.randn(12, 3), batch_size=[12])
    with pytest.raises(RuntimeError, match=r"\(12, 1\), which does not match expected shape \[\.\.\., 4\]"):
        QValueActor(nn.Linear(3, 1), spec=spec, strict_shape=True)(bad)
    with pytest.raises(ValueError, match="does not match expected shape"):
        QValueActor(nn.Linear(3, 1), spec=spec, strict_shape="auto")(bad)
    with pytest.raises(ValueError, match=r"strict_shape must be one of \[None, True, False, 'auto'\]"):
        QValueModule(spec=spec, strict_shape="yes")


def test_torchrl_error_phrases_keep_tdrl_detail():
    with pytest.raises(ValueError, match="^action_space was not specified/not compatible: .*'wrong'"):
        QValueHook(action_space="wrong")
    with pytest.raises(ValueError, match="^Neither action_space nor spec was defined: QValueActor"):
        QValueActor(nn.Linear(3, 3))
    with pytest.raises(
        ValueError, match="^The action spec and the action space do not match: .*OneHot.*'mult-one-hot'"
    ):
        QValueActor(nn.Linear(3, 3), spec=OneHot(3), action_space="mult-one-hot")
    process = actors_mod._process_action_space_spec
    assert process("one_hot", None) == ("one-hot", None)
    spec = MultiOneHot([3, 3])
    assert process(spec, spec) == ("mult-one-hot", spec)
    with pytest.raises(ValueError, match="^Passing an action_space as a TensorSpec and a spec"):
        process(OneHot(3), spec)
    with pytest.raises(ValueError, match="^action_space cannot be of type Composite"):
        process(Composite(), spec)
    with pytest.raises(KeyError, match="action could not be found in the spec.*its keys: \\[\\]"):
        process(None, Composite())
    with pytest.raises(KeyError, match="Action mask key m not found in TensorDict.*keys present"):
        QValueActor(nn.Linear(3, 3), spec=OneHot(3), action_mask_key="m")(
            TensorDict(observation=torch.zeros(1, 3), batch_size=[1])
        )


def test_qvalue_hook_refuses_nan_values():
    # the hook's tensor path checks NaN as the module does (one read of the greedy values)
    net = nn.Linear(2, 3)
    with torch.no_grad():
        net.bias.copy_(torch.tensor([0.0, float("nan"), 1.0]))
    net.register_forward_hook(QValueHook("one_hot"))
    with pytest.raises(ValueError, match=r"QValueModule: the action values .* contain NaN \(2 of 2"):
        net(torch.zeros(2, 2))


def test_fully_masked_row_found_by_the_probe_in_a_batch():
    # one-hot / categorical defer the mask check to the selection's probe: same error
    module = QValueModule(spec=Categorical(3), action_mask_key="mask")
    mask = torch.tensor([[True, False, True], [False, False, False]])
    td = TensorDict(action_value=torch.randn(2, 3), mask=mask, batch_size=[2])
    with pytest.raises(ValueError, match=r"'mask' has a row where every action is masked"):
        module(td)
    assert "action" not in td.keys()  # nothing written


def test_distributional_hook_refuses_nan_values():
    # the distributional hook's tensor path runs the same checked pick as the module
    hook = DistributionalQValueHook("categorical", support=torch.tensor([0.0, 1.0]))
    log_p = torch.tensor([[0.9, 0.2], [0.1, 0.8]]).log()
    assert hook(None, None, log_p)[0].item() == 1
    log_p[0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"DistributionalQValueModule: .* contain NaN \(1 of 1"):
        hook(None, None, log_p)
