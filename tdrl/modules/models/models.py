"""TorchRL's ``torchrl.modules.models.models`` path: the networks, each defined in its own file."""
from tdrl.modules.models.mlp import MLP

__all__ = ["MLP"]
