"""Glue between training runs and exported files: ``tdrl export`` and ``tdrl eval --policy``.

Imports the recipes (and gymnasium) on call only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tdrl.export.policy import export_policy
from tdrl.export.runtime import LoadedPolicy, load_policy

__all__ = ["export_run", "policy_act", "run_policy"]


def run_policy(recipe: Any, cfg: Any, state: dict) -> Any:
    """The run's policy module on the CPU with the checkpoint's weights.

    Raises ``TrainError`` when the recipe offers no policy module; whatever
    loading the weights raises (a missing key, a wrong shape) passes through.

    Examples:
        >>> from tdrl.recipes import get_recipe
        >>> from tdrl.recipes.envs import probe_env
        >>> from tdrl.recipes.ppo import PPOConfig, build_agent
        >>> cfg = PPOConfig()
        >>> weights = build_agent(cfg, *probe_env(cfg.env)[:2]).agent.state_dict()
        >>> policy = run_policy(get_recipe("ppo"), cfg, {"algo_state": {"model": weights}})
        >>> policy.out_keys[-1]
        'sample_log_prob'
        >>> del weights[next(iter(weights))]
        >>> run_policy(get_recipe("ppo"), cfg, {"algo_state": {"model": weights}})
        Traceback (most recent call last):
        ...
        RuntimeError: Error(s) in loading state_dict for ...
    """
    import torch

    from tdrl.recipes.config import TrainError
    from tdrl.recipes.envs import probe_env

    if recipe.make_policy is None:
        raise TrainError(f"the {recipe.name} recipe does not offer a policy module to export")
    env = probe_env(cfg.env)
    return recipe.make_policy(cfg, env, state["algo_state"]["model"], torch.device("cpu"))


def export_run(
    recipe: Any,
    cfg: Any,
    state: dict,
    fmt: str,
    path: Path,
    dtype: str = "auto",
    policy: Any = None,
) -> Path:
    """Exports the deterministic policy of a loaded run (recipe, config, checkpoint) to ``path``.

    ``dtype="auto"`` computes in the dtype of the run's final evaluation
    (float64 for continuous actions, see :mod:`tdrl.recipes.eval_act`), so the
    file replays it exactly; ``"float32"`` / ``"float64"`` force one. Inputs keep
    the observations' dtype (uint8 frames, else float32); outputs stay float32. Returns the path written (its JSON sidecar is
    ``<path>.json``); raises ``TrainError`` when the recipe offers no policy module.
    ``policy`` is :func:`run_policy`'s module when the caller built it already.
    """
    import torch

    from tdrl.recipes.blocks import obs_tensor
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.eval_act import eval_dtype
    from tdrl.recipes.memory import make_memory

    if policy is None:
        policy = run_policy(recipe, cfg, state)
    env = probe_env(cfg.env)
    example = obs_tensor(np.stack([env.observation_space.sample()]))  # uint8 frames stay uint8
    compute = eval_dtype(env.action_space) if dtype == "auto" else getattr(torch, dtype)
    # a recurrent policy: inputs observation + state, outputs action + next state
    memory = make_memory(policy)
    module, example, out_keys = memory.export_io(policy, example, compute)
    exported = export_policy(module, example, dtype=compute, out_keys=out_keys)
    exported.metadata.update({"algo": recipe.name, "env": cfg.env, "step": state["global_step"]})
    if memory.describe():
        exported.metadata["recurrent_state"] = memory.describe()
    return exported.save(path, fmt)


def _mismatch(policy: LoadedPolicy, env_id: str, env: Any) -> str | None:
    """Why the exported file cannot play ``env`` (per its sidecar), or None."""
    meta = policy.metadata
    if meta.get("env") != env_id:
        return f"it was exported from a run on {meta.get('env')!r}, this run is on {env_id!r}"
    obs_shape = list(getattr(env.observation_space, "shape", ()) or ())
    if meta["inputs"][0]["shape"] != obs_shape:
        return (
            f"it takes observations of shape {meta['inputs'][0]['shape']}, {env_id}'s are "
            f"{obs_shape}"
        )
    space = meta.get("action_space")
    action_space = env.action_space
    n = getattr(action_space, "n", None)
    if not isinstance(space, dict):  # a head without a spec: the action output's shape
        shape = meta["outputs"][0]["shape"]
        fits = shape in ([], [int(n)]) if n is not None else (
            int(np.prod(shape or [1])) == int(np.prod(action_space.shape))
        )
        return None if fits else (
            f"its action output has shape {shape}, {env_id}'s actions are {action_space}"
        )
    if n is not None:  # Discrete
        if space.get("spec") not in ("Categorical", "OneHot") or space.get("n") != int(n):
            return f"its actions are {space.get('spec')} {space.get('n')}, {env_id} has {n}"
    else:
        size = int(np.prod(action_space.shape))
        if int(np.prod(space.get("shape") or [1])) != size:
            return (
                f"its actions have shape {space.get('shape')}, {env_id}'s are "
                f"{list(action_space.shape)}"
            )
    return None


def policy_act(
    path: str | Path,
    action_space: Any,
    threads: int | None = None,
    *,
    env_id: str | None = None,
    env: Any = None,
):
    """``obs batch (numpy) -> env actions`` running an exported file (onnxruntime for .onnx).

    One-hot actions (per the sidecar's action spec) become indices; Box
    actions take the env's action shape. With ``env_id`` and ``env`` (an
    :class:`~tdrl.recipes.envs.EnvInfo`) the sidecar is required and its env,
    observation shape and action space must be the run's. Every problem
    raises ``TrainError`` (exit 2) naming the file.
    """
    from tdrl.export.policy import sidecar_path
    from tdrl.recipes.config import TrainError

    try:
        policy: LoadedPolicy = load_policy(path, threads)
    except (FileNotFoundError, ValueError) as err:
        raise TrainError(f"--policy: {err}") from None
    if env is not None:
        side = sidecar_path(path)
        if not policy.metadata:
            raise TrainError(
                f"--policy: no sidecar {side}: it records the env and shapes {Path(path).name} "
                "was exported for; re-export the run with `tdrl export`"
            )
        why = _mismatch(policy, env_id, env)
        if why is not None:
            raise TrainError(f"--policy {path} does not fit this run: {why} (sidecar {side})")
    spec = (policy.metadata.get("action_space") or {}).get("spec")
    shape = getattr(action_space, "shape", None)
    one_hot = spec == "OneHot"

    def convert(action: np.ndarray) -> np.ndarray:
        if one_hot:
            return action.argmax(-1)
        if shape:  # Box
            return action.reshape(action.shape[0], *shape)
        return action

    return StateCarryingAct(policy, convert)


class StateCarryingAct:
    """An exported policy stepping envs: feeds back the recurrent state it returns (per the
    sidecar's ``recurrent_state``; none for a feed-forward policy), zero at episode starts.

    ``reset(done)`` zeroes the state of the ended envs (``None``: all, at the next call).
    """

    def __init__(self, policy: LoadedPolicy, convert: Any) -> None:
        self.policy = policy
        self.convert = convert
        self.shapes = [s["shape"] for s in policy.metadata.get("recurrent_state") or []]
        self.state: list[np.ndarray] | None = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.shapes:
            return self.convert(self.policy(obs))
        if self.state is None or len(self.state[0]) != len(obs):
            self.state = [np.zeros((len(obs), *s), dtype=np.float32) for s in self.shapes]
        outs = self.policy(obs, *self.state)
        self.state = [np.array(o, dtype=np.float32) for o in outs[1:]]
        return self.convert(outs[0])

    def reset(self, done: Any = None) -> None:
        if done is None or self.state is None:
            self.state = None
            return
        for s in self.state:
            s[np.asarray(done, dtype=bool)] = 0.0
