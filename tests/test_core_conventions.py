"""The module core's contracts with tensordict.nn and TorchRL.

Calling conventions, the one-argument ``forward``, TorchRL's compatibility
checks, specs moving with ``.to()`` & co., SafeSequential editing, partial
tolerance and sub-sequences, and the reliability rules (NaN projection,
writing over a sub-TensorDict).
"""
from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import LazyStackedTensorDict, TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl.data import Bounded, Categorical, Composite, Unbounded
from tdrl.modules import (
    NormalParamExtractor,
    ProbabilisticActor,
    ReparamGradientStrategy,
    SafeModule,
    SafeSequential,
    TanhNormal,
    ValueOperator,
)
from tdrl.modules.tensordict_module.common import (
    ensure_tensordict_compatible,
    is_tensordict_compatible,
)
from tdrl.modules.tensordict_module.spec_moves import move_spec


def _add():
    return SafeModule(lambda a, b: (a + b, a - b), in_keys=["a", ("n", "b")], out_keys=["s", "d"])


class TestCallingConventions:
    def test_positional_tensors_follow_in_keys_and_return_out_keys(self):
        s, d = _add()(torch.ones(2, 3), torch.full((2, 3), 2.0))
        assert torch.equal(s, torch.full((2, 3), 3.0)) and torch.equal(d, -torch.ones(2, 3))

    def test_keyword_tensors_with_nested_key_joined_by_underscore(self):
        s, d = _add()(a=torch.ones(3), n_b=torch.ones(3))
        assert torch.equal(s, torch.full((3,), 2.0)) and torch.equal(d, torch.zeros(3))

    def test_single_output_is_a_tensor(self):
        lin = nn.Linear(3, 2)
        mod = SafeModule(lin, ["x"], ["y"])
        x = torch.randn(4, 3)
        assert torch.equal(mod(x), lin(x))
        assert torch.equal(mod.forward(x), lin(x))

    def test_underscore_out_key_is_not_returned(self):
        mod = SafeModule(lambda x: (x, x + 1), ["x"], ["_", "y"])
        assert torch.equal(mod(torch.zeros(2)), torch.ones(2))

    def test_matches_tensordict_module(self):
        lin = nn.Linear(3, 2)
        ours, theirs = SafeModule(lin, ["x"], ["y"]), TensorDictModule(lin, ["x"], ["y"])
        x = torch.randn(5, 3)
        assert torch.equal(ours(x), theirs(x))
        assert torch.equal(ours(x=x), theirs(x=x))

    def test_errors_name_the_problem(self):
        mod = _add()
        with pytest.raises(TypeError, match="Duplicated argument in args and kwargs.*'a'"):
            mod(torch.ones(1), a=torch.ones(1))
        with pytest.raises(TypeError, match=r"\['zz'\].*in_keys.*keyword names: \['a', 'n_b'\]"):
            mod(zz=torch.ones(1))
        with pytest.raises(TypeError, match="3 positional tensors but has 2 in_keys"):
            mod(torch.ones(1), torch.ones(1), torch.ones(1))
        with pytest.raises(KeyError, match=r"\('n', 'b'\).*keys present: \['a'\]"):
            mod(torch.ones(1))
        td = TensorDict(a=torch.ones(1), batch_size=[1])
        with pytest.raises(TypeError, match="TensorDict and unexpected extra arguments"):
            mod(td, torch.ones(1))
        with pytest.raises(TypeError, match="tensordict_out= needs a TensorDict input"):
            mod(torch.ones(1), torch.ones(1), tensordict_out=TensorDict())

    def test_tensordict_keyword_and_tensordict_out(self):
        lin = nn.Linear(3, 2)
        mod = SafeModule(lin, ["x"], ["y"])
        td = TensorDict(x=torch.randn(4, 3), batch_size=[4])
        assert mod(tensordict=td) is td and "y" in td.keys()
        src = TensorDict(x=torch.randn(4, 3), batch_size=[4])
        out = TensorDict(batch_size=[4])
        assert mod(src, tensordict_out=out) is out
        assert torch.equal(out["y"], lin(src["x"])) and "y" not in src.keys()

    def test_forward_signature_is_one_argument(self):
        for mod in (_add(), SafeSequential(SafeModule(nn.Linear(3, 2), ["x"], ["y"]))):
            assert list(inspect.signature(mod.forward).parameters) == ["tensordict"]

    def test_hooks_see_the_tensordict_of_a_tensor_call(self):
        mod = SafeModule(nn.Linear(3, 2), ["x"], ["y"])
        seen = []
        handle = mod.register_forward_hook(lambda m, args, out: seen.append(type(args[0])))
        mod(torch.zeros(3))
        handle.remove()
        assert seen == [TensorDict]

    @settings(max_examples=25, deadline=None)
    @given(batch=st.lists(st.integers(1, 3), max_size=3), feat=st.integers(1, 4))
    def test_tensor_call_equals_tensordict_call(self, batch, feat):
        lin = nn.Linear(feat, 2)
        mod = SafeModule(lin, ["x"], ["y"])
        x = torch.randn(*batch, feat)
        td = mod(TensorDict(x=x, batch_size=batch))
        assert torch.equal(mod(x), td["y"])


class TestTorchRLCompatibilityChecks:
    def test_every_tdrl_module_is_compatible_and_returned_as_is(self):
        actor = ProbabilisticActor(
            TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["obs"],
                             ["loc", "scale"]),
            in_keys=["loc", "scale"], distribution_class=TanhNormal,
        )
        for mod in (actor, ValueOperator(nn.Linear(3, 1), in_keys=["obs"]), _add()):
            assert is_tensordict_compatible(mod)
            assert ensure_tensordict_compatible(mod, in_keys=mod.in_keys) is mod

    def test_mismatched_keys_and_ambiguous_modules(self):
        mod = _add()
        with pytest.raises(TypeError, match="in_keys.*doesn't match.*'input'"):
            ensure_tensordict_compatible(mod, in_keys=["input"])
        with pytest.raises(TypeError, match="out_keys.*doesn't match"):
            ensure_tensordict_compatible(mod, out_keys=["output"])

        class Ambiguous(nn.Module):
            in_keys, out_keys = ["a"], ["b"]

            def forward(self, x, y):
                return x

        with pytest.raises(TypeError, match="expects multiple arguments.*Ambiguous.*'x', 'y'"):
            is_tensordict_compatible(Ambiguous())

    def test_tensor_modules_are_wrapped(self):
        assert not is_tensordict_compatible(nn.Linear(3, 2))
        wrapped = ensure_tensordict_compatible(nn.Linear(3, 2), in_keys=["input"], out_keys=["y"])
        assert isinstance(wrapped, TensorDictModule) and wrapped.in_keys == ["input"]
        with pytest.raises(TypeError, match=r"forward \['input'\].*in_keys \['obs'\]"):
            ensure_tensordict_compatible(nn.Linear(3, 2), in_keys=["obs"])
        with pytest.raises(TypeError, match="TensorDictModule or an nn.Module, got int"):
            ensure_tensordict_compatible(3)

    def test_reparam_gradient_strategy_is_public(self):
        assert [s.name for s in ReparamGradientStrategy] == ["PassThrough", "RelaxedOneHot"]


class TestSpecsMoveWithTheModule:
    def _mod(self, safe=True):
        return SafeModule(nn.Linear(3, 2), ["x"], ["y"], spec=Bounded(-1.0, 1.0, shape=(2,)),
                          safe=safe)

    @pytest.mark.parametrize("spec", [None, Bounded(-1.0, 1.0, shape=(2,))])
    def test_to_returns_the_module(self, spec):
        mod = SafeModule(nn.Linear(3, 2), ["x"], ["y"], spec=spec)
        assert mod.to("cpu") is mod and mod.to(torch.float64) is mod and mod.cpu() is mod

    def test_dtype_cast_reaches_spec_and_projection(self):
        mod = self._mod().double()
        assert mod.spec["y"].dtype == torch.float64
        assert mod._projector.pairs[0][1] is not None
        assert mod._projector.pairs[0][1].dtype == torch.float64
        out = mod(TensorDict(x=torch.randn(4, 3, dtype=torch.float64) * 100, batch_size=[4]))
        assert out["y"].dtype == torch.float64 and out["y"].abs().max() <= 1

    def test_integer_specs_keep_their_dtype(self):
        spec = Composite(a=Categorical(3), b=Unbounded(shape=(2,)))
        moved = move_spec(spec, lambda t: t.double() if t.is_floating_point() else t)
        assert moved["a"].dtype == torch.int64 and moved["b"].dtype == torch.float64

    def test_device_moves_reach_every_spec(self):
        spec = Composite(y=Unbounded(shape=(2,)), z=Categorical(3))
        mod = SafeModule(nn.Linear(2, 2), ["x"], ["y", "z"], spec=spec)
        mod.to("meta")
        assert {mod.spec.device, mod.spec["y"].device, mod.spec["z"].device} == {
            torch.device("meta")
        }
        mod.to_empty(device="cpu")
        assert mod.spec["y"].device == mod.spec["z"].device == torch.device("cpu")
        assert spec["y"].device == torch.device("cpu")  # the user's spec is not touched

    def test_unchanged_spec_is_the_same_object(self):
        mod = self._mod()
        spec, projector = mod.spec, mod._projector
        mod.cpu()
        assert mod.spec is spec and mod._projector is projector


class TestSafeSequentialEditing:
    def _seq(self):
        a = SafeModule(nn.Linear(3, 4), ["in"], ["hidden"])
        b = SafeModule(nn.Linear(4, 4), ["hidden"], ["hidden"])
        c = SafeModule(nn.Linear(4, 2), ["hidden"], ["out"])
        return SafeSequential(a, b, c), (a, b, c)

    def test_setitem_and_delitem_rebuild_the_plan(self):
        seq, (a, b, c) = self._seq()
        seq[1] = SafeModule(nn.Linear(4, 5), ["hidden"], ["other"])
        assert seq.out_keys == ["hidden", "other", "out"]
        del seq[1]
        assert len(seq) == 2 and seq[1] is c and seq.out_keys == ["hidden", "out"]
        td = seq(TensorDict({"in": torch.randn(2, 3)}, batch_size=[2]))
        assert td["out"].shape == (2, 2) and "other" not in td.keys()
        with pytest.raises(TypeError, match="module 0 of SafeSequential must be a TensorDict"):
            seq[0] = nn.Linear(3, 4)

    def test_select_subsequence(self):
        seq, (a, b, c) = self._seq()
        head = seq.select_subsequence(out_keys=["hidden"])
        assert list(head.module) == [a, b]
        tail = seq.select_subsequence(in_keys=["hidden"])
        assert list(tail.module) == [b, c] and tail.in_keys == ["hidden"]
        with pytest.raises(ValueError, match="leaves no module.*coherent"):
            seq.select_subsequence(in_keys=["nothing"])

    def test_partial_tolerant_skips_modules_whose_inputs_are_missing(self):
        a = SafeModule(nn.Linear(3, 4), ["a"], ["ha"])
        b = SafeModule(nn.Linear(3, 4), ["b"], ["hb"])
        seq = SafeSequential(a, b, partial_tolerant=True)
        td = seq(TensorDict(a=torch.randn(3), batch_size=[]))
        assert "ha" in td.keys() and "hb" not in td.keys()
        with pytest.raises(KeyError, match="'b'"):
            SafeSequential(a, b)(TensorDict(a=torch.randn(3), batch_size=[]))

    def test_partial_tolerant_runs_on_the_stacked_tensordicts_that_have_the_inputs(self):
        b = SafeModule(lambda x: x * 2, ["b"], ["out"])
        c = SafeModule(lambda x: x * 3, ["c"], ["out"])
        td = LazyStackedTensorDict.maybe_dense_stack(
            [TensorDict(b=torch.ones(2)), TensorDict(c=torch.ones(2))], 0
        )
        SafeSequential(b, c, partial_tolerant=True)(td)
        assert torch.equal(td["out"], torch.tensor([[2.0, 2.0], [3.0, 3.0]]))


class TestReliability:
    def test_nan_projection_names_key_and_module_and_writes_nothing(self):
        class StrictBounded(Bounded):
            # the spec contract: project() refuses NaN with a ValueError naming the spec
            def project(self, val):
                if torch.isnan(val).any():
                    raise ValueError("StrictBounded cannot project NaN")
                return super().project(val)

        spec = StrictBounded(-1.0, 1.0, shape=(2,))
        mod = SafeModule(lambda x: x, ["x"], [("act", "y")], spec=spec, safe=True)
        td = TensorDict(x=torch.tensor([[float("nan"), 1.0]]), batch_size=[1])
        with pytest.raises(ValueError, match=r"SafeModule\(safe=True\).*\('act', 'y'\).*NaN"):
            mod(td)
        assert list(td.keys()) == ["x"]

    def test_writing_a_tensor_over_a_sub_tensordict_raises(self):
        mod = SafeModule(nn.Linear(3, 2), ["x"], ["h"])
        td = TensorDict(x=torch.randn(2, 3), h=TensorDict(a=torch.zeros(2, 1), batch_size=[2]),
                        batch_size=[2])
        with pytest.raises(KeyError, match=r"under 'h'.*entries \['a'\]"):
            mod(td)
        assert td["h", "a"].shape == (2, 1)
        nested = SafeModule(nn.Linear(3, 2), ["x"], [("n", "h")])
        td = TensorDict(x=torch.randn(2, 3), n={"h": {"a": torch.zeros(2, 1)}}, batch_size=[2])
        with pytest.raises(KeyError, match=r"under \('n', 'h'\)"):
            nested(td)

    def test_underscore_spec_key_warns(self):
        spec = Composite({"_": Unbounded((4,)), "y": Unbounded((3,))})
        with pytest.warns(UserWarning, match='got a spec with key "_"'):
            SafeModule(lambda x: (x, x), ["x"], ["_", "y"], spec=spec)
