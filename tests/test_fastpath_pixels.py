"""The tensor fast paths on image observations compute what the module paths compute.

The recipes' image trunk (``ScaleFrames`` + ``ConvNet`` + dense layers) runs as plain
``F.conv2d`` / ``F.linear`` calls (:func:`tdrl.recipes.fastpath.plain_forward`) in DQN's
acting and gradient steps and in PPO's rollout and update; a run on the fast path and a twin
on the module path, from the same weights and torch RNG state, must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tdrl.modules import MLP, ConvNet
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.ppo_agent import AgentParts
from tdrl.recipes.ppo_calls import OperatorCalls, TensorCalls
from tdrl.recipes.trunks import ScaleFrames, build_trunk, image_features

gym = pytest.importorskip("gymnasium")


def _same(a, b):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@settings(max_examples=15, deadline=None)
@given(
    shape=st.sampled_from([(4, 10, 10), (10, 10, 3), (2, 36, 36)]),
    hidden=st.lists(st.integers(1, 8), min_size=1, max_size=2),
    batch=st.sampled_from([(), (1,), (3,), (2, 3)]),
    seed=st.integers(0, 2**16),
)
def test_image_trunk_plain_forward_equals_the_module(shape, hidden, batch, seed):
    torch.manual_seed(seed)
    high = 1 if shape[0] == 4 else 255
    space = gym.spaces.Box(0, high, shape, np.uint8)
    body = build_trunk(space, hidden=tuple(hidden), activation="relu")
    fn = plain_forward(body.net)
    assert fn is not None
    frames = torch.randint(0, high + 1, (*batch, *shape), dtype=torch.uint8)
    out_fast, out_mod = fn(frames), body.net(frames)
    assert out_fast.shape == (*batch, hidden[-1]) and out_fast.dtype == torch.float32
    assert torch.equal(out_fast, out_mod)
    params = list(body.net.parameters())
    _same(torch.autograd.grad(out_fast.square().sum(), params),
          torch.autograd.grad(out_mod.square().sum(), params))


def test_image_plain_forward_follows_in_place_weight_updates():
    features, width = image_features(gym.spaces.Box(0, 1, (1, 3, 3), np.uint8), "minatar")
    head = nn.Linear(width, 1)
    fn = plain_forward(nn.Sequential(features, head))
    with torch.no_grad():
        for p in features.parameters():
            p.fill_(1.0)
        head.weight.fill_(1.0)
        head.bias.fill_(0.5)
    x = torch.ones(2, 1, 3, 3, dtype=torch.uint8)
    assert fn(x).tolist() == [[16 * 10.0 + 0.5]] * 2  # 16 channels of 9 + 1 (bias), summed
    with torch.no_grad():
        features[1][0].bias.fill_(-100.0)  # the ReLU zeroes every feature: the head's bias
    assert fn(x).tolist() == [[0.5]] * 2


@pytest.mark.parametrize("net", [
    nn.Sequential(ConvNet(in_features=1, num_cells=[2], kernel_sizes=[1], norm_class=nn.Identity),
                  nn.Linear(2, 1)),
    nn.Sequential(ConvNet(in_features=1, num_cells=[2], kernel_sizes=[1], paddings=[1]),
                  nn.Linear(18, 1)),  # zero padding: supported
    nn.Sequential(ScaleFrames(255.0), nn.Conv2d(1, 1, 1, padding=1, padding_mode="reflect"),
                  nn.Flatten(), nn.Linear(9, 1)),
    nn.Sequential(ScaleFrames(255.0)),  # no dense layer after
    nn.Sequential(nn.Linear(2, 2), ScaleFrames(255.0)),  # the image steps must come first
    ConvNet(in_features=1, num_cells=[2], kernel_sizes=[1]),
], ids=["conv-norm", "conv-padded", "reflect-padding", "no-dense", "scale-after-linear",
        "convnet-alone"])
def test_plain_forward_on_image_layers(net, request):
    fn = plain_forward(net)
    if request.node.callspec.id == "conv-padded":
        x = torch.rand(2, 1, 1, 1)
        assert torch.equal(fn(x), net(x))
    else:
        assert fn is None


def _build(algo: str, env_id: str, **overrides):
    from tdrl.recipes import get_recipe
    from tdrl.recipes.config import resolve_config
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.rng import seed_everything

    env = probe_env(env_id)
    recipe = get_recipe(algo)
    explicit = {"env": env_id, "seed": 0, "threads": 1, **overrides}
    cfg = resolve_config(recipe.config, explicit, recipe.defaults_for(env_id, env.action_space))
    cfg.validate()
    seed_everything(0)
    return recipe.algorithm(cfg, env)


def _storage(buffer):
    inner = getattr(buffer, "transitions", buffer)  # FrameReplay keeps frame ids + frames
    out = dict(inner.storage.items())
    if inner is not buffer:
        out["frames"] = buffer.frames
    return out


def _dqn_pair(env_id: str, **kw):
    fast, slow = _build("dqn", env_id, **kw), _build("dqn", env_id, **kw)
    assert fast.fast_act and fast.q_fn is not fast.q_values
    slow.q_fn, slow.target_q_fn, slow.fast_act = slow.q_values, slow.target_q_values, False
    slow.qnet.load_state_dict(fast.qnet.state_dict())
    slow.target.load_state_dict(fast.target.state_dict())
    return fast, slow


@pytest.mark.parametrize("env_id,extra", [("MinAtar/Breakout-v1", "minatar"),
                                          ("ALE/Breakout-v5", "ale_py")])
def test_dqn_image_fast_paths_equal_the_module_paths(env_id, extra):
    pytest.importorskip(extra)
    atari = env_id.startswith("ALE/")
    kw = {"total_steps": 2_000, "learning_starts": 0, "batch_size": 4 if atari else 16,
          "buffer_size": 300}
    fast, slow = _dqn_pair(env_id, **kw)
    try:
        with torch.no_grad():  # epsilon mid-way: both the greedy and the random branch run
            fast.egreedy.eps.fill_(0.5)
            slow.egreedy.eps.fill_(0.5)
        for _ in range(12 if atari else 6):
            rng = torch.get_rng_state()
            fast.env_step()
            torch.set_rng_state(rng)
            slow.env_step()
        assert len(fast.buffer) == len(slow.buffer) > 0
        stored_fast, stored_slow = _storage(fast.buffer), _storage(slow.buffer)
        for key, value in stored_slow.items():
            assert torch.equal(stored_fast[key], value), key
        for _ in range(2):
            rng = torch.get_rng_state()
            out_fast = fast.train_step()
            torch.set_rng_state(rng)
            out_slow = slow.train_step()
            _same(out_fast, out_slow)
        _same(list(fast.qnet.parameters()), list(slow.qnet.parameters()))
        _same(fast.grad_norms, slow.grad_norms)
    finally:
        fast.close()
        slow.close()


def test_dqn_dueling_image_net_stays_on_the_module_path():
    pytest.importorskip("minatar")
    algo = _build("dqn", "MinAtar/Breakout-v1", total_steps=1_000, buffer_size=100, dueling=True)
    try:
        assert not algo.fast_act and algo.q_fn is algo.q_values
    finally:
        algo.close()


@pytest.mark.parametrize("overrides", [
    {"batch_size": 8, "epochs": 2},
    {"batch_size": 16, "epochs": 1, "ent_coef": 0.0},
], ids=["minibatches-entropy", "whole-rollout"])
def test_ppo_image_fast_collect_and_update_equal_the_operator_path(overrides):
    pytest.importorskip("minatar")
    kw = {"total_steps": 10_000, "num_envs": 2, "n_steps": 8, "hidden": (16,), **overrides}
    fast, slow = _build("ppo", "MinAtar/Breakout-v1", **kw), _build("ppo", "MinAtar/Breakout-v1",
                                                                     **kw)
    try:
        assert isinstance(fast.calls, TensorCalls)
        parts = AgentParts(slow.agent, slow.common, slow.policy, slow.value, slow.trunk,
                           slow.obs_norm)
        slow.calls = OperatorCalls(parts, slow.memory)
        slow.agent.load_state_dict(fast.agent.state_dict())
        for _ in range(2):
            rng = torch.get_rng_state()
            batch_fast = fast.collect()
            torch.set_rng_state(rng)
            batch_slow = slow.collect()
            assert sorted(batch_fast.keys()) == sorted(batch_slow.keys())
            assert batch_fast["observation"].dtype == torch.uint8  # frames stay uint8
            for key in batch_slow.keys():
                _same([batch_fast[key]], [batch_slow[key]])
            rng = torch.get_rng_state()
            row_fast = fast.update(batch_fast)
            torch.set_rng_state(rng)
            row_slow = slow.update(batch_slow)
            assert row_fast == row_slow
            _same(list(fast.agent.parameters()), list(slow.agent.parameters()))
    finally:
        fast.close()
        slow.close()


def test_mlp_after_image_trunk_declines_reshaped_output():
    net, width = image_features(gym.spaces.Box(0, 1, (1, 3, 3), np.uint8), "minatar")
    head = MLP(in_features=width, out_features=(2, 3), num_cells=[4])
    assert plain_forward(nn.Sequential(net, head)) is None
