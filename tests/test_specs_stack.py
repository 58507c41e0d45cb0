"""Tensor specs: torch.stack / unbind, Stacked and StackedComposite (unit tests and properties)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tensordict import LazyStackedTensorDict
from test_specs_properties import PROP, _random_mask, finite_inputs, specs

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Stacked,
    StackedComposite,
    Unbounded,
    UnboundedDiscrete,
)
from tdrl.data.specs.stacked import stack_specs


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ======================================================================================
# torch.stack of leaves
# ======================================================================================
SAME_KIND = [
    lambda: Unbounded(shape=(2, 3)),
    lambda: UnboundedDiscrete(shape=(2, 3)),
    lambda: Bounded(-1.0, 1.0, shape=(2, 3)),
    lambda: OneHot(4, shape=(2, 4)),
    lambda: Categorical(4, shape=(2, 3)),
    lambda: Binary(4, shape=(2, 4)),
    lambda: MultiOneHot([2, 3], shape=(2, 5)),
    lambda: MultiCategorical([2, 3], shape=(2, 2)),
]


class TestStackLeaves:
    @pytest.mark.parametrize("make", SAME_KIND)
    @pytest.mark.parametrize("dim", [0, 1, -1])
    def test_identical_specs_keep_their_class(self, make, dim):
        spec = make()
        if dim == -1 and spec._feature_ndim:
            dim = 1  # -1 would be after the feature dimension
        out = torch.stack([spec, spec.clone(), spec.clone()], dim)
        assert type(out) is type(spec)
        expected = list(spec.shape)
        expected.insert(dim % (spec.ndim + 1), 3)
        assert out.shape == torch.Size(expected)
        assert out.rand().shape == out.shape and out.is_in(out.rand())
        assert torch.stack(out.unbind(dim % (spec.ndim + 1)), dim) == out

    def test_different_specs_make_a_stacked_spec(self):
        out = torch.stack([Categorical(3), Categorical(5)], 0)
        assert type(out) is Stacked and out.shape == (2,)
        assert out[0] == Categorical(3) and out[1] == Categorical(5)
        assert out[-1] == Categorical(5)
        sample = out.rand((100,))
        assert sample.shape == (100, 2) and out.is_in(sample)
        assert sample[:, 0].max() <= 2 and sample[:, 1].max() >= 3
        assert out.zero().tolist() == [0, 0]
        assert out.project(torch.tensor([7.0, 7.0])).tolist() == [2, 4]
        assert not out.is_in(torch.tensor([3, 3]))  # 3 is outside the first spec only
        assert out.is_in(torch.tensor([2, 3]))
        assert torch.stack(out.unbind(0), 0) == out
        assert out != torch.stack([Categorical(3), Categorical(4)], 0)

    def test_specs_differing_in_parameters_stack_densely(self):
        a, b = Bounded(0.0, 1.0, shape=(2,)), Bounded(-1.0, 3.0, shape=(2,))
        out = torch.stack([a, b], 1)
        assert type(out) is type(a) and out.shape == (2, 2)
        assert out.low.tolist() == [[0.0, -1.0], [0.0, -1.0]]
        assert out.unbind(1) == (a, b)
        m1 = Categorical(3, mask=torch.tensor([True, False, True]))
        m2 = Categorical(3)
        stacked = torch.stack([m1, m2], 0)
        assert type(stacked) is Categorical and stacked.mask.tolist() == [
            [True, False, True], [True, True, True]
        ]
        assert stacked.unbind(0) == (m1, m2)

    def test_stacked_indexing(self):
        parts = [Categorical(n, shape=(4,)) for n in (2, 3, 4)]
        out = torch.stack(parts, 1)
        assert out.shape == (4, 3)
        assert out[:, 2] == Categorical(4, shape=(4,))
        assert out[1, 0] == Categorical(2)
        assert out[:2].shape == (2, 3) and type(out[:2]) is Stacked
        sub = out[:, [0, 2]]
        assert sub.shape == (4, 2) and sub[:, 1] == Categorical(4, shape=(4,))
        reversed_ = out[:, ::-1]
        assert reversed_[:, 0] == Categorical(4, shape=(4,))
        with pytest.raises(IndexError):
            out[:, 3]

    def test_stacked_expand_squeeze_unsqueeze(self):
        out = torch.stack([Categorical(2), Categorical(3)], 0)
        big = out.expand(5, 2)
        assert big.shape == (5, 2) and big.dim == 1 and big.is_in(big.rand())
        assert big[:, 1] == Categorical(3, shape=(5,))
        assert out.unsqueeze(0).shape == (1, 2) and out.unsqueeze(0).squeeze(0) == out
        assert out.unsqueeze(1).shape == (2, 1) and out.unsqueeze(1).squeeze() == out
        with pytest.raises(ValueError, match=r"cannot expand shape \(2,\) to \(3,\)"):
            out.expand(3)

    def test_stacked_ragged_shapes(self):
        out = torch.stack([OneHot(2), OneHot(3)], 0)
        assert out.shape == (2, -1)
        with pytest.raises(ValueError, match=r"different shapes \[\(2,\), \(3,\)\]"):
            out.rand()

    def test_stacked_space_refers_to_parts(self):
        out = torch.stack([Categorical(2), Categorical(3)], 0)
        with pytest.raises(NotImplementedError, match=r"spec\[i\].space"):
            _ = out.space
        assert out[1].space.n == 3

    def test_stacked_nan_projection_refused(self):
        out = torch.stack([Categorical(2), Categorical(3)], 0)
        with pytest.raises(ValueError, match="Categorical.project: the value contains NaN"):
            out.project(torch.tensor([0.0, float("nan")]))

    def test_errors(self):
        with pytest.raises(RuntimeError, match="Found more than one type of specs in the list"):
            torch.stack([Bounded(0.0, 1.0, shape=(1,)), Unbounded(shape=(1,))], 0)
        with pytest.raises(RuntimeError, match="Dtypes differ, got torch.float64 and torch.float32"):
            torch.stack([Unbounded(1, dtype=torch.float64), Unbounded(1, dtype=torch.float32)], 0)
        with pytest.raises(RuntimeError, match="Ndims differ, got 1 and 2"):
            torch.stack([Unbounded(1), Unbounded((1, 1))], 0)
        with pytest.raises(ValueError, match=r"must come before the feature dimension \(0..0\)"):
            torch.stack([OneHot(3), OneHot(3)], 1)
        with pytest.raises(ValueError, match="cannot stack an empty list of specs"):
            stack_specs([])
        with pytest.raises(NotImplementedError, match="out="):
            torch.stack([OneHot(3), OneHot(3)], 0, out=OneHot(3))
        with pytest.raises(TypeError, match="cat does not accept specs; supported"):
            torch.cat([OneHot(3), OneHot(3)], 0)


class TestUnbind:
    @pytest.mark.parametrize("make", SAME_KIND)
    def test_unbind_then_stack(self, make):
        spec = make()
        parts = spec.unbind(0)
        assert len(parts) == 2 and all(p.shape == spec.shape[1:] for p in parts)
        assert torch.stack(parts, 0) == spec

    def test_feature_dim_cannot_be_unbound(self):
        with pytest.raises(ValueError, match=r"cannot unbind along dim -1 of a spec of shape \(2, 4\)"):
            OneHot(4, shape=(2, 4)).unbind(-1)
        with pytest.raises(ValueError, match="dim=-1 \\(the last dimension of a box\\) must remain"):
            Bounded(0.0, 1.0, shape=(3,)).unbind(-1)
        assert len(Bounded(0.0, 1.0, shape=(3,)).unbind(0)) == 3

    def test_torch_squeeze_unsqueeze(self):
        spec = OneHot(3, shape=(1, 3))
        assert torch.squeeze(spec).shape == (3,)
        assert torch.unsqueeze(spec, 0).shape == (1, 1, 3)


# ======================================================================================
# torch.stack of Composites
# ======================================================================================
class TestStackComposites:
    def test_identical(self):
        c = Composite(a=Unbounded(3), b=Categorical(2), shape=())
        out = torch.stack([c, c.clone()], 0)
        assert type(out) is Composite and out.shape == (2,) and out["a"].shape == (2, 3)

    def test_same_keys_stack_entry_by_entry(self):
        c1 = Composite(a=Categorical(2), nested={"x": Bounded(0.0, 1.0, shape=(1,))})
        c2 = Composite(a=Categorical(3), nested={"x": Bounded(0.0, 1.0, shape=(1,))})
        out = torch.stack([c1, c2], 0)
        assert type(out) is Composite and out.shape == (2,)
        assert type(out["a"]) is Stacked and out["nested", "x"].shape == (2, 1)
        td = out.rand((4,))
        assert td.batch_size == (4, 2) and out.is_in(td)
        assert out.unbind(0) == (c1, c2)

    def test_different_keys_make_a_stacked_composite(self):
        c1 = Composite(obs=Unbounded(2), a=Categorical(2))
        c2 = Composite(obs=Unbounded(2), b=Bounded(0.0, 1.0, shape=(1,)))
        out = torch.stack([c1, c2], 0)
        assert type(out) is StackedComposite and out.shape == (2,)
        assert out.keys() == ["obs"] and "obs" in out and "a" not in out
        assert out[0] == c1 and out[1] == c2
        assert out["obs"].shape == (2, 2)
        with pytest.raises(KeyError, match=r"key 'a' is missing from the stacked Composites at positions \[1\]"):
            out["a"]
        td = out.rand((3,))
        assert isinstance(td, LazyStackedTensorDict) and td.batch_size == (3, 2)
        assert out.is_in(td) and td[:, 1]["b"].shape == (3, 1)
        td[:, 1]["b"] += 5.0
        assert not out.is_in(td)
        assert out.is_in(out.project(td))
        assert torch.stack(out.unbind(0), 0) == out
        assert out.zero().batch_size == (2,)

    def test_errors(self):
        with pytest.raises(RuntimeError, match="Shapes differ"):
            torch.stack([Composite(shape=(1,)), Composite(shape=(2,))], 0)
        with pytest.raises(RuntimeError, match="Found more than one type of specs"):
            torch.stack([Composite(), Unbounded(1)], 0)


# ======================================================================================
# properties of stacked and composite specs
# ======================================================================================
@st.composite
def stacked(draw):
    """(stacked spec, parts, dim) for parts that stack into one class or into Stacked."""
    kind = draw(st.sampled_from(["categorical", "multicategorical", "bounded", "masked", "same"]))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
    k = draw(st.integers(2, 3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if kind == "categorical":
        parts = [Categorical(draw(st.integers(1, 5)), shape=batch) for _ in range(k)]
    elif kind == "multicategorical":
        width = draw(st.integers(1, 3))
        parts = [
            MultiCategorical([draw(st.integers(1, 4)) for _ in range(width)], shape=batch + (width,))
            for _ in range(k)
        ]
    elif kind == "bounded":
        shape = batch + (draw(st.integers(1, 3)),)
        parts = []
        for _ in range(k):
            low = torch.randn(shape, generator=gen)
            parts.append(Bounded(low, low + torch.rand(shape, generator=gen) * 3))
    elif kind == "masked":
        n = draw(st.integers(1, 4))
        parts = [OneHot(n, shape=batch + (n,), mask=_random_mask(batch + (n,), None, gen))
                 for _ in range(k)]
    else:
        base = draw(specs())
        parts = [base.clone() for _ in range(k)]
    dim = draw(st.integers(0, len(parts[0]._batch_shape)))
    return torch.stack(parts, dim), parts, dim


@st.composite
def composites(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    leaves = draw(st.lists(specs(), min_size=1, max_size=3))
    entries = {f"k{i}": leaf.expand(*batch, *leaf.shape) for i, leaf in enumerate(leaves)}
    if draw(st.booleans()):
        inner = draw(specs())
        entries["nested"] = Composite(x=inner.expand(*batch, *inner.shape), shape=batch)
    return Composite(entries, shape=batch)


def _batch_index(draw, shape: torch.Size):
    """A random int / slice / list index on one batch dim (negative steps: unit tests)."""
    dim = draw(st.integers(0, len(shape) - 1))
    size = shape[dim]
    item = draw(st.one_of(
        st.integers(-size, size - 1),
        st.builds(slice, st.integers(0, size), st.integers(0, size)),
        st.lists(st.integers(0, size - 1), min_size=1, max_size=3),
    ))
    return (slice(None),) * dim + (item,)


class TestStackedProperties:
    @PROP
    @given(case=stacked(), batch=st.lists(st.integers(1, 3), max_size=1))
    def test_rand_is_in(self, case, batch):
        spec = case[0]
        sample = spec.rand(batch)
        assert sample.shape == torch.Size(batch) + spec.shape
        assert spec.is_in(sample)

    @PROP
    @given(case=stacked(), data=st.data())
    def test_project_lands_in_spec(self, case, data):
        spec = case[0]
        x = data.draw(finite_inputs(spec))
        assert spec.is_in(spec.project(x))

    @PROP
    @given(case=stacked())
    def test_unbind_then_stack_round_trips(self, case):
        spec, parts, dim = case
        assert list(spec.unbind(dim)) == parts
        for d in range(len(spec._batch_shape)):
            assert torch.stack(spec.unbind(d), d) == spec

    @PROP
    @given(case=stacked(), data=st.data())
    def test_index_agrees_with_indexing_rand(self, case, data):
        spec = case[0]
        idx = _batch_index(data.draw, spec._batch_shape)  # never the feature dim
        sample = spec.rand()
        sub = spec[idx]
        assert sub.shape == sample[idx].shape
        assert sub.is_in(sample[idx])


class TestCompositeProperties:
    @PROP
    @given(spec=composites(), batch=st.lists(st.integers(1, 3), max_size=1))
    def test_rand_is_in(self, spec, batch):
        td = spec.rand(batch)
        assert td.batch_size == torch.Size(batch) + spec.shape
        assert spec.is_in(td)

    @PROP
    @given(spec=composites(), seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.5, 1e3]))
    def test_project_lands_in_spec(self, spec, seed, scale):
        gen = torch.Generator().manual_seed(seed)
        td = spec.rand()
        for key in spec.keys(include_nested=True, leaves_only=True):
            td.set(key, torch.randn(td.get(key).shape, generator=gen) * scale)
        assert spec.is_in(spec.project(td))

    @PROP
    @given(spec=composites())
    def test_unbind_then_stack_round_trips(self, spec):
        for d in range(spec.ndim):
            assert torch.stack(spec.unbind(d), d) == spec

    @PROP
    @given(spec=composites(), data=st.data())
    def test_index_agrees_with_indexing_rand(self, spec, data):
        if not spec.ndim:
            return
        idx = _batch_index(data.draw, spec.shape)
        td = spec.rand()
        assert spec[idx].shape == td[idx].batch_size
        assert spec[idx].is_in(td[idx])

    @PROP
    @given(spec=composites())
    def test_stack_of_composites_round_trips(self, spec):
        out = torch.stack([spec, spec.clone()], 0)
        assert out.shape == (2, *spec.shape) and out.unbind(0) == (spec, spec)
        assert out.is_in(out.rand())
