"""Glue between training runs and exported files: ``tdrl export`` and ``tdrl eval --policy``.

Imports the recipes (and gymnasium) on call only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tdrl.export.policy import export_policy
from tdrl.export.runtime import LoadedPolicy, load_policy

__all__ = ["export_run", "policy_act"]


def export_run(
    recipe: Any, cfg: Any, state: dict, fmt: str, path: Path, dtype: str = "auto"
) -> Path:
    """Exports the deterministic policy of a loaded run (recipe, config, checkpoint) to ``path``.

    ``dtype="auto"`` computes in the dtype of the run's final evaluation
    (float64 for continuous actions, see :mod:`tdrl.recipes.eval_act`), so the
    file replays it exactly; ``"float32"`` / ``"float64"`` force one. Inputs and
    outputs stay float32. Returns the path written (its JSON sidecar is
    ``<path>.json``); raises ``TrainError`` when the recipe offers no policy module.
    """
    import torch

    from tdrl.recipes.config import TrainError
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.eval_act import eval_dtype

    if recipe.make_policy is None:
        raise TrainError(f"the {recipe.name} recipe does not offer a policy module to export")
    env = probe_env(cfg.env)
    policy = recipe.make_policy(cfg, env, state["algo_state"]["model"], torch.device("cpu"))
    example = torch.as_tensor(np.stack([env.observation_space.sample()]), dtype=torch.float32)
    compute = eval_dtype(env.action_space) if dtype == "auto" else getattr(torch, dtype)
    exported = export_policy(policy, example, dtype=compute)
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
