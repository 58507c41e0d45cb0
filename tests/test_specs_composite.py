"""Tensor specs: Composite (mapping interface, values, shape, device)."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    OneHot,
    Unbounded,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ======================================================================================
# Composite
# ======================================================================================
def _make_comp() -> Composite:
    return Composite(
        obs=Unbounded(shape=(4, 3)),
        action=OneHot(2, shape=(4, 2)),
        nested={"reward": Bounded(-1.0, 1.0, shape=(4, 1))},
        shape=(4,),
    )


class TestComposite:
    def test_basic_access(self):
        comp = _make_comp()
        assert comp.shape == (4,) and comp.batch_size == (4,) and comp.ndim == 1
        assert comp.device is None
        assert isinstance(comp["nested"], Composite) and comp["nested"].shape == (4,)
        assert comp["nested", "reward"] is comp[("nested", "reward")]
        assert comp[("nested",), "reward"].shape == (4, 1)
        assert len(comp) == 3 and list(comp) == ["obs", "action", "nested"]

    def test_nested_set_creates_composites(self):
        comp = Composite(shape=(2,))
        comp[("a", "b", "c")] = Categorical(3, shape=(2,))
        assert isinstance(comp["a"], Composite) and isinstance(comp["a", "b"], Composite)
        assert comp["a", "b"].shape == (2,)
        assert comp["a", "b", "c"].n == 3
        comp.set(("a", "d"), None)
        assert comp["a", "d"] is None

    def test_keys_views(self):
        comp = _make_comp()
        assert list(comp.keys()) == ["obs", "action", "nested"]
        assert list(comp.keys(include_nested=True)) == ["obs", "action", "nested", ("nested", "reward")]
        assert list(comp.keys(True, True)) == ["obs", "action", ("nested", "reward")]
        assert list(comp.keys(leaves_only=True)) == ["obs", "action"]
        keys = comp.keys(include_nested=True)
        assert ("nested", "reward") in keys and "obs" in keys and ("obs",) in keys
        assert ("nested", "reward") not in comp.keys()
        assert "nested" not in comp.keys(True, True)
        assert len(comp.keys(True)) == 4
        assert comp.keys() == ["obs", "action", "nested"]
        assert [k for k, _ in comp.items(True, True)] == list(comp.keys(True, True))
        assert comp.values()[0] is comp["obs"]

    def test_contains(self):
        comp = _make_comp()
        assert "obs" in comp and ("nested", "reward") in comp and ("nested",) in comp
        assert ("nested", "missing") not in comp and "missing" not in comp
        assert ("obs", "x") not in comp and 3 not in comp

    def test_key_errors(self):
        comp = _make_comp()
        with pytest.raises(KeyError, match="key 'missing' not found in Composite; available keys:.*'obs'"):
            comp["missing"]
        with pytest.raises(KeyError, match=r"\('nested', 'x'\)"):
            comp["nested", "x"]
        with pytest.raises(KeyError, match="is a UnboundedContinuous, not a Composite"):
            comp["obs", "x"]
        with pytest.raises(KeyError, match="is a UnboundedContinuous, not a Composite"):
            comp["obs", "x"] = Categorical(2, shape=(4,))
        with pytest.raises(TypeError, match="keys must be strings or tuples of strings"):
            comp[1.5] = Categorical(2)

    def test_shape_validation(self):
        comp = Composite(shape=(4,))
        with pytest.raises(ValueError, match=r"entry 'a' has shape \(3,\), which does not start with the Composite shape \(4,\)"):
            comp["a"] = Unbounded(shape=(3,))
        with pytest.raises(ValueError, match=r"entry \('x', 'y'\) has shape \(\)"):
            comp["x", "y"] = Categorical(3)
        assert "x" not in comp  # nothing written on failure
        with pytest.raises(TypeError, match="must be a TensorSpec, a mapping or None, got int"):
            comp["a"] = 3
        with pytest.raises(TypeError, match="at most one positional argument"):
            Composite({}, {})
        with pytest.raises(ValueError, match="either shape or batch_size"):
            Composite(shape=(1,), batch_size=(1,))

    def test_shape_setter(self):
        comp = Composite(a=Unbounded(shape=(2, 3)))
        comp.shape = (2,)
        assert comp.shape == (2,)
        with pytest.raises(ValueError, match=r"cannot set shape \(3,\): the entry 'a' has shape \(2, 3\)"):
            comp.shape = (3,)

    def test_delete_get_update(self):
        comp = _make_comp()
        del comp["nested", "reward"]
        assert ("nested", "reward") not in comp and "nested" in comp
        with pytest.raises(KeyError, match="available keys"):
            del comp["nope"]
        assert comp.get("nope", None) is None
        with pytest.raises(KeyError):
            comp.get("nope")
        comp.update({"nested": {"done": Binary(1, shape=(4, 1))}, "extra": None})
        assert ("nested", "done") in comp and comp["extra"] is None
        other = Composite(nested=Composite(r=Unbounded(shape=(4, 1)), shape=(4,)), shape=(4,))
        comp.update(other)
        assert ("nested", "done") in comp and ("nested", "r") in comp

    def test_rand_zero_one(self):
        comp = _make_comp()
        td = comp.rand()
        assert isinstance(td, TensorDict) and td.batch_size == (4,)
        assert td["action"].dtype == torch.bool and td["nested", "reward"].shape == (4, 1)
        assert comp.is_in(td)
        td5 = comp.rand((5,))
        assert td5.batch_size == (5, 4) and td5["obs"].shape == (5, 4, 3)
        zeros = comp.zero((2,))
        assert zeros.batch_size == (2, 4) and not zeros["obs"].any()
        assert bool(comp.one()["nested", "reward"].eq(1).all())

    def test_none_entries(self):
        comp = Composite(a=Categorical(3), b=None)
        td = comp.rand()
        assert "b" not in td.keys()
        assert comp.is_in(TensorDict({"a": torch.tensor(1)}, []))
        assert comp.project(TensorDict({"a": torch.tensor(7), "b": torch.tensor(9.0)}, []))["b"] == 9.0

    def test_is_in(self):
        comp = _make_comp()
        td = comp.rand()
        assert comp.is_in(td)
        assert not comp.is_in(td.exclude("obs"))  # missing key
        bad = td.clone()
        bad["nested", "reward"] = torch.full((4, 1), 3.0)
        assert not comp.is_in(bad)
        assert not comp.is_in(torch.zeros(3))
        assert comp.is_in({k: td[k] for k in ["obs", "action", "nested"]})
        with pytest.raises(AssertionError, match="entry 'nested'"):
            comp.assert_is_in(bad)
        with pytest.raises(AssertionError, match="key 'obs' is missing"):
            comp.assert_is_in(td.exclude("obs"))

    def test_project(self):
        comp = _make_comp()
        td = TensorDict(
            {
                "obs": torch.ones(4, 3, dtype=torch.float64),
                "action": torch.randn(4, 2),
                "nested": {"reward": torch.full((4, 1), 5.0)},
                "other": torch.zeros(4),
            },
            [4],
        )
        out = comp.project(td)
        assert out is td
        assert comp.is_in(td)
        assert td["obs"].dtype == torch.float32
        assert bool((td["nested", "reward"] == 1.0).all())
        assert td["other"].shape == (4,)
        # missing entries are skipped
        partial = TensorDict({"obs": torch.zeros(4, 3)}, [4])
        assert comp.project(partial).keys() == partial.keys()
        with pytest.raises(TypeError, match="expects a TensorDict, got dict"):
            comp.project({"obs": torch.zeros(4, 3)})

    def test_project_validates_before_writing(self):
        comp = Composite(a=Categorical(3), b=OneHot(2))
        td = TensorDict({"a": torch.tensor(7), "b": torch.zeros(3)}, [])
        with pytest.raises(ValueError, match="OneHot.project"):
            comp.project(td)
        assert td["a"].item() == 7  # untouched

    def test_device(self):
        comp = Composite(a=Unbounded(3), device="cpu")
        assert comp.device == CPU and comp["a"].device == CPU
        assert comp.rand().device == CPU
        moved = _make_comp().to("cpu")
        assert moved.device == CPU and moved["nested"].device == CPU
        assert moved["nested", "reward"].device == CPU
        assert _make_comp().cpu().device == CPU
        as64 = _make_comp().to(torch.float64)
        assert as64["obs"].dtype == torch.float64 and as64["nested", "reward"].dtype == torch.float64

    def test_dtype(self):
        assert Composite(a=Unbounded(2), b=Bounded(0.0, 1.0, shape=(1,))).dtype == torch.float32
        assert _make_comp().dtype is None

    def test_shape_ops(self):
        comp = _make_comp()
        exp = comp.expand(3, 4)
        assert exp.shape == (3, 4) and exp["obs"].shape == (3, 4, 3)
        assert exp["nested", "reward"].shape == (3, 4, 1) and exp["nested"].shape == (3, 4)
        assert exp["action"].shape == (3, 4, 2)
        assert exp.rand().batch_size == (3, 4)
        unsq = comp.unsqueeze(0)
        assert unsq.shape == (1, 4) and unsq["action"].shape == (1, 4, 2)
        assert unsq.squeeze().shape == (4,) and unsq.squeeze(0)["obs"].shape == (4, 3)
        sub = comp[0]
        assert sub.shape == () and sub["obs"].shape == (3,) and sub["action"].shape == (2,)
        assert comp[1:3]["nested", "reward"].shape == (2, 1)
        with pytest.raises(ValueError, match=r"cannot expand shape \(4,\) to \(3,\)"):
            comp.expand(3)

    def test_eq_clone_repr(self):
        comp = _make_comp()
        clone = comp.clone()
        assert clone == comp and clone is not comp
        assert clone["nested"] is not comp["nested"]
        clone["nested", "reward"] = Bounded(-2.0, 2.0, shape=(4, 1))
        assert clone != comp
        assert comp != Composite(shape=(4,))
        assert _make_comp() != _make_comp().to("cpu")  # device None vs cpu
        text = repr(comp)
        assert text.startswith("Composite(") and "nested: Composite(" in text
        assert "shape=torch.Size([4])" in text and "device=None" in text

    def test_select_exclude_empty(self):
        comp = _make_comp()
        sel = comp.select("obs", ("nested", "reward"))
        assert list(sel.keys(True, True)) == ["obs", ("nested", "reward")]
        with pytest.raises(KeyError):
            comp.select("nope")
        assert list(comp.select("nope", strict=False).keys()) == []
        exc = comp.exclude("obs", ("nested", "reward"), "missing")
        assert list(exc.keys(True)) == ["action", "nested"]
        assert "obs" in comp
        empty = comp.empty()
        assert len(empty) == 0 and empty.shape == (4,) and empty.is_empty()
        assert exc.select("nested").is_empty()  # only an empty sub-Composite left
        assert Composite(a=Composite()).is_empty()
        assert not comp.is_empty()

    def test_construction_variants(self):
        comp = Composite({"a": Categorical(2), ("b", "c"): OneHot(3)})
        assert ("b", "c") in comp
        copy_comp = Composite(_make_comp())
        assert copy_comp.shape == (4,) and copy_comp == _make_comp()
        assert Composite(batch_size=[2]).shape == (2,)
        with pytest.raises(TypeError, match="must be a mapping of specs, got list"):
            Composite([1, 2])

    def test_encode_to_numpy(self):
        comp = Composite(obs=Unbounded(shape=(3,)), action=OneHot(2), sub={"r": Unbounded(1)})
        td = comp.encode({"obs": np.array([1.0, 2.0, 3.0]), "action": 1, "sub": {"r": 0.5}})
        assert td["obs"].dtype == torch.float32 and td["action"].tolist() == [False, True]
        assert td["sub", "r"].shape == (1,)
        arrays = comp.to_numpy(td)
        assert arrays["action"].tolist() == 1 and arrays["sub"]["r"].tolist() == [0.5]
        with pytest.raises(KeyError, match=r"keys \['obs', 'action', 'sub'\] has no entry 'x'"):
            comp.encode({"x": 1})

    def test_enumerate_cardinality(self):
        comp = Composite(a=Categorical(3), b={"c": Binary(2)})
        assert comp.cardinality() == 12
        td = comp.enumerate()
        assert td.batch_size == (12,)
        pairs = {(int(a), tuple(c.tolist())) for a, c in zip(td["a"], td["b", "c"])}
        assert len(pairs) == 12
        assert comp.is_in(td)

    def test_pickle(self):
        comp = _make_comp()
        assert pickle.loads(pickle.dumps(comp)) == comp
        assert copy.deepcopy(comp) == comp


class TestCompositeStructure:
    def test_reserved_keys_refused(self):
        spec = Composite(a=Unbounded(1))
        for key in ("shape", "device", "dtype", "space"):
            with pytest.raises(AttributeError, match=rf"the key '{key}' cannot be set"):
                spec[key] = Unbounded(1)
        assert list(spec.keys()) == ["a"]

    def test_lock_and_unlock(self):
        spec = Composite(a=Composite(b=Unbounded(1)))
        assert not spec.locked and spec.lock_() is spec
        assert spec.is_locked and spec["a"].is_locked
        for write in (lambda: spec.__setitem__("c", Unbounded(1)), lambda: spec.set("c", None),
                      lambda: spec.__delitem__("a"), lambda: spec.__setitem__(("a", "c"), None),
                      lambda: setattr(spec, "shape", ())):
            with pytest.raises(RuntimeError, match=r"Cannot modify a locked Composite. Call unlock_\(\) first"):
                write()
        assert list(spec.keys(True)) == ["a", ("a", "b")]  # nothing half-written
        spec.unlock_()
        spec["c"] = Unbounded(1)
        spec["a", "c"] = Unbounded(1)
        assert ("a", "c") in spec

    def test_lock_not_recursive(self):
        spec = Composite(a=Composite(b=Unbounded(1)))
        spec.lock_(recurse=False)
        assert not spec["a"].locked
        spec["a", "c"] = Unbounded(1)  # the write happens in the unlocked child

    def test_unlock_refused_while_a_locked_holder_remains(self):
        leaf = Composite(x=Unbounded(1))
        root = Composite(child=leaf).lock_()
        other = Composite(child=leaf).lock_()
        with pytest.raises(RuntimeError, match="Cannot unlock a Composite that is part of a locked graph"):
            leaf.unlock_()
        with pytest.raises(RuntimeError, match="part of a locked graph"):
            root.unlock_()  # ``other`` still locks ``leaf``
        assert root.is_locked and leaf.is_locked
        other.unlock_(recurse=False)
        root.unlock_()
        assert not leaf.is_locked

    def test_lock_survives_pickle(self):
        spec = pickle.loads(pickle.dumps(Composite(a=Composite(b=Unbounded(1))).lock_()))
        assert spec.is_locked and spec["a"].is_locked
        with pytest.raises(RuntimeError, match="part of a locked graph"):
            spec["a"].unlock_()

    def test_clear_device(self):
        spec = Composite(a=Composite(b=Unbounded(1)), device="cpu")
        assert spec.clear_device_() is spec
        assert spec.device is None and spec["a"].device is None and spec["a", "b"].device == CPU

    def test_type_check(self):
        spec = Composite(a=Unbounded(1), b=Categorical(2))
        td = spec.rand()
        spec.type_check(td)
        spec.type_check(td["a"], "a")
        with pytest.raises(TypeError, match=r"value.dtype=torch.float32 but Categorical.dtype=torch.int64"):
            spec.type_check(torch.zeros(()), "b")

    def test_child_takes_the_longer_parent_shape(self):
        parent = Composite(shape=(2, 3))
        child = Composite(x=Unbounded((2, 3, 1)), shape=(2,))
        parent["child"] = child
        assert parent["child"].shape == (2, 3)
        with pytest.raises(ValueError, match=r"the entry 'bad' has shape \(3,\), which does not start"):
            parent["bad"] = Composite(shape=(3,))

    def test_setting_shape_reaches_shorter_children(self):
        spec = Composite(nested=Composite(leaf=Unbounded((3, 2))), shape=())
        spec.shape = (3,)
        assert spec["nested"].shape == (3,)
        spec.shape = ()
        assert spec["nested"].shape == (3,)  # a longer child keeps its own shape
        with pytest.raises(ValueError, match=r"cannot set shape \(4,\): the entry 'nested' has shape \(3,\)"):
            spec.shape = (4,)

    def test_encode_errors_name_the_entry(self):
        spec = Composite(a=Unbounded(1), b=Unbounded(2))
        with pytest.raises(KeyError, match=r"The Composite instance with keys \['a', 'b'\] has no entry 'c'"):
            spec.encode({"c": 0})
        with pytest.raises(RuntimeError, match=r"encoding the entry 'b' raised a RuntimeError") as info:
            spec.encode({"a": 0, "b": 0})
        assert "Shape mismatch" in str(info.value.__cause__)

    def test_memoize_is_accepted_and_recursive(self):
        spec = Composite(a=Unbounded(1), nested={"b": Categorical(3)})
        spec.memoize_encode(True)
        assert spec["nested", "b"]._memoize_encode
        spec.erase_memoize_cache()
        assert spec.encode({"a": 1.0, "nested": {"b": 2}})["nested", "b"].tolist() == 2
