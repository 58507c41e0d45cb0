"""Twin (ensemble) Q-critics: the recipe's stacked-weight :class:`TwinQ` and :class:`TwinCritic`.

:class:`TwinQ` holds the recipe's own critics as stacked weights (one batched
matmul per layer for all of them); :class:`TwinCritic` joins Q(s, a) TensorDict
modules a user built (``module=``) into one that writes their values side by side.

Examples:
    >>> import torch
    >>> from tdrl.recipes.twin_q import TwinQ
    >>> TwinQ(4, (8,))(torch.zeros(2, 4)).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

__all__ = ["TwinCritic", "TwinQ", "fresh_copy"]


class TwinQ(nn.Module):
    """``num_q`` Q-networks with stacked weights, evaluated together in one ``bmm`` per layer.

    ``forward(*inputs)`` concatenates its inputs on the last dim and returns
    ``[..., num_q]``, one column per critic. Each critic is an MLP with ReLU
    activations initialised like ``nn.Linear``. Inside ``frozen()`` the
    forward reads detached weights: gradients reach the inputs only (the SAC
    actor loss).

    Examples:
        >>> q = TwinQ(4, (8, 8))
        >>> out = q(torch.zeros(5, 3), torch.zeros(5, 1))
        >>> out.shape
        torch.Size([5, 2])
        >>> a = torch.zeros(5, 1, requires_grad=True)
        >>> with q.frozen():
        ...     q(torch.zeros(5, 3), a).sum().backward()
        >>> a.grad is not None, q.weights[0].grad is None
        (True, True)
    """

    def __init__(self, in_features: int, num_cells: tuple[int, ...], num_q: int = 2) -> None:
        super().__init__()
        sizes = [in_features, *num_cells, 1]
        self.num_q = num_q
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(
                nn.Parameter(torch.empty(num_q, fan_in, fan_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(num_q, 1, fan_out).uniform_(-bound, bound)))
        self._frozen = False

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within this block the forward uses detached weights."""
        self._frozen = True
        try:
            yield
        finally:
            self._frozen = False

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat(inputs, -1)
        lead = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1]).expand(self.num_q, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if self._frozen:
                w, b = w.detach(), b.detach()
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = x.relu_()  # in place: baddbmm's backward does not read its output
        return x.squeeze(-1).transpose(0, 1).reshape(*lead, self.num_q)


class TwinCritic(TensorDictModuleBase):
    """Q(s, a) critics run one after the other, their values side by side in one entry.

    Each critic is a TensorDict module writing ``out_key`` of shape ``[*batch]``,
    ``[*batch, 1]`` or ``[*batch, k]`` (an ensemble of its own); the twin writes
    their columns concatenated, ``[*batch, total]``. It reads the union of
    their ``in_keys``. Inside ``frozen()`` the critics' parameters take no
    gradient (gradients reach the inputs only: the SAC actor loss), as in
    :meth:`TwinQ.frozen`.

    Examples:
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import MLP, ValueOperator
        >>> q = ValueOperator(MLP(in_features=3, out_features=1, num_cells=[8]),
        ...                   in_keys=["observation", "action"])
        >>> twin = TwinCritic([q, fresh_copy(q)])
        >>> td = TensorDict(observation=torch.zeros(5, 2), action=torch.zeros(5, 1),
        ...                 batch_size=[5])
        >>> twin(td)["state_action_value"].shape, twin.in_keys
        (torch.Size([5, 2]), ['observation', 'action'])
        >>> a = torch.zeros(5, 1, requires_grad=True)
        >>> with twin.frozen():
        ...     twin(td.set("action", a))["state_action_value"].sum().backward()
        >>> a.grad is not None, all(p.grad is None for p in q.parameters())
        (True, True)
    """

    def __init__(self, critics: list[nn.Module], out_key: str = "state_action_value") -> None:
        super().__init__()
        self.critics = nn.ModuleList(critics)
        keys: list = []
        for critic in critics:
            keys += [k for k in critic.in_keys if k not in keys]
        self.in_keys, self.out_keys, self.out_key = keys, [out_key], out_key

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within this block the critics' parameters do not require gradients."""
        params = [p for p in self.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        columns = []
        for critic in self.critics:
            value = critic(tensordict.select(*critic.in_keys)).get(self.out_key)
            columns.append(value.unsqueeze(-1) if value.shape == tensordict.batch_size else value)
        tensordict.set(self.out_key, torch.cat(columns, -1))
        return tensordict


def fresh_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every parameter re-initialised (``reset_parameters``).

    Raises ``ValueError`` naming the parameters no submodule's ``reset_parameters``
    covers (they would start equal to the original's).

    Examples:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> torch.equal(fresh_copy(net)[0].weight, net[0].weight)
        False
        >>> class Scale(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = nn.Parameter(torch.ones(1))
        >>> fresh_copy(nn.Sequential(nn.Linear(2, 1), Scale()))
        Traceback (most recent call last):
        ...
        ValueError: no reset_parameters() re-initialises ['1.w']
    """
    clone = copy.deepcopy(module)
    covered: set[int] = set()
    for sub in clone.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
            covered.update(id(p) for p in sub.parameters(recurse=False))
    missing = [name for name, p in clone.named_parameters() if id(p) not in covered]
    if missing:
        raise ValueError(f"no reset_parameters() re-initialises {missing}")
    return clone
