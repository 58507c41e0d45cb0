"""Actors and value operators: ``Actor``, ``ProbabilisticActor``, ``ValueOperator``.

The Q-value actors and the actor-critic operators have their own files
(``qvalue.py``, ``actor_critic.py``) and are re-exported here, at TorchRL's
import path ``tdrl.modules.tensordict_module.actors``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey

from tdrl.data.tensor_specs import Composite, TensorSpec
from tdrl.modules.tensordict_module.common import SafeModule
from tdrl.modules.tensordict_module.core import normalize_keys
from tdrl.modules.tensordict_module.probabilistic import (
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
)

__all__ = ["Actor", "ProbabilisticActor", "ValueOperator"]


class Actor(SafeModule):
    """A deterministic actor: ``observation -> action``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.data import Bounded
        >>> from tdrl.modules import Actor
        >>> actor = Actor(torch.nn.Linear(3, 2), spec=Bounded(-1.0, 1.0, shape=(2,)), safe=True)
        >>> td = actor(TensorDict(observation=torch.randn(4, 3) * 100, batch_size=[4]))
        >>> td["action"].shape, bool(td["action"].abs().max() <= 1)
        (torch.Size([4, 2]), True)
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        *,
        spec: TensorSpec | None = None,
        safe: bool = False,
    ) -> None:
        super().__init__(
            module,
            in_keys if in_keys is not None else ["observation"],
            out_keys if out_keys is not None else ["action"],
            spec=spec,
            safe=safe,
        )


class ProbabilisticActor(SafeProbabilisticTensorDictSequential):
    """A stochastic actor: a module that writes distribution parameters, then a draw.

    ``module`` (a TensorDict module) writes the parameters named by
    ``in_keys``; the actor then builds ``distribution_class`` from them and
    writes the action under ``out_keys`` (default ``["action"]``), plus its
    log-probability under ``log_prob_key`` (``"sample_log_prob"``) when
    ``return_log_prob=True``. Outside any exploration context it uses
    ``default_interaction_type`` (DETERMINISTIC). Other keyword arguments
    (``num_samples``, ``generator``, ``distribution_kwargs``...) are those of
    :class:`SafeProbabilisticModule`; with a ``CompositeDistribution`` the
    out_keys come from its ``distribution_map`` / ``name_map``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.envs.utils import ExplorationType, set_exploration_type
        >>> from tdrl.modules import NormalParamExtractor, ProbabilisticActor, TanhNormal
        >>> net = TensorDictModule(torch.nn.Sequential(torch.nn.Linear(4, 8), NormalParamExtractor()),
        ...                        in_keys=["observation"], out_keys=["loc", "scale"])
        >>> actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal,
        ...                            return_log_prob=True)
        >>> with set_exploration_type(ExplorationType.RANDOM):
        ...     td = actor(TensorDict(observation=torch.randn(3, 4), batch_size=[3]))
        >>> td["action"].shape, td["sample_log_prob"].shape
        (torch.Size([3, 4]), torch.Size([3]))
        >>> bool(td["action"].abs().max() < 1)
        True
    """

    def __init__(
        self,
        module: TensorDictModuleBase,
        in_keys: NestedKey | Sequence[NestedKey] | dict[str, NestedKey],
        out_keys: Sequence[NestedKey] | None = None,
        *,
        spec: TensorSpec | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(module, TensorDictModuleBase):
            raise TypeError(
                "ProbabilisticActor's module must be a TensorDict module (e.g. a "
                "TensorDictModule writing the distribution parameters), got "
                f"{type(module).__name__}"
            )
        if out_keys is not None:
            out_keys = normalize_keys(out_keys, "out_keys")
        head = SafeProbabilisticModule(in_keys=in_keys, out_keys=out_keys, spec=spec, **kwargs)
        keys = head.dist_sample_keys
        if isinstance(spec, Composite) and len(keys) == 1 and keys[0] not in spec.keys(True):
            raise KeyError(f"the spec has no entry for the action key {keys[0]!r}")
        super().__init__(module, head)


class ValueOperator(SafeModule):
    """A value network: writes ``state_value``, or ``state_action_value`` if it reads ``action``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import ValueOperator
        >>> v = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation"])
        >>> v.out_keys
        ['state_value']
        >>> q = ValueOperator(lambda o, a: (o * a).sum(-1, keepdim=True),
        ...                   in_keys=["observation", "action"])
        >>> q.out_keys
        ['state_action_value']
        >>> td = TensorDict(observation=torch.ones(2, 3), action=torch.ones(2, 3), batch_size=[2])
        >>> q(td)["state_action_value"]
        tensor([[3.],
                [3.]])
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: Sequence[NestedKey] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
    ) -> None:
        in_keys = normalize_keys(in_keys if in_keys is not None else ["observation"], "in_keys")
        if out_keys is None:
            out_keys = ["state_action_value"] if "action" in in_keys else ["state_value"]
        super().__init__(module, in_keys, out_keys)


# re-exports: TorchRL's import path tdrl.modules.tensordict_module.actors.X
from tdrl.modules.tensordict_module.actor_critic import (  # noqa: E402
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
)

__all__ += ["ActorCriticOperator", "ActorCriticWrapper", "ActorValueOperator"]
from tdrl.modules.tensordict_module.action_space import _process_action_space_spec  # noqa: E402,F401
from tdrl.modules.tensordict_module.qvalue import (  # noqa: E402
    DistributionalQValueActor,
    DistributionalQValueHook,
    DistributionalQValueModule,
    QValueActor,
    QValueHook,
    QValueModule,
)
from tdrl.modules.tensordict_module.tanh import TanhModule  # noqa: E402

__all__ += [
    "TanhModule",
    "QValueModule",
    "QValueActor",
    "DistributionalQValueModule",
    "DistributionalQValueActor",
    "QValueHook",
    "DistributionalQValueHook",
]
from tdrl.modules.tensordict_module.multistep import MultiStepActorWrapper  # noqa: E402

__all__ += ["MultiStepActorWrapper"]
