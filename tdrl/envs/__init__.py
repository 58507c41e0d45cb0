"""Environment-side utilities (exploration switches)."""
from tdrl.envs.utils import ExplorationType, exploration_type, set_exploration_type

__all__ = ["ExplorationType", "exploration_type", "set_exploration_type"]
