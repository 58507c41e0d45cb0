"""Tests for tdrl.data (tensor specs): unit tests per class/method and hypothesis properties."""
from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from tdrl.data import (
    Binary,
    BinaryDiscreteTensorSpec,
    Bounded,
    BoundedContinuous,
    BoundedDiscrete,
    BoundedTensorSpec,
    BoxList,
    Categorical,
    CategoricalBox,
    Composite,
    CompositeSpec,
    ContinuousBox,
    DiscreteTensorSpec,
    MultiCategorical,
    MultiDiscreteTensorSpec,
    MultiOneHot,
    MultiOneHotDiscreteTensorSpec,
    OneHot,
    OneHotDiscreteTensorSpec,
    TensorSpec,
    Unbounded,
    UnboundedContinuous,
    UnboundedContinuousTensorSpec,
    UnboundedDiscrete,
    UnboundedDiscreteTensorSpec,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ======================================================================================
# construction, defaults, aliases
# ======================================================================================
class TestConstruction:
    def test_onehot_defaults(self):
        spec = OneHot(4)
        assert spec.shape == torch.Size([4])
        assert spec.dtype == torch.bool
        assert spec.device == CPU
        assert spec.space.n == 4 and spec.n == 4
        assert isinstance(spec.space, CategoricalBox)
        assert spec.mask is None
        assert spec.domain == "discrete"

    def test_onehot_batched_shape(self):
        spec = OneHot(3, shape=(2, 3), dtype=torch.int64)
        assert spec.shape == (2, 3) and spec.dtype == torch.int64

    def test_categorical_defaults(self):
        spec = Categorical(4)
        assert spec.shape == torch.Size([])
        assert spec.dtype == torch.int64
        assert spec.space.n == 4 and spec.n == 4
        assert Categorical(4, shape=(1,)).shape == (1,)
        assert Categorical(4, shape=3).shape == (3,)

    def test_binary_defaults(self):
        spec = Binary(5)
        assert spec.shape == (5,) and spec.dtype == torch.int8 and spec.space.n == 5
        assert Binary(shape=(2, 3)).n == 3
        assert Binary(3, shape=(4, 3)).shape == (4, 3)

    def test_multionehot_defaults(self):
        spec = MultiOneHot([3, 2, 4])
        assert spec.shape == (9,) and spec.dtype == torch.bool
        assert spec.nvec == [3, 2, 4] and spec.space.nvec == [3, 2, 4]
        assert isinstance(spec.space, BoxList) and len(spec.space) == 3
        assert spec.space[2].n == 4

    def test_multicategorical_defaults(self):
        spec = MultiCategorical([3, 2])
        assert spec.shape == (2,) and spec.dtype == torch.int64
        assert torch.equal(spec.nvec, torch.tensor([3, 2]))
        assert spec.space.nvec == [3, 2]
        assert MultiCategorical(torch.tensor([2, 2, 2]), shape=(5, 3)).shape == (5, 3)
        assert MultiCategorical(np.array([4, 5])).space.nvec == [4, 5]

    def test_unbounded_dispatch(self):
        spec = Unbounded(3)
        assert type(spec) is UnboundedContinuous and isinstance(spec, Unbounded)
        assert spec.shape == (3,) and spec.dtype == torch.float32
        assert spec.domain == "continuous"
        disc = Unbounded(shape=(2,), dtype=torch.int32)
        assert type(disc) is UnboundedDiscrete and disc.domain == "discrete"
        assert Unbounded().shape == (1,)
        assert Unbounded(shape=()).shape == ()
        assert type(Unbounded(domain="discrete")) is UnboundedDiscrete
        assert Unbounded(domain="discrete").dtype == torch.int64
        assert UnboundedDiscrete().dtype == torch.int64

    def test_unbounded_space_is_dtype_range(self):
        space = Unbounded(shape=(2,), dtype=torch.int8).space
        assert isinstance(space, ContinuousBox)
        assert space.low.tolist() == [-128, -128] and space.high.tolist() == [127, 127]
        fspace = Unbounded(shape=(), dtype=torch.float32).space
        assert fspace.high.item() == torch.finfo(torch.float32).max

    def test_bounded_dispatch_and_bounds(self):
        spec = Bounded(-1, 1, shape=(3,))
        assert type(spec) is BoundedContinuous and isinstance(spec, Bounded)
        assert spec.dtype == torch.float32 and spec.shape == (3,)
        assert torch.equal(spec.low, -torch.ones(3)) and torch.equal(spec.high, torch.ones(3))
        assert spec.space.low is spec.low and spec.space.high is spec.high
        disc = Bounded(0, 5, shape=(2,), dtype=torch.int64)
        assert type(disc) is BoundedDiscrete and disc.domain == "discrete"
        assert disc.low.dtype == torch.int64

    def test_bounded_shape_inferred_from_tensors(self):
        spec = Bounded(torch.zeros(2, 3), torch.ones(3))
        assert spec.shape == (2, 3)
        assert spec.low.shape == (2, 3) and spec.high.shape == (2, 3)
        assert Bounded(0.0, 1.0).shape == ()
        spec = Bounded(np.zeros(4), np.full(4, 2.0), dtype="float64")
        assert spec.dtype == torch.float64 and spec.low.dtype == torch.float64

    def test_bounded_low_high_are_copies(self):
        low = torch.zeros(3)
        spec = Bounded(low, 1.0, shape=(3,))
        low += 5
        assert torch.equal(spec.low, torch.zeros(3))

    def test_dtype_strings(self):
        assert Categorical(3, dtype="int32").dtype == torch.int32
        assert OneHot(3, dtype="torch.uint8").dtype == torch.uint8
        with pytest.raises(ValueError, match="unknown dtype string 'nope'"):
            OneHot(3, dtype="nope")

    def test_legacy_aliases(self):
        assert OneHotDiscreteTensorSpec is OneHot
        assert DiscreteTensorSpec is Categorical
        assert BoundedTensorSpec is Bounded
        assert UnboundedContinuousTensorSpec is UnboundedContinuous
        assert UnboundedDiscreteTensorSpec is UnboundedDiscrete
        assert CompositeSpec is Composite
        assert MultiOneHotDiscreteTensorSpec is MultiOneHot
        assert MultiDiscreteTensorSpec is MultiCategorical
        assert BinaryDiscreteTensorSpec is Binary

    def test_legacy_aliases_emit_no_warnings(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            specs = [
                OneHotDiscreteTensorSpec(3),
                DiscreteTensorSpec(3),
                BoundedTensorSpec(-1.0, 1.0, shape=(2,)),
                UnboundedContinuousTensorSpec(shape=(2,)),
                UnboundedDiscreteTensorSpec(shape=(2,)),
                MultiOneHotDiscreteTensorSpec([2, 3]),
                MultiDiscreteTensorSpec([2, 3]),
                BinaryDiscreteTensorSpec(3),
            ]
            comp = CompositeSpec({f"k{i}": s for i, s in enumerate(specs)})
            comp.rand((2,))
        assert UnboundedContinuousTensorSpec(shape=(2,)).dtype == torch.float32
        assert UnboundedDiscreteTensorSpec(shape=(2,)).dtype == torch.int64

    def test_isinstance_checks_are_exact(self):
        # each class is only an instance of itself (and TensorSpec)
        specs = [OneHot(3), Categorical(3), MultiOneHot([2]), MultiCategorical([2]), Binary(2)]
        classes = [OneHot, Categorical, MultiOneHot, MultiCategorical, Binary]
        for spec, cls in zip(specs, classes):
            assert isinstance(spec, TensorSpec)
            for other in classes:
                assert isinstance(spec, other) == (other is cls)


class TestConstructionErrors:
    @pytest.mark.parametrize("n", [0, -1])
    @pytest.mark.parametrize("cls", [OneHot, Categorical, Binary])
    def test_non_positive_n(self, cls, n):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: n must be a positive int, got n={n}"):
            cls(n)

    @pytest.mark.parametrize("cls", [OneHot, Categorical])
    def test_non_int_n(self, cls):
        with pytest.raises(TypeError, match="n must be an int, got 2.5"):
            cls(2.5)
        with pytest.raises(TypeError, match="n must be an int"):
            cls(True)

    def test_onehot_last_dim_mismatch(self):
        with pytest.raises(ValueError, match=r"last dimension of shape must equal n=4, got shape \(3,\)"):
            OneHot(4, shape=(3,))
        with pytest.raises(ValueError, match=r"got shape \(\)"):
            OneHot(4, shape=())

    def test_binary_errors(self):
        with pytest.raises(ValueError, match=r"Binary: the last dimension of shape must equal n=3, got shape \(2, 4\)"):
            Binary(3, shape=(2, 4))
        with pytest.raises(ValueError, match="provide n or a non-empty shape"):
            Binary()

    def test_multi_errors(self):
        with pytest.raises(ValueError, match=r"sum\(nvec\)=5, got shape \(4,\)"):
            MultiOneHot([3, 2], shape=(4,))
        with pytest.raises(ValueError, match=r"len\(nvec\)=2, got shape \(3,\)"):
            MultiCategorical([3, 2], shape=(3,))
        with pytest.raises(ValueError, match=r"nvec\[1\] must be a positive int, got nvec\[1\]=0"):
            MultiOneHot([3, 0])
        with pytest.raises(ValueError, match="at least one cardinality"):
            MultiCategorical([])
        with pytest.raises(ValueError, match="one-dimensional"):
            MultiCategorical(torch.ones(2, 2, dtype=torch.long))

    def test_bounded_low_greater_than_high(self):
        with pytest.raises(ValueError, match=r"low must be <= high everywhere, got low=2.0 > high=1.0 at index \(1,\)"):
            Bounded(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0]))

    def test_bounded_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"low has shape \(3,\), which cannot be broadcast to the spec shape \(2,\)"):
            Bounded(torch.zeros(3), 1.0, shape=(2,))
        with pytest.raises(ValueError, match=r"low \(shape \(3,\)\) and high \(shape \(2,\)\) cannot be broadcast"):
            Bounded(torch.zeros(3), torch.ones(2))

    def test_bounded_nan_and_missing(self):
        with pytest.raises(ValueError, match="low contains NaN"):
            Bounded(float("nan"), 1.0, shape=())
        with pytest.raises(TypeError, match="high"):
            Bounded(low=0.0)

    def test_negative_shape(self):
        with pytest.raises(ValueError, match=r"non-negative sizes, got \(-2,\)"):
            Unbounded(shape=(-2,))
        with pytest.raises(TypeError, match="int or a sequence of ints"):
            Unbounded(shape="abc")

    def test_bad_domain(self):
        with pytest.raises(ValueError, match="domain must be 'continuous' or 'discrete', got 'x'"):
            Unbounded(domain="x")

    def test_dtype_too_small(self):
        with pytest.raises(ValueError, match="dtype torch.int8 cannot hold the value 299"):
            Categorical(300, dtype=torch.int8)

    def test_mask_errors(self):
        with pytest.raises(ValueError, match=r"mask of shape \(3,\) cannot be expanded to the expected shape \(4,\)"):
            OneHot(4, mask=torch.ones(3, dtype=torch.bool))
        with pytest.raises(ValueError, match=r"expected shape \(2, 4\)"):
            Categorical(4, shape=(2,), mask=torch.ones(3, 4, dtype=torch.bool))
        with pytest.raises(TypeError, match="mask must be a boolean tensor, got dtype torch.float32"):
            OneHot(2, mask=torch.ones(2))

    def test_use_register_unsupported(self):
        with pytest.raises(NotImplementedError, match="use_register"):
            OneHot(3, use_register=True)


# ======================================================================================
# rand / zero / one
# ======================================================================================
ALL_LEAVES = [
    lambda: Unbounded(shape=(3,)),
    lambda: Unbounded(shape=(2,), dtype=torch.int64),
    lambda: Bounded(-1.0, 1.0, shape=(3,)),
    lambda: Bounded(0, 4, shape=(2,), dtype=torch.int32),
    lambda: OneHot(4),
    lambda: Categorical(4),
    lambda: Categorical(4, shape=(1,)),
    lambda: Binary(3),
    lambda: MultiOneHot([2, 3]),
    lambda: MultiCategorical([2, 3]),
]


class TestSampling:
    @pytest.mark.parametrize("make", ALL_LEAVES)
    @pytest.mark.parametrize("batch", [None, (), 5, (5,), (2, 3), torch.Size([4])])
    def test_rand_shape_dtype_in_spec(self, make, batch):
        spec = make()
        out = spec.rand(batch)
        prefix = () if batch is None else ((batch,) if isinstance(batch, int) else tuple(batch))
        assert out.shape == torch.Size(prefix) + spec.shape
        assert out.dtype == spec.dtype and out.device == spec.device
        assert spec.is_in(out)

    def test_categorical_singleton_dims_kept(self):
        assert Categorical(4, shape=(1,)).rand().shape == (1,)
        assert Categorical(4).rand().shape == ()
        assert Categorical(4, shape=(1,)).rand((5,)).shape == (5, 1)
        assert MultiCategorical([3]).rand().shape == (1,)

    @pytest.mark.parametrize("make", ALL_LEAVES)
    def test_zero_one(self, make):
        spec = make()
        z, o = spec.zero((2,)), spec.one()
        assert z.shape == (2, *spec.shape) and z.dtype == spec.dtype and not z.any()
        assert o.shape == spec.shape and o.dtype == spec.dtype and bool(o.all())

    def test_onehot_rand_uniformish(self):
        counts = OneHot(3).rand((3000,)).sum(0)
        assert counts.sum() == 3000 and bool((counts > 800).all())

    def test_bounded_discrete_rand_covers_inclusive_range(self):
        vals = Bounded(0, 3, shape=(), dtype=torch.int64).rand((2000,))
        assert set(vals.unique().tolist()) == {0, 1, 2, 3}

    def test_bounded_rand_per_element_bounds(self):
        spec = Bounded(torch.tensor([0.0, 10.0]), torch.tensor([1.0, 10.5]))
        out = spec.rand((1000,))
        assert bool((out[:, 0] <= 1).all()) and bool((out[:, 1] >= 10).all())
        assert out[:, 0].std() > 0.2

    def test_bounded_rand_infinite_bounds(self):
        for low, high in [(-float("inf"), 1.0), (0.0, float("inf")), (-float("inf"), float("inf"))]:
            spec = Bounded(low, high, shape=(50,))
            out = spec.rand()
            assert bool(torch.isfinite(out).all()) and spec.is_in(out)

    def test_bounded_low_equals_high(self):
        spec = Bounded(2.0, 2.0, shape=(3,))
        assert torch.equal(spec.rand(), torch.full((3,), 2.0))

    def test_binary_rand_values(self):
        out = Binary(4, dtype=torch.bool).rand((100,))
        assert out.dtype == torch.bool and out.any() and not out.all()

    def test_unbounded_rand_bool_and_uint8(self):
        assert Unbounded(shape=(3,), dtype=torch.bool).rand().dtype == torch.bool
        u8 = Unbounded(shape=(100,), dtype=torch.uint8).rand()
        assert u8.dtype == torch.uint8 and int(u8.min()) >= 0


# ======================================================================================
# is_in / project
# ======================================================================================
class TestIsIn:
    def test_shape_and_dtype_checked(self):
        spec = Bounded(-1.0, 1.0, shape=(3,))
        assert spec.is_in(torch.zeros(3))
        assert spec.is_in(torch.zeros(4, 3))  # extra batch dims
        assert not spec.is_in(torch.zeros(2))
        assert not spec.is_in(torch.zeros(3, dtype=torch.float64))
        assert not spec.is_in(torch.full((3,), 1.5))
        assert not spec.is_in(torch.tensor([0.0, float("nan"), 0.0]))
        assert not spec.is_in([0.0, 0.0, 0.0])
        assert spec.contains(torch.zeros(3))

    def test_onehot(self):
        spec = OneHot(3)
        assert spec.is_in(torch.tensor([False, True, False]))
        assert not spec.is_in(torch.tensor([True, True, False]))
        assert not spec.is_in(torch.tensor([False, False, False]))
        assert not spec.is_in(torch.tensor([0, 1, 0]))  # wrong dtype
        long_spec = OneHot(3, dtype=torch.int64)
        assert long_spec.is_in(torch.tensor([[0, 1, 0], [1, 0, 0]]))
        assert not long_spec.is_in(torch.tensor([0, 2, -1]))

    def test_categorical(self):
        spec = Categorical(3)
        assert spec.is_in(torch.tensor(2))
        assert spec.is_in(torch.tensor([0, 1, 2]))
        assert not spec.is_in(torch.tensor(3))
        assert not spec.is_in(torch.tensor(-1))
        assert not spec.is_in(torch.tensor(1.0))
        assert not Categorical(3, shape=(1,)).is_in(torch.tensor(1))

    def test_binary(self):
        spec = Binary(3)
        assert spec.is_in(torch.tensor([1, 0, 1], dtype=torch.int8))
        assert not spec.is_in(torch.tensor([2, 0, 1], dtype=torch.int8))

    def test_multi(self):
        mo = MultiOneHot([2, 3])
        assert mo.is_in(torch.tensor([0, 1, 0, 0, 1]).bool())
        assert not mo.is_in(torch.tensor([1, 1, 0, 0, 1]).bool())
        assert not mo.is_in(torch.tensor([0, 1, 0, 0, 0]).bool())
        mc = MultiCategorical([2, 3])
        assert mc.is_in(torch.tensor([[1, 2], [0, 0]]))
        assert not mc.is_in(torch.tensor([2, 0]))
        assert not mc.is_in(torch.tensor([0, -1]))

    def test_assert_is_in(self):
        spec = Categorical(3)
        spec.assert_is_in(torch.tensor(1))
        with pytest.raises(AssertionError, match=r"not in Categorical \(shape=\(\), dtype=torch.int64\)"):
            spec.assert_is_in(torch.tensor(5))


class TestProject:
    def test_bounded_clamps(self):
        spec = Bounded(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.5]))
        out = spec.project(torch.tensor([[-3.0, 0.25], [0.5, 9.0]]))
        assert torch.equal(out, torch.tensor([[-1.0, 0.25], [0.5, 0.5]]))

    def test_bounded_casts_dtype(self):
        spec = Bounded(-1.0, 1.0, shape=(2,))
        out = spec.project(torch.tensor([2.0, 0.5], dtype=torch.float64))
        assert out.dtype == torch.float32 and out.tolist() == [1.0, 0.5]

    def test_bounded_discrete_rounds(self):
        spec = Bounded(0, 5, shape=(3,), dtype=torch.int64)
        out = spec.project(torch.tensor([-2.2, 2.6, 99.0]))
        assert out.dtype == torch.int64 and out.tolist() == [0, 3, 5]
        assert spec.project(torch.tensor([7, 1, -3], dtype=torch.int32)).tolist() == [5, 1, 0]

    def test_unbounded_casts(self):
        assert Unbounded(shape=(2,)).project(torch.tensor([1, 2])).dtype == torch.float32
        out = Unbounded(shape=(2,), dtype=torch.int64).project(torch.tensor([1.6, -2.2]))
        assert out.tolist() == [2, -2]

    def test_onehot_argmax(self):
        spec = OneHot(4)
        out = spec.project(torch.tensor([[0.1, 0.9, 0.3, -1.0], [5.0, 0.0, 0.0, 0.0]]))
        assert out.dtype == torch.bool
        assert out.to(torch.int64).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]

    def test_onehot_valid_unchanged(self):
        spec = OneHot(3, dtype=torch.int64)
        x = torch.tensor([0, 0, 1])
        assert torch.equal(spec.project(x), x)

    def test_onehot_masked(self):
        spec = OneHot(4, mask=torch.tensor([True, False, True, True]))
        out = spec.project(torch.tensor([0.0, 10.0, 1.0, 0.5]))
        assert out.to(torch.int64).tolist() == [0, 0, 1, 0]
        # a valid one-hot on a masked action is moved to an allowed one
        out = spec.project(torch.tensor([False, True, False, False]))
        assert spec.is_in(out)

    def test_categorical_round_clamp(self):
        spec = Categorical(4)
        assert spec.project(torch.tensor([-3.0, 0.4, 1.6, 100.0])).tolist() == [0, 0, 2, 3]
        assert spec.project(torch.tensor([5, -1])).tolist() == [3, 0]

    def test_categorical_masked_nearest(self):
        spec = Categorical(5, mask=torch.tensor([True, False, False, True, False]))
        out = spec.project(torch.tensor([0, 1, 2, 3, 4]))
        assert out.tolist() == [0, 0, 3, 3, 3]

    def test_categorical_batched_mask(self):
        mask = torch.tensor([[True, False, False], [False, False, True]])
        spec = Categorical(3, shape=(2,), mask=mask)
        assert spec.project(torch.tensor([1, 1])).tolist() == [0, 2]

    def test_binary_threshold(self):
        spec = Binary(4)
        out = spec.project(torch.tensor([0.49, 0.51, -7.0, 7.0]))
        assert out.dtype == torch.int8 and out.tolist() == [0, 1, 0, 1]
        assert spec.project(torch.tensor([True, False, True, True])).tolist() == [1, 0, 1, 1]

    def test_multionehot_per_block(self):
        spec = MultiOneHot([2, 3])
        out = spec.project(torch.tensor([0.0, 0.1, 3.0, 1.0, 2.0]))
        assert out.to(torch.int64).tolist() == [0, 1, 1, 0, 0]

    def test_multionehot_masked(self):
        spec = MultiOneHot([2, 3], mask=torch.tensor([True, True, False, True, True]))
        out = spec.project(torch.tensor([1.0, 0.0, 9.0, 1.0, 2.0]))
        assert out.to(torch.int64).tolist() == [1, 0, 0, 0, 1]

    def test_multicategorical(self):
        spec = MultiCategorical([2, 4])
        assert spec.project(torch.tensor([[5.0, 2.4], [-1.0, 3.6]])).tolist() == [[1, 2], [0, 3]]
        masked = MultiCategorical([2, 4], mask=torch.tensor([True, False, False, True, True, False]))
        assert masked.project(torch.tensor([1, 3])).tolist() == [0, 2]

    def test_project_wrong_shape(self):
        with pytest.raises(ValueError, match=r"OneHot.project: expected a tensor whose trailing shape is \(4,\), got shape \(3,\)"):
            OneHot(4).project(torch.zeros(3))
        with pytest.raises(TypeError, match="expects a torch.Tensor, got list"):
            Bounded(0.0, 1.0, shape=(1,)).project([0.5])

    def test_project_all_masked_raises(self):
        spec = Categorical(3, mask=torch.tensor([False, False, False]))
        with pytest.raises(ValueError, match="mask disallows every outcome"):
            spec.project(torch.tensor(1))


# ======================================================================================
# masks
# ======================================================================================
class TestMasks:
    def test_update_mask_in_place(self):
        spec = Categorical(4)
        spec.update_mask(torch.tensor([False, False, True, False]))
        assert spec.mask.tolist() == [False, False, True, False]
        assert bool((spec.rand((50,)) == 2).all())
        assert not spec.is_in(torch.tensor(1))
        spec.update_mask(None)
        assert spec.mask is None and spec.is_in(torch.tensor(1))

    def test_int_mask_converted(self):
        spec = OneHot(3, mask=torch.tensor([1, 0, 1]))
        assert spec.mask.dtype == torch.bool

    def test_onehot_mask_rand(self):
        spec = OneHot(5, mask=torch.tensor([False, True, False, True, False]))
        out = spec.rand((400,))
        assert not out[:, [0, 2, 4]].any()
        assert out[:, 1].any() and out[:, 3].any()
        assert not spec.is_in(torch.tensor([True, False, False, False, False]))

    def test_per_env_mask(self):
        mask = torch.tensor([[True, False, False], [False, False, True]])
        spec = OneHot(3, shape=(2, 3), mask=mask)
        out = spec.rand((10,))
        assert bool((out[:, 0, 0]).all()) and bool((out[:, 1, 2]).all())

    def test_multi_masks(self):
        mo = MultiOneHot([2, 2], mask=torch.tensor([False, True, True, False]))
        assert (mo.rand((20,)).to(torch.int64) == torch.tensor([0, 1, 1, 0])).all()
        mc = MultiCategorical([2, 2], mask=torch.tensor([False, True, True, False]))
        assert (mc.rand((20,)) == torch.tensor([1, 0])).all()
        assert not mc.is_in(torch.tensor([0, 0]))

    def test_all_masked_rand_raises(self):
        spec = OneHot(3, mask=torch.tensor([False, False, False]))
        with pytest.raises(ValueError, match="mask disallows every outcome"):
            spec.rand()

    def test_mask_survives_shape_ops(self):
        mask = torch.tensor([[True, False, True], [False, True, True]])
        spec = Categorical(3, shape=(2,), mask=mask)
        assert torch.equal(spec[1].mask, mask[1])
        assert spec.unsqueeze(0).mask.shape == (1, 2, 3)
        assert spec.expand(4, 2).mask.shape == (4, 2, 3)
        assert torch.equal(spec.clone().mask, mask)


# ======================================================================================
# encode / to_numpy
# ======================================================================================
class TestEncode:
    def test_numpy_and_lists(self):
        spec = Unbounded(shape=(3,))
        out = spec.encode(np.array([1, 2, 3], dtype=np.int64))
        assert out.dtype == torch.float32 and out.tolist() == [1.0, 2.0, 3.0]
        assert spec.encode([1.0, 2.0, 3.0]).dtype == torch.float32
        assert spec.encode(torch.tensor([1, 2, 3])).dtype == torch.float32
        # a batch is encoded by a spec expanded to it (TorchRL's contract)
        batch = np.arange(6).reshape(2, 3)[:, ::-1]
        assert spec.expand(2, 3).encode(batch).tolist() == [[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]
        with pytest.raises(RuntimeError, match=r"Shape mismatch: a value of shape \(2, 3\)"):
            spec.encode(batch)

    def test_scalar_reshaped(self):
        out = Unbounded(shape=(1,)).encode(2.5)
        assert out.shape == (1,) and out.item() == 2.5
        assert Bounded(0, 1, shape=(1,), dtype=torch.int64).encode(np.int64(1)).shape == (1,)

    def test_bad_shape(self):
        with pytest.raises(ValueError, match=r"a value of shape \(2,\) cannot be encoded into a spec of shape \(3,\)"):
            Unbounded(shape=(3,)).encode([1.0, 2.0])

    def test_onehot_from_index(self):
        spec = OneHot(4)
        assert spec.encode(2).to(torch.int64).tolist() == [0, 0, 1, 0]
        assert spec.encode(np.array([0, 0, 0, 1])).to(torch.int64).tolist() == [0, 0, 0, 1]
        assert spec.expand(2, 4).encode([1, 3]).to(torch.int64).tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]
        with pytest.raises(ValueError, match=r"categorical value\(s\) must be in \[0, 3\]"):
            spec.encode(7)

    def test_multionehot_from_indices(self):
        spec = MultiOneHot([2, 3])
        assert spec.encode([1, 2]).to(torch.int64).tolist() == [0, 1, 0, 0, 1]

    def test_categorical(self):
        out = Categorical(3).encode(np.int64(2))
        assert out.dtype == torch.int64 and out.shape == ()

    def test_to_numpy(self):
        out = Bounded(0.0, 1.0, shape=(2,)).to_numpy(torch.tensor([0.5, 0.25]))
        assert isinstance(out, np.ndarray) and out.tolist() == [0.5, 0.25]
        assert OneHot(3).to_numpy(torch.tensor([False, False, True])).tolist() == 2
        assert OneHot(3).to_numpy(OneHot(3).rand((4,))).shape == (4,)
        assert MultiOneHot([2, 3]).to_numpy(torch.tensor([0, 1, 0, 0, 1]).bool()).tolist() == [1, 2]
        with pytest.raises(AssertionError, match="not in Categorical"):
            Categorical(3).to_numpy(torch.tensor(7), safe=True)
        assert Categorical(3).to_numpy(torch.tensor(7)).tolist() == 7


# ======================================================================================
# shape ops
# ======================================================================================
class TestShapeOps:
    def test_expand(self):
        assert OneHot(4).expand(2, 4).shape == (2, 4)
        assert OneHot(4).expand((3, 2, 4)).shape == (3, 2, 4)
        assert Categorical(3, shape=(1,)).expand(5, 4).shape == (5, 4)
        spec = Bounded(torch.zeros(3), torch.arange(1.0, 4.0)).expand(2, 3)
        assert spec.low.shape == (2, 3) and spec.high[1].tolist() == [1.0, 2.0, 3.0]
        assert Unbounded(shape=(1, 3)).expand(-1, 3).shape == (1, 3)
        assert MultiCategorical([2, 3]).expand(torch.Size([4, 2])).shape == (4, 2)

    def test_expand_errors(self):
        with pytest.raises(ValueError, match=r"last dimension must stay \(4,\), got new shape \(2, 5\)"):
            OneHot(4).expand(2, 5)
        with pytest.raises(ValueError, match=r"cannot expand shape \(2, 3\) to \(4, 3\)"):
            Unbounded(shape=(2, 3)).expand(4, 3)
        with pytest.raises(ValueError, match="fewer dimensions"):
            Unbounded(shape=(2, 3)).expand(3)

    def test_squeeze(self):
        assert Unbounded(shape=(1, 3, 1)).squeeze().shape == (3,)
        assert Unbounded(shape=(1, 3, 1)).squeeze(0).shape == (3, 1)
        assert Unbounded(shape=(1, 3, 1)).squeeze(-1).shape == (1, 3)
        assert Unbounded(shape=(2, 3)).squeeze(0).shape == (2, 3)
        assert OneHot(1, shape=(1, 1)).squeeze().shape == (1,)
        assert Categorical(3, shape=(1,)).squeeze().shape == ()
        spec = Bounded(torch.zeros(1, 2), torch.ones(1, 2)).squeeze(0)
        assert spec.shape == (2,) and spec.low.shape == (2,)

    def test_squeeze_feature_dim_error(self):
        with pytest.raises(ValueError, match="feature dimension, which cannot be squeezed"):
            OneHot(1).squeeze(-1)
        with pytest.raises(IndexError, match="dim 3 out of range"):
            Unbounded(shape=(1, 2)).squeeze(3)
        assert Categorical(3).squeeze(0) == Categorical(3)  # 0-d: no-op, like torch
        assert Categorical(3).squeeze() == Categorical(3)
        with pytest.raises(IndexError, match="dim 2 out of range"):
            Categorical(3).squeeze(2)

    def test_unsqueeze(self):
        assert Categorical(3).unsqueeze(0).shape == (1,)
        assert Categorical(3).unsqueeze(-1).shape == (1,)
        assert OneHot(3).unsqueeze(0).shape == (1, 3)
        assert OneHot(3).unsqueeze(-2).shape == (1, 3)
        assert Unbounded(shape=(2, 3)).unsqueeze(-1).shape == (2, 3, 1)
        assert Binary(2, shape=(4, 2)).unsqueeze(1).shape == (4, 1, 2)
        with pytest.raises(ValueError, match="after the feature dimension"):
            OneHot(3).unsqueeze(-1)

    def test_getitem(self):
        spec = OneHot(3, shape=(4, 5, 3))
        assert spec[0].shape == (5, 3)
        assert spec[:, 1:3].shape == (4, 2, 3)
        assert spec[..., 0].shape == (4, 3)
        assert spec[torch.tensor([0, 2])].shape == (2, 5, 3)
        bounded = Bounded(torch.arange(4.0), torch.arange(4.0) + 1)
        assert bounded[1:3].low.tolist() == [1.0, 2.0]
        with pytest.raises(IndexError, match="feature dimension cannot be indexed"):
            OneHot(3)[0]

    def test_clone_independent(self):
        spec = Bounded(0.0, 1.0, shape=(2,))
        other = spec.clone()
        assert other == spec and other is not spec
        other.low.fill_(-5.0)
        assert spec.low.tolist() == [0.0, 0.0]

    def test_to_device_and_dtype(self):
        spec = Bounded(0.0, 1.0, shape=(2,))
        assert spec.to("cpu") is spec
        assert spec.cpu() is spec
        as64 = spec.to(torch.float64)
        assert as64.dtype == torch.float64 and as64.low.dtype == torch.float64
        assert OneHot(3).to(torch.int64).dtype == torch.int64
        assert spec.to(torch.device("cpu")).device == CPU


# ======================================================================================
# index / conversions / enumerate / eq / repr / pickling
# ======================================================================================
class TestIndexAndConversions:
    def test_onehot_index(self):
        values = torch.arange(12.0).view(3, 4)
        action = F_one_hot(torch.tensor([3, 0, 1]), 4).bool()
        out = OneHot(4).index(action, values)
        assert out.shape == (3, 1) and out.squeeze(-1).tolist() == [3.0, 4.0, 9.0]

    def test_categorical_index(self):
        values = torch.arange(12.0).view(3, 4)
        assert Categorical(4).index(torch.tensor([3, 0, 1]), values).tolist() == [3.0, 4.0, 9.0]
        out = Categorical(4, shape=(1,)).index(torch.tensor([[3], [0], [1]]), values)
        assert out.shape == (3, 1)

    def test_multi_index(self):
        values = torch.arange(5.0)
        assert MultiCategorical([2, 3]).index(torch.tensor([1, 2]), values).tolist() == [1.0, 4.0]
        hot = torch.tensor([0, 1, 0, 0, 1]).bool()
        assert MultiOneHot([2, 3]).index(hot, values).tolist() == [1.0, 4.0]

    def test_plain_index(self):
        assert Bounded(0.0, 1.0, shape=(3,)).index(1, torch.tensor([5, 6, 7])).item() == 6

    def test_onehot_categorical_roundtrip(self):
        oh = OneHot(4, shape=(2, 4), mask=torch.tensor([True, True, False, True]))
        cat = oh.to_categorical_spec()
        assert isinstance(cat, Categorical) and cat.shape == (2,) and cat.n == 4
        assert cat.mask.shape == (2, 4)
        assert cat.to_one_hot_spec() == oh
        x = oh.rand((3,))
        assert torch.equal(cat.to_one_hot(oh.to_categorical(x)), x)
        assert oh.to_categorical(x).dtype == torch.int64
        assert oh.to_one_hot(x) is x and oh.to_one_hot_spec() is oh
        assert cat.to_categorical_spec() is cat
        c = torch.tensor([1, 3])
        assert cat.to_categorical(c) is c

    def test_multi_roundtrip(self):
        mo = MultiOneHot([2, 3], shape=(4, 5))
        mc = mo.to_categorical_spec()
        assert isinstance(mc, MultiCategorical) and mc.shape == (4, 2)
        assert mc.to_one_hot_spec() == mo
        x = mo.rand()
        assert torch.equal(mc.to_one_hot(mo.to_categorical(x)), x)
        assert mo.to_one_hot(x) is x and mc.to_categorical_spec() is mc

    def test_conversion_safe(self):
        with pytest.raises(AssertionError):
            Categorical(3).to_one_hot(torch.tensor(5), safe=True)
        with pytest.raises(AssertionError):
            OneHot(3).to_categorical(torch.tensor([True, True, False]), safe=True)


def F_one_hot(idx, n):
    return torch.nn.functional.one_hot(idx, n)


class TestEnumerate:
    def test_values(self):
        assert OneHot(3).enumerate().to(torch.int64).tolist() == torch.eye(3, dtype=torch.int64).tolist()
        assert Categorical(3).enumerate().tolist() == [0, 1, 2]
        assert Categorical(3, shape=(2,)).enumerate().shape == (3, 2)
        assert Binary(2).enumerate().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
        assert MultiCategorical([2, 2]).enumerate().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
        assert MultiOneHot([2, 3]).enumerate().shape == (6, 5)
        assert BoundedDiscrete(1, 3, shape=()).enumerate().tolist() == [1, 2, 3]

    def test_enumerated_values_in_spec(self):
        for spec in [OneHot(3, shape=(2, 3)), Categorical(4), Binary(3), MultiOneHot([2, 2]),
                     MultiCategorical([3, 2]), BoundedDiscrete(0, 2, shape=(2,))]:
            values = spec.enumerate()
            assert values.shape[0] == spec.cardinality()
            assert spec.is_in(values)

    def test_masked(self):
        spec = OneHot(4, mask=torch.tensor([True, False, True, False]))
        assert spec.enumerate(use_mask=True).to(torch.int64).argmax(-1).tolist() == [0, 2]
        assert spec.enumerate().shape == (4, 4)
        assert Categorical(3, mask=torch.tensor([False, True, True])).enumerate(use_mask=True).tolist() == [1, 2]

    def test_cardinality(self):
        assert OneHot(5).cardinality() == 5
        assert Categorical(5).cardinality() == 5
        assert Binary(3).cardinality() == 8
        assert MultiCategorical([2, 3]).cardinality() == 6
        assert MultiOneHot([2, 3]).cardinality() == 6
        assert BoundedDiscrete(-1, 1, shape=(4,)).cardinality() == 3

    def test_continuous_errors(self):
        with pytest.raises(ValueError, match="cannot be enumerated"):
            Unbounded(shape=(2,)).enumerate()
        with pytest.raises(ValueError, match="no finite cardinality"):
            Unbounded(shape=(2,)).cardinality()
        with pytest.raises(ValueError, match="continuous and cannot be enumerated"):
            Bounded(0.0, 1.0, shape=()).enumerate()
        with pytest.raises(ValueError, match="same low/high for every element"):
            BoundedDiscrete(torch.tensor([0, 1]), 3).enumerate()


class TestEqReprPickle:
    def test_eq(self):
        assert OneHot(3) == OneHot(3)
        assert OneHot(3) != OneHot(4)
        assert OneHot(3) != OneHot(3, dtype=torch.int64)
        assert OneHot(3) != Categorical(3)
        assert OneHot(3) != OneHot(3, shape=(2, 3))
        assert OneHot(3, mask=torch.tensor([True, True, False])) != OneHot(3)
        assert OneHot(3, mask=torch.tensor([True, True, True])) == OneHot(3, mask=torch.ones(1, 3).bool()[0])
        assert Bounded(0.0, 1.0, shape=(2,)) == Bounded(0.0, 1.0, shape=(2,))
        assert Bounded(0.0, 1.0, shape=(2,)) != Bounded(0.0, 2.0, shape=(2,))
        assert MultiCategorical([2, 3]) != MultiCategorical([3, 2])
        assert Unbounded(3) == Unbounded(shape=(3,))
        assert Unbounded(3) != Unbounded(3, dtype=torch.float64)
        assert OneHot(3) != "OneHot"

    @pytest.mark.parametrize("make", ALL_LEAVES)
    def test_repr(self, make):
        spec = make()
        text = repr(spec)
        assert text.startswith(type(spec).__name__ + "(")
        for field in (f"shape={spec.shape}", f"dtype={spec.dtype}", "device=cpu", "domain="):
            assert field in text

    def test_repr_details(self):
        assert "space=CategoricalBox(n=4)" in repr(OneHot(4))
        assert "mask=Tensor(shape=torch.Size([4]), dtype=torch.bool)" in repr(
            OneHot(4, mask=torch.ones(4, dtype=torch.bool))
        )
        assert "low=tensor([-1.0, -1.0])" in repr(Bounded(-1.0, 1.0, shape=(2,)))
        assert "BoxList(nvec=[2, 3])" in repr(MultiOneHot([2, 3]))

    @pytest.mark.parametrize("make", ALL_LEAVES)
    def test_pickle_and_deepcopy(self, make):
        spec = make()
        assert pickle.loads(pickle.dumps(spec)) == spec
        clone = copy.deepcopy(spec)
        assert clone == spec and type(clone) is type(spec)


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
