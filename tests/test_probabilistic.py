"""SafeProbabilisticModule / ProbabilisticActor: generator=, num_samples=, composite
distributions, joint sample + log-prob and the attributes TorchRL's losses read."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import NonTensorData, TensorDict
from tensordict.nn import CompositeDistribution, TensorDictModule
from torch import distributions as D
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    NormalParamExtractor,
    ProbabilisticActor,
    SafeProbabilisticModule,
    TanhNormal,
)


def _normal_actor(**kwargs) -> ProbabilisticActor:
    net = TensorDictModule(lambda x: (x, torch.ones_like(x)), in_keys=["obs"], out_keys=["loc", "scale"])
    return ProbabilisticActor(
        net, in_keys=["loc", "scale"], distribution_class=D.Normal,
        default_interaction_type="random", **kwargs,
    )


def _act(actor, td=None):
    return actor(td if td is not None else TensorDict(obs=torch.zeros(4)))["action"].clone()


# --- generator= --------------------------------------------------------------------------------
def test_generator_object_and_int_seed_reproduce_and_leave_global_rng_alone():
    a = _normal_actor(generator=torch.Generator().manual_seed(0))
    b = _normal_actor(generator=0)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = _act(a)
    assert torch.equal(first, _act(b))
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(first, _act(a))  # the generator advanced in place
    torch.manual_seed(0)  # same stream as a generator seeded 0
    assert torch.equal(first, torch.randn(4))


def test_generator_key_seed_is_written_back_and_replays():
    actor = _normal_actor(generator="rng")

    def run(seed):
        td = TensorDict(obs=torch.zeros(4), rng=NonTensorData(seed))
        out = [_act(actor, td) for _ in range(3)]
        return out, td.get("rng").data

    a, last_seed = run(42)
    b, _ = run(42)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])
    assert isinstance(last_seed, int) and last_seed != 42
    # a tensor seed is written back as a tensor; a missing entry uses the global generator
    td = TensorDict(obs=torch.zeros(4), rng=torch.tensor(7))
    actor(td)
    assert isinstance(td["rng"], torch.Tensor) and td["rng"].item() != 7
    torch.manual_seed(5)
    x = _act(actor)
    torch.manual_seed(5)
    assert torch.equal(x, torch.randn(4))


def test_generator_in_the_input_is_used_in_place_and_bad_values_raise():
    actor = _normal_actor(generator=("nested", "rng"))
    gen = torch.Generator().manual_seed(0)
    td = TensorDict(obs=torch.zeros(4), nested=TensorDict(rng=NonTensorData(gen)))
    x = _act(actor, td)
    assert torch.equal(x, torch.randn(4, generator=torch.Generator().manual_seed(0)))
    td = TensorDict(obs=torch.zeros(4), nested=TensorDict(rng=NonTensorData("seed")))
    with pytest.raises(TypeError, match=r"generator entry \('nested', 'rng'\) holds a str"):
        actor(td)
    with pytest.raises(TypeError, match="generator must be a torch.Generator, an int seed"):
        _normal_actor(generator=1.5)


# --- num_samples= --------------------------------------------------------------------------------
def test_num_samples_expands_the_output_and_draws_independently():
    mod = SafeProbabilisticModule(
        ["loc", "scale"], ["action"], distribution_class=TanhNormal,
        default_interaction_type="random", return_log_prob=True, num_samples=4,
    )
    td = TensorDict(loc=torch.zeros(3, 2), scale=torch.ones(3, 2), batch_size=[3])
    out = mod(td)
    assert out is not td and "action" not in td.keys()  # a new, expanded TensorDict
    assert out.batch_size == (4, 3) and out["action"].shape == (4, 3, 2)
    assert out["sample_log_prob"].shape == (4, 3)
    assert not torch.equal(out["action"][0], out["action"][1])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        det = mod(td)["action"]
    assert det.shape == (4, 3, 2) and torch.equal(det[0], det[3])  # one value, repeated


def test_joint_sample_and_log_prob_scores_the_draw_not_its_inverse():
    # a saturated TanhNormal draw: inverting tanh(x) = +-1 would give inf; the joint pass does not
    mod = SafeProbabilisticModule(
        ["loc", "scale"], ["action"], distribution_class=TanhNormal,
        default_interaction_type="random", return_log_prob=True, generator=0,
    )
    td = mod(TensorDict(loc=torch.tensor([[20.0, -20.0]]), scale=torch.full((1, 2), 0.1), batch_size=[1]))
    assert torch.isfinite(td["sample_log_prob"]).all()
    torch.manual_seed(0)
    expected_action, expected_lp = TanhNormal(torch.tensor([[20.0, -20.0]]), torch.full((1, 2), 0.1)).rsample_and_log_prob()
    torch.testing.assert_close(td["action"], expected_action)
    torch.testing.assert_close(td["sample_log_prob"], expected_lp)


# --- arguments that are not silently ignored --------------------------------------------------------
def test_cache_dist_raises_and_n_empirical_estimate_is_used():
    with pytest.raises(NotImplementedError, match=r"cache_dist=True\) is not supported"):
        SafeProbabilisticModule(["loc"], cache_dist=True)
    with pytest.raises(ValueError, match="n_empirical_estimate must be >= 1"):
        SafeProbabilisticModule(["loc"], n_empirical_estimate=0)

    class NoMean(D.Normal):
        @property
        def mean(self):
            raise NotImplementedError

    mod = SafeProbabilisticModule(
        ["loc", "scale"], ["action"], distribution_class=NoMean,
        default_interaction_type="mean", n_empirical_estimate=20000,
    )
    torch.manual_seed(0)
    out = mod(TensorDict(loc=torch.full((2,), 3.0), scale=torch.ones(2)))["action"]
    torch.testing.assert_close(out, torch.full((2,), 3.0), atol=0.05, rtol=0)


# --- CompositeDistribution ---------------------------------------------------------------------
@pytest.mark.parametrize("name_map", [False, True])
def test_composite_distribution_out_keys_and_log_probs(name_map):
    class Split(nn.Module):
        def forward(self, x):
            return x[..., :3], x[..., 3:6].exp(), x[..., 6:]

    net = TensorDictModule(
        Split(), in_keys=["x"],
        out_keys=[("params", "normal", "loc"), ("params", "normal", "scale"), ("params", "categ", "logits")],
    )
    kwargs = {"distribution_map": {"normal": D.Normal, "categ": D.Categorical}}
    keys = ["normal", "categ"]
    if name_map:
        keys = [("action", "normal"), ("action", "categ")]
        kwargs["name_map"] = dict(zip(["normal", "categ"], keys))
    actor = ProbabilisticActor(
        net, in_keys=["params"], distribution_class=CompositeDistribution,
        distribution_kwargs=kwargs, return_log_prob=True, default_interaction_type="random",
    )
    lp_keys = [(*k[:-1], f"{k[-1]}_log_prob") if isinstance(k, tuple) else f"{k}_log_prob" for k in keys]
    assert actor.dist_sample_keys == keys and actor.log_prob_keys == lp_keys
    assert actor.out_keys == net.out_keys + keys + lp_keys
    td = actor(TensorDict(x=torch.rand(5, 10), batch_size=[5]))
    assert td[keys[0]].shape == (5, 3) and td[keys[1]].shape == (5,)
    dist = actor.get_dist(td)
    torch.testing.assert_close(td[lp_keys[1]], dist.log_prob(td.select(*keys)).get(lp_keys[1]))
    with pytest.raises(ValueError, match="CompositeDistribution needs distribution_kwargs"):
        SafeProbabilisticModule(["params"], distribution_class=CompositeDistribution)


# --- what TorchRL's losses read -------------------------------------------------------------------
def test_loss_facing_attributes():
    net = TensorDictModule(
        nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), in_keys=["obs"], out_keys=["loc", "scale"]
    )
    actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    assert actor.log_prob_key == "sample_log_prob" and actor.log_prob_keys == ["sample_log_prob"]
    assert actor.dist_sample_keys == ["action"] and actor.dist_params_keys == ["loc", "scale"]
    assert actor.return_log_prob is False and "sample_log_prob" not in actor.out_keys
    actor.return_log_prob = True  # REDQ / CQL switch it on; the key plan follows
    assert actor.out_keys[-1] == "sample_log_prob"
    td = actor(TensorDict(obs=torch.randn(2, 3), batch_size=[2]))
    assert td["sample_log_prob"].shape == (2,)
    params = TensorDict(loc=torch.zeros(2, 2), scale=torch.ones(2, 2), batch_size=[2])
    dist = actor.build_dist_from_params(params)  # no network run
    assert isinstance(dist, TanhNormal) and "action" not in params.keys()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 3))
def test_property_same_seed_same_samples(seed, n):
    a, b = _normal_actor(generator=seed, num_samples=n), _normal_actor(generator=seed, num_samples=n)
    for _ in range(2):
        assert torch.equal(_act(a), _act(b))
