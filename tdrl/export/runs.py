"""Glue between training runs and exported files: ``tdrl export`` and ``tdrl eval --policy``.

Imports the recipes (and gymnasium) on call only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tdrl.export.policy import FORMATS, export_policy
from tdrl.export.runtime import LoadedPolicy, load_policy

__all__ = ["export_run", "policy_act"]


def _load_run(run_dir: Path) -> tuple[Any, Any, dict]:
    """``(recipe, cfg, checkpoint state)`` of a run directory (raises ``TrainError``)."""
    from tdrl.recipes import get_recipe, recipe_names
    from tdrl.recipes.config import TrainError, config_from_dict
    from tdrl.recipes.runfiles import load_checkpoint

    if not run_dir.is_dir():
        raise TrainError(f"{run_dir} is not a directory (expected a run written by `tdrl train`)")
    state = load_checkpoint(run_dir / "checkpoint.pt")
    algo = state.get("algo")
    if algo not in recipe_names():
        raise TrainError(f"{run_dir}/checkpoint.pt is for unknown algorithm {algo!r}")
    recipe = get_recipe(algo)
    return recipe, config_from_dict(recipe.config, state["config"]), state


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Exports the deterministic policy of a run to ``out`` (default ``RUN_DIR/policy.FMT``).

    Returns the path written (its JSON sidecar is ``<path>.json``).
    """
    import torch

    from tdrl.recipes.config import TrainError
    from tdrl.recipes.envs import probe_env

    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise TrainError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    recipe, cfg, state = _load_run(run_dir)
    if recipe.make_policy is None:
        raise TrainError(f"the {recipe.name} recipe does not offer a policy module to export")
    env = probe_env(cfg.env)
    policy = recipe.make_policy(cfg, env, state["algo_state"]["model"], torch.device("cpu"))
    example = torch.as_tensor(np.stack([env.observation_space.sample()]), dtype=torch.float32)
    path = Path(out) if out is not None else run_dir / f"policy{FORMATS[fmt]}"
    exported = export_policy(policy, example)
    exported.metadata.update({"algo": recipe.name, "env": cfg.env, "step": state["global_step"]})
    return exported.save(path, fmt)


def policy_act(path: str | Path, action_space: Any, threads: int | None = None):
    """``obs batch (numpy) -> env actions`` running an exported file (onnxruntime for .onnx).

    One-hot actions (per the sidecar's action spec) become indices; Box
    actions take the env's action shape.
    """
    from tdrl.recipes.config import TrainError

    try:
        policy: LoadedPolicy = load_policy(path, threads)
    except (FileNotFoundError, ValueError) as err:
        raise TrainError(f"--policy: {err}") from None
    spec = (policy.metadata.get("action_space") or {}).get("spec")
    shape = getattr(action_space, "shape", None)
    one_hot = spec == "OneHot"

    def act(obs: np.ndarray) -> np.ndarray:
        action = policy(obs)
        if one_hot:
            return action.argmax(-1)
        if shape:  # Box
            return action.reshape(action.shape[0], *shape)
        return action

    return act
