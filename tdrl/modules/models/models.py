"""TorchRL's ``torchrl.modules.models.models`` path: the networks, each defined in its own file."""
from tdrl.modules.models.conv import Conv2dNet, Conv3dNet, ConvNet
from tdrl.modules.models.ddpg_nets import (
    DdpgCnnActor,
    DdpgCnnQNet,
    DdpgMlpActor,
    DdpgMlpQNet,
    ddpg_init_last_layer,
)
from tdrl.modules.models.dqn_nets import DistributionalDQNnet, DuelingCnnDQNet, DuelingMlpDQNet
from tdrl.modules.models.mlp import MLP
from tdrl.modules.models.utils import (
    LazyMapping,
    SquashDims,
    Squeeze2dLayer,
    SqueezeLayer,
    create_on_device,
)

__all__ = [
    "MLP",
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
    "LazyMapping",
    "SquashDims",
    "Squeeze2dLayer",
    "SqueezeLayer",
    "create_on_device",
    "ddpg_init_last_layer",
]
