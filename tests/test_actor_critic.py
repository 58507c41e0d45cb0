"""ActorValueOperator: the mission page, structure, parameter sharing, gradients, trunk_grad, nested keys."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from actor_critic_parts import (
    _grads,
    _leaves,
    _op,
    _parts,
    _td,
    _trunk_w,
    _zero,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
)
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    Actor,
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    NormalParamExtractor,
    SafeModule,
    SafeProbabilisticTensorDictSequential,
    SafeSequential,
    ValueOperator,
)
from tdrl.utils import detailed_repr

# --- the mission page ----------------------------------------------------------------------

_T4 = "Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False)"
_T1 = "Tensor(shape=torch.Size([3, 1]), device=cpu, dtype=torch.float32, is_shared=False)"
_T0 = "Tensor(shape=torch.Size([3]), device=cpu, dtype=torch.float32, is_shared=False)"
_TAIL = "batch_size=torch.Size([3]), device=None, is_shared=False)"
PAGE_FULL = (
    f"TensorDict( fields={{ action: {_T4}, hidden: {_T4}, loc: {_T4}, observation: {_T4}, "
    f"sample_log_prob: {_T0}, scale: {_T4}, state_value: {_T1}}}, {_TAIL}"
)
PAGE_POLICY = (
    f"TensorDict( fields={{ action: {_T4}, hidden: {_T4}, loc: {_T4}, observation: {_T4}, "
    f"sample_log_prob: {_T0}, scale: {_T4}}}, {_TAIL}"
)
PAGE_VALUE = (
    f"TensorDict( fields={{ hidden: {_T4}, observation: {_T4}, state_value: {_T1}}}, {_TAIL}"
)


def _squash(text: str) -> str:
    return " ".join(text.split())


class TestMissionPage:
    @pytest.mark.parametrize(
        "getter, expected",
        [(None, PAGE_FULL), ("get_policy_operator", PAGE_POLICY), ("get_value_operator", PAGE_VALUE)],
    )
    def test_printed_outputs(self, getter, expected):
        op = _op()
        module = op if getter is None else getattr(op, getter)()
        td = TensorDict({"observation": torch.randn(3, 4)}, [3])
        out = module(td.clone())
        with detailed_repr():
            assert _squash(repr(out)) == _squash(expected)

    def test_keys_shapes_dtypes(self):
        op = _op()
        td = TensorDict({"observation": torch.randn(3, 4)}, [3])
        f32 = torch.float32
        full = {
            "action": ((3, 4), f32),
            "hidden": ((3, 4), f32),
            "loc": ((3, 4), f32),
            "observation": ((3, 4), f32),
            "sample_log_prob": ((3,), f32),
            "scale": ((3, 4), f32),
            "state_value": ((3, 1), f32),
        }
        assert _leaves(op(td.clone())) == full
        policy_keys = {k: v for k, v in full.items() if k != "state_value"}
        assert _leaves(op.get_policy_operator()(td.clone())) == policy_keys
        value_keys = {k: full[k] for k in ("hidden", "observation", "state_value")}
        assert _leaves(op.get_value_operator()(td.clone())) == value_keys

    def test_types_and_import_paths(self):
        from tdrl.modules.tensordict_module import ActorValueOperator as A2
        from tdrl.modules.tensordict_module.actors import (
            ActorCriticOperator as C3,
        )
        from tdrl.modules.tensordict_module.actors import (
            ActorCriticWrapper as W3,
        )
        from tdrl.modules.tensordict_module.actors import (
            ActorValueOperator as A3,
        )

        assert A2 is A3 is ActorValueOperator
        assert C3 is ActorCriticOperator and W3 is ActorCriticWrapper
        op = _op()
        assert isinstance(op, SafeSequential) and isinstance(op, TensorDictModuleBase)
        assert isinstance(op.get_policy_operator(), SafeProbabilisticTensorDictSequential)
        assert type(op.get_value_operator()) is SafeSequential
        assert op.in_keys == ["observation"]
        assert op.out_keys == ["hidden", "loc", "scale", "action", "sample_log_prob", "state_value"]


# --- structure, parameter sharing, gradients ----------------------------------------------


class TestActorValueOperator:
    def test_forward_runs_trunk_once(self):
        op = _op()
        calls = []
        op.module[0].module.register_forward_hook(lambda *a: calls.append(1))
        op(_td())
        assert len(calls) == 1

    def test_forward_matches_getters(self):
        op = _op()
        td = _td()
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            full = op(td.clone())
            pol = op.get_policy_operator()(td.clone())
            val = op.get_value_operator()(td.clone())
        for key in ("hidden", "loc", "scale", "action", "sample_log_prob"):
            torch.testing.assert_close(full[key], pol[key])
        torch.testing.assert_close(full["state_value"], val["state_value"])
        torch.testing.assert_close(
            full["state_value"], op.module[2].module(op.module[0].module(td["observation"]))
        )

    def test_heads_are_the_given_modules(self):
        trunk, policy, value = _parts()
        op = ActorValueOperator(trunk, policy, value)
        assert op.get_policy_head() is policy
        assert op.get_value_head() is value
        assert op.module[0] is trunk
        pol_op, val_op = op.get_policy_operator(), op.get_value_operator()
        assert pol_op.module[0] is trunk and val_op.module[0] is trunk
        assert val_op.module[1] is value
        # the probabilistic head is unrolled: same module objects, last one builds the dist
        assert list(pol_op.module)[1:] == list(policy.module)
        # built once: same object on every call
        assert op.get_policy_operator() is pol_op and op.get_value_operator() is val_op

    @pytest.mark.parametrize("getter", ["get_policy_operator", "get_value_operator"])
    def test_getters_share_parameters(self, getter):
        op = _op()
        sub = getattr(op, getter)()
        own = {id(p) for p in op.parameters()}
        sub_params = list(sub.parameters())
        assert sub_params and all(id(p) in own for p in sub_params)
        assert any(p is _trunk_w(op) for p in sub_params)
        # an in-place change to the operator's weights shows in the getter's output
        td = _td()
        with torch.no_grad():
            before = sub(td.clone())["hidden"]
            _trunk_w(op).add_(1.0)
            after = sub(td.clone())["hidden"]
        assert not torch.allclose(before, after)

    def test_state_dict_lists_each_tensor_once(self):
        op = _op()
        keys = list(op.state_dict().keys())
        assert len(keys) == len(set(keys)) == 6
        assert all(k.startswith("module.") for k in keys)

    def test_policy_loss_trains_trunk_and_policy_only(self):
        op = _op()
        pol = op.get_policy_operator()
        with set_exploration_type(ExplorationType.RANDOM):
            out = pol(_td())
        (out["action"].sum() + out["sample_log_prob"].sum()).backward()
        assert all(g is not None and g.abs().sum() > 0 for g in _grads(op.trunk_parameters()))
        assert all(g is not None for g in _grads(op.policy_parameters()))
        assert all(g is None for g in _grads(op.value_parameters()))

    def test_value_loss_trains_trunk_and_value_only(self):
        op = _op()
        out = op.get_value_operator()(_td())
        out["state_value"].sum().backward()
        assert all(g is not None and g.abs().sum() > 0 for g in _grads(op.trunk_parameters()))
        assert all(g is None for g in _grads(op.policy_parameters()))
        assert all(g is not None for g in _grads(op.value_parameters()))

    def test_heads_alone_train_only_themselves(self):
        op = _op()
        hidden = TensorDict(hidden=torch.randn(3, 4), batch_size=[3])
        out = op.get_policy_head()(hidden.clone())
        assert set(out.keys()) == {"hidden", "loc", "scale", "action", "sample_log_prob"}
        out["sample_log_prob"].sum().backward()
        assert all(g is None for g in _grads(op.trunk_parameters()))
        assert all(g is not None for g in _grads(op.policy_parameters()))
        out = op.get_value_head()(hidden.clone())
        assert set(out.keys()) == {"hidden", "state_value"}
        assert out["state_value"].shape == (3, 1)

    def test_heads_missing_hidden_raise_keyerror(self):
        op = _op()
        with pytest.raises(KeyError, match="'hidden'"):
            op.get_value_head()(TensorDict(observation=torch.zeros(3, 4), batch_size=[3]))

    def test_parameter_groups(self):
        op = _op()
        t, p, v = (list(g) for g in (op.trunk_parameters(), op.policy_parameters(),
                                     op.value_parameters()))
        assert [len(t), len(p), len(v)] == [2, 2, 2]
        ids = [id(x) for x in t + p + v]
        assert len(ids) == len(set(ids))
        assert set(ids) == {id(x) for x in op.parameters()}
        assert t[0] is _trunk_w(op)
        torch.optim.Adam([{"params": t, "lr": 1e-4}, {"params": p}, {"params": v}], lr=1e-3)

    def test_parameter_groups_never_repeat_shared_parameters(self):
        shared = nn.Linear(4, 1)
        trunk_lin = nn.Linear(4, 4)
        trunk = SafeModule(trunk_lin, ["observation"], ["hidden"])
        policy = Actor(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), in_keys=["hidden"])
        value = SafeSequential(
            SafeModule(trunk_lin, ["hidden"], ["h2"]),  # reuses the trunk's layer
            SafeModule(shared, ["h2"], ["state_value"]),
        )
        op = ActorValueOperator(trunk, policy, value)
        groups = [list(op.trunk_parameters()), list(op.policy_parameters()),
                  list(op.value_parameters())]
        assert [len(g) for g in groups] == [2, 2, 2]
        ids = [id(x) for g in groups for x in g]
        assert len(ids) == len(set(ids)) == len(list(op.parameters()))
        assert any(x is trunk_lin.weight for x in groups[0])
        assert not any(x is trunk_lin.weight for x in groups[2])
        # a layer shared by both heads goes to the policy group only
        policy2 = Actor(shared, in_keys=["hidden"])
        value2 = ValueOperator(shared, in_keys=["hidden"])
        op2 = ActorValueOperator(trunk, policy2, value2)
        assert [id(x) for x in op2.policy_parameters()] == [id(shared.weight), id(shared.bias)]
        assert list(op2.value_parameters()) == []

    def test_to_dtype_keeps_getters_shared(self):
        op = _op()
        pol = op.get_policy_operator()
        op.to(torch.float64)
        assert all(p.dtype == torch.float64 for p in pol.parameters())
        assert pol.module[0] is op.module[0]
        td = TensorDict(observation=torch.randn(2, 4, dtype=torch.float64), batch_size=[2])
        assert op.get_value_operator()(td)["state_value"].dtype == torch.float64
        op.to("cpu")
        assert pol.module[0] is op.module[0]

    def test_train_eval_reaches_getters(self):
        op = _op()
        op.eval()
        assert not op.get_policy_operator().training
        assert not op.get_value_operator().training
        assert not op.module[1].training
        op.train()
        assert op.get_policy_operator().training and op.module[0].training

    def test_state_dict_round_trip(self):
        torch.manual_seed(0)
        op = _op()
        torch.manual_seed(1)
        other = _op()
        td = _td()
        assert not torch.allclose(op(td.clone())["state_value"], other(td.clone())["state_value"])
        other.load_state_dict(op.state_dict())
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            a, b = op(td.clone()), other(td.clone())
            pa = other.get_policy_operator()(td.clone())
        for key in ("hidden", "loc", "scale", "action", "sample_log_prob", "state_value"):
            torch.testing.assert_close(a[key], b[key])
        torch.testing.assert_close(pa["action"], a["action"])

    def test_deepcopy_is_independent(self):
        op = _op()
        cp = copy.deepcopy(op)
        pol = cp.get_policy_operator()
        assert pol.module[0] is cp.module[0] and pol.module[0] is not op.module[0]
        with torch.no_grad():
            _trunk_w(cp).zero_()
        assert _trunk_w(op).abs().sum() > 0
        assert pol.module[0].module.weight.abs().sum() == 0

    def test_pickle_round_trip_keeps_mode_and_sharing(self):
        op = _op(trunk_grad="policy")
        cp = pickle.loads(pickle.dumps(op))
        assert cp.trunk_grad == "policy"
        assert cp.get_policy_operator().module[0] is cp.module[0]
        td = _td()
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            torch.testing.assert_close(cp(td.clone())["action"], op(td.clone())["action"])
        cp(td.clone())["state_value"].sum().backward()
        assert _trunk_w(cp).grad is None

    def test_deterministic_policy_head(self):
        trunk = SafeModule(nn.Linear(4, 4), ["observation"], ["hidden"])
        actor = Actor(nn.Linear(4, 2), in_keys=["hidden"])
        op = ActorValueOperator(trunk, actor, ValueOperator(nn.Linear(4, 1), ["hidden"]))
        pol = op.get_policy_operator()
        assert type(pol) is SafeSequential
        assert set(pol(_td()).keys()) == {"observation", "hidden", "action"}
        with pytest.raises(AttributeError, match="not probabilistic"):
            pol.get_dist(_td())

    def test_tensordict_probabilistic_head(self):
        """A head built from tensordict's own probabilistic classes also gets get_dist."""
        trunk = SafeModule(nn.Linear(4, 4), ["observation"], ["hidden"])
        net = TensorDictModule(
            nn.Sequential(nn.Linear(4, 8), NormalParamExtractor()), ["hidden"], ["loc", "scale"]
        )
        head = ProbabilisticTensorDictSequential(
            net,
            ProbabilisticTensorDictModule(
                in_keys=["loc", "scale"], out_keys=["action"], distribution_class=torch.distributions.Normal
            ),
        )
        op = ActorValueOperator(trunk, head, ValueOperator(nn.Linear(4, 1), ["hidden"]))
        td = _td()
        dist = op.get_policy_operator().get_dist(td.clone())
        assert isinstance(dist, torch.distributions.Normal) and dist.loc.shape == (3, 4)
        assert op(td)["action"].shape == (3, 4)

    def test_append_is_refused(self):
        op = _op()
        with pytest.raises(TypeError, match="fixed layout"):
            op.append(SafeModule(nn.Identity(), ["action"], ["a2"]))

    @settings(max_examples=15, deadline=None)
    @given(
        batch=st.lists(st.integers(1, 4), min_size=0, max_size=2),
        mode=st.sampled_from(["both", "policy", "value"]),
    )
    def test_shapes_and_values_do_not_depend_on_trunk_grad(self, batch, mode):
        torch.manual_seed(0)
        op = _op(trunk_grad=mode)
        ref = copy.deepcopy(op)
        ref.trunk_grad = "both"
        td = _td(tuple(batch))
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            out, exp = op(td.clone()), ref(td.clone())
        b = tuple(batch)
        assert out["action"].shape == (*b, 4)
        assert out["sample_log_prob"].shape == b
        assert out["state_value"].shape == (*b, 1)
        for key in ("hidden", "action", "sample_log_prob", "state_value"):
            torch.testing.assert_close(out[key], exp[key])
        # the TensorDict keeps the graph-connected hidden state
        assert out["hidden"].requires_grad and out["hidden"].grad_fn is not None


# --- trunk_grad ----------------------------------------------------------------------------


class TestTrunkGrad:
    @pytest.mark.parametrize("mode", ["both", "policy", "value"])
    def test_which_loss_reaches_the_trunk(self, mode):
        op = _op(trunk_grad=mode)
        assert op.trunk_grad == mode
        td = _td()
        with set_exploration_type(ExplorationType.RANDOM):
            out = op(td)
        out["state_value"].sum().backward(retain_graph=True)
        value_reaches = _trunk_w(op).grad is not None and _trunk_w(op).grad.abs().sum() > 0
        assert value_reaches == (mode in ("both", "value"))
        assert all(g is not None for g in _grads(op.value_parameters()))
        _zero(op)
        out["sample_log_prob"].sum().backward()
        policy_reaches = _trunk_w(op).grad is not None and _trunk_w(op).grad.abs().sum() > 0
        assert policy_reaches == (mode in ("both", "policy"))
        assert all(g is not None for g in _grads(op.policy_parameters()))

    def test_trunk_gradient_equals_the_chosen_heads(self):
        torch.manual_seed(0)
        op = _op(trunk_grad="policy")
        td = _td()
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            out = op(td.clone())
            (out["sample_log_prob"].sum() + out["state_value"].sum()).backward()
            combined = _trunk_w(op).grad.clone()
            _zero(op)
            out = op.get_policy_operator()(td.clone())
            out["sample_log_prob"].sum().backward()
        torch.testing.assert_close(combined, _trunk_w(op).grad)

    @pytest.mark.parametrize("mode", ["policy", "value"])
    def test_standalone_getters_never_detach(self, mode):
        op = _op(trunk_grad=mode)
        out = op.get_policy_operator()(_td())
        out["sample_log_prob"].sum().backward()
        assert _trunk_w(op).grad is not None
        _zero(op)
        op.get_value_operator()(_td())["state_value"].sum().backward()
        assert _trunk_w(op).grad is not None

    def test_switch_at_runtime(self):
        op = _op()
        op.trunk_grad = "policy"
        op(_td())["state_value"].sum().backward()
        assert _trunk_w(op).grad is None
        op.trunk_grad = "both"
        op(_td())["state_value"].sum().backward()
        assert _trunk_w(op).grad is not None
        assert "trunk_grad" not in repr(op).split("\n")[0]
        op.trunk_grad = "value"
        assert "trunk_grad='value'" in repr(op)

    def test_invalid_value(self):
        with pytest.raises(ValueError, match=r"trunk_grad must be one of \['both', 'policy', 'value'\], got 'actor'"):
            _op(trunk_grad="actor")
        op = _op()
        with pytest.raises(ValueError, match="trunk_grad must be one of"):
            op.trunk_grad = None
        assert op.trunk_grad == "both"


# --- nested keys ---------------------------------------------------------------------------


class TestNestedKeys:
    def test_nested_hidden_and_outputs(self):
        hidden = ("agent", "hidden")
        trunk, policy, value = _parts(
            obs=("agent", "obs"), hidden=hidden, value_out=[("agent", "state_value")]
        )
        op = ActorValueOperator(trunk, policy, value, trunk_grad="policy")
        td = TensorDict({"agent": {"obs": torch.randn(3, 4)}}, batch_size=[3])
        out = op(td.clone())
        assert out["agent", "hidden"].shape == (3, 4)
        assert out["agent", "state_value"].shape == (3, 1)
        assert out["action"].shape == (3, 4)
        assert op.in_keys == [("agent", "obs")]
        out["agent", "state_value"].sum().backward()
        assert _trunk_w(op).grad is None  # detached for the value head, nested key included
        assert out["agent", "hidden"].grad_fn is not None
        vo = op.get_value_operator()(td.clone())
        assert set(vo.keys(include_nested=True, leaves_only=True)) == {
            ("agent", "obs"), ("agent", "hidden"), ("agent", "state_value")
        }
        head_only = TensorDict({"agent": {"hidden": torch.randn(2, 4)}}, batch_size=[2])
        assert op.get_value_head()(head_only)["agent", "state_value"].shape == (2, 1)
