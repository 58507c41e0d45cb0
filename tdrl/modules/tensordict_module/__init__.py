"""TensorDict modules: the dispatch core, safe modules, actors and operators."""
from tdrl.modules.tensordict_module.actor_critic import (
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
)
from tdrl.modules.tensordict_module.actors import Actor, ProbabilisticActor, ValueOperator
from tdrl.modules.tensordict_module.common import SafeModule
from tdrl.modules.tensordict_module.core import TDRLModuleBase
from tdrl.modules.tensordict_module.probabilistic import (
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
)
from tdrl.modules.tensordict_module.sequence import SafeSequential

__all__ = [
    "ActorCriticOperator",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "Actor",
    "ProbabilisticActor",
    "SafeModule",
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
    "SafeSequential",
    "TDRLModuleBase",
    "ValueOperator",
]
