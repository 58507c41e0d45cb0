"""The deterministic policy of a run's final evaluation, ``tdrl eval`` and ``tdrl export``.

Discrete action spaces use the recipe's own ``make_act`` (float32; the greedy
action). For continuous (Box) action spaces the policy runs as a float64 copy
and its actions are rounded to float32 before they reach the env. The rounding
absorbs the last-bit differences between math libraries (torch's kernels,
onnxruntime's), which in float32 change about 8 actions in 10 by one ulp and,
through a chaotic env such as Pendulum, the return. In float64 the two
libraries disagree by at most about 2e-16, so a float32 action differs only
when that gap straddles a float32 rounding boundary: about 3 in 10^9 actions
(measured on a PPO Pendulum policy; 0 of 10^6 observed). An exported file
(``tdrl export`` computes in the same dtype) thus replays the final evaluation
exactly.

Examples:
    >>> import gymnasium as gym
    >>> eval_dtype(gym.spaces.Box(-2, 2, (1,))), eval_dtype(gym.spaces.Discrete(2))
    (torch.float64, torch.float32)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tdrl.recipes.envs import ActFn, EnvInfo, is_discrete

__all__ = ["eval_act", "eval_dtype"]


def eval_dtype(action_space: Any) -> torch.dtype:
    """The compute dtype of the evaluation policy: float64 for Box actions, else float32."""
    return torch.float32 if is_discrete(action_space) else torch.float64


def eval_act(
    recipe: Any,
    cfg: Any,
    env: EnvInfo,
    model_state: Mapping[str, Any],
    device: Any,
    fallback: ActFn | None = None,
) -> ActFn:
    """``obs batch (numpy) -> env actions``: the policy of the final evaluation and ``tdrl eval``.

    Observations are cast to float32 (as in training) and then to
    :func:`eval_dtype`; Box actions come back as float32. On a device without
    float64 (``mps``) the float64 copy runs on the CPU. In float32 (discrete
    actions, or a recipe without ``make_policy``) it is ``fallback`` (the
    training algorithm's own ``act``) or else ``recipe.make_act``.

    Examples:
        >>> import gymnasium as gym
        >>> import numpy as np
        >>> from tdrl.recipes import get_recipe
        >>> from tdrl.recipes.ppo import PPOConfig, build_agent
        >>> env = EnvInfo(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)), None)
        >>> state = build_agent(PPOConfig(), *env[:2]).agent.state_dict()
        >>> act = eval_act(get_recipe("ppo"), PPOConfig(), env, state, "cpu")
        >>> act(np.zeros((4, 3), dtype=np.float32)).dtype
        dtype('float32')
    """
    dtype = eval_dtype(env.action_space)
    if recipe.make_policy is None or dtype == torch.float32:
        return fallback or recipe.make_act(cfg, env, model_state, device)
    from tdrl.recipes.memory import PolicyAct

    device = torch.device(device)
    if device.type == "mps":
        device = torch.device("cpu")
    policy = recipe.make_policy(cfg, env, model_state, device).to(dtype)
    shape = env.action_space.shape
    # step by step, carrying a recurrent policy's state (PolicyAct.reset forgets ended episodes)
    return PolicyAct(
        policy, device, lambda a: a.to(torch.float32).cpu().numpy().reshape(len(a), *shape), dtype
    )
