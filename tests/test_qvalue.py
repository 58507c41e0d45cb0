"""QValueModule: every action space, ties, masks, spec rules."""
from __future__ import annotations

import pytest
import torch
from qvalue_cases import (
    BATCHES,
    SPACES,
    _check,
    _mask,
    _reference,
    _values,
)
from tensordict import TensorDict
from torch import nn

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiOneHot,
    OneHot,
)
from tdrl.modules import (
    QValueActor,
    QValueModule,
)
from tdrl.modules.tensordict_module.qvalue import ACTION_SPACES, resolve_action_space


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
