"""RunningObsNorm (running observation statistics) and PPO's --normalize-obs."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from tdrl.cli import main
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import RunningObsNorm, SafeModule, SafeSequential
from tdrl.modules.tensordict_module.obs_norm import _merge
from tdrl.recipes import get_recipe
from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.runfiles import load_checkpoint

QUIET = ["--no-progress"]


def reference(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """SB3's VecNormalize._normalize_obs (clip 10, eps 1e-8)."""
    return np.clip((x - mean) / np.sqrt(var + 1e-8), -10.0, 10.0)


# ----------------------------------------------------------------------------- statistics
def test_statistics_match_numpy_over_random_batches():
    rng = np.random.default_rng(0)
    norm = RunningObsNorm(5)
    seen = []
    for size in (1, 7, 64, 3, 200):
        batch = rng.normal(loc=3.0, scale=[0.1, 1.0, 10.0, 100.0, 1e3], size=(size, 5))
        norm.update(torch.as_tensor(batch, dtype=torch.float32))
        seen.append(batch.astype(np.float32).astype(np.float64))
        allx = np.concatenate(seen)
        np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-10)
        assert norm.count.item() == len(allx)
    assert norm.mean.dtype == norm.var.dtype == norm.count.dtype == torch.float64
    x = rng.normal(loc=3.0, scale=50.0, size=(16, 5)).astype(np.float32)
    out = norm(torch.as_tensor(x))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(
        out.numpy(), reference(x, norm.mean.numpy(), norm.var.numpy()), rtol=1e-5, atol=1e-5
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3),
    st.lists(st.integers(1, 12), min_size=1, max_size=6),
    st.floats(-1e3, 1e3),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**16),
)
def test_merging_batches_equals_one_batch(dim, sizes, loc, scale, seed):
    """Chan's parallel update: batch by batch == all at once == numpy, whatever the split."""
    x = np.random.default_rng(seed).normal(loc, scale, size=(sum(sizes), dim))
    split, whole = RunningObsNorm(dim), RunningObsNorm(dim)
    start = 0
    for n in sizes:
        split.update(torch.as_tensor(x[start : start + n]))
        start += n
    whole.update(torch.as_tensor(x))
    tol = dict(rtol=1e-9, atol=1e-9 * scale * scale)
    np.testing.assert_allclose(split.mean.numpy(), x.mean(0), rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(split.var.numpy(), x.var(0), **tol)
    np.testing.assert_allclose(split.var.numpy(), whole.var.numpy(), **tol)
    assert split.count.item() == whole.count.item() == len(x)
    # the tensor path (devices other than the CPU) runs the same merge on tensors
    mean, var = torch.zeros(dim, dtype=torch.float64), torch.ones(dim, dtype=torch.float64)
    count, start = 0.0, 0
    for n in sizes:
        count = _merge(mean, var, count, torch.as_tensor(x[start : start + n]))
        start += n
    np.testing.assert_allclose(var.numpy(), split.var.numpy(), **tol)
    np.testing.assert_allclose(mean.numpy(), split.mean.numpy(), rtol=1e-9, atol=1e-9 * scale)


def test_identity_before_the_first_update_and_clipping():
    norm = RunningObsNorm(2)
    out = norm(torch.tensor([[0.5, -3.0], [50.0, -50.0]]))
    assert torch.allclose(out, torch.tensor([[0.5, -3.0], [10.0, -10.0]]))
    tight = RunningObsNorm(2, clip=1.0)
    assert tight(torch.tensor([[5.0, -5.0]])).tolist() == [[1.0, -1.0]]


# ----------------------------------------------------------------------------- module behaviour
def test_tensordict_keys_and_frozen_statistics():
    norm = RunningObsNorm(3)
    assert norm.in_keys == ["observation"] and norm.out_keys == ["observation_norm"]
    norm.update(torch.arange(12.0).reshape(4, 3))
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    raw = torch.full((2, 3), 100.0)
    td = norm(TensorDict(observation=raw.clone(), batch_size=[2]))
    assert torch.equal(td["observation"], raw)  # the raw observation stays
    assert td["observation_norm"].shape == (2, 3)
    net = SafeSequential(norm, SafeModule(torch.nn.Linear(3, 1), ["observation_norm"], ["y"]))
    assert net.in_keys == ["observation"]
    net(TensorDict(observation=raw, batch_size=[2]))
    norm.eval()
    norm(raw)
    with pytest.raises(RuntimeError, match="eval mode: its statistics are frozen"):
        norm.update(raw)
    for k, v in norm.state_dict().items():  # calls never change the statistics
        assert torch.equal(v, before[k]), k
    nested = RunningObsNorm(3, ("agent", "obs"))
    assert nested.out_keys == [("agent", "obs_norm")]


def test_non_finite_and_misshaped_observations_raise():
    norm = RunningObsNorm(3)
    norm.update(torch.ones(2, 3))
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    bad = torch.tensor([[1.0, float("nan"), 0.0], [float("inf"), 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"update, key 'observation'\): 2 NaN or infinite"):
        norm.update(bad)
    for k, v in norm.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match=r"input, key 'observation'\): 2 NaN or infinite"):
        norm(TensorDict(observation=bad, batch_size=[2]))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\], got \[2, 4\]"):
        norm.update(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\], got \[5\]"):
        norm(torch.zeros(5))
    with pytest.raises(ValueError, match="one key"):
        RunningObsNorm(3, ["a", "b"])
    with pytest.raises(ValueError, match="clip > 0"):
        RunningObsNorm(3, clip=0)


def test_state_dict_round_trip_and_dtype_casts():
    norm = RunningObsNorm((2, 3))
    norm.update(torch.randn(10, 2, 3, dtype=torch.float64) * 7 + 2)
    state = norm.state_dict()
    assert sorted(state) == ["count", "mean", "var"]
    copy = RunningObsNorm((2, 3))
    copy.load_state_dict(state)
    x = torch.randn(4, 2, 3) * 10
    assert torch.equal(copy(x), norm(x))
    copy.float()  # a dtype cast keeps the statistics float64
    assert copy.mean.dtype == copy.var.dtype == copy.count.dtype == torch.float64
    assert torch.equal(copy.mean, norm.mean)
    assert copy(x.double()).dtype == torch.float64


def test_export_traces_through_the_normalizer(tmp_path):
    from tdrl.export import export_policy, load_policy
    from tdrl.recipes.ppo import PPOConfig, build_agent, make_policy

    cfg = PPOConfig(normalize_obs=True, state_dependent_std=False)
    env = EnvInfo(gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Box(-1.0, 1.0, (2,)), None)
    parts = build_agent(cfg, env.observation_space, env.action_space)
    parts.obs_norm.update(torch.randn(100, 4) * torch.tensor([1.0, 10.0, 100.0, 0.1]) + 5)
    policy = make_policy(cfg, env, parts.agent.state_dict(), torch.device("cpu"))
    obs = (torch.randn(7, 4) * 30).float()
    path = export_policy(policy, obs[:1]).save(tmp_path / "p.pt2", "pt2")
    loaded = load_policy(path)
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        eager = policy(TensorDict(observation=obs, batch_size=[7]))["action"]
    np.testing.assert_allclose(loaded(obs.numpy()), eager.numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- PPO
def test_ppo_updates_statistics_from_collected_observations_only():
    from tdrl.recipes import ppo

    cfg = ppo.PPOConfig(num_envs=2, n_steps=16, batch_size=32, epochs=1, total_steps=64,
                        normalize_obs=True)
    algo = ppo.PPO(cfg, EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None))
    try:
        assert algo.obs_norm.count.item() == 2  # the reset observations
        algo.iterate()
        assert algo.obs_norm.count.item() == 2 + 2 * 16
        count = algo.obs_norm.count.item()
        algo.act(np.zeros((3, 4), dtype=np.float32))  # evaluation leaves the statistics alone
        assert algo.obs_norm.count.item() == count
        assert len([k for k in algo.state_dict()["model"] if k.endswith("count")]) == 1
    finally:
        algo.close()
    plain = ppo.build_agent(ppo.PPOConfig(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    assert plain.obs_norm is None and plain.obs_key == "observation"
    assert not any(k.endswith(("mean", "var", "count")) for k in plain.agent.state_dict())


def test_env_defaults_turn_normalization_on_for_mujoco_only():
    recipe = get_recipe("ppo")
    box = gym.spaces.Box(-1, 1, (6,))
    assert recipe.defaults_for("HalfCheetah-v5", box)["normalize_obs"] is True
    assert recipe.defaults_for("Hopper-v4", box)["normalize_obs"] is True
    assert "normalize_obs" not in recipe.defaults_for("Pendulum-v1", box)
    assert "normalize_obs" not in recipe.defaults_for("CartPole-v1", gym.spaces.Discrete(2))
    assert recipe.config().normalize_obs is False


def test_mujoco_tiny_budget_train_then_eval(tmp_path, capsys):
    pytest.importorskip("mujoco", reason="the mujoco extra: pip install -e '.[mujoco]'")
    out = tmp_path / "hc"
    argv = ["train", "ppo", "--env", "HalfCheetah-v5", "--total-steps", "512", "--n-steps",
            "256", "--batch-size", "64", "--epochs", "1", "--eval-episodes", "2", "--out",
            str(out), *QUIET]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["normalize_obs"] is True and config["n_steps"] == 256
    model = load_checkpoint(out / "checkpoint.pt")["algo_state"]["model"]
    (count,) = [v for k, v in model.items() if k.endswith("count")]
    (mean,) = [v for k, v in model.items() if k.endswith("mean")]
    assert count.item() == 1 + 512 and mean.shape == (17,) and mean.abs().sum() > 0
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())
    assert evaluated["returns"] == summary["final_eval_returns"]
