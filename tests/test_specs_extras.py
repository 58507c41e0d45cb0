"""NonTensor, Choice, Categorical(n=-1), invertible_dict and Composite names."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import NonTensorData, NonTensorStack, TensorDict

from tdrl.data import Bounded, Categorical, Choice, Composite, NonTensor, OneHot, Unbounded
from tdrl.data.tensor_specs import invertible_dict


# ---- NonTensor -----------------------------------------------------------------------------
def test_non_tensor_defaults_and_layout():
    spec = NonTensor(example_data={"k": 1})
    assert spec.shape == (1,) and spec.dtype is None and spec.device is None
    assert spec.feature_dims == 1 and not spec.batched
    value = spec.rand((2, 3))
    assert value.shape == (2, 3, 1) and value.data == {"k": 1}
    batched = NonTensor(shape=(2, 3), example_data="x", batched=True).zero()
    assert isinstance(batched, NonTensorStack) and isinstance(batched[0, 0], NonTensorData)
    assert batched[0, 0].shape == ()
    # zeros / ones: TorchRL's aliases of zero / one, on every spec
    split = NonTensor(shape=(3, 4), example_data="x", feature_dims=1)
    assert isinstance(split.zeros(), NonTensorStack) and split.ones((2,)).shape == (2, 3, 4)
    assert (Categorical(3).zeros((2,)) == 0).all() and (Unbounded(2).ones() == 1).all()


def test_non_tensor_membership_and_errors():
    spec = NonTensor(shape=(2,))
    assert spec.is_in("any python value") and spec.is_in(NonTensorData("a", batch_size=[2]))
    assert not spec.is_in(torch.zeros(2))
    assert not spec.is_in(NonTensorData("a", batch_size=[3]))
    with pytest.raises(NotImplementedError, match="Cannot project a NonTensor"):
        spec.project("a")
    with pytest.raises(NotImplementedError, match="Cannot enumerate a NonTensor"):
        spec.enumerate()
    with pytest.raises(ValueError, match="either batched or feature_dims, not both"):
        NonTensor(batched=True, feature_dims=1)
    with pytest.raises(ValueError, match=r"feature_dims must be in \[0, 1\] for shape \(1,\), got 3"):
        NonTensor(feature_dims=3)


def test_non_tensor_in_a_composite():
    spec = Composite(text=NonTensor(shape=(4,), example_data="hi"), obs=Unbounded(shape=(4, 2)),
                     shape=(4,), device="cpu")
    assert spec["text"].device == torch.device("cpu")
    td = spec.rand()
    assert td["text"] == "hi" and td.get("text").shape == (4,) and spec.is_in(td)
    sub = spec[1:3]
    assert sub["text"].shape == (2,) and sub["text"].example_data == "hi"
    stacked = torch.stack([spec["text"], spec["text"]], 1)
    assert stacked.shape == (4, 2) and stacked.example_data == "hi"


# ---- Choice -----------------------------------------------------------------------------------
def test_choice_draws_every_choice_and_only_them():
    torch.manual_seed(0)
    spec = Choice([Bounded(0.0, 1.0, ()), Bounded(5.0, 6.0, ())])
    draws = torch.stack([spec.rand() for _ in range(200)])
    low = (draws >= 0) & (draws <= 1)
    assert (low | ((draws >= 5) & (draws <= 6))).all() and 0 < low.sum() < 200
    assert spec.zero() == 0 and spec.cardinality() == float("inf")
    assert Choice([Categorical(2), Categorical(7)]).cardinality() == 9
    words = Choice([NonTensorData(w) for w in "abc"])
    assert {words.rand().data for _ in range(100)} == {"a", "b", "c"}
    assert words.is_in("b") and not words.is_in("d")
    assert words.rand((2,)).shape == (2,)


def test_choice_shape_ops_map_onto_every_choice():
    spec = Choice([Bounded(0.0, 1.0, (2,)), Bounded(10.0, 11.0, (2,))])
    assert spec.expand(3, 2).shape == (3, 2) and spec.unsqueeze(0).shape == (1, 2)
    parts = spec.expand(3, 2).unbind(0)
    assert len(parts) == 3 and all(p == spec for p in parts)
    assert spec.clone() == spec and spec != Choice([Bounded(0.0, 1.0, (2,))] * 2)
    with pytest.raises(NotImplementedError, match="cannot project"):
        spec.project(torch.zeros(2))


def test_choice_errors():
    with pytest.raises(TypeError, match="'choices' must be a list, got tuple"):
        Choice((OneHot(2),))
    with pytest.raises(ValueError, match="must not be empty"):
        Choice([])
    with pytest.raises(ValueError, match="same device"):
        Choice([Categorical(2, device="cpu"), Categorical(2, device="meta")])


# ---- Categorical(n=-1) ---------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-3, 10_000), min_size=1, max_size=6))
def test_unknown_n_accepts_exactly_the_non_negative_values(values):
    spec = Categorical(-1, shape=(len(values),))
    x = torch.tensor(values)
    assert spec.is_in(x) == all(v >= 0 for v in values)
    projected = spec.project(x)
    assert spec.is_in(projected) and (projected == x.clamp_min(0)).all()


def test_unknown_n_needs_a_provisional_n():
    spec = Categorical(-1, shape=(2,))
    for call in (spec.rand, spec.enumerate, spec.cardinality, lambda: spec.n):
        with pytest.raises(RuntimeError, match=r"set_provisional_n"):
            call()
    with pytest.raises(ValueError, match="a mask needs a known number of outcomes"):
        Categorical(-1, mask=torch.tensor([True]))
    with pytest.raises(ValueError, match="only for specs created with n=-1"):
        Categorical(3).set_provisional_n(4)
    spec.set_provisional_n(5)
    assert spec.enumerate().shape == (5, 2) and spec.expand(3, 2).n == 5
    assert spec.space.n == -1 and spec == Categorical(-1, shape=(2,))
    assert spec.to_one_hot(torch.tensor([4, 0])).shape == (2, 5)


# ---- invertible_dict -------------------------------------------------------------------------
def test_invertible_dict_keeps_the_inverse_in_step():
    d = invertible_dict({"a": 1}, b=2)
    assert d.inverse() == {1: "a", 2: "b"}
    d["c"] = 3
    del d["a"]
    assert d.inverse() == {2: "b", 3: "c"} and d.pop("b") == 2 and d.inverse() == {3: "c"}
    assert d.invert() == {3: "c"} and d.invert().inverse() == {"c": 3}
    with pytest.raises(ValueError, match="the key 'c' already maps to 3"):
        d["c"] = 4
    with pytest.raises(ValueError, match="the value 3 already belongs to the key 'c'"):
        d["z"] = 3
    with pytest.raises(ValueError, match="given twice"):
        d.update({"x": 9, "y": 9})
    assert "x" not in d and 9 not in d.inverse()  # nothing written


# ---- Composite names -----------------------------------------------------------------------
OPS = st.lists(st.sampled_from(["unsqueeze", "squeeze", "index", "slice", "expand", "clone"]),
               max_size=6)


def _apply(op, obj, shape):
    """The same operation on a Composite and on a TensorDict."""
    if op == "unsqueeze":
        return obj.unsqueeze(len(shape) // 2)
    if op == "squeeze":
        ones = [i for i, s in enumerate(shape) if s == 1]
        return obj.squeeze(ones[0]) if ones else obj
    if op == "index":
        return obj[0] if shape else obj
    if op == "slice":
        return obj[:1] if shape else obj
    if op == "expand":
        return obj.expand(2, *shape)
    return obj.clone()


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_names_follow_the_ops_like_a_tensordict(ops):
    spec = Composite(
        a=Unbounded(shape=(3, 1, 2, 4)), sub=Composite(b=Unbounded(shape=(3, 1, 2)), shape=(3, 1, 2)),
        shape=(3, 1, 2), names=["env", None, "agent"],
    )
    td = TensorDict({"a": torch.zeros(3, 1, 2, 4)}, batch_size=[3, 1, 2], names=["env", None, "agent"])
    for op in ops:
        spec, td = _apply(op, spec, tuple(spec.shape)), _apply(op, td, tuple(td.shape))
        assert spec.shape == td.shape
        assert spec.names == td.names, op
        assert spec["sub"].names[: spec.ndim] == spec.names  # nested Composites follow
        if spec._has_names():
            assert spec.rand().names == spec.names


def test_names_validation_and_equality():
    spec = Composite(shape=(2, 3))
    with pytest.raises(ValueError, match="names must be unique"):
        spec.names = ["x", "x"]
    with pytest.raises(TypeError, match="strings or None, got 3"):
        spec.names = ["x", 3]
    with pytest.raises(ValueError, match="at most one Ellipsis"):
        spec.refine_names(..., ...)
    named = Composite(shape=(2, 3), names=["a", "b"])
    assert named == spec and named.clone().names == ["a", "b"]
    assert spec.refine_names(..., "b") is spec and spec.names == [None, "b"]
    spec["child"] = Composite(shape=(2, 3, 4))
    assert spec["child"].names == [None, "b", None]
    assert Composite(named).names == ["a", "b"]
    assert named[torch.tensor([True, False])].names == [None, None]
