"""Tensor specs: rand / zero / one, is_in, project, masks, encode / to_numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


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

    @pytest.mark.parametrize("bad", [0.3, 2, torch.tensor([1, 0, 1]), torch.tensor([0.3, 1.0, 0.0])])
    def test_non_bool_mask_refused(self, bad):
        # a float or int mask is not silently cast: which entries would be "allowed"?
        spec = OneHot(3)
        dtype = torch.as_tensor(bad).dtype
        with pytest.raises(TypeError, match=rf"mask must have dtype torch.bool .*got dtype {dtype}"):
            spec.update_mask(bad)
        assert spec.mask is None  # nothing half-written
        with pytest.raises(TypeError, match="mask must have dtype torch.bool"):
            OneHot(3, mask=bad)

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


class TestNaNRule:
    """``project`` raises on NaN for every spec with a bounded domain (never a silent pick)."""

    @pytest.mark.parametrize("make", [
        lambda: Categorical(3), lambda: OneHot(3), lambda: Bounded(0.0, 1.0, shape=(3,)),
        lambda: Bounded(0, 5, shape=(3,), dtype=torch.int64), lambda: Binary(3),
        lambda: MultiOneHot([2, 1]), lambda: MultiCategorical([2, 3]),
        lambda: Unbounded(shape=(2,), dtype=torch.int64),
        lambda: Categorical(3, mask=torch.tensor([True, False, True])),
    ])
    def test_nan_refused(self, make):
        spec = make()
        x = torch.zeros(spec.shape).reshape(-1)
        x[0] = float("nan")
        x = x.reshape(spec.shape)
        name = type(spec).__name__
        with pytest.raises(ValueError, match=rf"{name}.project: the value contains NaN \(1 of {x.numel()} elements\)"):
            spec.project(x)
        assert not spec.is_in(x)

    def test_hostile_inputs_from_the_issue(self):
        with pytest.raises(ValueError, match="Categorical.project: the value contains NaN"):
            Categorical(3).project(torch.tensor(float("nan")))
        with pytest.raises(ValueError, match="OneHot.project"):
            OneHot(3).project(torch.tensor([float("nan"), 0.0, 0.0]))
        with pytest.raises(ValueError, match="BoundedContinuous.project"):
            Bounded(0.0, 1.0, shape=(1,)).project(torch.tensor([float("nan")]))

    def test_floating_unbounded_keeps_nan(self):
        # every float of the dtype is in an Unbounded float spec: projection is the identity
        out = Unbounded(shape=(2,)).project(torch.tensor([float("nan"), 1.0]))
        assert out.isnan().tolist() == [True, False]

    def test_infinities_are_projected(self):
        out = Bounded(-1.0, 1.0, shape=(2,)).project(torch.tensor([float("inf"), -float("inf")]))
        assert out.tolist() == [1.0, -1.0]
        assert Categorical(4).project(torch.tensor(float("inf"))).item() == 3


class TestCheckSpecEncode:
    def test_flag_makes_encode_and_to_numpy_check(self):
        from tdrl.data import tensor_specs

        spec = Bounded(0.0, 1.0, shape=(2,))
        assert tensor_specs._CHECK_SPEC_ENCODE is False
        assert spec.encode([3.0, 0.5]).tolist() == [3.0, 0.5]  # unchecked by default
        tensor_specs._CHECK_SPEC_ENCODE = True
        try:
            with pytest.raises(AssertionError, match=r"is not in BoundedContinuous"):
                spec.encode([3.0, 0.5])
            with pytest.raises(AssertionError):
                spec.to_numpy(torch.tensor([3.0, 0.5]))
            with pytest.raises(AssertionError, match=r"categorical value\(s\) must be in \[0, 2\]"):
                OneHot(3).encode(7)
        finally:
            tensor_specs._CHECK_SPEC_ENCODE = False
        assert spec.to_numpy(torch.tensor([3.0, 0.5])).tolist() == [3.0, 0.5]
