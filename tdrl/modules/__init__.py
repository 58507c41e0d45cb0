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
    GRU,
    LSTM,
    Actor,
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    AdditiveGaussianModule,
    DistributionalQValueActor,
    DistributionalQValueHook,
    DistributionalQValueModule,
    EGreedyModule,
    GRUCell,
    GRUModule,
    LSTMCell,
    LSTMModule,
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
    recurrent_mode,
    set_recurrent_mode,
)

# isort: split
# --- actors / exploration extras and ordinal distributions (issue 18) ---
from tdrl.modules.distributions import NormalParamWrapper, OneHotOrdinal, Ordinal
from tdrl.modules.tensordict_module import (
    AdditiveGaussianWrapper,
    EGreedyWrapper,
    MultiStepActorWrapper,
    OrnsteinUhlenbeckProcessWrapper,
    RandomPolicy,
    VmapModule,
    set_exploration_modules_spec_from_env,
)

# --- end of issue-18 actors / exploration block ---

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
    # actors / exploration extras and ordinal distributions (issue 18)
    "AdditiveGaussianWrapper",
    "EGreedyWrapper",
    "MultiStepActorWrapper",
    "NormalParamWrapper",
    "OneHotOrdinal",
    "Ordinal",
    "OrnsteinUhlenbeckProcessWrapper",
    "RandomPolicy",
    "VmapModule",
    "set_exploration_modules_spec_from_env",
    "LSTMModule",
    "GRUModule",
    "LSTM",
    "GRU",
    "LSTMCell",
    "GRUCell",
    "set_recurrent_mode",
    "recurrent_mode",
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

# --- multi-agent networks, value transforms and value norms (issue 18, marl) ---
from tdrl.modules import functional  # noqa: E402
from tdrl.modules.functional import (  # noqa: E402
    signed_hyperbolic,
    signed_parabolic,
    symexp,
    symlog,
)
from tdrl.modules.value_norm import (  # noqa: E402
    PercentileValueNorm,
    PopArtValueNorm,
    RunningValueNorm,
    ValueNorm,
)
from tdrl.modules.value_transforms import (  # noqa: E402
    ComposeValueTransform,
    IdentityValueTransform,
    SignedHyperbolicValueTransform,
    SymLogValueTransform,
    ValueTransform,
)

__all__ += [
    "CrossCriticGroupSpec",
    "CrossGroupCritic",
    "MultiAgentConvNet",
    "MultiAgentMLP",
    "MultiAgentNetBase",
    "QMixer",
    "VDNMixer",
    "functional",
    "signed_hyperbolic",
    "signed_parabolic",
    "symexp",
    "symlog",
    "ValueNorm",
    "PopArtValueNorm",
    "RunningValueNorm",
    "PercentileValueNorm",
    "ValueTransform",
    "IdentityValueTransform",
    "SymLogValueTransform",
    "SignedHyperbolicValueTransform",
    "ComposeValueTransform",
]

# --- networks and layers (conformance part 3: nets): tdrl.modules.models' names, loaded on
# first access so that ``import tdrl`` stays light ---
from tdrl.modules import models as _models  # noqa: E402


def __getattr__(name: str):  # noqa: ANN202 - module attribute hook
    if name in _models._LAZY:
        return getattr(_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- end networks and layers ---
