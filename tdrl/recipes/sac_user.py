"""SAC on networks a user built (``module=``): what is accepted, how it is completed, what is checked.

The contract (``tdrl.train("sac", module=...)`` or ``--module package.module:factory``):

- the module is an ``ActorCriticOperator`` (a trunk reading ``observation``, a
  ``ProbabilisticActor`` head, a Q(s, a) critic head reading one trunk output and
  ``action``), an ``ActorCriticWrapper(actor, critic)`` or a pair ``(actor, critic)``
  (made an ``ActorCriticWrapper``); without a trunk the actor reads ``observation`` and
  the critic ``observation`` and ``action``;
- the actor samples ``action`` of the ``Box``'s shape from a distribution that can be
  reparameterized (``has_rsample``) and whose support lies inside the ``Box``
  (``TanhNormal(low=action_space.low, high=action_space.high)``; a ``TruncatedNormal``
  on the bounds also fits), and writes its log-probability (``return_log_prob=True``);
- the critic writes ``state_action_value``: one column (``[B]`` or ``[B, 1]``), which
  SAC completes into twin critics with a copy of it, re-initialised
  (:func:`~tdrl.recipes.twin_q.fresh_copy`: every parameter must belong to a layer with
  ``reset_parameters()``); or ``[B, k]`` with ``k >= 2``, an ensemble of its own, used as
  given (the target is the minimum over its columns).

All of it is checked on a probe batch before anything is written (:func:`check_parts`),
with an error naming what is missing and what was found.

Examples:
    >>> import gymnasium as gym
    >>> from tdrl.modules import MLP, ActorCriticWrapper, ValueOperator
    >>> spaces = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,))
    >>> critic = ValueOperator(MLP(in_features=4, out_features=1, num_cells=[8]),
    ...                        in_keys=["observation", "action"])
    >>> parts = user_sac_parts((example_actor(*spaces), critic), *spaces)
    >>> type(parts["agent"]).__name__, parts["feature_key"], len(parts["twin"].critics)
    ('ActorCriticWrapper', 'observation', 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    NormalParamExtractor,
    ProbabilisticActor,
    SafeModule,
    TanhNormal,
)
from tdrl.recipes.config import TrainError
from tdrl.recipes.twin_q import TwinCritic, fresh_copy
from tdrl.recipes.user_module import pair_to_module

__all__ = ["check_parts", "example_actor", "user_sac_parts"]

_KINDS = ("an ActorCriticOperator (trunk, actor head, Q(s, a) critic head), an "
          "ActorCriticWrapper(actor, critic) or an (actor, critic) pair")


def example_actor(observation_space: Any, action_space: Any, in_key: str = "observation",
                  in_features: int | None = None) -> ProbabilisticActor:
    """A small actor that fits the contract: ``TanhNormal`` on the ``Box``'s bounds.

    Examples:
        >>> import gymnasium as gym
        >>> actor = example_actor(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,)))
        >>> actor(TensorDict(observation=torch.zeros(2, 3), batch_size=[2]))["action"].shape
        torch.Size([2, 1])
    """
    n_in = in_features or int(np.prod(observation_space.shape))
    act_dim = int(np.prod(action_space.shape))
    net = nn.Sequential(nn.Linear(n_in, 2 * act_dim), NormalParamExtractor())
    return ProbabilisticActor(
        SafeModule(net, in_keys=[in_key], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": torch.as_tensor(action_space.low),
                             "high": torch.as_tensor(action_space.high)},
        return_log_prob=True,
    )


def _split(module: Any) -> tuple[Any, Any, Any]:
    """``(trunk or None, actor, critic)`` of what the user gave (raises ``TrainError``)."""
    module = pair_to_module(module)
    if isinstance(module, ActorCriticOperator):
        return module.module[0], module.get_policy_head(), module.get_value_head()
    if isinstance(module, ActorCriticWrapper):
        return None, module.get_policy_operator(), module.get_value_operator()
    hint = (" (an ActorValueOperator's value head is V(s); SAC's critic reads the action)"
            if isinstance(module, ActorValueOperator) else "")
    raise TrainError(f"module=: SAC trains {_KINDS}; got {type(module).__name__}{hint}")


def _probe_device(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def user_sac_parts(module: Any, obs_space: Any, action_space: Any) -> dict[str, Any]:
    """The fields of ``sac.AgentParts`` for a user's networks, the critic made a twin.

    Raises ``TrainError`` when the structure does not fit (wrong kind, keys, or a
    critic that cannot be copied fresh); :func:`check_parts` runs the rest.
    """
    trunk, actor, critic = _split(module)
    out_keys = list(critic.out_keys)
    if "state_action_value" not in out_keys:
        raise TrainError(
            f"module=: the critic writes {out_keys}; SAC needs 'state_action_value', Q(s, a) "
            "(a ValueOperator whose in_keys include 'action' writes it)"
        )
    reads = list(critic.in_keys)
    features = [k for k in reads if k != "action"]
    allowed = ["observation"] if trunk is None else list(trunk.out_keys)
    where = "the observation" if trunk is None else f"one output of the trunk ({allowed})"
    if "action" not in reads or len(features) != 1 or features[0] not in allowed:
        raise TrainError(
            f"module=: the critic reads {reads}; SAC's critic reads 'action' and {where}"
        )
    policy_reads = list(actor.in_keys if trunk is None else trunk.in_keys)
    if policy_reads != ["observation"]:
        raise TrainError(
            f"module=: the {'actor' if trunk is None else 'trunk'} reads {policy_reads}, but SAC "
            "gives it only 'observation'"
        )
    columns = _critic_columns(trunk, critic, obs_space, action_space)
    if columns == 1:
        try:
            twin = TwinCritic([critic, fresh_copy(critic)])
        except ValueError as err:
            raise TrainError(
                f"module=: SAC needs two critics and copies yours with fresh weights, but {err} "
                "of the critic; give layers with reset_parameters(), or a critic writing two "
                "columns ([B, 2]: twin critics of your own)"
            ) from None
    else:
        twin = TwinCritic([critic])
    agent = ActorCriticWrapper(actor, twin) if trunk is None else ActorCriticOperator(
        trunk, actor, twin)
    qvalue = agent.get_value_operator() if trunk is None else agent.get_qvalue_operator()
    return {
        "agent": agent, "policy": agent.get_policy_operator(), "qvalue": qvalue,
        "critic_head": twin, "twin": twin, "feature_key": features[0], "act_net": None,
        "log_prob_key": getattr(actor, "log_prob_key", "sample_log_prob"),
    }


def _critic_columns(trunk: Any, critic: Any, obs_space: Any, action_space: Any) -> int:
    """How many Q columns the critic writes for a batch of 2 (raises ``TrainError``)."""
    device = _probe_device(critic)
    td = TensorDict(
        observation=torch.zeros(2, *obs_space.shape, device=device),
        action=torch.zeros(2, *action_space.shape, device=device),
        batch_size=[2], device=device,
    )
    try:
        with torch.no_grad():
            if trunk is not None:
                trunk(td)
            value = critic(td).get("state_action_value")
    except Exception as err:  # noqa: BLE001 - the user's network, reported with its message
        raise TrainError(
            f"module=: the critic failed on a batch of 2 (observation {tuple(obs_space.shape)}, "
            f"action {tuple(action_space.shape)}): {type(err).__name__}: {err}"
        ) from None
    if value.dim() == 1 and value.shape[0] == 2:
        return 1
    if value.dim() != 2 or value.shape[0] != 2:
        raise TrainError(
            f"module=: the critic's state_action_value has shape {tuple(value.shape)} for a "
            "batch of 2; expected (2,), (2, 1), or (2, k) for k critics of your own"
        )
    return int(value.shape[1])


def _support_bounds(dist: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    support = getattr(dist, "support", None)
    support = getattr(support, "base_constraint", support)
    low, high = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
    if low is None or high is None:
        return None
    return torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)


def check_parts(parts: Any, obs_space: Any, action_space: Any) -> None:
    """Run the user's actor on a probe batch and check what SAC needs (raises ``TrainError``).

    ``action`` of the ``Box``'s shape, its log-probability, a reparameterizable
    distribution (the action carries gradient to the actor's weights) whose support
    lies inside the ``Box``.

    Examples:
        >>> import gymnasium as gym
        >>> from tdrl.modules import MLP, ValueOperator
        >>> spaces = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (1,))
        >>> critic = ValueOperator(MLP(in_features=4, out_features=1, num_cells=[8]),
        ...                        in_keys=["observation", "action"])
        >>> from types import SimpleNamespace
        >>> bad = SimpleNamespace(**user_sac_parts((example_actor(*spaces), critic), *spaces))
        >>> bad.policy.module[-1].return_log_prob = False
        >>> check_parts(bad, *spaces)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: module=: the actor wrote no 'sample_log_prob' (build the ProbabilisticActor with return_log_prob=True); it wrote ['action', 'loc', 'observation', 'scale']
    """
    policy, head = parts.policy, parts.agent.get_policy_head()
    if not callable(getattr(head, "get_dist", None)):
        raise TrainError(
            f"module=: the actor ({type(head).__name__}) has no get_dist(); SAC needs a "
            "ProbabilisticActor (e.g. a TanhNormal on the action space's bounds)"
        )
    device = _probe_device(parts.agent)
    obs = torch.as_tensor(np.stack([obs_space.sample(), obs_space.sample()]),
                          dtype=torch.float32, device=device)
    try:
        with set_exploration_type(ExplorationType.RANDOM):
            out = policy(TensorDict({"observation": obs}, [2], device=device))
            dist = head.get_dist(out)
    except Exception as err:  # noqa: BLE001 - the user's network, reported with its message
        raise TrainError(
            f"module=: the actor failed on a batch of 2 observations of shape "
            f"{tuple(obs_space.shape)}: {type(err).__name__}: {err}"
        ) from None
    found = sorted(str(k) for k in out.keys(include_nested=True, leaves_only=True))
    for key, hint in (("action", ""), (parts.log_prob_key, " (build the ProbabilisticActor "
                      "with return_log_prob=True)")):
        if key not in out.keys(include_nested=True):
            raise TrainError(f"module=: the actor wrote no {key!r}{hint}; it wrote {found}")
    action, log_prob = out["action"], out[parts.log_prob_key]
    expected = (2, *action_space.shape)
    if tuple(action.shape) != expected:
        raise TrainError(
            f"module=: the action has shape {tuple(action.shape)} for a batch of 2; "
            f"{action_space} needs {expected}"
        )
    if tuple(log_prob.shape) not in ((2,), (2, 1)):
        raise TrainError(
            f"module=: the log-probability has shape {tuple(log_prob.shape)} for a batch of 2; "
            "SAC needs one per sample ((2,) or (2, 1)): a distribution over the whole action "
            "vector (e.g. TanhNormal, or Independent over the action dims)"
        )
    name = type(dist).__name__
    has_params = any(p.requires_grad for p in head.parameters())
    if not getattr(dist, "has_rsample", False) or (has_params and not action.requires_grad):
        raise TrainError(
            f"module=: the actor's {name} cannot be reparameterized (no rsample, or the action "
            "carries no gradient to the actor's weights); SAC's actor loss backpropagates "
            "through its samples: use a TanhNormal on the action space's bounds"
        )
    bounds = _support_bounds(dist)
    low = torch.as_tensor(action_space.low, dtype=torch.float32)
    high = torch.as_tensor(action_space.high, dtype=torch.float32)
    if bounds is None or not (
        bool((bounds[0].cpu() >= low - 1e-5).all()) and bool((bounds[1].cpu() <= high + 1e-5).all())
    ):
        support = getattr(dist, "support", None)
        raise TrainError(
            f"module=: the actor's {name} has support {support}, which is not inside "
            f"{action_space}; use TanhNormal(low=action_space.low, high=action_space.high)"
        )


def sampler(policy: Any, device: torch.device):
    """``obs tensor [n, ...] -> numpy actions``: the user's actor sampling (acting)."""

    def sample(obs: torch.Tensor) -> np.ndarray:
        td = TensorDict({"observation": obs}, batch_size=[obs.shape[0]], device=device)
        with set_exploration_type(ExplorationType.RANDOM):
            return policy(td).get("action").cpu().numpy()

    return sample
