"""Continuous distributions for actors: squashed, truncated, independent and point-mass laws.

All classes subclass :class:`torch.distributions.Distribution`, never run
torch's argument validation, create every tensor on the device and in the dtype
of their parameters, and expose ``deterministic_sample`` (read by tensordict's
probabilistic modules under ``InteractionType.DETERMINISTIC``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Number
from typing import Any

import torch
import torch.nn.functional as F
from tensordict.nn import NormalParamExtractor
from torch import Tensor
from torch import distributions as D
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from tdrl.modules.distributions.utils import (
    LOG_2,
    LOG_SQRT_2PI,
    BoundedSupportMixin,
    Bounds,
    get_bounds,
    log1m_tanh_sq,
    tanh_limit,
)

__all__ = [
    "Delta",
    "IndependentNormal",
    "NormalParamExtractor",
    "TanhDelta",
    "TanhNormal",
    "TruncatedNormal",
]

_EMPTY = torch.Size()
_ScaleLike = Tensor | float | Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------
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


def _validate_scale(scale: Tensor, cls: str) -> None:
    bad = ~(scale > 0)
    if bool(bad.any()):
        raise ValueError(
            f"{cls}: scale must be > 0 everywhere, got {int(bad.sum())} non-positive or "
            f"NaN entries (min {scale.min().item()})"
        )


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


_GH_CACHE: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}
_GH_POINTS = 48


def _gauss_hermite(like: Tensor) -> tuple[Tensor, Tensor]:
    """Nodes ``x`` and weights ``w`` with ``E[f(Z)] ~= sum(w * f(x))`` for ``Z ~ N(0, 1)``."""
    key = (like.dtype, like.device)
    hit = _GH_CACHE.get(key)
    if hit is None:
        from numpy.polynomial.hermite import hermgauss

        x, w = hermgauss(_GH_POINTS)
        nodes = torch.as_tensor(x * math.sqrt(2.0), dtype=like.dtype, device=like.device)
        weights = torch.as_tensor(w / math.sqrt(math.pi), dtype=like.dtype, device=like.device)
        hit = _GH_CACHE[key] = (nodes, weights)
    return hit


def _tanh_moments(loc: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """``E[tanh(U)]`` and ``E[tanh(U)^2]`` for ``U ~ N(loc, scale^2)`` (Gauss-Hermite)."""
    nodes, weights = _gauss_hermite(loc)
    view = (-1,) + (1,) * loc.ndim
    t = torch.tanh(loc + scale * nodes.view(view))
    w = weights.view(view)
    return (w * t).sum(0), (w * t * t).sum(0)


# --------------------------------------------------------------------------------------
# TanhNormal
# --------------------------------------------------------------------------------------
class TanhNormal(BoundedSupportMixin, D.Distribution):
    r"""A normal distribution squashed by ``tanh`` and mapped affinely onto ``[low, high]``.

    A draw is ``y = shift + half * tanh(u)`` with ``u ~ Normal(loc, scale)``,
    ``shift = (high + low) / 2`` and ``half = (high - low) / 2``. The last
    ``event_dims`` dims are the event: ``log_prob`` sums over them.

    Args:
        loc (Tensor): mean of the pre-tanh normal.
        scale (Tensor, float or callable): its standard deviation; a number is
            broadcast to ``loc``'s shape, a callable is called on ``loc``.
        upscale (Tensor or float, optional): ``a`` in ``loc = a * tanh(loc / a)``,
            used when ``tanh_loc=True``. Defaults to ``5.0``.
        low (Tensor or float, optional): lower bound. Defaults to ``-1.0``.
        high (Tensor or float, optional): upper bound. Defaults to ``1.0``.
        event_dims (int, optional): number of trailing event dims. Defaults to
            ``1`` (``0`` for a 0-dim ``loc``).
        tanh_loc (bool, optional): rescale ``loc`` as above. Defaults to ``False``.
        safe_tanh (bool, optional): clamp draws (and ``deterministic_sample``)
            strictly inside ``(low, high)`` (to the nearest representable
            values), so that they never equal the bounds. Draws are always
            clamped into ``[low, high]``. Defaults to ``True``.
        validate_args (bool, optional): also check ``scale > 0`` (one device
            sync). Defaults to ``False``.

    Numerics: ``log_prob`` uses
    ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` and inverts values
    with ``atanh`` of the normalized value clamped to ``[-1 + eps, 1 - eps]``
    (``eps`` of the dtype), so it is finite for values at or next to the
    bounds. The most recent ``sample``/``rsample`` keeps its pre-tanh value:
    ``log_prob(value)`` with ``value`` being that very tensor (``is``) scores
    the draw exactly, without ``atanh``. Values outside ``[low, high]`` are
    clamped to the bounds (no validation).

    ``mean`` and ``variance`` use 48-point Gauss-Hermite quadrature (deterministic,
    differentiable; exact to float precision unless ``scale`` is very large).
    ``entropy(n_samples)`` is exact for the normal part and a Monte-Carlo
    (reparameterized) estimate of ``E[log|dy/du|]``. ``mode`` is the maximizer
    of the density on ``(low, high)`` found by Newton's method (no gradient);
    TorchRL's ``TanhNormal.mode`` raises instead.

    Examples:
        >>> import torch
        >>> loc, scale = torch.zeros(3, 4), torch.ones(3, 4)
        >>> d = TanhNormal(loc, scale, low=-2.0, high=2.0)
        >>> a = d.rsample()
        >>> a.shape, d.log_prob(a).shape, d.batch_shape, d.event_shape
        (torch.Size([3, 4]), torch.Size([3]), torch.Size([3]), torch.Size([4]))
        >>> bool(((a > -2) & (a < 2)).all())
        True
        >>> d.deterministic_sample
        tensor([[0., 0., 0., 0.],
                [0., 0., 0., 0.],
                [0., 0., 0., 0.]])
        >>> bool(torch.isfinite(d.log_prob(torch.full((3, 4), 2.0))).all())
        True
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True
    _validate_args = False

    def __init__(
        self,
        loc: Tensor,
        scale: _ScaleLike,
        upscale: Tensor | float = 5.0,
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        event_dims: int | None = None,
        tanh_loc: bool = False,
        safe_tanh: bool = True,
        validate_args: bool = False,
    ) -> None:
        if not isinstance(scale, Tensor) or loc.shape != scale.shape or tanh_loc:
            loc, scale = _prepare_loc_scale(loc, scale, upscale, tanh_loc, "TanhNormal")
        b = get_bounds(low, high, loc)
        if b.shape:
            loc, scale = _fit_bounds(loc, scale, b, "TanhNormal")
        if validate_args:
            _validate_scale(scale, "TanhNormal")
        shape = loc.shape
        ndim = len(shape)
        ed = 1 if event_dims is None and ndim else _event_dims(event_dims, ndim, "TanhNormal")
        self.loc = loc
        self.scale = scale
        self.upscale = upscale
        self.tanh_loc = tanh_loc
        self.safe_tanh = safe_tanh
        self.event_dims = ed
        self._bounds = b
        self._batch_shape = shape[: ndim - ed]
        self._event_shape = shape[ndim - ed :]
        self._sum = -1 if ed == 1 else _sum_dims(ed)
        n = shape[-1] if ed == 1 else self._event_shape.numel()
        # log_prob = -sum(w - 2 s) - n * (log sqrt(2 pi) + 2 log 2 + log half)
        self._neg_const = -n * (
            LOG_SQRT_2PI + 2.0 * LOG_2 + (0.0 if b.is_tensor else b.log_half)
        )
        self._cache: tuple | None = None

    # -- core maps ----------------------------------------------------------------------
    def _squash(self, u: Tensor, clamp: bool) -> Tensor:
        y = torch.tanh(u)
        b = self._bounds
        if b.unit:
            if clamp:
                lim = tanh_limit(y.dtype)
                y = y.clamp(-lim, lim)
            return y
        if b.is_tensor:
            y = torch.addcmul(b.shift, b.half, y)
        elif b.shift == 0.0:
            y = y * b.half
        else:
            y = y * b.half + b.shift
        # the affine map rounds: always clamp into [low, high], strictly inside if ``clamp``
        lo, hi = b.inner(y.dtype) if clamp else (b.lo, b.hi)
        return torch.clamp(y, lo, hi)

    def _unsquash(self, value: Tensor) -> Tensor:
        b = self._bounds
        x = value if b.unit else (value - b.shift) * b.inv_half
        lim = tanh_limit(value.dtype)
        return torch.atanh(x.clamp(-lim, lim))

    def _log_prob_pre(self, u: Tensor, z: Tensor) -> Tensor:
        # s = u + softplus(-2u), so that log(1 - tanh(u)^2) = 2 log 2 - 2 s;
        # softplus(u, beta=-2) == -softplus(-2u) / 2 saves one kernel.
        s = torch.sub(u, F.softplus(u, beta=-2.0), alpha=2.0)
        log_scale = self.scale.log()
        b = self._bounds
        if b.is_tensor:
            log_scale = log_scale + b.log_half
        w = torch.addcmul(log_scale, z, z, value=0.5)  # log(scale) + z^2 / 2
        v = torch.add(w, s, alpha=-2.0)
        if self._sum is not None:
            v = v.sum(self._sum)
        return torch.rsub(v, self._neg_const)

    # -- sampling -----------------------------------------------------------------------
    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        """Reparameterized draw; its pre-tanh value is cached for ``log_prob``."""
        loc = self.loc
        shape = self._extended_shape(sample_shape) if sample_shape else loc.shape
        z = _noise(loc, shape, sample_shape)
        u = torch.addcmul(loc, self.scale, z)
        y = self._squash(u, self.safe_tanh)
        # Cache the pre-image that log_prob would recover from y itself (tanh saturates
        # and rounds near the bounds), keeping u's gradient: the log-prob of a stored
        # action then equals the one recomputed later from a copy of it (PPO's ratio
        # starts at exactly 1).
        if self._bounds.unit and self.safe_tanh:  # y is already inside (-lim, lim)
            u_value = torch.atanh(y.detach())
        else:
            u_value = self._unsquash(y.detach())
        z = ((u_value - loc) / self.scale).detach()
        u = u + (u_value - u).detach() if u.requires_grad else u_value
        # the version counter detects in-place edits of the sample (not tracked when compiling)
        version = -1 if torch.compiler.is_compiling() else y._version
        self._cache = (y, u, z, torch.is_grad_enabled(), version)
        return y

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        """Draw without gradient; its pre-tanh value is cached for ``log_prob``."""
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        cache = self._cache
        if (
            cache is not None
            and value is cache[0]
            and (cache[4] == -1 or value._version == cache[4])
        ):
            u, z = cache[1], cache[2]
            if not cache[3] and torch.is_grad_enabled():
                # drawn without gradient: rebuild z so that it depends on loc/scale
                z = (u - self.loc) / self.scale
        else:
            u = self._unsquash(value)
            z = (u - self.loc) / self.scale
        return self._log_prob_pre(u, z)

    def rsample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(rsample(sample_shape), log_prob of that draw)`` in one pass."""
        y = self.rsample(sample_shape)
        _, u, z, _, _ = self._cache
        return y, self._log_prob_pre(u, z)

    def sample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(sample(sample_shape), log_prob of that draw)``; the log-prob keeps its gradient."""
        y = self.sample(sample_shape)
        return y, self.log_prob(y)

    # -- summaries ----------------------------------------------------------------------
    @property
    def deterministic_sample(self) -> Tensor:
        """``low + (high - low) * (tanh(loc) + 1) / 2`` (``loc`` after ``tanh_loc``)."""
        return self._squash(self.loc, self.safe_tanh)

    @property
    def mode(self) -> Tensor:
        """Maximizer of the density, strictly inside ``(low, high)``; computed without gradient.

        Per element, with ``m = |loc|`` and ``c = 2 scale^2``, the pre-tanh mode
        is ``sign(loc) * r`` where ``r`` is the largest root of
        ``h(u) = u - m - c tanh(u)`` in ``[m, m + c]``; ``h`` is convex there, so
        Newton's method from ``m + c`` converges monotonically.
        """
        with torch.no_grad():
            loc, scale = self.loc, self.scale
            m = loc.abs()
            c = 2.0 * scale * scale
            hi = m + c
            u = hi
            tiny = torch.finfo(loc.dtype).tiny
            tol = 8 * torch.finfo(loc.dtype).eps
            for i in range(60):
                t = torch.tanh(u)
                h = u - m - c * t
                dh = (1.0 - c * (1.0 - t * t)).clamp_min(tiny)
                step = h / dh
                u = torch.minimum(torch.maximum(u - step, m), hi)
                if i % 6 == 5 and bool((step.abs() <= tol * (1.0 + u.abs())).all()):
                    break
            u = torch.where(loc >= 0, u, -u)
            return self._squash(u, True)

    @property
    def mean(self) -> Tensor:
        """``E[y]`` by 48-point Gauss-Hermite quadrature (deterministic, differentiable)."""
        m1, _ = _tanh_moments(self.loc, self.scale)
        b = self._bounds
        return m1 if b.unit else b.shift + b.half * m1

    @property
    def variance(self) -> Tensor:
        """``Var[y]`` by 48-point Gauss-Hermite quadrature."""
        m1, m2 = _tanh_moments(self.loc, self.scale)
        var = (m2 - m1 * m1).clamp_min(0.0)
        b = self._bounds
        return var if b.unit else var * (b.half * b.half)

    def entropy(self, n_samples: int = 16) -> Tensor:
        """Entropy: exact normal part plus a Monte-Carlo estimate of ``E[log(1 - tanh(u)^2)]``.

        ``n_samples`` reparameterized draws are averaged, so the estimate is
        unbiased and differentiable; it is random (seed torch to reproduce).
        """
        loc, scale = self.loc, self.scale
        z = torch.randn((n_samples,) + loc.shape, dtype=loc.dtype, device=loc.device)
        jac = log1m_tanh_sq(torch.addcmul(loc, scale, z)).mean(0)
        b = self._bounds
        h = (0.5 + LOG_SQRT_2PI) + scale.log() + jac + b.log_half
        if self._sum is not None:
            h = h.sum(self._sum)
        return h

    def cdf(self, value: Tensor) -> Tensor:
        """Elementwise CDF ``Phi((atanh(x) - loc) / scale)`` (no event reduction)."""
        return torch.special.ndtr((self._unsquash(value) - self.loc) / self.scale)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TanhNormal:
        shape = torch.Size(batch_shape) + self._event_shape
        b = self._bounds
        return TanhNormal(
            self.loc.expand(shape),
            self.scale.expand(shape),
            low=b.low,
            high=b.high,
            event_dims=self.event_dims,
            safe_tanh=self.safe_tanh,
        )


# --------------------------------------------------------------------------------------
# IndependentNormal
# --------------------------------------------------------------------------------------
class IndependentNormal(D.Independent):
    """A normal distribution whose last ``event_dim`` dims form the event.

    Args:
        loc (Tensor): the mean.
        scale (Tensor, float or callable): the standard deviation (a number is
            broadcast, a callable is called on ``loc``).
        upscale (Tensor or float, optional): ``a`` in ``loc = a * tanh(loc / a)``.
            Defaults to ``5.0``.
        tanh_loc (bool, optional): if ``True``, ``loc`` is rescaled as above.
            Defaults to ``False``.
        event_dim (int, optional): number of trailing event dims. Defaults to
            ``1`` (``0`` for a 0-dim ``loc``).
        validate_args (bool, optional): check ``scale > 0`` (one device sync).
            Defaults to ``False``.

    ``mode``, ``mean`` and ``deterministic_sample`` are ``loc``. Built on
    :class:`torch.distributions.Independent` of a ``Normal`` (constructed
    without ``broadcast_all``/validation), with a direct ``log_prob``.

    Examples:
        >>> import torch
        >>> d = IndependentNormal(torch.zeros(5, 2), torch.ones(5, 2))
        >>> x = d.rsample()
        >>> x.shape, d.log_prob(x).shape
        (torch.Size([5, 2]), torch.Size([5]))
        >>> round(d.log_prob(torch.zeros(5, 2))[0].item(), 4)  # -log(2 pi)
        -1.8379
    """

    _validate_args = False

    def __init__(
        self,
        loc: Tensor,
        scale: _ScaleLike,
        upscale: Tensor | float = 5.0,
        tanh_loc: bool = False,
        event_dim: int = 1,
        validate_args: bool = False,
    ) -> None:
        if not isinstance(scale, Tensor) or loc.shape != scale.shape or tanh_loc:
            loc, scale = _prepare_loc_scale(loc, scale, upscale, tanh_loc, "IndependentNormal")
        if validate_args:
            _validate_scale(scale, "IndependentNormal")
        ndim = loc.ndim
        # the default (1) falls back to 0 for a 0-dim loc; other values are checked
        ed = _event_dims(0 if event_dim == 1 and ndim == 0 else event_dim, ndim,
                         "IndependentNormal", "event_dim")
        # Normal(loc, scale) without broadcast_all: the shapes already match.
        base = D.Normal.__new__(D.Normal)
        base.loc, base.scale = loc, scale
        D.Distribution.__init__(base, loc.shape, validate_args=False)
        shape = loc.shape
        self.base_dist = base
        self.reinterpreted_batch_ndims = ed
        self.upscale = upscale
        self.tanh_loc = tanh_loc
        self._sum = _sum_dims(ed)
        self._neg_const = -(shape[ndim - ed :].numel()) * LOG_SQRT_2PI
        D.Distribution.__init__(self, shape[: ndim - ed], shape[ndim - ed :], validate_args=False)

    @property
    def loc(self) -> Tensor:
        return self.base_dist.loc

    @property
    def scale(self) -> Tensor:
        return self.base_dist.scale

    def _lp_from_z(self, z: Tensor) -> Tensor:
        v = torch.addcmul(self.base_dist.scale.log(), z, z, value=0.5)
        if self._sum is not None:
            v = v.sum(self._sum)
        return torch.rsub(v, self._neg_const)

    def log_prob(self, value: Tensor) -> Tensor:
        base = self.base_dist
        return self._lp_from_z((value - base.loc) / base.scale)

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        base = self.base_dist
        shape = self._extended_shape(sample_shape) if sample_shape else base.loc.shape
        return torch.addcmul(base.loc, base.scale, _noise(base.loc, shape, sample_shape))

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(rsample(sample_shape), log_prob of that draw)`` in one pass."""
        base = self.base_dist
        shape = self._extended_shape(sample_shape) if sample_shape else base.loc.shape
        z = _noise(base.loc, shape, sample_shape)
        return torch.addcmul(base.loc, base.scale, z), self._lp_from_z(z)

    @property
    def mode(self) -> Tensor:
        return self.base_dist.loc

    @property
    def deterministic_sample(self) -> Tensor:
        """The mean ``loc``."""
        return self.base_dist.loc

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> IndependentNormal:
        shape = torch.Size(batch_shape) + self.event_shape
        return IndependentNormal(
            self.loc.expand(shape), self.scale.expand(shape),
            event_dim=self.reinterpreted_batch_ndims,
        )


# --------------------------------------------------------------------------------------
# TruncatedNormal
# --------------------------------------------------------------------------------------
def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate on both sides of ``-log 2``."""
    return torch.where(x > -LOG_2, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


class TruncatedNormal(BoundedSupportMixin, D.Distribution):
    """A normal distribution restricted to ``[low, high]`` and renormalized.

    The last dim is the event (``log_prob`` sums over it). Standardized bounds
    ``a = (low - loc) / scale`` and ``b = (high - loc) / scale`` are mirrored
    (``[a, b] -> [-b, -a]`` when ``a > 0``) so that every CDF is evaluated in
    the left tail, where ``log_ndtr``/``ndtri`` are accurate; draws use the
    inverse CDF and are differentiable with respect to ``loc`` and ``scale``.

    Args:
        loc (Tensor): location of the untruncated normal.
        scale (Tensor, float or callable): its standard deviation.
        upscale (Tensor or float, optional): ``a`` in ``loc = a * tanh(loc / a)``.
            Defaults to ``5.0``.
        low (Tensor or float, optional): lower bound. Defaults to ``-1.0``.
        high (Tensor or float, optional): upper bound. Defaults to ``1.0``.
        tanh_loc (bool, optional): rescale ``loc`` as above. Defaults to ``False``.
        validate_args (bool, optional): check ``scale > 0`` (one device sync).
            Defaults to ``False``.

    ``log_prob`` is ``-inf`` outside ``[low, high]``; ``mode`` is ``loc``
    clamped to the bounds; ``deterministic_sample`` is the (closed-form) mean.

    Examples:
        >>> import torch
        >>> d = TruncatedNormal(torch.zeros(2, 3), torch.ones(2, 3), low=0.0, high=1.0)
        >>> x = d.rsample()
        >>> bool(((x >= 0) & (x <= 1)).all()), d.log_prob(x).shape
        (True, torch.Size([2]))
        >>> d.mode
        tensor([[0., 0., 0.],
                [0., 0., 0.]])
        >>> d.log_prob(torch.full((2, 3), 1.5))
        tensor([-inf, -inf])
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True
    _validate_args = False

    def __init__(
        self,
        loc: Tensor,
        scale: _ScaleLike,
        upscale: Tensor | float = 5.0,
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        tanh_loc: bool = False,
        validate_args: bool = False,
    ) -> None:
        if not isinstance(scale, Tensor) or loc.shape != scale.shape or tanh_loc:
            loc, scale = _prepare_loc_scale(loc, scale, upscale, tanh_loc, "TruncatedNormal")
        b = get_bounds(low, high, loc)
        if b.shape:
            loc, scale = _fit_bounds(loc, scale, b, "TruncatedNormal")
        if validate_args:
            _validate_scale(scale, "TruncatedNormal")
        self.loc, self.scale = loc, scale
        self.upscale, self.tanh_loc = upscale, tanh_loc
        self._bounds = b
        shape = loc.shape
        ed = min(1, len(shape))
        self._sum = _sum_dims(ed)
        super().__init__(shape[: len(shape) - ed], shape[len(shape) - ed :], validate_args=False)

    # standardized, mirrored bounds and log-normalizer -------------------------------
    @lazy_property
    def _std(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        b = self._bounds
        a = (b.lo - self.loc) / self.scale
        bb = (b.hi - self.loc) / self.scale
        flip = a > 0
        a_m = torch.where(flip, -bb, a)
        b_m = torch.where(flip, -a, bb)
        log_cdf_a = torch.special.log_ndtr(a_m)
        log_cdf_b = torch.special.log_ndtr(b_m)
        log_z = log_cdf_b + _log1mexp(log_cdf_a - log_cdf_b)
        return flip, a_m, b_m, log_cdf_a, log_z, bb

    def _sum_event(self, x: Tensor) -> Tensor:
        return x if self._sum is None else x.sum(self._sum)

    def log_prob(self, value: Tensor) -> Tensor:
        b = self._bounds
        _, _, _, _, log_z, _ = self._std
        z = (value - self.loc) / self.scale
        lp = -0.5 * z * z - LOG_SQRT_2PI - self.scale.log() - log_z
        inside = (value >= b.lo) & (value <= b.hi)
        lp = torch.where(inside, lp, torch.full_like(lp, -math.inf))
        return self._sum_event(lp)

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        flip, a_m, b_m, log_cdf_a, log_z, _ = self._std
        loc = self.loc
        shape = self._extended_shape(sample_shape)
        uni = torch.rand(shape, dtype=loc.dtype, device=loc.device)
        p = torch.exp(log_cdf_a) + uni * torch.exp(log_z)
        eps = torch.special.ndtri(p.clamp(max=1.0))
        eps = torch.minimum(torch.maximum(eps, a_m), b_m)
        eps = torch.where(flip, -eps, eps)
        b = self._bounds
        x = torch.addcmul(loc, self.scale, eps)
        return torch.clamp(x, b.lo, b.hi)

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def _phi_terms(self) -> tuple[Tensor, Tensor, Tensor]:
        """Mirrored ``(phi(a) - phi(b)) / Z`` and ``(a phi(a) - b phi(b)) / Z``, and ``flip``."""
        flip, a_m, b_m, _, log_z, _ = self._std
        pa = torch.exp(-0.5 * a_m * a_m - LOG_SQRT_2PI - log_z)
        pb = torch.exp(-0.5 * b_m * b_m - LOG_SQRT_2PI - log_z)
        m = pa - pb
        apa = torch.where(torch.isinf(a_m), torch.zeros_like(pa), a_m * pa)
        bpb = torch.where(torch.isinf(b_m), torch.zeros_like(pb), b_m * pb)
        return m, apa - bpb, flip

    @property
    def mean(self) -> Tensor:
        m, _, flip = self._phi_terms()
        m = torch.where(flip, -m, m)
        b = self._bounds
        return torch.clamp(torch.addcmul(self.loc, self.scale, m), b.lo, b.hi)

    @property
    def variance(self) -> Tensor:
        m, ab, _ = self._phi_terms()
        return (self.scale * self.scale * (1.0 + ab - m * m)).clamp_min(0.0)

    @property
    def mode(self) -> Tensor:
        b = self._bounds
        return torch.clamp(self.loc, b.lo, b.hi)

    @property
    def deterministic_sample(self) -> Tensor:
        """The mean."""
        return self.mean

    def entropy(self) -> Tensor:
        _, ab, _ = self._phi_terms()
        log_z = self._std[4]
        h = (0.5 + LOG_SQRT_2PI) + self.scale.log() + log_z + 0.5 * ab
        return self._sum_event(h)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TruncatedNormal:
        shape = torch.Size(batch_shape) + self._event_shape
        b = self._bounds
        return TruncatedNormal(
            self.loc.expand(shape), self.scale.expand(shape), low=b.low, high=b.high
        )


# --------------------------------------------------------------------------------------
# Delta and TanhDelta
# --------------------------------------------------------------------------------------
def _delta_shapes(
    param: Tensor,
    batch_shape: Sequence[int] | None,
    event_shape: Sequence[int] | None,
    cls: str,
) -> tuple[torch.Size, torch.Size]:
    shape = param.shape
    if batch_shape is None and event_shape is None:
        n = len(shape)
        return shape[: n - min(1, n)], shape[n - min(1, n) :]
    if event_shape is None:
        batch_shape = torch.Size(batch_shape)
        event_shape = shape[len(batch_shape) :]
    elif batch_shape is None:
        event_shape = torch.Size(event_shape)
        batch_shape = shape[: len(shape) - len(event_shape)]
    batch_shape, event_shape = torch.Size(batch_shape), torch.Size(event_shape)
    if batch_shape + event_shape != shape:
        raise ValueError(
            f"{cls}: batch_shape {tuple(batch_shape)} + event_shape {tuple(event_shape)} must "
            f"equal the shape of param {tuple(shape)}"
        )
    return batch_shape, event_shape


class Delta(D.Distribution):
    """A point mass at ``param``: every draw returns ``param``.

    Args:
        param (Tensor): the point.
        atol (float, optional): absolute tolerance of ``log_prob``'s match.
            Defaults to ``1e-6``.
        rtol (float, optional): relative tolerance. Defaults to ``1e-6``.
        batch_shape (torch.Size, optional): defaults to all dims of ``param``
            but the last.
        event_shape (torch.Size, optional): defaults to the last dim of ``param``.

    ``log_prob(x)`` is ``0`` where ``x`` matches ``param`` within
    ``atol + rtol * |param|`` on the whole event, ``-inf`` elsewhere (the log
    of the probability mass; TorchRL's returns ``+inf`` at the point, which
    poisons losses). ``rsample`` keeps the gradient to ``param``; ``entropy``
    is ``0`` (the entropy of a point mass).

    Examples:
        >>> import torch
        >>> d = Delta(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> d.sample((3,)).shape, d.batch_shape, d.event_shape
        (torch.Size([3, 2, 2]), torch.Size([2]), torch.Size([2]))
        >>> d.log_prob(torch.tensor([[1.0, 2.0], [3.0, 5.0]]))
        tensor([0., -inf])
    """

    arg_constraints: dict = {}
    has_rsample = True
    support = constraints.real
    _validate_args = False

    def __init__(
        self,
        param: Tensor,
        atol: float = 1e-6,
        rtol: float = 1e-6,
        batch_shape: Sequence[int] | None = None,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(param, Tensor):
            raise TypeError(f"{type(self).__name__}: param must be a torch.Tensor, got "
                            f"{type(param).__name__}")
        bs, es = _delta_shapes(param, batch_shape, event_shape, type(self).__name__)
        self.param = param
        self.atol = atol
        self.rtol = rtol
        self._sum = _sum_dims(len(es))
        super().__init__(bs, es, validate_args=False)

    def _value(self) -> Tensor:
        return self.param

    def _expand_sample(self, sample_shape: Sequence[int]) -> Tensor:
        v = self._value()
        return v.expand(torch.Size(sample_shape) + v.shape) if sample_shape else v

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        return self._expand_sample(sample_shape)

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        with torch.no_grad():
            return self._expand_sample(sample_shape).detach()

    def log_prob(self, value: Tensor) -> Tensor:
        v = self._value()
        close = (value - v).abs() <= self.atol + self.rtol * v.abs()
        if self._sum is not None:
            close = close.all(self._sum)
        return torch.zeros(close.shape, dtype=v.dtype, device=v.device).masked_fill_(
            ~close, -math.inf
        )

    @property
    def mean(self) -> Tensor:
        return self._value()

    @property
    def mode(self) -> Tensor:
        return self._value()

    @property
    def deterministic_sample(self) -> Tensor:
        """The point itself."""
        return self._value()

    @property
    def variance(self) -> Tensor:
        return torch.zeros_like(self._value())

    def entropy(self) -> Tensor:
        v = self._value()
        return torch.zeros(self._batch_shape, dtype=v.dtype, device=v.device)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Delta:
        batch_shape = torch.Size(batch_shape)
        return Delta(
            self.param.expand(batch_shape + self._event_shape), self.atol, self.rtol,
            batch_shape, self._event_shape,
        )


class TanhDelta(BoundedSupportMixin, Delta):
    """A point mass at ``low + (high - low) * (tanh(param) + 1) / 2``.

    Args:
        param (Tensor): the pre-tanh point.
        low (Tensor or float, optional): lower bound. Defaults to ``-1.0``.
        high (Tensor or float, optional): upper bound. Defaults to ``1.0``.
        event_dims (int, optional): number of trailing event dims. Defaults to ``1``.
        atol (float, optional): absolute tolerance of ``log_prob``. Defaults to ``1e-6``.
        rtol (float, optional): relative tolerance. Defaults to ``1e-6``.
        safe (bool, optional): keep the point strictly inside ``(low, high)``
            (at worst the nearest representable value). Defaults to ``True``.

    ``log_prob`` is ``0`` at the point, ``-inf`` elsewhere (a point mass has no
    Jacobian term). ``param`` is the pre-tanh point; ``mode``, ``mean``,
    ``deterministic_sample`` and every draw are the squashed point.

    Examples:
        >>> import torch
        >>> d = TanhDelta(torch.zeros(2, 3), low=0.0, high=2.0)
        >>> d.deterministic_sample
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
        >>> d.log_prob(d.sample())
        tensor([0., 0.])
    """

    _bounds_param = "param"

    def __init__(
        self,
        param: Tensor,
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        event_dims: int = 1,
        atol: float = 1e-6,
        rtol: float = 1e-6,
        safe: bool = True,
    ) -> None:
        if not isinstance(param, Tensor):
            raise TypeError(f"TanhDelta: param must be a torch.Tensor, got {type(param).__name__}")
        b = get_bounds(low, high, param)
        if b.shape:
            param, _ = _fit_bounds(param, param, b, "TanhDelta")
        n = param.ndim
        ed = _event_dims(0 if event_dims == 1 and n == 0 else event_dims, n, "TanhDelta")
        super().__init__(param, atol, rtol, param.shape[: n - ed], param.shape[n - ed :])
        self._bounds = b
        self.safe = safe
        self.event_dims = ed

    @lazy_property
    def _point(self) -> Tensor:
        y = torch.tanh(self.param)
        b = self._bounds
        if b.unit:
            if self.safe:
                lim = tanh_limit(y.dtype)
                y = y.clamp(-lim, lim)
            return y
        lo, hi = b.inner(y.dtype) if self.safe else (b.lo, b.hi)
        return torch.clamp(b.shift + b.half * y, lo, hi)

    def _value(self) -> Tensor:
        return self._point

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> TanhDelta:
        shape = torch.Size(batch_shape) + self._event_shape
        b = self._bounds
        return TanhDelta(
            self.param.expand(shape), b.low, b.high, self.event_dims, self.atol, self.rtol,
            self.safe,
        )
