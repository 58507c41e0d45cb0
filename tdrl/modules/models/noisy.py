"""Noisy linear layers (Fortunato et al. 2017, "Noisy Networks for Exploration").

A noisy layer holds a mean (``weight_mu``, ``bias_mu``) and a learned noise scale
(``weight_sigma``, ``bias_sigma``) and uses ``mu + sigma * epsilon`` as its weights.
``epsilon`` is factorised Gaussian noise kept in buffers.

**When the noise is on.** By default the exploration type decides, not
``module.training``: noise is used under ``ExplorationType.RANDOM`` and when no
exploration type is set (acting in a collector, computing a loss), and the mean
weights alone under ``DETERMINISTIC``, ``MODE`` and ``MEAN`` (evaluation). So
``model.eval()`` for batch-norm or dropout does not switch exploration off.
``use_exploration_type=False`` restores the old rule (noise while ``training``).

**When the noise changes.** Only on ``reset_noise()``: repeated forward calls
reuse the same ``epsilon``, so one noise sample can be held for a whole
rollout or update. Call ``reset_noise(net)`` (every noisy layer in ``net``) once
per optimisation step, as the paper does, and/or at episode starts.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from tdrl.envs.utils import ExplorationType, exploration_type

__all__ = ["NoisyLazyLinear", "NoisyLinear", "reset_noise"]

_MEAN_ONLY = (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN)


def _signed_sqrt_noise(n: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.randn(n, device=like.device, dtype=like.dtype)
    return x.sign() * x.abs().sqrt()


class NoisyLinear(nn.Linear):
    """A linear layer with learned factorised Gaussian weight noise.

    Args:
        in_features, out_features: sizes, as ``nn.Linear``.
        bias: whether the layer has a (noisy) bias.
        device, dtype: of the parameters.
        std_init: sigma_0 of the paper: ``weight_sigma`` and ``bias_sigma`` start at
            ``std_init / sqrt(in_features)`` (default 0.5, the paper's value for
            factorised noise). ``weight_mu`` / ``bias_mu`` start uniform in
            ``[-1/sqrt(in_features), 1/sqrt(in_features)]``.
        use_exploration_type: ``True`` (default; ``None`` means ``True``): noise is on
            unless the exploration type is DETERMINISTIC, MODE or MEAN. ``False``:
            noise is on while ``self.training``.

    The noise is resampled only by :meth:`reset_noise` (see the module docstring).

    Examples:
        >>> import torch
        >>> from tdrl.envs.utils import ExplorationType, set_exploration_type
        >>> from tdrl.modules import NoisyLinear, reset_noise
        >>> _ = torch.manual_seed(0)
        >>> layer, x = NoisyLinear(4, 2), torch.ones(4)
        >>> with set_exploration_type(ExplorationType.RANDOM):
        ...     first = layer(x)
        ...     same = torch.equal(first, layer(x))      # no new noise without reset_noise
        ...     reset_noise(layer)
        ...     fresh = not torch.equal(first, layer(x))
        >>> same, fresh
        (True, True)
        >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
        ...     torch.equal(layer(x), x @ layer.weight_mu.T + layer.bias_mu)  # mean weights only
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        std_init: float = 0.5,
        use_exploration_type: bool | None = True,
    ) -> None:
        nn.Module.__init__(self)
        if int(in_features) < 0 or int(out_features) < 0:
            raise ValueError(
                f"NoisyLinear needs non-negative sizes, got in_features={in_features}, "
                f"out_features={out_features}"
            )
        if not math.isfinite(std_init) or std_init < 0:
            raise ValueError(f"std_init must be a finite number >= 0, got {std_init}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.std_init = float(std_init)
        self._use_exploration_type = True if use_exploration_type is None else bool(
            use_exploration_type
        )
        kw = {"device": device, "dtype": dtype}
        shape = (self.out_features, self.in_features)
        self.weight_mu = nn.Parameter(torch.empty(shape, **kw))
        self.weight_sigma = nn.Parameter(torch.empty(shape, **kw))
        self.register_buffer("weight_epsilon", torch.empty(shape, **kw))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(self.out_features, **kw))
            self.bias_sigma = nn.Parameter(torch.empty(self.out_features, **kw))
            self.register_buffer("bias_epsilon", torch.empty(self.out_features, **kw))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_sigma", None)
            self.register_buffer("bias_epsilon", None)
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        """Re-draws the means and sets the noise scales to ``std_init / sqrt(in_features)``."""
        # an empty layer (in_features=0) gets zero means and scales, as nn.Linear's bias
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        sigma = self.std_init / math.sqrt(self.in_features) if self.in_features else 0.0
        with torch.no_grad():
            self.weight_mu.uniform_(-bound, bound)
            self.weight_sigma.fill_(sigma)
            if self.bias_mu is not None:
                self.bias_mu.uniform_(-bound, bound)
                self.bias_sigma.fill_(sigma)

    def reset_noise(self) -> None:
        """Draws a new factorised noise sample ``epsilon`` (kept until the next call)."""
        with torch.no_grad():
            eps_in = _signed_sqrt_noise(self.in_features, self.weight_mu)
            eps_out = _signed_sqrt_noise(self.out_features, self.weight_mu)
            torch.outer(eps_out, eps_in, out=self.weight_epsilon)
            if self.bias_mu is not None:
                self.bias_epsilon.copy_(eps_out)

    def noise_active(self) -> bool:
        """Whether the next forward call adds the noise (see ``use_exploration_type``).

        Examples:
            >>> from tdrl.envs.utils import ExplorationType, set_exploration_type
            >>> from tdrl.modules import NoisyLinear
            >>> layer = NoisyLinear(3, 2)
            >>> layer.noise_active(), layer.eval().noise_active()
            (True, True)
            >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
            ...     layer.train().noise_active()
            False
        """
        if self._use_exploration_type:
            return exploration_type() not in _MEAN_ONLY
        return self.training

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        if self.noise_active():
            return self.weight_mu + self.weight_sigma * self.weight_epsilon
        return self.weight_mu

    @property
    def bias(self) -> torch.Tensor | None:  # type: ignore[override]
        if self.bias_mu is None:
            return None
        if self.noise_active():
            return self.bias_mu + self.bias_sigma * self.bias_epsilon
        return self.bias_mu

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.noise_active():
            w = torch.addcmul(self.weight_mu, self.weight_sigma, self.weight_epsilon)
            b = None
            if self.bias_mu is not None:
                b = torch.addcmul(self.bias_mu, self.bias_sigma, self.bias_epsilon)
            return F.linear(input, w, b)
        return F.linear(input, self.weight_mu, self.bias_mu)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, std_init={self.std_init}"
        )


class NoisyLazyLinear(LazyModuleMixin, NoisyLinear):
    """A :class:`NoisyLinear` whose ``in_features`` is read from the first input.

    It becomes a ``NoisyLinear`` after the first call; the parameters are drawn
    and the first noise sample taken then.

    Args:
        out_features: output size.
        bias, device, dtype, std_init, use_exploration_type: as :class:`NoisyLinear`.

    Examples:
        >>> import torch
        >>> from tdrl.modules import NoisyLazyLinear, NoisyLinear
        >>> layer = NoisyLazyLinear(3)
        >>> layer(torch.zeros(5, 7)).shape, type(layer) is NoisyLinear, layer.in_features
        (torch.Size([5, 3]), True, 7)
    """

    cls_to_become = NoisyLinear
    weight_mu: UninitializedParameter
    weight_sigma: UninitializedParameter

    def __init__(
        self,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        std_init: float = 0.5,
        use_exploration_type: bool | None = True,
    ) -> None:
        super().__init__(
            0,
            int(out_features),
            False,
            device=device,
            dtype=dtype,
            std_init=std_init,
            use_exploration_type=use_exploration_type,
        )
        kw = {"device": device, "dtype": dtype}
        self.weight_mu = UninitializedParameter(**kw)
        self.weight_sigma = UninitializedParameter(**kw)
        self.register_buffer("weight_epsilon", UninitializedBuffer(**kw))
        if bias:
            self.bias_mu = UninitializedParameter(**kw)
            self.bias_sigma = UninitializedParameter(**kw)
            self.register_buffer("bias_epsilon", UninitializedBuffer(**kw))

    def _ready(self) -> bool:
        return not self.has_uninitialized_params() and self.in_features > 0

    def reset_parameters(self) -> None:
        if self._ready():
            super().reset_parameters()

    def reset_noise(self) -> None:
        if self._ready():
            super().reset_noise()

    def initialize_parameters(self, input: torch.Tensor) -> None:  # type: ignore[override]
        if not self.has_uninitialized_params():
            return
        if input.ndim < 1 or input.shape[-1] < 1:
            raise ValueError(
                f"NoisyLazyLinear needs inputs with a non-empty last dim, got {tuple(input.shape)}"
            )
        with torch.no_grad():
            self.in_features = int(input.shape[-1])
            shape = (self.out_features, self.in_features)
            self.weight_mu.materialize(shape)
            self.weight_sigma.materialize(shape)
            self.weight_epsilon.materialize(shape)
            if self.bias_mu is not None:
                self.bias_mu.materialize((self.out_features,))
                self.bias_sigma.materialize((self.out_features,))
                self.bias_epsilon.materialize((self.out_features,))
            self.reset_parameters()
            self.reset_noise()

    @property
    def weight(self) -> torch.Tensor | None:  # type: ignore[override]
        return NoisyLinear.weight.fget(self) if self._ready() else None

    @property
    def bias(self) -> torch.Tensor | None:  # type: ignore[override]
        return NoisyLinear.bias.fget(self) if self._ready() else None


def reset_noise(module: nn.Module) -> None:
    """Resamples the noise of every noisy layer in ``module`` (itself included).

    A module with its own ``reset_noise`` method is asked to reset itself;
    otherwise its children are visited. ``net.apply(reset_noise)`` also works.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from tdrl.modules import NoisyLinear, reset_noise
        >>> net = nn.Sequential(NoisyLinear(3, 4), nn.ReLU(), NoisyLinear(4, 2))
        >>> before = [m.weight_epsilon.clone() for m in (net[0], net[2])]
        >>> reset_noise(net)
        >>> [not torch.equal(b, m.weight_epsilon) for b, m in zip(before, (net[0], net[2]))]
        [True, True]
    """
    own = getattr(module, "reset_noise", None)
    if callable(own):
        own()
        return
    for child in module.children():
        reset_noise(child)
