"""Actor-critic operators: a policy and a value network, with or without a shared trunk.

- :class:`ActorValueOperator`: a common operator (the *trunk*) writes a hidden
  state that a policy head and a state-value head both read.
- :class:`ActorCriticOperator`: the same, but the critic also reads the action
  and writes a state-action value ``Q(s, a)``.
- :class:`ActorCriticWrapper`: a policy and a value network with no shared trunk.

Each operator is a :class:`~tdrl.modules.SafeSequential` of its parts, so one
forward runs the trunk once and then the heads. The getters
(``get_policy_operator()``, ``get_value_operator()``, ...) return standalone
sequences built at construction from the *same* module objects: they share
the operator's parameters, and a loss computed with one of them puts
gradient into the trunk.

Beyond TorchRL:

- ``trunk_grad`` (``ActorValueOperator`` and ``ActorCriticOperator``) chooses
  which head trains the trunk in the operator's forward: ``"both"`` (default),
  ``"policy"`` or ``"value"``. The other head then reads a detached copy of
  the trunk's outputs. The standalone getters never detach: used on their
  own, they always train the trunk.
- ``trunk_parameters()``, ``policy_parameters()`` and ``value_parameters()``
  split the parameters into groups for an optimizer; a parameter is listed
  once, in the first group that owns it (trunk, then policy, then value).

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tdrl.modules import ActorValueOperator, SafeModule, ValueOperator, Actor
    >>> op = ActorValueOperator(
    ...     SafeModule(torch.nn.Linear(4, 8), in_keys=["observation"], out_keys=["hidden"]),
    ...     Actor(torch.nn.Linear(8, 2), in_keys=["hidden"]),
    ...     ValueOperator(torch.nn.Linear(8, 1), in_keys=["hidden"]),
    ...     trunk_grad="policy",
    ... )
    >>> td = op(TensorDict(observation=torch.randn(5, 4), batch_size=[5]))
    >>> td["state_value"].sum().backward()  # the value loss does not reach the trunk
    >>> op.module[0].module.weight.grad is None
    True
    >>> [len(list(g)) for g in (op.trunk_parameters(), op.policy_parameters(),
    ...                         op.value_parameters())]
    [2, 2, 2]
"""
from __future__ import annotations

from typing import Any, Literal

from tensordict.nn import TensorDictModuleBase
from torch import nn

from tdrl.modules.tensordict_module.actor_critic_base import (
    _check_connects,
    _check_td_module,
    _DetachedInputs,
    _leaf,
    _OperatorMixin,
    _standalone,
)
from tdrl.modules.tensordict_module.core import covers, produced
from tdrl.modules.tensordict_module.sequence import SafeSequential

__all__ = ["ActorValueOperator", "ActorCriticOperator", "ActorCriticWrapper"]

TrunkGrad = Literal["both", "policy", "value"]
_TRUNK_GRAD_CHOICES = ("both", "policy", "value")


class ActorValueOperator(_OperatorMixin, SafeSequential):
    """A shared trunk feeding a policy head and a state-value head.

    One forward runs ``common_operator`` (the trunk) once, then the policy head
    and the value head on its output. ``get_policy_operator()`` and
    ``get_value_operator()`` return standalone ``SafeSequential``\\ s (trunk +
    head) that share this operator's modules and parameters;
    ``get_policy_head()`` / ``get_value_head()`` return the heads alone. When
    the policy head is probabilistic, the policy operator has ``get_dist`` and
    follows the exploration type as the head does.

    Args:
        common_operator: a TensorDict module that reads observations and writes a hidden state.
        policy_operator: a TensorDict module that reads the hidden state and writes an action.
        value_operator: a TensorDict module that reads the hidden state and writes a value.
        trunk_grad: which head's loss trains the trunk in this operator's forward:
            ``"both"`` (default), ``"policy"`` (the value head reads a detached
            hidden state) or ``"value"`` (the policy head does). The standalone
            getters never detach. Can be changed later by assigning ``op.trunk_grad``.

    Raises:
        TypeError: a part is not a TensorDict module.
        ValueError: a head reads nothing the trunk writes (the message names the
            keys it reads and the keys the trunk writes), or ``trunk_grad`` is not
            one of ``"both"``, ``"policy"``, ``"value"``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.utils import detailed_repr
        >>> printing = detailed_repr().set()  # print TensorDicts as TorchRL's page does
        >>> from tensordict.nn import TensorDictModule
        >>> from torch import nn
        >>> from tdrl.modules import ProbabilisticActor, SafeModule
        >>> from tdrl.modules import ValueOperator, TanhNormal, ActorValueOperator, NormalParamExtractor
        >>> module_hidden = torch.nn.Linear(4, 4)
        >>> td_module_hidden = SafeModule(
        ...    module=module_hidden,
        ...    in_keys=["observation"],
        ...    out_keys=["hidden"],
        ...    )
        >>> module_action = TensorDictModule(
        ...     nn.Sequential(torch.nn.Linear(4, 8), NormalParamExtractor()),
        ...     in_keys=["hidden"],
        ...     out_keys=["loc", "scale"],
        ...     )
        >>> td_module_action = ProbabilisticActor(
        ...    module=module_action,
        ...    in_keys=["loc", "scale"],
        ...    out_keys=["action"],
        ...    distribution_class=TanhNormal,
        ...    return_log_prob=True,
        ...    )
        >>> module_value = torch.nn.Linear(4, 1)
        >>> td_module_value = ValueOperator(
        ...    module=module_value,
        ...    in_keys=["hidden"],
        ...    )
        >>> td_module = ActorValueOperator(td_module_hidden, td_module_action, td_module_value)
        >>> td = TensorDict({"observation": torch.randn(3, 4)}, [3,])
        >>> td_clone = td_module(td.clone())
        >>> print(td_clone)
        TensorDict(
            fields={
                action: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                hidden: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                loc: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                observation: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                sample_log_prob: Tensor(shape=torch.Size([3]), device=cpu, dtype=torch.float32, is_shared=False),
                scale: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                state_value: Tensor(shape=torch.Size([3, 1]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([3]),
            device=None,
            is_shared=False)
        >>> td_clone = td_module.get_policy_operator()(td.clone())
        >>> print(td_clone)  # no value
        TensorDict(
            fields={
                action: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                hidden: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                loc: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                observation: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                sample_log_prob: Tensor(shape=torch.Size([3]), device=cpu, dtype=torch.float32, is_shared=False),
                scale: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([3]),
            device=None,
            is_shared=False)
        >>> td_clone = td_module.get_value_operator()(td.clone())
        >>> print(td_clone)  # no action
        TensorDict(
            fields={
                hidden: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                observation: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False),
                state_value: Tensor(shape=torch.Size([3, 1]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([3]),
            device=None,
            is_shared=False)
        >>> printing.unset()
    """

    _owner = "ActorValueOperator"

    def __init__(
        self,
        common_operator: TensorDictModuleBase,
        policy_operator: TensorDictModuleBase,
        value_operator: TensorDictModuleBase,
        *,
        trunk_grad: TrunkGrad = "both",
    ) -> None:
        owner = type(self).__name__
        _check_td_module(common_operator, "common_operator", owner)
        _check_td_module(policy_operator, "policy_operator", owner)
        _check_td_module(value_operator, "value_operator", owner)
        trunk_out = list(common_operator.out_keys)
        _check_connects(owner, "policy head", policy_operator, "common operator", trunk_out)
        self._check_value_head(common_operator, policy_operator, value_operator)
        super().__init__(common_operator, policy_operator, value_operator)
        self.trunk_grad = trunk_grad
        self._getters = self._build_getters()

    def _check_value_head(
        self, trunk: TensorDictModuleBase, policy: TensorDictModuleBase, value: Any
    ) -> None:
        _check_connects(
            type(self).__name__, "value head", value, "common operator", list(trunk.out_keys)
        )

    def _build_getters(self) -> dict[str, SafeSequential]:
        trunk, policy, value = self.module
        return {"policy": _standalone(trunk, policy), "value": _standalone(trunk, value)}

    def _parts(self) -> tuple[nn.Module | None, nn.Module, nn.Module]:
        return self.module[0], self.module[1], self.module[2]

    # trunk_grad ---------------------------------------------------------------------------
    @property
    def trunk_grad(self) -> str:
        """Which head trains the trunk in the forward: ``"both"``, ``"policy"`` or ``"value"``."""
        return self.__dict__.get("_trunk_grad", "both")

    @trunk_grad.setter
    def trunk_grad(self, mode: str) -> None:
        if mode not in _TRUNK_GRAD_CHOICES:
            raise ValueError(
                f"trunk_grad must be one of {list(_TRUNK_GRAD_CHOICES)}, got {mode!r}"
            )
        self.__dict__["_trunk_grad"] = mode
        self._rebuild()

    def _rebuild(self) -> None:
        super()._rebuild()
        mode = self.__dict__.get("_trunk_grad", "both")
        if mode == "both" or len(self._steps) != 3:
            return
        trunk_out = list(self.module[0].out_keys)
        steps = list(self._steps)
        i = 2 if mode == "policy" else 1  # the head that must not train the trunk
        head = self.module[i]
        keys = [
            w
            for w in trunk_out
            if any(covers(w, k) for k in head.in_keys) and w not in head.out_keys
        ]
        steps[i] = _DetachedInputs(steps[i], keys)
        self._steps = tuple(steps)

    # getters ------------------------------------------------------------------------------
    def get_policy_operator(self) -> SafeSequential:
        """A standalone trunk + policy head (shares this operator's parameters).

        A ``SafeProbabilisticTensorDictSequential`` (with ``get_dist``) when the
        policy head is probabilistic. It never detaches the trunk.
        """
        return self._getters["policy"]

    def get_value_operator(self) -> SafeSequential:
        """A standalone trunk + value head (shares this operator's parameters)."""
        return self._getters["value"]

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.trunk_grad == "both" or not text.endswith(")"):
            return text
        return f"{text[:-1]},\n    trunk_grad={self.trunk_grad!r})"


class ActorCriticOperator(ActorValueOperator):
    """A shared trunk, a policy head, and a critic that reads the action: ``Q(s, a)``.

    The forward runs the trunk, the policy head, then the critic, which reads
    the action the policy wrote (and usually the hidden state) and writes
    ``state_action_value``. ``get_policy_operator()`` returns trunk + policy;
    ``get_critic_operator()`` returns this operator itself (trunk + policy +
    critic); ``get_value_operator()`` raises ``RuntimeError``, as this
    operator has no state-value network.

    Args:
        common_operator: a TensorDict module that reads observations and writes a hidden state.
        policy_operator: a TensorDict module that reads the hidden state and writes an action.
        value_operator: the critic: reads the action (and the hidden state) and writes
            ``state_action_value``.
        trunk_grad: as for :class:`ActorValueOperator` (only the trunk's outputs are
            detached; the action the critic reads is not).

    Raises:
        ValueError: the critic writes ``state_value``, does not write
            ``state_action_value``, or does not read the policy head's action.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.modules import (MLP, ActorCriticOperator, NormalParamExtractor,
        ...     ProbabilisticActor, SafeModule, TanhNormal, ValueOperator)
        >>> trunk = SafeModule(torch.nn.Linear(4, 4), in_keys=["observation"], out_keys=["hidden"])
        >>> policy = ProbabilisticActor(
        ...     TensorDictModule(torch.nn.Sequential(torch.nn.Linear(4, 8), NormalParamExtractor()),
        ...                      in_keys=["hidden"], out_keys=["loc", "scale"]),
        ...     in_keys=["loc", "scale"], distribution_class=TanhNormal, return_log_prob=True)
        >>> critic = ValueOperator(MLP(in_features=8, out_features=1, num_cells=[]),
        ...                        in_keys=["hidden", "action"])
        >>> op = ActorCriticOperator(trunk, policy, critic)
        >>> td = op(TensorDict(observation=torch.randn(3, 4), batch_size=[3]))
        >>> sorted(td.keys())
        ['action', 'hidden', 'loc', 'observation', 'sample_log_prob', 'scale', 'state_action_value']
        >>> td["state_action_value"].shape
        torch.Size([3, 1])
        >>> op.get_critic_operator() is op
        True
        >>> sorted(op.get_policy_operator()(TensorDict(observation=torch.randn(3, 4),
        ...                                            batch_size=[3])).keys())
        ['action', 'hidden', 'loc', 'observation', 'sample_log_prob', 'scale']
    """

    def _check_value_head(
        self, trunk: TensorDictModuleBase, policy: TensorDictModuleBase, value: Any
    ) -> None:
        owner = type(self).__name__
        writes = list(value.out_keys)
        if any(_leaf(k) == "state_value" for k in writes):
            raise ValueError(
                f"{owner}: the value head writes 'state_value' (out_keys {writes}), a state "
                "value V(s); this operator's critic computes a state-action value Q(s, a) from "
                "the action, written under 'state_action_value'. Use ActorValueOperator for a "
                "state-value head, or make the critic read the action and write "
                "'state_action_value'"
            )
        if not any(_leaf(k) == "state_action_value" for k in writes):
            raise ValueError(
                f"{owner}: the critic must write 'state_action_value' (the state-action value "
                f"Q(s, a)), but its out_keys are {writes}"
            )
        policy_out = list(policy.out_keys)
        if not any(produced(k, policy_out) for k in value.in_keys):
            raise ValueError(
                f"{owner}: the critic must read the action written by the policy head (one of "
                f"{policy_out}) to compute Q(s, a), but it reads {list(value.in_keys)}"
            )

    def _build_getters(self) -> dict[str, SafeSequential]:
        trunk, policy, critic = self.module
        return {"policy": _standalone(trunk, policy), "qvalue": _standalone(trunk, critic)}

    def get_critic_operator(self) -> ActorCriticOperator:
        """The critic operator: trunk + policy + critic, i.e. this operator itself.

        It runs the policy, so it scores the action the policy draws now and
        overwrites any ``action`` already in the input; for a Q-loss on stored
        actions use :meth:`get_qvalue_operator`.
        """
        return self

    def get_qvalue_operator(self) -> SafeSequential:
        """A standalone trunk + critic that scores the ``action`` given in the input.

        The composition a Q-learning loss needs: ``Q(s, a)`` for replayed
        actions. The policy head does not run, so ``action`` is left untouched
        (TorchRL has no such getter; its ``get_critic_operator()`` re-runs the
        policy). Shares this operator's parameters and never detaches the trunk.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from tdrl.modules import (MLP, ActorCriticOperator, NormalParamExtractor,
            ...     ProbabilisticActor, SafeModule, TanhNormal, ValueOperator)
            >>> trunk = SafeModule(torch.nn.Linear(4, 4), in_keys=["observation"],
            ...                    out_keys=["hidden"])
            >>> policy = ProbabilisticActor(
            ...     SafeModule(torch.nn.Sequential(torch.nn.Linear(4, 2), NormalParamExtractor()),
            ...                in_keys=["hidden"], out_keys=["loc", "scale"]),
            ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
            >>> critic = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[]),
            ...                        in_keys=["hidden", "action"])
            >>> op = ActorCriticOperator(trunk, policy, critic)
            >>> action = torch.full((3, 1), 0.5)
            >>> td = op.get_qvalue_operator()(TensorDict(observation=torch.randn(3, 4),
            ...                                          action=action, batch_size=[3]))
            >>> td["action"] is action, td["state_action_value"].shape, "loc" in td
            (True, torch.Size([3, 1]), False)
        """
        return self._getters["qvalue"]

    def get_value_operator(self) -> SafeSequential:
        """Not available: raises ``RuntimeError`` (the critic needs the action)."""
        raise RuntimeError(
            f"{type(self).__name__} has no state-value operator: its critic is a state-action "
            "value Q(s, a) that reads the action, so it cannot run on the trunk alone. Call "
            "get_critic_operator() (trunk + policy + critic) instead"
        )


class ActorCriticWrapper(_OperatorMixin, SafeSequential):
    """A policy and a value network side by side, with no shared trunk.

    The forward runs the policy, then the value network. The getters return
    the two modules themselves (they are standalone already), so parameters
    are shared by construction; ``trunk_parameters()`` is empty.

    Args:
        policy_operator: a TensorDict module that reads observations and writes an action.
        value_operator: a TensorDict module that reads observations and writes a value.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.modules import (ActorCriticWrapper, NormalParamExtractor,
        ...     ProbabilisticActor, TanhNormal, ValueOperator)
        >>> policy = ProbabilisticActor(
        ...     TensorDictModule(torch.nn.Sequential(torch.nn.Linear(4, 8), NormalParamExtractor()),
        ...                      in_keys=["observation"], out_keys=["loc", "scale"]),
        ...     in_keys=["loc", "scale"], distribution_class=TanhNormal, return_log_prob=True)
        >>> value = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation"])
        >>> op = ActorCriticWrapper(policy, value)
        >>> td = op(TensorDict(observation=torch.randn(3, 4), batch_size=[3]))
        >>> sorted(td.keys())
        ['action', 'loc', 'observation', 'sample_log_prob', 'scale', 'state_value']
        >>> op.get_policy_operator() is policy, op.get_value_operator() is value
        (True, True)
        >>> list(op.trunk_parameters())
        []
    """

    def __init__(
        self, policy_operator: TensorDictModuleBase, value_operator: TensorDictModuleBase
    ) -> None:
        owner = type(self).__name__
        _check_td_module(policy_operator, "policy_operator", owner)
        _check_td_module(value_operator, "value_operator", owner)
        super().__init__(policy_operator, value_operator)
        self._getters = {}

    def _parts(self) -> tuple[nn.Module | None, nn.Module, nn.Module]:
        return None, self.module[0], self.module[1]

    def get_policy_operator(self) -> nn.Module:
        """The policy network (the module given as ``policy_operator``)."""
        return self.module[0]

    def get_value_operator(self) -> nn.Module:
        """The value network (the module given as ``value_operator``)."""
        return self.module[1]
