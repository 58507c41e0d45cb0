"""The contract between a recipe and the run loop: :class:`Recipe` and :class:`Algorithm`.

A :class:`Recipe` is a plain record the command line and the run loop read:
the name, a one-line summary, the configuration dataclass (one flag per
field), the supported action kinds, per-env defaults, the factory that builds
the :class:`Algorithm`, and the factory of the deterministic policy used by
``tdrl eval``. The loop only ever calls the :class:`Algorithm` methods below,
so an on-policy learner (PPO), an off-policy one with a replay buffer (DQN,
SAC) or a learner fed by remote collectors all plug in the same way.

Examples:
    >>> from tdrl.recipes import get_recipe
    >>> recipe = get_recipe("dqn")
    >>> recipe.name, recipe.action_spaces, recipe.config.__name__
    ('dqn', ('discrete',), 'DQNConfig')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from tdrl.recipes.blocks import EpisodeStats
from tdrl.recipes.envs import ActFn, EnvInfo, action_kind

__all__ = ["Algorithm", "Recipe"]


@runtime_checkable
class Algorithm(Protocol):
    """What the run loop (:func:`tdrl.recipes.loop.train`) calls on a training algorithm.

    The algorithm is built by ``Recipe.algorithm(cfg, env, clock)`` (``clock()``
    returns the run's wall time in seconds, resumes included), owns its envs,
    networks and optimizers, and must be usable right after construction.

    - ``loss_columns``: the names of the values ``iterate`` returns
      (``metrics.csv`` columns after the episode statistics);
    - ``global_step``: environment steps taken so far (all envs);
    - ``stats``: the :class:`~tdrl.recipes.blocks.EpisodeStats` it updates;
    - ``iterate()``: one chunk of collection + learning (one rollout and update,
      or up to the next logging boundary); returns ``{column: value}`` (``None``:
      no value this time; NaN or inf stops the run as a failure). It calls
      :func:`~tdrl.recipes.envs.check_env_reset` / ``check_env_step`` on what the
      envs return (final observations included) and
      :func:`~tdrl.recipes.finite.check_finite` once per batch on what training
      produces; an exception a library check raises on NaN/inf (a distribution's
      parameters) is turned into the run's failure by the loop, and the loop
      refuses to checkpoint a state holding NaN/inf;
    - ``act(obs)``: deterministic env actions for a batch of observations
      (the final evaluation);
    - ``state_dict()`` / ``load_state_dict()``: everything needed to continue
      exactly, with the policy weights under ``"model"`` (what
      ``Recipe.make_act`` loads);
    - ``close()``: release envs, workers and the like.
    """

    loss_columns: Sequence[str]
    global_step: int
    stats: EpisodeStats

    def iterate(self) -> dict[str, float | None]: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One trainable algorithm as the command line and the run loop see it.

    - ``name``: ``tdrl train NAME``;
    - ``summary``: one line for ``--help``;
    - ``config``: a dataclass deriving from
      :class:`~tdrl.recipes.config.CommonConfig` (one ``--flag`` per field,
      ``validate()`` checks the values);
    - ``action_spaces``: the action kinds it supports (``"discrete"``, ``"box"``);
    - ``algorithm``: ``(cfg, env: EnvInfo, clock) -> Algorithm``;
    - ``make_act``: ``(cfg, env: EnvInfo, model_state, device) -> act`` builds the
      deterministic policy from saved weights (``tdrl eval``);
    - ``make_policy`` (optional): ``(cfg, env: EnvInfo, model_state, device) ->
      module``, the deterministic policy as a TensorDict module (``observation``
      in, ``action`` out) built from saved weights (``tdrl export``);
    - ``prepare`` (optional): ``(cfg, env: EnvInfo) -> None``, called once the
      configuration is resolved and before anything is written: build and check
      the networks (raise ``TrainError``), settle fields that depend on them;
    - ``env_defaults``: per-env defaults applied over the dataclass defaults:
      first those of the action kind (key ``"discrete"`` or ``"box"``), then
      those of the env's family (a key ending in ``/*``, e.g. ``"ALE/*"``,
      matches every id it prefixes), then those of the env id.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.recipes import get_recipe
        >>> get_recipe("ppo").defaults_for("Pendulum-v1", gym.spaces.Box(-2, 2, (1,)))["num_envs"]
        4
    """

    name: str
    summary: str
    config: type
    action_spaces: tuple[str, ...]
    algorithm: Callable[[Any, EnvInfo, Callable[[], float]], Algorithm]
    make_act: Callable[[Any, EnvInfo, Mapping[str, Any], torch.device], ActFn]
    env_defaults: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    make_policy: Callable[[Any, EnvInfo, Mapping[str, Any], torch.device], Any] | None = None
    prepare: Callable[[Any, EnvInfo], None] | None = None

    def defaults_for(self, env_id: str, action_space: Any) -> dict[str, Any]:
        """The per-env defaults that apply to ``env_id`` (action kind first, then the env's)."""
        out: dict[str, Any] = {}
        out.update(self.env_defaults.get(action_kind(action_space) or "", {}))
        for key, values in self.env_defaults.items():  # families: "ALE/*" matches ALE/Pong-v5
            if key.endswith("/*") and env_id.startswith(key[:-1]):
                out.update(values)
        out.update(self.env_defaults.get(env_id, {}))
        return out

    def tuned_envs(self) -> list[str]:
        """The env ids with their own defaults (listed in ``--help``)."""
        return [k for k in self.env_defaults if k not in ("discrete", "box")]
