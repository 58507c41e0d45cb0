"""Tensor specs: shape ops, indexing, conversions, enumerate, equality, repr, pickling."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
from test_specs_values import ALL_LEAVES  # the leaf-spec cases shared by the spec tests

from tdrl.data import (
    Binary,
    Bounded,
    BoundedDiscrete,
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
