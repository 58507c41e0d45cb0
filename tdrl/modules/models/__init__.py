"""Plain torch networks and layers used to build actors and critics (TorchRL's ``modules.models``).

Each concept has its own file; ``models.py``, ``exploration.py``, ``utils.py`` and
``batchrenorm.py`` are TorchRL's import paths.
"""
# --- networks and layers (conformance part 3: nets) ---
from tdrl.modules.models.batchrenorm import BatchRenorm1d
from tdrl.modules.models.exploration import (
    ConsistentDropout,
    ConsistentDropoutModule,
    LazygSDEModule,
    NoisyLazyLinear,
    NoisyLinear,
    gSDEModule,
    reset_noise,
)
from tdrl.modules.models.models import (
    MLP,
    Conv2dNet,
    Conv3dNet,
    ConvNet,
    DdpgCnnActor,
    DdpgCnnQNet,
    DdpgMlpActor,
    DdpgMlpQNet,
    DistributionalDQNnet,
    DuelingCnnDQNet,
    DuelingMlpDQNet,
)
from tdrl.modules.models.utils import SquashDims, Squeeze2dLayer, SqueezeLayer

# --- end networks and layers ---

__all__ = [
    "MLP",
    # networks and layers (nets)
    "BatchRenorm1d",
    "ConsistentDropout",
    "ConsistentDropoutModule",
    "Conv2dNet",
    "Conv3dNet",
    "ConvNet",
    "DdpgCnnActor",
    "DdpgCnnQNet",
    "DdpgMlpActor",
    "DdpgMlpQNet",
    "DistributionalDQNnet",
    "DuelingCnnDQNet",
    "DuelingMlpDQNet",
    "LazygSDEModule",
    "NoisyLazyLinear",
    "NoisyLinear",
    "SquashDims",
    "Squeeze2dLayer",
    "SqueezeLayer",
    "gSDEModule",
    "reset_noise",
]
