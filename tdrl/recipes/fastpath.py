"""The recipes' own networks as plain tensor functions, for the training hot paths.

A recipe that built a network itself (not a user's ``--module``) knows it is a
chain of ``nn.Linear`` layers and activations, after the image trunk's
``ScaleFrames`` and ``ConvNet`` for pixel observations. :func:`plain_forward`
turns such a chain into a function that calls ``F.conv2d``, ``F.linear`` and the
activation functions on the very same parameter tensors: the same ops in the same
order, without one ``nn.Module`` call per layer. The modules, their parameters and
``state_dict`` are untouched (the optimizer steps and ``load_state_dict`` write into the same tensors), so the
acting and learning hot paths can use the function while everything else
(evaluation, export, checkpoints) goes through the modules. Forward hooks on
these internal networks are not run on the fast path.

Examples:
    >>> import torch
    >>> from tdrl.modules import MLP
    >>> net = MLP(in_features=3, out_features=2, num_cells=[8], activation_class=torch.nn.Tanh)
    >>> fn = plain_forward(net)
    >>> x = torch.randn(5, 3)
    >>> torch.equal(fn(x), net(x))
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tdrl.modules import ConvNet
from tdrl.modules.models.utils import SquashDims
from tdrl.recipes.trunks import ScaleFrames

__all__ = ["plain_forward"]

Fn = Callable[[torch.Tensor], torch.Tensor]
_IMAGE_STEPS = (ScaleFrames, ConvNet)  # the image trunk's layers before the dense ones


def _activation(m: nn.Module) -> Fn | None:
    """The function an activation module computes, or None for anything else."""
    if type(m) is nn.ReLU:
        return torch.relu
    if type(m) is nn.Tanh:
        return torch.tanh
    if type(m) is nn.ELU:
        alpha = m.alpha
        return lambda x: F.elu(x, alpha)
    return None


# in place on a Linear's fresh output (nothing else holds it; the Linear's backward does not
# read it): the same values and gradients without one allocation per layer
_IN_PLACE = {torch.relu: torch.relu_, torch.tanh: torch.tanh_}


def _layers(net: nn.Module) -> list[nn.Module] | None:
    if type(net) in _IMAGE_STEPS:  # one step each (a ConvNet is a Sequential)
        return [net] if _image_step(net) is not None else None
    if isinstance(net, nn.Sequential):
        if getattr(net, "_out_shape", None) is not None:  # an MLP reshaping its output
            return None
        out: list[nn.Module] = []
        for child in net:
            sub = _layers(child)
            if sub is None:
                return None
            out.extend(sub)
        return out
    if type(net) is nn.Linear or _activation(net) is not None:
        return [net]
    return None


def _conv(m: nn.Conv2d) -> Fn | None:
    """``nn.Conv2d.forward`` (zero padding) as a function of the same parameters."""
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        return None
    w, b, stride, padding, dilation, groups = (m.weight, m.bias, m.stride, m.padding,
                                               m.dilation, m.groups)
    return lambda x: F.conv2d(x, w, b, stride, padding, dilation, groups)


def _conv_net(net: ConvNet) -> Fn | None:
    """``ConvNet.forward``: its Conv2d / activation / ``SquashDims`` layers on one batch dim."""
    fns: list[Fn] = []
    for m in net:
        if type(m) is nn.Conv2d:
            fn = _conv(m)
        elif type(m) is SquashDims:
            fn = (lambda n: lambda x: x.flatten(-n, -1))(m.ndims_in)
        else:
            fn = _activation(m)
        if fn is None:
            return None
        fns.append(fn)

    def forward(x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[:-3]
        y = x.flatten(0, len(batch) - 1) if len(batch) > 1 else x
        for fn in fns:
            y = fn(y)
        return y.unflatten(0, batch) if len(batch) > 1 else y

    return forward


def _image_step(m: nn.Module) -> Fn | None:
    """The image trunk's layers before the dense ones: ``ScaleFrames`` and ``ConvNet``."""
    if type(m) is ScaleFrames:  # (no parameters: its own forward, one call)
        return m.forward
    if type(m) is ConvNet:
        return _conv_net(m)
    return None


def plain_forward(net: nn.Module) -> Fn | None:
    """``x -> net(x)`` on the same parameters without module calls; None if ``net`` is not
    (nested ``nn.Sequential`` s of) ``nn.Linear`` layers and ReLU / Tanh / ELU activations,
    optionally after an image trunk's ``ScaleFrames`` and ``ConvNet`` (zero-padded ``Conv2d``
    layers, those activations, ``SquashDims``).

    ``tdrl.modules.MLP`` qualifies when built without dropout or normalization
    layers, for a single input tensor; so does the recipes' image trunk
    (:func:`tdrl.recipes.trunks.image_features` + an ``MLP``).

    Examples:
        >>> import torch
        >>> fn = plain_forward(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU()))
        >>> fn(torch.zeros(4, 2)).shape
        torch.Size([4, 3])
        >>> plain_forward(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout())) is None
        True
    """
    layers = _layers(net)
    # the image trunk's steps first (uint8 frames -> conv features), then Linear layers
    pre = []  # (_layers kept only image steps _image_step takes)
    while layers and type(layers[0]) in _IMAGE_STEPS:
        pre.append(_image_step(layers.pop(0)))
    if not layers or type(layers[0]) is not nn.Linear or any(
            type(m) in _IMAGE_STEPS for m in layers):
        return None
    # (weight, bias or None, activation or None) per Linear; activations apply in order
    steps: list[tuple[torch.Tensor, torch.Tensor | None, list[Fn]]] = []
    for m in layers:
        if type(m) is nn.Linear:
            steps.append((m.weight, m.bias, []))
        else:
            act = _activation(m)
            acts = steps[-1][2]
            acts.append(_IN_PLACE.get(act, act) if not acts else act)
    frozen = tuple((w, b, tuple(acts)) for w, b, acts in steps)

    def forward(x: torch.Tensor) -> torch.Tensor:
        for w, b, acts in frozen:
            x = F.linear(x, w, b)
            for act in acts:
                x = act(x)
        return x

    if not pre:
        return forward

    def image_forward(x: torch.Tensor) -> torch.Tensor:
        for step in pre:
            x = step(x)
        return forward(x)

    return image_forward
