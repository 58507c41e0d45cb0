"""TensorDict modules: the dispatch core, safe modules, actors and operators."""
from tdrl.modules.tensordict_module.actor_critic import (
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
)
from tdrl.modules.tensordict_module.actors import Actor, ProbabilisticActor, ValueOperator
from tdrl.modules.tensordict_module.common import SafeModule
from tdrl.modules.tensordict_module.core import TDRLModuleBase
from tdrl.modules.tensordict_module.exploration import (
    AdditiveGaussianModule,
    EGreedyModule,
    OrnsteinUhlenbeckProcessModule,
)
from tdrl.modules.tensordict_module.obs_norm import RunningObsNorm
from tdrl.modules.tensordict_module.probabilistic import (
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
)
from tdrl.modules.tensordict_module.qvalue import (
    DistributionalQValueActor,
    DistributionalQValueHook,
    DistributionalQValueModule,
    QValueActor,
    QValueHook,
    QValueModule,
)
from tdrl.modules.tensordict_module.sequence import SafeSequential
from tdrl.modules.tensordict_module.tanh import TanhModule

# isort: split
# actors / exploration extras (issue 18)
from tdrl.modules.tensordict_module.multistep import MultiStepActorWrapper
from tdrl.modules.tensordict_module.random_policy import (
    RandomPolicy,
    set_exploration_modules_spec_from_env,
)
from tdrl.modules.tensordict_module.removed import (
    AdditiveGaussianWrapper,
    EGreedyWrapper,
    OrnsteinUhlenbeckProcessWrapper,
)
from tdrl.modules.tensordict_module.vmap import VmapModule

__all__ = [
    "ActorCriticOperator",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "Actor",
    "ProbabilisticActor",
    "RunningObsNorm",
    "SafeModule",
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
    "SafeSequential",
    "TanhModule",
    "TDRLModuleBase",
    "ValueOperator",
    "QValueModule",
    "QValueActor",
    "DistributionalQValueModule",
    "DistributionalQValueActor",
    "QValueHook",
    "DistributionalQValueHook",
    "EGreedyModule",
    "AdditiveGaussianModule",
    "OrnsteinUhlenbeckProcessModule",
    # actors / exploration extras (issue 18)
    "MultiStepActorWrapper",
    "RandomPolicy",
    "set_exploration_modules_spec_from_env",
    "VmapModule",
    "EGreedyWrapper",
    "AdditiveGaussianWrapper",
    "OrnsteinUhlenbeckProcessWrapper",
]
