"""tdrl's modules: distributions, networks, actors, value operators and operators."""
from tdrl.modules.distributions import (
    Delta,
    IndependentNormal,
    MaskedCategorical,
    MaskedOneHotCategorical,
    NormalParamExtractor,
    OneHotCategorical,
    ReparamGradientStrategy,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
)
from tdrl.modules.models import MLP
from tdrl.modules.tensordict_module import (
    Actor,
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    AdditiveGaussianModule,
    DistributionalQValueActor,
    DistributionalQValueHook,
    DistributionalQValueModule,
    EGreedyModule,
    OrnsteinUhlenbeckProcessModule,
    ProbabilisticActor,
    QValueActor,
    QValueHook,
    QValueModule,
    RunningObsNorm,
    SafeModule,
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
    SafeSequential,
    TanhModule,
    TDRLModuleBase,
    ValueOperator,
)

__all__ = [
    "MLP",
    "Actor",
    "ActorCriticOperator",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "Delta",
    "IndependentNormal",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "NormalParamExtractor",
    "OneHotCategorical",
    "ProbabilisticActor",
    "ReparamGradientStrategy",
    "RunningObsNorm",
    "SafeModule",
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
    "SafeSequential",
    "TDRLModuleBase",
    "TanhDelta",
    "TanhModule",
    "TanhNormal",
    "TruncatedNormal",
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
    # networks and layers (nets)
    "BatchRenorm1d",
    "ConsistentDropout",
    "ConsistentDropoutModule",
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

# --- networks and layers (conformance part 3: nets): tdrl.modules.models' names, loaded on
# first access so that ``import tdrl`` stays light ---
from tdrl.modules import models as _models  # noqa: E402


def __getattr__(name: str):  # noqa: ANN202 - module attribute hook
    if name in _models._LAZY:
        return getattr(_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- end networks and layers ---
