"""A centralised critic over several agent groups (TorchRL's ``models.cross_group_critic`` path).

Each group's observations are embedded by the group's own encoder, all embeddings go
through one shared MLP trunk (so every value can depend on every group), and a value
head (shared, or one per group) writes one value per agent back under each group's key.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import torch
from tensordict.utils import NestedKey
from torch import nn

from tdrl.modules.models.mlp import MLP
from tdrl.modules.tensordict_module.common import SafeModule

__all__ = ["CrossCriticGroupSpec", "CrossGroupCritic"]


@dataclasses.dataclass
class CrossCriticGroupSpec:
    """One agent group of a :class:`CrossGroupCritic`.

    Attributes:
        obs_dim: observation size of one agent.
        n_agents: number of agents in the group.
        obs_key: where the group's observations ``[*B, n_agents, obs_dim]`` are read.
        value_key: where the group's values ``[*B, n_agents, 1]`` are written.

    Examples:
        >>> from tdrl.modules import CrossCriticGroupSpec
        >>> CrossCriticGroupSpec(obs_dim=4, n_agents=2, obs_key=("a", "obs"), value_key=("a", "v"))
        CrossCriticGroupSpec(obs_dim=4, n_agents=2, obs_key=('a', 'obs'), value_key=('a', 'v'))
    """

    obs_dim: int
    n_agents: int
    obs_key: NestedKey
    value_key: NestedKey


class _CrossGroupNet(nn.Module):
    """Tensor-level network of :class:`CrossGroupCritic`: one observation tensor per group in, one value tensor per group out."""

    def __init__(
        self,
        groups: Mapping[str, CrossCriticGroupSpec],
        d_model: int,
        trunk_depth: int,
        trunk_cells: int,
        activation_class: type[nn.Module],
        share_params: bool,
        detach_groups: Iterable[str] | None,
        device: torch.device | str | None,
    ) -> None:
        super().__init__()
        self.names = list(groups)
        self.sizes = [(g.n_agents, g.obs_dim) for g in groups.values()]
        self.detach = frozenset(detach_groups or ())
        unknown = sorted(self.detach - set(self.names))
        if unknown:
            raise ValueError(f"detach_groups names {unknown}, which are not groups; groups: {self.names}")
        self.n_total = sum(n for n, _ in self.sizes)
        self.encoders = nn.ModuleDict(
            {
                name: nn.Sequential(nn.Linear(g.obs_dim, d_model, device=device), activation_class())
                for name, g in groups.items()
            }
        )
        joint = self.n_total * d_model
        self.trunk = MLP(
            in_features=joint,
            out_features=joint,
            depth=trunk_depth,
            num_cells=trunk_cells,
            activation_class=activation_class,
            device=device,
        )
        self.shared_head: nn.Linear | None = None
        self.group_heads: nn.ModuleDict | None = None
        if share_params:
            self.shared_head = nn.Linear(d_model, 1, device=device)
        else:
            self.group_heads = nn.ModuleDict(
                {name: nn.Linear(d_model, 1, device=device) for name in self.names}
            )

    def forward(self, *observations: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(observations) != len(self.names):
            raise ValueError(f"expected {len(self.names)} observation tensors ({self.names}), got {len(observations)}")
        embedded = []
        for obs, name, size in zip(observations, self.names, self.sizes):
            if tuple(obs.shape[-2:]) != size:
                raise ValueError(
                    f"group {name!r} expected observations ending in (n_agents, obs_dim)={size}, "
                    f"got shape {tuple(obs.shape)}"
                )
            e = self.encoders[name](obs)
            embedded.append(e.detach() if name in self.detach else e)
        x = torch.cat(embedded, dim=-2)  # [*B, n_total, d_model]
        x = self.trunk(x.flatten(-2, -1)).unflatten(-1, (self.n_total, -1))
        parts = torch.split(x, [n for n, _ in self.sizes], dim=-2)
        if self.shared_head is not None:
            return tuple(self.shared_head(p) for p in parts)
        assert self.group_heads is not None
        return tuple(self.group_heads[name](p) for name, p in zip(self.names, parts))


class CrossGroupCritic(SafeModule):
    """A critic that sees every group's observations and values every group's agents.

    Groups may differ in observation size and agent count (each has its own encoder
    ``Linear(obs_dim, d_model)`` + activation); the trunk is one MLP over all agents'
    embeddings. ``detach_groups`` stops gradients from the value loss flowing into the
    observations of the named groups (e.g. teammates following a fixed policy) while the
    critic still reads them. The network is ``critic.module`` (``encoders``, ``trunk``,
    ``shared_head`` / ``group_heads``).

    Args:
        group_map: group name -> :class:`CrossCriticGroupSpec`; its order fixes the input order.

    Keyword Args:
        d_model: embedding size per agent (64).
        trunk_depth, trunk_cells: the trunk MLP's hidden layers (2 x 256).
        activation_class: for encoders and trunk (``nn.Tanh``).
        share_params: one value head for all groups, else one per group (``False``).
        detach_groups: names of the groups whose embeddings are detached.
        device: where the parameters live.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tdrl.modules import CrossGroupCritic, CrossCriticGroupSpec
        >>> groups = {
        ...     "scouts": CrossCriticGroupSpec(12, 3, ("scouts", "obs"), ("scouts", "value")),
        ...     "medics": CrossCriticGroupSpec(8, 2, ("medics", "obs"), ("medics", "value")),
        ... }
        >>> critic = CrossGroupCritic(groups, d_model=16, trunk_depth=1, trunk_cells=32)
        >>> td = TensorDict({"scouts": {"obs": torch.zeros(4, 3, 12)},
        ...                  "medics": {"obs": torch.zeros(4, 2, 8)}}, batch_size=[4])
        >>> td = critic(td)
        >>> td["scouts", "value"].shape, td["medics", "value"].shape
        (torch.Size([4, 3, 1]), torch.Size([4, 2, 1]))
    """

    def __init__(
        self,
        group_map: Mapping[str, CrossCriticGroupSpec],
        *,
        d_model: int = 64,
        trunk_depth: int = 2,
        trunk_cells: int = 256,
        activation_class: type[nn.Module] = nn.Tanh,
        share_params: bool = False,
        detach_groups: Iterable[str] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not group_map:
            raise ValueError("CrossGroupCritic needs at least one group")
        for name, spec in group_map.items():
            if not isinstance(spec, CrossCriticGroupSpec):
                raise TypeError(
                    f"group {name!r}: expected a CrossCriticGroupSpec, got {type(spec).__name__}"
                )
        net = _CrossGroupNet(
            group_map, d_model, trunk_depth, trunk_cells, activation_class,
            share_params, detach_groups, device,
        )
        super().__init__(
            net,
            in_keys=[g.obs_key for g in group_map.values()],
            out_keys=[g.value_key for g in group_map.values()],
        )
