"""Actor-critic errors, ActorCriticOperator, ActorCriticWrapper and interaction types."""
from __future__ import annotations

import copy

import pytest
import torch
from actor_critic_parts import (
    _critic,
    _grads,
    _leaves,
    _op,
    _parts,
    _td,
    _trunk_w,
    _zero,
)
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    NormalParamExtractor,
    ProbabilisticActor,
    SafeProbabilisticTensorDictSequential,
    TanhNormal,
    ValueOperator,
)

# --- errors --------------------------------------------------------------------------------


class TestErrors:
    def test_value_head_reads_a_key_the_trunk_does_not_write(self):
        trunk, policy, _ = _parts()
        bad = ValueOperator(nn.Linear(4, 1), in_keys=["embedding"])
        with pytest.raises(ValueError) as err:
            ActorValueOperator(trunk, policy, bad)
        msg = str(err.value)
        assert "value head reads ['embedding']" in msg
        assert "common operator does not write it" in msg and "['hidden']" in msg

    def test_policy_head_reads_a_key_the_trunk_does_not_write(self):
        trunk, _, value = _parts()
        _, policy, _ = _parts(hidden="latent")
        with pytest.raises(ValueError, match=r"policy head reads \['latent'\].*writes \['hidden'\]"):
            ActorValueOperator(trunk, policy, value)

    def test_extra_external_inputs_are_allowed_and_listed(self):
        trunk, policy, _ = _parts()
        value = ValueOperator(lambda h, m: h.sum(-1, keepdim=True) * m, in_keys=["hidden", "mask"])
        op = ActorValueOperator(trunk, policy, value)
        assert op.in_keys == ["observation", "mask"]
        td = _td()
        with pytest.raises(KeyError, match="'mask'"):
            op(td)
        assert set(td.keys()) == {"observation"}  # checked before anything is written

    @pytest.mark.parametrize("which", [0, 1, 2])
    def test_parts_must_be_tensordict_modules(self, which):
        parts = list(_parts())
        parts[which] = nn.Linear(4, 4)
        name = ["common_operator", "policy_operator", "value_operator"][which]
        with pytest.raises(TypeError, match=f"{name} must be a TensorDict module.*got Linear"):
            ActorValueOperator(*parts)


# --- ActorCriticOperator -------------------------------------------------------------------


class TestActorCriticOperator:
    def _op(self, **kw):
        trunk, policy, _ = _parts()
        return ActorCriticOperator(trunk, policy, _critic(), **kw)

    def test_forward_and_getters(self):
        op = self._op()
        assert isinstance(op, ActorValueOperator)
        td = _td()
        out = op(td.clone())
        assert _leaves(out)["state_action_value"] == ((3, 1), torch.float32)
        assert "state_value" not in out.keys()
        assert op.get_critic_operator() is op
        pol = op.get_policy_operator()
        assert isinstance(pol, SafeProbabilisticTensorDictSequential)
        assert set(pol(td.clone()).keys()) == {
            "observation", "hidden", "loc", "scale", "action", "sample_log_prob"
        }
        critic = op.get_value_head()
        q = critic.module(torch.cat([out["hidden"], out["action"]], -1))
        torch.testing.assert_close(out["state_action_value"], q)
        assert op.get_policy_head() is op.module[1]

    def test_get_value_operator_raises(self):
        op = self._op()
        with pytest.raises(RuntimeError) as err:
            op.get_value_operator()
        assert "state-action value" in str(err.value)
        assert "get_critic_operator()" in str(err.value)

    def test_state_value_head_is_rejected(self):
        trunk, policy, value = _parts()
        with pytest.raises(ValueError) as err:
            ActorCriticOperator(trunk, policy, value)
        msg = str(err.value)
        assert "writes 'state_value'" in msg and "state-action value" in msg
        assert "ActorValueOperator" in msg
        # a critic that reads the action but still writes state_value: same refusal
        with pytest.raises(ValueError, match="writes 'state_value'"):
            ActorCriticOperator(trunk, policy, _critic(out=["state_value"]))

    def test_critic_must_read_the_action_and_write_q(self):
        trunk, policy, _ = _parts()
        no_action = ValueOperator(nn.Linear(4, 1), in_keys=["hidden"], out_keys=["state_action_value"])
        with pytest.raises(ValueError, match=r"must read the action.*reads \['hidden'\]"):
            ActorCriticOperator(trunk, policy, no_action)
        with pytest.raises(ValueError, match=r"must write 'state_action_value'.*\['q'\]"):
            ActorCriticOperator(trunk, policy, _critic(out=["q"]))

    def test_gradients(self):
        op = self._op()
        with set_exploration_type(ExplorationType.RANDOM):
            out = op(_td())
        out["state_action_value"].sum().backward()
        # Q(s, pi(s)) reaches the critic, the policy head (through the action) and the trunk
        for group in (op.trunk_parameters(), op.policy_parameters(), op.value_parameters()):
            assert all(g is not None for g in _grads(group))
        _zero(op)
        op.get_policy_operator()(_td())["sample_log_prob"].sum().backward()
        assert all(g is None for g in _grads(op.value_parameters()))
        assert _trunk_w(op).grad is not None

    def test_trunk_grad_policy_detaches_only_the_hidden_state(self):
        torch.manual_seed(0)
        op = self._op(trunk_grad="policy")
        ref = copy.deepcopy(op)
        ref.trunk_grad = "both"
        td = _td()
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            op(td.clone())["state_action_value"].sum().backward()
            ref(td.clone())["state_action_value"].sum().backward()
        # the critic reads a detached hidden state, but the action still carries gradient
        assert _trunk_w(op).grad is not None
        assert all(g is not None for g in _grads(op.policy_parameters()))
        assert not torch.allclose(_trunk_w(op).grad, _trunk_w(ref).grad)

    def test_parameter_groups(self):
        op = self._op()
        groups = [list(op.trunk_parameters()), list(op.policy_parameters()),
                  list(op.value_parameters())]
        assert [len(g) for g in groups] == [2, 2, 2]
        assert {id(p) for g in groups for p in g} == {id(p) for p in op.parameters()}


# --- ActorCriticWrapper --------------------------------------------------------------------


class TestActorCriticWrapper:
    def _parts(self):
        net = TensorDictModule(
            nn.Sequential(nn.Linear(4, 8), NormalParamExtractor()),
            in_keys=["observation"], out_keys=["loc", "scale"],
        )
        policy = ProbabilisticActor(
            net, in_keys=["loc", "scale"], distribution_class=TanhNormal, return_log_prob=True
        )
        return policy, ValueOperator(nn.Linear(4, 1), in_keys=["observation"])

    def test_forward_and_getters(self):
        policy, value = self._parts()
        op = ActorCriticWrapper(policy, value)
        td = _td()
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            out = op(td.clone())
            pol = op.get_policy_operator()(td.clone())
        assert set(out.keys()) == {
            "observation", "loc", "scale", "action", "sample_log_prob", "state_value"
        }
        torch.testing.assert_close(out["action"], pol["action"])
        assert op.get_policy_operator() is policy and op.get_policy_head() is policy
        assert op.get_value_operator() is value and op.get_value_head() is value
        assert isinstance(op.get_policy_operator().get_dist(td.clone()), TanhNormal)

    def test_parameter_groups_and_gradients(self):
        policy, value = self._parts()
        op = ActorCriticWrapper(policy, value)
        assert list(op.trunk_parameters()) == []
        assert len(list(op.policy_parameters())) == 2 and len(list(op.value_parameters())) == 2
        op.get_value_operator()(_td())["state_value"].sum().backward()
        assert all(g is None for g in _grads(op.policy_parameters()))
        assert all(g is not None for g in _grads(op.value_parameters()))

    def test_state_dict_round_trip(self):
        a, b = ActorCriticWrapper(*self._parts()), ActorCriticWrapper(*self._parts())
        b.load_state_dict(a.state_dict())
        td = _td()
        torch.testing.assert_close(a(td.clone())["state_value"], b(td.clone())["state_value"])

    def test_rejects_non_modules(self):
        policy, _ = self._parts()
        with pytest.raises(TypeError, match="value_operator must be a TensorDict module"):
            ActorCriticWrapper(policy, nn.Linear(4, 1))
        with pytest.raises(TypeError, match="fixed layout"):
            ActorCriticWrapper(*self._parts()).append(policy)


# --- interaction (exploration) types --------------------------------------------------------


class TestInteractionTypes:
    def test_default_is_deterministic(self):
        op = _op()
        td = _td()
        a, b = op(td.clone()), op(td.clone())
        torch.testing.assert_close(a["action"], b["action"])
        torch.testing.assert_close(a["action"], torch.tanh(a["loc"]))
        pol = op.get_policy_operator()
        assert pol.default_interaction_type is ExplorationType.DETERMINISTIC

    def test_random_samples_and_log_prob(self):
        op = _op()
        pol = op.get_policy_operator()
        td = _td((64,))
        with set_exploration_type(ExplorationType.RANDOM):
            a, b = op(td.clone()), pol(td.clone())
        assert not torch.allclose(a["action"], b["action"])
        assert a["action"].abs().max() < 1 and b["action"].abs().max() < 1
        dist = pol.get_dist(td.clone())
        assert isinstance(dist, TanhNormal)
        # atanh of an action near +-1 loses a little precision: compare loosely
        tol = {"rtol": 1e-4, "atol": 1e-3}
        torch.testing.assert_close(dist.log_prob(a["action"]), a["sample_log_prob"], **tol)
        torch.testing.assert_close(pol.log_prob(b), b["sample_log_prob"], **tol)

    def test_policy_operator_follows_the_exploration_type(self):
        op = _op()
        pol = op.get_policy_operator()
        td = _td()
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            det = pol(td.clone())
        torch.testing.assert_close(det["action"], torch.tanh(det["loc"]))
        with set_exploration_type(ExplorationType.RANDOM):
            rnd = pol(td.clone())
        assert not torch.allclose(det["action"], rnd["action"])
