"""What a policy remembers between env steps, and how an on-policy update replays it.

An algorithm asks :func:`make_memory` for the memory of its network once and
then never tests for recurrence itself:

- :class:`NoMemory` (a feed-forward network): the step input is the
  observation alone, rollouts are replayed as shuffled single steps.
- :class:`RecurrentMemory` (a network holding :class:`~tdrl.modules.LSTMModule`
  / :class:`~tdrl.modules.GRUModule` layers): the step input adds the recurrent
  state of every env and ``is_init`` (True on the first step of an episode, so
  the layer restarts from zeros there); after each step the state the network
  wrote under ``("next", key)`` is carried. Rollouts (``[T, N]``, time-major)
  are replayed as whole env sequences of ``seq_len`` steps (truncated BPTT):
  each sequence starts from the state stored at its first step, and restarts
  from zeros at every ``is_init`` inside it. ``batch_size`` counts steps.

:class:`PolicyAct` runs a deterministic policy step by step on numpy
observations with the same memory (evaluation, ``tdrl eval``); ``reset(done)``
forgets the episodes that ended.

Examples:
    >>> from tdrl.modules import LSTMModule
    >>> memory = make_memory(LSTMModule(3, 4, in_key="x", out_key="y"), seq_len=2)
    >>> memory.keys
    ('recurrent_state_h', 'recurrent_state_c', 'is_init')
    >>> td = memory.inputs(torch.zeros(5, 3))
    >>> td["recurrent_state_h"].shape, bool(td["is_init"].all())
    (torch.Size([5, 1, 4]), True)
    >>> make_memory(torch.nn.Linear(2, 2)).keys
    ()
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules.tensordict_module.rnn_base import RecurrentModuleBase

__all__ = ["NoMemory", "PolicyAct", "RecurrentMemory", "ResetFree", "make_memory"]


def make_memory(module: nn.Module, seq_len: int = 0) -> NoMemory | RecurrentMemory:
    """The memory of ``module``: :class:`RecurrentMemory` over its recurrent layers, if any.

    ``seq_len``: the length of the replayed sequences (0: the rollout's whole columns).

    Examples:
        >>> type(make_memory(torch.nn.Linear(2, 2))).__name__
        'NoMemory'
    """
    layers = [m for m in module.modules() if isinstance(m, RecurrentModuleBase)]
    return RecurrentMemory(layers, seq_len) if layers else NoMemory()


class NoMemory:
    """A feed-forward network's (empty) memory: observations in, single steps replayed.

    Examples:
        >>> memory = NoMemory()
        >>> memory.inputs(torch.zeros(2, 3)).keys()
        _StringKeys(dict_keys(['observation']))
        >>> memory.minibatches(4, 2, 8, "cpu")
        [None]
    """

    keys: tuple = ()  # per-step entries a rollout stores for the replay (besides its own)

    def inputs(self, obs: torch.Tensor, rows: Any = None) -> TensorDict:
        """The network's input for a batch of observations (``rows``: see RecurrentMemory)."""
        return TensorDict({"observation": obs}, batch_size=obs.shape[:1], device=obs.device)

    def advance(self, td: TensorDictBase, done: Any = None) -> None:
        """Carry what the network wrote for the next step (nothing here)."""

    def reset(self, done: Any = None) -> None:
        """Forget ended episodes (nothing to forget)."""

    def minibatches(
        self, n_steps: int, n_envs: int, batch_size: int, device: Any
    ) -> list[torch.Tensor | None]:
        """One epoch's minibatches of the flattened rollout: shuffled step indices, or
        ``[None]`` (the whole rollout as it is) when ``batch_size`` covers it."""
        n = n_steps * n_envs
        if batch_size >= n:
            return [None]
        perm = torch.randperm(n, device=device)
        return [perm[i : i + batch_size] for i in range(0, n, batch_size)]

    def replay(self, flat: TensorDictBase, idx: torch.Tensor | None, key: str,
               obs: torch.Tensor) -> TensorDict:
        """The trunk's input for the minibatch ``idx`` of ``flat`` (``obs`` = ``flat[key][idx]``)."""
        return TensorDict({key: obs}, batch_size=obs.shape[:1])

    def export_io(self, policy: nn.Module, obs: torch.Tensor,
                  dtype: torch.dtype = torch.float32) -> tuple[Any, Any, Any]:
        """What ``tdrl export`` traces in ``dtype``: (module, example input, out_keys or None)."""
        return policy, obs, None

    def describe(self) -> list[dict[str, Any]]:
        """The recurrent state's inputs and outputs, for an export's sidecar (none here)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class RecurrentMemory(NoMemory):
    """The recurrent state of a batch of envs, carried step to step, and sequence replay.

    Examples:
        >>> from tdrl.modules import GRUModule
        >>> memory = RecurrentMemory([GRUModule(3, 4, in_key="x", out_key="y")], seq_len=2)
        >>> idx = memory.whole(n_steps=4, n_envs=2, device="cpu")
        >>> idx.tolist()  # time-major flat indices: env 0 steps 0-1, 2-3, then env 1
        [[0, 2], [4, 6], [1, 3], [5, 7]]
    """

    def __init__(self, layers: list[RecurrentModuleBase], seq_len: int = 0) -> None:
        self.layers = layers
        self.seq_len = int(seq_len)
        self.state_keys = [k for m in layers for k in m.in_keys[1:-1]]
        self.next_keys = [("next", k) if isinstance(k, str) else ("next", *k)
                          for k in self.state_keys]
        self.keys = (*self.state_keys, "is_init")
        self.state: TensorDict | None = None
        self.is_init: torch.Tensor | None = None

    def start(self, n: int, device: Any) -> None:
        """Zero state for ``n`` envs, every one at an episode start."""
        state = TensorDict({}, batch_size=[n], device=device)
        for m in self.layers:
            state.update(m.initial_state([n], device=device))
        self.state = state
        self.is_init = torch.ones(n, dtype=torch.bool, device=device)

    def inputs(self, obs: torch.Tensor, rows: Any = None) -> TensorDict:
        """Observation, state and ``is_init`` of every env; with ``rows`` (a mask or index of the
        envs), the state of those envs continuing into ``obs`` (their episode's final
        observation, after :meth:`advance`): ``is_init`` False."""
        n = obs.shape[0]
        if rows is None:
            if self.state is None or self.state.batch_size[0] != n:
                self.start(n, obs.device)
            state, is_init = self.state, self.is_init
        else:
            rows = torch.as_tensor(rows, device=obs.device)
            state = self.state[rows]
            is_init = torch.zeros(n, dtype=torch.bool, device=obs.device)
        td = TensorDict({"observation": obs, "is_init": is_init}, batch_size=[n],
                        device=obs.device)
        # the state in the observations' float dtype (float32 for uint8 frames)
        dtype = obs.dtype if obs.is_floating_point() else torch.float32
        for k in self.state_keys:
            td.set(k, state.get(k).to(dtype))
        return td

    def advance(self, td: TensorDictBase, done: Any = None) -> None:
        """Carry the next state the network wrote into ``td``; ``done`` (bool per env) marks
        the envs whose episode ended (their next step starts from zeros)."""
        state = TensorDict({}, batch_size=td.batch_size, device=td.device)
        for k, nk in zip(self.state_keys, self.next_keys):  # carried in float32, as observations
            state.set(k, td.get(nk).to(torch.float32))
        self.state = state
        if done is None:
            self.is_init = torch.zeros(td.batch_size[0], dtype=torch.bool, device=td.device)
        else:
            self.is_init = torch.as_tensor(np.asarray(done), dtype=torch.bool, device=td.device)

    def reset(self, done: Any = None) -> None:
        """Forget every env (``done=None``: start over at the next call) or the ended ones."""
        if done is None or self.is_init is None:
            self.state = self.is_init = None
            return
        self.is_init = self.is_init | torch.as_tensor(np.asarray(done), dtype=torch.bool,
                                                      device=self.is_init.device)

    def _length(self, n_steps: int) -> int:
        return self.seq_len or n_steps

    def whole(self, n_steps: int, n_envs: int, device: Any) -> torch.Tensor:
        length = self._length(n_steps)
        t = torch.arange(n_steps, device=device).view(n_steps // length, length)  # [chunks, L]
        env = torch.arange(n_envs, device=device)
        return (t[None] * n_envs + env[:, None, None]).reshape(-1, length)  # [N * chunks, L]

    def minibatches(
        self, n_steps: int, n_envs: int, batch_size: int, device: Any
    ) -> list[torch.Tensor]:
        """Shuffled whole sequences, ``batch_size // seq_len`` of them per minibatch (each an
        index ``[sequences, seq_len]`` into the time-major flattened rollout)."""
        seqs = self.whole(n_steps, n_envs, device)
        per = max(1, batch_size // seqs.shape[1])
        if per >= seqs.shape[0]:
            return [seqs]
        perm = torch.randperm(seqs.shape[0], device=device)
        return [seqs[perm[i : i + per]] for i in range(0, seqs.shape[0], per)]

    def replay(self, flat: TensorDictBase, idx: torch.Tensor | None, key: str,
               obs: torch.Tensor) -> TensorDict:
        """``[sequences, seq_len]``: the stored state (read at each sequence's first step) and
        ``is_init`` along ``obs``; run the trunk under ``set_recurrent_mode(True)``."""
        td = TensorDict({key: obs}, batch_size=idx.shape)
        for k in self.keys:
            td.set(k, flat.get(k)[idx])
        return td

    def export_io(self, policy: nn.Module, obs: torch.Tensor,
                  dtype: torch.dtype = torch.float32) -> tuple[Any, Any, Any]:
        """The policy without ``is_init`` (:class:`ResetFree`), an example of observation and zero
        state, and the outputs: the action, then each next state. In float64 the layers run
        as tdrl's python LSTM/GRU (same weights; onnxruntime's LSTM/GRU kernels are float32)."""
        example = self.inputs(obs).exclude("is_init")
        if dtype == torch.float64:
            policy = copy.deepcopy(policy)
            for m in policy.modules():
                if isinstance(m, RecurrentModuleBase):
                    m.make_python_based()
        return ResetFree(policy), example, ["action", *self.next_keys]

    def describe(self) -> list[dict[str, Any]]:
        """Per state: its input name, the output name of its next value, its shape (no batch)."""
        out = []
        for m in self.layers:
            zero = m.initial_state([1])
            for k in m.in_keys[1:-1]:
                name = k if isinstance(k, str) else ".".join(k)
                out.append({"input": name, "output": f"next.{name}",
                            "shape": list(zero.get(k).shape[1:])})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"state": None if self.state is None else self.state.cpu(),
                "is_init": None if self.is_init is None else self.is_init.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state or state.get("state") is None:
            self.state = self.is_init = None
            return
        device = self.state.device if self.state is not None else None
        self.state = state["state"].to(device) if device is not None else state["state"]
        self.is_init = state["is_init"].to(self.state.device)


class PolicyAct:
    """``obs batch (numpy) -> env actions``: a policy under DETERMINISTIC exploration, step by
    step, carrying its memory; ``reset(done)`` forgets ended episodes (``None``: all).

    Observations become float32 tensors, then ``dtype`` (``uint8`` frames stay ``uint8``);
    ``convert`` turns the action tensor into the env's format.

    Examples:
        >>> from tdrl.modules import LSTMModule, SafeModule, SafeSequential
        >>> policy = SafeSequential(LSTMModule(3, 4, in_key="observation", out_key="h"),
        ...                         SafeModule(nn.Linear(4, 1), in_keys=["h"], out_keys=["action"]))
        >>> act = PolicyAct(policy, "cpu", lambda a: a.numpy())
        >>> first = act(np.ones((2, 3), dtype=np.float32))
        >>> second = act(np.ones((2, 3), dtype=np.float32))  # remembers the first step
        >>> bool((first != second).all())
        True
        >>> act.reset()
        >>> bool((act(np.ones((2, 3), dtype=np.float32)) == first).all())
        True
    """

    def __init__(self, policy: nn.Module, device: Any,
                 convert: Callable[[torch.Tensor], np.ndarray],
                 dtype: torch.dtype = torch.float32) -> None:
        self.policy = policy
        self.device = torch.device(device)
        self.convert = convert
        self.dtype = dtype
        self.memory = make_memory(policy)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, device=self.device)
        if obs_t.dtype != torch.uint8:  # frames stay uint8: image networks scale them
            obs_t = obs_t.to(torch.float32).to(self.dtype)
        td = self.memory.inputs(obs_t)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            td = self.policy(td)
        self.memory.advance(td)
        return self.convert(td.get("action"))

    def reset(self, done: Any = None) -> None:
        self.memory.reset(done)


class ResetFree(TensorDictModuleBase):
    """``policy`` with ``is_init`` False everywhere: callers reset the state themselves (zeros at
    an episode's first step). What ``tdrl export`` traces: inputs observation + state.

    Examples:
        >>> from tdrl.modules import GRUModule
        >>> gru = ResetFree(GRUModule(3, 4, in_key="observation", out_key="y"))
        >>> gru.in_keys, gru.out_keys
        (['observation', 'recurrent_state'], ['y', ('next', 'recurrent_state')])
    """

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        self.in_keys = [k for k in policy.in_keys if k != "is_init"]
        self.out_keys = list(policy.out_keys)

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        td.set("is_init", torch.zeros(td.batch_size, dtype=torch.bool, device=td.device))
        return self.policy(td)
