"""Environment-side utilities (exploration switches, ``step_mdp``)."""
from tdrl.envs.utils import ExplorationType, exploration_type, set_exploration_type, step_mdp

__all__ = ["ExplorationType", "exploration_type", "set_exploration_type", "step_mdp"]
