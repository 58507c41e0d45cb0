"""``benchmarks/pixels.py``'s hand-written side does tdrl's math on tdrl's network and envs.

The floor (``benchmarks/pixels_by_hand.py``) is only a floor if it trains the same
network: its parameter count equals tdrl's for every row, its Q-values / trunk
features equal tdrl's network's on the same weights (the Nature CNN's first dense
layer reads NHWC features, its columns permuted), and one PPO iteration and a few
DQN gradient steps run on the real envs with finite losses. No timing here.
"""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")
BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import pixels  # noqa: E402
from pixels_by_hand import Heads  # noqa: E402

ENVS = {"minatar": ("MinAtar/Breakout-v1", "minatar"), "atari": ("ALE/Breakout-v5", "ale_py")}
ROWS = [(algo, family) for family in ENVS for algo in ("ppo", "dqn")]


def _env(family: str) -> str:
    env_id, module = ENVS[family]
    pytest.importorskip(module)
    return env_id


def _hand_layout(params: list[torch.Tensor], n_conv: int, nhwc: bool,
                 conv_out: tuple[int, int, int]) -> list[torch.Tensor]:
    """tdrl's trunk (+ output) weights in the hand network's layout: the first dense weight's
    columns from (C, H, W) to (H, W, C) order when the convolutions run NHWC."""
    out = [p.detach().clone() for p in params]
    if nhwc:
        w = out[2 * n_conv]
        out[2 * n_conv] = w.reshape(w.shape[0], *conv_out).permute(0, 2, 3, 1).reshape(
            w.shape[0], -1).contiguous()
    return out


@pytest.mark.parametrize("algo,family", ROWS, ids=[f"{a}-{f}" for a, f in ROWS])
def test_hand_network_is_tdrls(algo, family):
    env_id = _env(family)
    hand, _ = pixels.build_hand(algo, env_id, learning_starts=0, num_envs=2)  # (fewer games)
    try:
        assert sum(p.numel() for p in hand.params) == pixels.tdrl_param_count(algo, env_id)
        from tdrl.recipes.envs import probe_env

        _, cfg = pixels._tdrl_config(algo, env_id, {})
        env = probe_env(env_id)
        frames = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(3)]))
        net = hand.net
        n_conv = net.n_conv
        c = net.params[2 * n_conv - 2].shape[0]
        hw = net.params[2 * n_conv].shape[1] // c
        side = math.isqrt(hw)
        if algo == "dqn":
            from tdrl.recipes.dqn import build_qnet

            qnet = build_qnet(cfg, env.observation_space, env.action_space)[0].module
            params = _hand_layout(list(qnet.parameters()), n_conv, net.nhwc, (c, side, side))
            with torch.no_grad():
                torch.testing.assert_close(hand.q(frames, params), qnet(frames),
                                           rtol=1e-5, atol=1e-5)
        else:
            from tdrl.recipes.ppo import build_agent

            trunk = build_agent(cfg, env.observation_space, env.action_space).trunk.module
            params = _hand_layout(list(trunk.parameters()), n_conv, net.nhwc, (c, side, side))
            with torch.no_grad():
                torch.testing.assert_close(net(frames, params), trunk(frames),
                                           rtol=1e-5, atol=1e-5)
    finally:
        hand.envs.close()


def test_heads_are_two_separate_heads():
    """Both heads' first layers as one matmul = each head on its own."""
    torch.manual_seed(0)
    heads = Heads(12, 3, (5, 4), "tanh")
    p = heads.params
    x = torch.randn(6, 12)
    pol = torch.tanh(torch.nn.functional.linear(x, p[0][:5], p[1][:5]))
    val = torch.tanh(torch.nn.functional.linear(x, p[0][5:], p[1][5:]))
    pol = torch.tanh(torch.nn.functional.linear(pol, p[2], p[3]))
    val = torch.tanh(torch.nn.functional.linear(val, p[6], p[7]))
    logits, value = heads(x)
    torch.testing.assert_close(logits, torch.nn.functional.linear(pol, p[4], p[5]))
    torch.testing.assert_close(value, torch.nn.functional.linear(val, p[8], p[9]).squeeze(-1))
    linear = Heads(12, 3, (), "relu")
    logits, value = linear(x)
    assert logits.shape == (6, 3) and value.shape == (6,)


@pytest.mark.parametrize("family", list(ENVS))
def test_hand_ppo_iteration_runs(family):
    env_id = _env(family)
    hand, run = pixels.build_hand("ppo", env_id, 0, num_envs=2, n_steps=8, batch_size=8)
    try:
        assert run(1) == 16
        assert hand.obs_buf.dtype == torch.uint8
        assert sorted(hand.last) == ["entropy", "policy_loss", "value_loss"]
        assert all(math.isfinite(v) for v in hand.last.values())
    finally:
        hand.envs.close()


@pytest.mark.parametrize("family", list(ENVS))
def test_hand_dqn_steps_run(family):
    env_id = _env(family)
    hand, run = pixels.build_hand("dqn", env_id, 16, batch_size=8, buffer_size=64)
    try:
        before = [p.detach().clone() for p in hand.params]
        assert run(48) == 48  # 1 env (Atari) or 8 (MinAtar): whole vector steps
        assert hand.size == 48 and hand.ring["obs"].dtype == np.uint8
        assert torch.isfinite(hand.last_loss)
        assert any(not torch.equal(a, b) for a, b in zip(before, hand.params))
        assert hand.cfg["eps"] == pixels.FINAL_EPS
    finally:
        hand.envs.close()


def test_sides_flag_rejects_unknown_and_repeated():
    with pytest.raises(SystemExit):
        pixels.main(["--sides", "tdrl,torchrl"])
    with pytest.raises(SystemExit):
        pixels.main(["--sides", "hand,hand"])


def test_last_line_format():
    rows = [{"algo": "ppo", "env": "MinAtar/Breakout-v1", "tdrl/sb3": 1.26, "hand/sb3": 1.4,
             "tdrl/hand": 0.9},
            {"algo": "dqn", "env": "ALE/Breakout-v5", "tdrl/sb3": 1.12, "hand/sb3": 1.2,
             "tdrl/hand": 0.93}]
    assert pixels.last_line(rows) == "pixels: ppo-minatar 1.26x, dqn-atari 1.12x"
    without_sb3 = [{k: v for k, v in r.items() if "sb3" not in k} for r in rows]
    assert pixels.last_line(without_sb3) == "pixels (tdrl/hand): ppo-minatar 0.90x, dqn-atari 0.93x"
