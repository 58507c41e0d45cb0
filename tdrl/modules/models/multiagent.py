"""Multi-agent MLP and CNN (TorchRL's ``torchrl.modules.models.multiagent`` path).

Each agent runs its own copy of an :class:`~tdrl.modules.MLP` / ``ConvNet``; see
:class:`~tdrl.modules.models.multiagent_base.MultiAgentNetBase` for the parameter
layout. The mixers (``QMixer``, ``VDNMixer``) live in :mod:`tdrl.modules.models.mixers`
and are re-exported here, at TorchRL's path.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tdrl.modules.models.conv import ConvNet
from tdrl.modules.models.mixers import Mixer, QMixer, VDNMixer
from tdrl.modules.models.mlp import MLP
from tdrl.modules.models.multiagent_base import MultiAgentNetBase

__all__ = [
    "MultiAgentNetBase",
    "MultiAgentMLP",
    "MultiAgentConvNet",
    "Mixer",
    "QMixer",
    "VDNMixer",
]

# parameter-free modules that act element by element: applied to the stacked
# [agents, batch, features] activations directly
_ELEMENTWISE = {
    nn.Tanh, nn.ReLU, nn.ELU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Softplus,
    nn.Mish, nn.SELU, nn.CELU, nn.Hardtanh, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid,
    nn.Tanhshrink, nn.Softsign, nn.LogSigmoid, nn.Identity, nn.Dropout, nn.AlphaDropout,
}
_RANDOM = (nn.Dropout, nn.AlphaDropout)
# the same function without a module call (the template's modules have no hooks of their own)
_AS_FUNCTION: dict[type, Any] = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu, nn.Sigmoid: torch.sigmoid}


class MultiAgentMLP(MultiAgentNetBase):
    """An MLP per agent: inputs ``[*B, n_agents, n_agent_inputs]``, outputs ``[*B, n_agents, n_agent_outputs]``.

    ``share_params=True`` gives one MLP for every agent (homogeneous agents), else each
    agent has its own. ``centralized=True`` feeds every agent all agents' inputs
    (``n_agents * n_agent_inputs`` features); with shared parameters all agents then get
    the same output. For an MLP of ``Linear`` layers and element-wise activations the
    per-agent layers run as one batched matmul over the stacked weights (the same values
    as ``torch.vmap``; other layers go through ``torch.vmap``).

    Args:
        n_agent_inputs: features per agent; ``None`` infers them at the first call.
        n_agent_outputs: outputs per agent.
        n_agents: number of agents.

    Keyword Args:
        centralized, share_params, use_td_params, vmap_randomness, device: see
            :class:`~tdrl.modules.models.multiagent_base.MultiAgentNetBase`.
        depth, num_cells, activation_class: as :class:`~tdrl.modules.MLP` (32 cells,
            depth 3, ``nn.Tanh`` by default).
        **kwargs: any other :class:`~tdrl.modules.MLP` argument; an unknown one raises.

    Examples:
        >>> import torch
        >>> from tdrl.modules import MultiAgentMLP
        >>> obs = torch.randn(64, 6, 3)
        >>> policy = MultiAgentMLP(3, 2, 6, centralized=False, share_params=False, depth=2)
        >>> policy(obs).shape
        torch.Size([64, 6, 2])
        >>> policy.params["0", "weight"].shape   # one 32 x 3 first layer per agent
        torch.Size([6, 32, 3])
        >>> critic = MultiAgentMLP(3, 1, 6, centralized=True, share_params=True, depth=2)
        >>> v = critic(obs)
        >>> v.shape, bool((v == v[:, :1]).all())   # one value, seen by every agent
        (torch.Size([64, 6, 1]), True)
        >>> policy(torch.randn(64, 5, 3))
        Traceback (most recent call last):
        ...
        ValueError: MultiAgentMLP expected 6 agents at dim -2 of the input, got shape (64, 5, 3)
    """

    def __init__(
        self,
        n_agent_inputs: int | None,
        n_agent_outputs: int,
        n_agents: int,
        *,
        centralized: bool | None = None,
        share_params: bool | None = None,
        device: torch.device | str | None = None,
        depth: int | None = None,
        num_cells: Sequence[int] | int | None = None,
        activation_class: type[nn.Module] = nn.Tanh,
        use_td_params: bool = True,
        **kwargs: Any,
    ) -> None:
        self.n_agent_inputs = n_agent_inputs
        self.n_agent_outputs = n_agent_outputs
        self.depth = depth
        self.num_cells = num_cells
        self.activation_class = activation_class
        centralized = kwargs.pop("centralised", centralized)
        self._plan: list[tuple[int | None, int | None, Any]] | None = None
        super().__init__(
            n_agents=n_agents,
            centralized=centralized,
            share_params=share_params,
            agent_dim=-2,
            use_td_params=use_td_params,
            device=device,
            **kwargs,
        )

    def _build_single_net(self, *, device: Any, **kwargs: Any) -> nn.Module:
        n_in = self.n_agent_inputs
        if self.centralized and n_in is not None:
            n_in = n_in * self.n_agents
        return MLP(
            in_features=n_in,
            out_features=self.n_agent_outputs,
            depth=self.depth,
            num_cells=self.num_cells,
            activation_class=self.activation_class,
            device=device,
            **kwargs,
        )

    def _pre_forward_check(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.ndim < 2 or inputs.shape[-2] != self.n_agents:
            raise ValueError(
                f"MultiAgentMLP expected {self.n_agents} agents at dim -2 of the input, "
                f"got shape {tuple(inputs.shape)}"
            )
        if self.n_agent_inputs is not None and inputs.shape[-1] != self.n_agent_inputs:
            raise ValueError(
                f"MultiAgentMLP expected {self.n_agent_inputs} features per agent (last dim), "
                f"got shape {tuple(inputs.shape)}"
            )
        return inputs.flatten(-2, -1) if self.centralized else inputs

    def _on_template(self) -> None:
        """Plans the batched-matmul path when the MLP is Linear layers + element-wise ops."""
        self._plan = None
        net = self._empty_net
        if not self.initialized or not isinstance(net, MLP) or net._out_shape is not None:
            return
        index = {key: i for i, key in enumerate(self._keys)}
        plan: list[tuple[int | None, int | None, Any]] = []
        for name, layer in net.named_children():
            if type(layer) is nn.Linear:
                plan.append((index[(name, "weight")], index.get((name, "bias")), None))
            elif type(layer) is nn.Identity:
                continue
            elif type(layer) in _ELEMENTWISE:
                if isinstance(layer, _RANDOM) and self._vmap_randomness != "different":
                    return
                plan.append((None, None, _AS_FUNCTION.get(type(layer), layer.forward)))
            else:
                return
        self._plan = plan

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Runs every agent's MLP; several inputs are concatenated on the last dim."""
        plan = self._plan
        if plan is None or len(inputs) != 1:  # lazy sizes, other layers, several inputs
            return super().forward(*inputs)
        x = inputs[0]
        shape = x.shape
        if (
            len(shape) < 2
            or shape[-2] != self.n_agents
            or (self.n_agent_inputs is not None and shape[-1] != self.n_agent_inputs)
        ):
            self._pre_forward_check(x)  # raises, naming the expected and actual shapes
        ps = self._current()
        if self.share_params:
            h = x.flatten(-2, -1) if self.centralized else x
            for w, b, fn in plan:
                h = fn(h) if fn is not None else F.linear(h, ps[w], None if b is None else ps[b])
            if self.centralized:
                h = h.unsqueeze(-2).expand(*h.shape[:-1], self.n_agents, h.shape[-1])
            return h
        return self._run_stacked(x, ps, plan)

    def _run_stacked(self, x: torch.Tensor, ps: list[torch.Tensor], plan: list) -> torch.Tensor:
        """Per-agent parameters: ``[agents, M, features]`` activations, one ``baddbmm`` per layer."""
        n = self.n_agents
        lead = x.shape[:-2]
        flat = len(lead) == 1
        if self.centralized:  # every agent reads all agents' features
            h = x.flatten(-2, -1) if flat else x.reshape(math.prod(lead), n * x.shape[-1])
            stacked = False
        else:
            h = (x if flat else x.reshape(math.prod(lead), n, x.shape[-1])).transpose(0, 1)
            stacked = True
        for w, b, fn in plan:
            if fn is not None:
                h = fn(h)
            elif stacked:
                wt = ps[w].transpose(-1, -2)
                h = torch.bmm(h, wt) if b is None else torch.baddbmm(ps[b].unsqueeze(-2), h, wt)
            else:  # first layer of a centralised net: one matmul for all agents
                weight = ps[w]
                out_f = weight.shape[-2]
                flat_b = None if b is None else ps[b].reshape(n * out_f)
                h = F.linear(h, weight.reshape(n * out_f, weight.shape[-1]), flat_b)
                h = h.view(h.shape[0], n, out_f).transpose(0, 1)
                stacked = True
        h = h.transpose(0, 1)
        return h if flat else h.reshape(*lead, n, h.shape[-1])


class MultiAgentConvNet(MultiAgentNetBase):
    """A ``ConvNet`` per agent: inputs ``[*B, n_agents, C, H, W]``, outputs ``[*B, n_agents, features]``.

    ``centralized=True`` stacks all agents' channels (``n_agents * C`` input channels).

    Args:
        n_agents: number of agents.
        centralized, share_params: see
            :class:`~tdrl.modules.models.multiagent_base.MultiAgentNetBase`.

    Keyword Args:
        in_features: input channels per agent; ``None`` infers them at the first call.
        num_cells, kernel_sizes (5), strides (2), paddings (0), activation_class
            (``nn.ELU``): as ``ConvNet``.
        use_td_params, vmap_randomness, device: see the base class.
        **kwargs: any other ``ConvNet`` argument (``norm_class``, ``activation_kwargs``,
            ``aggregator_class``, ...); an unknown one raises.

    Examples:
        >>> import torch
        >>> from tdrl.modules import MultiAgentConvNet
        >>> cnn = MultiAgentConvNet(4, centralized=False, share_params=False, in_features=3,
        ...     num_cells=[8, 8], kernel_sizes=3, strides=1)
        >>> cnn(torch.randn(2, 4, 3, 9, 9)).shape
        torch.Size([2, 4, 200])
    """

    def __init__(
        self,
        n_agents: int,
        centralized: bool | None = None,
        share_params: bool | None = None,
        *,
        in_features: int | None = None,
        device: torch.device | str | None = None,
        num_cells: Sequence[int] | None = None,
        kernel_sizes: Sequence[int | Sequence[int]] | int = 5,
        strides: Sequence[int] | int = 2,
        paddings: Sequence[int] | int = 0,
        activation_class: type[nn.Module] = nn.ELU,
        use_td_params: bool = True,
        **kwargs: Any,
    ) -> None:
        self.in_features = in_features
        self.num_cells = num_cells
        self.kernel_sizes = kernel_sizes
        self.strides = strides
        self.paddings = paddings
        self.activation_class = activation_class
        centralized = kwargs.pop("centralised", centralized)
        super().__init__(
            n_agents=n_agents,
            centralized=centralized,
            share_params=share_params,
            agent_dim=-4,
            use_td_params=use_td_params,
            device=device,
            **kwargs,
        )

    def _build_single_net(self, *, device: Any, **kwargs: Any) -> nn.Module:
        c_in = self.in_features
        if self.centralized and c_in is not None:
            c_in = c_in * self.n_agents
        return ConvNet(
            in_features=c_in,
            num_cells=self.num_cells,
            kernel_sizes=self.kernel_sizes,
            strides=self.strides,
            paddings=self.paddings,
            activation_class=self.activation_class,
            device=device,
            **kwargs,
        )

    def _pre_forward_check(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.ndim < 4:
            raise ValueError(
                "MultiAgentConvNet expects inputs [*batch, n_agents, channels, height, width], "
                f"got shape {tuple(inputs.shape)}"
            )
        if inputs.shape[-4] != self.n_agents:
            raise ValueError(
                f"MultiAgentConvNet expected {self.n_agents} agents at dim -4 of the input, "
                f"got shape {tuple(inputs.shape)}"
            )
        if self.in_features is not None and inputs.shape[-3] != self.in_features:
            raise ValueError(
                f"MultiAgentConvNet expected {self.in_features} channels per agent (dim -3), "
                f"got shape {tuple(inputs.shape)}"
            )
        return inputs.flatten(-4, -3) if self.centralized else inputs
