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
from fastpath_helpers import build, check_dqn_pair, check_ppo_pair, dqn_pair, ppo_pair, same
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tdrl.modules import MLP, ConvNet
from tdrl.recipes.fastpath import plain_forward
from tdrl.recipes.trunks import ScaleFrames, build_trunk, image_features

gym = pytest.importorskip("gymnasium")


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
    same(torch.autograd.grad(out_fast.square().sum(), params),
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


@pytest.mark.parametrize("env_id,extra", [("MinAtar/Breakout-v1", "minatar"),
                                          ("ALE/Breakout-v5", "ale_py")])
def test_dqn_image_fast_paths_equal_the_module_paths(env_id, extra):
    pytest.importorskip(extra)
    atari = env_id.startswith("ALE/")
    kw = {"total_steps": 2_000, "learning_starts": 0, "batch_size": 4 if atari else 16,
          "buffer_size": 300}
    check_dqn_pair(*dqn_pair(env_id, **kw), env_steps=12 if atari else 6, train_steps=2)


def test_dqn_dueling_image_net_stays_on_the_module_path():
    pytest.importorskip("minatar")
    algo = build("dqn", "MinAtar/Breakout-v1", total_steps=1_000, buffer_size=100, dueling=True)
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
    fast, slow = ppo_pair("MinAtar/Breakout-v1", **kw)
    assert fast.obs.dtype == torch.uint8  # frames stay uint8 through the rollout
    check_ppo_pair(fast, slow)


def test_mlp_after_image_trunk_declines_reshaped_output():
    net, width = image_features(gym.spaces.Box(0, 1, (1, 3, 3), np.uint8), "minatar")
    head = MLP(in_features=width, out_features=(2, 3), num_cells=[4])
    assert plain_forward(nn.Sequential(net, head)) is None
