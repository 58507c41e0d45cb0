"""TorchRL's ``torchrl.modules.models.exploration`` path: the exploration layers, one file each."""
from tdrl.modules.models.consistent_dropout import ConsistentDropout, ConsistentDropoutModule
from tdrl.modules.models.gsde import LazygSDEModule, gSDEModule
from tdrl.modules.models.noisy import NoisyLazyLinear, NoisyLinear, reset_noise

__all__ = [
    "ConsistentDropout",
    "ConsistentDropoutModule",
    "LazygSDEModule",
    "NoisyLazyLinear",
    "NoisyLinear",
    "gSDEModule",
    "reset_noise",
]
