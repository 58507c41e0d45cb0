"""The body a recipe puts before its heads, chosen from the observation space in one place.

Every recipe asks :func:`build_trunk` for the network that maps an observation
to a feature vector; the heads (policy, value, Q) then only need its width.
Which body that is depends on the observation space alone (``obs_kind``):

- ``"vector"``: a flat ``Box`` -> an ``MLP`` over the flattened observation.

Other kinds (images) are added here, as further branches of this one
function, so the algorithm files never test for them.

:func:`trunk_module` turns the body into the TensorDict module the heads read
from, optionally followed by a memory layer (``recurrent="lstm"`` or
``"gru"``: a :class:`~tdrl.modules.LSTMModule` / :class:`~tdrl.modules.GRUModule`
over the body's features). A recurrent trunk reads the recurrent state and
``is_init`` besides the observation and writes the next state under
``("next", key)``; :mod:`tdrl.recipes.memory` carries that state for the algorithms.

Examples:
    >>> import gymnasium as gym
    >>> body = build_trunk(gym.spaces.Box(-1, 1, (3,)), hidden=(16, 8), activation="tanh")
    >>> body.kind, body.features
    ('vector', 8)
    >>> body.net(torch.zeros(5, 3)).shape
    torch.Size([5, 8])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from tdrl.modules import MLP, GRUModule, LSTMModule, SafeModule, SafeSequential
from tdrl.recipes.config import TrainError

__all__ = ["ACTIVATIONS", "RECURRENT", "Trunk", "build_trunk", "obs_kind", "trunk_module"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
#: the memory layers a trunk can end with ("" = none)
RECURRENT: dict[str, type] = {"lstm": LSTMModule, "gru": GRUModule}


class Trunk(NamedTuple):
    """A body network and what the heads need to know about it."""

    net: nn.Module  # observation tensor [..., *obs_shape] -> features [..., features]
    features: int  # width of the feature vector
    kind: str  # what obs_kind() said of the observation space


def obs_kind(obs_space: Any) -> str:
    """What body an observation space needs: ``"vector"`` (raises ``TrainError`` otherwise).

    Examples:
        >>> import gymnasium as gym
        >>> obs_kind(gym.spaces.Box(-1, 1, (4,)))
        'vector'
        >>> obs_kind(gym.spaces.Discrete(3))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: observation space Discrete(3) is not supported: the recipes take a Box
    """
    shape = getattr(obs_space, "shape", None)
    if type(obs_space).__name__ != "Box" or shape is None:
        raise TrainError(f"observation space {obs_space} is not supported: the recipes take a Box")
    return "vector"


def build_trunk(
    obs_space: Any,
    *,
    hidden: Sequence[int],
    activation: str,
    activate_last: bool = True,
) -> Trunk:
    """The body for ``obs_space``: see the module docstring for the kinds.

    ``hidden`` lists the layer widths (the last one is the feature width);
    ``activation`` is one of ``ACTIVATIONS``.

    Examples:
        >>> import gymnasium as gym
        >>> build_trunk(gym.spaces.Box(-1, 1, (2, 3)), hidden=(4,), activation="relu").net(
        ...     torch.zeros(7, 2, 3)).shape
        torch.Size([7, 4])
    """
    kind = obs_kind(obs_space)
    if activation not in ACTIVATIONS:
        raise TrainError(f"activation {activation!r}: choose from {sorted(ACTIVATIONS)}")
    widths = list(hidden)
    if not widths:
        raise TrainError("the trunk needs at least one layer width (hidden=())")
    obs_dim = int(np.prod(obs_space.shape))
    mlp = MLP(
        in_features=obs_dim,
        out_features=widths[-1],
        num_cells=widths[:-1],
        activation_class=ACTIVATIONS[activation],
        activate_last_layer=activate_last,
    )
    net: nn.Module = mlp if len(obs_space.shape) == 1 else nn.Sequential(_Flatten(len(obs_space.shape)), mlp)
    return Trunk(net, widths[-1], kind)


class _Flatten(nn.Module):
    """Flatten the last ``ndim`` dimensions (an observation of any rank) into one."""

    def __init__(self, ndim: int) -> None:
        super().__init__()
        self.ndim = ndim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(-self.ndim)


def trunk_module(
    body: Trunk,
    in_key: str,
    out_key: str,
    *,
    recurrent: str = "",
    rnn_hidden: int = 64,
) -> tuple[Any, int]:
    """The body as a TensorDict module ``in_key -> out_key``, and the width of ``out_key``.

    With ``recurrent`` (a key of :data:`RECURRENT`), the body writes
    ``"features"`` and an LSTM / GRU of ``rnn_hidden`` units (one layer, default
    state keys) turns them into ``out_key``: the module then also reads the
    recurrent state and ``is_init`` and writes ``("next", <state key>)``.

    Examples:
        >>> import gymnasium as gym
        >>> from tensordict import TensorDict
        >>> body = build_trunk(gym.spaces.Box(-1, 1, (3,)), hidden=(8,), activation="tanh")
        >>> trunk, width = trunk_module(body, "observation", "hidden", recurrent="lstm",
        ...                             rnn_hidden=5)
        >>> width, trunk.in_keys
        (5, ['observation', 'recurrent_state_h', 'recurrent_state_c', 'is_init'])
        >>> td = TensorDict(observation=torch.zeros(2, 3), is_init=torch.ones(2, dtype=torch.bool),
        ...                 batch_size=[2])
        >>> trunk(td)["next", "recurrent_state_h"].shape
        torch.Size([2, 1, 5])
        >>> trunk_module(body, "observation", "hidden", recurrent="rnn")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: recurrent='rnn': choose from '' (none), 'gru', 'lstm'
    """
    if not recurrent:
        return SafeModule(body.net, in_keys=[in_key], out_keys=[out_key]), body.features
    if recurrent not in RECURRENT:
        raise TrainError(f"recurrent={recurrent!r}: choose from '' (none), "
                         + ", ".join(repr(k) for k in sorted(RECURRENT)))
    if rnn_hidden <= 0:
        raise TrainError(f"rnn_hidden must be > 0, got {rnn_hidden}")
    features = SafeModule(body.net, in_keys=[in_key], out_keys=["features"])
    memory = RECURRENT[recurrent](body.features, rnn_hidden, in_key="features", out_key=out_key)
    return SafeSequential(features, memory), rnn_hidden
