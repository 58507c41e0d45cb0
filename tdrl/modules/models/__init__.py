"""Plain torch networks and layers used to build actors and critics (TorchRL's ``modules.models``)."""
# --- multi-agent networks (issue 18, marl) ---
from tdrl.modules.models.cross_group_critic import CrossCriticGroupSpec, CrossGroupCritic
from tdrl.modules.models.mixers import Mixer, QMixer, VDNMixer
from tdrl.modules.models.models import MLP
from tdrl.modules.models.multiagent import MultiAgentConvNet, MultiAgentMLP
from tdrl.modules.models.multiagent_base import MultiAgentNetBase

__all__ = ["MLP"]
__all__ += [
    "CrossCriticGroupSpec",
    "CrossGroupCritic",
    "Mixer",
    "MultiAgentConvNet",
    "MultiAgentMLP",
    "MultiAgentNetBase",
    "QMixer",
    "VDNMixer",
]
