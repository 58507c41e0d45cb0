"""Plain torch networks and layers used to build actors and critics (TorchRL's ``modules.models``).

Each concept has its own file; ``models.py``, ``exploration.py``, ``utils.py`` and
``batchrenorm.py`` are TorchRL's import paths. ``MLP`` is imported with the package;
the other networks and layers load on first use (``from tdrl.modules.models import
ConvNet`` works as usual), which keeps ``import tdrl`` light.
"""
from __future__ import annotations

import importlib
from typing import Any

from tdrl.modules.models.mlp import MLP

# --- networks and layers (conformance part 3: nets), loaded on first access ---
_LAZY: dict[str, str] = {
    "BatchRenorm1d": "batchrenorm",
    "ConsistentDropout": "consistent_dropout",
    "ConsistentDropoutModule": "consistent_dropout",
    "Conv2dNet": "conv",
    "Conv3dNet": "conv",
    "ConvNet": "conv",
    "DdpgCnnActor": "ddpg_nets",
    "DdpgCnnQNet": "ddpg_nets",
    "DdpgMlpActor": "ddpg_nets",
    "DdpgMlpQNet": "ddpg_nets",
    "DistributionalDQNnet": "dqn_nets",
    "DuelingCnnDQNet": "dqn_nets",
    "DuelingMlpDQNet": "dqn_nets",
    "LazygSDEModule": "gsde",
    "NoisyLazyLinear": "noisy",
    "NoisyLinear": "noisy",
    "SquashDims": "utils",
    "Squeeze2dLayer": "utils",
    "SqueezeLayer": "utils",
    "gSDEModule": "gsde",
    "reset_noise": "noisy",
    # multi-agent networks (marl)
    "CrossCriticGroupSpec": "cross_group_critic",
    "CrossGroupCritic": "cross_group_critic",
    "Mixer": "mixers",
    "QMixer": "mixers",
    "VDNMixer": "mixers",
    "MultiAgentConvNet": "multiagent",
    "MultiAgentMLP": "multiagent",
    "MultiAgentNetBase": "multiagent_base",
}


def __getattr__(name: str) -> Any:
    file = _LAZY.get(name)
    if file is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{file}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# --- end networks and layers ---

__all__ = ["MLP", *_LAZY]
