"""Tensor specs: construction, defaults, legacy aliases and construction errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

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
    @pytest.mark.parametrize("cls", [OneHot, Binary])
    def test_negative_n(self, cls):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: n must be a non-negative int, got n=-1"):
            cls(-1)

    def test_negative_n_categorical(self):
        # -1 means "unknown size" for Categorical (tests/test_specs_extras.py); below it raises
        with pytest.raises(ValueError, match=r"Categorical: n must be a non-negative int, got n=-2"):
            Categorical(-2)

    def test_empty_n(self):
        # TorchRL's contract: n=0 describes an empty set (shape bookkeeping only)
        assert OneHot(0).shape == (0,) and OneHot(0).rand((2,)).shape == (2, 0)
        assert Categorical(0).shape == () and MultiOneHot([2, 0]).shape == (2,)
        with pytest.raises(ValueError, match="Categorical with n=0 has no value to sample"):
            Categorical(0).rand()

    def test_binary_single_bit(self):
        spec = Binary(shape=())
        assert spec.shape == () and spec.n == 0 and spec == spec.clone()
        assert spec.rand((5,)).shape == (5,) and spec.is_in(spec.rand((5,)))
        assert spec.enumerate().tolist() == [0, 1] and spec.cardinality() == 2
        with pytest.raises(ValueError, match=r"n must be 0 \(or None\) with shape=\(\), got n=3"):
            Binary(3, shape=())

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
        with pytest.raises(TypeError, match="provide n or shape, got neither"):
            Binary()

    def test_multi_errors(self):
        with pytest.raises(ValueError, match=r"sum\(nvec\)=5, got shape \(4,\)"):
            MultiOneHot([3, 2], shape=(4,))
        with pytest.raises(ValueError, match=r"shape \(3,\) must end with the shape of nvec \(2,\)"):
            MultiCategorical([3, 2], shape=(3,))
        with pytest.raises(ValueError, match=r"nvec\[1\] must be a non-negative int, got nvec\[1\]=-1"):
            MultiOneHot([3, -1])
        with pytest.raises(ValueError, match=r"nvec must hold positive ints, got \[\]"):
            MultiCategorical([])
        with pytest.raises(ValueError, match=r"nvec must hold positive ints, got \[3, 0\]"):
            MultiCategorical([3, 0])
        with pytest.raises(ValueError, match=r"shape \(3,\) must end with the shape of nvec \(2, 2\)"):
            MultiCategorical([[2, 3], [4, 5]], shape=(3,))
        with pytest.raises(ValueError, match="masks need a one-dimensional nvec"):
            MultiCategorical(torch.full((2, 2), 3), mask=torch.ones(2, 12, dtype=torch.bool))

    @pytest.mark.parametrize(("nvec", "shape"), [(5, ()), ([[2, 3], [4, 5]], (2, 2)), ([3, 2], (2,))])
    def test_multicategorical_nvec_shapes(self, nvec, shape):
        spec = MultiCategorical(nvec)
        assert spec.shape == shape and spec.nvec.shape == shape
        sample = spec.rand((7,))
        assert sample.shape == (7, *shape) and spec.is_in(sample)
        assert bool((sample < spec.nvec).all())

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
        with pytest.raises(TypeError, match="mask must have dtype torch.bool .*got dtype torch.float32"):
            OneHot(2, mask=torch.ones(2))

    def test_use_register(self):
        # TorchRL's register: new values take the next free index, to_numpy maps back
        spec = OneHot(3, use_register=True)
        assert spec.encode("left").tolist() == [True, False, False]
        assert spec.encode("right").tolist() == [False, True, False]
        assert spec.encode("left").tolist() == [True, False, False]
        assert spec.to_numpy(spec.encode("right")).tolist() == "right"
        assert spec != OneHot(3) and spec.clone().use_register
        spec.encode("up")
        with pytest.raises(ValueError, match=r"register is full \(3 values: \['left', 'right', 'up'\]\), cannot add 'down'"):
            spec.encode("down")

    @pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
    def test_unavailable_device_refused(self, device):
        if torch.device(device).type == "cuda" and torch.cuda.is_available():
            pytest.skip("a CUDA device is available here")
        if device == "mps" and torch.backends.mps.is_available():
            pytest.skip("an MPS device is available here")
        for make in (lambda: OneHot(2, device=device), lambda: Bounded(0.0, 1.0, shape=(1,), device=device),
                     lambda: Composite(a=Unbounded(1), device=device), lambda: Categorical(2).to(device)):
            with pytest.raises(RuntimeError, match=rf"device '{device}' is not available on this machine"):
                make()
