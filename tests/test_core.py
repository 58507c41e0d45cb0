"""Module core: SafeModule, SafeSequential, probabilistic modules, actors, MLP, exploration."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.nn.probabilistic import InteractionType, set_interaction_type
from torch import nn

from tdrl.data import Bounded, Composite
from tdrl.envs.utils import ExplorationType, exploration_type, set_exploration_type
from tdrl.modules import (
    MLP,
    Actor,
    NormalParamExtractor,
    ProbabilisticActor,
    SafeModule,
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
    SafeSequential,
    TanhNormal,
    ValueOperator,
)
from tdrl.modules.tensordict_module.core import as_step


def _td(batch=(3,), obs=4, key="observation"):
    return TensorDict({key: torch.randn(*batch, obs)}, batch_size=batch)


def _tanh_actor(obs_key="observation", n=4, **kw):
    net = TensorDictModule(
        nn.Sequential(nn.Linear(n, 2 * n), NormalParamExtractor()),
        in_keys=[obs_key],
        out_keys=["loc", "scale"],
    )
    return ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal, **kw)


# --- SafeModule ---------------------------------------------------------------------------
class TestSafeModule:
    def test_is_tensordict_module_and_writes_output(self):
        lin = nn.Linear(4, 2)
        mod = SafeModule(lin, in_keys=["observation"], out_keys=["out"])
        assert isinstance(mod, TensorDictModuleBase)
        td = _td()
        out = mod(td)
        assert out is td
        torch.testing.assert_close(td["out"], lin(td["observation"]))
        assert td["out"].dtype == torch.float32

    @pytest.mark.parametrize("batch", [(), (3,), (2, 5)])
    def test_batch_dims(self, batch):
        mod = SafeModule(nn.Linear(4, 2), in_keys=["observation"], out_keys=["out"])
        assert mod(_td(batch))["out"].shape == (*batch, 2)

    def test_nested_keys(self):
        mod = SafeModule(nn.Linear(4, 2), in_keys=[("agent", "obs")], out_keys=[("agent", "out")])
        assert mod.in_keys == [("agent", "obs")]
        td = TensorDict({"agent": {"obs": torch.randn(3, 4)}}, batch_size=[3])
        assert mod(td)["agent", "out"].shape == (3, 2)

    def test_multiple_outputs_and_dict_in_keys(self):
        mod = SafeModule(lambda a, b: (a + b, a - b), in_keys={"b": "y", "a": "x"}, out_keys=["s", "d"])
        td = TensorDict(x=torch.ones(2), y=torch.full((2,), 3.0), batch_size=[2])
        mod(td)
        torch.testing.assert_close(td["s"], torch.full((2,), 4.0))
        torch.testing.assert_close(td["d"], torch.full((2,), -2.0))

    def test_missing_key_names_key_module_and_present_keys(self):
        mod = SafeModule(nn.Linear(4, 2), in_keys=["obs"], out_keys=["out"])
        td = _td()
        with pytest.raises(KeyError) as err:
            mod(td)
        msg = str(err.value)
        assert "'obs'" in msg and "SafeModule" in msg and "observation" in msg
        assert "out" not in td.keys()

    def test_wrong_output_count(self):
        mod = SafeModule(nn.Linear(4, 2), in_keys=["observation"], out_keys=["a", "b"])
        td = _td()
        with pytest.raises(ValueError, match="returned 1 tensor but has 2 out_keys"):
            mod(td)
        assert "a" not in td.keys()

    def test_safe_projects_into_spec(self):
        lin = nn.Linear(4, 2)
        with torch.no_grad():
            lin.weight.fill_(10.0)
        spec = Bounded(-0.5, 0.5, shape=(2,))
        mod = SafeModule(lin, in_keys=["observation"], out_keys=["action"], spec=spec, safe=True)
        td = TensorDict(observation=torch.ones(3, 4), batch_size=[3])
        assert (mod(td)["action"] == 0.5).all()
        assert isinstance(mod.spec, Composite)
        unsafe = SafeModule(lin, in_keys=["observation"], out_keys=["action"], spec=spec)
        assert (unsafe(td.clone())["action"] > 0.5).all()

    def test_safe_without_spec_raises(self):
        with pytest.raises(RuntimeError, match="not a valid configuration.*give a spec"):
            SafeModule(nn.Linear(4, 2), ["observation"], ["out"], safe=True)

    def test_bad_arguments(self):
        with pytest.raises(TypeError, match="callable"):
            SafeModule(nn.Linear, ["observation"], ["out"])
        with pytest.raises(TypeError, match="in_keys"):
            SafeModule(nn.Linear(4, 2), [1.5], ["out"])
        with pytest.raises(TypeError, match="SafeSequential"):
            SafeModule(SafeModule(nn.Linear(4, 2), ["a"], ["b"]), ["a"], ["c"])

    def test_gradients_flow(self):
        lin = nn.Linear(4, 2)
        mod = SafeModule(lin, ["observation"], ["out"])
        mod(_td())["out"].sum().backward()
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0

    def test_state_dict_and_device_move(self):
        mod = SafeModule(nn.Linear(4, 2), ["observation"], ["out"],
                         spec=Bounded(-1.0, 1.0, shape=(2,)), safe=True)
        sd = mod.state_dict()
        assert set(sd) == {"module.weight", "module.bias"}
        other = SafeModule(nn.Linear(4, 2), ["observation"], ["out"])
        other.load_state_dict(sd)
        torch.testing.assert_close(other.module.weight, mod.module.weight)
        moved = mod.to(torch.device("cpu"), torch.float64)
        assert moved.module.weight.dtype == torch.float64
        assert moved.spec["out"].device == torch.device("cpu")

    def test_call_with_tensors(self):
        mod = SafeModule(lambda x: x * 2, in_keys=["x"], out_keys=["y"])
        torch.testing.assert_close(mod(x=torch.ones(3)), torch.full((3,), 2.0))
        with pytest.raises(TypeError, match="not among its in_keys"):
            mod(z=torch.ones(3))

    def test_tensordict_out(self):
        mod = SafeModule(lambda x: x * 2, in_keys=["x"], out_keys=["y"])
        td = TensorDict(x=torch.ones(2), batch_size=[2])
        out = mod(td, tensordict_out=TensorDict(batch_size=[2]))
        assert list(out.keys()) == ["y"] and "y" not in td.keys()


# --- SafeSequential -----------------------------------------------------------------------
class TestSafeSequential:
    def test_keys_and_values(self):
        l1, l2 = nn.Linear(4, 8), nn.Linear(8, 2)
        seq = SafeSequential(SafeModule(l1, ["observation"], ["hidden"]),
                             TensorDictModule(l2, ["hidden"], ["out"]))
        assert seq.in_keys == ["observation"] and seq.out_keys == ["hidden", "out"]
        td = _td()
        seq(td)
        torch.testing.assert_close(td["out"], l2(l1(td["observation"])))

    def test_matches_tensordict_sequential(self):
        l1, l2 = nn.Linear(4, 8), nn.Linear(8, 2)
        a = TensorDictModule(l1, ["observation"], ["hidden"])
        b = TensorDictModule(l2, ["hidden"], ["out"])
        td = _td((2, 3))
        ref = TensorDictSequential(a, b)(td.clone())
        ours = SafeSequential(a, b)(td.clone())
        assert set(ours.keys()) == set(ref.keys())
        torch.testing.assert_close(ours["out"], ref["out"])

    def test_hooks_on_user_module_are_honoured(self):
        tdm = TensorDictModule(nn.Linear(4, 2), ["observation"], ["out"])
        seq = SafeSequential(tdm)
        calls = []
        tdm.register_forward_hook(lambda m, args, out: calls.append(1))
        seq(_td())
        assert calls == [1]

    def test_hooks_on_tdrl_child_are_honoured(self):
        child = SafeModule(nn.Linear(4, 2), ["observation"], ["out"])
        seq = SafeSequential(child)
        seen = []
        child.register_forward_hook(lambda m, args, out: seen.append(out["out"].shape))
        seq(_td())
        assert seen == [torch.Size([3, 2])]

    def test_lean_path_used_for_plain_tensordict_module(self):
        tdm = TensorDictModule(nn.Linear(4, 2), ["observation"], ["out"])
        assert type(as_step(tdm)).__name__ == "_LeafStep"
        assert type(as_step(SafeModule(nn.Linear(4, 2), ["observation"], ["out"]))).__name__ == (
            "_LeafStep"
        )
        sub = type("Sub", (TensorDictModule,), {})(nn.Linear(4, 2), ["observation"], ["out"])
        assert as_step(sub) is sub

    def test_hooks_on_wrapped_network_registered_after_first_call(self):
        lin = nn.Linear(4, 2)
        seq = SafeSequential(SafeModule(lin, ["observation"], ["out"]),
                             TensorDictModule(nn.Linear(2, 2), ["out"], ["out2"]))
        seq(_td())  # the fast path is primed
        handle = lin.register_forward_hook(lambda m, args, out: out * 0)
        td = seq(_td())
        assert (td["out"] == 0).all()
        handle.remove()
        assert not (seq(_td())["out"] == 0).all()

    def test_global_hooks_are_honoured(self):
        seq = SafeSequential(SafeModule(nn.Linear(4, 2), ["observation"], ["out"]))
        seen = []
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda m, args, out: seen.append(type(m).__name__)
        )
        try:
            seq(_td())
        finally:
            handle.remove()
        assert "Linear" in seen and "SafeModule" in seen

    def test_subclass_overriding_run_is_not_bypassed(self):
        class Doubler(SafeModule):
            def _run(self, td):
                td = super()._run(td)
                return td.set("out", td["out"] * 2)

        lin = nn.Linear(4, 2)
        seq = SafeSequential(Doubler(lin, ["observation"], ["out"]))
        td = _td()
        torch.testing.assert_close(seq(td)["out"], lin(td["observation"]) * 2)

    def test_missing_late_input_leaves_td_untouched(self):
        seq = SafeSequential(
            SafeModule(nn.Linear(4, 4), ["observation"], ["hidden"]),
            SafeModule(torch.add, ["hidden", "other"], ["out"]),
        )
        td = _td()
        with pytest.raises(KeyError) as err:
            seq(td)
        assert "'other'" in str(err.value) and "observation" in str(err.value)
        assert set(td.keys()) == {"observation"}

    def test_missing_first_input(self):
        seq = SafeSequential(TensorDictModule(nn.Linear(4, 4), ["obs"], ["hidden"]))
        with pytest.raises(KeyError, match="'obs'.*keys present: \\['observation'\\]"):
            seq(_td())

    def test_indexing_and_append(self):
        a = SafeModule(nn.Linear(4, 4), ["observation"], ["h"])
        b = SafeModule(nn.Linear(4, 2), ["h"], ["out"])
        seq = SafeSequential(a, b)
        assert len(seq) == 2 and seq[0] is a
        assert isinstance(seq[1:], SafeSequential) and seq[1:].in_keys == ["h"]
        seq2 = SafeSequential(a).append(b)
        assert seq2.out_keys == ["h", "out"] and "out" in seq2(_td()).keys()

    def test_rejects_non_modules(self):
        with pytest.raises(TypeError, match="module 0"):
            SafeSequential(nn.Linear(4, 4))
        with pytest.raises(ValueError, match="at least one"):
            SafeSequential()

    def test_deepcopy_and_pickle_are_independent(self):
        seq = SafeSequential(SafeModule(nn.Linear(4, 2), ["observation"], ["out"]),
                             TensorDictModule(nn.Linear(2, 2), ["out"], ["out2"]))
        twin = copy.deepcopy(seq)
        with torch.no_grad():
            twin.module[0].module.weight.zero_()
            twin.module[0].module.bias.zero_()
            twin.module[1].module.bias.fill_(7.0)
            twin.module[1].module.weight.zero_()
        td = _td()
        assert (twin(td.clone())["out2"] == 7.0).all()
        assert not (seq(td.clone())["out2"] == 7.0).all()
        restored = pickle.loads(pickle.dumps(seq))
        torch.testing.assert_close(restored(td.clone())["out2"], seq(td.clone())["out2"])

    def test_spec_union(self):
        seq = SafeSequential(
            SafeModule(nn.Linear(4, 2), ["observation"], ["action"], spec=Bounded(-1.0, 1.0, shape=(2,)))
        )
        assert "action" in seq.spec.keys()


# --- Probabilistic modules ----------------------------------------------------------------
class TestProbabilistic:
    def test_default_is_deterministic(self):
        actor = _tanh_actor(return_log_prob=True)
        td = _td()
        a1 = actor(td.clone())["action"]
        a2 = actor(td.clone())["action"]
        torch.testing.assert_close(a1, a2)
        loc = actor.module[0](td.clone())["loc"]
        torch.testing.assert_close(a1, torch.tanh(loc))
        assert actor.default_interaction_type is InteractionType.DETERMINISTIC

    def test_random_samples_differ_and_log_prob_matches_dist(self):
        # seeded: which draws land next to the tanh bounds (where float32 log-probs recomputed
        # from the action drift past 1e-4) must not depend on the tests that ran before
        torch.manual_seed(0)
        actor = _tanh_actor(return_log_prob=True)
        td = _td((64,))
        with set_exploration_type(ExplorationType.RANDOM):
            out1 = actor(td.clone())
            out2 = actor(td.clone())
        assert not torch.allclose(out1["action"], out2["action"])
        assert out1["action"].abs().max() < 1
        assert out1["sample_log_prob"].shape == (64,)
        dist = actor.get_dist(td.clone())
        torch.testing.assert_close(dist.log_prob(out1["action"]), out1["sample_log_prob"],
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(actor.log_prob(out1), out1["sample_log_prob"], rtol=1e-4, atol=1e-4)

    def test_tensordict_interaction_switch_is_shared(self):
        actor = _tanh_actor()
        td = _td((32,))
        with set_interaction_type("random"):
            assert exploration_type() is ExplorationType.RANDOM
            a = actor(td.clone())["action"]
        b = actor(td.clone())["action"]
        assert not torch.allclose(a, b)

    def test_mode_and_mean(self):
        actor = _tanh_actor()
        td = _td()
        with set_exploration_type(ExplorationType.MODE):
            mode = actor(td.clone())["action"]
        assert mode.shape == (3, 4) and mode.abs().max() < 1

    def test_custom_keys_and_log_prob_key(self):
        actor = _tanh_actor(out_keys=[("agent", "action")], return_log_prob=True,
                            log_prob_key=("agent", "lp"))
        td = actor(_td())
        assert td["agent", "action"].shape == (3, 4) and td["agent", "lp"].shape == (3,)
        assert actor.out_keys == ["loc", "scale", ("agent", "action"), ("agent", "lp")]

    def test_distribution_kwargs_tensors_move_with_module(self):
        actor = _tanh_actor(distribution_kwargs={"low": torch.full((4,), -2.0),
                                                 "high": torch.full((4,), 2.0)})
        assert "module.1._dist_kw_low" in actor.state_dict()
        actor = actor.to(torch.float64)
        td = TensorDict(observation=torch.randn(3, 4, dtype=torch.float64) * 50, batch_size=[3])
        with set_exploration_type(ExplorationType.RANDOM):
            a = actor(td)["action"]
        assert a.dtype == torch.float64 and a.abs().max() <= 2 and a.abs().max() > 1

    def test_spec_and_safe(self):
        spec = Bounded(-0.1, 0.1, shape=(4,))
        actor = _tanh_actor(spec=spec, safe=True)
        with set_exploration_type(ExplorationType.RANDOM):
            a = actor(_td((50,)))["action"]
        assert a.abs().max() <= 0.1 + 1e-7
        assert isinstance(actor.spec, Composite) and "action" in actor.spec.keys()

    def test_gradient_through_rsample(self):
        actor = _tanh_actor(return_log_prob=True)
        with set_exploration_type(ExplorationType.RANDOM):
            td = actor(_td())
        (td["action"].sum() + td["sample_log_prob"].sum()).backward()
        w = actor.module[0].module[0].weight
        assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0

    def test_categorical_distribution(self):
        net = TensorDictModule(nn.Linear(4, 3), ["observation"], ["logits"])
        actor = ProbabilisticActor(net, in_keys=["logits"],
                                   distribution_class=torch.distributions.Categorical,
                                   return_log_prob=True)
        td = actor(_td((5,)))
        assert td["action"].dtype == torch.int64 and td["action"].shape == (5,)
        torch.testing.assert_close(td["action"], td["logits"].argmax(-1))

    def test_errors(self):
        with pytest.raises(TypeError, match="TensorDict module"):
            ProbabilisticActor(nn.Linear(4, 4), in_keys=["loc", "scale"])
        with pytest.raises(TypeError, match="must be probabilistic"):
            SafeProbabilisticTensorDictSequential(SafeModule(nn.Linear(4, 4), ["a"], ["b"]))
        mod = SafeProbabilisticModule(["loc", "scale"], distribution_class=TanhNormal)
        with pytest.raises(KeyError, match="'scale'"):
            mod(TensorDict(loc=torch.zeros(2, 3), batch_size=[2]))


# --- Actor, ValueOperator, MLP ------------------------------------------------------------
def test_actor_defaults():
    actor = Actor(nn.Linear(4, 2))
    assert actor.in_keys == ["observation"] and actor.out_keys == ["action"]
    assert actor(_td())["action"].shape == (3, 2)


def test_value_operator_keys():
    v = ValueOperator(nn.Linear(4, 1))
    assert v.in_keys == ["observation"] and v.out_keys == ["state_value"]
    assert v(_td())["state_value"].shape == (3, 1)
    q = ValueOperator(MLP(in_features=6, out_features=1, depth=3, num_cells=8), in_keys=["observation", "action"])
    assert q.out_keys == ["state_action_value"]
    td = TensorDict(observation=torch.randn(3, 4), action=torch.randn(3, 2), batch_size=[3])
    assert q(td)["state_action_value"].shape == (3, 1)


class TestMLP:
    def test_structure(self):
        mlp = MLP(in_features=4, out_features=3, depth=2, num_cells=16, activation_class=nn.ReLU)
        assert [type(m) for m in mlp] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
        assert mlp[0].in_features == 4 and mlp[-1].out_features == 3

    def test_lazy_and_list_cells(self):
        mlp = MLP(out_features=2, num_cells=[8, 4])
        assert mlp(torch.zeros(5, 7)).shape == (5, 2)
        assert mlp[2].in_features == 8 and mlp[2].out_features == 4

    def test_depth_zero_is_linear(self):
        mlp = MLP(in_features=3, out_features=2, depth=0)
        assert len(mlp) == 1 and isinstance(mlp[0], nn.Linear)

    def test_errors(self):
        with pytest.raises(ValueError, match="out_features"):
            MLP(in_features=3)
        with pytest.raises(ValueError, match="depth=3 disagrees"):
            MLP(in_features=3, out_features=1, depth=3, num_cells=[4, 4])


def test_nested_output_feeds_nested_input():
    seq = SafeSequential(
        SafeModule(lambda x: TensorDict(a=x * 2, batch_size=x.shape[:1]), ["x"], ["feats"]),
        SafeModule(lambda a: a + 1, [("feats", "a")], ["y"]),
    )
    assert seq.in_keys == ["x"]
    td = seq(TensorDict(x=torch.ones(2, 3), batch_size=[2]))
    torch.testing.assert_close(td["y"], torch.full((2, 3), 3.0))


def test_sequence_log_prob_scores_the_action_of_a_nested_actor():
    actor = _tanh_actor(return_log_prob=True)
    trunk = SafeModule(nn.Linear(4, 4), ["obs"], ["observation"])
    seq = SafeProbabilisticTensorDictSequential(trunk, actor)
    with set_exploration_type(ExplorationType.RANDOM):
        td = seq(_td(key="obs"))
    torch.testing.assert_close(seq.log_prob(td.clone()), td["sample_log_prob"], rtol=1e-4, atol=1e-4)
