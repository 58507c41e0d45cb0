"""The body a recipe puts before its heads, chosen from the observation space in one place.

Every recipe asks :func:`build_trunk` for the network that maps an observation
to a feature vector; the heads (policy, value, Q) then only need its width.
Which body that is depends on the observation space alone (``obs_kind``):

- ``"vector"``: a flat ``Box`` -> an ``MLP`` over the flattened observation.
- ``"image"``: a 3-D ``uint8`` ``Box``, ``(C, H, W)`` or ``(H, W, C)`` -> a
  :class:`~tdrl.modules.ConvNet` then dense layers (``hidden``). The network
  takes the raw ``uint8`` frames: :class:`ScaleFrames` divides them by the
  space's ``high`` (255, or 1 for MinAtar's 0/1 planes) and moves a trailing
  channel axis first. The convolutions are :data:`CNN_SPECS` ``"nature"`` (the
  DQN paper's 32@8x8/4, 64@4x4/2, 64@3x3/1, for 84x84 Atari frames) when both
  sides are >= 36 pixels, else ``"minatar"`` (16@3x3/1, the MinAtar paper's).

Further kinds are added here, as further branches of this one function, so the
algorithm files never test for them.

:func:`trunk_module` turns the body into the TensorDict module the heads read
from, optionally followed by a memory layer (``recurrent="lstm"`` or
``"gru"``: a :class:`~tdrl.modules.LSTMModule` / :class:`~tdrl.modules.GRUModule`
over the body's features, for either kind). A recurrent trunk reads the recurrent
state and ``is_init`` besides the observation and writes the next state under
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

from tdrl.modules import MLP, ConvNet, GRUModule, LSTMModule, SafeModule, SafeSequential
from tdrl.recipes.config import TrainError

__all__ = ["ACTIVATIONS", "CNN_SPECS", "RECURRENT", "ScaleFrames", "Trunk", "build_trunk",
           "cnn_for", "image_features", "image_layout", "obs_kind", "trunk_module"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
#: the memory layers a trunk can end with ("" = none)
RECURRENT: dict[str, type] = {"lstm": LSTMModule, "gru": GRUModule}

# The convolutions of the "image" trunk (ConvNet arguments; ReLU after each).
CNN_SPECS: dict[str, dict[str, list[int]]] = {
    "nature": {"num_cells": [32, 64, 64], "kernel_sizes": [8, 4, 3], "strides": [4, 2, 1]},
    "minatar": {"num_cells": [16], "kernel_sizes": [3], "strides": [1]},
}


class Trunk(NamedTuple):
    """A body network and what the heads need to know about it."""

    net: nn.Module  # observation tensor [..., *obs_shape] -> features [..., features]
    features: int  # width of the feature vector
    kind: str  # what obs_kind() said of the observation space


def obs_kind(obs_space: Any) -> str:
    """What body an observation space needs: ``"image"`` (3-D ``uint8`` Box) or ``"vector"``.

    Raises ``TrainError`` for anything but a ``Box``.

    Examples:
        >>> import gymnasium as gym
        >>> obs_kind(gym.spaces.Box(-1, 1, (4,))), obs_kind(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8))
        ('vector', 'image')
        >>> obs_kind(gym.spaces.Discrete(3))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: observation space Discrete(3) is not supported: the recipes take a Box
    """
    shape = getattr(obs_space, "shape", None)
    if type(obs_space).__name__ != "Box" or shape is None:
        raise TrainError(f"observation space {obs_space} is not supported: the recipes take a Box")
    if len(shape) == 3 and np.dtype(obs_space.dtype) == np.uint8:
        return "image"
    return "vector"


def image_layout(shape: Sequence[int]) -> tuple[bool, tuple[int, int, int]]:
    """``(channels_last, (C, H, W))`` of a 3-D image shape.

    Channels come first unless the last axis is 1, 3 or 4 long and the first is
    longer than 4 (an ``(H, W, C)`` frame such as ``(210, 160, 3)``); tdrl's
    pixel envs give ``(C, H, W)``.

    Examples:
        >>> image_layout((4, 84, 84)), image_layout((210, 160, 3)), image_layout((10, 10, 10))
        ((False, (4, 84, 84)), (True, (3, 210, 160)), (False, (10, 10, 10)))
    """
    a, b, c = (int(v) for v in shape)
    if c in (1, 3, 4) and a > 4:
        return True, (c, a, b)
    return False, (a, b, c)


def cnn_for(obs_space: Any) -> str:
    """The :data:`CNN_SPECS` entry for an image space: ``"nature"`` from 36x36 up, else ``"minatar"``.

    Examples:
        >>> import gymnasium as gym
        >>> cnn_for(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)), cnn_for(gym.spaces.Box(0, 1, (4, 10, 10), np.uint8))
        ('nature', 'minatar')
    """
    _, (_, h, w) = image_layout(obs_space.shape)
    return "nature" if min(h, w) >= 36 else "minatar"


class ScaleFrames(nn.Module):
    """``uint8`` frames -> float32 in ``[0, 1]`` (divided by ``high``), channels first.

    Any leading batch dimensions are kept; ``channels_last`` moves the last axis
    before the two spatial ones. Float inputs are scaled the same way. With
    ``nhwc_out`` a batch of frames (a 4-D input) comes out in channels-last memory
    format (the same values and shape, NHWC strides): oneDNN's convolutions run
    faster on it for large frames (the Nature CNN on 84x84 frames: about 15% less
    time forward + backward on one thread; not on MinAtar's 10x10).

    Examples:
        >>> frames = torch.full((2, 10, 10, 4), 255, dtype=torch.uint8)
        >>> out = ScaleFrames(255.0, channels_last=True)(frames)
        >>> out.shape, out.dtype, out.max().item()
        (torch.Size([2, 4, 10, 10]), torch.float32, 1.0)
        >>> out = ScaleFrames(255.0, nhwc_out=True)(torch.zeros(2, 4, 84, 84, dtype=torch.uint8))
        >>> out.shape, out.is_contiguous(memory_format=torch.channels_last)
        (torch.Size([2, 4, 84, 84]), True)
    """

    def __init__(self, high: float, channels_last: bool = False, nhwc_out: bool = False) -> None:
        super().__init__()
        if not high > 0:
            raise TrainError(f"image observations need a positive high, got {high}")
        self.scale = 1.0 / float(high)
        self.channels_last = channels_last
        self.nhwc_out = nhwc_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.movedim(-1, -3)
        if self.nhwc_out and x.ndim == 4:  # (copy: never scale the caller's tensor in place)
            x = x.to(torch.float32, memory_format=torch.channels_last, copy=True)
            return x if self.scale == 1.0 else x.mul_(self.scale)
        if self.scale == 1.0:  # MinAtar's 0/1 planes: the cast alone is the same values
            return x.to(torch.float32, copy=True)
        return x.to(torch.float32) * self.scale

    def extra_repr(self) -> str:
        nhwc = ", nhwc_out=True" if self.nhwc_out else ""
        return f"scale={self.scale:.6g}, channels_last={self.channels_last}{nhwc}"


def _image_high(obs_space: Any) -> float:
    """The largest value the frames take (the space's ``high``, 255 when unbounded)."""
    high = float(np.max(obs_space.high))
    return high if 0 < high < 256 else 255.0


def image_features(obs_space: Any, cnn: str = "auto") -> tuple[nn.Module, int]:
    """``(ScaleFrames + ConvNet, output width)`` for an image space (``cnn``: a :data:`CNN_SPECS` key).

    Examples:
        >>> import gymnasium as gym
        >>> net, width = image_features(gym.spaces.Box(0, 1, (4, 10, 10), np.uint8))
        >>> width, net(torch.zeros(3, 4, 10, 10, dtype=torch.uint8)).shape
        (1024, torch.Size([3, 1024]))
    """
    name = cnn_for(obs_space) if cnn == "auto" else cnn
    if name not in CNN_SPECS:
        raise TrainError(f"--cnn {cnn!r}: choose from auto, {', '.join(CNN_SPECS)}")
    channels_last, (c, h, w) = image_layout(obs_space.shape)
    spec = CNN_SPECS[name]
    frame = f"{h}x{w}"
    for k, s in zip(spec["kernel_sizes"], spec["strides"]):
        if h < k or w < k:  # the frame (as the earlier layers leave it) is smaller than a kernel
            raise TrainError(
                f"the {name!r} CNN does not fit {frame} frames (observation shape "
                f"{tuple(obs_space.shape)}); choose --cnn minatar for small frames"
            )
        h, w = (h - k) // s + 1, (w - k) // s + 1
    conv = ConvNet(in_features=c, activation_class=nn.ReLU, **spec)
    # the Nature CNN's convolutions run faster on channels-last (NHWC) batches
    net = nn.Sequential(ScaleFrames(_image_high(obs_space), channels_last,
                                    nhwc_out=name == "nature"), conv)
    return net, spec["num_cells"][-1] * h * w


def build_trunk(
    obs_space: Any,
    *,
    hidden: Sequence[int],
    activation: str,
    activate_last: bool = True,
    cnn: str = "auto",
) -> Trunk:
    """The body for ``obs_space``: see the module docstring for the kinds.

    ``hidden`` lists the layer widths (the last one is the feature width; for
    images, the dense layers after the convolutions); ``activation`` is one of
    ``ACTIVATIONS``; ``cnn`` picks the convolutions of an image trunk.

    Examples:
        >>> import gymnasium as gym
        >>> build_trunk(gym.spaces.Box(-1, 1, (2, 3)), hidden=(4,), activation="relu").net(
        ...     torch.zeros(7, 2, 3)).shape
        torch.Size([7, 4])
        >>> body = build_trunk(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), hidden=(512,),
        ...                    activation="relu")
        >>> body.kind, body.net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape
        ('image', torch.Size([2, 512]))
    """
    kind = obs_kind(obs_space)
    if activation not in ACTIVATIONS:
        raise TrainError(f"activation {activation!r}: choose from {sorted(ACTIVATIONS)}")
    widths = list(hidden)
    if not widths:
        raise TrainError("the trunk needs at least one layer width (hidden=())")
    if kind == "image":
        conv, width = image_features(obs_space, cnn)
        dense = MLP(
            in_features=width,
            out_features=widths[-1],
            num_cells=widths[:-1],
            activation_class=ACTIVATIONS[activation],
            activate_last_layer=activate_last,
        )
        return Trunk(nn.Sequential(conv, dense), widths[-1], kind)
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
