"""Private helpers shared by the continuous distributions (parameters, event dims, noise)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Number
from typing import Any

import torch
from torch import Tensor

from tdrl.modules.distributions.bounds import Bounds, _is_compiling, get_bounds

_EMPTY = torch.Size()
_ScaleLike = Tensor | float | Callable[[Tensor], Tensor]


def _prepare_loc_scale(
    loc: Tensor, scale: _ScaleLike, upscale: Tensor | float, tanh_loc: bool, cls: str
) -> tuple[Tensor, Tensor]:
    if not isinstance(loc, Tensor):
        raise TypeError(f"{cls}: loc must be a torch.Tensor, got {type(loc).__name__}")
    if not isinstance(scale, Tensor):
        if callable(scale):
            scale = scale(loc)
        elif isinstance(scale, Number):
            if not scale > 0:
                raise ValueError(f"{cls}: scale must be > 0, got {scale}")
            scale = torch.full_like(loc, float(scale))
        else:
            raise TypeError(
                f"{cls}: scale must be a tensor, a positive number or a callable, "
                f"got {type(scale).__name__}"
            )
    if loc.shape != scale.shape:
        try:
            loc, scale = torch.broadcast_tensors(loc, scale)
        except RuntimeError as err:
            raise ValueError(
                f"{cls}: loc and scale must broadcast together, got shapes "
                f"{tuple(loc.shape)} and {tuple(scale.shape)}"
            ) from err
    if tanh_loc:
        loc = torch.tanh(loc / upscale) * upscale
    return loc, scale


def _should_validate(validate_args: bool | None) -> bool:
    """Whether to check ``loc``/``scale``; never while compiling.

    ``None`` (the default) checks while autograd records (every loss computation) and
    skips under ``no_grad``/``inference_mode``. torch's global
    ``Distribution.set_default_validate_args`` is not read: ``torch.compile`` turns it
    off process-wide as a side effect.
    """
    if validate_args is None:
        validate_args = torch.is_grad_enabled()
    return validate_args and not _is_compiling()


def _check_loc_scale(loc: Tensor, scale: Tensor, cls: str) -> None:
    """Raises a ValueError naming the bad entries if ``loc`` has a NaN or ``scale`` is not > 0.

    The common (valid) case costs two kernels and one device sync (a few microseconds).
    """
    if scale.numel() == 0 or scale.is_meta:  # nothing to check, or no data to read
        return
    # scale + 0 * loc is NaN where loc is NaN (or infinite): its minimum is > 0 iff all is well
    if scale.add(loc, alpha=0.0).amin().item() > 0.0:
        return
    problems = []
    bad = ~(scale > 0)
    if bool(bad.any()):
        problems.append(
            f"scale must be > 0 (and not NaN) everywhere, got {int(bad.sum())} bad "
            f"entr{'y' if int(bad.sum()) == 1 else 'ies'} of {scale.numel()}: values "
            f"{scale[bad].unique()[:5].tolist()}, first at index {bad.nonzero()[0].tolist()}"
        )
    bad = torch.isnan(loc)
    if bool(bad.any()):
        problems.append(
            f"loc must not be NaN, got {int(bad.sum())} NaN entr"
            f"{'y' if int(bad.sum()) == 1 else 'ies'} of {loc.numel()}, first at index "
            f"{bad.nonzero()[0].tolist()}"
        )
    if problems:
        raise ValueError(
            f"{cls}: " + "; ".join(problems) + " (pass validate_args=False to skip this check)"
        )


def _resolve_params(
    dist: Any, loc: Tensor, scale: _ScaleLike, bounded: bool
) -> tuple[Tensor, Tensor, Bounds | None]:
    """``loc``, ``scale`` (and bounds) of a normal-based ``dist``, shaped, rescaled and checked.

    Reads ``upscale``, ``tanh_loc`` and ``_validate`` from ``dist`` (and ``_low``/``_high``
    when ``bounded``); errors are prefixed with the class name.
    """
    cls = type(dist).__name__
    if not isinstance(scale, Tensor) or loc.shape != scale.shape or dist.tanh_loc:
        loc, scale = _prepare_loc_scale(loc, scale, dist.upscale, dist.tanh_loc, cls)
    b = None
    if bounded:
        b = get_bounds(dist._low, dist._high, loc)
        if b.shape:
            loc, scale = _fit_bounds(loc, scale, b, cls)
    if _should_validate(dist._validate):
        _check_loc_scale(loc, scale, cls)
    return loc, scale, b


def _fit_bounds(loc: Tensor, scale: Tensor, b: Bounds, cls: str) -> tuple[Tensor, Tensor]:
    """Expands loc/scale when tensor bounds have a larger broadcast shape (rare)."""
    bshape = b.shape
    if not bshape:
        return loc, scale
    n = len(bshape)
    if n <= loc.ndim and loc.shape[loc.ndim - n :] == bshape:
        return loc, scale
    try:
        shape = torch.broadcast_shapes(loc.shape, bshape)
    except RuntimeError as err:
        raise ValueError(
            f"{cls}: low/high of shape {tuple(bshape)} do not broadcast with the parameters "
            f"of shape {tuple(loc.shape)}"
        ) from err
    if shape != loc.shape:
        loc, scale = loc.expand(shape), scale.expand(shape)
    return loc, scale


def _event_dims(event_dims: int | None, ndim: int, cls: str, name: str = "event_dims") -> int:
    if event_dims is None:
        return min(1, ndim)
    if not isinstance(event_dims, int) or not 0 <= event_dims <= ndim:
        raise ValueError(
            f"{cls}: {name} must be an int in [0, {ndim}] for parameters with {ndim} dims, "
            f"got {event_dims!r}"
        )
    return event_dims


def _sum_dims(event_dims: int) -> int | tuple[int, ...] | None:
    if event_dims == 0:
        return None
    if event_dims == 1:
        return -1
    return tuple(range(-event_dims, 0))


def _noise(loc: Tensor, shape: torch.Size, sample_shape: Sequence[int]) -> Tensor:
    if not sample_shape:
        return torch.randn_like(loc)
    return torch.randn(shape, dtype=loc.dtype, device=loc.device)
