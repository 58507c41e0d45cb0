"""Tensor specs: hypothesis properties over every spec kind."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    Unbounded,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ======================================================================================
# hypothesis properties
# ======================================================================================
KINDS = ["unbounded", "unbounded_int", "bounded", "bounded_int", "onehot", "categorical",
         "binary", "multionehot", "multicategorical"]
MASKABLE = {"onehot", "categorical", "multionehot", "multicategorical"}


def _random_mask(target: tuple, blocks: list[int] | None, gen: torch.Generator) -> torch.Tensor:
    """A random boolean mask of shape ``target`` with at least one allowed value per block."""
    mask = torch.rand(target, generator=gen) < 0.5
    parts = mask.split(blocks, -1) if blocks else (mask,)
    fixed = []
    for part in parts:
        forced = torch.rand(part.shape, generator=gen).argmax(-1, keepdim=True)
        fixed.append(part.scatter(-1, forced, True))
    return torch.cat(fixed, -1)


@st.composite
def specs(draw, kinds=KINDS, masked=None):
    kind = draw(st.sampled_from(kinds))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    use_mask = draw(st.booleans()) if masked is None else masked
    use_mask = use_mask and kind in MASKABLE
    if kind == "unbounded":
        return Unbounded(shape=batch + (draw(st.integers(1, 3)),))
    if kind == "unbounded_int":
        return Unbounded(shape=batch, dtype=draw(st.sampled_from([torch.int64, torch.int32])))
    if kind in ("bounded", "bounded_int"):
        shape = batch + (draw(st.integers(1, 3)),)
        low = torch.randn(shape, generator=gen) * draw(st.floats(0.1, 100.0))
        width = torch.rand(shape, generator=gen) * draw(st.floats(0.0, 100.0))
        if kind == "bounded":
            dtype = draw(st.sampled_from([torch.float32, torch.float64]))
            return Bounded(low, low + width, dtype=dtype)
        low = low.round()
        return Bounded(low, low + width.round(), dtype=torch.int64)
    if kind == "binary":
        n = draw(st.integers(1, 4))
        return Binary(n, shape=batch + (n,), dtype=draw(st.sampled_from([torch.int8, torch.bool])))
    if kind == "onehot":
        n = draw(st.integers(1, 5))
        mask = _random_mask(batch + (n,), None, gen) if use_mask else None
        dtype = draw(st.sampled_from([torch.bool, torch.int64, torch.float32]))
        return OneHot(n, shape=batch + (n,), dtype=dtype, mask=mask)
    if kind == "categorical":
        n = draw(st.integers(1, 5))
        mask = _random_mask(batch + (n,), None, gen) if use_mask else None
        return Categorical(n, shape=batch, mask=mask)
    nvec = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    mask = _random_mask(batch + (sum(nvec),), nvec, gen) if use_mask else None
    if kind == "multionehot":
        return MultiOneHot(nvec, shape=batch + (sum(nvec),), mask=mask)
    return MultiCategorical(nvec, shape=batch + (len(nvec),), mask=mask)


@st.composite
def finite_inputs(draw, spec: TensorSpec):
    extra = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=1)))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([0.5, 3.0, 1e3]))
    x = torch.randn(extra + tuple(spec.shape), generator=gen, dtype=torch.float64) * scale
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    return x.round().to(dtype) if dtype == torch.int64 else x.to(dtype)


PROP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestProperties:
    @PROP
    @given(spec=specs(), batch=st.lists(st.integers(1, 3), max_size=2))
    def test_rand_in_spec(self, spec, batch):
        out = spec.rand(tuple(batch))
        assert out.shape == torch.Size(batch) + spec.shape
        assert out.dtype == spec.dtype
        assert spec.is_in(out)

    @PROP
    @given(data=st.data(), spec=specs())
    def test_project_lands_in_spec(self, data, spec):
        x = data.draw(finite_inputs(spec))
        out = spec.project(x)
        assert out.shape == x.shape and out.dtype == spec.dtype
        assert spec.is_in(out)

    @PROP
    @given(data=st.data(), spec=specs())
    def test_project_idempotent(self, data, spec):
        x = data.draw(finite_inputs(spec))
        once = spec.project(x)
        assert torch.equal(spec.project(once), once)
        sample = spec.rand((2,))
        assert torch.equal(spec.project(sample), sample)

    @PROP
    @given(spec=specs(kinds=sorted(MASKABLE), masked=True), batch=st.lists(st.integers(1, 4), max_size=1))
    def test_masked_rand_respects_mask(self, spec, batch):
        out = spec.rand(tuple(batch))
        if isinstance(spec, Categorical):
            hot = spec.to_one_hot(out)
        elif isinstance(spec, MultiCategorical):
            hot = spec.to_one_hot(out)
        else:
            hot = out.bool()
        full_mask = spec.mask.expand(hot.shape)
        assert not bool((hot & ~full_mask).any())

    @PROP
    @given(spec=specs(kinds=["onehot", "categorical", "multionehot", "multicategorical", "binary"]))
    def test_enumerate_matches_cardinality(self, spec):
        values = spec.enumerate()
        assert values.shape == torch.Size([spec.cardinality()]) + spec.shape
        if getattr(spec, "mask", None) is None:
            assert spec.is_in(values)

    @PROP
    @given(spec=specs())
    def test_clone_eq_and_shape_ops(self, spec):
        assert spec.clone() == spec
        expanded = spec.expand(2, *spec.shape)
        assert expanded.shape == (2, *spec.shape)
        assert expanded.is_in(expanded.rand())
        assert expanded[0] == spec
        assert spec.unsqueeze(0).squeeze(0) == spec
