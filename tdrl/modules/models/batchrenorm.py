"""Batch renormalisation (Ioffe 2017), as TorchRL's ``BatchRenorm1d``."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["BatchRenorm1d"]


class BatchRenorm1d(nn.Module):
    """Batch renormalisation over the channel dim (dim 1) of ``[N, C]`` or ``[N, C, L]`` inputs.

    In training it normalises with the batch statistics and then corrects them
    towards the running ones: ``y = (x - mean_B) / std_B * r + d`` with
    ``r = clip(std_B / std_run, 1/max_r, max_r)`` and
    ``d = clip((mean_B - mean_run) / std_run, -max_d, max_d)`` (no gradient through
    ``r``, ``d``), then ``weight * y + bias``. The running statistics follow the
    batches with ``momentum`` (unbiased variance, as ``nn.BatchNorm1d``); in eval
    mode only they are used, exactly as ``BatchNorm1d`` does.

    During the first ``warmup_steps`` training calls ``r = 1``, ``d = 0`` (plain batch
    norm); with ``smooth=True`` the correction is phased in linearly over them
    instead. After the warm-up the full correction applies (the phase-in factor
    never exceeds 1).

    Args:
        num_features: number of channels ``C``.
        momentum, eps, max_r, max_d, warmup_steps, smooth: see above (defaults 0.01,
            1e-5, 3.0, 5.0, 10000, False).
        device, dtype: of the parameters and buffers (default float32).

    Examples:
        >>> import torch
        >>> from tdrl.modules import BatchRenorm1d
        >>> _ = torch.manual_seed(0)
        >>> brn, bn = BatchRenorm1d(3, momentum=0.1, warmup_steps=2), torch.nn.BatchNorm1d(3)
        >>> x = torch.randn(16, 3)
        >>> torch.allclose(brn(x), bn(x), atol=1e-6)   # warm-up: plain batch norm
        True
        >>> _ = brn.eval(), bn.eval()
        >>> torch.allclose(brn(x), bn(x), atol=1e-6)   # eval: the running statistics
        True
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.01,
        eps: float = 1e-5,
        max_r: float = 3.0,
        max_d: float = 5.0,
        warmup_steps: int = 10000,
        smooth: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if int(num_features) <= 0:
            raise ValueError(f"BatchRenorm1d needs num_features >= 1, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchRenorm1d needs 0 <= momentum <= 1, got {momentum}")
        if max_r < 1.0 or max_d < 0.0 or eps <= 0.0 or warmup_steps < 0:
            raise ValueError(
                "BatchRenorm1d needs max_r >= 1, max_d >= 0, eps > 0 and warmup_steps >= 0; got "
                f"max_r={max_r}, max_d={max_d}, eps={eps}, warmup_steps={warmup_steps}"
            )
        self.num_features = int(num_features)
        self.momentum, self.eps = float(momentum), float(eps)
        self.max_r, self.max_d = float(max_r), float(max_d)
        self.warmup_steps, self.smooth = int(warmup_steps), bool(smooth)
        kw = {"device": device, "dtype": dtype or torch.float32}
        self.register_buffer("running_mean", torch.zeros(self.num_features, **kw))
        self.register_buffer("running_var", torch.ones(self.num_features, **kw))
        self.register_buffer(
            "num_batches_tracked", torch.zeros((), dtype=torch.long, device=device)
        )
        self.weight = nn.Parameter(torch.ones(self.num_features, **kw))
        self.bias = nn.Parameter(torch.zeros(self.num_features, **kw))

    def _phase_in(self) -> torch.Tensor | float:
        """0 during the warm-up, then 1 (``smooth``: linear from 0 to 1)."""
        if self.warmup_steps == 0:
            return 1.0
        steps = self.num_batches_tracked.to(self.running_mean.dtype)
        if self.smooth:
            return (steps / self.warmup_steps).clamp_max(1.0)
        return (steps >= self.warmup_steps).to(steps.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchRenorm1d({self.num_features}) expects inputs [N, {self.num_features}, ...] "
                f"(2D or more, channels in dim 1), got shape {tuple(x.shape)}"
            )
        shape = [1, self.num_features] + [1] * (x.ndim - 2)
        run_std = (self.running_var + self.eps).sqrt()
        if self.training:
            dims = [0, *range(2, x.ndim)]
            count = x.numel() // self.num_features
            if count < 2:
                raise ValueError(
                    f"BatchRenorm1d needs more than one value per channel in training, "
                    f"got shape {tuple(x.shape)}"
                )
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            std = (var + self.eps).sqrt()
            with torch.no_grad():
                phase = self._phase_in()
                r = (std / run_std).clamp(1.0 / self.max_r, self.max_r)
                d = ((mean - self.running_mean) / run_std).clamp(-self.max_d, self.max_d)
                r = 1.0 + (r - 1.0) * phase
                d = d * phase
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * (count / (count - 1)), self.momentum)
                self.num_batches_tracked.add_(1)
            y = (x - mean.view(shape)) / std.view(shape) * r.view(shape) + d.view(shape)
        else:
            y = (x - self.running_mean.view(shape)) / run_std.view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, momentum={self.momentum}, eps={self.eps}, max_r={self.max_r}, "
            f"max_d={self.max_d}, warmup_steps={self.warmup_steps}, smooth={self.smooth}"
        )
