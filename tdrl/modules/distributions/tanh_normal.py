"""``TanhNormal``: a normal squashed by ``tanh`` onto ``[low, high]``, with exact numerics."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import distributions as D
from torch.distributions import constraints

from tdrl.modules.distributions._common import (
    _EMPTY,
    _event_dims,
    _noise,
    _resolve_params,
    _ScaleLike,
    _sum_dims,
)
from tdrl.modules.distributions.bounds import BoundedSupportMixin
from tdrl.modules.distributions.safe_tanh import LOG_2, LOG_SQRT_2PI, log1m_tanh_sq, tanh_limit

__all__ = ["TanhNormal"]


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
        validate_args (bool, optional): check that ``scale > 0`` and ``loc`` has
            no NaN, raising a ``ValueError`` naming the bad entries (two kernels
            and one device sync; never under ``torch.compile``). Defaults to
            ``None``: check while autograd records (every loss computation),
            skip under ``torch.no_grad()`` (data collection).

    Numerics: ``log_prob(value)`` uses
    ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` at the pre-image
    ``u = atanh(x)`` of the normalized value, clamped to ``[-1 + eps, 1 - eps]``
    (``eps`` of the dtype), so it is finite for values at or next to the
    bounds; values outside ``[low, high]`` are clamped to the bounds. It is a
    function of ``value`` only: for the latest draw (the very tensor, unmodified)
    it gives the same value as for a copy, with the gradient of the pre-tanh
    draw. ``rsample_and_log_prob``/``sample_and_log_prob`` instead score the
    draw from its exact pre-tanh value (as TorchRL does); the two agree except
    where ``tanh`` saturates (``|u|`` above about 9 in float32), where only the
    exact pre-tanh value gives the true density.

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
        validate_args: bool | None = None,
    ) -> None:
        self.upscale = upscale
        self.tanh_loc = tanh_loc
        self.safe_tanh = safe_tanh
        self._validate = validate_args
        self._low, self._high, self._event_dims_arg = low, high, event_dims
        self._set_params(loc, scale)

    def _set_params(self, loc: Tensor, scale: _ScaleLike) -> None:
        loc, scale, b = _resolve_params(self, loc, scale, bounded=True)
        shape = loc.shape
        ndim = len(shape)
        event_dims = self._event_dims_arg
        ed = 1 if event_dims is None and ndim else _event_dims(event_dims, ndim, "TanhNormal")
        self.loc = loc
        self.scale = scale
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

    def update(self, loc: Tensor, scale: _ScaleLike) -> None:
        """Replaces ``loc`` and ``scale`` in place (``tanh_loc``, bounds and checks apply again).

        Examples:
            >>> d = TanhNormal(torch.zeros(3), torch.ones_like)
            >>> d.update(torch.ones(3), torch.ones_like)
            >>> d.loc
            tensor([1., 1., 1.])
        """
        self._set_params(loc, scale)

    @property
    def device(self) -> torch.device:
        """The device of the parameters."""
        return self.loc.device

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
    def _draw(self, sample_shape: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
        """``(y, u, z)``: standard noise ``z``, pre-tanh ``u = loc + scale z``, draw ``y``."""
        loc = self.loc
        shape = self._extended_shape(sample_shape) if sample_shape else loc.shape
        z = _noise(loc, shape, sample_shape)
        u = torch.addcmul(loc, self.scale, z)
        y = self._squash(u, self.safe_tanh)
        # the version counter detects in-place edits of the sample (not tracked when compiling)
        version = -1 if torch.compiler.is_compiling() else y._version
        self._cache = (y, u, torch.is_grad_enabled(), version)
        return y, u, z

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        """Reparameterized draw; its pre-tanh value is kept for ``log_prob`` (see the class doc)."""
        return self._draw(sample_shape)[0]

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        """Draw without gradient; its pre-tanh value is kept for ``log_prob``."""
        with torch.no_grad():
            return self._draw(sample_shape)[0]

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-density of ``value``, from its pre-image ``atanh`` (clamped; see the class doc)."""
        cache = self._cache
        if (
            cache is not None
            and value is cache[0]
            and (cache[3] == -1 or value._version == cache[3])
        ):
            # the latest draw: the same value as for a copy of it, but with the gradient of
            # the pre-tanh draw (the tanh and clamp of a saturated draw have none)
            y = value.detach()
            u_value = torch.atanh(y) if self._bounds.unit and self.safe_tanh else self._unsquash(y)
            u = cache[1]
            if cache[2] and u.requires_grad:
                u = u + (u_value - u).detach()
                return self._log_prob_pre(u, ((u_value - self.loc) / self.scale).detach())
            u = u_value
        else:
            u = self._unsquash(value)
        return self._log_prob_pre(u, (u - self.loc) / self.scale)

    def rsample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(rsample(sample_shape), log-prob of the draw)``, scored from its exact pre-tanh value.

        The log-prob is that of the normal draw ``u`` plus the log-Jacobian of the
        squashing at ``u`` itself (never recovered from the rounded action), with
        pathwise gradients. Once ``tanh`` saturates it differs from
        ``log_prob(action)``, which can only see the rounded action.
        """
        y, u, z = self._draw(sample_shape)
        return y, self._log_prob_pre(u, z)

    def sample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(sample(sample_shape), log-prob of the draw)``, scored from its exact pre-tanh value.

        The draw carries no gradient; the log-prob keeps its (score-function)
        gradient with respect to ``loc`` and ``scale``.
        """
        with torch.no_grad():
            y, u, z = self._draw(sample_shape)
        if torch.is_grad_enabled() and (self.loc.requires_grad or self.scale.requires_grad):
            z = (u - self.loc) / self.scale  # the score-function gradient flows through z
        return y, self._log_prob_pre(u, z)

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

    def get_mode(self) -> Tensor:
        """The mode (TorchRL's name for an estimate of it); here the exact :attr:`mode`.

        Examples:
            >>> d = TanhNormal(torch.tensor([0.5]), torch.tensor([0.1]), event_dims=0)
            >>> torch.allclose(d.get_mode(), d.mode)
            True
        """
        return self.mode

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
            validate_args=False,
        )
