"""TorchRL's legacy spec names (plain aliases, no deprecation warnings)."""
from tdrl.data.specs.binary import Binary
from tdrl.data.specs.composite import Composite
from tdrl.data.specs.continuous import Bounded, UnboundedContinuous, UnboundedDiscrete
from tdrl.data.specs.discrete import Categorical, OneHot
from tdrl.data.specs.multi import MultiCategorical, MultiOneHot

OneHotDiscreteTensorSpec = OneHot
DiscreteTensorSpec = Categorical
BoundedTensorSpec = Bounded
UnboundedContinuousTensorSpec = UnboundedContinuous
UnboundedDiscreteTensorSpec = UnboundedDiscrete
CompositeSpec = Composite
MultiOneHotDiscreteTensorSpec = MultiOneHot
MultiDiscreteTensorSpec = MultiCategorical
BinaryDiscreteTensorSpec = Binary
