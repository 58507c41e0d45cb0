"""TorchRL's import paths work with the prefix changed (torchrl -> tdrl)."""
from __future__ import annotations

import importlib

import pytest

PATHS = {
    "tdrl.modules": [
        "MLP", "Actor", "ProbabilisticActor", "ValueOperator", "SafeModule", "SafeSequential",
        "SafeProbabilisticModule", "SafeProbabilisticTensorDictSequential", "QValueModule",
        "QValueActor", "DistributionalQValueModule", "DistributionalQValueActor", "QValueHook",
        "EGreedyModule", "AdditiveGaussianModule", "OrnsteinUhlenbeckProcessModule",
        "ActorValueOperator", "ActorCriticOperator", "ActorCriticWrapper", "TanhNormal",
        "NormalParamExtractor", "TanhDelta", "Delta", "IndependentNormal", "TruncatedNormal",
        "OneHotCategorical", "MaskedCategorical", "MaskedOneHotCategorical",
        "LSTMModule", "GRUModule", "LSTM", "GRU", "LSTMCell", "GRUCell", "set_recurrent_mode",
        "recurrent_mode",
    ],
    "tdrl.modules.tensordict_module.rnn": [
        "LSTMModule", "GRUModule", "LSTM", "GRU", "LSTMCell", "GRUCell", "set_recurrent_mode",
        "recurrent_mode",
    ],
    "tdrl.modules.tensordict_module": [
        "Actor", "ProbabilisticActor", "ValueOperator", "SafeModule", "SafeSequential",
        "SafeProbabilisticModule", "SafeProbabilisticTensorDictSequential", "QValueModule",
        "QValueActor", "DistributionalQValueActor", "EGreedyModule", "ActorValueOperator",
        "ActorCriticOperator", "ActorCriticWrapper",
    ],
    "tdrl.modules.tensordict_module.actors": [
        "Actor", "ProbabilisticActor", "ValueOperator", "QValueModule", "QValueActor",
        "DistributionalQValueModule", "DistributionalQValueActor", "QValueHook",
        "ActorValueOperator", "ActorCriticOperator", "ActorCriticWrapper",
    ],
    "tdrl.modules.tensordict_module.common": ["SafeModule"],
    "tdrl.modules.tensordict_module.sequence": ["SafeSequential"],
    "tdrl.modules.tensordict_module.probabilistic": [
        "SafeProbabilisticModule", "SafeProbabilisticTensorDictSequential",
    ],
    "tdrl.modules.tensordict_module.exploration": [
        "EGreedyModule", "AdditiveGaussianModule", "OrnsteinUhlenbeckProcessModule",
    ],
    "tdrl.modules.distributions": [
        "TanhNormal", "NormalParamExtractor", "TanhDelta", "Delta", "IndependentNormal",
        "TruncatedNormal", "OneHotCategorical", "MaskedCategorical", "MaskedOneHotCategorical",
    ],
    "tdrl.modules.distributions.continuous": [
        "TanhNormal", "NormalParamExtractor", "TanhDelta", "Delta", "IndependentNormal",
        "TruncatedNormal",
    ],
    "tdrl.modules.distributions.discrete": [
        "OneHotCategorical", "MaskedCategorical", "MaskedOneHotCategorical",
    ],
    "tdrl.modules.models": ["MLP"],
    "tdrl.data": [
        "Unbounded", "Bounded", "OneHot", "Categorical", "MultiOneHot", "MultiCategorical",
        "Binary", "Composite", "TensorSpec",
    ],
    "tdrl.data.tensor_specs": [
        "Unbounded", "Bounded", "OneHot", "Categorical", "MultiOneHot", "MultiCategorical",
        "Binary", "Composite", "TensorSpec",
    ],
    "tdrl.envs.utils": [
        "ExplorationType", "set_exploration_type", "exploration_type", "step_mdp",
    ],
}


PATHS_CANONICAL = {
    **{n: "tdrl.modules" for n in PATHS["tdrl.modules"]},
    **{n: "tdrl.data" for n in PATHS["tdrl.data"]},
}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in PATHS.items() for n in names])
def test_name_importable_at_torchrl_path(module, name):
    obj = getattr(importlib.import_module(module), name)
    # one object per concept, whatever the path
    assert obj is getattr(importlib.import_module(PATHS_CANONICAL.get(name, module)), name)



OPTIONAL = ("gymnasium", "ray", "onnx", "onnxruntime", "matplotlib", "tensorboard",
            "torch.utils.tensorboard", "wandb", "mlflow", "rich")
PARTS = ("tdrl", "tdrl.data", "tdrl.envs", "tdrl.modules", "tdrl.api", "tdrl.recipes")


@pytest.mark.parametrize(
    ("statement", "loaded"),
    [
        ("import tdrl", ["tdrl"]),  # only tdrl/__init__.py: the subpackages load on first use
        ("import tdrl.modules", ["tdrl", "tdrl.data", "tdrl.envs", "tdrl.modules"]),
        ("import tdrl; tdrl.modules.QValueActor", ["tdrl", "tdrl.data", "tdrl.envs",
                                                   "tdrl.modules"]),
        ("import tdrl.api", ["tdrl", "tdrl.api", "tdrl.envs"]),
    ],
)
def test_import_loads_no_optional_dependency(statement, loaded):
    import subprocess
    import sys
    from pathlib import Path

    code = (f"import sys, tensordict; before = set(sys.modules); {statement}; "
            "new = set(sys.modules) - before; "
            f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules)); "
            "print(sorted(m for m in new if m.split('.')[0] != 'tdrl')); "
            f"print(sorted(m for m in {PARTS!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1]).stdout.splitlines()
    # no optional extra, nothing outside tdrl beyond tensordict, and only the parts used
    assert out == ["[]", "[]", str(loaded)]
