"""Small layers and construction helpers shared by the networks (TorchRL's ``models.utils`` path).

``SquashDims`` flattens trailing dimensions, ``SqueezeLayer`` / ``Squeeze2dLayer`` drop
singleton ones; ``create_on_device`` builds a layer on a device whether or not its
constructor takes one; ``LazyMapping`` names the lazy twin of each layer class the
networks can build without ``in_features``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any

import torch
from torch import nn

from tdrl.modules.models.noisy import NoisyLazyLinear, NoisyLinear

__all__ = [
    "LazyMapping",
    "ModelConfigError",
    "SquashDims",
    "Squeeze2dLayer",
    "SqueezeLayer",
    "create_on_device",
]

#: the lazy version of each layer class that ``MLP`` builds when ``in_features`` is ``None``
LazyMapping: dict[Any, Any] = {nn.Linear: nn.LazyLinear, NoisyLinear: NoisyLazyLinear}


class ModelConfigError(ValueError, RuntimeError):
    """A network was configured inconsistently (depth against list lengths, bad sizes).

    It is both a ``ValueError`` and a ``RuntimeError``: TorchRL raises one or the
    other for the same mistakes depending on the class, and code written against
    either keeps working.

    Examples:
        >>> from tdrl.modules.models.utils import ModelConfigError
        >>> issubclass(ModelConfigError, ValueError) and issubclass(ModelConfigError, RuntimeError)
        True
    """


class SquashDims(nn.Module):
    """Flattens the last ``ndims_in`` dimensions of its input into one.

    Args:
        ndims_in: how many trailing dimensions to merge (default 3: channels x height x width).

    Examples:
        >>> import torch
        >>> from tdrl.modules.models.utils import SquashDims
        >>> SquashDims()(torch.zeros(5, 2, 3, 4)).shape
        torch.Size([5, 24])
        >>> SquashDims(ndims_in=2)(torch.zeros(5, 2, 3, 4)).shape
        torch.Size([5, 2, 12])
    """

    def __init__(self, ndims_in: int = 3) -> None:
        super().__init__()
        if int(ndims_in) < 1:
            raise ModelConfigError(f"SquashDims needs ndims_in >= 1, got {ndims_in}")
        self.ndims_in = int(ndims_in)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        if value.ndim < self.ndims_in:
            raise ValueError(
                f"SquashDims(ndims_in={self.ndims_in}) got an input of shape "
                f"{tuple(value.shape)} ({value.ndim} dims)"
            )
        return value.flatten(-self.ndims_in, -1)

    def extra_repr(self) -> str:
        return "" if self.ndims_in == 3 else f"ndims_in={self.ndims_in}"


class SqueezeLayer(nn.Module):
    """Removes the given singleton dimensions (negative indices) of its input.

    Args:
        dims: the dimensions to drop, each ``< 0`` (counted from the end), default ``(-1,)``;
            they are squeezed one after the other, in the order given.

    Examples:
        >>> import torch
        >>> from tdrl.modules.models.utils import SqueezeLayer
        >>> SqueezeLayer((-2, -1))(torch.zeros(4, 3, 1, 1)).shape
        torch.Size([4, 3])
        >>> SqueezeLayer()(torch.zeros(4, 2))
        Traceback (most recent call last):
        ...
        RuntimeError: SqueezeLayer(dims=(-1,)) cannot squeeze dim -1 of an input of shape (4, 2): its size is 2, not 1
    """

    def __init__(self, dims: Sequence[int] = (-1,)) -> None:
        super().__init__()
        dims = tuple(int(d) for d in dims)
        bad = [d for d in dims if d >= 0]
        if bad:
            raise ModelConfigError(
                f"SqueezeLayer counts dims from the end: every dim must be < 0, got {dims}"
            )
        self.dims = dims

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        shape = tuple(input.shape)
        for dim in self.dims:
            if input.ndim < -dim or input.shape[dim] != 1:
                size = input.shape[dim] if input.ndim >= -dim else "missing"
                raise RuntimeError(
                    f"{type(self).__name__}(dims={self.dims}) cannot squeeze dim {dim} of an "
                    f"input of shape {shape}: its size is {size}, not 1"
                )
            input = input.squeeze(dim)
        return input

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Squeeze2dLayer(SqueezeLayer):
    """Removes the last two singleton dimensions (the 1 x 1 map of a pooled image).

    Examples:
        >>> import torch
        >>> from tdrl.modules.models.utils import Squeeze2dLayer
        >>> Squeeze2dLayer()(torch.zeros(4, 8, 1, 1)).shape
        torch.Size([4, 8])
    """

    def __init__(self) -> None:
        super().__init__((-2, -1))

    def extra_repr(self) -> str:
        return ""


def _takes_device(factory: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("device")
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


class _CallableLayer(nn.Module):
    """Wraps a plain function returned by a layer factory so it can sit in ``nn.Sequential``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"fn={self.fn!r}"


def create_on_device(
    module_class: type[nn.Module] | Callable[..., Any],
    device: torch.device | str | None,
    *args: Any,
    **kwargs: Any,
) -> nn.Module:
    """Builds ``module_class(*args, **kwargs)`` on ``device``.

    When the constructor has a ``device`` parameter the layer is created there
    directly; otherwise it is built and then moved. A factory that returns a
    plain function (``lambda x: x + 1``) is wrapped in a module.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from tdrl.modules.models.utils import create_on_device
        >>> create_on_device(nn.Linear, "cpu", 3, 2).weight.device
        device(type='cpu')
        >>> create_on_device(nn.Tanh, "cpu")
        Tanh()
        >>> create_on_device(lambda: (lambda x: x + 1), None)(torch.zeros(2))
        tensor([1., 1.])
    """
    if device is not None and _takes_device(module_class):
        out = module_class(*args, device=device, **kwargs)
    else:
        out = module_class(*args, **kwargs)
        if device is not None and hasattr(out, "to"):
            out = out.to(device)
    if not isinstance(out, nn.Module):
        if not callable(out):
            raise TypeError(
                f"{getattr(module_class, '__name__', module_class)!r} returned a "
                f"{type(out).__name__}, expected an nn.Module or a callable"
            )
        out = _CallableLayer(out)
    return out


def per_layer_kwargs(
    item: dict[str, Any] | Sequence[dict[str, Any]] | None, n: int, name: str
) -> list[dict[str, Any]]:
    """One kwargs dict per layer: ``None`` -> empty dicts, a dict -> ``n`` copies, a list -> itself.

    Examples:
        >>> from tdrl.modules.models.utils import per_layer_kwargs
        >>> per_layer_kwargs({"a": 1}, 2, "layer_kwargs")
        [{'a': 1}, {'a': 1}]
        >>> per_layer_kwargs([{}], 2, "layer_kwargs")
        Traceback (most recent call last):
        ...
        tdrl.modules.models.utils.ModelConfigError: layer_kwargs has 1 entries, expected 2 (one per layer) or one dict for all
    """
    if item is None:
        return [{} for _ in range(n)]
    if isinstance(item, dict):
        return [deepcopy(item) for _ in range(n)]
    items = [deepcopy(dict(x)) for x in item]
    if len(items) != n:
        raise ModelConfigError(
            f"{name} has {len(items)} entries, expected {n} (one per layer) or one dict for all"
        )
    return items


def when_initialized(layer: nn.Module, init: Callable[[nn.Module], None]) -> None:
    """Runs ``init(layer)`` now, or, for a lazy layer, right after it materialises.

    A lazy layer draws its parameters on its first call, which would overwrite an
    initialisation done at construction; the deferred ``init`` runs after that,
    before the first output is computed.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from tdrl.modules.models.utils import when_initialized
        >>> lazy = nn.LazyLinear(2)
        >>> when_initialized(lazy, lambda m: nn.init.zeros_(m.bias))
        >>> lazy(torch.ones(1, 3)).shape, lazy.bias.tolist()
        (torch.Size([1, 2]), [0.0, 0.0])
    """
    has_lazy = getattr(layer, "has_uninitialized_params", None)
    if not (callable(has_lazy) and has_lazy()):
        with torch.no_grad():
            init(layer)
        return

    def hook(module: nn.Module, args: Any) -> None:
        with torch.no_grad():
            init(module)
        handle.remove()

    handle = layer.register_forward_pre_hook(hook)
