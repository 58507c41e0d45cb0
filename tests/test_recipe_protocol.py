"""The recipe protocol: the registry the CLI reads, the Algorithm contract, the algorithms' hot paths."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from tdrl.cli import build_parser, main
from tdrl.recipes import Algorithm, Recipe, get_recipe, recipe_names, register, unregister
from tdrl.recipes.envs import EnvInfo

CARTPOLE = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), 475.0)


def test_builtin_recipes_are_records():
    assert recipe_names()[:2] == ("ppo", "dqn")
    for name in ("ppo", "dqn"):
        recipe = get_recipe(name)
        assert isinstance(recipe, Recipe) and recipe.name == name
        assert dataclasses.is_dataclass(recipe.config)
    assert get_recipe("ppo").action_spaces == ("discrete", "box")
    assert get_recipe("dqn").action_spaces == ("discrete",)
    with pytest.raises(ValueError, match="unknown algorithm 'sac2'; choose one of: ppo, dqn"):
        get_recipe("sac2")


def test_env_defaults_apply_by_action_kind_then_env_id():
    ppo = get_recipe("ppo")
    box = ppo.defaults_for("Pendulum-v1", gym.spaces.Box(-2, 2, (1,)))
    assert box["num_envs"] == 4 and box["n_steps"] == 1024
    assert ppo.defaults_for("CartPole-v1", gym.spaces.Discrete(2)) == {"total_steps": 100_000}
    tuned = ppo.tuned_envs()
    assert tuned[:2] == ["CartPole-v1", "Pendulum-v1"]
    assert {"CartPoleNoVel-v1", "PendulumNoVel-v1", "Ant-v5", "HalfCheetah-v5"} <= set(tuned)
    assert "Walker2d-v4" in ppo.tuned_envs()


def test_registered_recipe_plugs_into_the_cli(tmp_path, capsys):
    """A new recipe needs a Recipe record only: the CLI offers it with its config's flags."""
    built = []

    def factory(cfg, env, clock):
        algo = get_recipe("ppo").algorithm(cfg, env, clock)
        built.append(algo)
        return algo

    toy = dataclasses.replace(get_recipe("ppo"), name="toy", summary="a test recipe", algorithm=factory)
    register(toy)
    try:
        args = build_parser().parse_args(["train", "toy", "--epochs", "1"])
        assert args.algo == "toy" and args.epochs == 1
        out = tmp_path / "toy"
        argv = ["train", "toy", "--total-steps", "256", "--epochs", "1", "--eval-episodes", "1",
                "--no-progress", "--out", str(out)]
        assert main(argv) == 0
        assert len(built) == 1
        assert json.loads((out / "summary.json").read_text())["algo"] == "toy"
        capsys.readouterr()
        assert main(["eval", str(out), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["algo"] == "toy"
        with pytest.raises(ValueError, match="already registered"):
            register(toy)
    finally:
        unregister("toy")
    assert "toy" not in recipe_names()


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_algorithm_is_usable_right_after_construction(name):
    """The clock is a constructor argument (default: a fresh one), so iterate() works at once."""
    recipe = get_recipe(name)
    cfg = recipe.config(total_steps=256, num_envs=2, checkpoint_every=256)
    if name == "ppo":
        cfg = dataclasses.replace(cfg, n_steps=64, batch_size=64, epochs=1)
    else:
        cfg = dataclasses.replace(cfg, learning_starts=64, train_freq=64, gradient_steps=2,
                                  log_every=128)
    algo = recipe.algorithm(cfg, CARTPOLE, None)
    try:
        assert isinstance(algo, Algorithm)
        row = algo.iterate()
        assert set(row) == set(algo.loss_columns)
        assert algo.global_step > 0
        actions = algo.act(np.zeros((3, 4), dtype=np.float32))
        assert actions.shape == (3,) and set(actions.tolist()) <= {0, 1}
        assert "model" in algo.state_dict()
    finally:
        algo.close()


def test_ppo_act_does_not_rebuild_its_policy(monkeypatch):
    from tdrl.recipes import ppo

    cfg = ppo.PPOConfig(num_envs=2, n_steps=8, batch_size=16, epochs=1)
    algo = ppo.PPO(cfg, CARTPOLE)

    def rebuilt(*args, **kwargs):
        raise AssertionError("act rebuilt its closure")

    monkeypatch.setattr(ppo, "PolicyAct", rebuilt)
    first = algo.act(np.zeros((2, 4), dtype=np.float32))
    algo.iterate()  # the cached policy sees the updated weights
    with torch.no_grad():
        for p in algo.policy.parameters():
            p.add_(1.0)
    assert algo.act(np.ones((2, 4), dtype=np.float32)).shape == first.shape
    algo.close()


def test_dqn_learner_reads_action_values_without_running_the_actor():
    from tdrl.recipes import dqn

    cfg = dqn.DQNConfig(total_steps=64, num_envs=2, learning_starts=32, train_freq=32,
                        gradient_steps=1, log_every=64, buffer_size=256)
    algo = dqn.DQN(cfg, CARTPOLE)
    calls = {"actor": 0, "target": 0}
    algo.qnet.register_forward_pre_hook(lambda *a: calls.__setitem__("actor", calls["actor"] + 1))
    algo.target.register_forward_pre_hook(lambda *a: calls.__setitem__("target", calls["target"] + 1))
    # the recipe's own MLP acts as a plain tensor function (tdrl.recipes.fastpath): no module call
    assert algo.fast_act
    algo.env_step()
    assert calls == {"actor": 0, "target": 0}
    algo.fast_act = False  # the module path: acting runs the QValueActor (and the explorer)
    for _ in range(4):
        algo.env_step()
    before = calls["actor"]
    assert before == 4
    loss, q = algo.train_step()
    assert calls == {"actor": before, "target": 0}
    algo.q_fn, algo.target_q_fn = algo.q_values, algo.target_q_values  # the learner's module path
    loss, q = algo.train_step()
    assert calls == {"actor": before, "target": 0}
    assert torch.isfinite(loss) and torch.isfinite(q)
    algo.close()


def test_action_space_mismatch_names_the_recipes_that_fit(tmp_path, capsys):
    box_only = dataclasses.replace(get_recipe("ppo"), name="boxy", action_spaces=("box",))
    register(box_only)
    try:
        out = tmp_path / "run"
        assert main(["train", "boxy", "--env", "CartPole-v1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "boxy needs a continuous (1-D Box) action space, but CartPole-v1 has Discrete(2)" in err
        assert "(discrete); use `tdrl train ppo --env CartPole-v1` instead" in err
        assert not out.exists()
    finally:
        unregister("boxy")
