"""Recipe modules split by concept: the old import paths give the same objects; imports go down.

``loop.py`` re-exports what moved to ``plan.py``; ``dqn.py`` what moved to
``dqn_agent.py`` and ``nstep.py``; ``ppo.py`` what moved to ``ppo_agent.py`` (tests,
benchmarks, docs and user code import them from the old modules).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MOVED = [
    ("tdrl.recipes.plan", "tdrl.recipes.loop", ["RunPlan", "default_run_dir", "plan_run"]),
    ("tdrl.recipes.dqn_agent", "tdrl.recipes.dqn",
     ["DQNConfig", "ENV_DEFAULTS", "build_qnet", "make_act", "make_policy", "prepare"]),
    ("tdrl.recipes.nstep", "tdrl.recipes.dqn", ["NStepReturns"]),
    ("tdrl.recipes.ppo_agent", "tdrl.recipes.ppo",
     ["PPOConfig", "ENV_DEFAULTS", "AgentParts", "build_agent", "make_act", "make_policy"]),
]


@pytest.mark.parametrize(
    "home, old, name", [(home, old, name) for home, old, names in MOVED for name in names]
)
def test_the_old_path_gives_the_same_object_and_lists_it(home, old, name):
    home_mod, old_mod = importlib.import_module(home), importlib.import_module(old)
    assert getattr(old_mod, name) is getattr(home_mod, name)
    assert name in home_mod.__all__
    assert name in old_mod.__all__


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_the_recipe_is_built_from_the_moved_objects(algo):
    recipe = importlib.import_module(f"tdrl.recipes.{algo}").RECIPE
    agent = importlib.import_module(f"tdrl.recipes.{algo}_agent")
    assert recipe.config is getattr(agent, f"{algo.upper()}Config")
    assert recipe.env_defaults is agent.ENV_DEFAULTS
    assert (recipe.make_act, recipe.make_policy, recipe.prepare) == (
        agent.make_act, agent.make_policy, agent.prepare)


def test_the_split_out_modules_do_not_import_the_modules_above_them():
    code = (
        "import sys, tdrl.recipes.plan, tdrl.recipes.dqn_agent, tdrl.recipes.nstep, "
        "tdrl.recipes.ppo_agent; print(sorted(m for m in ('tdrl.recipes.loop', "
        "'tdrl.recipes.dqn', 'tdrl.recipes.ppo') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
