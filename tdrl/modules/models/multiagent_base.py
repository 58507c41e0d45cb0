"""The base of the multi-agent networks: one network per agent (or one shared), vmapped over agents.

The per-agent parameters live stacked along a leading agent dimension in ``params`` (a
``TensorDictParams`` when ``use_td_params``, else a plain ``TensorDict`` whose leaves are
registered on the template). The template ``_empty_net`` is one agent's network whose
tensors are meta placeholders; a call binds the stacked tensors to it through
``torch.func.functional_call`` under ``torch.vmap`` (subclasses may supply a faster
equivalent, see :class:`~tdrl.modules.models.multiagent.MultiAgentMLP`).
"""
from __future__ import annotations

import copy
import warnings
from abc import abstractmethod
from textwrap import indent
from typing import Any

import torch
from tensordict import TensorDict
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from tdrl._compat import child, is_compiling, params_reader
from tdrl.modules.tensordict_module.core import hook_free

__all__ = ["MultiAgentNetBase"]

_RANDOMNESS = ("different", "same", "error")


def _is_lazy(t: torch.Tensor) -> bool:
    return isinstance(t, UninitializedTensorMixin)


def _strip(net: nn.Module) -> nn.Module:
    """Replaces every parameter / buffer of ``net`` by a plain meta tensor attribute."""
    for m in net.modules():
        for store in (m._parameters, m._buffers):
            for name in [n for n, t in store.items() if t is not None]:
                t = store.pop(name)
                shape = (0,) if _is_lazy(t) else t.shape
                dtype = torch.get_default_dtype() if _is_lazy(t) else t.dtype
                object.__setattr__(m, name, torch.empty(shape, dtype=dtype, device="meta"))
    return net


def _bind(net: nn.Module, keys: list[tuple[str, ...]], tensors: list[torch.Tensor]) -> None:
    """Puts ``tensors`` on ``net`` under ``keys`` (parameters registered as such)."""
    for key, t in zip(keys, tensors):
        sub = net.get_submodule(".".join(key[:-1]))
        if hasattr(sub, key[-1]):
            delattr(sub, key[-1])
        if isinstance(t, nn.Parameter) or not isinstance(t, torch.Tensor):
            setattr(sub, key[-1], t)
        else:
            sub.register_buffer(key[-1], t)


class MultiAgentNetBase(nn.Module):
    """Runs ``n_agents`` copies of one network, with shared or per-agent parameters.

    Subclasses implement ``_build_single_net(*, device, **kwargs)`` (one agent's
    network; ``kwargs`` are the extra keyword arguments given here, passed on untouched)
    and ``_pre_forward_check(inputs)`` (validate, and for a centralised net merge the
    agents into the features).

    Keyword Args:
        n_agents: number of agents (>= 1).
        centralized: each agent sees every agent's input (``centralised`` also accepted).
        share_params: one parameter set for all agents, else one per agent.
        agent_dim: the input dimension indexing agents (negative counts from the end);
            the output keeps the agents at the same position relative to the batch dims.
        vmap_randomness: ``torch.vmap``'s ``randomness`` for per-agent parameters
            (``"different"``: dropout etc. draw independently per agent).
        use_td_params: keep the stacked parameters in ``params`` (a ``TensorDictParams``);
            else they are registered on the template ``_empty_net`` (``params`` is then a
            plain ``TensorDict`` of the same tensors). The two ``state_dict`` layouts differ.
        device: where the parameters are created.

    Initialise weights with ``torch.nn.init`` on :meth:`get_stateful_net` (in place), or
    write them back with :meth:`from_stateful_net`; :meth:`reset_parameters` redraws them.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from tdrl.modules.models.multiagent_base import MultiAgentNetBase
        >>> class PerAgentLinear(MultiAgentNetBase):
        ...     def _build_single_net(self, *, device, **kwargs):
        ...         return nn.Linear(4, 2, device=device)
        ...     def _pre_forward_check(self, inputs):
        ...         return inputs
        >>> net = PerAgentLinear(n_agents=3, centralized=False, share_params=False, agent_dim=1)
        >>> net(torch.randn(5, 3, 7, 4)).shape   # agents at dim 1, a time dim at 2
        torch.Size([5, 3, 7, 2])
        >>> net.params["weight"].shape
        torch.Size([3, 2, 4])
    """

    _empty_net: nn.Module

    def __init__(
        self,
        *,
        n_agents: int,
        centralized: bool | None = None,
        share_params: bool | None = None,
        agent_dim: int | None = None,
        vmap_randomness: str = "different",
        use_td_params: bool = True,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if "centralised" in kwargs:
            alias = kwargs.pop("centralised")
            if centralized is not None and centralized != alias:
                raise TypeError(f"centralized={centralized} and centralised={alias} disagree")
            centralized = alias
        for name, value in (
            ("centralized", centralized),
            ("share_params", share_params),
            ("agent_dim", agent_dim),
        ):
            if value is None:
                raise TypeError(f"{type(self).__name__} needs the {name} argument")
        if isinstance(n_agents, bool) or not isinstance(n_agents, int) or n_agents < 1:
            raise ValueError(f"n_agents must be a positive int, got {n_agents!r}")
        if vmap_randomness not in _RANDOMNESS:
            raise ValueError(f"vmap_randomness must be one of {_RANDOMNESS}, got {vmap_randomness!r}")
        self.n_agents = n_agents
        self.centralized = bool(centralized)
        self.share_params = bool(share_params)
        self.agent_dim = int(agent_dim)
        self.use_td_params = bool(use_td_params)
        self._vmap_randomness = vmap_randomness
        self._device = device
        self._net_kwargs = dict(kwargs)

        nets = [self._build_single_net(device=device, **kwargs) for _ in range(self._n_copies)]
        tensors = TensorDict.from_module(nets[0])
        self.initialized = not any(_is_lazy(t) for t in tensors.values(True, True))
        if self.share_params:
            self.params = TensorDict.from_module(nets[0], as_module=self.use_td_params)
        else:
            self.params = TensorDict.from_modules(*nets, as_module=self.use_td_params)
        self._keys = [k if isinstance(k, tuple) else (k,) for k in self.params.keys(True, True)]
        self._read_td = params_reader(self._keys)
        with torch.device("meta"):
            template = self._build_single_net(device="meta", **kwargs)
        self._set_template(_strip(template))

    @property
    def _n_copies(self) -> int:
        return 1 if self.share_params else self.n_agents

    @property
    def vmap_randomness(self) -> str:
        """The ``randomness`` given to ``torch.vmap`` over the agents."""
        return self._vmap_randomness

    @abstractmethod
    def _build_single_net(self, *, device: torch.device | str | None, **kwargs: Any) -> nn.Module:
        """One agent's network."""

    @abstractmethod
    def _pre_forward_check(self, inputs: torch.Tensor) -> torch.Tensor:
        """Validates the input; a centralised net returns it with the agents merged."""

    # --- parameters and template ------------------------------------------------------
    def _set_template(self, template: nn.Module) -> None:
        if not self.use_td_params:
            _bind(template, self._keys, list(self.params.values(True, True)))
            self._slots = [(template.get_submodule(".".join(k[:-1])), k[-1]) for k in self._keys]
        self._empty_net = template
        self._on_template()

    def _on_template(self) -> None:
        """Hook for subclasses: the template (or the parameters' structure) changed."""

    def _current(self) -> list[torch.Tensor]:
        """The stacked parameter / buffer tensors in use now (honours ``to_module`` swaps)."""
        if self.use_td_params:
            return self._read_td(child(self, "params"))
        return [getattr(sub, name) for sub, name in self._slots]

    def _call_single(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if not self.use_td_params or is_compiling():
            return torch.func.functional_call(self._empty_net, params, (x,))
        # the template holds plain placeholder attributes: swap them in its __dict__ (a
        # functional_call would restore them as registered parameters of the template)
        slots = [
            (self._empty_net.get_submodule(".".join(k[:-1])).__dict__, k[-1]) for k in self._keys
        ]
        saved = [d[name] for d, name in slots]
        try:
            for (d, name), t in zip(slots, params.values()):
                d[name] = t
            return self._empty_net(x)
        finally:
            for (d, name), t in zip(slots, saved):
                d[name] = t

    def _run_generic(self, x: torch.Tensor, adim: int) -> torch.Tensor:
        names = [".".join(k) for k in self._keys]
        params = dict(zip(names, self._current()))
        # Under torch.export / compile the template's meta placeholders are cleared while
        # functional_call binds the real tensors (dynamo would otherwise trace them as inputs
        # of the vmapped function); they are put back afterwards, even on error.
        cleared = self._clear_placeholders() if is_compiling() else []
        try:
            if self.share_params:
                return self._call_single(params, x)
            out = torch.vmap(
                self._call_single,
                in_dims=(0, None if self.centralized else adim),
                out_dims=0,
                randomness=self._vmap_randomness,
            )(params, x)
            return out.movedim(0, adim)
        finally:
            for sub, name, value in reversed(cleared):
                setattr(sub, name, value)

    def _clear_placeholders(self) -> list[tuple[nn.Module, str, Any]]:
        cleared = []
        for key in self._keys:
            sub = self._empty_net.get_submodule(".".join(key[:-1]))
            name = key[-1]
            if name not in sub._parameters and name not in sub._buffers:
                cleared.append((sub, name, getattr(sub, name)))
                setattr(sub, name, None)
        return cleared

    def _run(self, x: torch.Tensor, adim: int) -> torch.Tensor:
        """The per-agent computation; ``adim`` is the (non-negative) agent dimension."""
        return self._run_generic(x, adim)

    # --- forward -------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # nn.Module.__call__ minus its bookkeeping when no hook is registered on this module
        if not kwargs and not is_compiling() and hook_free(self):
            return self.forward(*args)
        return super().__call__(*args, **kwargs)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Runs every agent's network; several inputs are concatenated on the last dim."""
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)
        adim = self.agent_dim + x.ndim if self.agent_dim < 0 else self.agent_dim
        if not 0 <= adim < x.ndim:
            raise ValueError(
                f"{type(self).__name__}: agent_dim={self.agent_dim} is out of range for an "
                f"input of shape {tuple(x.shape)}"
            )
        x = self._pre_forward_check(x)
        if not self.initialized:
            self._materialize(x, adim)
        out = self._run(x, adim)
        if self.share_params and self.centralized:
            out = out.unsqueeze(adim)
            out = out.expand(*out.shape[:adim], self.n_agents, *out.shape[adim + 1 :])
        if out.ndim <= adim or out.shape[adim] != self.n_agents:
            raise ValueError(
                f"{type(self).__name__} expected an output with {self.n_agents} agents at dim "
                f"{adim}, got shape {tuple(out.shape)}"
            )
        return out

    @torch.no_grad()
    def _materialize(self, x: torch.Tensor, adim: int) -> None:
        """First call with lazy layers: sizes inferred from ``x``, weights drawn per agent."""
        nets = [
            self._build_single_net(device=self._device, **self._net_kwargs)
            for _ in range(self._n_copies)
        ]
        for i, net in enumerate(nets):
            net(x if self.centralized else x.select(adim, i))
        fresh = [TensorDict.from_module(net) for net in nets]
        for key, target in zip(self._keys, self._current()):
            values = [f.get(key) for f in fresh]
            value = values[0] if self.share_params else torch.stack(values)
            if _is_lazy(target):
                UninitializedTensorMixin.materialize(target, value.shape, value.device, value.dtype)
            target.data.copy_(value)
        if self.use_td_params:
            self._read_td = params_reader(self._keys)  # drop any stale cache of the lazy leaves
        self.initialized = True
        self._set_template(_strip(nets[0]))
        # the fresh nets only fixed the shapes: draw the weights the way reset_parameters does
        self.reset_parameters()

    # --- stateful views, reset, repr -----------------------------------------------------
    def get_stateful_net(self, copy: bool = True) -> nn.Module:
        """The template with the stacked parameters bound to it (the same tensors).

        In-place changes (``torch.nn.init.*_``, ``.data.mul_``) reach this module at once;
        after an out-of-place change call :meth:`from_stateful_net`. With ``copy=False`` the
        template itself is bound and returned.
        """
        net = _copy_module(self._empty_net) if copy else self._empty_net
        _bind(net, self._keys, self._current())
        return net

    def from_stateful_net(self, stateful_net: nn.Module) -> None:
        """Copies ``stateful_net``'s tensors (same names and shapes) into the parameters."""
        given = TensorDict.from_module(stateful_net)
        theirs = {k if isinstance(k, tuple) else (k,) for k in given.keys(True, True)}
        ours = set(self._keys)
        if theirs != ours:
            raise RuntimeError(
                f"from_stateful_net: keys differ; only in this module: {sorted(ours - theirs)}, "
                f"only in the given module: {sorted(theirs - ours)}"
            )
        with torch.no_grad():
            for key, target in zip(self._keys, self._current()):
                value = given.get(key)
                if value.shape != target.shape:
                    raise RuntimeError(
                        f"from_stateful_net: {'.'.join(key)} has shape {tuple(value.shape)}, "
                        f"expected {tuple(target.shape)}"
                    )
                target.data.copy_(value.data)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Redraws every agent's parameters with its layers' own ``reset_parameters``.

        Each agent gets a fresh independent draw (written in place into the stacked
        tensors, so optimisers keep their references).
        """
        if not self.initialized:
            return  # lazy weights are drawn at the first call
        net = _strip(_copy_module(self._empty_net))
        current = [t.data for t in self._current()]
        for i in range(self._n_copies):
            _bind(net, self._keys, current if self.share_params else [t[i] for t in current])
            resettable = [m for m in net.modules() if callable(getattr(m, "reset_parameters", None))]
            if not resettable:
                warnings.warn(
                    f"{type(self).__name__}.reset_parameters: no layer of the agent network "
                    "has a reset_parameters method; nothing was reset",
                    stacklevel=2,
                )
                return
            for m in resettable:
                m.reset_parameters()

    def __repr__(self) -> str:
        net = self.get_stateful_net(copy=True)
        fields = [
            indent(str(net), 4 * " "),
            f"    n_agents={self.n_agents}",
            f"    share_params={self.share_params}",
            f"    centralized={self.centralized}",
            f"    agent_dim={self.agent_dim}",
        ]
        return f"{type(self).__name__}(\n" + ",\n".join(fields) + ")"

    @staticmethod
    def vmap_func_module(
        module: nn.Module,
        in_dims: Any = 0,
        out_dims: Any = 0,
        randomness: str = "error",
        *,
        chunk_size: int | None = None,
    ) -> Any:
        """``torch.vmap`` of ``(params, *inputs) -> module(*inputs)`` with ``params`` bound.

        ``params`` is a ``TensorDict`` (or a dict keyed by dotted names) of stacked tensors.
        """

        def call(params: Any, *inputs: torch.Tensor) -> torch.Tensor:
            if not isinstance(params, dict):
                params = params.flatten_keys(".").to_dict()
            return torch.func.functional_call(module, params, inputs)

        return torch.vmap(
            call, in_dims=in_dims, out_dims=out_dims, randomness=randomness, chunk_size=chunk_size
        )


def _copy_module(net: nn.Module) -> nn.Module:
    try:
        return copy.deepcopy(net)
    except RuntimeError as err:  # pragma: no cover - exotic modules
        raise RuntimeError(
            f"could not copy the agent network ({err}); use get_stateful_net(copy=False)"
        ) from err
