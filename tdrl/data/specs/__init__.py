"""Tensor specs: metadata describing the shape, dtype, device and domain of tensors.

The public API follows TorchRL's documented spec system (``torchrl.data``): the same class
names, constructor signatures, default dtypes and shape conventions, so spec code written
for TorchRL runs unchanged. One concept per module, importing downward only:

``_utils`` (shape/dtype/device helpers) -> ``boxes`` (``spec.space``) -> ``base``
(:class:`TensorSpec`) -> ``masks`` -> ``continuous`` / ``discrete`` / ``binary`` /
``multi`` (leaf specs) -> ``composite_keys`` / ``composite_values`` -> ``composite``
-> ``stacked`` -> ``stacked_composite`` -> ``legacy`` (old names); ``non_tensor``,
``choice`` and ``invertible`` stand on ``base`` alone.

Conventions (shared by every leaf spec):

* ``spec.shape`` is the full shape of one sample. Leading dimensions are batch dimensions;
  for :class:`OneHot`, :class:`MultiOneHot`, :class:`Binary` and :class:`MultiCategorical`
  the last dimension is the *feature* dimension (``n``, ``sum(nvec)``, ``n``, ``len(nvec)``)
  and can never be indexed, squeezed or expanded.
* ``spec.rand(shape)`` / ``zero(shape)`` / ``one(shape)`` return tensors of shape
  ``(*shape, *spec.shape)``.
* ``spec.is_in(x)`` accepts extra leading batch dimensions, and requires
  ``x.dtype == spec.dtype``.
* ``spec.project(x)`` maps any ``x`` whose trailing shape is ``spec.shape`` into the
  spec, and leaves in-spec values unchanged.

Examples:
    >>> import torch
    >>> from tdrl.data import Bounded, Categorical, Composite, OneHot
    >>> spec = Composite(action=OneHot(4), obs=Bounded(-1.0, 1.0, shape=(3,)), shape=())
    >>> td = spec.rand((5,))
    >>> td["action"].shape, td["action"].dtype, td["obs"].shape
    (torch.Size([5, 4]), torch.bool, torch.Size([5, 3]))
    >>> spec.is_in(td)
    True
    >>> Categorical(4, shape=(1,)).rand().shape
    torch.Size([1])
"""
from tdrl.data.specs.base import TensorSpec
from tdrl.data.specs.binary import Binary
from tdrl.data.specs.boxes import (
    BinaryBox,
    Box,
    BoxList,
    CategoricalBox,
    ContinuousBox,
    DiscreteBox,
)
from tdrl.data.specs.composite import Composite
from tdrl.data.specs.continuous import (
    Bounded,
    BoundedContinuous,
    BoundedDiscrete,
    Unbounded,
    UnboundedContinuous,
    UnboundedDiscrete,
)
from tdrl.data.specs.discrete import Categorical, OneHot
from tdrl.data.specs.legacy import (
    BinaryDiscreteTensorSpec,
    BoundedTensorSpec,
    CompositeSpec,
    DiscreteTensorSpec,
    MultiDiscreteTensorSpec,
    MultiOneHotDiscreteTensorSpec,
    OneHotDiscreteTensorSpec,
    UnboundedContinuousTensorSpec,
    UnboundedDiscreteTensorSpec,
)
from tdrl.data.specs.multi import MultiCategorical, MultiOneHot
from tdrl.data.specs.stacked import Stacked
from tdrl.data.specs.stacked_composite import StackedComposite

# isort: split
# non-tensor data, choices, and TorchRL's invertible_dict (issue 18)
from tdrl.data.specs.choice import Choice
from tdrl.data.specs.invertible import invertible_dict
from tdrl.data.specs.non_tensor import NonTensor

__all__ = [
    "TensorSpec",
    "Unbounded",
    "UnboundedContinuous",
    "UnboundedDiscrete",
    "Bounded",
    "BoundedContinuous",
    "BoundedDiscrete",
    "OneHot",
    "Categorical",
    "MultiOneHot",
    "MultiCategorical",
    "Binary",
    "Composite",
    "Stacked",
    "StackedComposite",
    "Box",
    "ContinuousBox",
    "CategoricalBox",
    "DiscreteBox",
    "BinaryBox",
    "BoxList",
    # legacy TorchRL names
    "OneHotDiscreteTensorSpec",
    "DiscreteTensorSpec",
    "BoundedTensorSpec",
    "UnboundedContinuousTensorSpec",
    "UnboundedDiscreteTensorSpec",
    "CompositeSpec",
    "MultiOneHotDiscreteTensorSpec",
    "MultiDiscreteTensorSpec",
    "BinaryDiscreteTensorSpec",
    # issue 18
    "Choice",
    "NonTensor",
    "invertible_dict",
]
