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
