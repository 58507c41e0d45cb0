"""RandomPolicy, set_exploration_modules_spec_from_env, VmapModule and TorchRL's removed names."""
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential

from tdrl.data import Bounded, Categorical, Composite, OneHot
from tdrl.modules import (
    AdditiveGaussianModule,
    AdditiveGaussianWrapper,
    EGreedyModule,
    EGreedyWrapper,
    NormalParamWrapper,
    OrnsteinUhlenbeckProcessWrapper,
    RandomPolicy,
    VmapModule,
    set_exploration_modules_spec_from_env,
)
from tdrl.modules.distributions.continuous import NormalParamWrapper as NPWContinuous
from tdrl.modules.tensordict_module.common import VmapModule as VmapAtCommon
from tdrl.modules.tensordict_module.exploration import RandomPolicy as RandomAtExploration


def test_torchrl_paths():
    assert VmapAtCommon is VmapModule and RandomAtExploration is RandomPolicy
    assert NPWContinuous is NormalParamWrapper


# ---- RandomPolicy -------------------------------------------------------------------------
def test_random_policy_samples_inside_the_spec_with_the_batch_size():
    spec = Bounded(-2.0, 3.0, shape=(4,))
    policy = RandomPolicy(spec, action_key=("agent", "act"))
    td = policy(TensorDict(batch_size=[5, 2]))
    action = td["agent", "act"]
    assert action.shape == (5, 2, 4) and spec.is_in(action)
    # a batched spec (its shape already starts with the batch size) is sampled once
    batched = RandomPolicy(Categorical(3, shape=(5,)))
    assert batched(TensorDict(batch_size=[5]))["action"].shape == (5,)


def test_random_policy_clones_its_spec_and_writes_composites():
    spec = Composite(action=OneHot(3), extra=Categorical(2))
    policy = RandomPolicy(spec)
    spec["action"] = OneHot(5)
    td = policy(TensorDict(batch_size=[7]))
    assert td["action"].shape == (7, 3) and td["extra"].shape == (7,)


def test_random_policy_errors():
    with pytest.raises(TypeError, match="action_spec must be a TensorSpec or None, got dict"):
        RandomPolicy({"action": OneHot(2)})
    with pytest.raises(TypeError, match="expects a TensorDict, got Tensor"):
        RandomPolicy(OneHot(2))(torch.zeros(2))
    with pytest.raises(RuntimeError, match="action_spec is not set"):
        RandomPolicy()(TensorDict())


def test_set_action_spec_from_env_is_idempotent():
    env = SimpleNamespace(full_action_spec=Composite(action=OneHot(2)))
    policy = RandomPolicy()
    policy.set_action_spec_from_env(env)
    first = policy.action_spec
    policy.set_action_spec_from_env(SimpleNamespace(full_action_spec=Composite(action=OneHot(9))))
    assert policy.action_spec is first
    with pytest.raises(TypeError, match="exposes no action spec"):
        RandomPolicy().set_action_spec_from_env(object())


# ---- set_exploration_modules_spec_from_env -------------------------------------------------
def test_fills_only_modules_without_a_spec():
    unset = AdditiveGaussianModule(spec=None)
    already = EGreedyModule(spec=OneHot(4), action_key="other")
    policy = TensorDictSequential(unset, already)
    env = SimpleNamespace(
        action_spec_unbatched=Bounded(-1.0, 1.0, shape=(2,)),
        action_spec=Bounded(-1.0, 1.0, shape=(8, 2)),
    )
    set_exploration_modules_spec_from_env(policy, env)
    assert unset.spec["action"].shape == (2,)  # the unbatched spec is preferred
    assert already.spec["other"] == OneHot(4)  # left alone


def test_takes_the_action_entry_of_a_full_action_spec():
    module = AdditiveGaussianModule(spec=None, action_key=("agent", "action"))
    env = SimpleNamespace(full_action_spec=Composite({("agent", "action"): Bounded(0.0, 1.0, (3,))}))
    set_exploration_modules_spec_from_env(TensorDictSequential(module), env)
    assert module.spec["agent", "action"].shape == (3,)
    td = module(TensorDict({("agent", "action"): torch.full((3,), 0.5)}))
    assert ((td["agent", "action"] >= 0) & (td["agent", "action"] <= 1)).all()


def test_accepts_a_spec_and_fills_a_random_policy():
    module = EGreedyModule(spec=None, eps_init=1.0)
    set_exploration_modules_spec_from_env(module, Categorical(3))
    assert module.spec["action"] == Categorical(3)
    policy = RandomPolicy()
    set_exploration_modules_spec_from_env(policy, SimpleNamespace(action_spec=OneHot(2)))
    assert policy.action_spec == OneHot(2)
    with pytest.raises(TypeError, match="policy must be an nn.Module, got str"):
        set_exploration_modules_spec_from_env("policy", OneHot(2))
    with pytest.raises(TypeError, match=r"exposes no action spec \(looked for the attributes"):
        set_exploration_modules_spec_from_env(module, object())


# ---- removed names ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, replacement",
    [
        (EGreedyWrapper, "EGreedyModule"),
        (AdditiveGaussianWrapper, "AdditiveGaussianModule"),
        (OrnsteinUhlenbeckProcessWrapper, "OrnsteinUhlenbeckProcessModule"),
        (NormalParamWrapper, "NormalParamExtractor"),
    ],
)
def test_removed_names_point_to_the_replacement(cls, replacement):
    with pytest.raises(RuntimeError, match=rf"{cls.__name__} is no longer available.*{replacement}"):
        cls(torch.nn.Linear(2, 2), spec=None)


# ---- VmapModule -----------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_vmap_equals_the_loop(batch, data):
    dim = data.draw(st.integers(-len(batch), len(batch) - 1))
    net = torch.nn.Linear(3, 2)
    # the mean couples the entries of one slice: vmap must match a per-slice loop
    module = TensorDictModule(lambda x: net(x) + x.mean(), in_keys=["x"], out_keys=["y"])
    x = torch.randn(*batch, 3)
    a = VmapModule(module, dim)(TensorDict(x=x, batch_size=batch))
    b = VmapModule(module, dim, mock=True)(TensorDict(x=x, batch_size=batch))
    torch.testing.assert_close(a["y"], b["y"])


def test_vmap_default_dim_and_gradients():
    net = torch.nn.Linear(3, 1)
    module = VmapModule(TensorDictModule(net, in_keys=["x"], out_keys=["y"]))
    assert module.vmap_dim is None and module.in_keys == ["x"] and module.out_keys == ["y"]
    td = module(TensorDict(x=torch.randn(2, 5, 3), batch_size=[2, 5]))
    assert td["y"].shape == (2, 5, 1)
    td["y"].sum().backward()
    assert net.weight.grad is not None and torch.isfinite(net.weight.grad).all()
    assert module.mock_() is module and module.mock


def test_vmap_errors():
    module = VmapModule(TensorDictModule(lambda x: x, in_keys=["x"], out_keys=["y"]), 2)
    with pytest.raises(ValueError, match=r"vmap_dim=2 is not a batch dimension of the input"):
        module(TensorDict(x=torch.zeros(2, 3), batch_size=[2]))
    with pytest.raises(ValueError, match="no batch dimension to map over"):
        VmapModule(module.module)(TensorDict(x=torch.zeros(2)))
    with pytest.raises(TypeError, match="wraps a TensorDict module"):
        VmapModule(torch.nn.Linear(2, 2))
