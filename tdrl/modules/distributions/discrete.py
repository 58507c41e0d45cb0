"""Discrete distributions for actors: one-hot and masked categoricals.

All classes subclass :class:`torch.distributions.Categorical` (so
``isinstance(d, torch.distributions.Distribution)`` holds), never run torch's
argument validation, and expose ``deterministic_sample`` (the mode).
Index-valued classes return ``int64`` indices of shape ``batch_shape``;
one-hot classes return ``int64`` one-hot tensors from ``sample``/``mode`` and
floating one-hot tensors (carrying a gradient) from ``rsample``.

As in TorchRL, ``has_rsample`` is ``False`` for every class here: a module
that draws with ``rsample`` when it can (tensordict's probabilistic modules,
:func:`tdrl.modules.draw`) writes exact ``int64`` actions; ``rsample`` is there
for a caller who asks for a straight-through sample explicitly.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import distributions as D
from torch.distributions import constraints

from tdrl.modules.distributions.bounds import _is_compiling
from tdrl.modules.distributions.categorical import _check_params, _init_log_softmax

__all__ = [
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "OneHotCategorical",
    "ReparamGradientStrategy",
]

_EMPTY = torch.Size()


class ReparamGradientStrategy(Enum):
    """How one-hot distributions attach a gradient to ``rsample``.

    - ``PassThrough``: straight-through: the hard one-hot draw plus
      ``probs - probs.detach()``, so the gradient is that of ``probs``.
    - ``RelaxedOneHot``: straight-through Gumbel-softmax: the hard one-hot
      argmax of a :class:`torch.distributions.RelaxedOneHotCategorical` draw
      (temperature 1) plus the relaxed draw minus its detached value.

    Examples:
        >>> ReparamGradientStrategy.PassThrough.name
        'PassThrough'
    """

    PassThrough = 1
    RelaxedOneHot = 2


class _CategoricalBase(D.Categorical):
    """Index-valued categorical with multinomial sampling and a gather-based ``log_prob``."""

    _validate_args = False

    def __init__(self, probs: Tensor | None = None, logits: Tensor | None = None,
                 validate_args: bool | None = None) -> None:
        _init_log_softmax(self, probs, logits, validate_args)

    @property
    def num_samples(self) -> int:
        """Number of categories."""
        return self._num_events

    def _sample_index(self, sample_shape: Sequence[int]) -> Tensor:
        probs = self.probs
        n = self._num_events
        probs_2d = probs.reshape(-1, n)
        if not sample_shape:
            return torch.multinomial(probs_2d, 1).view(self._batch_shape)
        sample_shape = torch.Size(sample_shape)
        k = sample_shape.numel()
        idx = torch.multinomial(probs_2d, k, True).T
        return idx.reshape(sample_shape + self._batch_shape)

    def _log_prob_index(self, index: Tensor) -> Tensor:
        logits = self.logits
        index = index.long()
        if index.shape != self._batch_shape:
            logits = logits.expand(index.shape + logits.shape[-1:])
        return logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)

    def _mode_index(self) -> Tensor:
        # argmax of the parameters as given: normalizing the logits can merge near-ties
        src = self.__dict__.get("_mode_src")
        return (src if src is not None else self.logits).argmax(-1)

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        return self._sample_index(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        return self._log_prob_index(value)

    def sample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(sample(sample_shape), log_prob of that draw)`` in one pass."""
        idx = self._sample_index(sample_shape)
        return idx, self._log_prob_index(idx)

    @property
    def mode(self) -> Tensor:
        return self._mode_index()

    @property
    def deterministic_sample(self) -> Tensor:
        """The mode."""
        return self.mode


class _OneHotMixin:
    """Turns an index-valued ``_CategoricalBase`` into a one-hot one (event shape ``(n,)``)."""

    has_rsample = False  # rsample is opt-in: RANDOM draws must be exact one-hot actions
    support = constraints.one_hot

    def _set_one_hot(self, grad_method: ReparamGradientStrategy | str | None) -> None:
        if grad_method is None:
            grad_method = ReparamGradientStrategy.PassThrough
        elif isinstance(grad_method, str):
            try:
                grad_method = ReparamGradientStrategy[grad_method]
            except KeyError:
                raise ValueError(
                    f"grad_method must be one of {[g.name for g in ReparamGradientStrategy]}, "
                    f"got {grad_method!r}"
                ) from None
        elif not isinstance(grad_method, ReparamGradientStrategy):
            raise ValueError(
                f"grad_method must be one of {[g.name for g in ReparamGradientStrategy]}, "
                f"got {grad_method!r}"
            )
        self.grad_method = grad_method
        self._event_shape = self._param.shape[-1:]

    def sample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        return F.one_hot(self._sample_index(sample_shape), self._num_events)

    def _rsample_index(self, sample_shape: Sequence[int]) -> tuple[Tensor, Tensor]:
        n = self._num_events
        if self.grad_method is ReparamGradientStrategy.RelaxedOneHot:
            soft = D.RelaxedOneHotCategorical(
                torch.ones((), dtype=self.logits.dtype, device=self.logits.device),
                logits=self.logits,
                validate_args=False,
            ).rsample(sample_shape)
            # never pick a zero-probability category, even if the relaxation ties there
            idx = soft.masked_fill(self.logits == -math.inf, -1.0).argmax(-1)
            hard = F.one_hot(idx, n).to(soft.dtype)
            return hard + (soft - soft.detach()), idx
        idx = self._sample_index(sample_shape)
        probs = self.probs
        return F.one_hot(idx, n).to(probs.dtype) + (probs - probs.detach()), idx

    def rsample(self, sample_shape: Sequence[int] = _EMPTY) -> Tensor:
        return self._rsample_index(sample_shape)[0]

    def rsample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(rsample(sample_shape), log_prob of that draw)`` in one pass."""
        out, idx = self._rsample_index(sample_shape)
        return out, self._log_prob_index(idx)

    def sample_and_log_prob(self, sample_shape: Sequence[int] = _EMPTY) -> tuple[Tensor, Tensor]:
        """``(sample(sample_shape), log_prob of that draw)`` in one pass."""
        idx = self._sample_index(sample_shape)
        return F.one_hot(idx, self._num_events), self._log_prob_index(idx)

    def log_prob(self, value: Tensor) -> Tensor:
        n = self._num_events
        if value.shape[-1:] != (n,):
            raise ValueError(
                f"{type(self).__name__}.log_prob expects one-hot values with last dim {n}, "
                f"got shape {tuple(value.shape)}"
            )
        if value.dtype == torch.bool:  # bool one-hot actions (OneHot's default spec dtype)
            value = value.view(torch.uint8)
        return self._log_prob_index(value.argmax(-1))

    @property
    def mode(self) -> Tensor:
        return F.one_hot(self._mode_index(), self._num_events)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        return self.probs * (1 - self.probs)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        n = self._num_events
        values = torch.eye(n, dtype=torch.long, device=self._param.device)
        values = values.view((n,) + (1,) * len(self._batch_shape) + (n,))
        if expand:
            values = values.expand((n,) + self._batch_shape + (n,))
        return values


class OneHotCategorical(_OneHotMixin, _CategoricalBase):
    """Categorical distribution over one-hot vectors.

    ``sample``/``mode``/``deterministic_sample`` return ``int64`` one-hot
    tensors; ``has_rsample`` is ``False`` (TorchRL's value), so an actor in
    RANDOM mode samples exact one-hot actions. ``rsample``, called
    explicitly, returns a floating one-hot tensor whose gradient follows
    ``grad_method`` (see :class:`ReparamGradientStrategy`);
    ``log_prob`` reads the index of the one in the last dim. ``event_shape``
    is ``(n,)`` (the one-hot vector), like
    :class:`torch.distributions.OneHotCategorical`.

    Args:
        logits (Tensor, optional): unnormalized log-probabilities (last dim = categories).
        probs (Tensor, optional): probabilities; exactly one of ``logits`` and ``probs``.
        grad_method (ReparamGradientStrategy, optional): ``rsample`` gradient.
            Defaults to ``ReparamGradientStrategy.PassThrough``.

    Examples:
        >>> import torch
        >>> d = OneHotCategorical(logits=torch.tensor([[0.0, 3.0, 1.0]]))
        >>> d.mode
        tensor([[0, 1, 0]])
        >>> x = d.sample((4,))
        >>> x.shape, x.dtype, d.log_prob(x).shape
        (torch.Size([4, 1, 3]), torch.int64, torch.Size([4, 1]))
        >>> d.has_rsample, d.rsample().dtype
        (False, torch.float32)
    """

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        grad_method: ReparamGradientStrategy | str | None = ReparamGradientStrategy.PassThrough,
        **kwargs: Any,
    ) -> None:
        _check_params(logits, probs, "OneHotCategorical")
        kwargs.setdefault("validate_args", False)
        super().__init__(probs=probs, logits=logits, **kwargs)
        self._mode_src = logits if logits is not None else probs
        self._set_one_hot(grad_method)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> OneHotCategorical:
        shape = torch.Size(batch_shape) + (self._num_events,)
        return OneHotCategorical(logits=self.logits.expand(shape), grad_method=self.grad_method)


def _indices_to_mask(
    indices: Tensor, n: int, padding_value: int | None, cls: str
) -> Tensor:
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise TypeError(f"{cls}: indices must be an integer tensor, got dtype {indices.dtype}")
    indices = indices.long()
    valid = torch.ones_like(indices, dtype=torch.bool)
    if padding_value is not None:
        valid = indices != padding_value
    bad = valid & ((indices < 0) | (indices >= n))
    if not _is_compiling() and bool(bad.any()):
        raise ValueError(
            f"{cls}: indices must be in [0, {n}) (or equal padding_value={padding_value}), "
            f"got {indices[bad].unique().tolist()}"
        )
    # padded entries write into an extra column that is dropped afterwards
    idx = torch.where(valid, indices, torch.full_like(indices, n))
    mask = torch.zeros(indices.shape[:-1] + (n + 1,), dtype=torch.bool, device=indices.device)
    mask.scatter_(-1, idx, True)
    return mask[..., :n]


class MaskedCategorical(_CategoricalBase):
    """Categorical distribution restricted to the allowed categories.

    Masked categories get probability exactly 0: they are never sampled nor
    returned as the mode, and their ``log_prob`` is ``neg_inf``. Given
    ``probs``, the allowed probabilities are renormalized.

    Args:
        logits (Tensor, optional): unnormalized log-probabilities (last dim = categories).
        probs (Tensor, optional): probabilities; exactly one of ``logits`` and ``probs``.

    Keyword Args:
        mask (Tensor, optional): boolean, ``True`` = allowed, shaped like (or
            broadcasting to) ``logits``. Exactly one of ``mask`` and ``indices``.
        indices (Tensor, optional): integer tensor listing the allowed categories
            along its last dim (entries equal to ``padding_value`` are ignored).
        neg_inf (float, optional): ``log_prob`` of a masked category. Defaults to ``-inf``.
        padding_value (int, optional): filler value in ``indices``. Defaults to ``None``.
        use_cross_entropy (bool, optional): accepted for TorchRL compatibility
            (where it selects a ``cross_entropy`` kernel); ``log_prob`` is a
            gather of the normalized logits either way, with the same values.
            Defaults to ``True``.
        padding_side (str, optional): ``"left"`` or ``"right"``, kept as an
            attribute for TorchRL compatibility. Defaults to ``"left"``.

    ``sparse_mask`` is ``True`` when the distribution was built from
    ``indices``; ``mask`` is the dense boolean mask in both cases (TorchRL's
    raises for sparse masks).

    Raises:
        ValueError: mask shape mismatch, both or neither of mask/indices, an
            out-of-range index, or a batch element with every category masked
            (the last two checks need a device sync and are skipped under
            ``torch.compile``).
        TypeError: a non-boolean mask or non-integer indices.

    Examples:
        >>> import torch
        >>> logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
        >>> mask = torch.tensor([[False, True, True], [True, True, False]])
        >>> d = MaskedCategorical(logits=logits, mask=mask)
        >>> d.mode
        tensor([1, 0])
        >>> d.log_prob(torch.tensor([0, 0]))
        tensor([   -inf, -0.6931])
        >>> bool(mask.gather(-1, d.sample((100,)).T).all())
        True
    """

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        indices: Tensor | None = None,
        neg_inf: float = -math.inf,
        padding_value: int | None = None,
        use_cross_entropy: bool = True,
        padding_side: str = "left",
    ) -> None:
        cls = type(self).__name__
        if padding_side not in ("left", "right"):
            raise ValueError(f"{cls}: padding_side must be 'left' or 'right', got {padding_side!r}")
        _check_params(logits, probs, cls)
        if (mask is None) == (indices is None):
            raise ValueError(
                f"{cls}: A `mask` or some `indices` must be provided, but not both (got "
                f"{'both' if mask is not None else 'neither'})"
            )
        if logits is None:
            logits = probs.log()  # zero -> -inf; the softmax below renormalizes
        n = logits.shape[-1]
        if indices is not None:
            mask = _indices_to_mask(indices, n, padding_value, cls)
        else:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
                raise TypeError(
                    f"{cls}: mask must be a boolean tensor, got "
                    f"{mask.dtype if isinstance(mask, Tensor) else type(mask).__name__}"
                )
        if mask.shape != logits.shape:
            try:
                if mask.shape[-1:] != logits.shape[-1:]:
                    raise RuntimeError
                shape = torch.broadcast_shapes(mask.shape, logits.shape)
            except RuntimeError:
                raise ValueError(
                    f"{cls}: mask must have the shape of logits/probs {tuple(logits.shape)} "
                    f"(or broadcast to it with the same last dim), got {tuple(mask.shape)}"
                ) from None
            mask, logits = mask.expand(shape), logits.expand(shape)
        mask = mask.to(logits.device)
        empty = ~mask.any(-1)
        if not _is_compiling() and bool(empty.any()):
            raise ValueError(
                f"{cls}: every batch element needs at least one allowed category; "
                f"{int(empty.sum())} have all categories masked (first at batch index "
                f"{empty.nonzero()[0].tolist()})"
            )
        self.neg_inf = neg_inf
        self.padding_value = padding_value
        self.use_cross_entropy = use_cross_entropy
        self.padding_side = padding_side
        self.sparse_mask = indices is not None
        self._mask = mask
        masked = logits.masked_fill(~mask, -math.inf)
        self._mode_src = masked
        super().__init__(logits=masked, validate_args=False)

    @property
    def mask(self) -> Tensor:
        """Boolean mask of the allowed categories, shaped like ``logits``."""
        return self._mask

    def _log_prob_index(self, index: Tensor) -> Tensor:
        lp = super()._log_prob_index(index)
        if self.neg_inf != -math.inf:
            mask = self._mask
            index = index.long()
            if index.shape != self._batch_shape:
                mask = mask.expand(index.shape + mask.shape[-1:])
            allowed = mask.gather(-1, index.unsqueeze(-1)).squeeze(-1)
            lp = lp.masked_fill(~allowed, self.neg_inf)
        return lp

    def entropy(self) -> Tensor:
        p = self.probs
        return -(torch.where(p > 0, self.logits, torch.zeros_like(p)) * p).sum(-1)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> MaskedCategorical:
        shape = torch.Size(batch_shape) + (self._num_events,)
        return type(self)(
            logits=self.logits.expand(shape), mask=self._mask.expand(shape),
            neg_inf=self.neg_inf, use_cross_entropy=self.use_cross_entropy,
            padding_side=self.padding_side,
        )


class MaskedOneHotCategorical(_OneHotMixin, MaskedCategorical):
    """:class:`MaskedCategorical` over one-hot vectors (see :class:`OneHotCategorical`).

    Args:
        logits (Tensor, optional): unnormalized log-probabilities.
        probs (Tensor, optional): probabilities; exactly one of ``logits`` and ``probs``.
        mask (Tensor, optional): boolean, ``True`` = allowed.
        indices (Tensor, optional): allowed categories (exclusive with ``mask``).
        neg_inf (float, optional): ``log_prob`` of a masked category. Defaults to ``-inf``.
        padding_value (int, optional): filler value in ``indices``.
        grad_method (ReparamGradientStrategy, optional): ``rsample`` gradient.
            Defaults to ``ReparamGradientStrategy.PassThrough``.

    Examples:
        >>> import torch
        >>> d = MaskedOneHotCategorical(logits=torch.zeros(2, 3),
        ...     mask=torch.tensor([[True, False, False], [False, False, True]]))
        >>> d.sample()
        tensor([[1, 0, 0],
                [0, 0, 1]])
        >>> d.log_prob(d.mode)
        tensor([0., 0.])
    """

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        mask: Tensor | None = None,
        indices: Tensor | None = None,
        neg_inf: float = -math.inf,
        padding_value: int | None = None,
        grad_method: ReparamGradientStrategy | str | None = ReparamGradientStrategy.PassThrough,
    ) -> None:
        super().__init__(
            logits, probs, mask=mask, indices=indices, neg_inf=neg_inf,
            padding_value=padding_value,
        )
        self._set_one_hot(grad_method)

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> MaskedOneHotCategorical:
        shape = torch.Size(batch_shape) + (self._num_events,)
        return MaskedOneHotCategorical(
            logits=self.logits.expand(shape), mask=self._mask.expand(shape),
            neg_inf=self.neg_inf, grad_method=self.grad_method,
        )



_ORDINAL_NAMES = frozenset({"OneHotOrdinal", "Ordinal", "_generate_ordinal_logits"})


def __getattr__(name: str) -> Any:
    """TorchRL keeps its ordinal distributions in this module; tdrl's live in ``ordinal.py``.

    ``ordinal.py`` subclasses :class:`OneHotCategorical` from here, so the names are
    served lazily (no import cycle).
    """
    if name in _ORDINAL_NAMES:
        from tdrl.modules.distributions import ordinal

        return getattr(ordinal, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
